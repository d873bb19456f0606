//! What a health check probes, and how often.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

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
