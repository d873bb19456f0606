//! Recent changes of member state, for the status page and `GET /events`: the last
//! [`KEPT`] events, the oldest dropped first. The watcher writes them, off the query path.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Mutex;

/// Events kept.
pub const KEPT: usize = 100;

/// One member changing state.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Event {
    /// Unix time, to the millisecond, when the watcher saw the change.
    pub at_ms: u64,
    pub name: String,
    pub member: IpAddr,
    /// The state before: `up`, `down`, `maintenance`, `draining`, `held`, `disabled`, with
    /// the role in brackets where the check has roles, e.g. `up (active)`; `new` for a
    /// member seen for the first time.
    pub from: String,
    pub to: String,
    /// Why, in words: the failing check's reason, "down at start: …", "put in
    /// maintenance through the admin API", …
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct Events(Mutex<VecDeque<Event>>);

impl Events {
    pub fn record(&self, event: Event) {
        let mut events = self.0.lock().expect("events lock");
        if events.len() == KEPT {
            events.pop_front();
        }
        events.push_back(event);
    }

    /// The events kept, newest first.
    pub fn recent(&self) -> Vec<Event> {
        let events = self.0.lock().expect("events lock");
        events.iter().rev().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_hundred_newest_first() {
        let events = Events::default();
        for i in 0..(KEPT as u64 + 5) {
            events.record(Event {
                at_ms: i,
                name: "n.".into(),
                member: "192.0.2.1".parse().unwrap(),
                from: "up".into(),
                to: "down".into(),
                reason: String::new(),
            });
        }
        let recent = events.recent();
        assert_eq!(recent.len(), KEPT);
        assert_eq!(recent[0].at_ms, KEPT as u64 + 4);
        assert_eq!(recent[KEPT - 1].at_ms, 5);
    }
}
