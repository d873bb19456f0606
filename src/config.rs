//! YAML configuration: the server file and one file per zone, parsed and validated.
//!
//! Parsing happens in two passes. serde (through serde-saphyr) turns YAML into the `Raw*`
//! shapes below, which keep the source position of every value (`Spanned`); then
//! `validate_*` turns those into the typed configuration the zone table is compiled from.
//! Every problem found on the way becomes a [`ConfigError`] naming file, line, column and
//! field, and validation keeps going so that `meridian check` reports all of them at once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::txt::Parser as ZoneFileParser;
use ipnet::IpNet;
use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde_saphyr::{Location, Spanned};

use crate::geo::GeoDb;
use crate::select::{Policy, WhenAllDown};

/// Default listen address when the server file names none: unprivileged, loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:5300";

// ---------------------------------------------------------------------------------------------
// Errors

/// One problem in one file, at one place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based; 0 when the problem is about the file as a whole.
    pub line: u64,
    pub column: u64,
    /// Dotted path of the offending field, e.g. `fqdns.vault.members[1].weight`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Everything wrong with a configuration, in file order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Collects errors for one file.
struct Report<'f> {
    file: &'f Path,
    errors: Vec<ConfigError>,
}

impl<'f> Report<'f> {
    fn new(file: &'f Path) -> Self {
        Report {
            file,
            errors: Vec::new(),
        }
    }

    fn at(&mut self, loc: Location, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.to_path_buf(),
            line: loc.line(),
            column: loc.column(),
            field: field.into(),
            message: message.into(),
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Validated configuration

/// The whole configuration: server settings and every zone.
#[derive(Clone, Debug)]
pub struct Config {
    pub server: ServerConfig,
    pub zones: Vec<ZoneConfig>,
}

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub file: PathBuf,
    /// Each address gets a UDP socket and a TCP listener.
    pub listen: Vec<SocketAddr>,
    pub zones_dir: PathBuf,
    /// The GeoIP database, opened and verified at load time.
    pub geoip: Option<Arc<GeoDb>>,
    /// Use the EDNS Client Subnet option of queries (RFC 7871) to place clients.
    pub ecs: bool,
    pub admin: Option<AdminConfig>,
    pub forward: Option<ForwardConfig>,
    /// Log one line per query.
    pub query_log: bool,
    /// Reload when the files change (SIGHUP reloads either way).
    pub watch: bool,
}

/// The admin HTTP API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    /// Bearer token for the write endpoints; without one they answer 403.
    pub token: Option<String>,
}

/// Forwarding of names outside our zones, for clients that use Meridian as their resolver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwardConfig {
    /// Tried in order.
    pub upstreams: Vec<SocketAddr>,
    /// Per upstream.
    pub timeout: Duration,
    /// Client networks that may use forwarding; everyone else gets REFUSED.
    pub allow: Vec<IpNet>,
    /// Most responses kept in the cache.
    pub cache_size: usize,
}

#[derive(Clone, Debug)]
pub struct ZoneConfig {
    pub file: PathBuf,
    pub origin: Name,
    pub ttl: u32,
    pub soa: SoaConfig,
    pub ns: Vec<Name>,
    pub records: Vec<RecordSetConfig>,
    pub sites: Vec<SiteConfig>,
    pub fqdns: Vec<FqdnConfig>,
}

#[derive(Clone, Debug)]
pub struct SoaConfig {
    pub mname: Name,
    pub rname: Name,
    pub serial: u32,
    pub refresh: i32,
    pub retry: i32,
    pub expire: i32,
    pub minimum: u32,
}

/// A static RRset.
#[derive(Clone, Debug)]
pub struct RecordSetConfig {
    pub owner: Name,
    pub ttl: u32,
    pub rtype: RecordType,
    pub rdata: Vec<RData>,
}

#[derive(Clone, Debug)]
pub struct SiteConfig {
    pub name: String,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    /// ISO 3166-1 alpha-2, upper case.
    pub countries: Vec<String>,
    /// Two-letter continent codes (EU, NA, SA, AS, AF, OC, AN), upper case.
    pub continents: Vec<String>,
    pub networks: Vec<IpNet>,
    pub default: bool,
    pub enabled: bool,
    pub checks: Vec<Check>,
}

/// A health-checked name.
#[derive(Clone, Debug)]
pub struct FqdnConfig {
    pub name: Name,
    pub policy: Policy,
    pub ttl: u32,
    pub answers: u32,
    pub when_all_down: WhenAllDown,
    pub members: Vec<MemberConfig>,
}

#[derive(Clone, Debug)]
pub struct MemberConfig {
    pub address: IpAddr,
    pub weight: u32,
    /// Index into the zone's `sites`.
    pub site: Option<usize>,
    pub checks: Vec<Check>,
    pub enabled: bool,
}

/// One health check of one target: what to probe and how often.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Check {
    pub spec: CheckSpec,
    pub timing: Timing,
    /// Probe this address instead of the member's own (required on site checks).
    pub address: Option<IpAddr>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CheckSpec {
    /// Always up.
    None,
    Tcp {
        port: u16,
    },
    Icmp,
    Http(HttpCheck),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HttpCheck {
    pub tls: bool,
    pub port: u16,
    pub method: String,
    pub path: String,
    pub host: Option<String>,
    /// Inclusive status ranges that count as up.
    pub expect: Vec<(u16, u16)>,
    pub body_contains: Option<String>,
    pub tls_verify: bool,
    pub ca: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Timing {
    pub interval: Duration,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            rise: 2,
            fall: 2,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Raw YAML shapes

/// A scalar read as text whatever YAML typed it as (`200`, `1.5`, `true`, `abc`).
#[derive(Clone, Debug)]
struct Text(String);

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
struct TextList(Vec<Spanned<Text>>);

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
fn unplaced<T>(value: T) -> Spanned<T> {
    Spanned {
        value,
        referenced: Location::UNKNOWN,
        defined: Location::UNKNOWN,
    }
}

/// The entries with their positions (a lone scalar takes the field's position).
fn items(list: &Spanned<TextList>) -> impl Iterator<Item = (Location, &str)> {
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
struct ServerRaw {
    listen: Option<Spanned<TextList>>,
    zones: Option<Spanned<String>>,
    geoip: Option<Spanned<String>>,
    ecs: Option<bool>,
    admin: Option<Spanned<AdminRaw>>,
    forward: Option<Spanned<ForwardRaw>>,
    query_log: Option<bool>,
    watch: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct AdminRaw {
    listen: Option<Spanned<String>>,
    token: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ForwardRaw {
    upstreams: Spanned<TextList>,
    timeout: Option<Spanned<String>>,
    allow: Spanned<TextList>,
    cache_size: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ZoneRaw {
    zone: Spanned<String>,
    ttl: Option<Spanned<u32>>,
    soa: Option<Spanned<SoaRaw>>,
    ns: Spanned<TextList>,
    #[serde(default)]
    records: BTreeMap<String, Spanned<RecordSetRaw>>,
    #[serde(default)]
    sites: BTreeMap<String, Spanned<SiteRaw>>,
    #[serde(default)]
    fqdns: BTreeMap<String, Spanned<FqdnRaw>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct SoaRaw {
    mname: Option<Spanned<String>>,
    rname: Option<Spanned<String>>,
    serial: Option<u32>,
    refresh: Option<i32>,
    retry: Option<i32>,
    expire: Option<i32>,
    minimum: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordSetRaw {
    ttl: Option<Spanned<u32>>,
    #[serde(rename = "A")]
    a: Option<Spanned<TextList>>,
    #[serde(rename = "AAAA")]
    aaaa: Option<Spanned<TextList>>,
    #[serde(rename = "CNAME")]
    cname: Option<Spanned<TextList>>,
    #[serde(rename = "NS")]
    ns: Option<Spanned<TextList>>,
    #[serde(rename = "MX")]
    mx: Option<Spanned<TextList>>,
    #[serde(rename = "TXT")]
    txt: Option<Spanned<TextList>>,
    #[serde(rename = "SRV")]
    srv: Option<Spanned<TextList>>,
    #[serde(rename = "CAA")]
    caa: Option<Spanned<TextList>>,
    #[serde(rename = "PTR")]
    ptr: Option<Spanned<TextList>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct SiteRaw {
    lat: Option<Spanned<f64>>,
    lon: Option<Spanned<f64>>,
    countries: Option<Spanned<TextList>>,
    continents: Option<Spanned<TextList>>,
    networks: Option<Spanned<TextList>>,
    default: Option<bool>,
    enabled: Option<bool>,
    check: Option<Box<Spanned<CheckRaw>>>,
    checks: Option<Vec<Spanned<CheckRaw>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FqdnRaw {
    selection: Option<Spanned<Policy>>,
    ttl: Option<Spanned<u32>>,
    answers: Option<Spanned<u32>>,
    when_all_down: Option<WhenAllDown>,
    check: Option<Box<Spanned<CheckRaw>>>,
    checks: Option<Vec<Spanned<CheckRaw>>>,
    members: Spanned<Vec<Spanned<MemberRaw>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct MemberRaw {
    address: Spanned<String>,
    weight: Option<Spanned<i64>>,
    site: Option<Spanned<String>>,
    enabled: Option<bool>,
    check: Option<Box<Spanned<CheckRaw>>>,
    checks: Option<Vec<Spanned<CheckRaw>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct CheckRaw {
    #[serde(rename = "type")]
    kind: Spanned<String>,
    address: Option<Spanned<String>>,
    port: Option<Spanned<u16>>,
    interval: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    rise: Option<Spanned<u32>>,
    fall: Option<Spanned<u32>>,
    method: Option<Spanned<String>>,
    path: Option<Spanned<String>>,
    host: Option<Spanned<String>>,
    expect: Option<Spanned<TextList>>,
    body_contains: Option<Spanned<String>>,
    tls_verify: Option<Spanned<bool>>,
    ca: Option<Spanned<String>>,
}

/// Parses YAML into `T`, turning a serde error into a positioned [`ConfigError`].
fn parse_yaml<T: for<'de> Deserialize<'de>>(file: &Path, text: &str) -> Result<T, ConfigError> {
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
        ConfigError {
            file: file.to_path_buf(),
            line: loc.line(),
            column: loc.column(),
            field: if field == "." { String::new() } else { field },
            message,
        }
    })
}

fn read_file(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_path_buf(),
        line: 0,
        column: 0,
        field: String::new(),
        message: format!("cannot read: {e}"),
    })
}

// ---------------------------------------------------------------------------------------------
// Loading

/// Loads and validates the server file and every zone file it points at.
pub fn load(server_file: &Path) -> Result<Config, ConfigErrors> {
    let server = load_server(server_file).map_err(|e| ConfigErrors(vec![e]))?;
    let zones = load_zones(&server.zones_dir)?;
    Ok(Config { server, zones })
}

/// Reads and validates the server file alone (for commands that only need its settings).
pub fn load_server(file: &Path) -> Result<ServerConfig, ConfigError> {
    let text = read_file(file)?;
    let raw: ServerRaw = parse_yaml(file, &text)?;
    let base = file.parent().unwrap_or(Path::new("."));
    let mut report = Report::new(file);

    let mut listen = Vec::new();
    match &raw.listen {
        Some(list) => {
            for (i, (loc, text)) in items(list).enumerate() {
                match parse_listen(text) {
                    Ok(addr) if listen.contains(&addr) => report.at(
                        loc,
                        format!("listen[{i}]"),
                        format!("{addr} is listed twice"),
                    ),
                    Ok(addr) => listen.push(addr),
                    Err(msg) => report.at(loc, format!("listen[{i}]"), msg),
                }
            }
            if listen.is_empty() && report.errors.is_empty() {
                report.at(list.referenced, "listen", "needs at least one address");
            }
        }
        None => listen.push(DEFAULT_LISTEN.parse().expect("valid default")),
    }
    let zones_dir = base.join(raw.zones.as_ref().map_or("zones", |z| z.value.as_str()));
    let geoip = match &raw.geoip {
        None => None,
        Some(g) => match GeoDb::open(&base.join(&g.value)) {
            Ok(db) => Some(Arc::new(db)),
            Err(msg) => {
                report.at(
                    g.referenced,
                    "geoip",
                    format!("{}: {msg}", base.join(&g.value).display()),
                );
                None
            }
        },
    };
    let admin = raw.admin.as_ref().and_then(|a| {
        let listen = match &a.value.listen {
            None => "127.0.0.1:9153".parse().ok(),
            Some(l) => parse_listen(&l.value)
                .map_err(|msg| report.at(l.referenced, "admin.listen", msg))
                .ok(),
        };
        let token = a.value.token.as_ref().and_then(|t| {
            if t.value.trim().len() < 16 {
                report.at(t.referenced, "admin.token", "use at least 16 characters");
                None
            } else {
                Some(t.value.trim().to_string())
            }
        });
        listen.map(|listen| AdminConfig { listen, token })
    });
    let forward = raw
        .forward
        .as_ref()
        .and_then(|f| validate_forward(&mut report, &f.value));
    if let Some(e) = report.errors.into_iter().next() {
        return Err(e);
    }
    Ok(ServerConfig {
        file: file.to_path_buf(),
        listen,
        zones_dir,
        geoip,
        ecs: raw.ecs.unwrap_or(true),
        admin,
        forward,
        query_log: raw.query_log.unwrap_or(false),
        watch: raw.watch.unwrap_or(true),
    })
}

fn validate_forward(r: &mut Report, raw: &ForwardRaw) -> Option<ForwardConfig> {
    let before = r.errors.len();
    let mut upstreams = Vec::new();
    for (i, (loc, text)) in items(&raw.upstreams).enumerate() {
        match parse_listen(text) {
            Ok(a) => upstreams.push(a),
            Err(msg) => r.at(loc, format!("forward.upstreams[{i}]"), msg),
        }
    }
    if raw.upstreams.value.0.is_empty() {
        r.at(
            raw.upstreams.referenced,
            "forward.upstreams",
            "give at least one upstream resolver",
        );
    }
    let mut allow = Vec::new();
    for (i, (loc, text)) in items(&raw.allow).enumerate() {
        match text.trim().parse::<IpNet>() {
            Ok(n) => allow.push(n.trunc()),
            Err(_) => r.at(
                loc,
                format!("forward.allow[{i}]"),
                format!("`{text}` is not a network (write 10.0.0.0/8)"),
            ),
        }
    }
    let timeout = match &raw.timeout {
        None => Duration::from_secs(2),
        Some(t) => match humantime::parse_duration(t.value.trim()) {
            Ok(d) if !d.is_zero() => d,
            _ => {
                r.at(
                    t.referenced,
                    "forward.timeout",
                    "not a duration (write 500ms or 2s)",
                );
                Duration::from_secs(2)
            }
        },
    };
    (r.errors.len() == before).then(|| ForwardConfig {
        upstreams,
        timeout,
        allow,
        cache_size: raw.cache_size.unwrap_or(10_000),
    })
}

/// `127.0.0.1:5300`, `[::1]:5300`, or an address alone for port 53.
fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    Err(format!(
        "`{text}` is not a listen address (write 127.0.0.1:5300 or [::1]:53)"
    ))
}

/// Every `*.yaml`/`*.yml` file in the directory, in name order; hidden and editor backup
/// files are skipped.
pub fn zone_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let yaml = name.ends_with(".yaml") || name.ends_with(".yml");
        if yaml && !name.starts_with('.') && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn load_zones(dir: &Path) -> Result<Vec<ZoneConfig>, ConfigErrors> {
    let files = zone_files(dir).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: dir.to_path_buf(),
            line: 0,
            column: 0,
            field: String::new(),
            message: format!("cannot read the zones directory: {e}"),
        }])
    })?;
    let mut errors = Vec::new();
    let mut zones: Vec<ZoneConfig> = Vec::new();
    for file in &files {
        match read_file(file).and_then(|text| Ok((parse_yaml::<ZoneRaw>(file, &text)?, text))) {
            Ok((raw, _)) => match validate_zone(file, raw) {
                Ok(zone) => zones.push(zone),
                Err(mut e) => errors.append(&mut e),
            },
            Err(e) => errors.push(e),
        }
    }
    // Cross-file rules: one file per zone, and no zone inside another.
    let mut kept: Vec<ZoneConfig> = Vec::new();
    for zone in zones {
        let clash = kept.iter().find(|k| {
            k.origin == zone.origin
                || k.origin.zone_of(&zone.origin)
                || zone.origin.zone_of(&k.origin)
        });
        match clash {
            Some(k) => {
                let what = if k.origin == zone.origin {
                    "is already defined"
                } else {
                    "overlaps (nested zones are not supported)"
                };
                errors.push(ConfigError {
                    file: zone.file.clone(),
                    line: 1,
                    column: 1,
                    field: "zone".into(),
                    message: format!(
                        "zone {} {what}: see {} ({})",
                        zone.origin,
                        k.file.display(),
                        k.origin
                    ),
                });
            }
            None => kept.push(zone),
        }
    }
    if files.is_empty() {
        errors.push(ConfigError {
            file: dir.to_path_buf(),
            line: 0,
            column: 0,
            field: String::new(),
            message: "no zone files (*.yaml) in the zones directory".into(),
        });
    }
    if errors.is_empty() {
        Ok(kept)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Validates one zone file's text; used by `load` and by tests.
pub fn parse_zone(file: &Path, text: &str) -> Result<ZoneConfig, ConfigErrors> {
    let raw: ZoneRaw = parse_yaml(file, text).map_err(|e| ConfigErrors(vec![e]))?;
    validate_zone(file, raw).map_err(ConfigErrors)
}

// ---------------------------------------------------------------------------------------------
// Zone validation

fn validate_zone(file: &Path, raw: ZoneRaw) -> Result<ZoneConfig, Vec<ConfigError>> {
    let mut r = Report::new(file);
    let origin = match parse_absolute(&raw.zone.value) {
        Ok(n) => n,
        Err(msg) => {
            r.at(raw.zone.referenced, "zone", msg);
            return Err(r.errors);
        }
    };
    let ttl = raw.ttl.as_ref().map_or(300, |t| t.value);

    let mut ns = Vec::new();
    for (i, (loc, text)) in items(&raw.ns).enumerate() {
        match parse_target(text, &origin) {
            Ok(n) => ns.push(n),
            Err(msg) => r.at(loc, format!("ns[{i}]"), msg),
        }
    }
    if ns.is_empty() && raw.ns.value.0.is_empty() {
        r.at(
            raw.ns.referenced,
            "ns",
            "a zone needs at least one name server",
        );
    }

    let soa = validate_soa(&mut r, raw.soa.as_ref(), &origin, ns.first(), file);

    let mut records = Vec::new();
    for (owner_text, set) in &raw.records {
        let field = format!("records.{owner_text}");
        let owner = match parse_owner(owner_text, &origin) {
            Ok(n) => n,
            Err(msg) => {
                r.at(set.referenced, field, msg);
                continue;
            }
        };
        validate_rrsets(&mut r, &field, &owner, &origin, ttl, set, &mut records);
    }

    let mut sites = Vec::new();
    let mut site_index = HashMap::new();
    for (name, site) in &raw.sites {
        let field = format!("sites.{name}");
        site_index.insert(name.clone(), sites.len());
        sites.push(validate_site(&mut r, &field, name, site));
    }

    let mut fqdns = Vec::new();
    for (key, fqdn) in &raw.fqdns {
        let field = format!("fqdns.{key}");
        let name = match parse_owner(key, &origin) {
            Ok(n) => n,
            Err(msg) => {
                r.at(fqdn.referenced, field, msg);
                continue;
            }
        };
        if let Some(f) = validate_fqdn(&mut r, &field, name, fqdn, &site_index) {
            fqdns.push(f);
        }
    }

    check_conflicts(&mut r, &raw, &origin, &records, &fqdns);
    r.errors.sort_by_key(|e| (e.line, e.column));

    if r.errors.is_empty() {
        Ok(ZoneConfig {
            file: file.to_path_buf(),
            origin,
            ttl,
            soa,
            ns,
            records,
            sites,
            fqdns,
        })
    } else {
        Err(r.errors)
    }
}

fn validate_soa(
    r: &mut Report,
    raw: Option<&Spanned<SoaRaw>>,
    origin: &Name,
    first_ns: Option<&Name>,
    file: &Path,
) -> SoaConfig {
    let name_field =
        |r: &mut Report, f: Option<&Spanned<String>>, field: &str, default: Name| match f {
            None => default,
            Some(s) => parse_target(&s.value, origin).unwrap_or_else(|msg| {
                r.at(s.referenced, format!("soa.{field}"), msg);
                default
            }),
        };
    let hostmaster = Name::from_ascii("hostmaster")
        .and_then(|h| h.append_domain(origin))
        .unwrap_or_else(|_| origin.clone());
    let mname = name_field(
        r,
        raw.and_then(|s| s.value.mname.as_ref()),
        "mname",
        first_ns.cloned().unwrap_or_else(|| origin.clone()),
    );
    let rname = name_field(
        r,
        raw.and_then(|s| s.value.rname.as_ref()),
        "rname",
        hostmaster,
    );
    let soa = raw.map(|s| &s.value);
    SoaConfig {
        mname,
        rname,
        // The file's modification time: it grows on every edit, which is all secondaries need.
        serial: soa
            .and_then(|s| s.serial)
            .unwrap_or_else(|| mtime_serial(file)),
        refresh: soa.and_then(|s| s.refresh).unwrap_or(3600),
        retry: soa.and_then(|s| s.retry).unwrap_or(600),
        expire: soa.and_then(|s| s.expire).unwrap_or(604_800),
        minimum: soa.and_then(|s| s.minimum).unwrap_or(60),
    }
}

fn mtime_serial(file: &Path) -> u32 {
    std::fs::metadata(file)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| SystemTime::now())
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_secs() as u32)
}

#[allow(clippy::too_many_arguments)]
fn validate_rrsets(
    r: &mut Report,
    field: &str,
    owner: &Name,
    origin: &Name,
    zone_ttl: u32,
    set: &Spanned<RecordSetRaw>,
    out: &mut Vec<RecordSetConfig>,
) {
    let raw = &set.value;
    let ttl = raw.ttl.as_ref().map_or(zone_ttl, |t| t.value);
    let typed = [
        (RecordType::A, &raw.a),
        (RecordType::AAAA, &raw.aaaa),
        (RecordType::CNAME, &raw.cname),
        (RecordType::NS, &raw.ns),
        (RecordType::MX, &raw.mx),
        (RecordType::TXT, &raw.txt),
        (RecordType::SRV, &raw.srv),
        (RecordType::CAA, &raw.caa),
        (RecordType::PTR, &raw.ptr),
    ];
    let present: Vec<RecordType> = typed
        .iter()
        .filter(|(_, v)| v.is_some())
        .map(|(t, _)| *t)
        .collect();
    if present.is_empty() {
        r.at(
            set.referenced,
            field,
            "no records (give at least one type, e.g. A: [192.0.2.1])",
        );
    }
    for (rtype, values) in typed {
        let Some(values) = values else { continue };
        let tfield = format!("{field}.{rtype}");
        if rtype == RecordType::CNAME && present.len() > 1 {
            r.at(
                values.referenced,
                &tfield,
                "a CNAME cannot stand beside other data at the same name (RFC 1034 3.6.2)",
            );
            continue;
        }
        if rtype == RecordType::CNAME && values.value.0.len() != 1 {
            r.at(
                values.referenced,
                &tfield,
                "a name has exactly one CNAME target",
            );
            continue;
        }
        if rtype == RecordType::NS && owner != origin {
            r.at(
                values.referenced,
                &tfield,
                "NS records are only supported at the zone apex (delegations are not supported)",
            );
            continue;
        }
        if rtype == RecordType::CNAME && owner == origin {
            r.at(
                values.referenced,
                &tfield,
                "the zone apex cannot be a CNAME",
            );
            continue;
        }
        let mut rdata = Vec::new();
        for (i, (loc, text)) in items(values).enumerate() {
            match parse_rdata(rtype, text, origin) {
                Ok(d) if rdata.contains(&d) => {
                    r.at(loc, format!("{tfield}[{i}]"), "duplicate record")
                }
                Ok(d) => rdata.push(d),
                Err(msg) => r.at(loc, format!("{tfield}[{i}]"), msg),
            }
        }
        if values.value.0.is_empty() {
            r.at(values.referenced, &tfield, "empty list");
        }
        if !rdata.is_empty() {
            out.push(RecordSetConfig {
                owner: owner.clone(),
                ttl,
                rtype,
                rdata,
            });
        }
    }
}

fn parse_rdata(rtype: RecordType, text: &str, origin: &Name) -> Result<RData, String> {
    let text = text.trim();
    match rtype {
        RecordType::A => text
            .parse()
            .map(|ip: std::net::Ipv4Addr| RData::A(ip.into()))
            .map_err(|_| format!("`{text}` is not an IPv4 address")),
        RecordType::AAAA => text
            .parse()
            .map(|ip: std::net::Ipv6Addr| RData::AAAA(ip.into()))
            .map_err(|_| format!("`{text}` is not an IPv6 address")),
        // Each list entry is one TXT record of text as written, split into the 255-byte
        // character-strings the wire format needs.
        RecordType::TXT => Ok(RData::TXT(TXT::new(
            text.as_bytes()
                .chunks(255)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect(),
        ))),
        // Other types use zone-file syntax, with names relative to the zone as in a zone file.
        _ => {
            let line = format!("@ 0 IN {rtype} {text}\n");
            let parsed = ZoneFileParser::new(line, None, Some(origin.clone()))
                .parse()
                .map_err(|e| format!("bad {rtype} data `{text}`: {e}"))?;
            parsed
                .1
                .into_values()
                .flat_map(|set| set.records_without_rrsigs().cloned().collect::<Vec<_>>())
                .map(|rec| rec.data)
                .next()
                .ok_or_else(|| format!("bad {rtype} data `{text}`"))
        }
    }
}

fn validate_site(r: &mut Report, field: &str, name: &str, site: &Spanned<SiteRaw>) -> SiteConfig {
    let raw = &site.value;
    let mut coord = |v: &Option<Spanned<f64>>, what: &str, limit: f64| {
        v.as_ref().and_then(|s| {
            if s.value.is_finite() && s.value.abs() <= limit {
                Some(s.value)
            } else {
                r.at(
                    s.referenced,
                    format!("{field}.{what}"),
                    format!("must be between -{limit} and {limit}"),
                );
                None
            }
        })
    };
    let lat = coord(&raw.lat, "lat", 90.0);
    let lon = coord(&raw.lon, "lon", 180.0);
    if lat.is_some() != lon.is_some() {
        r.at(site.referenced, field, "give both lat and lon, or neither");
    }
    let codes = |r: &mut Report, list: &Option<Spanned<TextList>>, what: &str, known: &[&str]| {
        let mut out = Vec::new();
        let Some(list) = list else { return out };
        for (i, (loc, text)) in items(list).enumerate() {
            let code = text.trim().to_ascii_uppercase();
            let ok = code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase());
            if !ok || (!known.is_empty() && !known.contains(&code.as_str())) {
                let hint = if known.is_empty() {
                    "an ISO 3166 two-letter country code".to_string()
                } else {
                    format!("one of {}", known.join(", "))
                };
                r.at(
                    loc,
                    format!("{field}.{what}[{i}]"),
                    format!("`{text}` is not {hint}"),
                );
            } else {
                out.push(code);
            }
        }
        out
    };
    let countries = codes(r, &raw.countries, "countries", &[]);
    let continents = codes(
        r,
        &raw.continents,
        "continents",
        &["AF", "AN", "AS", "EU", "NA", "OC", "SA"],
    );
    let mut networks = Vec::new();
    if let Some(list) = &raw.networks {
        for (i, (loc, text)) in items(list).enumerate() {
            match text.trim().parse::<IpNet>() {
                Ok(net) if net.trunc() != net => r.at(
                    loc,
                    format!("{field}.networks[{i}]"),
                    format!("`{text}` has host bits set; did you mean {}?", net.trunc()),
                ),
                Ok(net) => networks.push(net),
                Err(_) => r.at(
                    loc,
                    format!("{field}.networks[{i}]"),
                    format!("`{text}` is not a network (write 10.1.0.0/16)"),
                ),
            }
        }
    }
    let checks = validate_checks(r, field, &raw.check, &raw.checks, true).unwrap_or_default();
    SiteConfig {
        name: name.to_string(),
        lat,
        lon,
        countries,
        continents,
        networks,
        default: raw.default.unwrap_or(false),
        enabled: raw.enabled.unwrap_or(true),
        checks,
    }
}

fn validate_fqdn(
    r: &mut Report,
    field: &str,
    name: Name,
    fqdn: &Spanned<FqdnRaw>,
    sites: &HashMap<String, usize>,
) -> Option<FqdnConfig> {
    let raw = &fqdn.value;
    let policy = raw
        .selection
        .as_ref()
        .map_or(Policy::FixedWeight, |s| s.value);
    let ttl = raw.ttl.as_ref().map_or(30, |t| t.value);
    let answers = match &raw.answers {
        Some(a) if a.value == 0 => {
            r.at(
                a.referenced,
                format!("{field}.answers"),
                "must be at least 1",
            );
            1
        }
        Some(a) => a.value,
        None => 1,
    };
    let default_checks = validate_checks(r, field, &raw.check, &raw.checks, false);
    if raw.members.value.is_empty() {
        r.at(
            raw.members.referenced,
            format!("{field}.members"),
            "needs at least one member",
        );
    }
    let mut members = Vec::new();
    let mut seen = HashSet::new();
    for (i, m) in raw.members.value.iter().enumerate() {
        let mfield = format!("{field}.members[{i}]");
        let address = match m.value.address.value.trim().parse::<IpAddr>() {
            Ok(a) => a,
            Err(_) => {
                r.at(
                    m.value.address.referenced,
                    format!("{mfield}.address"),
                    format!("`{}` is not an IP address", m.value.address.value),
                );
                continue;
            }
        };
        if !seen.insert(address) {
            r.at(
                m.value.address.referenced,
                format!("{mfield}.address"),
                format!("duplicate member {address}"),
            );
        }
        let weight = match &m.value.weight {
            None => 1,
            Some(w) if w.value <= 0 || w.value > 1_000_000 => {
                r.at(
                    w.referenced,
                    format!("{mfield}.weight"),
                    format!("must be between 1 and 1000000 (got {})", w.value),
                );
                1
            }
            Some(w) => w.value as u32,
        };
        let site = match &m.value.site {
            None => None,
            Some(s) => match sites.get(&s.value) {
                Some(i) => Some(*i),
                None => {
                    let mut known: Vec<&str> = sites.keys().map(String::as_str).collect();
                    known.sort();
                    let hint = if known.is_empty() {
                        "the zone defines no sites".to_string()
                    } else {
                        format!("known sites: {}", known.join(", "))
                    };
                    r.at(
                        s.referenced,
                        format!("{mfield}.site"),
                        format!("unknown site `{}` ({hint})", s.value),
                    );
                    None
                }
            },
        };
        let own = validate_checks(r, &mfield, &m.value.check, &m.value.checks, false);
        let checks = own.or_else(|| default_checks.clone()).unwrap_or_default();
        members.push(MemberConfig {
            address,
            weight,
            site,
            checks,
            enabled: m.value.enabled.unwrap_or(true),
        });
    }
    Some(FqdnConfig {
        name,
        policy,
        ttl,
        answers,
        when_all_down: raw.when_all_down.unwrap_or(WhenAllDown::All),
        members,
    })
}

/// `check:` (one) or `checks:` (a list); `None` when neither is given.
fn validate_checks(
    r: &mut Report,
    field: &str,
    one: &Option<Box<Spanned<CheckRaw>>>,
    many: &Option<Vec<Spanned<CheckRaw>>>,
    needs_address: bool,
) -> Option<Vec<Check>> {
    let list: Vec<(String, &Spanned<CheckRaw>)> = match (one, many) {
        (None, None) => return None,
        (Some(c), None) => vec![(format!("{field}.check"), c)],
        (None, Some(cs)) => cs
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("{field}.checks[{i}]"), c))
            .collect(),
        (Some(c), Some(_)) => {
            r.at(
                c.referenced,
                field,
                "give either `check` or `checks`, not both",
            );
            return Some(Vec::new());
        }
    };
    let mut out = Vec::new();
    for (cfield, raw) in list {
        if let Some(c) = validate_check(r, &cfield, raw, needs_address) {
            out.push(c);
        }
    }
    Some(out)
}

fn validate_check(
    r: &mut Report,
    field: &str,
    check: &Spanned<CheckRaw>,
    needs_address: bool,
) -> Option<Check> {
    let raw = &check.value;
    let kind = raw.kind.value.as_str();
    let mut ok = true;
    let duration =
        |r: &mut Report, v: &Option<Spanned<String>>, what: &str, default: Duration| match v {
            None => Some(default),
            Some(s) => match humantime::parse_duration(s.value.trim()) {
                Ok(d) if !d.is_zero() => Some(d),
                _ => {
                    r.at(
                        s.referenced,
                        format!("{field}.{what}"),
                        format!("`{}` is not a duration (write 500ms, 5s or 1m)", s.value),
                    );
                    None
                }
            },
        };
    let defaults = Timing::default();
    let interval = duration(r, &raw.interval, "interval", defaults.interval);
    let timeout = duration(r, &raw.timeout, "timeout", defaults.timeout);
    let mut count = |v: &Option<Spanned<u32>>, what: &str, default: u32| match v {
        Some(s) if s.value == 0 => {
            r.at(
                s.referenced,
                format!("{field}.{what}"),
                "must be at least 1",
            );
            None
        }
        Some(s) => Some(s.value),
        None => Some(default),
    };
    let rise = count(&raw.rise, "rise", defaults.rise);
    let fall = count(&raw.fall, "fall", defaults.fall);
    let timing = match (interval, timeout, rise, fall) {
        (Some(interval), Some(timeout), Some(rise), Some(fall)) => {
            // An explicit timeout must fit in the interval; a default one shrinks to fit.
            let timeout = if raw.timeout.is_none() {
                timeout.min(interval.mul_f64(0.8))
            } else {
                timeout
            };
            if timeout >= interval {
                let at = raw
                    .timeout
                    .as_ref()
                    .map_or(check.referenced, |t| t.referenced);
                r.at(
                    at,
                    format!("{field}.timeout"),
                    "must be less than the interval",
                );
                ok = false;
            }
            Timing {
                interval,
                timeout,
                rise,
                fall,
            }
        }
        _ => {
            ok = false;
            defaults
        }
    };
    let address = match &raw.address {
        None => None,
        Some(a) => match a.value.trim().parse::<IpAddr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                r.at(
                    a.referenced,
                    format!("{field}.address"),
                    format!("`{}` is not an IP address", a.value),
                );
                ok = false;
                None
            }
        },
    };
    if needs_address && address.is_none() && raw.address.is_none() && kind != "none" {
        r.at(
            check.referenced,
            format!("{field}.address"),
            "a site check needs the address to probe (e.g. the site's load balancer)",
        );
        ok = false;
    }
    // Fields that only some check types read: naming them elsewhere is a mistake.
    let http_only = [
        ("method", raw.method.as_ref().map(|s| s.referenced)),
        ("path", raw.path.as_ref().map(|s| s.referenced)),
        ("host", raw.host.as_ref().map(|s| s.referenced)),
        ("expect", raw.expect.as_ref().map(|s| s.referenced)),
        (
            "body-contains",
            raw.body_contains.as_ref().map(|s| s.referenced),
        ),
        ("tls-verify", raw.tls_verify.as_ref().map(|s| s.referenced)),
        ("ca", raw.ca.as_ref().map(|s| s.referenced)),
    ];
    let is_http = kind == "http" || kind == "https";
    if !is_http {
        for (name, loc) in http_only {
            if let Some(loc) = loc {
                r.at(
                    loc,
                    format!("{field}.{name}"),
                    format!("not used by a `{kind}` check"),
                );
                ok = false;
            }
        }
    }
    let spec = match kind {
        "none" => CheckSpec::None,
        "icmp" => {
            if let Some(p) = &raw.port {
                r.at(
                    p.referenced,
                    format!("{field}.port"),
                    "an icmp check has no port",
                );
                ok = false;
            }
            CheckSpec::Icmp
        }
        "tcp" => match &raw.port {
            Some(p) if p.value > 0 => CheckSpec::Tcp { port: p.value },
            Some(p) => {
                r.at(p.referenced, format!("{field}.port"), "must be 1-65535");
                return None;
            }
            None => {
                r.at(
                    check.referenced,
                    format!("{field}.port"),
                    "a tcp check needs a port",
                );
                return None;
            }
        },
        "http" | "https" => {
            let tls = kind == "https";
            let port = raw
                .port
                .as_ref()
                .map_or(if tls { 443 } else { 80 }, |p| p.value);
            let path = raw
                .path
                .as_ref()
                .map_or("/".to_string(), |p| p.value.clone());
            if !path.starts_with('/') {
                let at = raw.path.as_ref().map_or(check.referenced, |p| p.referenced);
                r.at(at, format!("{field}.path"), "must start with /");
                ok = false;
            }
            let method = raw
                .method
                .as_ref()
                .map_or("GET".to_string(), |m| m.value.to_ascii_uppercase());
            if !["GET", "HEAD", "POST", "OPTIONS"].contains(&method.as_str()) {
                let at = raw
                    .method
                    .as_ref()
                    .map_or(check.referenced, |m| m.referenced);
                r.at(
                    at,
                    format!("{field}.method"),
                    "must be GET, HEAD, POST or OPTIONS",
                );
                ok = false;
            }
            let mut expect = Vec::new();
            match &raw.expect {
                None => expect.push((200, 299)),
                Some(list) => {
                    for (i, (loc, text)) in items(list).enumerate() {
                        match parse_status_range(text) {
                            Some(range) => expect.push(range),
                            None => {
                                r.at(
                                    loc,
                                    format!("{field}.expect[{i}]"),
                                    format!("`{text}` is not a status code or range (write 200 or 200-299)"),
                                );
                                ok = false;
                            }
                        }
                    }
                }
            }
            if !tls && (raw.tls_verify.is_some() || raw.ca.is_some()) {
                r.at(
                    check.referenced,
                    field,
                    "tls-verify and ca apply to https checks only",
                );
                ok = false;
            }
            CheckSpec::Http(HttpCheck {
                tls,
                port,
                method,
                path,
                host: raw.host.as_ref().map(|h| h.value.clone()),
                expect,
                body_contains: raw.body_contains.as_ref().map(|b| b.value.clone()),
                tls_verify: raw.tls_verify.as_ref().is_none_or(|v| v.value),
                ca: raw.ca.as_ref().and_then(|c| {
                    let path = r.file.parent().unwrap_or(Path::new(".")).join(&c.value);
                    if path.is_file() {
                        Some(path)
                    } else {
                        r.at(
                            c.referenced,
                            format!("{field}.ca"),
                            format!("no such file {}", path.display()),
                        );
                        ok = false;
                        None
                    }
                }),
            })
        }
        other => {
            r.at(
                raw.kind.referenced,
                format!("{field}.type"),
                format!(
                    "unknown check type `{other}`, expected one of none, tcp, icmp, http, https"
                ),
            );
            return None;
        }
    };
    if let (CheckSpec::None, Some(p)) = (&spec, &raw.port) {
        r.at(
            p.referenced,
            format!("{field}.port"),
            "a none check has no port",
        );
        ok = false;
    }
    ok.then_some(Check {
        spec,
        timing,
        address,
    })
}

fn parse_status_range(text: &str) -> Option<(u16, u16)> {
    let valid = |c: u16| (100..=599).contains(&c);
    let (lo, hi) = match text.split_once('-') {
        Some((a, b)) => (a.trim().parse().ok()?, b.trim().parse().ok()?),
        None => {
            let c = text.trim().parse().ok()?;
            (c, c)
        }
    };
    (valid(lo) && valid(hi) && lo <= hi).then_some((lo, hi))
}

/// Names that are both static and health-checked, or CNAMEs beside a health-checked name.
fn check_conflicts(
    r: &mut Report,
    raw: &ZoneRaw,
    origin: &Name,
    records: &[RecordSetConfig],
    fqdns: &[FqdnConfig],
) {
    for f in fqdns {
        let key = relative_key(&f.name, origin);
        let at = raw
            .fqdns
            .get(&key)
            .map_or(Location::UNKNOWN, |s| s.referenced);
        for set in records.iter().filter(|s| s.owner == f.name) {
            let clash = match set.rtype {
                RecordType::CNAME => Some("a CNAME"),
                RecordType::A if f.members.iter().any(|m| m.address.is_ipv4()) => {
                    Some("static A records")
                }
                RecordType::AAAA if f.members.iter().any(|m| m.address.is_ipv6()) => {
                    Some("static AAAA records")
                }
                _ => None,
            };
            if let Some(what) = clash {
                r.at(
                    at,
                    format!("fqdns.{key}"),
                    format!("{} also has {what} under records.{key}", f.name),
                );
            }
        }
    }
    // Two fqdns keys may spell the same name (`vault` and `vault.kemp.local.`).
    let mut seen = HashSet::new();
    for f in fqdns {
        if !seen.insert(f.name.to_lowercase()) {
            r.at(
                Location::UNKNOWN,
                format!("fqdns.{}", relative_key(&f.name, origin)),
                format!("{} is defined twice", f.name),
            );
        }
    }
}

fn relative_key(name: &Name, origin: &Name) -> String {
    if name == origin {
        return "@".into();
    }
    let full = name.to_string();
    let suffix = format!(".{origin}");
    full.strip_suffix(&suffix).unwrap_or(&full).to_string()
}

// ---------------------------------------------------------------------------------------------
// Names

fn parse_absolute(text: &str) -> Result<Name, String> {
    let mut name = Name::from_ascii(text.trim()).map_err(|e| format!("bad name `{text}`: {e}"))?;
    name.set_fqdn(true);
    Ok(name)
}

/// An owner written relative to the zone (`ns1`, `_vault._tcp`, `@`) or absolute with a
/// trailing dot, which must then lie inside the zone.
fn parse_owner(text: &str, origin: &Name) -> Result<Name, String> {
    let text = text.trim();
    if text == "@" || text.is_empty() {
        return Ok(origin.clone());
    }
    if text.ends_with('.') {
        let name = parse_absolute(text)?;
        if !origin.zone_of(&name) {
            return Err(format!("{name} is outside the zone {origin}"));
        }
        return Ok(name);
    }
    Name::from_ascii(text)
        .and_then(|n| n.append_domain(origin))
        .map_err(|e| format!("bad name `{text}`: {e}"))
}

/// A name in record data: absolute with a trailing dot, otherwise relative to the zone.
fn parse_target(text: &str, origin: &Name) -> Result<Name, String> {
    let text = text.trim();
    if text == "@" {
        return Ok(origin.clone());
    }
    if text.ends_with('.') {
        return parse_absolute(text);
    }
    Name::from_ascii(text)
        .and_then(|n| n.append_domain(origin))
        .map_err(|e| format!("bad name `{text}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(text: &str) -> Result<ZoneConfig, ConfigErrors> {
        parse_zone(Path::new("z.yaml"), text)
    }

    #[test]
    fn minimal_zone_gets_defaults() {
        let z =
            zone("zone: example.test\nns: [ns1]\nrecords:\n  ns1: { A: 192.0.2.53 }\n").unwrap();
        assert_eq!(z.origin.to_string(), "example.test.");
        assert_eq!(z.soa.mname.to_string(), "ns1.example.test.");
        assert_eq!(z.soa.rname.to_string(), "hostmaster.example.test.");
        assert_eq!(
            z.records[0].rdata,
            vec![RData::A(
                "192.0.2.53".parse::<std::net::Ipv4Addr>().unwrap().into()
            )]
        );
    }

    #[test]
    fn errors_name_line_column_and_field() {
        let text = "zone: example.test\nns: [ns1]\nfqdns:\n  www:\n    members:\n      - { address: 192.0.2.1, weight: 0 }\n      - { address: 192.0.2.1 }\n      - { address: nope }\n";
        let errs = zone(text).unwrap_err().0;
        let lines: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert!(
            lines.contains(
                &"z.yaml:6:39: fqdns.www.members[0].weight: must be between 1 and 1000000 (got 0)"
                    .to_string()
            ),
            "{lines:?}"
        );
        assert!(
            lines.contains(
                &"z.yaml:7:20: fqdns.www.members[1].address: duplicate member 192.0.2.1"
                    .to_string()
            ),
            "{lines:?}"
        );
        assert!(
            lines.contains(
                &"z.yaml:8:20: fqdns.www.members[2].address: `nope` is not an IP address"
                    .to_string()
            ),
            "{lines:?}"
        );
    }

    #[test]
    fn unknown_field_is_reported_with_its_path() {
        let text = "zone: example.test\nns: [ns1]\nfqdns:\n  www:\n    members:\n      - { address: 192.0.2.1, wieght: 5 }\n";
        let e = &zone(text).unwrap_err().0[0];
        assert_eq!((e.line, e.column), (6, 31));
        assert_eq!(e.field, "fqdns.www.members[0].wieght");
        assert!(
            e.message.starts_with("unknown field `wieght`"),
            "{}",
            e.message
        );
    }

    #[test]
    fn relative_and_absolute_rdata_names() {
        let text = "zone: example.test\nns: [ns1]\nrecords:\n  www: { CNAME: vault }\n  _x._tcp: { SRV: \"0 0 8200 vault.example.test.\" }\n  mx: { MX: \"10 mail\" }\n";
        let z = zone(text).unwrap();
        let get = |t| z.records.iter().find(|s| s.rtype == t).unwrap().rdata[0].to_string();
        assert_eq!(get(RecordType::CNAME), "vault.example.test.");
        assert_eq!(get(RecordType::SRV), "0 0 8200 vault.example.test.");
        assert_eq!(get(RecordType::MX), "10 mail.example.test.");
    }

    #[test]
    fn check_timing_and_status_ranges() {
        let text = "zone: example.test\nns: [ns1]\nfqdns:\n  www:\n    check: { type: https, path: /v1/sys/health, expect: [200, 429-430], interval: 1s }\n    members: [{ address: 192.0.2.1 }]\n";
        let z = zone(text).unwrap();
        let c = &z.fqdns[0].members[0].checks[0];
        assert_eq!(c.timing.interval, Duration::from_secs(1));
        assert_eq!(c.timing.timeout, Duration::from_millis(800));
        let CheckSpec::Http(h) = &c.spec else {
            panic!()
        };
        assert_eq!(
            (h.port, h.tls, h.expect.clone()),
            (443, true, vec![(200, 200), (429, 430)])
        );
    }

    #[test]
    fn status_range_parsing() {
        assert_eq!(parse_status_range("200"), Some((200, 200)));
        assert_eq!(parse_status_range("200-299"), Some((200, 299)));
        assert_eq!(parse_status_range("299-200"), None);
        assert_eq!(parse_status_range("99"), None);
    }
}
