//! What a health check probes, and how often.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

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
        }
    }
}
