//! Failover transitions as they really happened: for each member that went down, from
//! its first failed probe to the moment it was out of answers, and to the expiry of the
//! last TTL that still named it. Kept off the query path: a watcher records them.

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// Upper bounds, in seconds, of the failover histogram's buckets.
pub const FAILOVER_BUCKETS: [f64; 12] = [
    1.0, 2.0, 3.0, 5.0, 8.0, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0, 300.0,
];

/// Transitions kept for status and explain.
const RECENT: usize = 32;

/// One member going down.
#[derive(Clone, Debug)]
pub struct Transition {
    pub name: String,
    pub member: IpAddr,
    /// When its first failed probe of this run completed.
    pub first_failure: SystemTime,
    /// From then until answers left it out (it was declared down).
    pub out_of_answers: Duration,
    /// From then until the last answer that named it expired in resolvers' caches.
    pub until_ttl_expiry: Duration,
    /// The reason of the probe that failed.
    pub reason: String,
}

/// A histogram of durations: counts per bucket of [`FAILOVER_BUCKETS`] (not cumulative)
/// and above them, with their sum.
#[derive(Clone, Debug, Default)]
pub struct Histogram {
    pub buckets: [u64; FAILOVER_BUCKETS.len() + 1],
    pub count: u64,
    pub sum: f64,
}

impl Histogram {
    fn observe(&mut self, d: Duration) {
        let s = d.as_secs_f64();
        let i = FAILOVER_BUCKETS
            .iter()
            .position(|&le| s <= le)
            .unwrap_or(FAILOVER_BUCKETS.len());
        self.buckets[i] += 1;
        self.count += 1;
        self.sum += s;
    }
}

/// Per name: how long until out of answers, and until the last TTL expired.
pub type NameHistograms = (Histogram, Histogram);

#[derive(Debug, Default)]
pub struct Transitions {
    recent: Mutex<VecDeque<Transition>>,
    by_name: Mutex<BTreeMap<String, NameHistograms>>,
}

impl Transitions {
    pub fn record(&self, t: Transition) {
        {
            let mut by_name = self.by_name.lock().expect("transitions lock");
            let h = by_name.entry(t.name.clone()).or_default();
            h.0.observe(t.out_of_answers);
            h.1.observe(t.until_ttl_expiry);
        }
        let mut recent = self.recent.lock().expect("transitions lock");
        if recent.len() == RECENT {
            recent.pop_front();
        }
        recent.push_back(t);
    }

    /// The latest transitions, newest first.
    pub fn recent(&self) -> Vec<Transition> {
        let recent = self.recent.lock().expect("transitions lock");
        recent.iter().rev().cloned().collect()
    }

    pub fn histograms(&self) -> Vec<(String, NameHistograms)> {
        let by_name = self.by_name.lock().expect("transitions lock");
        by_name
            .iter()
            .map(|(n, h)| (n.clone(), h.clone()))
            .collect()
    }
}
