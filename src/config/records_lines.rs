//! A large zone's `records:` built straight from its lines' events into [`RecordsRaw`].
//!
//! The quick reader reads other blocks of one-line entries through [`FlowLines`]' events and
//! serde. For `records:`, where a large zone is large, going through serde took as long again
//! as making the events: here each entry's events build the lists at once. The rules are the
//! ones `records_yaml`'s visitors apply to the same events (through the quick reader), step
//! by step, with the same budget; wherever those would fail this gives up, and the quick
//! reader reads the block as before. The `zone` fuzz target checks that what is read here is
//! what serde-saphyr reads.
//!
//! [`FlowLines`]: super::flow_lines::FlowLines

use std::borrow::Cow;

use granit_parser::{Event, ScalarStyle, Span};

use super::flow_lines::{self, Rest};
use super::records_yaml::{Range, RecordsRaw, record_type};
use super::scalar::{GiveUp, Untyped, decimal, is_null, trim, untyped};
use super::yaml::{Location, Spanned};

/// What is left of the quick reader's budget.
pub(super) struct Budget {
    pub(super) events: usize,
    pub(super) scalar_bytes: usize,
    /// How many collections may nest in `records:`'s mapping.
    pub(super) depth: usize,
}

/// The block mapping whose first key is at byte `start` of `text` (on `line`, `indent`
/// columns in), read as `records:`, and where the text after it begins; `None` unless every
/// line is an entry that reads. `new_owner` says whether an owner's name is new (the quick
/// reader keeps the names seen, as it does for any mapping).
pub(super) fn read(
    text: &str,
    start: usize,
    line: usize,
    indent: usize,
    budget: &mut Budget,
    mut new_owner: impl FnMut(&str) -> bool,
) -> Option<(RecordsRaw, Rest)> {
    let mut raw = RecordsRaw::default();
    let (lines, bytes) = extent(&text[start..]);
    raw.reserve(lines, bytes);
    let rest = flow_lines::read_entries(text, start, line, indent, |events| {
        let mut entry = Entry {
            events: events.iter(),
            budget: &mut *budget,
            raw: &mut raw,
        };
        entry.owner(&mut new_owner)?;
        entry.events.next().is_none().then_some(())
    })?;
    Some((raw, rest))
}

/// Bounds of a block's entries and text, in the text from its first entry on: its lines
/// and bytes up to the first line that starts with anything but a space, a comment or
/// nothing (a block is its lines indented, with blank lines and comments among them).
fn extent(text: &str) -> (usize, usize) {
    let (mut lines, mut at) = (1, 0);
    while let Some(i) = text[at..].find('\n') {
        at += i + 1;
        if !matches!(text.as_bytes().get(at), Some(b' ' | b'\n' | b'#')) {
            return (lines, at);
        }
        lines += 1;
    }
    (lines, text.len())
}

/// One entry's events, taken in turn.
struct Entry<'a, 'de> {
    events: std::slice::Iter<'a, (Event<'de>, Span)>,
    budget: &'a mut Budget,
    raw: &'a mut RecordsRaw,
}

impl<'a, 'de> Entry<'a, 'de> {
    fn peek(&self) -> Option<&'a (Event<'de>, Span)> {
        self.events.as_slice().first()
    }

    fn next(&mut self) -> Option<&'a Event<'de>> {
        self.budget.events = self.budget.events.checked_sub(1)?;
        self.events.next().map(|(event, _)| event)
    }

    /// Where the next event is, as the quick reader places a value.
    fn at(&self) -> Option<Location> {
        let start = self.peek()?.1.start;
        Some(Location::at(
            u32::try_from(start.line()).ok()?,
            u32::try_from(start.col() + 1).ok()?,
        ))
    }

    /// The next event, a scalar without anchor or tag.
    fn scalar(&mut self) -> Option<(&'a Cow<'de, str>, ScalarStyle)> {
        let Event::Scalar(text, style, 0, None) = self.next()? else {
            return None;
        };
        self.budget.scalar_bytes = self.budget.scalar_bytes.checked_sub(text.len())?;
        Some((text, *style))
    }

    /// The next event, a mapping's key: a string, not null, not a merge key.
    fn key(&mut self) -> Option<&'a str> {
        let (key, style) = self.scalar()?;
        let refused = style == ScalarStyle::Plain && (is_null(key) || key == "<<");
        (!refused).then_some(key)
    }

    /// Whether the next event is the end of a mapping (`true`) or of a sequence (`false`),
    /// taking it.
    fn closes(&mut self, mapping: bool) -> Option<bool> {
        let end = flow_lines::closes(&self.peek()?.0, mapping);
        if end {
            self.next()?;
        }
        Some(end)
    }

    /// Opens a collection, `depth` deep in `records:`'s mapping.
    fn open(&mut self, mapping: bool, depth: usize) -> Option<()> {
        let opened = flow_lines::opens(self.next()?, mapping);
        (opened && depth <= self.budget.depth).then_some(())
    }

    /// An owner: its name, and its mapping of `ttl` and record types.
    fn owner(&mut self, new_owner: &mut impl FnMut(&str) -> bool) -> Option<()> {
        let name = self.key()?;
        if !new_owner(name) {
            return None;
        }
        let name: Range = self.raw.text::<GiveUp>(name).ok()?;
        let at = self.at()?;
        self.open(true, 1)?;
        let sets = self.raw.sets_len();
        let mut ttl = None;
        while !self.closes(true)? {
            let key = self.key()?;
            if key == "ttl" {
                if ttl.is_some() {
                    return None;
                }
                let at = self.at()?;
                let n = decimal(trim(self.scalar()?.0), false).ok()??;
                let value = u32::try_from(n).ok()?;
                ttl = Some(Spanned {
                    value,
                    referenced: at,
                });
                continue;
            }
            let rtype = record_type(key)?;
            self.raw.new_set::<GiveUp>(sets, rtype).ok()?;
            let values = self.raw.values_len();
            let at = self.at()?;
            self.values()?;
            self.raw.push_set::<GiveUp>(rtype, at, values).ok()?;
        }
        self.raw.push_owner::<GiveUp>(name, at, ttl, sets).ok()
    }

    /// A set's values: a lone scalar, or a list of scalars.
    fn values(&mut self) -> Option<()> {
        if !matches!(self.peek()?.0, Event::SequenceStart(..)) {
            // A lone scalar is a string or an integer (no boolean, float or null).
            let (text, style) = self.scalar()?;
            if style != ScalarStyle::Plain {
                return self.raw.lone_value::<GiveUp>(text).ok();
            }
            return match untyped(text).ok()? {
                Untyped::Unsigned(n) => self.raw.lone_value::<GiveUp>(&n.to_string()).ok(),
                Untyped::Signed(n) => self.raw.lone_value::<GiveUp>(&n.to_string()).ok(),
                Untyped::Text => self.raw.lone_value::<GiveUp>(text).ok(),
                Untyped::Null | Untyped::Bool(_) | Untyped::Float(_) => None,
            };
        }
        self.open(false, 2)?;
        while !self.closes(false)? {
            // Each is a scalar, as text whatever YAML typed it as (but null).
            let at = self.at()?;
            let (text, style) = self.scalar()?;
            let text: Range = if style != ScalarStyle::Plain {
                self.raw.text::<GiveUp>(text)
            } else {
                match untyped(text).ok()? {
                    Untyped::Null => return None,
                    Untyped::Bool(b) => self.raw.text::<GiveUp>(&b.to_string()),
                    Untyped::Unsigned(n) => self.raw.text::<GiveUp>(&n.to_string()),
                    Untyped::Signed(n) => self.raw.text::<GiveUp>(&n.to_string()),
                    Untyped::Float(v) => self.raw.text::<GiveUp>(&v.to_string()),
                    Untyped::Text => self.raw.text::<GiveUp>(text),
                }
            }
            .ok()?;
            self.raw.push_value(at, text);
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::yaml::{ZoneRaw, readers_agree};

    /// `records:`'s block in `text`, read here with a budget of `events`.
    fn read_block(text: &str, events: usize) -> Option<RecordsRaw> {
        let start = text.find("records:\n")? + "records:\n".len();
        let start = start + text[start..].find(|c: char| c != ' ')?;
        let line = text[..start].matches('\n').count() + 1;
        let indent = start - text[..start].rfind('\n').map_or(0, |i| i + 1);
        let mut budget = Budget {
            events,
            scalar_bytes: 1 << 20,
            depth: 2,
        };
        let mut seen = std::collections::HashSet::new();
        read(text, start, line, indent, &mut budget, |name| {
            seen.insert(name.to_string())
        })
        .map(|(raw, _)| raw)
    }

    fn zone(records: &str) -> String {
        format!("zone: a.test\nns: [ns1]\nrecords:\n{records}ttl: 30\n")
    }

    /// Every shape of entry that makes records is read here, and the zone comes out as
    /// serde-saphyr reads it (values typed by YAML as text, lone scalars without a place).
    #[test]
    fn entries_read_here_as_serde_saphyr_reads_them() {
        let text = zone(
            "  n0: { A: [192.0.2.1, 192.0.2.2], AAAA: \"2001:db8::1\", ttl: 60 }\n  \
             # a comment\n\n  \
             \"@\": {MX: 10 mail.a.test., TXT: 'v=spf1 -all'}   # after\n  \
             '*.w': { CNAME: n0 , TYPE65534: \"\" }\n  \
             e: {}\n  \
             l: { A: [ ] , NS: [ns1.a.test.,ns2], \"ttl\": 0 }\n  \
             yes: { TXT: [true, 12, 1.5, 1e3, a  b, 'q'] }\n  \
             num: { TYPE99: 7, TXT: 99999 }\n",
        );
        let raw = read_block(&text, 1000).unwrap_or_else(|| panic!("{text}"));
        assert_eq!(raw.owners().count(), 7);
        assert_eq!(readers_agree::<ZoneRaw>(&text), Ok(true), "{text}");
    }

    /// Entries the rules refuse are not read here (the quick reader goes on with the
    /// events, and gives up where serde-saphyr gives an error).
    #[test]
    fn entries_the_rules_refuse_are_left() {
        let refused = [
            "  www: { A: ~ }\n",
            "  www: { A: true }\n",
            "  www: { A: 1.5 }\n",
            "  www: { TXT: [a, ~] }\n",
            "  www: { A: [[192.0.2.1]] }\n",
            "  www: { A: { x: 1 } }\n",
            "  www: { A: 192.0.2.1, TYPE1: 192.0.2.2 }\n",
            "  www: { A: 192.0.2.1, A: 192.0.2.2 }\n",
            "  www: { AA: 192.0.2.1 }\n",
            "  www: { ttl: 1, ttl: 2 }\n",
            "  www: { ttl: 0x10 }\n",
            "  www: { ttl: 4294967296 }\n",
            "  www: { ttl: [1] }\n",
            "  www: { null: 1 }\n",
            "  ~: { A: 192.0.2.1 }\n",
            "  ok: { A: 192.0.2.2 }\n",
            "  www:\n    A: 192.0.2.1\n",
        ];
        for entry in refused {
            let text = zone(&format!("  ok: {{ A: 192.0.2.9 }}\n{entry}"));
            assert!(read_block(&text, 1000).is_none(), "{text}");
            assert!(readers_agree::<ZoneRaw>(&text).is_ok(), "{text}");
        }
    }

    /// The events count against the quick reader's budget as it counts them: one for each.
    #[test]
    fn events_count_against_the_budget() {
        // Owner, mapping start, key, sequence start, two values, sequence end, mapping end.
        let text = zone("  www: { A: [192.0.2.1, 192.0.2.2] }\n");
        assert!(read_block(&text, 8).is_some());
        assert!(read_block(&text, 7).is_none());
    }
}
