//! Who received which member: a bounded, lock-free record for draining (`POST
//! /members/{name}/{address}/drain`), so that the server can say which resolvers got a
//! member before the drain and whether each has asked again since.
//!
//! A fixed table of 65,536 entries (1 MiB), made at the first answer: an entry is the
//! resolver (the packet's source: an IPv4 address, or an IPv6 /64) and, packed in a
//! second word, a tag of the member (its name and address), the time in seconds and the
//! family. The slot is chosen by a hash of member and resolver, so a resolver's entry for
//! a member is overwritten by its next answer, and entries of others can take its place
//! (a bounded record: an evicted resolver is no longer named). The two words are written
//! one after the other; a reader that sees them torn mistakes one entry for another, which
//! only the drain report reads.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

const SLOTS: usize = 1 << 16;

#[derive(Debug)]
pub struct Recipients {
    who: Box<[AtomicU64]>,
    what: Box<[AtomicU64]>,
    epoch: Instant,
}

impl Default for Recipients {
    fn default() -> Self {
        Recipients {
            who: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
            what: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
            epoch: Instant::now(),
        }
    }
}

/// One entry as the report reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    pub member: u32,
    pub resolver: IpAddr,
    /// Seconds on this table's clock ([`Recipients::now`]).
    pub at: u32,
}

fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Recipients {
    /// Seconds since the table was made, from 1.
    pub fn now(&self) -> u32 {
        self.epoch.elapsed().as_secs() as u32 + 1
    }

    /// `resolver` was just answered with member `member` (a tag: see `Member::tag`).
    pub fn record(&self, member: u32, resolver: IpAddr) {
        let (who, v6) = match resolver {
            IpAddr::V4(a) => (u64::from(u32::from(a)), 0),
            IpAddr::V6(a) => ((u128::from(a) >> 64) as u64, 1),
        };
        let i = (mix(u64::from(member) << 1 ^ v6 ^ mix(who)) as usize) & (SLOTS - 1);
        let what = u64::from(member) << 32 | u64::from(self.now()) << 1 | v6;
        self.who[i].store(who, Ordering::Relaxed);
        self.what[i].store(what, Ordering::Relaxed);
    }

    /// Every entry whose member is in `members`.
    pub fn of(&self, members: &[u32]) -> Vec<Received> {
        let mut out = Vec::new();
        for (who, what) in self.who.iter().zip(self.what.iter()) {
            let what = what.load(Ordering::Relaxed);
            if what == 0 || !members.contains(&((what >> 32) as u32)) {
                continue;
            }
            let who = who.load(Ordering::Relaxed);
            let resolver = if what & 1 == 0 {
                IpAddr::V4(Ipv4Addr::from(who as u32))
            } else {
                IpAddr::V6(Ipv6Addr::from(u128::from(who) << 64))
            };
            out.push(Received {
                member: (what >> 32) as u32,
                resolver,
                at: ((what >> 1) & 0x7fff_ffff) as u32,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_who_got_which_member() {
        let r = Recipients::default();
        let a: IpAddr = "192.0.2.53".parse().unwrap();
        let b: IpAddr = "2001:db8:5::53".parse().unwrap();
        r.record(7, a);
        r.record(7, b);
        r.record(9, a);
        let mut got: Vec<(u32, IpAddr)> = r
            .of(&[7, 9])
            .iter()
            .map(|e| (e.member, e.resolver))
            .collect();
        got.sort();
        let b64: IpAddr = "2001:db8:5::".parse().unwrap();
        assert_eq!(got, [(7, a), (7, b64), (9, a)]);
        assert!(r.of(&[8]).is_empty());
        assert!(r.of(&[7]).iter().all(|e| e.at >= 1));
    }
}
