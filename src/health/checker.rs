//! Runs every probe on its interval and turns results into up/down with rise/fall
//! hysteresis.
//!
//! Each probe is a tokio task (not a thread) that sleeps between runs; a semaphore bounds
//! how many run at once. A probe's first result decides its state directly; after that it
//! takes `rise` consecutive successes to go up and `fall` consecutive failures to go down.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::{Semaphore, oneshot};
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tracing::{info, warn};

use super::probe::{Outcome, ProbeContext, Prober};
use crate::model::health::ProbeResult;
use crate::model::{ProbeKey, ProbeSet, ProbeState, Quorum, Timing};

/// Probes running at once (TCP and HTTP; ICMP has its own, smaller bound).
const MAX_CONCURRENT_PROBES: usize = 512;

pub struct Checker {
    prober: Arc<Prober>,
    limit: Arc<Semaphore>,
    tasks: Mutex<HashMap<ProbeKey, AbortHandle>>,
}

impl Default for Checker {
    fn default() -> Self {
        Checker {
            prober: Arc::new(Prober::default()),
            limit: Arc::new(Semaphore::new(MAX_CONCURRENT_PROBES)),
            tasks: Mutex::new(HashMap::new()),
        }
    }
}

impl Checker {
    /// Starts a task for every probe that has none and stops the tasks of probes not in
    /// `probes`; probes already running keep their state and timers. Returns once every
    /// newly started probe has its first result, or its timeout (and a margin) has passed.
    pub async fn sync(&self, probes: &ProbeSet) -> SyncReport {
        let mut first_results = Vec::new();
        let mut wait = Duration::ZERO;
        {
            let mut tasks = self.tasks.lock().expect("checker lock");
            tasks.retain(|key, task| {
                let keep = probes.contains_key(key);
                if !keep {
                    task.abort();
                }
                keep
            });
            for probe in probes.values() {
                if tasks.contains_key(&probe.key) {
                    continue;
                }
                let (tx, rx) = oneshot::channel();
                first_results.push(rx);
                wait = wait.max(probe.key.check.timing.timeout);
                let task = tokio::spawn(run(
                    probe.clone(),
                    self.prober.clone(),
                    self.limit.clone(),
                    tx,
                ));
                tasks.insert(probe.key.clone(), task.abort_handle());
            }
        }
        let started = first_results.len();
        let deadline = Instant::now() + wait + Duration::from_secs(1);
        let mut late = 0;
        for rx in first_results {
            if tokio::time::timeout_at(deadline, rx).await.is_err() {
                late += 1;
            }
        }
        SyncReport { started, late }
    }

    /// Stops every probe.
    pub fn stop_all(&self) {
        let mut tasks = self.tasks.lock().expect("checker lock");
        tasks.values().for_each(AbortHandle::abort);
        tasks.clear();
    }

    /// Opens the ICMP sockets before privileges are dropped (see `Prober`).
    pub async fn open_icmp_sockets(&self) {
        self.prober.open_icmp_sockets().await;
    }

    pub fn running(&self) -> usize {
        self.tasks.lock().expect("checker lock").len()
    }
}

impl Drop for Checker {
    fn drop(&mut self) {
        if let Ok(tasks) = self.tasks.lock() {
            tasks.values().for_each(AbortHandle::abort);
        }
    }
}

/// What a `sync` did.
#[derive(Clone, Copy, Debug)]
pub struct SyncReport {
    /// Probes started.
    pub started: usize,
    /// Of those, how many had no first result by the deadline.
    pub late: usize,
}

/// What one run says a member is: down, or up in a role ([`NO_ROLE`] for checks without
/// roles).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seen {
    Down,
    Up(u8),
}

impl Seen {
    fn of(outcome: &Outcome) -> Seen {
        if outcome.ok {
            Seen::Up(outcome.role)
        } else {
            Seen::Down
        }
    }
}

/// Consecutive-result hysteresis: a new state is taken after `rise` runs in a row that
/// see it up (in one role), or `fall` runs in a row that see it down. Without roles this
/// is the usual up/down rule; with them, a move from one role to another (a leader
/// stepping down to standby) settles like a recovery, so one odd answer moves nothing.
struct Hysteresis {
    rise: u32,
    fall: u32,
    /// Going down also takes failing for this long (`failure-delay`).
    delay: Duration,
    state: Seen,
    /// A state other than the current one, seen that many times in a row since then.
    pending: Option<(Seen, u32, Instant)>,
    /// When the current run of failures began (its first failed probe), if it is failing.
    failing_since: Option<Instant>,
}

impl Hysteresis {
    fn new(timing: Timing, first: Seen) -> Self {
        Hysteresis {
            rise: timing.rise,
            fall: timing.fall,
            delay: timing.failure_delay,
            state: first,
            pending: None,
            failing_since: None,
        }
    }

    fn needed(&self, to: Seen) -> u32 {
        if to == Seen::Down {
            self.fall
        } else {
            self.rise
        }
    }

    fn is_up(&self) -> bool {
        matches!(self.state, Seen::Up(_))
    }

    /// What is left of the failure delay for a run of failures that began at `since`.
    fn delay_left(&self, to: Seen, since: Instant, now: Instant) -> Duration {
        if to == Seen::Down {
            self.delay.saturating_sub(now - since)
        } else {
            Duration::ZERO
        }
    }

    /// Returns whether the state changed.
    fn observe(&mut self, seen: Seen, now: Instant) -> bool {
        self.failing_since = match seen {
            Seen::Down => Some(self.failing_since.unwrap_or(now)),
            Seen::Up(_) => None,
        };
        if seen == self.state {
            self.pending = None;
            return false;
        }
        let (count, since) = match self.pending {
            Some((p, n, since)) if p == seen => (n + 1, since),
            _ => (1, now),
        };
        if count >= self.needed(seen) && self.delay_left(seen, since, now).is_zero() {
            self.state = seen;
            self.pending = None;
            return true;
        }
        self.pending = Some((seen, count, since));
        false
    }

    /// How long until the state could change, unless it is up and stable.
    fn change_in(&self, interval: Duration, now: Instant) -> Option<Duration> {
        match (self.state, self.pending) {
            (_, Some((to, n, since))) => Some(
                (interval * self.needed(to).saturating_sub(n)).max(self.delay_left(to, since, now)),
            ),
            (Seen::Down, None) => Some(interval * self.rise),
            (Seen::Up(_), None) => None,
        }
    }
}

/// Where in the interval this probe runs, so that probes do not all fire together:
/// a fixed fraction in [0.5, 1.5) of the interval, from a hash of the key.
fn first_delay(key: &ProbeKey, interval: Duration) -> Duration {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    let fraction = 0.5 + (h.finish() % 1000) as f64 / 1000.0;
    interval.mul_f64(fraction)
}

async fn run(
    state: Arc<ProbeState>,
    prober: Arc<Prober>,
    limit: Arc<Semaphore>,
    first: oneshot::Sender<()>,
) {
    let timing = state.key.check.timing;
    let mut cx = prober.context();
    let outcome = probe_once(&prober, &limit, &state.key, &mut cx).await;
    let mut h = Hysteresis::new(timing, Seen::of(&outcome));
    if !outcome.ok {
        h.failing_since = Some(Instant::now());
    }
    if !outcome.ok {
        warn!(probe = %state.key, used_by = ?state.users(), reason = %outcome.reason, "down at start");
    } else if let Some(role) = role_name(&state, outcome.role) {
        info!(probe = %state.key, used_by = ?state.users(), role, "role at start");
    }
    publish(&state, &h, timing.interval, outcome);
    let _ = first.send(());

    let mut next = Instant::now() + first_delay(&state.key, timing.interval);
    loop {
        tokio::time::sleep_until(next).await;
        let outcome = probe_once(&prober, &limit, &state.key, &mut cx).await;
        let was = h.state;
        let seen_changed = h.observe(Seen::of(&outcome), Instant::now());
        if seen_changed {
            let users = state.users();
            let role = role_name(&state, outcome.role);
            match (was, h.state) {
                (Seen::Down, Seen::Up(_)) => {
                    info!(probe = %state.key, used_by = ?users, reason = %outcome.reason, role, "up")
                }
                (Seen::Up(before), Seen::Up(_)) => {
                    let before = role_name(&state, before);
                    info!(probe = %state.key, used_by = ?users, reason = %outcome.reason, before, role, "role changed")
                }
                _ => {
                    warn!(probe = %state.key, used_by = ?users, reason = %outcome.reason, "down")
                }
            }
        }
        publish(&state, &h, timing.interval, outcome);
        if seen_changed && state.key.quorum != Quorum::Local {
            let decision = state.decision();
            info!(probe = %state.key, up = decision.up, why = %decision.why(), "decided with the cluster");
        }
        next += timing.interval;
        let now = Instant::now();
        if next <= now {
            // Fell behind (slow probe or busy machine): skip, rather than burst to catch up.
            next = now + timing.interval;
        }
    }
}

async fn probe_once(
    prober: &Prober,
    limit: &Semaphore,
    key: &ProbeKey,
    cx: &mut ProbeContext,
) -> Outcome {
    // A closed semaphore cannot happen (the checker never closes it); run unbounded then.
    let _permit = limit.acquire().await.ok();
    prober.run(key, cx).await
}

fn role_name(state: &ProbeState, role: u8) -> Option<&str> {
    state.roles().and_then(|r| r.name(role))
}

fn publish(state: &ProbeState, h: &Hysteresis, interval: Duration, outcome: Outcome) {
    // Down, the role shown is the last one seen (a sealed node shows as sealed).
    let role = match h.state {
        Seen::Up(role) => role,
        Seen::Down => outcome.role,
    };
    state.publish(
        h.is_up(),
        role,
        h.change_in(interval, Instant::now()),
        ProbeResult {
            ok: outcome.ok,
            reason: outcome.reason,
            latency: outcome.latency,
            at: SystemTime::now(),
            leader: outcome.leader,
            failing_since: h
                .failing_since
                .map(|since| SystemTime::now() - since.elapsed()),
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::NO_ROLE;

    fn timing(rise: u32, fall: u32) -> Timing {
        Timing {
            rise,
            fall,
            ..Timing::default()
        }
    }

    #[test]
    fn hysteresis_needs_consecutive_results() {
        let up = Seen::Up(NO_ROLE);
        let mut h = Hysteresis::new(timing(2, 3), up);
        let i = Duration::from_secs(5);
        let now = Instant::now();
        assert_eq!(h.change_in(i, now), None);
        assert!(!h.observe(Seen::Down, now));
        assert_eq!(h.change_in(i, now), Some(Duration::from_secs(10)));
        assert!(!h.observe(up, now), "a success resets the failure run");
        assert!(!h.observe(Seen::Down, now) && !h.observe(Seen::Down, now));
        assert!(h.observe(Seen::Down, now), "third consecutive failure");
        assert!(!h.is_up());
        assert_eq!(h.change_in(i, now), Some(Duration::from_secs(10)));
        assert!(!h.observe(up, now));
        assert!(h.observe(up, now));
        assert!(h.is_up());
    }

    #[test]
    fn a_new_role_settles_after_rise_runs_of_it() {
        let (active, standby) = (Seen::Up(7), Seen::Up(6));
        let mut h = Hysteresis::new(timing(2, 3), active);
        let now = Instant::now();
        assert!(!h.observe(standby, now));
        assert!(
            !h.observe(Seen::Down, now),
            "a different result restarts the count"
        );
        assert!(!h.observe(standby, now));
        assert!(h.observe(standby, now));
        assert_eq!(h.state, standby);
        assert!(!h.observe(Seen::Down, now) && !h.observe(Seen::Down, now));
        assert!(h.observe(Seen::Down, now));
    }

    #[test]
    fn a_failure_delay_holds_the_state_until_failing_that_long() {
        let mut h = Hysteresis::new(
            Timing {
                failure_delay: Duration::from_secs(30),
                ..timing(1, 2)
            },
            Seen::Up(NO_ROLE),
        );
        let t0 = Instant::now();
        let i = Duration::from_secs(5);
        assert!(!h.observe(Seen::Down, t0));
        assert!(!h.observe(Seen::Down, t0 + i), "fall reached, 5 s of 30");
        assert_eq!(h.change_in(i, t0 + i), Some(Duration::from_secs(25)));
        assert!(!h.observe(Seen::Down, t0 + 5 * i));
        assert!(h.observe(Seen::Down, t0 + 6 * i), "failing for 30 s");
        assert!(
            h.observe(Seen::Up(NO_ROLE), t0 + 7 * i),
            "coming back is not delayed"
        );
    }
}
