//! The YAML shapes users write, read by serde with the position of every value kept
//! (`Spanned`), and the parse that turns serde's errors into positioned ones.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use hickory_proto::rr::RecordType;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Location, Spanned};

use super::error::ConfigError;
use crate::model::{Policy, Quorum, WhenAllDown};

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
        defined: Location::UNKNOWN,
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

#[derive(Deserialize)]
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
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct ClusterRaw {
    pub(super) listen: Spanned<String>,
    pub(super) peers: Spanned<TextList>,
    pub(super) key: Option<Spanned<String>>,
    pub(super) key_file: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct IdentityRaw {
    pub(super) nsid: Option<Spanned<String>>,
    pub(super) version: Option<Spanned<String>>,
    pub(super) hostname: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct CookiesRaw {
    pub(super) enabled: Option<bool>,
    pub(super) secret: Option<Spanned<String>>,
    pub(super) secret_lifetime: Option<Spanned<String>>,
    pub(super) nocookie_udp_size: Option<Spanned<u16>>,
}

#[derive(Deserialize)]
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct TcpRaw {
    pub(super) max_connections: Option<Spanned<usize>>,
    pub(super) max_connections_per_client: Option<Spanned<usize>>,
    pub(super) idle_timeout: Option<Spanned<String>>,
    pub(super) io_timeout: Option<Spanned<String>>,
    pub(super) max_queries_per_connection: Option<Spanned<usize>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct AdminRaw {
    pub(super) listen: Option<Spanned<String>>,
    pub(super) token: Option<Spanned<String>>,
    pub(super) token_file: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct ForwardRaw {
    pub(super) upstreams: Spanned<TextList>,
    pub(super) timeout: Option<Spanned<String>>,
    pub(super) allow: Spanned<TextList>,
    pub(super) cache_size: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct ZoneRaw {
    pub(super) zone: Spanned<String>,
    pub(super) ttl: Option<Spanned<u32>>,
    pub(super) soa: Option<Spanned<SoaRaw>>,
    pub(super) ns: Spanned<TextList>,
    #[serde(default)]
    pub(super) records: BTreeMap<String, Spanned<RecordSetRaw>>,
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct TransferRaw {
    pub(super) allow: Option<Spanned<TextList>>,
    pub(super) notify: Option<Spanned<TextList>>,
    pub(super) tsig: Option<Spanned<TsigRaw>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct TsigRaw {
    pub(super) name: Spanned<String>,
    pub(super) algorithm: Option<Spanned<String>>,
    pub(super) secret: Spanned<String>,
}

#[derive(Deserialize)]
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct AccessRaw {
    pub(super) allow: Option<Spanned<TextList>>,
    pub(super) deny: Option<Spanned<TextList>>,
    pub(super) action: Option<Spanned<String>>,
}

#[derive(Deserialize)]
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

/// One owner's static records: its `ttl` and the record types given, in [`RECORD_TYPES`]
/// order. Only the types given are kept: a struct with a field per type held some 1.1 KB
/// per owner (a position pair for each, given or not) while a zone was read, which made
/// reading a large zone cost gigabytes.
pub(super) struct RecordSetRaw {
    pub(super) ttl: Option<Spanned<u32>>,
    pub(super) sets: Vec<(RecordType, Spanned<TextList>)>,
}

/// The record types `records:` takes by name; any other type is `TYPE<number>` (RFC 3597).
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
fn record_type(key: &str) -> Option<RecordType> {
    if let Some(&(_, rtype)) = RECORD_TYPES.iter().find(|(n, _)| *n == key) {
        return Some(rtype);
    }
    let code: u16 = key.strip_prefix("TYPE")?.parse().ok()?;
    Some(RecordType::from(code))
}

impl<'de> Deserialize<'de> for RecordSetRaw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
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
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RecordSetRaw;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of record types to values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RecordSetRaw, A::Error> {
                let mut out = RecordSetRaw {
                    ttl: None,
                    sets: Vec::new(),
                };
                while let Some(key) = map.next_key::<String>()? {
                    if key == "ttl" {
                        if out.ttl.is_some() {
                            return Err(de::Error::duplicate_field("ttl"));
                        }
                        out.ttl = Some(map.next_value()?);
                        continue;
                    }
                    let Some(rtype) = record_type(&key) else {
                        return Err(de::Error::unknown_field(&key, FIELDS));
                    };
                    if out.sets.iter().any(|(t, _)| *t == rtype) {
                        return Err(de::Error::custom(format_args!(
                            "duplicate field `{key}` (type {rtype} is given twice)"
                        )));
                    }
                    out.sets.push((rtype, map.next_value()?));
                }
                out.sets
                    .sort_by_key(|(t, _)| RECORD_TYPES.iter().position(|(_, r)| r == t));
                out.sets.shrink_to_fit();
                Ok(out)
            }
        }
        d.deserialize_map(V)
    }
}

#[derive(Deserialize)]
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

#[derive(Deserialize)]
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

#[derive(Deserialize)]
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

#[derive(Deserialize)]
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
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RoleRaw {
    pub(super) role: Spanned<String>,
    pub(super) status: Option<Spanned<TextList>>,
    pub(super) body_contains: Option<Spanned<String>>,
    pub(super) json: Option<Spanned<BTreeMap<String, serde_json::Value>>>,
    pub(super) healthy: Option<bool>,
}

/// Parses YAML into `T`, turning a serde error into a positioned [`ConfigError`].
pub(super) fn parse_yaml<T: for<'de> Deserialize<'de>>(
    file: &Path,
    text: &str,
) -> Result<T, ConfigError> {
    let mut path = String::new();
    // serde-saphyr's default budget (250,000 nodes) stops a zone of some 15,000 names; a
    // zone of 100,000 names with 3 members each is about 2.5 million events. Alias
    // expansion keeps its own limits, which are what stop YAML bombs.
    let mut budget = serde_saphyr::Budget::default();
    budget.max_events = 100_000_000;
    budget.max_nodes = 50_000_000;
    budget.max_total_scalar_bytes = 1 << 30;
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
        let loc = e.location().unwrap_or(Location::UNKNOWN);
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
