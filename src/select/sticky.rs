//! Stickiness (`sticky: 300s`): a client keeps getting the member it got, while that
//! member stays up, until it has not asked for that long (Kemp's "Stickiness").
//!
//! A fixed table of 65,536 slots shared by every name, one `AtomicU64` each, indexed by a
//! hash of the name's pool and the client's network (its ECS subnet, else its /24 or
//! /56): no lock, no allocation, bounded memory (512 KiB). Each slot packs a tag (more
//! bits of the hash), the member's index and the expiry, so a read is one load and can
//! never see half of a write. A client whose slot another client takes gets a fresh
//! choice next time (counted as an eviction); a reload keeps the table.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

pub const SLOTS: usize = 1 << 16;
const EXPIRY_BITS: u32 = 24;
const EXPIRY_MASK: u64 = (1 << EXPIRY_BITS) - 1;
const MEMBER_BITS: u32 = 12;
const MEMBER_MASK: u64 = (1 << MEMBER_BITS) - 1;
const TAG_SHIFT: u32 = EXPIRY_BITS + MEMBER_BITS;

#[derive(Debug)]
pub struct StickyTable {
    slots: Box<[AtomicU64]>,
    epoch: Instant,
    /// Live entries overwritten by another client's.
    evictions: AtomicU64,
    /// Seconds since `epoch` as of the last [`StickyTable::tick`]: one load per query
    /// rather than a clock read.
    now: AtomicU64,
}

impl Default for StickyTable {
    fn default() -> Self {
        StickyTable {
            slots: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
            epoch: Instant::now(),
            evictions: AtomicU64::new(0),
            now: AtomicU64::new(0),
        }
    }
}

/// splitmix64's finaliser: a fast, well-spread mix (the key is not a secret; at worst a
/// client that forces collisions takes other clients' slots, as a busy table would).
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The key for a client of a pool: the pool's id and the client's network.
pub fn key(pool: u64, addr: IpAddr, source_prefix: u8) -> u64 {
    let bits = match addr {
        IpAddr::V4(a) => {
            let prefix = source_prefix.min(24);
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u64::from(u32::from(a) & mask) | u64::from(prefix) << 32
        }
        IpAddr::V6(a) => {
            let prefix = source_prefix.min(56);
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            let net = u128::from(a) & mask;
            (net >> 64) as u64 ^ mix(net as u64) ^ u64::from(prefix) << 57
        }
    };
    mix(pool ^ mix(bits))
}

impl StickyTable {
    fn now(&self) -> u64 {
        self.now.load(Ordering::Relaxed)
    }

    /// Brings the clock up to date (the state's watcher calls it four times a second).
    pub fn tick(&self) {
        self.now.store(
            self.epoch.elapsed().as_secs() & EXPIRY_MASK,
            Ordering::Relaxed,
        );
    }

    fn slot(&self, key: u64) -> &AtomicU64 {
        &self.slots[(key as usize) & (SLOTS - 1)]
    }

    fn tag(key: u64) -> u64 {
        key >> TAG_SHIFT
    }

    /// Whether an expiry (mod 2^24 s) is still ahead of `now`.
    fn live(expiry: u64, now: u64) -> bool {
        let ahead = expiry.wrapping_sub(now) & EXPIRY_MASK;
        ahead != 0 && ahead < 1 << (EXPIRY_BITS - 1)
    }

    /// The member remembered for `key`, if its entry is live.
    pub fn get(&self, key: u64) -> Option<usize> {
        let v = self.slot(key).load(Ordering::Relaxed);
        (v != 0 && v >> TAG_SHIFT == Self::tag(key) && Self::live(v & EXPIRY_MASK, self.now()))
            .then_some(((v >> EXPIRY_BITS) & MEMBER_MASK) as usize)
    }

    /// Remembers `member` (an index below 4096) for `key` for `seconds` from now.
    pub fn put(&self, key: u64, member: usize, seconds: u32) {
        let now = self.now();
        let slot = self.slot(key);
        let old = slot.load(Ordering::Relaxed);
        if old != 0 && old >> TAG_SHIFT != Self::tag(key) && Self::live(old & EXPIRY_MASK, now) {
            self.evictions.fetch_add(1, Ordering::Relaxed);
        }
        let expiry = (now + u64::from(seconds).max(1)) & EXPIRY_MASK;
        let v = Self::tag(key) << TAG_SHIFT | (member as u64 & MEMBER_MASK) << EXPIRY_BITS | expiry;
        slot.store(v.max(1), Ordering::Relaxed);
    }

    /// Live entries (a scan, for metrics).
    pub fn in_use(&self) -> usize {
        let now = self.now();
        self.slots
            .iter()
            .map(|s| s.load(Ordering::Relaxed))
            .filter(|&v| v != 0 && Self::live(v & EXPIRY_MASK, now))
            .count()
    }

    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_per_client_network_until_it_expires() {
        let t = StickyTable::default();
        let a = key(7, "192.0.2.10".parse().unwrap(), 32);
        let same_net = key(7, "192.0.2.99".parse().unwrap(), 32);
        let other_pool = key(8, "192.0.2.10".parse().unwrap(), 32);
        assert_eq!(a, same_net, "one /24");
        assert_ne!(a, other_pool);
        assert_eq!(t.get(a), None);
        t.put(a, 3, 300);
        assert_eq!(t.get(a), Some(3));
        assert_eq!(t.get(other_pool), None);
        t.put(a, 5, 0); // at least a second
        assert_eq!(t.get(a), Some(5));
        assert_eq!(t.in_use(), 1);
        assert!(
            !StickyTable::live(t.now(), t.now()),
            "an expiry of now has passed"
        );
    }

    #[test]
    fn an_ecs_subnet_is_its_own_client() {
        let wide = key(1, "198.51.100.0".parse().unwrap(), 20);
        let narrow = key(1, "198.51.100.0".parse().unwrap(), 24);
        assert_ne!(wide, narrow);
        let v6 = key(1, "2001:db8:1:2::1".parse().unwrap(), 128);
        let v6_same_56 = key(1, "2001:db8:1:ff::9".parse().unwrap(), 128);
        assert_eq!(v6, v6_same_56);
    }
}
