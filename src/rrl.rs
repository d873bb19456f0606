//! Response rate limiting (RRL) for UDP, as operators know it from Knot's `mod-rrl`, NSD
//! and BIND: responses are counted per client network (an IPv4 /24, an IPv6 /56) and per
//! kind of response in token buckets; over the limit, responses are dropped, but every
//! `slip`-th goes out truncated (TC=1) so that a real client behind a spoofed address can
//! still get its answer over TCP. TCP is never limited: it cannot be spoofed.
//!
//! Kinds of response, each with its own bucket per network:
//! - an answer (or NODATA) to one name and type (or one wildcard, for the names it answers
//!   for): the reflection a spoofed flood wants;
//! - NXDOMAIN in one zone (or its compact DNSSEC denial, which says NOERROR): random
//!   names under a zone share one bucket;
//! - an error (REFUSED, FORMERR, NOTIMP, SERVFAIL...), whatever the name.
//!
//! The table is a fixed array of slots, shared by every UDP worker without a lock: a slot
//! holds a tag (the bucket's hash) and its state (tokens and time) in atomics, updated by
//! compare-and-swap. Two buckets that hash to one slot take it in turn, each finding the
//! other's tag and starting full: collisions can only make the limiter more lenient, and
//! the hash is keyed with a random seed, so a sender cannot aim them.

use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use tracing::warn;

use crate::config::RateLimitConfig;
use crate::model::{Counters, LogLimit};
use crate::resolve::Plan;

/// What to do with a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Send,
    /// Over the limit: send it truncated (TC=1, the question alone).
    Slip,
    /// Over the limit: send nothing.
    Drop,
}

/// Tokens are kept in thousandths, so that a bucket refills smoothly by the millisecond.
const UNIT: u64 = 1000;

struct Slot {
    tag: AtomicU64,
    /// Tokens (in thousandths) in the upper 32 bits, the time they were counted (ms since
    /// the limiter started, wrapping) in the lower.
    state: AtomicU64,
}

pub struct RateLimiter {
    slots: Box<[Slot]>,
    seed: foldhash::fast::RandomState,
    started: Instant,
    log: LogLimit,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("slots", &self.slots.len())
            .finish()
    }
}

thread_local! {
    /// Responses over the limit on this thread, for `slip`: a per-thread count needs no
    /// shared counter on the path an attack takes.
    static OVER: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// The bucket a response with `rcode` counts against, before the client network is added.
fn bucket_of<'a>(
    plan: &'a Plan,
    rcode: ResponseCode,
    qname: &'a [u8],
) -> (u8, Option<&'a [u8]>, RecordType) {
    // A compact denial (DNSSEC, RFC 9824) says NOERROR for a name that does not exist:
    // it is the NXDOMAIN kind all the same, or random names would each get a bucket.
    let no_such_name = plan.denial.is_some_and(|d| d.node.is_none());
    match rcode {
        // Answers a wildcard synthesized count by the wildcard, and referrals by their
        // delegation, as Knot and BIND count them: random names under either would each
        // get a bucket otherwise.
        ResponseCode::NoError if !no_such_name => (
            1,
            Some(
                plan.wildcard
                    .or(plan.referral.map(|r| r.cut))
                    .unwrap_or(qname),
            ),
            plan.qtype.unwrap_or(RecordType::Unknown(0)),
        ),
        ResponseCode::NoError | ResponseCode::NXDomain => {
            (2, plan.zone.map(|z| z.key()), RecordType::Unknown(0))
        }
        _ => (3, None, RecordType::Unknown(0)),
    }
}

impl RateLimiter {
    /// A table of at least `slots` buckets (rounded up to a power of two).
    pub fn new(slots: usize) -> Self {
        let slots = slots.next_power_of_two();
        RateLimiter {
            slots: (0..slots)
                .map(|_| Slot {
                    tag: AtomicU64::new(0),
                    state: AtomicU64::new(0),
                })
                .collect(),
            seed: foldhash::fast::RandomState::default(),
            started: Instant::now(),
            log: LogLimit::new(Duration::from_secs(10)),
        }
    }

    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    /// Counts the response planned by `plan`, with `rcode` (the plan's, or a forwarded
    /// answer's), to `client` asking for `qname`, and says whether to send it. Exempt
    /// networks are always sent.
    pub fn check(
        &self,
        config: &RateLimitConfig,
        counters: &Counters,
        client: IpAddr,
        plan: &Plan,
        rcode: ResponseCode,
        qname: &[u8],
    ) -> Verdict {
        if config.exempt.iter().any(|net| net.contains(&client)) {
            return Verdict::Send;
        }
        let network = match client {
            IpAddr::V4(a) => {
                let bits = u32::from(a);
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(config.ipv4_prefix))
                    .unwrap_or(0);
                u128::from(bits & mask)
            }
            IpAddr::V6(a) => {
                let bits = u128::from(a);
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(config.ipv6_prefix))
                    .unwrap_or(0);
                // Apart from every IPv4 network.
                (bits & mask) | 1
            }
        };
        let (kind, name, qtype) = bucket_of(plan, rcode, qname);
        let mut h = self.seed.build_hasher();
        h.write_u128(network);
        h.write_u8(kind);
        h.write_u16(u16::from(qtype));
        if let Some(name) = name {
            h.write(name);
        }
        // 0 marks an empty slot.
        let tag = h.finish() | 1;
        let slot = &self.slots[(tag as usize) & (self.slots.len() - 1)];
        if self.take(slot, tag, config) {
            return Verdict::Send;
        }
        let over = OVER.with(|n| {
            let v = n.get() + 1;
            n.set(v);
            v
        });
        let verdict = if config.slip > 0 && over.is_multiple_of(u64::from(config.slip)) {
            counters.rrl_slipped.fetch_add(1, Ordering::Relaxed);
            Verdict::Slip
        } else {
            counters.rrl_dropped.fetch_add(1, Ordering::Relaxed);
            Verdict::Drop
        };
        if let Some(held) = self.log.allow() {
            let kind = ["", "answer", "NXDOMAIN", "error"][usize::from(kind)];
            let prefix = if client.is_ipv4() {
                config.ipv4_prefix
            } else {
                config.ipv6_prefix
            };
            let network = ipnet::IpNet::new(client, prefix).map(|n| n.trunc());
            warn!(
                network = %network.map_or_else(|_| client.to_string(), |n| n.to_string()),
                kind,
                name = %name.map_or_else(String::new, |n| crate::model::name::name_of(n).to_string()),
                limit = config.responses_per_second,
                similar_since_last = held,
                "rate-limiting responses"
            );
        }
        verdict
    }

    /// Takes a token from the bucket tagged `tag` in `slot`, refilling it for the time
    /// since it was last counted; false when it is empty.
    fn take(&self, slot: &Slot, tag: u64, config: &RateLimitConfig) -> bool {
        let now = self.started.elapsed().as_millis() as u32;
        let full = u64::from(config.burst) * UNIT;
        if slot.tag.load(Ordering::Relaxed) != tag {
            // A new bucket (or one that lost its slot): it starts full, less this response.
            slot.tag.store(tag, Ordering::Relaxed);
            slot.state
                .store(((full - UNIT) << 32) | u64::from(now), Ordering::Relaxed);
            return true;
        }
        let mut state = slot.state.load(Ordering::Relaxed);
        loop {
            let (tokens, then) = (state >> 32, state as u32);
            let elapsed = u64::from(now.wrapping_sub(then));
            let tokens = (tokens + elapsed * u64::from(config.responses_per_second)).min(full);
            let (taken, left) = if tokens >= UNIT {
                (true, tokens - UNIT)
            } else {
                (false, tokens)
            };
            let next = (left << 32) | u64::from(now);
            match slot.state.compare_exchange_weak(
                state,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return taken,
                Err(actual) => state = actual,
            }
        }
    }
}
