//! The quick reader's own tokenizer for the shape of a large zone: a block mapping whose
//! every entry is one line, a key and a flow mapping of scalars and flow collections:
//!
//! ```yaml
//! records:
//!   n0: { A: [192.0.2.1, 192.0.2.2], AAAA: "2001:db8::1", ttl: 60 }
//! fqdns:
//!   vault: { selection: round-robin, members: [{ address: 192.0.2.10 }] }
//! ```
//!
//! Written by hand because the YAML parser's events alone took 2.3 s for a million such
//! lines, more than Knot's whole load of the same names: this gives the same events (the
//! same text, style and place as the parser gives) at a fraction of the cost. It reads
//! only what it can be sure of: printable ASCII, plain scalars of letters, digits and
//! `_./+-` (words apart by spaces), quoted scalars without escapes, collections nested
//! at most [`MAX_NESTING`] deep, one line an entry. Anything else in the block (a nested
//! entry, a comment inside a line, a colon in a plain scalar, a tab) leaves the whole
//! block to the parser, and the `zone` fuzz target checks, as for the rest of the quick
//! reader, that what it reads is what serde-saphyr reads.

use std::borrow::Cow;
use std::collections::VecDeque;

use granit_parser::{Event, Marker, ScalarStyle, Span, StructureStyle};

/// How deep flow collections nest in an entry (the entry's own mapping is 1).
const MAX_NESTING: usize = 4;

/// The events of one such block, line by line, after its start (the mapping's own start
/// event comes from the parser), ending with the mapping's end.
pub(super) struct FlowLines<'de> {
    text: &'de str,
    /// Where the next line starts, and its number (from 1).
    at: usize,
    line: usize,
    /// Where the block ends: the start of the first line after it.
    end: usize,
    indent: usize,
    /// The current line's events, not yet taken.
    pending: VecDeque<(Event<'de>, Span)>,
    ended: bool,
}

/// Where the text after a block begins: its byte offset and line number.
pub(super) struct Rest {
    pub(super) at: usize,
    pub(super) line: usize,
}

impl<'de> FlowLines<'de> {
    /// The block whose first key is at byte `start` of `text`, on `line`, `indent` columns
    /// in (a block mapping inside the document's top-level mapping, which is at column 0).
    /// `None` unless every line of it is an entry of the shape, or blank, or a comment.
    pub(super) fn new(
        text: &'de str,
        start: usize,
        line: usize,
        indent: usize,
    ) -> Option<(FlowLines<'de>, Rest)> {
        let (line_start, rest) = walk(text, start, line, indent, |at, n| {
            entry(text, at, n, indent, &mut |_, _| {})
        })?;
        let lines = FlowLines {
            text,
            at: line_start,
            line,
            end: rest.at,
            indent,
            pending: VecDeque::new(),
            ended: false,
        };
        Some((lines, rest))
    }

    pub(super) fn peek(&mut self) -> Option<&(Event<'de>, Span)> {
        self.fill();
        self.pending.front()
    }

    pub(super) fn next(&mut self) -> Option<(Event<'de>, Span)> {
        self.fill();
        self.pending.pop_front()
    }

    /// The next line's events, when the current line's are taken.
    fn fill(&mut self) {
        while self.pending.is_empty() && !self.ended {
            if self.at >= self.end {
                self.ended = true;
                let end = marker(self.end, self.line, 0);
                self.pending
                    .push_back((Event::MappingEnd, Span::new(end, end)));
                return;
            }
            let next = next_line(self.text, self.at);
            if let Line::Entry = classify(&self.text[self.at..next], self.indent) {
                let pending = &mut self.pending;
                entry(self.text, self.at, self.line, self.indent, &mut |e, s| {
                    pending.push_back((e, s))
                })
                .expect("checked when the block was read");
            }
            self.at = next;
            self.line += 1;
        }
    }
}

/// Whether `event` opens a mapping (`mapping`) or else a sequence, without an anchor or a
/// tag: the only collections the quick readers take.
pub(super) fn opens(event: &Event, mapping: bool) -> bool {
    match event {
        Event::MappingStart(_, 0, None) => mapping,
        Event::SequenceStart(_, 0, None) => !mapping,
        _ => false,
    }
}

/// Whether `event` ends a mapping (`mapping`) or else a sequence.
pub(super) fn closes(event: &Event, mapping: bool) -> bool {
    matches!(
        (event, mapping),
        (Event::MappingEnd, true) | (Event::SequenceEnd, false)
    )
}

/// Each entry of the block whose first key is at byte `start` of `text` (on `line`,
/// `indent` columns in), as its events, given to `each`; where the text after the block
/// begins. `None` unless every line of the block is an entry of the shape that `each`
/// takes, or blank, or a comment. For a reader that builds its value from the entries
/// straight away instead of going through [`FlowLines`] (`records_lines`).
pub(super) fn read_entries<'de>(
    text: &'de str,
    start: usize,
    line: usize,
    indent: usize,
    mut each: impl FnMut(&[(Event<'de>, Span)]) -> Option<()>,
) -> Option<Rest> {
    let mut events = Vec::new();
    let (_, rest) = walk(text, start, line, indent, |at, n| {
        events.clear();
        entry(text, at, n, indent, &mut |e, s| events.push((e, s)))?;
        each(&events)
    })?;
    Some(rest)
}

/// Goes through the block whose first key is at byte `start` (on `line`, `indent` columns
/// in), giving each entry's line (its start and number) to `entry`: where the block's first
/// line starts, and where the text after it begins. `None` at the first line that is not
/// blank, a comment or an entry that `entry` takes.
fn walk(
    text: &str,
    start: usize,
    line: usize,
    indent: usize,
    mut entry: impl FnMut(usize, usize) -> Option<()>,
) -> Option<(usize, Rest)> {
    let line_start = start.checked_sub(indent)?;
    if indent == 0 || text.get(line_start..start)?.bytes().any(|b| b != b' ') {
        return None;
    }
    let (mut at, mut n) = (line_start, line);
    let mut entries = 0usize;
    while at < text.len() {
        let next = next_line(text, at);
        match classify(&text[at..next], indent) {
            Line::Skip => {}
            Line::Entry => {
                entry(at, n)?;
                entries += 1;
            }
            Line::Outside if entries > 0 => break,
            Line::Outside | Line::Other => return None,
        }
        at = next;
        n += 1;
    }
    Some((line_start, Rest { at, line: n }))
}

/// The start of the line after the one at `at` (or the end of the text).
fn next_line(text: &str, at: usize) -> usize {
    text[at..].find('\n').map_or(text.len(), |i| at + i + 1)
}

enum Line {
    /// Blank, or only a comment.
    Skip,
    /// Indented as the block's entries.
    Entry,
    /// At column 0: after the block.
    Outside,
    Other,
}

fn classify(line: &str, indent: usize) -> Line {
    let body = line.strip_suffix('\n').unwrap_or(line);
    // Printable ASCII only (YAML refuses control characters anywhere, comments included).
    if !body.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        return Line::Other;
    }
    let content = body.trim_start_matches(' ');
    let spaces = body.len() - content.len();
    if content.is_empty() || content.starts_with('#') {
        Line::Skip
    } else if spaces == indent {
        Line::Entry
    } else if spaces == 0 && !["---", "...", "%"].iter().any(|m| content.starts_with(m)) {
        Line::Outside
    } else {
        Line::Other
    }
}

fn marker(at: usize, line: usize, col: usize) -> Marker {
    Marker::new(at, line, col).with_byte_offset(Some(at))
}

/// Reads one entry line (starting at byte `start`, ASCII, `indent` spaces in), giving
/// each event to `emit`; `None` if the line is not of the shape.
fn entry<'de>(
    text: &'de str,
    start: usize,
    line: usize,
    indent: usize,
    emit: &mut dyn FnMut(Event<'de>, Span),
) -> Option<()> {
    let end = next_line(text, start);
    let body = text[start..end]
        .strip_suffix('\n')
        .unwrap_or(&text[start..end]);
    let mut t = Tokens {
        text,
        bytes: body.as_bytes(),
        base: start,
        i: indent,
        line,
        emit,
    };
    t.key()?;
    t.expect(b':')?;
    t.spaces(1)?;
    t.flow_mapping(1)?;
    // Then nothing, or a comment after a space.
    let before = t.i;
    t.spaces(0);
    match t.bytes.get(t.i) {
        None => Some(()),
        Some(b'#') if t.i > before => Some(()),
        _ => None,
    }
}

struct Tokens<'a, 'de> {
    text: &'de str,
    /// The line, without its line break.
    bytes: &'a [u8],
    /// Where the line starts in the text.
    base: usize,
    /// Where the next token starts in the line (its column, from 0: the line is ASCII).
    i: usize,
    line: usize,
    emit: &'a mut dyn FnMut(Event<'de>, Span),
}

impl<'de> Tokens<'_, 'de> {
    fn give(&mut self, event: Event<'de>, col: usize) {
        let at = marker(self.base + col, self.line, col);
        (self.emit)(event, Span::new(at, at));
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.i).copied()
    }

    fn expect(&mut self, b: u8) -> Option<()> {
        (self.peek()? == b).then(|| self.i += 1)
    }

    /// At least `least` spaces.
    fn spaces(&mut self, least: usize) -> Option<()> {
        let from = self.i;
        while self.peek() == Some(b' ') {
            self.i += 1;
        }
        (self.i - from >= least).then_some(())
    }

    /// A key: plain (letters, digits and `_`, then `.` and `-` too) or quoted.
    fn key(&mut self) -> Option<()> {
        if matches!(self.peek()?, b'"' | b'\'') {
            return self.quoted();
        }
        let from = self.i;
        if !self.peek()?.is_ascii_alphanumeric() && self.peek()? != b'_' {
            return None;
        }
        while self
            .peek()
            .is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        {
            self.i += 1;
        }
        self.plain(from, self.i)
    }

    fn plain(&mut self, from: usize, to: usize) -> Option<()> {
        let text = &self.text[self.base + from..self.base + to];
        self.give(
            Event::Scalar(Cow::Borrowed(text), ScalarStyle::Plain, 0, None),
            from,
        );
        Some(())
    }

    /// `"…"` without escapes, or `'…'` without a doubled quote.
    fn quoted(&mut self) -> Option<()> {
        let quote = self.peek()?;
        let from = self.i;
        let close = self.bytes[from + 1..].iter().position(|&b| b == quote)? + from + 1;
        let inner = &self.bytes[from + 1..close];
        if inner.contains(&b'\\') || self.bytes.get(close + 1) == Some(&quote) {
            return None;
        }
        let style = if quote == b'"' {
            ScalarStyle::DoubleQuoted
        } else {
            ScalarStyle::SingleQuoted
        };
        let text = &self.text[self.base + from + 1..self.base + close];
        self.give(Event::Scalar(Cow::Borrowed(text), style, 0, None), from);
        self.i = close + 1;
        Some(())
    }

    /// A value in a flow collection: quoted, or plain (letters, digits and `_./+-`, words
    /// apart by spaces), up to the `,`, `]` or `}` after it.
    fn scalar(&mut self) -> Option<()> {
        if matches!(self.peek()?, b'"' | b'\'') {
            return self.quoted();
        }
        let safe = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'/' | b'+');
        let from = self.i;
        if !safe(self.peek()?) {
            return None;
        }
        let mut to = self.i;
        loop {
            match self.peek() {
                Some(b) if safe(b) || b == b'-' => {
                    self.i += 1;
                    to = self.i;
                }
                Some(b' ') => {
                    self.spaces(1);
                    match self.peek()? {
                        b',' | b']' | b'}' => break,
                        b if safe(b) || b == b'-' => {}
                        _ => return None,
                    }
                }
                Some(b',' | b']' | b'}') => break,
                _ => return None,
            }
        }
        self.plain(from, to)
    }

    /// A value in a flow collection: a scalar, or a collection, nested at most
    /// [`MAX_NESTING`] deep (well within the parser's limit, which it must not pass).
    fn value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'[' if depth < MAX_NESTING => self.flow_sequence(depth + 1),
            b'{' if depth < MAX_NESTING => self.flow_mapping(depth + 1),
            _ => self.scalar(),
        }
    }

    fn flow_mapping(&mut self, depth: usize) -> Option<()> {
        self.collection([b'{', b'}'], |t| {
            t.key()?;
            t.expect(b':')?;
            t.spaces(1)?;
            t.value(depth)
        })
    }

    fn flow_sequence(&mut self, depth: usize) -> Option<()> {
        self.collection([b'[', b']'], |t| t.value(depth))
    }

    /// A flow collection between `brackets`: its start, its items apart by commas (each
    /// read by `item`), its end.
    fn collection(
        &mut self,
        brackets: [u8; 2],
        mut item: impl FnMut(&mut Self) -> Option<()>,
    ) -> Option<()> {
        let [open, close] = brackets;
        let (start, end) = if open == b'{' {
            (
                Event::MappingStart(StructureStyle::Flow, 0, None),
                Event::MappingEnd,
            )
        } else {
            (
                Event::SequenceStart(StructureStyle::Flow, 0, None),
                Event::SequenceEnd,
            )
        };
        let at = self.i;
        self.expect(open)?;
        self.give(start, at);
        self.spaces(0);
        if self.peek()? != close {
            loop {
                item(self)?;
                self.spaces(0);
                if self.peek()? == close {
                    break;
                }
                self.expect(b',')?;
                self.spaces(0);
            }
        }
        let at = self.i;
        self.expect(close)?;
        self.give(end, at);
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::yaml::{ZoneRaw, readers_agree};
    use granit_parser::Parser;

    /// Events as text, with their line and column.
    type Events = Vec<(String, usize, usize)>;

    /// The events and places granit-parser gives for the block mapping that is the value of
    /// the top-level key `records`, after its start, up to its end.
    fn parser_events(text: &str) -> Events {
        let mut options = granit_parser::Options::default();
        options.emit_comments = false;
        let events: Vec<(Event, Span)> = Parser::new_from_str_with_options(text, options)
            .map(|e| e.unwrap())
            .collect();
        let key = events
            .iter()
            .position(|(e, _)| matches!(e, Event::Scalar(k, ..) if k == "records"))
            .unwrap();
        let mut depth = 0;
        let mut out = Vec::new();
        for (event, span) in &events[key + 2..] {
            out.push((format!("{event:?}"), span.start.line(), span.start.col()));
            match event {
                Event::MappingStart(..) | Event::SequenceStart(..) => depth += 1,
                Event::MappingEnd | Event::SequenceEnd if depth == 0 => break,
                Event::MappingEnd | Event::SequenceEnd => depth -= 1,
                _ => {}
            }
        }
        out
    }

    /// The events [`FlowLines`] gives for that block, and where the text after it starts.
    fn block(text: &str) -> Option<(Events, usize)> {
        let start = text.find("records:\n")? + "records:\n".len();
        let start = start + text[start..].find(|c: char| c != ' ')?;
        let line = text[..start].matches('\n').count() + 1;
        let col = start - text[..start].rfind('\n').map_or(0, |i| i + 1);
        let (mut lines, rest) = FlowLines::new(text, start, line, col)?;
        let mut out = Vec::new();
        while let Some((event, span)) = lines.next() {
            out.push((format!("{event:?}"), span.start.line(), span.start.col()));
        }
        Some((out, rest.at))
    }

    const SHAPES: &str = "records:\n  \
        n0: { A: [192.0.2.1, 192.0.2.2], AAAA: \"2001:db8::1\", ttl: 60 }\n  \
        # a comment between entries\n\n  \
        \"@\": {MX: 10 mail.a.test., TXT: 'v=spf1 -all'}   # after an entry\n  \
        '*.w': { CNAME: n0 , TYPE65534: \"\" }\n  \
        e: {}\n  \
        l: { A: [ ] , NS: [ns1.a.test.,ns2] }\n  \
        yes: { TXT: [true, 12, 1.5, a  b] }\n";

    /// Every shape it reads gives the parser's events at the parser's places, and a zone
    /// of them reads as serde-saphyr reads it, whether the block ends the file or other
    /// keys follow it.
    #[test]
    fn it_gives_the_parsers_events_for_the_shapes_it_reads() {
        for tail in ["", "# the end\n", "fqdns: {}\nttl: 30\n", "\n# c\nttl: 30"] {
            let text = format!("zone: a.test\nns: [ns1]\n{SHAPES}{tail}");
            let (events, rest) = block(&text).unwrap_or_else(|| panic!("{text}"));
            assert_eq!(events, parser_events(&text), "{text}");
            let after = &text[rest..];
            assert!(after.is_empty() || after.starts_with("fqdns") || after.starts_with("ttl"));
            assert_eq!(readers_agree::<ZoneRaw>(&text), Ok(true), "{text}");
        }
        // Collections inside collections (as `fqdns:` has them), the same events.
        let text = "records:\n  nest: { A: [[x], {k: [y, z]}], B: {}, C: [] }\nfqdns: x\n";
        assert_eq!(block(text).unwrap().0, parser_events(text), "{text}");
        // Two such blocks in a file: the second one is found in the text after the first.
        let text = "zone: a.test\nns: [ns1]\nrecords:\n  a: { A: 192.0.2.9 }\nfqdns:\n  \
                    v: { members: [{ address: 192.0.2.1 }, { address: 192.0.2.2, weight: 2 }] }\n";
        assert_eq!(readers_agree::<ZoneRaw>(text), Ok(true), "{text}");
        assert_eq!(
            crate::config::quick_yaml::blocks_read_quickly(text),
            2,
            "{text}"
        );
    }

    /// Any other line in the block leaves the whole block to the parser, and the file reads
    /// as serde-saphyr reads it.
    #[test]
    fn any_other_line_leaves_the_block_to_the_parser() {
        let others = [
            "  www:\n    A: 192.0.2.1\n",
            "  www: { A: 192.0.2.1,\n    AAAA: \"::1\" }\n",
            "  www: { A: [192.0.2.1 # c\n  ] }\n",
            "  www: { AAAA: 2001:db8::1 }\n",
            "  www: { A: \"\\x41\" }\n",
            "  www: { TXT: 'it''s' }\n",
            "  www: {\tA: 192.0.2.1 }\n",
            "  www: { TXT: é }\n",
            "  www: { TXT: 'a\u{0}b' }\n",
            "  www: { A: 192.0.2.1 } # \u{7f}\n",
            "  www: { A: &x 192.0.2.1 }\n",
            "  www: { A: 192.0.2.1 }x\n",
            "  - www\n",
            "  deep: { a: [[[[x]]]] }\n",
            "   www: { A: 192.0.2.1 }\n",
            " x: 1\n",
        ];
        for other in others {
            let text = format!(
                "zone: a.test\nns: [ns1]\nrecords:\n  ok: {{ A: 192.0.2.9 }}\n{other}ttl: 30\n"
            );
            assert!(block(&text).is_none(), "{text}");
            // Whatever reads it, the two readers agree (or the quick one leaves it).
            assert!(readers_agree::<ZoneRaw>(&text).is_ok(), "{text}");
        }
    }
}
