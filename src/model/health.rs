//! Health handles: the state that checkers write and the query path reads.
//!
//! A [`ProbeState`] is the live state of one probe (one check of one address). Members
//! hold `Arc`s to the probes behind them in a [`MemberHealth`], so the query path reads
//! up/down through atomics and never waits for a checker.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use super::check::{CheckSpec, ProbeKey};
use super::quorum::{Decision, PeerView, Quorum, tally};

use super::role::{NO_ROLE, Roles};

/// The probes one configuration uses, by key.
pub type ProbeSet = HashMap<ProbeKey, Arc<ProbeState>>;

/// Milliseconds on a process-wide monotonic clock; 0 is reserved for "no deadline".
pub(super) fn clock_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

/// How far off a deadline (from `change_deadline`) is: the query path takes the soonest
/// of a pool's deadlines and reads the clock once, not once per member.
pub fn time_until(deadline: u64) -> Duration {
    Duration::from_millis(deadline.saturating_sub(clock_ms()))
}

/// The last completed probe run, kept for the status API and logs.
#[derive(Clone, Debug)]
pub struct ProbeResult {
    pub ok: bool,
    pub reason: String,
    pub latency: Duration,
    pub at: SystemTime,
    /// The leader this node named (checks with a leader query), as it wrote it.
    pub leader: Option<String>,
    /// When the current run of failures began, while the probe is failing.
    pub failing_since: Option<SystemTime>,
}

/// What the status API shows of a probe besides up/down.
#[derive(Clone, Debug)]
pub struct ProbeDetail {
    pub last: Option<ProbeResult>,
    /// When the current state began.
    pub since: SystemTime,
    pub state_changes: u64,
    /// When the latest changes happened, oldest first (at most [`FLAP_MEMORY`]).
    pub recent_changes: VecDeque<SystemTime>,
    /// This server's own view (the checker's decision) and the role it saw; the state
    /// is this view unless the probe has a quorum and peers report on it.
    pub seen_up: bool,
    pub seen_role: u8,
    /// What the live peers of a cluster see (quorum probes only).
    pub peers: Vec<PeerView>,
}

/// How far back state changes count towards flapping.
pub const FLAP_WINDOW: Duration = Duration::from_secs(3600);
/// State changes within [`FLAP_WINDOW`] from which a probe (or member) is flapping: three
/// times down and up again in an hour.
pub const FLAP_THRESHOLD: usize = 6;
/// Changes remembered per probe: enough to count past the threshold.
const FLAP_MEMORY: usize = 64;

impl ProbeDetail {
    /// State changes within [`FLAP_WINDOW`] before `now`.
    pub fn changes_within_window(&self, now: SystemTime) -> usize {
        self.recent_changes
            .iter()
            .filter(|t| now.duration_since(**t).is_ok_and(|age| age <= FLAP_WINDOW))
            .count()
    }
}

/// Upper bounds, in seconds, of the probe duration histogram's buckets.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Totals of a probe's runs, for metrics.
#[derive(Clone, Debug)]
pub struct ProbeStats {
    pub ok: u64,
    pub failed: u64,
    /// Sum of run durations, microseconds.
    pub latency_us: u64,
    /// Runs per bucket of [`LATENCY_BUCKETS`] (not cumulative), then the runs above them.
    pub buckets: [u64; LATENCY_BUCKETS.len() + 1],
}

/// The live state of one probe.
#[derive(Debug)]
pub struct ProbeState {
    pub key: ProbeKey,
    /// The decided state: this server's view, or with a quorum, the cluster's.
    up: AtomicBool,
    /// The role index (checks with roles): the settled one while up, the last seen while
    /// down (a sealed node shows as sealed); [`NO_ROLE`] otherwise.
    role: AtomicU8,
    /// Hash of the host this node last named as the leader, 0 for none ([`vote_of`]).
    leader_vote: AtomicU64,
    /// Times this probe went down (its first result included), for manual recovery.
    downs: AtomicU64,
    /// `clock_ms()` time by which the state could flip; 0 while up and stable.
    change_deadline: AtomicU64,
    detail: Mutex<ProbeDetail>,
    /// Names and members that use this probe, for log lines.
    users: Mutex<Vec<String>>,
    runs_ok: AtomicU64,
    runs_failed: AtomicU64,
    latency_us: AtomicU64,
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    /// Told of every change of state, so that the state watcher looks at once instead of
    /// at its next tick (zone transfers then NOTIFY secondaries within milliseconds).
    changed: Option<Arc<tokio::sync::Notify>>,
    /// Told when this server's own view of a quorum probe changes, so that the cluster
    /// sends it at once.
    seen_changed: Option<Arc<tokio::sync::Notify>>,
}

impl ProbeState {
    pub fn new(key: ProbeKey) -> Self {
        ProbeState {
            key,
            // Up until the first result: that result decides at once, and the server does
            // not answer before the first round is over.
            up: AtomicBool::new(true),
            role: AtomicU8::new(NO_ROLE),
            leader_vote: AtomicU64::new(0),
            downs: AtomicU64::new(0),
            change_deadline: AtomicU64::new(0),
            detail: Mutex::new(ProbeDetail {
                last: None,
                since: SystemTime::now(),
                state_changes: 0,
                recent_changes: VecDeque::new(),
                seen_up: true,
                seen_role: NO_ROLE,
                peers: Vec::new(),
            }),
            users: Mutex::new(Vec::new()),
            runs_ok: AtomicU64::new(0),
            runs_failed: AtomicU64::new(0),
            latency_us: AtomicU64::new(0),
            buckets: Default::default(),
            changed: None,
            seen_changed: None,
        }
    }

    /// A new probe whose changes wake `changed`, and the changes of its own view (with a
    /// quorum) `seen_changed`.
    pub fn watched(
        key: ProbeKey,
        changed: Arc<tokio::sync::Notify>,
        seen_changed: Arc<tokio::sync::Notify>,
    ) -> Self {
        ProbeState {
            changed: Some(changed),
            seen_changed: Some(seen_changed),
            ..ProbeState::new(key)
        }
    }

    pub fn stats(&self) -> ProbeStats {
        ProbeStats {
            ok: self.runs_ok.load(Ordering::Relaxed),
            failed: self.runs_failed.load(Ordering::Relaxed),
            latency_us: self.latency_us.load(Ordering::Relaxed),
            buckets: std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed)),
        }
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    pub fn role(&self) -> u8 {
        self.role.load(Ordering::Relaxed)
    }

    /// The roles this probe's check reads, if it has any.
    pub fn roles(&self) -> Option<&Roles> {
        match &self.key.check.spec {
            CheckSpec::Http(h) => h.roles.as_deref(),
            _ => None,
        }
    }

    /// The name of the current role, if there is one.
    pub fn role_name(&self) -> Option<&str> {
        self.roles()?.name(self.role())
    }

    /// How many times this probe has gone down.
    pub fn downs(&self) -> u64 {
        self.downs.load(Ordering::Relaxed)
    }

    /// Whom this node names as the leader: a [`vote_of`] hash, 0 for nobody.
    pub fn leader_vote(&self) -> u64 {
        self.leader_vote.load(Ordering::Relaxed)
    }

    /// How long until this probe's state could change, if it is down or changing.
    pub fn change_within(&self) -> Option<Duration> {
        self.change_deadline().map(time_until)
    }

    /// When this probe's state could change ([`time_until`] tells how far off that is), if
    /// it is down or changing.
    #[inline]
    pub fn change_deadline(&self) -> Option<u64> {
        let deadline = self.change_deadline.load(Ordering::Relaxed);
        (deadline != 0).then_some(deadline)
    }

    pub fn detail(&self) -> ProbeDetail {
        self.detail.lock().expect("probe detail lock").clone()
    }

    pub fn users(&self) -> Vec<String> {
        self.users.lock().expect("probe users lock").clone()
    }

    /// Records who uses this probe now (after a load), for log lines.
    pub fn set_users(&self, users: Vec<String>) {
        *self.users.lock().expect("probe users lock") = users;
    }

    /// Publishes a checker decision: the state, and how soon it could change again.
    /// Returns the decided state's change, `(was up, is up)`, when it changed.
    pub fn publish(
        &self,
        up: bool,
        role: u8,
        change_in: Option<Duration>,
        result: ProbeResult,
    ) -> Option<(bool, bool)> {
        let runs = if result.ok {
            &self.runs_ok
        } else {
            &self.runs_failed
        };
        runs.fetch_add(1, Ordering::Relaxed);
        self.latency_us
            .fetch_add(result.latency.as_micros() as u64, Ordering::Relaxed);
        let seconds = result.latency.as_secs_f64();
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|&le| seconds <= le)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let deadline = change_in.map_or(0, |d| clock_ms() + d.as_millis() as u64);
        self.change_deadline.store(deadline, Ordering::Relaxed);
        let vote = result.leader.as_deref().map_or(0, vote_of);
        self.leader_vote.store(vote, Ordering::Relaxed);
        let mut detail = self.detail.lock().expect("probe detail lock");
        if (detail.seen_up, detail.seen_role) != (up, role)
            && self.key.quorum != Quorum::Local
            && let Some(cluster) = &self.seen_changed
        {
            cluster.notify_one();
        }
        detail.seen_up = up;
        detail.seen_role = role;
        let at = result.at;
        // The first result is where the probe starts, not a change: a probe starts up
        // before its first run, so one that is down at start would otherwise count one.
        let first = detail.last.is_none();
        detail.last = Some(result);
        self.settle(&mut detail, at, first)
    }

    /// What the live peers of a cluster now see of this probe (all of them, replacing
    /// what they saw before; none when no peer reports it or none is left). Returns the
    /// decided state's change, `(was up, is up)`, when it changed.
    pub fn set_peer_views(&self, peers: Vec<PeerView>) -> Option<(bool, bool)> {
        let mut detail = self.detail.lock().expect("probe detail lock");
        if detail.peers == peers {
            return None;
        }
        detail.peers = peers;
        let first = detail.last.is_none();
        self.settle(&mut detail, SystemTime::now(), first)
    }

    /// This server's own view: up, and the role seen.
    pub fn seen(&self) -> (bool, u8) {
        let detail = self.detail.lock().expect("probe detail lock");
        (detail.seen_up, detail.seen_role)
    }

    /// How the state was decided: this server's view and its peers', counted.
    pub fn decision(&self) -> Decision {
        let detail = self.detail.lock().expect("probe detail lock");
        Decision {
            quorum: self.key.quorum,
            seen_up: detail.seen_up,
            peers: detail.peers.clone(),
            up: self.is_up(),
        }
    }

    /// Decides the state from this server's view and its peers', and publishes it.
    fn settle(
        &self,
        detail: &mut ProbeDetail,
        at: SystemTime,
        first: bool,
    ) -> Option<(bool, bool)> {
        let was_up = self.up.load(Ordering::Relaxed);
        let (up, role) = if self.key.quorum == Quorum::Local || detail.peers.is_empty() {
            (detail.seen_up, detail.seen_role)
        } else {
            let (down, vantage) = tally(detail.seen_up, &detail.peers);
            let up = self.key.quorum.decide(down, vantage).unwrap_or(was_up);
            // Up by the others' word while this server cannot see it: the role is the
            // one most of them see.
            let role = if up && !detail.seen_up {
                most_seen_role(&detail.peers).unwrap_or(detail.seen_role)
            } else {
                detail.seen_role
            };
            (up, role)
        };
        let was_role = self.role.swap(role, Ordering::Relaxed);
        if !up && was_up {
            // Before `up` flips, so that a reader that sees the probe down sees this too.
            self.downs.fetch_add(1, Ordering::Relaxed);
        }
        self.up.store(up, Ordering::Relaxed);
        // A settled change of role (active to standby) is a change of state; the role a
        // down probe last saw is not.
        let changed = was_up != up || (up && was_role != role);
        if changed || first {
            detail.since = at;
        }
        if !changed || first {
            return None;
        }
        if let Some(watcher) = &self.changed {
            watcher.notify_one();
        }
        detail.state_changes += 1;
        if detail.recent_changes.len() == FLAP_MEMORY {
            detail.recent_changes.pop_front();
        }
        detail.recent_changes.push_back(at);
        Some((was_up, up))
    }
}

/// The role most of the peers that see a target up see it in.
fn most_seen_role(peers: &[PeerView]) -> Option<u8> {
    let mut counts: Vec<(u8, usize)> = Vec::new();
    for p in peers.iter().filter(|p| p.up) {
        match counts.iter_mut().find(|(r, _)| *r == p.role) {
            Some((_, n)) => *n += 1,
            None => counts.push((p.role, 1)),
        }
    }
    // The first seen wins a tie: peers come in a stable order.
    counts.iter().rev().max_by_key(|(_, n)| *n).map(|(r, _)| *r)
}

/// A stable hash of a host name or address as a node names the leader (lower case, no
/// scheme, port or trailing dot), never 0; members are known by the same hash of their
/// address and node name, so the query path compares numbers.
pub fn vote_of(host: &str) -> u64 {
    let mut vote = Vote::default();
    vote.add_text(host.trim_end_matches('.'));
    vote.finish()
}

/// [`vote_of`] of a text given in pieces (`write!`), without the text: what a table
/// compiles for each of its members (some 300,000 strings formatted and dropped a load,
/// at 100,000 names). Equal to `vote_of` of the whole text when it does not end in a dot.
pub struct Vote(u64);

impl Default for Vote {
    fn default() -> Vote {
        // FNV-1a: stable across runs and builds, unlike `DefaultHasher`'s promise.
        Vote(0xcbf2_9ce4_8422_2325)
    }
}

impl Vote {
    pub fn add_text(&mut self, text: &str) {
        self.add_bytes(text.as_bytes());
    }

    fn add_bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b.to_ascii_lowercase());
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    /// An address as `Display` writes it; IPv4 without `fmt`'s number formatting, which
    /// was most of the cost.
    pub fn address(&mut self, address: std::net::IpAddr) {
        use std::fmt::Write;
        match address {
            std::net::IpAddr::V4(v4) => {
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    let mut digits = [b'.', 0, 0, 0];
                    let mut n = 1;
                    if octet >= 100 {
                        digits[n] = b'0' + octet / 100;
                        n += 1;
                    }
                    if octet >= 10 {
                        digits[n] = b'0' + octet / 10 % 10;
                        n += 1;
                    }
                    digits[n] = b'0' + octet % 10;
                    self.add_bytes(&digits[usize::from(i == 0)..=n]);
                }
            }
            std::net::IpAddr::V6(v6) => {
                let _ = write!(self, "{v6}");
            }
        }
    }

    pub fn finish(&self) -> u64 {
        self.0.max(1)
    }
}

impl std::fmt::Write for Vote {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        self.add_text(text);
        Ok(())
    }
}

/// The health of one member as the query path sees it: up when it is enabled (in YAML,
/// and not put in maintenance through the admin API) and every probe behind it (its own
/// checks and its site's) is up.
///
/// The maintenance flag lives here and nowhere else; a reload copies it from the member it
/// replaces.
#[derive(Debug)]
pub struct MemberHealth {
    probes: Box<[Arc<ProbeState>]>,
    /// The first probe with roles: the one that says what this member is.
    role_probe: Option<u16>,
    enabled: bool,
    maintenance: AtomicBool,
    /// `recovery: manual`: once down, the member stays out until an operator recovers it.
    manual_recovery: bool,
    /// The probes' total `downs` that an operator has seen (recovered from); more means
    /// the member went down since, and a manual-recovery member is held down.
    acknowledged_downs: AtomicU64,
    /// Unix time a drain began (out of answers until enabled again); 0 when not draining.
    draining_since: AtomicU64,
}

/// A member's state as answers see it: [`Condition::Up`] or why not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    Up,
    /// A probe behind it is down.
    Down,
    /// Put in maintenance through the admin API.
    Maintenance,
    /// Drained through the admin API.
    Draining,
    /// Went down with `recovery: manual` and waits for an operator.
    Held,
    /// `enabled: false` in the zone file.
    Disabled,
}

impl Condition {
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Up => "up",
            Condition::Down => "down",
            Condition::Maintenance => "maintenance",
            Condition::Draining => "draining",
            Condition::Held => "held",
            Condition::Disabled => "disabled",
        }
    }
}

/// How a member comes back after going down.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Recovery {
    /// As soon as its checks pass (`rise`).
    #[default]
    Auto,
    /// Only when an operator says so (Kemp's "Site Recovery Mode: Manual").
    Manual,
}

impl MemberHealth {
    /// `acknowledged`: the count a previous table's member had (a reload keeps holds);
    /// `None` for a new member, which is held if it is down now.
    pub fn new(
        probes: Vec<Arc<ProbeState>>,
        enabled: bool,
        in_maintenance: bool,
        recovery: Recovery,
        acknowledged: Option<u64>,
    ) -> Self {
        let downs: u64 = probes.iter().map(|p| p.downs()).sum();
        let down_now = probes.iter().filter(|p| !p.is_up()).count() as u64;
        MemberHealth {
            role_probe: probes
                .iter()
                .position(|p| p.roles().is_some())
                .and_then(|i| u16::try_from(i).ok()),
            probes: probes.into_boxed_slice(),
            enabled,
            maintenance: AtomicBool::new(in_maintenance),
            manual_recovery: recovery == Recovery::Manual,
            acknowledged_downs: AtomicU64::new(
                acknowledged.unwrap_or(downs.saturating_sub(down_now)),
            ),
            draining_since: AtomicU64::new(0),
        }
    }

    /// Starts a drain at `since` (unix seconds), or ends it with `None`.
    pub fn set_draining(&self, since: Option<u64>) {
        self.draining_since
            .store(since.unwrap_or(0), Ordering::Relaxed);
    }

    /// When the drain began, if the member is draining.
    pub fn draining_since(&self) -> Option<u64> {
        let since = self.draining_since.load(Ordering::Relaxed);
        (since != 0).then_some(since)
    }

    pub fn always_up() -> Self {
        Self::new(Vec::new(), true, false, Recovery::Auto, None)
    }

    fn downs(&self) -> u64 {
        self.probes.iter().map(|p| p.downs()).sum()
    }

    /// The count to hand to the member that replaces this one on reload.
    pub fn acknowledged_downs(&self) -> u64 {
        self.acknowledged_downs.load(Ordering::Relaxed)
    }

    /// Manual recovery: went down since an operator last recovered it (whether or not its
    /// checks pass again).
    pub fn is_held(&self) -> bool {
        self.manual_recovery && self.downs() > self.acknowledged_downs.load(Ordering::Relaxed)
    }

    pub fn manual_recovery(&self) -> bool {
        self.manual_recovery
    }

    /// An operator lets the member back in: the downs so far are seen. It still needs its
    /// checks to pass.
    pub fn recover(&self) {
        self.acknowledged_downs
            .store(self.downs(), Ordering::Relaxed);
    }

    pub fn set_maintenance(&self, on: bool) {
        self.maintenance.store(on, Ordering::Relaxed);
    }

    pub fn is_up(&self) -> bool {
        self.enabled
            && !self.maintenance.load(Ordering::Relaxed)
            && self.probes.iter().all(|p| p.is_up())
            && !self.is_held()
            && self.draining_since.load(Ordering::Relaxed) == 0
    }

    /// What keeps the member in or out of answers, in the order that decides it.
    pub fn condition(&self) -> Condition {
        if !self.enabled {
            Condition::Disabled
        } else if self.maintenance.load(Ordering::Relaxed) {
            Condition::Maintenance
        } else if self.draining_since.load(Ordering::Relaxed) != 0 {
            Condition::Draining
        } else if !self.probes.iter().all(|p| p.is_up()) {
            Condition::Down
        } else if self.is_held() {
            Condition::Held
        } else {
            Condition::Up
        }
    }

    /// Enabled in the configuration.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Disabled through the admin API.
    pub fn in_maintenance(&self) -> bool {
        self.maintenance.load(Ordering::Relaxed)
    }

    pub fn probes(&self) -> &[Arc<ProbeState>] {
        &self.probes
    }

    /// The probe that gives this member its role, if a check has roles.
    pub fn role_probe(&self) -> Option<&ProbeState> {
        self.role_probe.map(|i| &*self.probes[usize::from(i)])
    }

    /// The member's role index, [`NO_ROLE`] without roles.
    pub fn role(&self) -> u8 {
        self.role_probe().map_or(NO_ROLE, ProbeState::role)
    }

    /// State changes of this member's probes within [`FLAP_WINDOW`], and whether that
    /// makes it flapping.
    pub fn flaps(&self) -> (usize, bool) {
        let now = SystemTime::now();
        let changes = self
            .probes
            .iter()
            .map(|p| p.detail().changes_within_window(now))
            .sum();
        (changes, changes >= FLAP_THRESHOLD)
    }

    /// The soonest any of this member's probes could change state, if one is down or
    /// changing. A disabled member is stable.
    pub fn change_within(&self) -> Option<Duration> {
        self.change_deadline().map(time_until)
    }

    /// When the soonest of this member's probes could change state (see
    /// [`MemberHealth::change_within`]).
    #[inline]
    pub fn change_deadline(&self) -> Option<u64> {
        if !self.enabled {
            return None;
        }
        self.probes.iter().filter_map(|p| p.change_deadline()).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Write;
    use std::net::IpAddr;

    #[test]
    fn a_vote_in_pieces_is_the_vote_of_the_whole_text() {
        for text in [
            "192.0.2.1",
            "10.0.0.0",
            "255.255.255.255",
            "1.23.100.9",
            "2001:db8::1",
            "::ffff:192.0.2.1",
            "::",
        ] {
            let address: IpAddr = text.parse().unwrap();
            let mut vote = Vote::default();
            vote.address(address);
            assert_eq!(vote.finish(), vote_of(text), "{text}");
            let mut vote = Vote::default();
            write!(vote, "Vault.kemp.local. ").unwrap();
            vote.address(address);
            let whole = vote_of(&format!("vault.kemp.local. {text}"));
            assert_eq!(vote.finish(), whole, "{text}");
        }
    }
}
