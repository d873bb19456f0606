//! The validated configuration, which the zone table is compiled from.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::{Name, RData, RecordType};
use ipnet::IpNet;

use super::budget::Budget;
use crate::geo::GeoDb;
use crate::model::name::KeyBuf;
use crate::model::{
    Check, CheckSpec, PackedRecords, Policy, ProbeKey, Quorum, Recovery, Roles, WhenAllDown,
};

/// The whole configuration: server settings and every zone.
#[derive(Clone, Debug)]
pub struct Config {
    pub server: ServerConfig,
    pub zones: Vec<ZoneConfig>,
}

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub file: PathBuf,
    /// A hash of the file's text: a reload with the same server file may reuse the zones
    /// whose files did not change either.
    pub source: u64,
    /// Each address gets a UDP socket and a TCP listener.
    pub listen: Vec<SocketAddr>,
    pub zones_dir: PathBuf,
    /// The GeoIP database, opened and verified at load time.
    pub geoip: Option<Arc<GeoDb>>,
    /// Use the EDNS Client Subnet option of queries (RFC 7871) to place clients.
    pub ecs: bool,
    /// Largest UDP response sent and advertised, 512 to 4096.
    pub edns_udp_size: u16,
    pub admin: Option<AdminConfig>,
    pub forward: Option<ForwardConfig>,
    /// Log one line per query.
    pub query_log: bool,
    /// Reload when the files change (SIGHUP reloads either way).
    pub watch: bool,
    pub tcp: TcpConfig,
    /// Response rate limiting for UDP; off without a `rate-limit:` section.
    pub rate_limit: Option<RateLimitConfig>,
    pub cookies: CookiesConfig,
    /// Who may query this server at all.
    pub access: AccessConfig,
    /// The user (and group) to run as once sockets are open, when started as root.
    pub run_as: Option<RunAs>,
    pub log_format: LogFormat,
    /// Where maintenance flags are kept across restarts.
    pub state_file: PathBuf,
    /// Slots of the DNSSEC signature cache (rounded up to a power of two); a restart
    /// applies a change.
    pub signature_cache: usize,
    /// What the server says of itself, each off unless configured.
    pub identity: IdentityConfig,
    /// Health by quorum with the other servers of a cluster (`cluster:`).
    pub cluster: Option<super::cluster::ClusterConfig>,
    /// UDP off AF_XDP rings on one interface (`xdp:`); read at start.
    pub xdp: Option<XdpConfig>,
}

/// `xdp:`: the interface whose UDP to the listen port is taken through AF_XDP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XdpConfig {
    pub interface: String,
}

/// How log lines are written (`log-format:`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// `user:` and `group:`, resolved when the file is loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunAs {
    pub user: String,
    pub uid: u32,
    pub group: String,
    pub gid: u32,
}

/// An access list (`access:`), for the server or for one zone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessConfig {
    /// When given, only these client networks are served.
    pub allow: Option<Vec<IpNet>>,
    /// These never are, even if `allow` lists them.
    pub deny: Vec<IpNet>,
    /// A denied client gets nothing at all, rather than REFUSED.
    pub drop: bool,
}

impl AccessConfig {
    /// Whether `client` (the packet's source) is turned away.
    pub fn denies(&self, client: IpAddr) -> bool {
        self.deny.iter().any(|n| n.contains(&client))
            || self
                .allow
                .as_ref()
                .is_some_and(|allow| !allow.iter().any(|n| n.contains(&client)))
    }
}

/// DNS Cookies (`cookies:`, RFC 7873 and 9018).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CookiesConfig {
    pub enabled: bool,
    /// A secret shared by the servers of a fleet; without one, a random secret rotates.
    pub secret: Option<[u8; 16]>,
    pub secret_lifetime: Duration,
    /// Largest UDP answer to a query without a valid server cookie.
    pub nocookie_udp_size: u16,
}

/// Response rate limiting (`rate-limit:`): token buckets per client network and response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Responses a second, per client network and kind of response.
    pub responses_per_second: u32,
    /// Responses a bucket holds when full: how many may come at once after a quiet time.
    pub burst: u32,
    /// Every `slip`-th response over the limit goes out truncated (TC=1) rather than being
    /// dropped, so that a real client behind the address retries over TCP; 0 drops all.
    pub slip: u32,
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
    /// Client networks never limited.
    pub exempt: Vec<IpNet>,
    /// Buckets in the table (rounded up to a power of two); fixed at start-up.
    pub table_size: usize,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            responses_per_second: 200,
            burst: 200,
            slip: 2,
            ipv4_prefix: 24,
            ipv6_prefix: 56,
            exempt: Vec::new(),
            table_size: 1 << 18,
        }
    }
}

/// Limits on DNS over TCP (RFC 7766), against clients that hold connections open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpConfig {
    /// Open connections at most (further capped at half the process's file limit).
    pub max_connections: usize,
    /// Open connections from one client address at most.
    pub max_connections_per_client: usize,
    /// A connection with no query for this long is closed.
    pub idle_timeout: Duration,
    /// A query (once its first byte came) or a response must cross within this.
    pub io_timeout: Duration,
    /// A connection is closed after answering this many queries.
    pub max_queries_per_connection: usize,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            max_connections: 1024,
            max_connections_per_client: 32,
            idle_timeout: Duration::from_secs(5),
            io_timeout: Duration::from_secs(2),
            max_queries_per_connection: 1000,
        }
    }
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
    /// A hash of the file's text, which a reload compares to reuse the compiled zone.
    pub source: u64,
    pub origin: Name,
    pub ttl: u32,
    pub soa: SoaConfig,
    pub ns: Vec<Name>,
    pub records: Vec<RecordSetConfig>,
    pub sites: Vec<SiteConfig>,
    pub health_checked: Vec<HealthCheckedNameConfig>,
    /// Who may query this zone.
    pub access: AccessConfig,
    /// Online signing, when the zone has a `dnssec:` section.
    pub dnssec: Option<super::DnssecConfig>,
    /// The master file its `records-file:` names, with the hash of its bytes.
    pub records_file: Option<(PathBuf, u64)>,
    /// Zone transfers to secondaries, when the zone has a `transfer:` section.
    pub transfer: Option<super::TransferConfig>,
    /// What `meridian check` and the log warn about.
    pub warnings: Vec<super::ConfigError>,
}

/// `identity:` in the server file: NSID (RFC 5001) and the CHAOS TXT names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdentityConfig {
    /// Sent in the NSID option to queries that carry one.
    pub nsid: Option<String>,
    /// Answered to `version.bind` and `version.server` (CH TXT).
    pub version: Option<String>,
    /// Answered to `hostname.bind` and `id.server` (CH TXT).
    pub hostname: Option<String>,
}

impl ZoneConfig {
    /// The files besides its YAML that the zone is read from: its key files, then its
    /// records file.
    pub fn dependencies(&self) -> Vec<PathBuf> {
        let keys = self
            .dnssec
            .as_ref()
            .map(|d| d.key_files())
            .unwrap_or_default();
        keys.into_iter()
            .chain(self.records_file.as_ref().map(|(p, _)| p.clone()))
            .collect()
    }

    /// Sets the serial of a zone whose file does not give one from the zone's text and
    /// other files (after `source` is set): the same files give the same serial on every
    /// server. It is a hash, so a change may give a smaller one; the server keeps serials
    /// growing (see `state::serials`).
    pub fn derive_serial(&mut self) {
        if self.soa.serial_given {
            return;
        }
        let h = super::with_dependencies(self.source, self.dependencies_hash());
        self.soa.serial = ((h >> 32) ^ h) as u32;
        if self.soa.serial == 0 {
            self.soa.serial = 1;
        }
    }

    /// Their hash, as a reload computes it from the files; `None` without any.
    pub fn dependencies_hash(&self) -> Option<u64> {
        let keys = self.dnssec.as_ref().map(|d| d.keys_hash());
        match (keys, &self.records_file) {
            (None, None) => None,
            (keys, records) => {
                let h = keys.unwrap_or(0);
                Some(records.as_ref().map_or(h, |(_, r)| h.rotate_left(5) ^ r))
            }
        }
    }
}

/// What the serving table was compiled from, for a reload to skip what did not change.
#[derive(Clone, Debug, Default)]
pub struct Known {
    /// The server file's [`ServerConfig::source`]; zones are reused only while it holds.
    pub server: u64,
    /// Each zone file's [`ZoneConfig::source`], origin and DNSSEC key file.
    pub zones: std::collections::HashMap<PathBuf, KnownZone>,
}

/// What a zone was compiled from.
#[derive(Clone, Debug)]
pub struct KnownZone {
    pub source: u64,
    pub origin: Name,
    /// The other files the zone is read from (key files, then its records file): they
    /// count in `source`, so a change to one compiles the zone again.
    pub dependencies: Vec<PathBuf>,
}

/// A zone file whose text is what the serving table was compiled from: not parsed again.
#[derive(Clone, Debug)]
pub struct UnchangedZone {
    pub file: PathBuf,
    pub origin: Name,
}

#[derive(Clone, Debug)]
pub struct SoaConfig {
    pub mname: Name,
    pub rname: Name,
    /// As `soa.serial` gives it, or derived from the zone's files (see
    /// [`ZoneConfig::derive_serial`]).
    pub serial: u32,
    /// Whether `soa.serial` gives it.
    pub serial_given: bool,
    pub refresh: i32,
    pub retry: i32,
    pub expire: i32,
    pub minimum: u32,
}

/// A static RRset, encoded once as the table keeps it: compiling copies the bytes rather
/// than encoding hickory's types again, and a zone of a million record sets holds no
/// `RData` (some 100 bytes a record) and no owner `Name` (80 bytes a set) while it loads.
/// The owner is the records' own.
#[derive(Clone, Debug)]
pub struct RecordSetConfig {
    pub ttl: u32,
    pub rtype: RecordType,
    pub records: PackedRecords,
}

impl RecordSetConfig {
    /// # Panics
    /// If `rdata` is empty (a set has a record), or a record does not encode.
    pub fn new(owner: &Name, ttl: u32, rtype: RecordType, rdata: Vec<RData>) -> Self {
        assert!(!rdata.is_empty(), "a record set has records");
        RecordSetConfig {
            ttl,
            rtype,
            records: PackedRecords::of_rdata(owner, ttl, &rdata),
        }
    }

    pub fn owner(&self) -> Name {
        self.first().owner()
    }

    /// The owner's key (lower-cased wire form), as the table has it.
    pub fn owner_key(&self) -> KeyBuf {
        self.first().owner_key()
    }

    /// Whether `other` has the same owner, without making either's key.
    pub fn same_owner(&self, other: &RecordSetConfig) -> bool {
        self.first().same_owner(&other.first())
    }

    /// The records' data, decoded (for tests: the table reads the wire form).
    #[cfg(test)]
    pub fn rdata(&self) -> Vec<RData> {
        self.records.iter().map(|r| r.record().data).collect()
    }

    fn first(&self) -> crate::model::WireRef<'_> {
        self.records
            .iter()
            .next()
            .expect("a record set has records")
    }
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
    /// `recovery:` for the members on this site that set none themselves (nor their name).
    pub recovery: Option<Recovery>,
}

/// A health-checked name (an entry under `fqdns:`): members, and how to choose among them.
#[derive(Clone, Debug)]
pub struct HealthCheckedNameConfig {
    pub name: Name,
    pub policy: Policy,
    pub ttl: u32,
    pub answers: u32,
    pub when_all_down: WhenAllDown,
    /// Tiers of roles, as masks of role indices: the first tier with a member up in one of
    /// its roles answers. Empty: roles do not choose.
    pub roles: Vec<u64>,
    pub members: Vec<MemberConfig>,
    /// `failover-within`, met by `budget` (validation refuses a name that misses it).
    pub failover_within: Option<Duration>,
    /// The worst case from a member failing to the last cached answer naming it.
    pub budget: Option<Budget>,
    /// `sticky:`: how long a client keeps its member after its last query.
    pub sticky: Option<Duration>,
}

#[derive(Clone, Debug)]
pub struct MemberConfig {
    pub address: IpAddr,
    pub weight: u32,
    /// Index into the zone's `sites`.
    pub site: Option<usize>,
    pub checks: Vec<Check>,
    pub enabled: bool,
    /// The node's own name (Vault's `api_addr` host), by which other nodes may name it
    /// as the leader.
    pub node: Option<String>,
    pub recovery: Recovery,
    /// Its name's `quorum:`: how the views of a cluster's servers decide its probes.
    pub quorum: Quorum,
}

impl MemberConfig {
    /// The roles of the first of the member's own checks that has roles.
    pub fn roles(&self) -> Option<&Arc<Roles>> {
        self.checks.iter().find_map(|c| match &c.spec {
            CheckSpec::Http(h) => h.roles.as_ref(),
            _ => None,
        })
    }
}

impl ZoneConfig {
    /// The probes behind `member`: its own checks, then its site's, each of the member's
    /// address unless the check names another.
    pub fn probe_keys<'a>(
        &'a self,
        member: &'a MemberConfig,
    ) -> impl Iterator<Item = ProbeKey> + 'a {
        let site_checks = member
            .site
            .map(|i| self.sites[i].checks.as_slice())
            .unwrap_or_default();
        member
            .checks
            .iter()
            .chain(site_checks)
            .map(|check| ProbeKey {
                address: check.address.unwrap_or(member.address),
                check: check.clone(),
                quorum: member.quorum,
            })
    }
}

impl Config {
    /// Every zone's warnings.
    pub fn warnings(&self) -> impl Iterator<Item = &super::ConfigError> {
        self.zones.iter().flat_map(|z| &z.warnings)
    }

    /// Names with a `quorum:` other than local while the server file has no `cluster:`:
    /// they decide by this server's own probes, which their author may not expect.
    pub fn quorum_without_cluster(&self) -> Vec<&Name> {
        if self.server.cluster.is_some() {
            return Vec::new();
        }
        self.zones
            .iter()
            .flat_map(|z| &z.health_checked)
            .filter(|n| n.members.iter().any(|m| m.quorum != Quorum::Local))
            .map(|n| &n.name)
            .collect()
    }

    /// Every probe the configuration needs, with who uses it (`name member`, for logs).
    pub fn probe_users(&self) -> impl Iterator<Item = (ProbeKey, String)> + '_ {
        self.zones.iter().flat_map(|zone| {
            zone.health_checked.iter().flat_map(move |name| {
                name.members.iter().flat_map(move |m| {
                    zone.probe_keys(m)
                        .map(move |key| (key, format!("{} {}", name.name, m.address)))
                })
            })
        })
    }
}
