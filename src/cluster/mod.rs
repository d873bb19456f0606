//! Health by quorum across the servers of a cluster (`cluster:` in the server file).
//!
//! Each server probes for itself; the servers tell one another what their probes of
//! `quorum:` names see, and each decides a probe's state from its own view and its live
//! peers' (see [`crate::model::quorum`]). Membership, failure detection and dissemination
//! are SWIM, by the `foca` crate ([`gossip`]); every datagram is sealed with the shared
//! key ([`seal`]). Each server also publishes a fingerprint of the zones it serves, so a
//! peer serving other zone files shows as a configuration mismatch.
//!
//! The query path is untouched: a quorum's decision is written into the probe's state,
//! which answers read as they always do.

mod gossip;
mod seal;
mod views;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::{Notify, watch};
use tracing::{info, warn};

use crate::config::ClusterConfig;
use crate::model::ProbeState;

/// The probes of the configuration being served (the registry's, handed in by the state).
pub type ProbeSource = Box<dyn Fn() -> Vec<Arc<ProbeState>> + Send + Sync>;

/// How often the peers' names are resolved again (a Kubernetes headless Service changes
/// as pods come and go).
const RESOLVE_EVERY: Duration = Duration::from_secs(5);

/// The cluster member of this server: a handle on the task that gossips.
pub struct Cluster {
    shared: Arc<Shared>,
    config: ClusterConfig,
}

struct Shared {
    status: Mutex<Status>,
    /// Of the zones served; set after every load.
    fingerprint: AtomicU64,
    /// A load changed the probes.
    reloaded: Notify,
    /// This server's view of a quorum probe changed.
    seen_changed: Arc<Notify>,
    traffic: Traffic,
    probes: ProbeSource,
}

/// What the cluster exchange has cost, for metrics.
#[derive(Debug, Default)]
pub struct Traffic {
    pub sent_messages: AtomicU64,
    pub sent_bytes: AtomicU64,
    pub received_messages: AtomicU64,
    pub received_bytes: AtomicU64,
    /// Datagrams not sealed with the cluster's key (or damaged), dropped.
    pub rejected: AtomicU64,
}

/// The cluster as this server sees it.
#[derive(Clone, Debug, Default)]
pub struct Status {
    /// The address peers know this server by (once known).
    pub address: Option<SocketAddr>,
    /// The peers' addresses `cluster.peers` resolves to now that are not live members.
    pub unreachable: Vec<SocketAddr>,
    /// The live members.
    pub peers: Vec<PeerStatus>,
    /// No live peer: every name decides by this server's own probes.
    pub isolated: bool,
    /// Of the zones this server serves.
    pub fingerprint: u64,
    /// Probes of names with a quorum.
    pub quorum_probes: usize,
}

#[derive(Clone, Debug)]
pub struct PeerStatus {
    pub address: SocketAddr,
    /// `alive`, or `suspect` while SWIM checks whether it is gone.
    pub state: &'static str,
    /// Unix seconds the peer started at.
    pub started: u64,
    /// Of the zones it serves, once it has said.
    pub fingerprint: Option<u64>,
    /// It serves the same zones (or has not said yet).
    pub same_config: bool,
    /// Probes it reports on.
    pub views: usize,
}

impl Status {
    /// Live peers that serve other zones than this server.
    pub fn mismatched(&self) -> usize {
        self.peers.iter().filter(|p| !p.same_config).count()
    }
}

impl Cluster {
    /// Binds the cluster socket and starts gossiping (within a Tokio runtime).
    /// `seen_changed` is woken when this server's own view of a quorum probe changes.
    pub async fn start(
        config: &ClusterConfig,
        probes: ProbeSource,
        seen_changed: Arc<Notify>,
    ) -> std::io::Result<Cluster> {
        let socket = UdpSocket::bind(config.listen).await?;
        let shared = Arc::new(Shared {
            status: Mutex::new(Status {
                isolated: true,
                ..Status::default()
            }),
            fingerprint: AtomicU64::new(0),
            reloaded: Notify::new(),
            seen_changed,
            traffic: Traffic::default(),
            probes,
        });
        let (resolved_tx, resolved) = watch::channel(Vec::new());
        tokio::spawn(resolve_peers(config.peers.clone(), resolved_tx));
        let seal = seal::Seal::new(&config.key);
        let listen = config.listen;
        let task_shared = shared.clone();
        tokio::spawn(async move {
            let addr = match advertised(listen, resolved.clone()).await {
                Some(a) => a,
                None => return,
            };
            info!(%addr, "cluster: gossiping");
            let me = views::Node {
                addr,
                started: gossip::unix_ms(),
            };
            gossip::run(socket, me, seal, task_shared, resolved).await;
        });
        Ok(Cluster {
            shared,
            config: config.clone(),
        })
    }

    /// What this server was started with (a reload cannot change it).
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// A load is serving: its zones' fingerprint, and its probes to gossip about.
    pub fn loaded(&self, fingerprint: u64) {
        self.shared
            .fingerprint
            .store(fingerprint, Ordering::Relaxed);
        self.shared.reloaded.notify_one();
    }

    pub fn status(&self) -> Status {
        self.shared.status.lock().expect("status lock").clone()
    }

    pub fn traffic(&self) -> &Traffic {
        &self.shared.traffic
    }
}

/// The address peers reach this server at: `cluster.listen`, or when that is a wildcard
/// (0.0.0.0), the source address the system would use towards the first peer (found
/// without sending anything).
async fn advertised(
    listen: SocketAddr,
    mut resolved: watch::Receiver<Vec<SocketAddr>>,
) -> Option<SocketAddr> {
    if !listen.ip().is_unspecified() {
        return Some(listen);
    }
    loop {
        let first = resolved.borrow_and_update().first().copied();
        if let Some(peer) = first {
            let any: IpAddr = if peer.is_ipv4() {
                [0, 0, 0, 0].into()
            } else {
                std::net::Ipv6Addr::UNSPECIFIED.into()
            };
            let probe = std::net::UdpSocket::bind((any, 0)).ok()?;
            if probe.connect(peer).is_ok()
                && let Ok(local) = probe.local_addr()
            {
                return Some(SocketAddr::new(local.ip(), listen.port()));
            }
        }
        resolved.changed().await.ok()?;
    }
}

/// Resolves `cluster.peers` now and every [`RESOLVE_EVERY`]; a name that does not
/// resolve is logged (once while it keeps failing) and tried again.
async fn resolve_peers(peers: Vec<String>, out: watch::Sender<Vec<SocketAddr>>) {
    let mut failing = std::collections::HashSet::new();
    loop {
        let mut all = Vec::new();
        for peer in &peers {
            let lookup = tokio::time::timeout(
                Duration::from_secs(5),
                tokio::net::lookup_host(peer.as_str()),
            )
            .await;
            match lookup {
                Ok(Ok(addrs)) => {
                    failing.remove(peer);
                    all.extend(addrs);
                }
                Ok(Err(e)) => {
                    if failing.insert(peer.clone()) {
                        warn!(peer, error = %e, "cluster: peer does not resolve; trying again");
                    }
                }
                Err(_) => {
                    if failing.insert(peer.clone()) {
                        warn!(peer, "cluster: resolving the peer timed out; trying again");
                    }
                }
            }
        }
        all.sort();
        all.dedup();
        out.send_if_modified(|current| {
            let changed = *current != all;
            *current = all;
            changed
        });
        if out.is_closed() {
            return;
        }
        tokio::time::sleep(RESOLVE_EVERY).await;
    }
}
