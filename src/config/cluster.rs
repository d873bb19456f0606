//! The server file's `cluster:` section: where this server gossips, the peers it joins,
//! and the shared key that seals every message between them.

use std::net::SocketAddr;
use std::path::Path;

use super::error::Report;
use super::yaml::{ClusterRaw, items};

/// Where the servers of a cluster tell one another what their probes see.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// The UDP address gossip goes out from and comes in on.
    pub listen: SocketAddr,
    /// Peers to join: `host:port`, each an address or a name that resolves to the
    /// addresses of several (a Kubernetes headless Service). Resolved again while running.
    pub peers: Vec<String>,
    /// The shared key as given; the cipher key is derived from it.
    pub key: Vec<u8>,
}

// The key stays out of logs and debug output.
impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("listen", &self.listen)
            .field("peers", &self.peers)
            .finish_non_exhaustive()
    }
}

/// The shortest key accepted: 32 characters (`openssl rand -base64 32` gives 44).
const MIN_KEY: usize = 32;

pub(super) fn validate_cluster(
    r: &mut Report,
    base: &Path,
    raw: &super::yaml::Spanned<ClusterRaw>,
) -> Option<ClusterConfig> {
    let c = &raw.value;
    let errors = r.count();
    let listen = match c.listen.value.trim().parse::<SocketAddr>() {
        Ok(a) if a.port() != 0 => Some(a),
        _ => {
            r.at(
                c.listen.referenced,
                "cluster.listen",
                format!(
                    "`{}` is not an address with a port (write 10.0.0.5:5400, or 0.0.0.0:5400 to take the one peers reach)",
                    c.listen.value
                ),
            );
            None
        }
    };
    let mut peers = Vec::new();
    for (i, (loc, text)) in items(&c.peers).enumerate() {
        let peer = text.trim();
        let port_ok = peer.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0)
        });
        if !port_ok {
            r.at(
                loc,
                format!("cluster.peers[{i}]"),
                format!(
                    "`{peer}` is not host:port (write 10.0.0.6:5400 or meridian-peers.dns.svc:5400)"
                ),
            );
        } else if Some(peer) == listen.map(|l| l.to_string()).as_deref() {
            r.at(
                loc,
                format!("cluster.peers[{i}]"),
                "is this server's own cluster.listen; list the others (a name that also resolves to this server is fine)",
            );
        } else {
            peers.push(peer.to_string());
        }
    }
    if peers.is_empty() && r.count() == errors {
        r.at(
            c.peers.referenced,
            "cluster.peers",
            "needs at least one peer to join",
        );
    }
    let key = match (&c.key, &c.key_file) {
        (Some(k), Some(_)) => {
            r.at(
                k.referenced,
                "cluster.key",
                "give the key or a key-file, not both",
            );
            None
        }
        (Some(k), None) => Some((
            k.referenced,
            "cluster.key",
            k.value.trim().as_bytes().to_vec(),
        )),
        (None, Some(f)) => {
            let path = base.join(f.value.trim());
            match crate::model::file::read_regular(&path, 4096) {
                Ok(bytes) => Some((
                    f.referenced,
                    "cluster.key-file",
                    bytes.trim_ascii().to_vec(),
                )),
                Err(e) => {
                    r.at(
                        f.referenced,
                        "cluster.key-file",
                        format!("{}: {e}", path.display()),
                    );
                    None
                }
            }
        }
        (None, None) => {
            r.at(
                raw.referenced,
                "cluster.key",
                "needs the shared key (key: or key-file:) that every server of the cluster has",
            );
            None
        }
    };
    let key = key.and_then(|(loc, field, key)| {
        if key.len() < MIN_KEY {
            r.at(
                loc,
                field,
                format!("use at least {MIN_KEY} characters (openssl rand -base64 32 makes one)"),
            );
            None
        } else {
            Some(key)
        }
    });
    Some(ClusterConfig {
        listen: listen?,
        peers,
        key: key?,
    })
    .filter(|_| r.count() == errors)
}
