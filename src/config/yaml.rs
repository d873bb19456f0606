//! The YAML shapes users write, read by serde with the position of every value kept
//! (`Spanned`), and the parse that turns serde's errors into positioned ones.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::error::ConfigError;
use super::records_yaml::RecordsRaw;
use crate::model::{Policy, Quorum, WhenAllDown};

/// Where a value was written: line and column from 1, both 0 when unknown.
///
/// serde-saphyr's `Location` also keeps the value's span and source (28 bytes), and its
/// `Spanned` keeps two of them (where a value is used and where it is defined, which differ
/// only through aliases): a zone of a million records held some 300 MB of positions while
/// it was read. The errors and warnings need the line and the column, nothing more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Location {
    line: u32,
    column: u32,
}

impl Location {
    pub(super) const UNKNOWN: Location = Location { line: 0, column: 0 };

    /// Line and column, from 1.
    pub(super) fn at(line: u32, column: u32) -> Location {
        Location { line, column }
    }

    pub(super) fn line(&self) -> u64 {
        self.line.into()
    }

    pub(super) fn column(&self) -> u64 {
        self.column.into()
    }
}

impl From<serde_saphyr::Location> for Location {
    fn from(at: serde_saphyr::Location) -> Location {
        Location {
            line: at.line().try_into().unwrap_or(u32::MAX),
            column: at.column().try_into().unwrap_or(u32::MAX),
        }
    }
}

/// A value and where it was written (where an alias uses it, for a value reached through
/// one, as serde-saphyr's `referenced`).
#[derive(Clone, Debug)]
pub(super) struct Spanned<T> {
    pub(super) value: T,
    pub(super) referenced: Location,
}

/// How a value comes with its place. serde-saphyr's private protocol (what its own
/// `Spanned` reads, pinned by the crate's exact version in Cargo.toml): a newtype of this
/// name, read as a map of a marker, the value, and where it is referenced and defined.
/// The quick reader answers the same newtype with a tuple of line, column and value instead:
/// the map costs an allocated key and two `Location`s through serde for every value, a
/// tenth of the quick reader's time.
pub(super) const SPANNED_NEWTYPE: &str = "__yaml_spanned";
const SPANNED_MARKER: &str = "__serde_saphyr_private_spanned";

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Spanned<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        SpannedSeed(std::marker::PhantomData::<T>).deserialize(d)
    }
}

/// [`Spanned`] for a value read through a seed (one that appends to lists it is given).
pub(super) struct SpannedSeed<S>(pub(super) S);

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for SpannedSeed<S> {
    type Value = Spanned<S::Value>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_newtype_struct(SPANNED_NEWTYPE, Newtype(self.0))
    }
}

struct Newtype<S>(S);

impl<'de, S: DeserializeSeed<'de>> Visitor<'de> for Newtype<S> {
    type Value = Spanned<S::Value>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a value with its place")
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        // serde-saphyr turns the tuple into its map; the quick reader gives the tuple.
        d.deserialize_tuple(3, Parts(self.0))
    }
}

struct Parts<S>(S);

impl<'de, S: DeserializeSeed<'de>> Visitor<'de> for Parts<S> {
    type Value = Spanned<S::Value>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a value with its place")
    }

    /// The quick reader's: line, column, value.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let missing = || de::Error::custom("a value without its place");
        let line = seq.next_element::<u32>()?.ok_or_else(missing)?;
        let column = seq.next_element::<u32>()?.ok_or_else(missing)?;
        let value = seq.next_element_seed(self.0)?.ok_or_else(missing)?;
        Ok(Spanned {
            value,
            referenced: Location { line, column },
        })
    }

    /// serde-saphyr's.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let missing = || de::Error::custom("a value without its place");
        if map.next_key::<Part>()? != Some(Part::Marker) {
            return Err(missing());
        }
        map.next_value::<de::IgnoredAny>()?;
        let mut seed = Some(self.0);
        let mut value = None;
        let mut referenced = None;
        while let Some(part) = map.next_key::<Part>()? {
            match part {
                Part::Value => {
                    let seed = seed.take().ok_or_else(missing)?;
                    value = Some(map.next_value_seed(seed)?);
                }
                Part::Referenced => referenced = Some(map.next_value::<serde_saphyr::Location>()?),
                Part::Marker | Part::Other => {
                    map.next_value::<serde_saphyr::Location>()?;
                }
            }
        }
        Ok(Spanned {
            value: value.ok_or_else(missing)?,
            referenced: referenced.ok_or_else(missing)?.into(),
        })
    }
}

/// A key of serde-saphyr's map.
#[derive(PartialEq)]
enum Part {
    Marker,
    Value,
    Referenced,
    Other,
}

impl<'de> Deserialize<'de> for Part {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Part, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Part;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a part of a value with its place")
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<Part, E> {
                Ok(match key {
                    SPANNED_MARKER => Part::Marker,
                    "value" => Part::Value,
                    "referenced" => Part::Referenced,
                    _ => Part::Other,
                })
            }
        }
        d.deserialize_identifier(V)
    }
}

/// A scalar read as text whatever YAML typed it as (`200`, `1.5`, `true`, `abc`).
#[derive(Clone, Debug)]
pub(super) struct Text(pub(super) String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a scalar")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.to_owned()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A scalar or a list of scalars (`A: 192.0.2.1` or `A: [192.0.2.1, 192.0.2.2]`).
#[derive(Clone, Debug, Default)]
pub(super) struct TextList(pub(super) Vec<Spanned<Text>>);

impl<'de> Deserialize<'de> for TextList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TextList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a value or a list of values")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TextList, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = seq.next_element::<Spanned<Text>>()? {
                    out.push(v);
                }
                // Many lists are read at once while a zone loads: no room to grow.
                out.shrink_to_fit();
                Ok(TextList(out))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TextList, E> {
                Ok(TextList(vec![unplaced(Text(v.to_owned()))]))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<TextList, E> {
                Ok(TextList(vec![unplaced(Text(v.to_string()))]))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<TextList, E> {
                Ok(TextList(vec![unplaced(Text(v.to_string()))]))
            }
        }
        d.deserialize_any(V)
    }
}

/// A single scalar has no span of its own; `items` gives it the enclosing field's.
pub(super) fn unplaced<T>(value: T) -> Spanned<T> {
    Spanned {
        value,
        referenced: Location::UNKNOWN,
    }
}

/// The entries with their positions (a lone scalar takes the field's position).
pub(super) fn items(list: &Spanned<TextList>) -> impl Iterator<Item = (Location, &str)> {
    list.value.0.iter().map(|t| {
        let loc = if t.referenced.line() == 0 {
            list.referenced
        } else {
            t.referenced
        };
        (loc, t.value.0.as_str())
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct ServerRaw {
    pub(super) listen: Option<Spanned<TextList>>,
    pub(super) zones: Option<Spanned<String>>,
    pub(super) geoip: Option<Spanned<String>>,
    pub(super) ecs: Option<bool>,
    pub(super) edns_udp_size: Option<Spanned<u16>>,
    pub(super) admin: Option<Spanned<AdminRaw>>,
    pub(super) forward: Option<Spanned<ForwardRaw>>,
    pub(super) query_log: Option<bool>,
    pub(super) watch: Option<bool>,
    pub(super) tcp: Option<Spanned<TcpRaw>>,
    pub(super) rate_limit: Option<Spanned<RateLimitRaw>>,
    pub(super) cookies: Option<Spanned<CookiesRaw>>,
    pub(super) access: Option<Spanned<AccessRaw>>,
    pub(super) user: Option<Spanned<String>>,
    pub(super) group: Option<Spanned<String>>,
    pub(super) log_format: Option<Spanned<String>>,
    pub(super) state_file: Option<Spanned<String>>,
    pub(super) signature_cache: Option<Spanned<usize>>,
    pub(super) identity: Option<Spanned<IdentityRaw>>,
    pub(super) cluster: Option<Spanned<ClusterRaw>>,
    pub(super) xdp: Option<Spanned<XdpRaw>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct XdpRaw {
    pub(super) interface: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct ClusterRaw {
    pub(super) listen: Spanned<String>,
    pub(super) peers: Spanned<TextList>,
    pub(super) key: Option<Spanned<String>>,
    pub(super) key_file: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct IdentityRaw {
    pub(super) nsid: Option<Spanned<String>>,
    pub(super) version: Option<Spanned<String>>,
    pub(super) hostname: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct CookiesRaw {
    pub(super) enabled: Option<bool>,
    pub(super) secret: Option<Spanned<String>>,
    pub(super) secret_lifetime: Option<Spanned<String>>,
    pub(super) nocookie_udp_size: Option<Spanned<u16>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RateLimitRaw {
    pub(super) responses_per_second: Option<Spanned<u32>>,
    pub(super) burst: Option<Spanned<u32>>,
    pub(super) slip: Option<Spanned<u32>>,
    pub(super) ipv4_prefix: Option<Spanned<u8>>,
    pub(super) ipv6_prefix: Option<Spanned<u8>>,
    pub(super) exempt: Option<Spanned<TextList>>,
    pub(super) table_size: Option<Spanned<usize>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct TcpRaw {
    pub(super) max_connections: Option<Spanned<usize>>,
    pub(super) max_connections_per_client: Option<Spanned<usize>>,
    pub(super) idle_timeout: Option<Spanned<String>>,
    pub(super) io_timeout: Option<Spanned<String>>,
    pub(super) max_queries_per_connection: Option<Spanned<usize>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct AdminRaw {
    pub(super) listen: Option<Spanned<String>>,
    pub(super) token: Option<Spanned<String>>,
    pub(super) token_file: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct ForwardRaw {
    pub(super) upstreams: Spanned<TextList>,
    pub(super) timeout: Option<Spanned<String>>,
    pub(super) allow: Spanned<TextList>,
    pub(super) cache_size: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct ZoneRaw {
    pub(super) zone: Spanned<String>,
    pub(super) ttl: Option<Spanned<u32>>,
    pub(super) soa: Option<Spanned<SoaRaw>>,
    pub(super) ns: Spanned<TextList>,
    #[serde(default)]
    pub(super) records: RecordsRaw,
    #[serde(default)]
    pub(super) sites: BTreeMap<String, Spanned<SiteRaw>>,
    #[serde(default)]
    pub(super) fqdns: BTreeMap<String, Spanned<FqdnRaw>>,
    pub(super) access: Option<Spanned<AccessRaw>>,
    pub(super) dnssec: Option<Spanned<DnssecRaw>>,
    pub(super) records_file: Option<Spanned<String>>,
    pub(super) transfer: Option<Spanned<TransferRaw>>,
    pub(super) transfer_view: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct TransferRaw {
    pub(super) allow: Option<Spanned<TextList>>,
    pub(super) notify: Option<Spanned<TextList>>,
    pub(super) tsig: Option<Spanned<TsigRaw>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct TsigRaw {
    pub(super) name: Spanned<String>,
    pub(super) algorithm: Option<Spanned<String>>,
    pub(super) secret: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct DnssecRaw {
    pub(super) algorithm: Option<Spanned<String>>,
    pub(super) key: Option<Spanned<String>>,
    pub(super) publish: Option<Spanned<TextList>>,
    pub(super) dnskey_ttl: Option<Spanned<u32>>,
    pub(super) signature_validity: Option<Spanned<String>>,
    pub(super) signature_refresh: Option<Spanned<String>>,
    pub(super) inception_offset: Option<Spanned<String>>,
    pub(super) cds: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct AccessRaw {
    pub(super) allow: Option<Spanned<TextList>>,
    pub(super) deny: Option<Spanned<TextList>>,
    pub(super) action: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct SoaRaw {
    pub(super) mname: Option<Spanned<String>>,
    pub(super) rname: Option<Spanned<String>>,
    pub(super) serial: Option<u32>,
    pub(super) refresh: Option<i32>,
    pub(super) retry: Option<i32>,
    pub(super) expire: Option<i32>,
    pub(super) minimum: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct SiteRaw {
    pub(super) lat: Option<Spanned<f64>>,
    pub(super) lon: Option<Spanned<f64>>,
    pub(super) countries: Option<Spanned<TextList>>,
    pub(super) continents: Option<Spanned<TextList>>,
    pub(super) networks: Option<Spanned<TextList>>,
    pub(super) default: Option<bool>,
    pub(super) enabled: Option<bool>,
    /// The site is down only after its checks have failed for this long.
    pub(super) failure_delay: Option<Spanned<String>>,
    pub(super) recovery: Option<Box<Spanned<String>>>,
    pub(super) check: Option<Box<Spanned<CheckRaw>>>,
    pub(super) checks: Option<Vec<Spanned<CheckRaw>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
///
/// The fields most names leave out are boxed: every name of a zone is held in this form
/// while the file is read, and an absent boxed field costs a pointer instead of its value
/// and two positions (about 90 bytes).
pub(super) struct FqdnRaw {
    pub(super) selection: Option<Spanned<Policy>>,
    pub(super) ttl: Option<Spanned<u32>>,
    pub(super) answers: Option<Spanned<u32>>,
    pub(super) when_all_down: Option<WhenAllDown>,
    pub(super) quorum: Option<Quorum>,
    pub(super) failover_within: Option<Box<Spanned<String>>>,
    pub(super) sticky: Option<Box<Spanned<String>>>,
    pub(super) recovery: Option<Box<Spanned<String>>>,
    /// Tiers of roles, tried in order; a tier is a role or a list of roles.
    pub(super) roles: Option<Box<Spanned<Vec<Spanned<TextList>>>>>,
    pub(super) check: Option<Box<Spanned<CheckRaw>>>,
    pub(super) checks: Option<Vec<Spanned<CheckRaw>>>,
    pub(super) members: Spanned<Vec<Spanned<MemberRaw>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
/// Rare fields boxed, as in [`FqdnRaw`].
pub(super) struct MemberRaw {
    pub(super) address: Spanned<String>,
    pub(super) weight: Option<Spanned<i64>>,
    pub(super) site: Option<Box<Spanned<String>>>,
    pub(super) enabled: Option<bool>,
    pub(super) node: Option<Box<Spanned<String>>>,
    pub(super) recovery: Option<Box<Spanned<String>>>,
    pub(super) check: Option<Box<Spanned<CheckRaw>>>,
    pub(super) checks: Option<Vec<Spanned<CheckRaw>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct CheckRaw {
    #[serde(rename = "type")]
    pub(super) kind: Spanned<String>,
    pub(super) address: Option<Spanned<String>>,
    pub(super) port: Option<Spanned<u16>>,
    pub(super) interval: Option<Spanned<String>>,
    pub(super) timeout: Option<Spanned<String>>,
    pub(super) rise: Option<Spanned<u32>>,
    pub(super) fall: Option<Spanned<u32>>,
    pub(super) failure_delay: Option<Spanned<String>>,
    pub(super) method: Option<Spanned<String>>,
    pub(super) path: Option<Spanned<String>>,
    pub(super) host: Option<Spanned<String>>,
    pub(super) expect: Option<Spanned<TextList>>,
    pub(super) body_contains: Option<Spanned<String>>,
    pub(super) tls_verify: Option<Spanned<bool>>,
    pub(super) ca: Option<Spanned<String>>,
    /// `vault` only: plain HTTP rather than HTTPS.
    pub(super) tls: Option<Spanned<bool>>,
    pub(super) client_cert: Option<Spanned<String>>,
    pub(super) client_key: Option<Spanned<String>>,
    pub(super) roles: Option<Spanned<Vec<Spanned<RoleRaw>>>>,
}

/// One rule of an HTTP check's `roles:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RoleRaw {
    pub(super) role: Spanned<String>,
    pub(super) status: Option<Spanned<TextList>>,
    pub(super) body_contains: Option<Spanned<String>>,
    pub(super) json: Option<Spanned<BTreeMap<String, serde_json::Value>>>,
    pub(super) healthy: Option<bool>,
}

/// serde-saphyr's limits for Meridian's files.
pub(super) fn budget() -> serde_saphyr::Budget {
    // serde-saphyr's default budget (250,000 nodes) stops a zone of some 15,000 names; a
    // zone of 100,000 names with 3 members each is about 2.5 million events. Alias
    // expansion keeps its own limits, which are what stop YAML bombs.
    let mut budget = serde_saphyr::Budget::default();
    budget.max_events = 100_000_000;
    budget.max_nodes = 50_000_000;
    budget.max_total_scalar_bytes = 1 << 30;
    budget
}

/// Parses YAML into `T`, turning a serde error into a positioned [`ConfigError`].
///
/// The quick reader (`quick_yaml`) reads the common YAML in half serde-saphyr's time;
/// serde-saphyr reads the rest, and every file with an error, whose message it gives.
pub(super) fn parse_yaml<T: for<'de> Deserialize<'de>>(
    file: &Path,
    text: &str,
) -> Result<T, ConfigError> {
    let budget = budget();
    if let Some(parsed) = super::quick_yaml::read(text, &budget) {
        return Ok(parsed);
    }
    let mut path = String::new();
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    // Tracking the path costs a fifth of the parse: parse without it, and only for a file
    // that fails parse it again to name the field.
    let quick =
        serde_saphyr::with_deserializer_from_str_with_options(text, options.clone(), |de| {
            T::deserialize(de)
        });
    if let Ok(parsed) = quick {
        return Ok(parsed);
    }
    serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
        serde_path_to_error::deserialize::<_, T>(de).map_err(|e| {
            path = e.path().to_string();
            e.into_inner()
        })
    })
    .map_err(|e| {
        let loc = e.location().unwrap_or(serde_saphyr::Location::UNKNOWN);
        let inner = e.without_snippet().to_string();
        // The position is reported separately; drop serde-saphyr's own suffix.
        let message = match inner.rfind(" at line ") {
            Some(i) => inner[..i].to_string(),
            None => inner,
        };
        // `Spanned` shows up as a `.value` path segment; `?` is a key serde could not name.
        let field = path
            .replace(".value", "")
            .trim_end_matches(".?")
            .trim_end_matches('?')
            .to_string();
        let mut field = if field == "." { String::new() } else { field };
        // A map read by hand (record types) does not add the unknown key to the path.
        let unknown = message
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split('`').next());
        if let Some(key) = unknown.filter(|k| !field.ends_with(&format!(".{k}"))) {
            field = if field.is_empty() {
                key.to_string()
            } else {
                format!("{field}.{key}")
            };
        }
        ConfigError {
            file: file.to_path_buf(),
            line: loc.line(),
            column: loc.column(),
            message: super::words::plain(&message, &field, text, loc.line(), loc.column()),
            field,
        }
    })
}

/// Whether the quick reader agrees with serde-saphyr on `text` read as `T`: wherever it
/// gives a value, serde-saphyr gives the same one, with the same positions. `Ok(true)` when
/// the quick reader read it, `Ok(false)` when it left it to serde-saphyr.
pub(super) fn readers_agree<T: for<'de> Deserialize<'de> + fmt::Debug>(
    text: &str,
) -> Result<bool, String> {
    let Some(quick) = super::quick_yaml::read::<T>(text, &budget()) else {
        return Ok(false);
    };
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget());
    match serde_saphyr::from_str_with_options::<T>(text, options) {
        Ok(full) if format!("{quick:?}") == format!("{full:?}") => Ok(true),
        Ok(full) => Err(format!(
            "the readers differ\nquick:        {quick:?}\nserde-saphyr: {full:?}"
        )),
        Err(e) => Err(format!(
            "the quick reader read {quick:?}, serde-saphyr failed: {e}"
        )),
    }
}

/// [`readers_agree`] for a zone file and a server file, for the `zone` fuzz target.
#[doc(hidden)]
pub fn yaml_readers_agree(text: &str) -> Result<(), String> {
    readers_agree::<ZoneRaw>(text)?;
    readers_agree::<ServerRaw>(text)?;
    Ok(())
}

/// A hash of a file's text (SipHash with fixed keys: the same text, the same hash).
/// SipHash with fixed keys rather than std's `DefaultHasher`, whose algorithm may change
/// between Rust releases: a zone's derived SOA serial comes from this hash, and servers
/// built apart must agree on it.
pub(super) fn source_hash(text: &str) -> u64 {
    use std::hash::Hasher;
    let mut h = siphasher::sip::SipHasher13::new_with_keys(0x6d65_7269_6469_616e, 0x736f_7572_6365);
    h.write(text.as_bytes());
    h.finish()
}

/// Largest YAML file read (a zone of a million names in this format is about 150 MiB).
pub(super) const MAX_YAML_BYTES: u64 = 256 << 20;

/// A YAML file's text: a regular file, at most [`MAX_YAML_BYTES`], in UTF-8.
pub(super) fn read_file(path: &Path) -> Result<String, ConfigError> {
    let bytes = crate::model::file::read_regular(path, MAX_YAML_BYTES)
        .map_err(|e| ConfigError::whole_file(path, e))?;
    String::from_utf8(bytes).map_err(|e| {
        ConfigError::whole_file(
            path,
            format!("is not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A zone in most of the shapes the files take: block and flow collections, quoted
    /// and plain scalars, escapes, numbers, YAML 1.1 booleans, floats, nulls, keys that
    /// look like numbers, and text beyond ASCII (spans count characters and bytes apart).
    const ZONE: &str = r#"# a comment
zone: "kemp.local"
ttl: 60
soa: { mname: ns1, rname: 'hostmaster', serial: 7, refresh: -1 }
ns: [ns1, "ns2.kemp.local."]
records:
  ns1: { A: 192.0.2.53 }
  ns2:
    A: [192.0.2.54, 192.0.2.55]
    AAAA: "2001:db8::53"
  1: { PTR: host.kemp.local. }
  2.0.192: { TXT: ["v=spf1 -all", 'it''s', "tab\there", "é ünï"] }
  mail: { ttl: 300, MX: "10 mx.kemp.local.", TYPE65534: '\# 0' }
  txt:
    TXT: >-
      folded
      text
sites:
  ams:
    lat: 52.37
    lon: -4.9
    countries: [NL, BE]
    networks: [10.1.0.0/16]
    default: yes
  fra: { lat: 50, lon: 8.68, continents: EU, enabled: off }
fqdns:
  vault:
    selection: fixed-weight
    quorum: majority
    when-all-down: none
    answers: 2
    failover-within: 10s
    roles: [active, [standby, perf-standby]]
    check:
      type: http
      port: 8200
      path: /v1/sys/health
      expect: [200, 429, 4xx]
      tls-verify: false
      interval: 2s
      rise: 2
      roles:
        - { role: active, status: 200, json: { sealed: false, n: 1.5, m: ~, l: [1, -2] } }
    members:
      - { address: 192.0.2.1, weight: 10, site: ams, node: node1 }
      - address: 192.0.2.2
        weight: -3
        enabled: true
        checks: [{ type: tcp, port: 22 }, { type: icmp }]
      - address: "2001:db8::2"
  ünïcode: { members: [{ address: 192.0.2.9, recovery: ~ }] }
"#;

    #[test]
    fn the_quick_reader_reads_a_zone_as_serde_saphyr_does() {
        assert_eq!(readers_agree::<ZoneRaw>(ZONE), Ok(true));
    }

    #[test]
    fn the_quick_reader_reads_every_file_in_the_repository_as_serde_saphyr_does() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        let mut dirs = vec![root.to_path_buf()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                if path.is_dir() && !name.starts_with('.') && name != "target" {
                    dirs.push(path);
                } else if name.ends_with(".yaml") {
                    files.push(path);
                }
            }
        }
        let mut read = 0;
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap();
            let zone = dir_is(file, "zones") || dir_is(file, "zone");
            let server = file.file_name().unwrap() == "meridian.yaml";
            let agreed = match (zone, server) {
                (true, _) => readers_agree::<ZoneRaw>(&text),
                (_, true) => readers_agree::<ServerRaw>(&text),
                _ => continue,
            };
            let parsed = match (zone, server) {
                (true, _) => parse_yaml::<ZoneRaw>(file, &text).is_ok(),
                _ => parse_yaml::<ServerRaw>(file, &text).is_ok(),
            };
            // Every file serde-saphyr reads is in the quick reader's subset.
            assert_eq!(agreed, Ok(parsed), "{}", file.display());
            read += usize::from(parsed);
        }
        assert!(read >= 30, "only {read} files read");
    }

    fn dir_is(file: &Path, name: &str) -> bool {
        file.parent()
            .and_then(Path::file_name)
            .is_some_and(|d| d.to_string_lossy().contains(name))
    }

    /// YAML outside the subset is left to serde-saphyr, which reads it as before.
    #[test]
    fn the_quick_reader_leaves_the_rest_to_serde_saphyr() {
        let outside = [
            // anchors, aliases and merge keys
            "zone: a.test\nns: [ns1]\nrecords:\n  ns1: &x { A: 192.0.2.1 }\n  ns2: *x\n",
            "zone: a.test\nns: [ns1]\nrecords:\n  ns1: { A: 192.0.2.1 }\n  ns2: { <<: {A: 192.0.2.2} }\n",
            // tags, and integer spellings it does not read
            "zone: a.test\nns: [ns1]\nttl: !!int 60\n",
            "zone: a.test\nns: [ns1]\nttl: 0x3c\n",
            "zone: a.test\nns: [ns1]\nttl: +60\n",
            "zone: a.test\nns: [ns1]\nttl: 6_0\n",
            // floats that are not finite
            "zone: a.test\nns: [ns1]\nsites: { x: { lat: .inf } }\n",
            // a directive, and a second document
            "%YAML 1.2\n---\nzone: a.test\nns: [ns1]\n",
            "zone: a.test\nns: [ns1]\n---\nzone: b.test\nns: [ns1]\n",
        ];
        for text in outside {
            assert_eq!(readers_agree::<ZoneRaw>(text), Ok(false), "{text}");
        }
        // serde-saphyr still reads the anchored zone, and the quick reader's refusal to
        // guess does not change what the file means.
        let raw: ZoneRaw = parse_yaml(Path::new("z.yaml"), outside[0]).unwrap();
        assert_eq!(raw.records.len(), 2);
        let raw: ZoneRaw = parse_yaml(Path::new("z.yaml"), outside[3]).unwrap();
        assert_eq!(raw.ttl.map(|t| t.value), Some(60));
    }

    /// Errors are serde-saphyr's, at their place, whichever reader starts.
    #[test]
    fn files_with_errors_get_serde_saphyrs_positioned_error() {
        let cases = [
            (
                "zone: a.test\nns: [ns1]\nrecords:\n  x: { A: 1 }\n  x: { A: 2 }\n",
                5,
            ),
            ("zone: a.test\nns: [ns1]\nttl: -5\n", 3),
            (
                "zone: a.test\nns: [ns1]\nfqdns:\n  x:\n    members: [{ address: a, wieght: 1 }]\n",
                5,
            ),
            ("zone: a.test\nns: [ns1]\nrecords: { x: { A: [1, 2 }\n", 3),
        ];
        for (text, line) in cases {
            assert_eq!(readers_agree::<ZoneRaw>(text), Ok(false), "{text}");
            let e = parse_yaml::<ZoneRaw>(Path::new("z.yaml"), text)
                .err()
                .unwrap();
            assert_eq!(e.line, line, "{text}: {e}");
        }
    }
}
