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
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

const SLOTS: usize = 1 << 16;

#[derive(Debug)]
pub struct Recipients {
    who: Box<[AtomicU64]>,
    what: Box<[AtomicU64]>,
    epoch: Instant,
    /// Seconds since `epoch`, from 1, advanced by [`Recipients::tick`]: reading the clock
    /// on every answer would cost more than the rest of recording.
    now: AtomicU32,
}

impl Default for Recipients {
    fn default() -> Self {
        Recipients {
            who: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
            what: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
            epoch: Instant::now(),
            now: AtomicU32::new(1),
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

/// A resolver as the table stores it: the address bits kept, and the family.
#[derive(Clone, Copy, Debug)]
pub struct Resolver {
    bits: u64,
    v6: u64,
}

impl Resolver {
    /// The address bits kept, and 1 for IPv6 (0 for IPv4).
    pub fn parts(&self) -> (u64, u64) {
        (self.bits, self.v6)
    }

    /// The address kept as `bits` (an IPv4 address, or the /64 of an IPv6 one).
    pub fn address(bits: u64, v6: bool) -> IpAddr {
        if v6 {
            IpAddr::V6(Ipv6Addr::from(u128::from(bits) << 64))
        } else {
            IpAddr::V4(Ipv4Addr::from(bits as u32))
        }
    }

    pub fn new(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(a) => Resolver {
                bits: u64::from(u32::from(a)),
                v6: 0,
            },
            IpAddr::V6(a) => Resolver {
                bits: (u128::from(a) >> 64) as u64,
                v6: 1,
            },
        }
    }
}

impl Recipients {
    /// Seconds since the table was made, from 1, as of the last tick.
    pub fn now(&self) -> u32 {
        self.now.load(Ordering::Relaxed)
    }

    /// Brings the clock up to date (the state's watcher calls it four times a second).
    pub fn tick(&self) {
        self.now
            .store(self.epoch.elapsed().as_secs() as u32 + 1, Ordering::Relaxed);
    }

    /// `resolver` was just answered with member `member` (a tag: see `Member::tag`).
    /// On the query path for every member answered, so kept to a few instructions: one
    /// multiplicative hash (the slot only needs to spread, not to resist an attacker, who
    /// could at worst evict entries, as a busy server does) and two stores.
    pub fn record(&self, member: u32, resolver: Resolver) {
        let h = (resolver.bits ^ u64::from(member).wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .wrapping_mul(0xff51_afd7_ed55_8ccd);
        let i = (h >> 48) as usize & (SLOTS - 1);
        let what = u64::from(member) << 32 | u64::from(self.now()) << 1 | resolver.v6;
        self.who[i].store(resolver.bits, Ordering::Relaxed);
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
            let resolver = Resolver::address(who.load(Ordering::Relaxed), what & 1 == 1);
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
        r.record(7, Resolver::new(a));
        r.record(7, Resolver::new(b));
        r.record(9, Resolver::new(a));
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
