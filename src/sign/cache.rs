//! The signature cache: a fixed number of slots, each holding the last signature made for
//! the RRsets whose content key falls in it. Queries read it without a lock (one atomic
//! load per RRset); a miss signs and replaces the slot. Its memory is bounded by the slot
//! count, whatever the zones' size or the clients ask: an attacker asking for a million
//! names makes signatures churn, not grow.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwapOption;

use super::Signed;

pub struct SignatureCache {
    /// Allocated at the first signature: a server without signed zones keeps none.
    slots: OnceLock<Box<[ArcSwapOption<Signed>]>>,
    size: usize,
    hits: AtomicU64,
    misses: AtomicU64,
    /// Signatures that could not be made (the key failed).
    failures: AtomicU64,
    /// Bytes held by the signatures in the slots.
    bytes: AtomicI64,
    entries: AtomicI64,
}

/// What the metrics show of the cache.
#[derive(Clone, Copy, Debug, Default)]
pub struct CacheStats {
    pub slots: usize,
    pub entries: u64,
    pub bytes: u64,
    pub hits: u64,
    pub misses: u64,
    pub failures: u64,
}

impl SignatureCache {
    /// A cache of `slots` slots (rounded up to a power of two).
    pub fn new(slots: usize) -> Self {
        SignatureCache {
            slots: OnceLock::new(),
            size: slots.max(1).next_power_of_two(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            bytes: AtomicI64::new(0),
            entries: AtomicI64::new(0),
        }
    }

    /// The signature for content `key`, made by `sign` if the slot holds another one or
    /// one due for refresh at `now`.
    #[inline]
    pub fn get_or_sign(
        &self,
        key: u128,
        now: u32,
        sign: impl FnOnce() -> Option<Signed>,
    ) -> Option<Arc<Signed>> {
        let slots = self
            .slots
            .get_or_init(|| (0..self.size).map(|_| ArcSwapOption::empty()).collect());
        let slot = &slots[(key as usize) & (self.size - 1)];
        if let Some(signed) = slot.load_full()
            && signed.key == key
            && now < signed.refresh_at
        {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Some(signed);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let Some(signed) = sign() else {
            self.failures.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        debug_assert_eq!(signed.key, key);
        let signed = Arc::new(signed);
        self.bytes
            .fetch_add(signed.size() as i64, Ordering::Relaxed);
        self.entries.fetch_add(1, Ordering::Relaxed);
        if let Some(old) = slot.swap(Some(Arc::clone(&signed))) {
            self.bytes.fetch_sub(old.size() as i64, Ordering::Relaxed);
            self.entries.fetch_sub(1, Ordering::Relaxed);
        }
        Some(signed)
    }

    pub fn stats(&self) -> CacheStats {
        let n = |a: &AtomicI64| a.load(Ordering::Relaxed).max(0) as u64;
        let slots = self.slots.get().map_or(0, |s| s.len());
        CacheStats {
            slots: self.size,
            entries: n(&self.entries),
            bytes: n(&self.bytes) + (slots * std::mem::size_of::<usize>()) as u64,
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::StoredRecord;
    use hickory_proto::rr::{Name, RData, Record};

    fn signed(key: u128, refresh_at: u32) -> Signed {
        let name = Name::from_ascii("a.test.").unwrap();
        Signed {
            key,
            refresh_at,
            rrsig: StoredRecord::new(&Record::from_rdata(
                name,
                1,
                RData::A(std::net::Ipv4Addr::LOCALHOST.into()),
            )),
            nsec: None,
        }
    }

    #[test]
    fn signs_once_per_content_until_refresh_and_stays_bounded() {
        let cache = SignatureCache::new(4);
        let signings = std::cell::Cell::new(0);
        let get = |key: u128, now: u32| {
            cache
                .get_or_sign(key, now, || {
                    signings.set(signings.get() + 1);
                    Some(signed(key, now + 10))
                })
                .unwrap()
        };
        get(1, 100);
        get(1, 105);
        assert_eq!(signings.get(), 1, "a hit");
        get(1, 110);
        assert_eq!(signings.get(), 2, "due for refresh");
        // Key 5 shares key 1's slot: each replaces the other.
        get(5, 111);
        get(1, 112);
        assert_eq!(signings.get(), 4);
        for k in 0..100 {
            get(k, 120);
        }
        let stats = cache.stats();
        assert_eq!((stats.slots, stats.entries), (4, 4));
        assert!(stats.hits >= 1 && stats.misses >= 100);
        assert!(cache.get_or_sign(7, 1, || None).is_none());
        assert_eq!(cache.stats().failures, 1);
    }
}
