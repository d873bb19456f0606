//! How serde-saphyr types a scalar, for the quick readers to type one the same way: where
//! they could tell a scalar apart from serde-saphyr, they give up rather than guess.

use std::fmt;

use serde::de;

/// Why the reader stopped does not matter: the caller reads the file again with
/// serde-saphyr, whose error names the problem.
#[derive(Debug)]
pub(super) struct GiveUp;

impl fmt::Display for GiveUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("outside the quick YAML reader's subset")
    }
}

impl std::error::Error for GiveUp {}

impl de::Error for GiveUp {
    fn custom<T: fmt::Display>(_: T) -> Self {
        GiveUp
    }
}

/// serde-saphyr's null: a plain scalar of these spellings, or empty.
pub(super) fn is_null(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

/// The padding serde-saphyr trims before it reads a number or a boolean.
pub(super) fn trim(text: &str) -> &str {
    text.trim_matches([' ', '\t', '\r', '\n'])
}

/// A YAML 1.1 boolean (serde-saphyr's default, `strict_booleans` off).
pub(super) fn boolean(text: &str) -> Option<bool> {
    let t = trim(text);
    let is = |words: [&str; 4]| words.iter().any(|w| t.eq_ignore_ascii_case(w));
    if is(["true", "yes", "y", "on"]) {
        Some(true)
    } else if is(["false", "no", "n", "off"]) {
        Some(false)
    } else {
        None
    }
}

/// What serde-saphyr's integer parse makes of digits after any sign, where this reader can
/// tell: `Ok(None)` is no integer, and `Err` a spelling (`+`, `_`, `0x`, `0o`, `0b`) it
/// leaves to serde-saphyr.
pub(super) fn decimal(digits: &str, signed: bool) -> Result<Option<u128>, GiveUp> {
    let radix = digits.len() > 1
        && digits.starts_with('0')
        && matches!(
            digits.as_bytes()[1],
            b'x' | b'X' | b'o' | b'O' | b'b' | b'B'
        );
    if radix || digits.contains('_') || (!signed && digits.starts_with('+')) {
        return Err(GiveUp);
    }
    let zero_led = digits.len() > 1 && digits.starts_with('0');
    if digits.is_empty() || zero_led || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    Ok(digits.parse().ok())
}

/// `.inf`, `-.inf`, `.nan` and their capitalised forms, which serde-saphyr reads as floats
/// that are not finite.
fn non_finite(t: &str) -> bool {
    let unsigned = t.strip_prefix(['-', '+']).unwrap_or(t);
    matches!(
        unsigned,
        ".nan" | ".NaN" | ".NAN" | ".inf" | ".Inf" | ".INF"
    )
}

/// A finite float as serde-saphyr reads one; `Err` where it reads something else.
pub(super) fn float(text: &str) -> Result<f64, GiveUp> {
    let t = trim(text);
    if non_finite(t) {
        return Err(GiveUp);
    }
    t.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or(GiveUp)
}

/// What a plain scalar is when nothing says what it should be (serde-saphyr's
/// `deserialize_any`: null, boolean, integer, float, else text).
pub(super) enum Untyped {
    Null,
    Bool(bool),
    Unsigned(u64),
    Signed(i64),
    Float(f64),
    Text,
}

pub(super) fn untyped(text: &str) -> Result<Untyped, GiveUp> {
    // Two dots make text (an IPv4 address, a name): no null, boolean, integer or float has
    // them. Said first, for the many values of a large zone.
    if text.bytes().filter(|&b| b == b'.').nth(1).is_some() {
        return Ok(Untyped::Text);
    }
    if is_null(text) {
        return Ok(Untyped::Null);
    }
    if let Some(b) = boolean(text) {
        return Ok(Untyped::Bool(b));
    }
    let t = trim(text);
    match t.strip_prefix('-') {
        Some(digits) => {
            if let Some(n) = decimal(digits, true)?.filter(|&n| n <= 1 << 63) {
                return Ok(Untyped::Signed((-(n as i128)) as i64));
            }
        }
        None => {
            if let Some(n) = decimal(t, false)?.and_then(|n| u64::try_from(n).ok()) {
                return Ok(Untyped::Unsigned(n));
            }
        }
    }
    if non_finite(t) {
        return Err(GiveUp);
    }
    match t.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(Untyped::Float(v)),
        // A numeral too large for f64 is an error there; `inf` or `nan` spelled out is text.
        Ok(_)
            if t.trim_start_matches(['-', '+'])
                .starts_with(|c: char| c.is_ascii_digit()) =>
        {
            Err(GiveUp)
        }
        _ => Ok(Untyped::Text),
    }
}
