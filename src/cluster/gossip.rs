//! The gossip itself: membership and failure detection by SWIM (the `foca` crate), and
//! each server's probe views and configuration fingerprint carried as foca's custom
//! broadcasts, piggybacked on its messages. Foca brings no transport: datagrams go
//! through one UDP socket, each sealed (`seal`).
//!
//! Each server announces itself to the configured peers that are not (yet) members, every
//! [`ANNOUNCE_EVERY`], so a peer that starts later, or a partition that heals, joins
//! within seconds. When a member comes up, every server sends all of its views again (new
//! sequence numbers), so a newcomer learns the whole state.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use foca::{
    AccumulatingRuntime, BroadcastHandler, Foca, Invalidates, OwnedNotification, PostcardCodec,
    Timer,
};
use serde::{Deserialize, Serialize};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::seal::{OVERHEAD, Seal};
use super::{PeerStatus, Shared, Status};
use crate::model::{LogLimit, PeerView, ProbeState};

/// How often this server announces itself to configured peers that are not members.
const ANNOUNCE_EVERY: Duration = Duration::from_secs(2);
/// How often local views are compared with what was last sent, besides at once when a
/// probe's view changes.
const LOOK_EVERY: Duration = Duration::from_millis(500);
/// How often each server sends all of its items again (see `Member::refresh`): the most a
/// member that missed one waits for it.
const REFRESH_EVERY: Duration = Duration::from_secs(5);
/// A UDP datagram on any path: foca packs messages up to this, less the seal.
const DATAGRAM: usize = 1400;

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
enum Item {
    Seen {
        origin: Node,
        seq: u64,
        probe: u64,
        up: bool,
        role: u8,
    },
    Config {
        origin: Node,
        seq: u64,
        fingerprint: u64,
    },
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
    peers: HashMap<Node, PeerData>,
    /// Probes whose peer views changed since they were last applied.
    dirty: HashSet<u64>,
}

#[derive(Default)]
struct PeerData {
    fingerprint: Option<(u64, u64)>,
    /// Probe id -> (seq, up, role).
    seen: HashMap<u64, (u64, bool, u8)>,
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
    me: Arc<Mutex<Node>>,
    views: Arc<Mutex<Views>>,
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
        let (origin, seq, probe) = match &item {
            Item::Seen {
                origin, seq, probe, ..
            } => (origin, *seq, Some(*probe)),
            Item::Config { origin, seq, .. } => (origin, *seq, None),
        };
        let key = ItemKey {
            origin: origin.clone(),
            probe,
            seq,
        };
        if origin.addr == self.me.lock().expect("identity lock").addr {
            // Ours: pass on what we add, never what comes back.
            return Ok(sender.is_none().then_some(key));
        }
        let mut views = self.views.lock().expect("views lock");
        let peer = views.peers.entry(origin.clone()).or_default();
        match item {
            Item::Seen {
                probe, up, role, ..
            } => {
                if peer.seen.get(&probe).is_some_and(|(s, ..)| *s >= seq) {
                    return Ok(None);
                }
                peer.seen.insert(probe, (seq, up, role));
                views.dirty.insert(probe);
            }
            Item::Config { fingerprint, .. } => {
                if peer.fingerprint.is_some_and(|(s, _)| s >= seq) {
                    return Ok(None);
                }
                peer.fingerprint = Some((seq, fingerprint));
            }
        }
        Ok(Some(key))
    }
}

type Gossip = Foca<Node, PostcardCodec, rand::rngs::StdRng, Handler>;

/// The state of the loop that runs foca.
struct Member {
    foca: Gossip,
    runtime: AccumulatingRuntime<Node>,
    me: Arc<Mutex<Node>>,
    views: Arc<Mutex<Views>>,
    seal: Seal,
    socket: Arc<UdpSocket>,
    shared: Arc<Shared>,
    timers: Vec<(Instant, Timer<Node>)>,
    /// The quorum probes of the loaded configuration, by cluster id.
    probes: HashMap<u64, Arc<ProbeState>>,
    /// What was last sent of each: (up, role), and its sequence number.
    sent: HashMap<u64, ((bool, u8), u64)>,
    sent_fingerprint: Option<(u64, u64)>,
    seq: u64,
    /// The cluster size foca's settings were made for.
    sized_for: usize,
    isolated: bool,
    rejected_log: LogLimit,
}

/// Runs the cluster member until the process ends.
pub(super) async fn run(
    socket: UdpSocket,
    me: Node,
    seal: Seal,
    shared: Arc<Shared>,
    mut resolved: watch::Receiver<Vec<SocketAddr>>,
) {
    let size = resolved.borrow().len() + 1;
    let config = sized(size);
    let views = Arc::new(Mutex::new(Views::default()));
    let me = Arc::new(Mutex::new(me));
    let handler = Handler {
        me: me.clone(),
        views: views.clone(),
    };
    let identity = me.lock().expect("identity lock").clone();
    let mut m = Member {
        foca: Foca::with_custom_broadcast(
            identity,
            config,
            rand::make_rng(),
            PostcardCodec,
            handler,
        ),
        runtime: AccumulatingRuntime::new(),
        me,
        views,
        seal,
        socket: Arc::new(socket),
        shared,
        timers: Vec::new(),
        probes: HashMap::new(),
        sent: HashMap::new(),
        sent_fingerprint: None,
        seq: 0,
        sized_for: size,
        isolated: true,
        rejected_log: LogLimit::new(Duration::from_secs(10)),
    };
    m.reload_probes();
    let mut buf = vec![0u8; 65536];
    let mut look = tokio::time::interval(LOOK_EVERY);
    let mut announce = tokio::time::interval(ANNOUNCE_EVERY);
    let mut refresh = tokio::time::interval(REFRESH_EVERY);
    loop {
        let next_timer = m.timers.iter().map(|(at, _)| *at).min();
        let sleep = tokio::time::sleep_until(
            next_timer
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))
                .into(),
        );
        tokio::select! {
            got = m.socket.recv_from(&mut buf) => {
                if let Ok((len, from)) = got {
                    m.receive(&mut buf[..len], from);
                }
            }
            () = sleep => m.fire_timers(),
            _ = look.tick() => m.look(),
            () = m.shared.seen_changed.notified() => m.look(),
            _ = refresh.tick() => m.refresh(),
            _ = announce.tick() => {
                let peers = resolved.borrow_and_update().clone();
                m.announce(&peers);
            }
            () = m.shared.reloaded.notified() => {
                m.reload_probes();
                m.look();
            }
        }
        // Peers' views that came in take effect at once.
        m.apply_dirty();
        m.drain();
    }
}

impl Member {
    fn receive(&mut self, datagram: &mut [u8], from: SocketAddr) {
        let traffic = &self.shared.traffic;
        traffic.received_messages.fetch_add(1, Ordering::Relaxed);
        traffic
            .received_bytes
            .fetch_add(datagram.len() as u64, Ordering::Relaxed);
        let Some(message) = self.seal.open(datagram) else {
            traffic.rejected.fetch_add(1, Ordering::Relaxed);
            if let Some(suppressed) = self.rejected_log.allow() {
                warn!(%from, suppressed, "cluster: dropped a datagram not sealed with cluster.key");
            }
            return;
        };
        if let Err(e) = self.foca.handle_data(message, &mut self.runtime) {
            debug!(%from, error = %e, "cluster: a message foca refused");
        }
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.timers)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        self.timers = later;
        for (_, timer) in due {
            if let Err(e) = self.foca.handle_timer(timer, &mut self.runtime) {
                debug!(error = %e, "cluster: timer");
            }
        }
    }

    /// Joins the configured peers that are not members (itself excluded).
    fn announce(&mut self, peers: &[SocketAddr]) {
        let me = self.me.lock().expect("identity lock").addr;
        let members: HashSet<SocketAddr> = self.foca.iter_members().map(|m| m.id().addr).collect();
        for &addr in peers {
            if addr != me && !members.contains(&addr) {
                let _ = self
                    .foca
                    .announce(Node { addr, started: 0 }, &mut self.runtime);
            }
        }
        self.publish_status(peers);
    }

    /// Sends what changed in this server's own views and configuration.
    fn look(&mut self) {
        let mut changed = false;
        for (&id, probe) in &self.probes {
            let seen = probe.seen();
            if self.sent.get(&id).map(|(s, _)| s) != Some(&seen) {
                self.seq += 1;
                self.sent.insert(id, (seen, self.seq));
                let item = self.seen_item(id, seen, self.seq);
                add(&mut self.foca, &item);
                changed = true;
            }
        }
        let fingerprint = self.shared.fingerprint.load(Ordering::Relaxed);
        if self.sent_fingerprint.map(|(f, _)| f) != Some(fingerprint) {
            self.seq += 1;
            self.sent_fingerprint = Some((fingerprint, self.seq));
            let item = self.config_item(fingerprint, self.seq);
            add(&mut self.foca, &item);
            changed = true;
        }
        if changed {
            // At once, rather than with the next message foca sends anyway.
            let _ = self.foca.broadcast(&mut self.runtime);
        }
        self.apply_dirty();
    }

    /// Everything this server has sent, sent again as it was (same sequence numbers).
    /// Dissemination by gossip reaches every member only with high probability; a member
    /// that missed an item takes it now and passes it on, while members that have it
    /// neither take it again nor pass it on, so this costs little more than one round of
    /// this server's own items.
    fn refresh(&mut self) {
        let sent: Vec<(u64, (bool, u8), u64)> = self
            .sent
            .iter()
            .map(|(&id, &(seen, seq))| (id, seen, seq))
            .collect();
        for (id, seen, seq) in sent {
            let item = self.seen_item(id, seen, seq);
            add(&mut self.foca, &item);
        }
        if let Some((fingerprint, seq)) = self.sent_fingerprint {
            let item = self.config_item(fingerprint, seq);
            add(&mut self.foca, &item);
        }
        let _ = self.foca.broadcast(&mut self.runtime);
    }

    fn seen_item(&self, probe: u64, (up, role): (bool, u8), seq: u64) -> Item {
        Item::Seen {
            origin: self.me.lock().expect("identity lock").clone(),
            seq,
            probe,
            up,
            role,
        }
    }

    fn config_item(&self, fingerprint: u64, seq: u64) -> Item {
        Item::Config {
            origin: self.me.lock().expect("identity lock").clone(),
            seq,
            fingerprint,
        }
    }

    /// Everything this server sees, sent again (for a newcomer, or under a new identity).
    fn send_all_again(&mut self) {
        self.sent.clear();
        self.sent_fingerprint = None;
        self.look();
    }

    fn reload_probes(&mut self) {
        self.probes = (self.shared.probes)()
            .into_iter()
            .filter(|p| p.key.quorum != crate::model::Quorum::Local)
            .map(|p| (p.key.cluster_id(), p))
            .collect();
        self.sent.retain(|id, _| self.probes.contains_key(id));
        let mut views = self.views.lock().expect("views lock");
        views.dirty.extend(self.probes.keys().copied());
    }

    /// Gives each probe whose peers' views changed its new views, and logs decisions.
    fn apply_dirty(&mut self) {
        let dirty: Vec<u64> = {
            let mut views = self.views.lock().expect("views lock");
            views.dirty.drain().collect()
        };
        if dirty.is_empty() {
            return;
        }
        let live: Vec<Node> = self.foca.iter_members().map(|m| m.id().clone()).collect();
        let views = self.views.lock().expect("views lock");
        for id in dirty {
            let Some(probe) = self.probes.get(&id) else {
                continue;
            };
            let mut peers: Vec<PeerView> = live
                .iter()
                .filter_map(|node| {
                    let (_, up, role) = views.peers.get(node)?.seen.get(&id)?;
                    Some(PeerView {
                        peer: node.addr.to_string(),
                        up: *up,
                        role: *role,
                    })
                })
                .collect();
            peers.sort_by(|a, b| a.peer.cmp(&b.peer));
            if let Some((was, now)) = probe.set_peer_views(peers) {
                let why = probe.decision().why();
                if now {
                    info!(probe = %probe.key, was_up = was, why, "up by the cluster's views");
                } else {
                    warn!(probe = %probe.key, was_up = was, why, "down by the cluster's views");
                }
            }
        }
    }

    /// Sends what foca wants sent, schedules its timers, and follows membership (which
    /// may give more to send).
    fn drain(&mut self) {
        loop {
            self.flush();
            let now = Instant::now();
            while let Some((after, timer)) = self.runtime.to_schedule() {
                self.timers.push((now + after, timer));
            }
            let mut notes = Vec::new();
            while let Some(n) = self.runtime.to_notify() {
                notes.push(n);
            }
            if notes.is_empty() {
                return;
            }
            self.follow(notes);
        }
    }

    fn flush(&mut self) {
        let traffic = &self.shared.traffic;
        while let Some((to, data)) = self.runtime.to_send() {
            let sealed = self.seal.seal(&data);
            traffic.sent_messages.fetch_add(1, Ordering::Relaxed);
            traffic
                .sent_bytes
                .fetch_add(sealed.len() as u64, Ordering::Relaxed);
            // UDP: a full buffer or an unreachable peer is what failure detection is for.
            let _ = self.socket.try_send_to(&sealed, to.addr);
        }
    }

    fn follow(&mut self, notes: Vec<OwnedNotification<Node>>) {
        let mut membership = false;
        for n in notes {
            match n {
                OwnedNotification::MemberUp(node) => {
                    info!(peer = %node.addr, "cluster: peer joined");
                    membership = true;
                    // The newcomer knows nothing yet: everything again.
                    self.send_all_again();
                }
                OwnedNotification::MemberDown(node) => {
                    warn!(peer = %node.addr, "cluster: peer down; its views no longer count");
                    self.forget(&node);
                    membership = true;
                }
                OwnedNotification::Rename(old, _) => {
                    self.forget(&old);
                    membership = true;
                }
                OwnedNotification::Rejoin(node) => {
                    info!(
                        started = node.started,
                        "cluster: declared down by the peers; rejoined"
                    );
                    *self.me.lock().expect("identity lock") = node;
                    self.send_all_again();
                }
                _ => {}
            }
        }
        if !membership {
            return;
        }
        self.views
            .lock()
            .expect("views lock")
            .dirty
            .extend(self.probes.keys().copied());
        self.apply_dirty();
        let isolated = self.foca.num_members() == 0;
        if isolated && !self.isolated {
            warn!("cluster: no peer left; every name decides by this server's own probes");
        } else if !isolated && self.isolated {
            info!(
                peers = self.foca.num_members(),
                "cluster: in touch with peers"
            );
        }
        self.isolated = isolated;
        // Transmissions per broadcast and the suspicion timeout grow with the log of the
        // size: follow the membership as it grows or shrinks.
        let size = self.foca.num_members() + 1;
        if size != self.sized_for && self.foca.set_config(sized(size)).is_ok() {
            self.sized_for = size;
        }
        let configured = self
            .shared
            .status
            .lock()
            .expect("status lock")
            .configured
            .clone();
        self.publish_status(&configured);
    }

    fn forget(&mut self, node: &Node) {
        let mut views = self.views.lock().expect("views lock");
        views.peers.remove(node);
    }

    /// The status page's and metrics' view of the cluster.
    fn publish_status(&self, configured: &[SocketAddr]) {
        let views = self.views.lock().expect("views lock");
        let ours = self.shared.fingerprint.load(Ordering::Relaxed);
        let me = self.me.lock().expect("identity lock").clone();
        let mut peers: Vec<PeerStatus> = self
            .foca
            .iter_members()
            .map(|m| {
                let data = views.peers.get(m.id());
                let fingerprint = data.and_then(|d| d.fingerprint).map(|(_, f)| f);
                PeerStatus {
                    address: m.id().addr,
                    state: match m.state() {
                        foca::State::Suspect => "suspect",
                        _ => "alive",
                    },
                    started: m.id().started / 1000,
                    fingerprint,
                    same_config: fingerprint.is_none_or(|f| f == ours),
                    views: data.map_or(0, |d| d.seen.len()),
                }
            })
            .collect();
        peers.sort_by_key(|p| p.address);
        let members: HashSet<SocketAddr> = peers.iter().map(|p| p.address).collect();
        let mut status = self.shared.status.lock().expect("status lock");
        *status = Status {
            address: Some(me.addr),
            configured: configured.to_vec(),
            unreachable: configured
                .iter()
                .filter(|a| **a != me.addr && !members.contains(a))
                .copied()
                .collect(),
            isolated: peers.is_empty(),
            fingerprint: ours,
            peers,
            quorum_probes: self.probes.len(),
        };
    }
}

/// Foca's LAN settings (memberlist's) for a cluster of `size`, in datagrams that leave
/// room for the seal.
fn sized(size: usize) -> foca::Config {
    let n = NonZeroU32::new(size.clamp(3, 10_000) as u32).expect("not 0");
    let mut config = foca::Config::new_lan(n);
    config.max_packet_size = NonZeroUsize::new(DATAGRAM - OVERHEAD).expect("not 0");
    config
}

fn add(foca: &mut Gossip, item: &Item) {
    let data = postcard::to_allocvec(item).expect("an item encodes");
    if let Err(e) = foca.add_broadcast(&data) {
        debug!(error = %e, "cluster: broadcast not added");
    }
}

pub(super) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
