//! The watcher: every 250 ms it looks at every member as the query path sees it, records
//! each change of state as an event (what changed, why, when), times each failover, and
//! advances the coarse clocks of the tables the query path writes.

use std::collections::HashMap;
use std::net::IpAddr;
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

/// What the watcher knows of one member between looks.
struct Watched {
    up: bool,
    /// The member's condition and role, as events name them.
    state: String,
    /// Its answer counter at the last look, and the TTL answers carried then.
    answered: u64,
    ttl: u32,
    /// The last look that found it answered since the one before, and the TTL answers
    /// carried then: the last answer naming it expires by then + TTL.
    last_answered: Option<(SystemTime, u32)>,
}

/// Watches members going down and records each failover, timed: from the first failed
/// probe of the member's down probes to the moment it went down (answers leave it out
/// from then), and to the expiry of the last answer that named it. It samples what the
/// query path already keeps (member state, answer counters) every 250 ms, so it adds
/// nothing there; the last answer is placed at the end of the window it fell in, which
/// errs late by at most that.
pub async fn watch_transitions(meridian: Arc<Meridian>) {
    let mut watched: HashMap<(String, IpAddr), Watched> = HashMap::new();
    let mut first_look = true;
    let mut every = tokio::time::interval(WATCH_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
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
        let now = SystemTime::now();
        let table = meridian.table.load();
        let mut seen = HashMap::with_capacity(watched.len());
        for name in table.health_checked_names() {
            let name_text = name.name.to_string();
            for (pool, m) in [&name.v4, &name.v6]
                .into_iter()
                .flat_map(|p| p.members.iter().map(move |m| (p, m)))
            {
                let key = (name_text.clone(), m.address);
                let up = m.health.is_up();
                let state = state_of(m);
                let answered = m.answered.load(Ordering::Relaxed);
                let before = watched.remove(&key);
                let mut last_answered = before.as_ref().and_then(|w| w.last_answered);
                let ttl = pool.ttl(name.ttl);
                // First seen (just started): answered at all counts as answered now. The
                // answer fell between the two looks, so it carried one of their TTLs (they
                // only shrink while something fails): take the longer.
                if answered > before.as_ref().map_or(0, |w| w.answered) {
                    let then = before.as_ref().map_or(ttl, |w| w.ttl);
                    last_answered = Some((now, ttl.max(then)));
                }
                if !up
                    && before.as_ref().is_some_and(|w| w.up)
                    && let Some(t) = transition(&name_text, m, last_answered)
                {
                    meridian.counters.transitions.record(t);
                }
                let from = match &before {
                    Some(w) if w.state == state => None,
                    Some(w) => Some(w.state.clone()),
                    // Members that start up need no event (a large zone would flood the
                    // record); one that starts otherwise does.
                    None if up => None,
                    None => Some(if first_look { "start" } else { "new" }.to_string()),
                };
                if let Some(from) = from {
                    let mut reason = reason_of(m);
                    if from == "start" && !m.health.probes().iter().all(|p| p.is_up()) {
                        reason = format!("down at start: {reason}");
                    }
                    meridian.events.record(Event {
                        at_ms: now
                            .duration_since(SystemTime::UNIX_EPOCH)
                            .map_or(0, |d| d.as_millis() as u64),
                        name: name_text.clone(),
                        member: m.address,
                        from,
                        to: state.clone(),
                        reason,
                    });
                }
                seen.insert(
                    key,
                    Watched {
                        up,
                        state,
                        answered,
                        ttl,
                        last_answered,
                    },
                );
            }
        }
        watched = seen;
        first_look = false;
    }
}

/// The member's condition, with its role where its check has roles: `up (active)`.
fn state_of(m: &Member) -> String {
    let condition = m.health.condition();
    match m.health.role_probe().and_then(|p| p.role_name()) {
        Some(role) if condition == Condition::Up => format!("up ({role})"),
        _ => condition.as_str().to_string(),
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
