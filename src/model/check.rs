//! What a health check probes, and how often.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::quorum::Quorum;
use super::role::Roles;

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
    Http(Box<HttpCheck>),
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
    /// A client certificate and its key (PEM), for servers that ask for one.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// What the response says the member is; without roles, up or down by `expect`.
    pub roles: Option<Arc<Roles>>,
}

impl HttpCheck {
    /// Whether deciding needs the response body.
    pub fn body_wanted(&self) -> bool {
        self.roles.is_some() || self.body_contains.is_some()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Timing {
    pub interval: Duration,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
    /// Down only after failing for this long without a success, as well as `fall` times.
    pub failure_delay: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            rise: 2,
            fall: 2,
            failure_delay: Duration::ZERO,
        }
    }
}

/// What a probe checks: the address and the check with its timing. Members that share an
/// address and a check share one probe, and a reload hands an unchanged key's state on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ProbeKey {
    pub address: IpAddr,
    pub check: Check,
    /// Names with different quorums probe apart: each probe has one decided state.
    pub quorum: Quorum,
}

impl ProbeKey {
    /// What servers of a cluster know this probe by: the same address, check and quorum
    /// give the same number on every server of the same version (SipHash with fixed keys).
    pub fn cluster_id(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h =
            siphasher::sip::SipHasher13::new_with_keys(0x7072_6f62_6573, 0x0063_6c75_7374_6572);
        self.address.hash(&mut h);
        self.check.hash(&mut h);
        self.quorum.hash(&mut h);
        h.finish()
    }
}

impl fmt::Display for ProbeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = |port| SocketAddr::new(self.address, port);
        match &self.check.spec {
            CheckSpec::None => write!(f, "none {}", self.address),
            CheckSpec::Icmp => write!(f, "icmp {}", self.address),
            CheckSpec::Tcp { port } => write!(f, "tcp {}", at(*port)),
            CheckSpec::Http(h) => {
                let scheme = if h.tls { "https" } else { "http" };
                write!(f, "{scheme} {}{}", at(h.port), h.path)
            }
        }?;
        match self.quorum {
            Quorum::Local => Ok(()),
            q => write!(f, " (quorum {})", q.as_str()),
        }
    }
}
