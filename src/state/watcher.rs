//! The watcher: every 250 ms (less often in a large table, see [`SCAN_SHARE`]), and at once
//! when a probe changes state, it looks at every member as the query path sees it, records
//! each change of state as an event (what changed, why, when), times each failover, tells
//! zone transfers of health changes; and every 250 ms it advances the coarse clocks of the
//! tables the query path writes.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use super::Meridian;
use crate::model::events::Event;
use crate::model::health::Condition;
use crate::model::transition::Transition;
use crate::select::Member;

/// How often the failover watcher looks (and advances the coarse clocks).
const WATCH_EVERY: Duration = Duration::from_millis(250);
/// Looks prompted by a probe's change come at most this often: a burst of changes (a
/// site going dark) is looked at in a few passes, not one pass per probe.
const LOOK_GAP: Duration = Duration::from_millis(20);
/// A look reads every member's state and counters, a few cache misses each: some 200 ns a
/// member, 65 ms at 300,000 members, which every 250 ms kept a quarter of a core busy with
/// nothing happening. Timed looks are spaced so that they take at most 1/SCAN_SHARE of a
/// core, up to [`SCAN_EVERY_MAX`] apart; a probe's change still gets a look at once.
const SCAN_SHARE: u32 = 50;
const SCAN_EVERY_MAX: Duration = Duration::from_secs(5);

/// A member's condition and, while up, its role: what events name as its state. The
/// member is up exactly when its condition is [`Condition::Up`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct State {
    condition: Condition,
    role: Option<u8>,
}

const CONDITIONS: [Condition; 6] = [
    Condition::Up,
    Condition::Down,
    Condition::Maintenance,
    Condition::Draining,
    Condition::Held,
    Condition::Disabled,
];

impl State {
    /// Packed into the member's `look_state`; never 0, which means "not looked at yet".
    fn pack(self) -> u64 {
        let condition = CONDITIONS.iter().position(|&c| c == self.condition);
        1 << 32
            | (condition.unwrap_or(0) as u64) << 8
            | u64::from(self.role.map_or(0, |r| u16::from(r) + 1)) << 16
    }

    fn up(self) -> bool {
        self.condition == Condition::Up
    }

    fn unpack(word: u64) -> Option<State> {
        (word != 0).then(|| State {
            condition: CONDITIONS[(word >> 8 & 0xff) as usize % CONDITIONS.len()],
            role: match (word >> 16 & 0xffff) as u16 {
                0 => None,
                r => Some((r - 1) as u8),
            },
        })
    }
}

/// Watches members going down and records each failover, timed: from the first failed
/// probe of the member's down probes to the moment it went down (answers leave it out
/// from then), and to the expiry of the last answer that named it. It samples what the
/// query path already keeps (member state, answer counters) every 250 ms (in a large
/// table, up to 5 s: see [`SCAN_SHARE`]), so it adds nothing there; the last answer is
/// placed at the end of the window it fell in, which errs late by at most that. What it notes between looks lives in each member's
/// counters, so a look allocates nothing unless something changed.
pub async fn watch_transitions(meridian: Arc<Meridian>) {
    let mut first_look = true;
    let mut every = tokio::time::interval(WATCH_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_look = std::time::Instant::now();
    let mut next_timed_look = last_look;
    loop {
        let prompted = tokio::select! {
            _ = every.tick() => false,
            _ = meridian.registry.changed.notified() => {
                let since = last_look.elapsed();
                if since < LOOK_GAP {
                    tokio::time::sleep(LOOK_GAP - since).await;
                }
                true
            }
        };
        // The coarse clocks of the tables the query path writes.
        if let Some(r) = meridian.recipients.get() {
            r.tick();
        }
        if let Some(s) = meridian.sticky.get() {
            s.tick();
        }
        if let Some(h) = meridian.history.get() {
            h.tick();
        }
        if !prompted && std::time::Instant::now() < next_timed_look {
            continue;
        }
        last_look = std::time::Instant::now();
        let now = SystemTime::now();
        let now_ms = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let table = meridian.table.load();
        let mut moved = false;
        for name in table.health_checked_names() {
            for (ttl, m) in [&name.v4, &name.v6].into_iter().flat_map(|p| {
                // One TTL for the pool: it reads every member's deadline and the clock.
                let ttl = p.ttl(name.ttl);
                p.members.iter().map(move |m| (ttl, m))
            }) {
                let c = &m.counters;
                let state = state_of(m);
                let answered = c.answered.load(Ordering::Relaxed);
                let before = State::unpack(c.look_state.load(Ordering::Relaxed));
                // First seen (just started): answered at all counts as answered now. The
                // answer fell between the two looks, so it carried one of their TTLs (they
                // only shrink while something fails): take the longer.
                let (seen_answered, seen_ttl) = match before {
                    Some(_) => (
                        c.look_answered.load(Ordering::Relaxed),
                        c.look_ttl.load(Ordering::Relaxed),
                    ),
                    None => (0, ttl),
                };
                if answered > seen_answered {
                    c.last_answered_ms.store(now_ms, Ordering::Relaxed);
                    c.last_answered_ttl
                        .store(ttl.max(seen_ttl), Ordering::Relaxed);
                }
                if !state.up()
                    && before.is_some_and(State::up)
                    && let Some(t) = transition(&name.name.to_string(), m, last_answered(m))
                {
                    meridian.counters.transitions.record(t);
                }
                let from = match before {
                    Some(w) if w == state => None,
                    Some(w) => Some(state_text(m, w)),
                    // Members that start up need no event (a large zone would flood the
                    // record); one that starts otherwise does.
                    None if state.up() => None,
                    None => Some(if first_look { "start" } else { "new" }.to_string()),
                };
                if let Some(from) = from {
                    let mut reason = reason_of(m);
                    if from == "start" && !m.health.probes().iter().all(|p| p.is_up()) {
                        reason = format!("down at start: {reason}");
                    }
                    meridian.events.record(Event {
                        at_ms: now_ms,
                        name: name.name.to_string(),
                        member: m.address,
                        from,
                        to: state_text(m, state),
                        reason,
                    });
                }
                moved |= before.is_some_and(|b| b != state);
                c.look_state.store(state.pack(), Ordering::Relaxed);
                c.look_answered.store(answered, Ordering::Relaxed);
                c.look_ttl.store(ttl, Ordering::Relaxed);
            }
        }
        first_look = false;
        next_timed_look =
            last_look + (last_look.elapsed() * SCAN_SHARE).clamp(WATCH_EVERY, SCAN_EVERY_MAX);
        // Transferred zones carry health-checked answers: a change may be news for
        // their secondaries.
        let transferred = table.zones().any(|z| z.transfer.is_some());
        drop(table);
        if moved && transferred {
            meridian.refresh_transfers().await;
        }
    }
}

/// When the watcher last found the member answered, and the TTL answers carried then.
fn last_answered(m: &Member) -> Option<(SystemTime, u32)> {
    let ms = m.counters.last_answered_ms.load(Ordering::Relaxed);
    (ms != 0).then(|| {
        (
            SystemTime::UNIX_EPOCH + Duration::from_millis(ms),
            m.counters.last_answered_ttl.load(Ordering::Relaxed),
        )
    })
}

fn state_of(m: &Member) -> State {
    let condition = m.health.condition();
    State {
        condition,
        role: m
            .health
            .role_probe()
            .filter(|_| condition == Condition::Up)
            .map(|p| p.role()),
    }
}

/// A state as events name it: the condition, with the role where the member's check has
/// roles: `up (active)`.
fn state_text(m: &Member, state: State) -> String {
    let role = state
        .role
        .and_then(|r| m.health.role_probe()?.roles()?.name(r));
    match role {
        Some(role) => format!("{} ({role})", state.condition.as_str()),
        None => state.condition.as_str().to_string(),
    }
}

/// Why the member is in its condition, in words.
fn reason_of(m: &Member) -> String {
    let probes = m.health.probes();
    let results = |up: bool| -> Vec<String> {
        probes
            .iter()
            .filter(|p| p.is_up() == up)
            .map(|p| {
                let reason = p.detail().last.map(|l| l.reason).unwrap_or_default();
                format!("{}: {reason}", p.key)
            })
            .collect()
    };
    match m.health.condition() {
        Condition::Up if probes.is_empty() => "no checks".to_string(),
        Condition::Up => results(true).join("; "),
        Condition::Down => results(false).join("; "),
        Condition::Maintenance => "in maintenance (set through the admin API)".to_string(),
        Condition::Draining => "draining (started through the admin API)".to_string(),
        Condition::Held => {
            "recovery: manual: its checks pass again, and it waits for an operator to recover it"
                .to_string()
        }
        Condition::Disabled => "enabled: false in the zone file".to_string(),
    }
}

/// The failover of a member that just went down because a probe did; `None` when no
/// probe is down (maintenance, a hold: no failure to time).
fn transition(
    name: &str,
    m: &Member,
    last_answered: Option<(SystemTime, u32)>,
) -> Option<Transition> {
    let down: Vec<_> = m
        .health
        .probes()
        .iter()
        .filter(|p| !p.is_up())
        .map(|p| p.detail())
        .collect();
    let first = down
        .iter()
        .filter_map(|d| d.last.as_ref()?.failing_since)
        .min()?;
    let out_at = down.iter().map(|d| d.since).min()?;
    let expiry = last_answered
        .map_or(out_at, |(at, ttl)| at + Duration::from_secs(u64::from(ttl)))
        .max(out_at);
    let since = |t: SystemTime| t.duration_since(first).unwrap_or_default();
    Some(Transition {
        name: name.to_string(),
        member: m.address,
        first_failure: first,
        out_of_answers: since(out_at),
        until_ttl_expiry: since(expiry),
        reason: down
            .iter()
            .find_map(|d| d.last.as_ref().map(|l| l.reason.clone()))
            .unwrap_or_default(),
    })
}
