//! The quick reader: serde straight over granit-parser's events, for the YAML that
//! Meridian's files are written in, with the same values and positions (`Spanned`) that
//! serde-saphyr gives.
//!
//! Written by hand because no crate does this: serde-saphyr reads a zone of 100,000 names
//! in about twice the time of the parser's events beneath it (it records events for
//! anchors, keeps a budget and a fingerprint of every key, and carries state for comments,
//! tags and includes), and that parse was most of a large zone's load time.
//!
//! It reads a subset: one document of block and flow collections with plain and quoted
//! scalars; no anchors, aliases, tags, merge keys or directives. Scalars are typed by
//! serde-saphyr's rules (YAML 1.1 booleans, its integer and float spellings); where the two
//! readers could tell a scalar apart, this one gives up rather than guess. Anything outside
//! the subset, and any error at all, gives `None`, and the caller reads the file again with
//! serde-saphyr, which gives the value or the positioned error. The `zone` fuzz target
//! checks that whenever this reader gives a value, serde-saphyr gives the same one, at the
//! same lines and columns.
//!
//! A block mapping of one-line entries under a top-level key (a large zone's `records:`)
//! is tokenized by [`FlowLines`] instead of the parser, which then reads the rest of the
//! text: the same events, at a fraction of the parser's cost. `records:` itself goes
//! further: `records_lines` builds its lists from the lines' events, without serde.

use std::borrow::Cow;
use std::collections::{HashSet, VecDeque};
use std::hash::BuildHasher;

use granit_parser::{Event, Parser, ScalarStyle, Span, StrInput, StructureStyle};

use super::flow_lines::{self, FlowLines, Rest};
use super::records_lines;
use super::records_yaml::{self, RecordsRaw};
use super::scalar::{GiveUp, Untyped, boolean, decimal, float, is_null, trim, untyped};
use serde::Deserialize;
use serde::de::value::BorrowedStrDeserializer;
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};

/// Reads `text` as `T`, or `None` when it is outside the subset or does not fit `T`.
pub(super) fn read<T: for<'de> Deserialize<'de>>(
    text: &str,
    budget: &serde_saphyr::Budget,
) -> Option<T> {
    read_counting(text, budget).map(|(value, _)| value)
}

/// How many blocks [`FlowLines`] read in reading a zone file (none if it was not read).
#[cfg(test)]
pub(super) fn blocks_read_quickly(text: &str) -> usize {
    read_counting::<super::yaml::ZoneRaw>(text, &super::yaml::budget()).map_or(0, |(_, n)| n)
}

/// [`read`], and how many blocks [`FlowLines`] read.
fn read_counting<T: for<'de> Deserialize<'de>>(
    text: &str,
    budget: &serde_saphyr::Budget,
) -> Option<(T, usize)> {
    // The parser's limits as serde-saphyr sets them from the same budget, so that both
    // readers accept the same documents.
    let mut options = granit_parser::Options::default();
    options.simple_key_max_lookahead = budget.simple_key_max_lookahead;
    options.flow_nesting_limit = budget.flow_nesting_limit;
    options.block_nesting_limit = options
        .block_nesting_limit
        .max(budget.max_depth.saturating_add(1));
    options.emit_comments = false;
    let mut reader = Reader {
        text,
        parser: Parser::new_from_str_with_options(text, options.clone()),
        options,
        lines: None,
        after: VecDeque::new(),
        base: 0,
        line_offset: 0,
        blocks_read_quickly: 0,
        root_column: None,
        depth: 0,
        max_depth: budget.max_depth,
        events_left: budget.max_events.min(budget.max_nodes),
        scalar_bytes_left: budget.max_total_scalar_bytes,
    };
    if !matches!(reader.next().ok()?.0, Event::StreamStart)
        || !matches!(reader.next().ok()?.0, Event::DocumentStart(_, None))
    {
        return None;
    }
    let value = T::deserialize(&mut reader).ok()?;
    let ends = matches!(reader.next().ok()?.0, Event::DocumentEnd)
        && matches!(reader.next().ok()?.0, Event::StreamEnd);
    ends.then_some((value, reader.blocks_read_quickly))
}

struct Reader<'de> {
    text: &'de str,
    parser: Parser<'de, StrInput<'de>>,
    options: granit_parser::Options,
    /// A block of one-line entries read by [`FlowLines`] instead of the parser, then the
    /// events the parser would end the document with, when nothing follows the block.
    lines: Option<FlowLines<'de>>,
    after: VecDeque<(Event<'de>, Span)>,
    /// After such a block the parser reads the rest of the text: where the rest starts,
    /// and how many lines come before it, for the positions it gives.
    base: usize,
    line_offset: usize,
    blocks_read_quickly: usize,
    /// The column of the document's top-level mapping, once open.
    root_column: Option<usize>,
    depth: usize,
    max_depth: usize,
    events_left: usize,
    scalar_bytes_left: usize,
}

impl<'de> Reader<'de> {
    fn next(&mut self) -> Result<(Event<'de>, Span), GiveUp> {
        self.events_left = self.events_left.checked_sub(1).ok_or(GiveUp)?;
        if let Some(lines) = &mut self.lines {
            match lines.next() {
                Some(event) => return Ok(event),
                None => self.lines = None,
            }
        }
        if let Some(event) = self.after.pop_front() {
            return Ok(event);
        }
        match self.parser.next() {
            Some(Ok(event)) => Ok(event),
            _ => Err(GiveUp),
        }
    }

    fn peek(&mut self) -> Result<&(Event<'de>, Span), GiveUp> {
        if self.lines.as_mut().is_some_and(|l| l.peek().is_none()) {
            self.lines = None;
        }
        if let Some(lines) = &mut self.lines {
            return lines.peek().ok_or(GiveUp);
        }
        if let Some(event) = self.after.front() {
            return Ok(event);
        }
        match self.parser.peek() {
            Some(Ok(event)) => Ok(event),
            _ => Err(GiveUp),
        }
    }

    /// Where the next event starts.
    fn position(&mut self) -> Result<Position, GiveUp> {
        // Peeked first: a block read to its end gives way to what follows.
        self.peek()?;
        let from_parser = self.lines.is_none() && self.after.is_empty();
        let offset = if from_parser { self.line_offset } else { 0 };
        Position::of(&self.peek()?.1, offset)
    }

    /// After the start of a block mapping in the document's top-level mapping: reads the
    /// block with [`FlowLines`] when every line of it is an entry of one line, and the
    /// text after it with a parser of its own. Otherwise the parser goes on as it was.
    fn read_block_quickly(&mut self, first_key: &Span) {
        let Some((start, line, indent)) = self.place(first_key) else {
            return;
        };
        let Some((lines, rest)) = FlowLines::new(self.text, start, line, indent) else {
            return;
        };
        if self.read_after(&rest) {
            self.lines = Some(lines);
        }
    }

    /// Before `records:`'s mapping: the block read by `records_lines` into the lists when
    /// it is a block of one-line entries that reads, and the text after it with a parser
    /// of its own; `None` (and the parser going on as it was) otherwise.
    fn read_records_quickly(&mut self) -> Result<Option<RecordsRaw>, GiveUp> {
        let span = match self.peek()? {
            (Event::MappingStart(StructureStyle::Block, 0, None), span) => *span,
            _ => return Ok(None),
        };
        // Where `open` would read the block with `FlowLines`, and within its limits.
        let top_level = self.depth == 1 && self.root_column == Some(0) && self.lines.is_none();
        let Some((start, line, indent)) = self.place(&span).filter(|_| top_level) else {
            return Ok(None);
        };
        let (Some(events), true) = (self.events_left.checked_sub(2), self.depth < self.max_depth)
        else {
            return Ok(None);
        };
        let mut budget = records_lines::Budget {
            // The mapping's start and end are the other two.
            events,
            scalar_bytes: self.scalar_bytes_left,
            depth: self.max_depth - (self.depth + 1),
        };
        let mut seen = Seen::default();
        let read = records_lines::read(self.text, start, line, indent, &mut budget, |name| {
            seen.insert(name)
        });
        let Some((raw, rest)) = read else {
            return Ok(None);
        };
        // The parser left behind takes the mapping's start, peeked, with it.
        if !self.read_after(&rest) {
            return Ok(None);
        }
        self.events_left = budget.events;
        self.scalar_bytes_left = budget.scalar_bytes;
        Ok(Some(raw))
    }

    /// Where a block mapping whose first key is at `first_key` starts in the file: its byte,
    /// its line and its column.
    fn place(&self, first_key: &Span) -> Option<(usize, usize, usize)> {
        // The parser's span is in the text it reads, which starts `base` bytes and
        // `line_offset` lines into the file after an earlier such block.
        let start = first_key.start.byte_offset()?;
        Some((
            self.base + start,
            self.line_offset + first_key.start.line(),
            first_key.start.col(),
        ))
    }

    /// Has a parser of its own read the text after a block read otherwise (from `rest`):
    /// false, and the parser going on as it was, if that text is not the rest of the
    /// top-level mapping.
    fn read_after(&mut self, rest: &Rest) -> bool {
        let tail = &self.text[rest.at..];
        let mut after = VecDeque::new();
        let mut parser = Parser::new_from_str_with_options(tail, self.options.clone());
        let blank = tail
            .lines()
            .all(|l| l.trim_start_matches(' ').is_empty() || l.trim_start().starts_with('#'));
        if blank {
            // Nothing follows: the top-level mapping and the document end here.
            let end = granit_parser::Marker::new(self.text.len(), rest.line, 0);
            for event in [Event::MappingEnd, Event::DocumentEnd, Event::StreamEnd] {
                after.push_back((event, Span::new(end, end)));
            }
        } else {
            // The rest is the top-level mapping's other keys, at column 0: the parser
            // reads them as a document of its own, whose start is left out.
            let starts = [parser.next(), parser.next(), parser.next()];
            let fits = matches!(
                starts,
                [
                    Some(Ok((Event::StreamStart, _))),
                    Some(Ok((Event::DocumentStart(false, None), _))),
                    Some(Ok((Event::MappingStart(StructureStyle::Block, 0, None), _))),
                ]
            );
            if !fits {
                return false;
            }
        }
        self.parser = parser;
        self.after = after;
        self.base = rest.at;
        self.line_offset = rest.line - 1;
        self.blocks_read_quickly += 1;
        true
    }

    /// The next event, which must be a scalar without anchor or tag.
    fn scalar(&mut self) -> Result<(Cow<'de, str>, ScalarStyle), GiveUp> {
        match self.next()?.0 {
            Event::Scalar(text, style, 0, None) => {
                self.scalar_bytes_left = self
                    .scalar_bytes_left
                    .checked_sub(text.len())
                    .ok_or(GiveUp)?;
                Ok((text, style))
            }
            _ => Err(GiveUp),
        }
    }

    /// Whether the next event is a plain null (`~`, `null`, or nothing at all).
    fn null_next(&mut self) -> Result<bool, GiveUp> {
        Ok(matches!(
            &self.peek()?.0,
            Event::Scalar(text, ScalarStyle::Plain, 0, None) if is_null(text)
        ))
    }

    /// Whether the next event ends the collection (a mapping, or a sequence), taking it.
    fn closes(&mut self, mapping: bool) -> Result<bool, GiveUp> {
        let end = flow_lines::closes(&self.peek()?.0, mapping);
        if end {
            self.next()?;
        }
        Ok(end)
    }

    /// Opens a collection: its start event, without anchor or tag.
    fn open(&mut self, mapping: bool) -> Result<(), GiveUp> {
        let (event, span) = self.next()?;
        let opened = flow_lines::opens(&event, mapping);
        self.depth += 1;
        if !opened || self.depth > self.max_depth {
            return Err(GiveUp);
        }
        let block = matches!(event, Event::MappingStart(StructureStyle::Block, ..));
        if block && self.depth == 1 {
            self.root_column = Some(span.start.col());
        }
        // A block mapping as the value of a top-level key at column 0 (`records:`).
        if block && self.depth == 2 && self.root_column == Some(0) && self.lines.is_none() {
            self.read_block_quickly(&span);
        }
        Ok(())
    }
}

fn visit_text<'de, V: Visitor<'de>>(text: Cow<'de, str>, visitor: V) -> Result<V::Value, GiveUp> {
    match text {
        Cow::Borrowed(text) => visitor.visit_borrowed_str(text),
        Cow::Owned(text) => visitor.visit_string(text),
    }
}

impl<'de> de::Deserializer<'de> for &mut Reader<'de> {
    type Error = GiveUp;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, GiveUp> {
        match self.peek()?.0 {
            Event::SequenceStart(..) => return self.deserialize_seq(visitor),
            Event::MappingStart(..) => return self.deserialize_map(visitor),
            _ => {}
        }
        let (text, style) = self.scalar()?;
        if style != ScalarStyle::Plain {
            return visit_text(text, visitor);
        }
        match untyped(&text)? {
            Untyped::Null => visitor.visit_unit(),
            Untyped::Bool(b) => visitor.visit_bool(b),
            Untyped::Unsigned(n) => visitor.visit_u64(n),
            Untyped::Signed(n) => visitor.visit_i64(n),
            Untyped::Float(v) => visitor.visit_f64(v),
            Untyped::Text => visit_text(text, visitor),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, GiveUp> {
        visitor.visit_bool(boolean(&self.scalar()?.0).ok_or(GiveUp)?)
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, GiveUp> {
        let n = decimal(trim(&self.scalar()?.0), false)?.ok_or(GiveUp)?;
        visitor.visit_u64(u64::try_from(n).map_err(|_| GiveUp)?)
    }

    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, GiveUp> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, GiveUp> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, GiveUp> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, GiveUp> {
        let (text, _) = self.scalar()?;
        let t = trim(&text);
        let n = match t.strip_prefix('-') {
            Some(digits) => decimal(digits, true)?
                .filter(|&n| n <= 1 << 63)
                .map(|n| (-(n as i128)) as i64),
            None => decimal(t, false)?.and_then(|n| i64::try_from(n).ok()),
        };
        visitor.visit_i64(n.ok_or(GiveUp)?)
    }

    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, GiveUp> {
        self.deserialize_i64(visitor)
    }

    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, GiveUp> {
        self.deserialize_i64(visitor)
    }

    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, GiveUp> {
        self.deserialize_i64(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, GiveUp> {
        visitor.visit_f64(float(&self.scalar()?.0)?)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, GiveUp> {
        if self.null_next()? {
            return Err(GiveUp);
        }
        visit_text(self.scalar()?.0, visitor)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, GiveUp> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, GiveUp> {
        if self.null_next()? {
            self.next()?;
            return visitor.visit_none();
        }
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, GiveUp> {
        if name == records_yaml::RECORDS_NEWTYPE {
            return match self.read_records_quickly()? {
                Some(raw) => records_yaml::give(raw, visitor),
                None => visitor.visit_newtype_struct(self),
            };
        }
        if name != super::yaml::SPANNED_NEWTYPE {
            return visitor.visit_newtype_struct(self);
        }
        let at = self.position()?;
        visitor.visit_newtype_struct(SpannedValue { reader: self, at })
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, GiveUp> {
        self.open(false)?;
        let mut items = Items {
            reader: &mut *self,
            ended: false,
        };
        let value = visitor.visit_seq(&mut items)?;
        if !items.ended {
            return Err(GiveUp);
        }
        self.depth -= 1;
        Ok(value)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, GiveUp> {
        self.entries(visitor, Some(Seen::default()))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, GiveUp> {
        // serde's derive rejects a field given twice itself.
        self.entries(visitor, None)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, GiveUp> {
        match self.scalar()? {
            (text, ScalarStyle::Plain) => visitor.visit_enum(text.into_deserializer()),
            _ => Err(GiveUp),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, GiveUp> {
        Err(GiveUp)
    }

    serde::forward_to_deserialize_any! {
        i128 u128 f32 char bytes byte_buf unit_struct tuple tuple_struct identifier ignored_any
    }
}

impl<'de> Reader<'de> {
    /// A mapping's entries; `seen` keeps its keys to refuse one given twice, for maps read
    /// by visitors that would otherwise keep the last.
    fn entries<V: Visitor<'de>>(
        &mut self,
        visitor: V,
        seen: Option<Seen>,
    ) -> Result<V::Value, GiveUp> {
        self.open(true)?;
        let mut entries = Entries {
            reader: &mut *self,
            seen,
            ended: false,
        };
        let value = visitor.visit_map(&mut entries)?;
        if !entries.ended {
            return Err(GiveUp);
        }
        self.depth -= 1;
        Ok(value)
    }
}

struct Items<'a, 'de> {
    reader: &'a mut Reader<'de>,
    ended: bool,
}

impl<'de> SeqAccess<'de> for &mut Items<'_, 'de> {
    type Error = GiveUp;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, GiveUp> {
        if self.reader.closes(false)? {
            self.ended = true;
            return Ok(None);
        }
        seed.deserialize(&mut *self.reader).map(Some)
    }
}

/// The keys of one mapping so far, as hashes: a list while it is short, a set beyond. Two
/// keys of the same hash count as the same key, which only leaves the file to serde-saphyr
/// (which tells them apart). A set of the keys themselves, hashed with SipHash, made the
/// keys of a million records a tenth of reading them.
#[derive(Default)]
struct Seen {
    hasher: foldhash::fast::RandomState,
    few: Vec<u64>,
    many: HashSet<u64, foldhash::fast::FixedState>,
}

impl Seen {
    /// False if `key` (or a key of the same hash) was seen before.
    fn insert(&mut self, key: &str) -> bool {
        let hash = self.hasher.hash_one(key);
        if self.many.is_empty() {
            if self.few.contains(&hash) {
                return false;
            }
            self.few.push(hash);
            if self.few.len() > 16 {
                self.many.extend(self.few.drain(..));
            }
            return true;
        }
        self.many.insert(hash)
    }
}

struct Entries<'a, 'de> {
    reader: &'a mut Reader<'de>,
    seen: Option<Seen>,
    ended: bool,
}

impl<'de> MapAccess<'de> for &mut Entries<'_, 'de> {
    type Error = GiveUp;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, GiveUp> {
        if self.reader.closes(true)? {
            self.ended = true;
            return Ok(None);
        }
        let (key, style) = self.reader.scalar()?;
        // A null key, and `<<` (a merge key to serde-saphyr), are left to serde-saphyr.
        if style == ScalarStyle::Plain && (is_null(&key) || key == "<<") {
            return Err(GiveUp);
        }
        if let Some(seen) = &mut self.seen
            && !seen.insert(&key)
        {
            return Err(GiveUp);
        }
        match key {
            Cow::Borrowed(key) => seed.deserialize(BorrowedStrDeserializer::new(key)),
            Cow::Owned(key) => seed.deserialize(key.into_deserializer()),
        }
        .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, GiveUp> {
        seed.deserialize(&mut *self.reader)
    }
}

/// Where a value starts, as serde-saphyr's `Location` records it: line from 1, column
/// from 1. (Its span is left out: Meridian keeps only the line and the column.)
#[derive(Clone, Copy)]
struct Position {
    line: u32,
    column: u32,
}

impl Position {
    /// `offset` lines are before the text the span is in.
    fn of(span: &Span, offset: usize) -> Result<Position, GiveUp> {
        let number = |n: usize| u32::try_from(n).map_err(|_| GiveUp);
        Ok(Position {
            line: number(span.start.line() + offset)?,
            column: number(span.start.col() + 1)?,
        })
    }
}

/// A value with its place, as `yaml::Spanned` reads it from this reader: a tuple of line,
/// column and value.
struct SpannedValue<'a, 'de> {
    reader: &'a mut Reader<'de>,
    at: Position,
}

impl<'de> de::Deserializer<'de> for SpannedValue<'_, 'de> {
    type Error = GiveUp;

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, GiveUp> {
        if len != 3 {
            return Err(GiveUp);
        }
        visitor.visit_seq(SpannedParts {
            reader: self.reader,
            at: self.at,
            next: 0,
        })
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, GiveUp> {
        Err(GiveUp)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple_struct map struct enum identifier
        ignored_any
    }
}

struct SpannedParts<'a, 'de> {
    reader: &'a mut Reader<'de>,
    at: Position,
    next: u8,
}

impl<'de> SeqAccess<'de> for SpannedParts<'_, 'de> {
    type Error = GiveUp;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, GiveUp> {
        self.next += 1;
        match self.next {
            1 => seed.deserialize(self.at.line.into_deserializer()).map(Some),
            2 => seed
                .deserialize(self.at.column.into_deserializer())
                .map(Some),
            3 => seed.deserialize(&mut *self.reader).map(Some),
            _ => Ok(None),
        }
    }
}
