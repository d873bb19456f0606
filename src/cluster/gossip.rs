//! The gossip itself: membership and failure detection by SWIM (the `foca` crate), and
//! each server's probe views and configuration fingerprint carried as foca's custom
//! broadcasts, piggybacked on its messages. Foca brings no transport: datagrams go
//! through one UDP socket, each sealed (`seal`).
//!
//! Broadcasts reach every member with high probability, not certainty. So a change also
//! goes straight to every live member, one datagram each; and each server pushes all of
//! its own items to one member a second, taking the members in turn ([`SYNC_EVERY`]), so
//! a member that missed a datagram has it again within one turn of the cluster (N - 1
//! seconds with N servers). Items carry sequence numbers per origin, so what a member
//! already has is ignored, and a push is never passed on. A probe a server stops running
//! (a reload) is retracted by a tombstone.
//!
//! Each server announces itself to the configured peers that are not (yet) members, every
//! [`ANNOUNCE_EVERY`], so a peer that starts later, or a partition that heals, joins
//! within seconds. When a member comes up, every server sends all of its views again (new
//! sequence numbers), so a newcomer learns the whole state at once.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use foca::{AccumulatingRuntime, Foca, OwnedNotification, PostcardCodec, Timer};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::seal::{OVERHEAD, Seal};
use super::views::{Handler, Item, Node, Views};
use super::{PeerStatus, Shared, Status};
use crate::model::{LogLimit, PeerView, ProbeState};

/// How often this server announces itself to configured peers that are not members.
const ANNOUNCE_EVERY: Duration = Duration::from_secs(2);
/// How often local views are compared with what was last sent, besides at once when a
/// probe's view changes.
const LOOK_EVERY: Duration = Duration::from_millis(500);
/// How often each server pushes all of its own items to the next member in turn.
const SYNC_EVERY: Duration = Duration::from_secs(1);
/// How long a tombstone is pushed: long enough for every member's turn in large clusters.
const TOMBSTONE_FOR: Duration = Duration::from_secs(300);
/// The first byte of a sealed message: what follows.
const FOCA: u8 = 0;
const SYNC: u8 = 1;
/// A UDP datagram on any path: foca packs messages up to this, less the seal.
const DATAGRAM: usize = 1400;

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
    /// The peers' addresses as `cluster.peers` resolves now.
    peers: Vec<SocketAddr>,
    /// The quorum probes of the loaded configuration, by cluster id.
    probes: HashMap<u64, Arc<ProbeState>>,
    /// What was last sent of each: (up, role), and its sequence number.
    sent: HashMap<u64, ((bool, u8), u64)>,
    sent_fingerprint: Option<(u64, u64)>,
    /// Probes this server stopped running: the tombstone's sequence number, and until
    /// when it is pushed.
    gone: HashMap<u64, (u64, Instant)>,
    /// Whose turn it is to be pushed this server's items.
    sync_turn: usize,
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
        peers: Vec::new(),
        probes: HashMap::new(),
        sent: HashMap::new(),
        sent_fingerprint: None,
        gone: HashMap::new(),
        sync_turn: 0,
        seq: 0,
        sized_for: size,
        isolated: true,
        rejected_log: LogLimit::new(Duration::from_secs(10)),
    };
    m.reload_probes();
    let mut buf = vec![0u8; 65536];
    let mut look = tokio::time::interval(LOOK_EVERY);
    let mut announce = tokio::time::interval(ANNOUNCE_EVERY);
    let mut sync = tokio::time::interval(SYNC_EVERY);
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
            _ = sync.tick() => m.sync(),
            _ = announce.tick() => {
                m.peers = resolved.borrow_and_update().clone();
                m.announce();
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
        match message.split_first() {
            Some((&FOCA, message)) => {
                if let Err(e) = self.foca.handle_data(message, &mut self.runtime) {
                    debug!(%from, error = %e, "cluster: a message foca refused");
                }
            }
            Some((&SYNC, mut items)) => {
                let mut views = self.views.lock().expect("views lock");
                while let [hi, lo, rest @ ..] = items {
                    let len = usize::from(u16::from_be_bytes([*hi, *lo]));
                    let Some((item, more)) = rest.split_at_checked(len) else {
                        break;
                    };
                    if let Ok(item) = postcard::from_bytes::<Item>(item) {
                        views.take(item);
                    }
                    items = more;
                }
            }
            _ => debug!(%from, "cluster: a message of no known kind"),
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
    fn announce(&mut self) {
        let me = self.me.lock().expect("identity lock").addr;
        let members: HashSet<SocketAddr> = self.foca.iter_members().map(|m| m.id().addr).collect();
        for &addr in &self.peers {
            if addr != me && !members.contains(&addr) {
                let _ = self
                    .foca
                    .announce(Node { addr, started: 0 }, &mut self.runtime);
            }
        }
        self.publish_status();
    }

    /// Sends what changed in this server's own views and configuration.
    fn look(&mut self) {
        let mut changed = Vec::new();
        for (&id, probe) in &self.probes {
            let seen = probe.seen();
            if self.sent.get(&id).map(|(s, _)| s) != Some(&seen) {
                self.seq += 1;
                self.sent.insert(id, (seen, self.seq));
                self.gone.remove(&id);
                changed.push(self.seen_item(id, seen, self.seq));
            }
        }
        let fingerprint = self.shared.fingerprint.load(Ordering::Relaxed);
        if self.sent_fingerprint.map(|(f, _)| f) != Some(fingerprint) {
            self.seq += 1;
            self.sent_fingerprint = Some((fingerprint, self.seq));
            changed.push(self.config_item(fingerprint, self.seq));
        }
        if !changed.is_empty() {
            self.announce_changes(&changed);
        }
        self.apply_dirty();
    }

    /// A change goes to every live member at once, one datagram each (changes are rare
    /// next to the gossip that carries them too): gossip alone reaches everyone only with
    /// high probability, and the turn-by-turn push would repair a miss only after up to
    /// N - 1 seconds.
    fn announce_changes(&mut self, items: &[Item]) {
        for item in items {
            add(&mut self.foca, item);
        }
        let _ = self.foca.broadcast(&mut self.runtime);
        let members: Vec<SocketAddr> = self.foca.iter_members().map(|m| m.id().addr).collect();
        for to in members {
            self.push(to, items);
        }
    }

    /// Pushes all of this server's own items to the next member in turn (see the module's
    /// comment), in as many datagrams as they take.
    fn sync(&mut self) {
        let now = Instant::now();
        self.gone.retain(|_, (_, until)| *until > now);
        let mut members: Vec<SocketAddr> = self.foca.iter_members().map(|m| m.id().addr).collect();
        if members.is_empty() {
            return;
        }
        members.sort();
        self.sync_turn = self.sync_turn.wrapping_add(1);
        let to = members[self.sync_turn % members.len()];
        let origin = self.me.lock().expect("identity lock").clone();
        let mut items: Vec<Item> = self
            .sent
            .iter()
            .map(|(&id, &(seen, seq))| self.seen_item(id, seen, seq))
            .collect();
        items.extend(self.gone.iter().map(|(&probe, &(seq, _))| Item::Gone {
            origin: origin.clone(),
            seq,
            probe,
        }));
        if let Some((fingerprint, seq)) = self.sent_fingerprint {
            items.push(self.config_item(fingerprint, seq));
        }
        self.push(to, &items);
    }

    /// Sends `items` straight to `to`, in as many datagrams as they take.
    fn push(&self, to: SocketAddr, items: &[Item]) {
        let mut datagram = vec![SYNC];
        for item in items {
            let data = postcard::to_allocvec(item).expect("an item encodes");
            if datagram.len() + 2 + data.len() > DATAGRAM - OVERHEAD && datagram.len() > 1 {
                self.send(to, &datagram);
                datagram.truncate(1);
            }
            datagram.extend_from_slice(&(data.len() as u16).to_be_bytes());
            datagram.extend_from_slice(&data);
        }
        if datagram.len() > 1 {
            self.send(to, &datagram);
        }
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
        // Probes this server no longer runs: their views stop counting elsewhere too.
        let dropped: Vec<u64> = self
            .sent
            .keys()
            .filter(|id| !self.probes.contains_key(id))
            .copied()
            .collect();
        let origin = self.me.lock().expect("identity lock").clone();
        let mut tombstones = Vec::new();
        for probe in dropped {
            self.sent.remove(&probe);
            self.seq += 1;
            self.gone
                .insert(probe, (self.seq, Instant::now() + TOMBSTONE_FOR));
            tombstones.push(Item::Gone {
                origin: origin.clone(),
                seq: self.seq,
                probe,
            });
        }
        if !tombstones.is_empty() {
            self.announce_changes(&tombstones);
        }
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
                    let (_, view) = views.peers.get(node)?.seen.get(&id)?;
                    let (up, role) = (*view)?;
                    Some(PeerView {
                        peer: node.addr.to_string(),
                        up,
                        role,
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
        let mut message = Vec::with_capacity(DATAGRAM);
        while let Some((to, data)) = self.runtime.to_send() {
            message.clear();
            message.push(FOCA);
            message.extend_from_slice(&data);
            self.send(to.addr, &message);
        }
    }

    /// Seals and sends one message (its kind first).
    fn send(&self, to: SocketAddr, message: &[u8]) {
        let sealed = self.seal.seal(message);
        let traffic = &self.shared.traffic;
        traffic.sent_messages.fetch_add(1, Ordering::Relaxed);
        traffic
            .sent_bytes
            .fetch_add(sealed.len() as u64, Ordering::Relaxed);
        // UDP: a full buffer or an unreachable peer is what failure detection is for.
        let _ = self.socket.try_send_to(&sealed, to);
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
        self.publish_status();
    }

    fn forget(&mut self, node: &Node) {
        let mut views = self.views.lock().expect("views lock");
        views.peers.remove(node);
    }

    /// The status page's and metrics' view of the cluster.
    fn publish_status(&self) {
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
                    views: data.map_or(0, |d| d.seen.values().filter(|(_, v)| v.is_some()).count()),
                }
            })
            .collect();
        peers.sort_by_key(|p| p.address);
        let members: HashSet<SocketAddr> = peers.iter().map(|p| p.address).collect();
        let mut status = self.shared.status.lock().expect("status lock");
        *status = Status {
            address: Some(me.addr),
            unreachable: self
                .peers
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
    // Less the seal and the message's kind.
    config.max_packet_size = NonZeroUsize::new(DATAGRAM - OVERHEAD - 1).expect("not 0");
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
