//! YAML configuration: the server file and one file per zone, parsed and validated.
//!
//! Parsing happens in two passes. serde (through serde-saphyr) turns YAML into the shapes
//! of `yaml`, which keep the source position of every value (`Spanned`); then `zone` and
//! `check` validate those into the typed configuration below, which the zone table is
//! compiled from. Every problem found on the way becomes a [`ConfigError`] naming file,
//! line, column and field, and validation keeps going so that `meridian check` reports all
//! of them at once.

mod check;
mod yaml;
mod zone;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::{Name, RData, RecordType};
use ipnet::IpNet;
use serde_saphyr::Location;

use crate::geo::GeoDb;
use crate::select::{Policy, WhenAllDown};
use yaml::{ForwardRaw, ServerRaw, ZoneRaw, items, parse_yaml, read_file};
use zone::validate_zone;

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

#[cfg(test)]
mod tests {
    use super::check::parse_status_range;
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
