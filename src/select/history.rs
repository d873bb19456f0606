//! Decision history: a bounded, lock-free record of sampled answers of health-checked
//! names, so that an operator can ask what a client network got at a given time and why
//! (`meridian explain --at`, `GET /history`).
//!
//! Each thread that answers keeps its own countdown and records one answer in
//! [`SAMPLE_EVERY`]; a sample takes the next of [`SLOTS`] entries (2 MiB, made at the first
//! answer), overwriting the oldest. An entry is four words: when and which name, the
//! client (an IPv4 address or an IPv6 /64, the packet's source as the drain record keeps
//! it), the first two members chosen, and how the choice was made (members up of the pool,
//! members chosen, failing open, the client's site). The first word is written last and
//! cleared first, so a reader that finds it changed while it read skips the entry.

use std::cell::Cell;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

use super::recipients::Resolver;

/// One answer in this many is recorded, per answering thread.
pub const SAMPLE_EVERY: u32 = 16;
/// Entries kept: at 1,000 answers a second, the last 17 minutes.
pub const SLOTS: usize = 1 << 16;

thread_local! {
    static COUNTDOWN: Cell<u32> = const { Cell::new(1) };
}

/// Whether this answer is the one in [`SAMPLE_EVERY`] to record (a decrement of a
/// thread-local counter: no shared write on the other answers).
pub fn sample_now() -> bool {
    COUNTDOWN.with(|c| {
        let left = c.get() - 1;
        if left == 0 {
            c.set(SAMPLE_EVERY);
            true
        } else {
            c.set(left);
            false
        }
    })
}

/// What was decided for one sampled answer, as recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The health-checked name's tag (see `HealthCheckedName::tag`).
    pub name: u32,
    /// Member tags of the first two members chosen (0: none).
    pub chosen: [u32; 2],
    pub chosen_count: u8,
    pub up: u8,
    pub pool: u8,
    pub failing_open: bool,
    pub aaaa: bool,
    /// The client's site index + 1, 0 when not placed at a site.
    pub site: u8,
}

/// A recorded answer, as the reader returns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    /// Unix seconds.
    pub at: u32,
    pub client: IpAddr,
    pub decision: Decision,
}

#[derive(Debug)]
pub struct History {
    slots: Box<[[AtomicU64; 4]]>,
    next: AtomicUsize,
    /// Unix seconds, advanced by [`History::tick`] (the state's watcher, four times a
    /// second): the answer path reads no clock.
    now: AtomicU32,
}

impl Default for History {
    fn default() -> Self {
        let history = History {
            slots: (0..SLOTS).map(|_| Default::default()).collect(),
            next: AtomicUsize::new(0),
            now: AtomicU32::new(0),
        };
        history.tick();
        history
    }
}

impl History {
    pub fn tick(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as u32);
        self.now.store(now, Ordering::Relaxed);
    }

    /// Records one sampled answer (after [`sample_now`] said so).
    pub fn record(&self, client: Resolver, d: &Decision) {
        let i = self.next.fetch_add(1, Ordering::Relaxed) & (SLOTS - 1);
        let slot = &self.slots[i];
        let (bits, v6) = client.parts();
        let head = u64::from(self.now.load(Ordering::Relaxed)) << 32 | u64::from(d.name | 1);
        let chosen = u64::from(d.chosen[0]) << 32 | u64::from(d.chosen[1]);
        let how = u64::from(d.chosen_count)
            | u64::from(d.up) << 8
            | u64::from(d.pool) << 16
            | u64::from(d.site) << 24
            | u64::from(d.failing_open) << 32
            | u64::from(d.aaaa) << 33
            | v6 << 34;
        slot[0].store(0, Ordering::Release);
        slot[1].store(bits, Ordering::Relaxed);
        slot[2].store(chosen, Ordering::Relaxed);
        slot[3].store(how, Ordering::Relaxed);
        slot[0].store(head, Ordering::Release);
    }

    /// Every intact entry of the name with tag `name`, oldest first.
    pub fn of(&self, name: u32) -> Vec<Sample> {
        let mut out = Vec::new();
        for slot in self.slots.iter() {
            let head = slot[0].load(Ordering::Acquire);
            if head == 0 || head as u32 != name | 1 {
                continue;
            }
            let bits = slot[1].load(Ordering::Relaxed);
            let chosen = slot[2].load(Ordering::Relaxed);
            let how = slot[3].load(Ordering::Relaxed);
            if slot[0].load(Ordering::Acquire) != head {
                continue; // rewritten while read
            }
            let client = Resolver::address(bits, how >> 34 & 1 == 1);
            out.push(Sample {
                at: (head >> 32) as u32,
                client,
                decision: Decision {
                    name,
                    chosen: [(chosen >> 32) as u32, chosen as u32],
                    chosen_count: how as u8,
                    up: (how >> 8) as u8,
                    pool: (how >> 16) as u8,
                    site: (how >> 24) as u8,
                    failing_open: how >> 32 & 1 == 1,
                    aaaa: how >> 33 & 1 == 1,
                },
            });
        }
        out.sort_by_key(|s| s.at);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_one_in_sample_every_and_reads_back_what_was_recorded() {
        let taken = (0..SAMPLE_EVERY * 4).filter(|_| sample_now()).count();
        assert_eq!(taken, 4);
        let h = History::default();
        let d = Decision {
            name: 41,
            chosen: [7, 9],
            chosen_count: 2,
            up: 3,
            pool: 6,
            failing_open: false,
            aaaa: true,
            site: 2,
        };
        let client: IpAddr = "2001:db8:5::53".parse().unwrap();
        h.record(Resolver::new(client), &d);
        h.record(
            Resolver::new("192.0.2.1".parse().unwrap()),
            &Decision { name: 99, ..d },
        );
        let got = h.of(41);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].client, "2001:db8:5::".parse::<IpAddr>().unwrap());
        assert_eq!(got[0].decision, Decision { name: 41 | 1, ..d });
        assert!(got[0].at > 1_700_000_000);
        assert_eq!(h.of(99)[0].client, "192.0.2.1".parse::<IpAddr>().unwrap());
    }
}
