//! The YAML parser's and serde's messages in plain words, with what to do: `invalid u16`
//! becomes "must be 1-65535 (got 82000)", a duplicate key names both lines, an indentation
//! mistake shows the indentation it expected. Every parser error also says that reading
//! stopped there, because the rest of the file is only checked once it is fixed.

/// Ranges of the numeric fields whose type alone would say too little.
const RANGES: [(&str, &str); 6] = [
    ("port", "must be 1-65535"),
    ("edns-udp-size", "must be between 512 and 4096"),
    ("weight", "must be between 1 and 1000000"),
    (
        "ttl",
        "must be a whole number of seconds from 0 to 2147483647",
    ),
    ("rise", "must be a whole number from 1 to 100"),
    ("fall", "must be a whole number from 1 to 100"),
];

/// What a number of serde's type may hold, in words.
fn type_range(ty: &str) -> Option<&'static str> {
    Some(match ty {
        "u8" => "must be a whole number from 0 to 255",
        "u16" => "must be a whole number from 0 to 65535",
        "u32" => "must be a whole number from 0 to 4294967295",
        "u64" | "usize" => "must be a whole number, 0 or more",
        "i64" | "i32" => "must be a whole number",
        "f64" | "f32" => "must be a number",
        "bool" => "must be true or false",
        _ => return None,
    })
}

/// The plain message for `message`, reported for `field` at `line`/`column` of `text`.
pub(super) fn plain(message: &str, field: &str, text: &str, line: u64, column: u64) -> String {
    let said = rewrite(message, field, text, line, column);
    format!("{said}; reading stopped here, so the rest of this file is checked once this is fixed")
}

fn rewrite(message: &str, field: &str, text: &str, line: u64, column: u64) -> String {
    let last = field.rsplit('.').next().unwrap_or(field);
    let last = last.split('[').next().unwrap_or(last);
    // "invalid u16", or serde's "invalid value: integer `82000`, expected u16".
    let ty = message
        .strip_prefix("invalid ")
        .filter(|t| !t.contains(' '))
        .or_else(|| {
            message
                .rsplit("expected ")
                .next()
                .filter(|_| message.starts_with("invalid "))
        });
    if let Some(ty) = ty
        && let Some(range) = RANGES
            .iter()
            .find(|(name, _)| *name == last)
            .map(|(_, r)| *r)
            .or_else(|| type_range(ty.trim()))
    {
        return match scalar_at(text, line, column) {
            Some(v) if !v.is_empty() => format!("{range} (got {v})"),
            _ => range.to_string(),
        };
    }
    if let Some(rest) = message.strip_prefix("duplicate mapping key: ") {
        let key = rest
            .split(", set DuplicateKeyPolicy")
            .next()
            .unwrap_or(rest)
            .trim();
        return match earlier_key_line(text, line, key) {
            Some(first) => format!(
                "`{key}` is given twice, on line {first} and on line {line}: keep one (merge what the two hold)"
            ),
            None => format!("`{key}` is given twice: keep one"),
        };
    }
    let layout = message.contains("did not find expected key")
        || message.contains("mapping values are not allowed")
        || message.contains("expected mapping start")
        || message.contains("did not find expected '-' indicator");
    if layout && let Some(hint) = indentation_hint(text, line) {
        return format!("{message}: {hint}");
    }
    message.to_string()
}

/// The value written at (line, column), 1-based: up to the end of its flow item or line.
fn scalar_at(text: &str, line: u64, column: u64) -> Option<String> {
    let l = text.lines().nth(line.checked_sub(1)? as usize)?;
    let from = (column.checked_sub(1)? as usize).min(l.len());
    let rest = l.get(from..)?;
    let end = rest.find([',', '}', ']', '#']).unwrap_or(rest.len());
    Some(rest[..end].trim().to_string())
}

/// Indentation (in spaces) and text of a line, for lines that hold YAML.
fn indent_of(l: &str) -> Option<usize> {
    let trimmed = l.trim_start();
    (!trimmed.is_empty() && !trimmed.starts_with('#')).then(|| l.len() - trimmed.len())
}

/// The earlier line, in the same mapping as `line`, that gives `key`.
fn earlier_key_line(text: &str, line: u64, key: &str) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let here = (line as usize).checked_sub(1)?;
    let indent = indent_of(lines.get(here)?)?;
    for i in (0..here).rev() {
        let l = lines[i];
        let Some(ind) = indent_of(l) else { continue };
        if ind < indent {
            break; // left the mapping
        }
        let t = l.trim_start();
        let t = t.strip_prefix("- ").unwrap_or(t);
        let unquoted = t.trim_start_matches(['"', '\'']);
        if ind == indent
            && let Some(after) = unquoted.strip_prefix(key)
            && after
                .trim_start_matches(['"', '\''])
                .trim_start()
                .starts_with(':')
        {
            return Some(i + 1);
        }
    }
    None
}

/// Where the indentation of `line` (or the line before it) breaks with its neighbours.
fn indentation_hint(text: &str, line: u64) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let here = (line as usize).checked_sub(1)?;
    // The parser may point at the line after the culprit: look at both.
    for at in [here, here.checked_sub(1)?] {
        let indent = indent_of(lines.get(at)?)?;
        let prev = (0..at)
            .rev()
            .find_map(|i| indent_of(lines[i]).map(|ind| (i, ind)))?;
        let (p, prev_indent) = prev;
        let prev_opens = lines[p].trim_end().ends_with(':');
        if indent > prev_indent && !prev_opens {
            return Some(format!(
                "line {} is indented {} spaces, more than line {} ({} spaces), which does not open a block: indent it {} spaces like line {}",
                at + 1,
                indent,
                p + 1,
                prev_indent,
                prev_indent,
                p + 1
            ));
        }
        let siblings: Vec<usize> = (0..at).filter_map(|i| indent_of(lines[i])).collect();
        if indent < prev_indent && !siblings.contains(&indent) {
            return Some(format!(
                "line {} is indented {} spaces, which matches no line above it: indent it like the entries it belongs with ({} spaces as on line {})",
                at + 1,
                indent,
                prev_indent,
                p + 1
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_duplicates_and_indentation() {
        let text = "a:\n  check: { type: tcp, port: 82000 }\n";
        assert_eq!(
            rewrite("invalid u16", "fqdns.app.check.port", text, 2, 29),
            "must be 1-65535 (got 82000)"
        );
        assert_eq!(
            rewrite("invalid u32", "records.x.count", "x: lots\n", 1, 4),
            "must be a whole number from 0 to 4294967295 (got lots)"
        );
        let dup = "records:\n  www: { A: 192.0.2.1 }\n  mail: {}\n  www: { A: 192.0.2.2 }\n";
        assert_eq!(
            rewrite(
                "duplicate mapping key: www, set DuplicateKeyPolicy in Options if acceptable",
                "records",
                dup,
                4,
                3
            ),
            "`www` is given twice, on line 2 and on line 4: keep one (merge what the two hold)"
        );
        let indented = "records:\n  www: { A: 192.0.2.1 }\n    mail: { A: 192.0.2.2 }\n";
        let said = rewrite(
            "while parsing a block mapping, did not find expected key",
            "records",
            indented,
            3,
            5,
        );
        assert!(
            said.ends_with("line 3 is indented 4 spaces, more than line 2 (2 spaces), which does not open a block: indent it 2 spaces like line 2"),
            "{said}"
        );
        let outdented = "records:\n  www: { A: 192.0.2.1 }\n bad: { A: 192.0.2.2 }\n";
        let said = rewrite(
            "while parsing a block mapping, did not find expected key",
            "",
            outdented,
            3,
            2,
        );
        assert!(
            said.contains("line 3 is indented 1 spaces, which matches no line above it"),
            "{said}"
        );
        assert!(plain("x", "", "", 1, 1).ends_with(
            "reading stopped here, so the rest of this file is checked once this is fixed"
        ));
    }
}
