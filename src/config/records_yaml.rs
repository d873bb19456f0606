//! A zone's `records:` as written, read into a few flat lists.
//!
//! Every other part of a zone file is read into a tree of serde's usual shapes. `records:`
//! is where a large zone is large: a million owners read as a map of lists of strings held
//! some 480 bytes each, in seven allocations, while the file was read. Here every owner,
//! record set and value is an entry in one of three lists, and every text is in one string,
//! so that reading allocates nothing per owner and frees the lot at once.

use std::fmt;

use hickory_proto::rr::RecordType;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::yaml::{Location, Spanned, SpannedSeed};

/// Every owner's record sets under `records:`, in the order written.
#[derive(Debug, Default)]
pub(super) struct RecordsRaw {
    /// Every owner's name and every value, back to back.
    text: String,
    owners: Vec<OwnerRaw>,
    sets: Vec<SetRaw>,
    values: Vec<ValueRaw>,
}

/// A range of one of [`RecordsRaw`]'s lists (or of its text).
#[derive(Clone, Copy, Debug)]
pub(super) struct Range {
    start: u32,
    end: u32,
}

impl Range {
    fn get<'a, T>(&self, list: &'a [T]) -> &'a [T] {
        &list[self.start as usize..self.end as usize]
    }

    fn text<'a>(&self, text: &'a str) -> &'a str {
        &text[self.start as usize..self.end as usize]
    }
}

#[derive(Debug)]
struct OwnerRaw {
    name: Range,
    at: Location,
    ttl: Option<Spanned<u32>>,
    sets: Range,
}

#[derive(Debug)]
struct SetRaw {
    rtype: RecordType,
    at: Location,
    values: Range,
}

#[derive(Debug)]
struct ValueRaw {
    /// Unknown for a lone scalar (`A: 192.0.2.1`): it takes its set's.
    at: Location,
    text: Range,
}

/// The record types `records:` takes by name; any other type is `TYPE<number>` (RFC 3597).
/// An owner's sets are kept in this order.
pub(super) const RECORD_TYPES: [(&str, RecordType); 17] = [
    ("A", RecordType::A),
    ("AAAA", RecordType::AAAA),
    ("CNAME", RecordType::CNAME),
    ("NS", RecordType::NS),
    ("MX", RecordType::MX),
    ("TXT", RecordType::TXT),
    ("SRV", RecordType::SRV),
    ("CAA", RecordType::CAA),
    ("PTR", RecordType::PTR),
    ("TLSA", RecordType::TLSA),
    ("SSHFP", RecordType::SSHFP),
    ("NAPTR", RecordType::NAPTR),
    ("SVCB", RecordType::SVCB),
    ("HTTPS", RecordType::HTTPS),
    ("LOC", super::rdata::LOC),
    ("URI", super::rdata::URI),
    ("DS", RecordType::DS),
];

/// The type a `records:` key names: one of [`RECORD_TYPES`], or `TYPE<number>`.
pub(super) fn record_type(key: &str) -> Option<RecordType> {
    if let Some(&(_, rtype)) = RECORD_TYPES.iter().find(|(n, _)| *n == key) {
        return Some(rtype);
    }
    let code: u16 = key.strip_prefix("TYPE")?.parse().ok()?;
    Some(RecordType::from(code))
}

/// What the keys of an owner's mapping may be, for the error that names them.
const FIELDS: &[&str] = &[
    "ttl",
    "A",
    "AAAA",
    "CNAME",
    "NS",
    "MX",
    "TXT",
    "SRV",
    "CAA",
    "PTR",
    "TLSA",
    "SSHFP",
    "NAPTR",
    "SVCB",
    "HTTPS",
    "LOC",
    "URI",
    "DS",
    "TYPE<number>",
];

impl RecordsRaw {
    /// How many owners.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.owners.len()
    }

    /// How many record sets, over all owners.
    pub(super) fn sets(&self) -> usize {
        self.sets.len()
    }

    pub(super) fn owners(&self) -> impl Iterator<Item = Owner<'_>> {
        self.owners.iter().map(|owner| Owner { raw: self, owner })
    }
}

/// One owner, as written.
#[derive(Clone, Copy)]
pub(super) struct Owner<'a> {
    raw: &'a RecordsRaw,
    owner: &'a OwnerRaw,
}

impl<'a> Owner<'a> {
    /// The key as written (relative, absolute or `@`).
    pub(super) fn name(&self) -> &'a str {
        self.owner.name.text(&self.raw.text)
    }

    pub(super) fn at(&self) -> Location {
        self.owner.at
    }

    pub(super) fn ttl(&self) -> Option<&'a Spanned<u32>> {
        self.owner.ttl.as_ref()
    }

    /// Its record sets, in [`RECORD_TYPES`] order.
    pub(super) fn sets(&self) -> impl Iterator<Item = Set<'a>> + use<'a> {
        let raw = self.raw;
        self.owner
            .sets
            .get(&raw.sets)
            .iter()
            .map(move |set| Set { raw, set })
    }

    pub(super) fn types(&self) -> impl Iterator<Item = RecordType> + use<'a> {
        self.sets().map(|s| s.rtype())
    }
}

/// One record set, as written.
#[derive(Clone, Copy)]
pub(super) struct Set<'a> {
    raw: &'a RecordsRaw,
    set: &'a SetRaw,
}

impl<'a> Set<'a> {
    pub(super) fn rtype(&self) -> RecordType {
        self.set.rtype
    }

    pub(super) fn at(&self) -> Location {
        self.set.at
    }

    /// How many values.
    pub(super) fn len(&self) -> usize {
        self.set.values.get(&self.raw.values).len()
    }

    /// The values with their positions (a lone scalar takes the set's).
    pub(super) fn items(&self) -> impl Iterator<Item = (Location, &'a str)> + use<'a> {
        let (raw, set_at) = (self.raw, self.set.at);
        self.set.values.get(&raw.values).iter().map(move |v| {
            let at = if v.at.line() == 0 { set_at } else { v.at };
            (at, v.text.text(&raw.text))
        })
    }
}

/// Building the lists, as the visitors below do and as the quick reader's own reader of
/// one-line entries (`records_lines`) does.
impl RecordsRaw {
    /// `v` (an owner's name, or a value of a list), appended to the text.
    pub(super) fn text<E: de::Error>(&mut self, v: &str) -> Result<Range, E> {
        append(&mut self.text, v)
    }

    /// Room for `lines` owners of a typical two sets and three values, and `bytes` of
    /// text: growing the lists by doubling copied them and touched twice their pages.
    /// Room beyond what is used is never touched, so costs no memory.
    pub(super) fn reserve(&mut self, lines: usize, bytes: usize) {
        self.owners.reserve(lines);
        self.sets.reserve(lines.saturating_mul(2));
        self.values.reserve(lines.saturating_mul(3));
        self.text.reserve(bytes);
    }

    /// A value of a list, at its place.
    pub(super) fn push_value(&mut self, at: Location, text: Range) {
        self.values.push(ValueRaw { at, text });
    }

    /// A lone scalar (`A: 192.0.2.1`): one value, without a place of its own (it takes its
    /// set's).
    pub(super) fn lone_value<E: de::Error>(&mut self, v: &str) -> Result<(), E> {
        let text = append(&mut self.text, v)?;
        self.push_value(Location::UNKNOWN, text);
        Ok(())
    }

    /// How many values so far: where the next set's begin.
    pub(super) fn values_len(&self) -> usize {
        self.values.len()
    }

    /// How many sets so far: where the next owner's begin.
    pub(super) fn sets_len(&self) -> usize {
        self.sets.len()
    }

    /// Refuses a set of `rtype` for the owner whose sets begin at `first` if it has one
    /// (under another spelling, such as `TYPE1` for `A`).
    pub(super) fn new_set<E: de::Error>(&self, first: usize, rtype: RecordType) -> Result<(), E> {
        if self.sets[first..].iter().any(|s| s.rtype == rtype) {
            let key = RECORD_TYPES.iter().find(|(_, t)| *t == rtype).map_or_else(
                || format!("TYPE{}", u16::from(rtype)),
                |(n, _)| n.to_string(),
            );
            return Err(de::Error::custom(format_args!(
                "duplicate field `{key}` (type {rtype} is given twice)"
            )));
        }
        Ok(())
    }

    /// A set of `rtype`, at `at`, of the values from `values` on.
    pub(super) fn push_set<E: de::Error>(
        &mut self,
        rtype: RecordType,
        at: Location,
        values: usize,
    ) -> Result<(), E> {
        let values = Range {
            start: index(values)?,
            end: index(self.values.len())?,
        };
        self.sets.push(SetRaw { rtype, at, values });
        Ok(())
    }

    /// An owner, of the sets from `sets` on (kept in [`RECORD_TYPES`] order).
    pub(super) fn push_owner<E: de::Error>(
        &mut self,
        name: Range,
        at: Location,
        ttl: Option<Spanned<u32>>,
        sets: usize,
    ) -> Result<(), E> {
        self.sets[sets..].sort_by_key(|s| RECORD_TYPES.iter().position(|(_, r)| *r == s.rtype));
        let sets = Range {
            start: index(sets)?,
            end: index(self.sets.len())?,
        };
        self.owners.push(OwnerRaw {
            name,
            at,
            ttl,
            sets,
        });
        Ok(())
    }
}

/// The name the quick reader knows `records:` by, to read a block of one-line entries with
/// its own reader and [`give`] the result.
pub(super) const RECORDS_NEWTYPE: &str = "meridian_records";

thread_local! {
    /// A block read by the quick reader's own reader, from [`give`] to the visitor.
    static READ_AHEAD: std::cell::Cell<Option<RecordsRaw>> = const { std::cell::Cell::new(None) };
}

/// Gives `raw` to the visitor of `records:` (serde has no way to hand a visitor a value of
/// its own type: it goes through a thread-local, for the visitor's `visit_unit` to take).
pub(super) fn give<'de, V: Visitor<'de>, E: de::Error>(
    raw: RecordsRaw,
    visitor: V,
) -> Result<V::Value, E> {
    READ_AHEAD.set(Some(raw));
    let value = visitor.visit_unit();
    // Not left for another visitor, whatever this one did.
    READ_AHEAD.take();
    value
}

/// An index into the lists, which a file of more than 4 GiB of records would overflow.
fn index<E: de::Error>(at: usize) -> Result<u32, E> {
    u32::try_from(at).map_err(|_| E::custom("records: too large (more than 4 GiB)"))
}

impl<'de> serde::Deserialize<'de> for RecordsRaw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RecordsRaw;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of owner names to their records")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RecordsRaw, A::Error> {
                let mut out = RecordsRaw::default();
                while let Some(name) = map.next_key_seed(Key(&mut out.text))? {
                    let sets = out.sets.len();
                    let owner = map.next_value_seed(SpannedSeed(OwnerSeed(&mut out)))?;
                    out.push_owner(name, owner.referenced, owner.value, sets)?;
                }
                Ok(out)
            }
            fn visit_newtype_struct<D: Deserializer<'de>>(
                self,
                d: D,
            ) -> Result<RecordsRaw, D::Error> {
                d.deserialize_map(self)
            }
            /// The quick reader's: the block it read itself, which [`give`] left here.
            fn visit_unit<E: de::Error>(self) -> Result<RecordsRaw, E> {
                READ_AHEAD
                    .take()
                    .ok_or_else(|| E::invalid_type(de::Unexpected::Unit, &self))
            }
        }
        d.deserialize_newtype_struct(RECORDS_NEWTYPE, V)
    }
}

/// An owner's name, appended to the text (read as a `String` key was).
struct Key<'a>(&'a mut String);

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = Range;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Range, D::Error> {
        d.deserialize_string(self)
    }
}

impl Visitor<'_> for Key<'_> {
    type Value = Range;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Range, E> {
        append(self.0, v)
    }
}

/// An owner's mapping: its sets are appended to the lists; its `ttl` is returned.
struct OwnerSeed<'a>(&'a mut RecordsRaw);

impl<'de> DeserializeSeed<'de> for OwnerSeed<'_> {
    type Value = Option<Spanned<u32>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

/// A key of an owner's mapping, read without allocating.
enum SetKey {
    Ttl,
    Type(RecordType),
    Unknown(String),
}

impl<'de> serde::Deserialize<'de> for SetKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SetKey, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = SetKey;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<SetKey, E> {
                Ok(match key {
                    "ttl" => SetKey::Ttl,
                    _ => record_type(key).map_or_else(|| SetKey::Unknown(key.into()), SetKey::Type),
                })
            }
        }
        d.deserialize_string(V)
    }
}

impl<'de> Visitor<'de> for OwnerSeed<'_> {
    type Value = Option<Spanned<u32>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map of record types to values")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let out = self.0;
        let first = out.sets.len();
        let mut ttl = None;
        while let Some(key) = map.next_key::<SetKey>()? {
            let rtype = match key {
                SetKey::Ttl if ttl.is_some() => return Err(de::Error::duplicate_field("ttl")),
                SetKey::Ttl => {
                    ttl = Some(map.next_value()?);
                    continue;
                }
                SetKey::Unknown(key) => return Err(de::Error::unknown_field(&key, FIELDS)),
                SetKey::Type(rtype) => rtype,
            };
            out.new_set(first, rtype)?;
            let values = out.values.len();
            let at = map
                .next_value_seed(SpannedSeed(Values(&mut *out)))?
                .referenced;
            out.push_set(rtype, at, values)?;
        }
        Ok(ttl)
    }
}

/// A value or a list of values (`A: 192.0.2.1` or `A: [192.0.2.1, 192.0.2.2]`), appended
/// to the lists.
struct Values<'a>(&'a mut RecordsRaw);

impl<'de> DeserializeSeed<'de> for Values<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Values<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a value or a list of values")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(v) = seq.next_element_seed(SpannedSeed(Scalar(&mut self.0.text)))? {
            self.0.push_value(v.referenced, v.value);
        }
        Ok(())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.0.lone_value(v)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.0.lone_value(&v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.0.lone_value(&v.to_string())
    }
}

/// Appends `v` as text; its range.
fn append<E: de::Error>(text: &mut String, v: &str) -> Result<Range, E> {
    let start = index(text.len())?;
    text.push_str(v);
    Ok(Range {
        start,
        end: index(text.len())?,
    })
}

/// A scalar in a list, as text whatever YAML typed it as (`200`, `1.5`, `true`, `abc`),
/// appended to the text.
struct Scalar<'a>(&'a mut String);

impl<'de> DeserializeSeed<'de> for Scalar<'_> {
    type Value = Range;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Range, D::Error> {
        d.deserialize_any(self)
    }
}

impl Visitor<'_> for Scalar<'_> {
    type Value = Range;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a scalar")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Range, E> {
        append(self.0, v)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Range, E> {
        append(self.0, &v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Range, E> {
        append(self.0, &v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Range, E> {
        append(self.0, &v.to_string())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Range, E> {
        append(self.0, &v.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::yaml::{ZoneRaw, parse_yaml};
    use std::path::Path;

    fn read(records: &str) -> Result<ZoneRaw, String> {
        let text = format!("zone: a.test\nns: [ns1]\nrecords:\n{records}");
        parse_yaml::<ZoneRaw>(Path::new("z.yaml"), &text).map_err(|e| e.to_string())
    }

    /// Owners in the order written, sets in `RECORD_TYPES` order, values with their places
    /// (a lone scalar takes its set's).
    #[test]
    fn records_keep_their_order_and_places() {
        let raw = read(
            "  www: { AAAA: \"2001:db8::1\", A: [192.0.2.1, 192.0.2.2], ttl: 60 }\n  \
             api:\n    TYPE1: 192.0.2.3\n",
        )
        .unwrap();
        let owners: Vec<Owner> = raw.records.owners().collect();
        assert_eq!(
            owners.iter().map(|o| o.name()).collect::<Vec<_>>(),
            ["www", "api"]
        );
        assert_eq!(owners[0].ttl().map(|t| t.value), Some(60));
        assert_eq!(owners[1].ttl().map(|t| t.value), None);
        let www: Vec<Set> = owners[0].sets().collect();
        assert_eq!(
            www.iter().map(|s| s.rtype()).collect::<Vec<_>>(),
            [RecordType::A, RecordType::AAAA]
        );
        let a: Vec<_> = www[0]
            .items()
            .map(|(at, v)| (at.line(), at.column(), v))
            .collect();
        assert_eq!(a, [(4, 35, "192.0.2.1"), (4, 46, "192.0.2.2")]);
        // The lone AAAA and the lone TYPE1 value take their set's place.
        let aaaa: Vec<_> = www[1]
            .items()
            .map(|(at, v)| (at.line(), at.column(), v))
            .collect();
        assert_eq!(aaaa, [(4, 16, "2001:db8::1")]);
        let api: Vec<_> = owners[1]
            .sets()
            .flat_map(|s| s.items().collect::<Vec<_>>())
            .collect();
        assert_eq!(api.len(), 1);
        assert_eq!(
            (api[0].0.line(), api[0].0.column(), api[0].1),
            (6, 12, "192.0.2.3")
        );
        assert_eq!(raw.records.sets(), 3);
    }

    /// A type given twice (under two spellings), an unknown type and a second `ttl` are
    /// errors that name them.
    #[test]
    fn a_type_given_twice_or_unknown_is_an_error() {
        let twice = read("  www: { A: 192.0.2.1, TYPE1: 192.0.2.2 }\n").unwrap_err();
        assert!(twice.contains("type A is given twice"), "{twice}");
        let unknown = read("  www: { AA: 192.0.2.1 }\n").unwrap_err();
        assert!(unknown.contains("unknown field `AA`"), "{unknown}");
        let ttl = read("  www: { ttl: 1, A: 192.0.2.1, ttl: 2 }\n").unwrap_err();
        assert!(ttl.contains("ttl"), "{ttl}");
    }
}
