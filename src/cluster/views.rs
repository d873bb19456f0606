//! What the servers of a cluster tell one another, and what each keeps of it: a server's
//! identity, the items (a view of a probe, a retraction, the zone fingerprint) with a
//! sequence number per origin, and the views of the other servers. Foca disseminates the
//! items through [`Handler`]; pushes straight from a server go to [`Views::take`] too.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use foca::{BroadcastHandler, Invalidates};
use serde::{Deserialize, Serialize};

/// A server of the cluster: its address, and when it started (a restarted server is a new
/// member, and wins over its former self).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(super) struct Node {
    pub addr: SocketAddr,
    pub started: u64,
}

impl foca::Identity for Node {
    type Addr = SocketAddr;

    /// Declared down while alive (a pause, a partition): rejoin as a newer self.
    fn renew(&self) -> Option<Self> {
        Some(Node {
            addr: self.addr,
            started: self.started + 1,
        })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.started > adversary.started
    }
}

/// One broadcast: what a server sees of one probe, or which configuration it serves.
/// `seq` grows with every item its origin sends; the newest per (origin, probe) wins.
#[derive(Debug, Serialize, Deserialize)]
pub(super) enum Item {
    Seen {
        origin: Node,
        seq: u64,
        probe: u64,
        up: bool,
        role: u8,
    },
    /// The origin no longer runs this probe: its view stops counting.
    Gone { origin: Node, seq: u64, probe: u64 },
    Config {
        origin: Node,
        seq: u64,
        fingerprint: u64,
    },
}

impl Item {
    pub(super) fn key(&self) -> ItemKey {
        let (origin, seq, probe) = match self {
            Item::Seen {
                origin, seq, probe, ..
            }
            | Item::Gone { origin, seq, probe } => (origin, *seq, Some(*probe)),
            Item::Config { origin, seq, .. } => (origin, *seq, None),
        };
        ItemKey {
            origin: origin.clone(),
            probe,
            seq,
        }
    }
}

/// Which broadcast an item replaces: the same origin's older item about the same thing.
pub(super) struct ItemKey {
    origin: Node,
    /// `None` for the configuration fingerprint.
    probe: Option<u64>,
    seq: u64,
}

impl Invalidates for ItemKey {
    fn invalidates(&self, other: &Self) -> bool {
        self.origin == other.origin && self.probe == other.probe && self.seq >= other.seq
    }
}

/// What each other server has told us, whether or not it is a live member now.
#[derive(Default)]
pub(super) struct Views {
    pub(super) peers: HashMap<Node, PeerData>,
    /// Probes whose peer views changed since they were last applied.
    pub(super) dirty: HashSet<u64>,
}

#[derive(Default)]
pub(super) struct PeerData {
    pub(super) fingerprint: Option<(u64, u64)>,
    /// Probe id -> (seq, (up, role)), `None` once the peer no longer runs it.
    pub(super) seen: HashMap<u64, (u64, Option<(bool, u8)>)>,
}

impl Views {
    /// Keeps what `item` (from another server) says if it is news; returns whether it was.
    pub(super) fn take(&mut self, item: Item) -> bool {
        match item {
            Item::Seen {
                origin,
                seq,
                probe,
                up,
                role,
            } => self.take_view(origin, seq, probe, Some((up, role))),
            Item::Gone { origin, seq, probe } => self.take_view(origin, seq, probe, None),
            Item::Config {
                origin,
                seq,
                fingerprint,
            } => {
                let peer = self.peers.entry(origin).or_default();
                if peer.fingerprint.is_some_and(|(s, _)| s >= seq) {
                    return false;
                }
                peer.fingerprint = Some((seq, fingerprint));
                true
            }
        }
    }

    fn take_view(&mut self, origin: Node, seq: u64, probe: u64, view: Option<(bool, u8)>) -> bool {
        let peer = self.peers.entry(origin).or_default();
        if peer.seen.get(&probe).is_some_and(|(s, _)| *s >= seq) {
            return false;
        }
        peer.seen.insert(probe, (seq, view));
        self.dirty.insert(probe);
        true
    }
}

#[derive(Debug)]
pub(super) struct Malformed;

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a broadcast that does not decode")
    }
}

impl std::error::Error for Malformed {}

/// Keeps what broadcasts say, and tells foca which are news to pass on.
pub(super) struct Handler {
    pub(super) me: Arc<Mutex<Node>>,
    pub(super) views: Arc<Mutex<Views>>,
}

impl BroadcastHandler<Node> for Handler {
    type Key = ItemKey;
    type Error = Malformed;

    fn receive_item(
        &mut self,
        data: &[u8],
        sender: Option<&Node>,
    ) -> Result<Option<ItemKey>, Malformed> {
        let item: Item = postcard::from_bytes(data).map_err(|_| Malformed)?;
        let key = item.key();
        if key.origin.addr == self.me.lock().expect("identity lock").addr {
            // Ours: pass on what we add, never what comes back.
            return Ok(sender.is_none().then_some(key));
        }
        let news = self.views.lock().expect("views lock").take(item);
        Ok(news.then_some(key))
    }
}
