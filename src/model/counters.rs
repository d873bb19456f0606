//! Counters: relaxed atomic increments on the query path, read by `/metrics`.
//!
//! The atomics live in this long-lived store, keyed by zone, and the compiled table holds
//! `Arc`s to them; so a reload hands the same counters to the new table and counts never
//! reset while the process runs. A member's answer counter lives in the member, and a
//! reload hands it to the member that replaces it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

/// Query types counted on their own; the rest count as "other".
const TYPES: [RecordType; 11] = [
    RecordType::A,
    RecordType::AAAA,
    RecordType::CNAME,
    RecordType::MX,
    RecordType::NS,
    RecordType::SOA,
    RecordType::TXT,
    RecordType::SRV,
    RecordType::CAA,
    RecordType::PTR,
    RecordType::ANY,
];
const RCODES: [(ResponseCode, &str); 6] = [
    (ResponseCode::NoError, "NOERROR"),
    (ResponseCode::NXDomain, "NXDOMAIN"),
    (ResponseCode::Refused, "REFUSED"),
    (ResponseCode::FormErr, "FORMERR"),
    (ResponseCode::ServFail, "SERVFAIL"),
    (ResponseCode::NotImp, "NOTIMP"),
];

/// The DNS mnemonic of a response code (`NOERROR`, `NXDOMAIN`, ...).
pub fn rcode_name(rcode: ResponseCode) -> String {
    RCODES.iter().find(|(r, _)| *r == rcode).map_or_else(
        || u16::from(rcode).to_string(),
        |(_, name)| name.to_string(),
    )
}

/// Queries of one zone by type and rcode.
#[derive(Debug, Default)]
pub struct QueryCounters {
    counts: [[AtomicU64; RCODES.len() + 1]; TYPES.len() + 1],
}

impl QueryCounters {
    /// Counts one query; `qtype` is `None` for queries answered without a lookup.
    pub fn count(&self, qtype: Option<RecordType>, rcode: ResponseCode) {
        let t = qtype
            .and_then(|q| TYPES.iter().position(|&t| t == q))
            .unwrap_or(TYPES.len());
        let r = RCODES
            .iter()
            .position(|&(r, _)| r == rcode)
            .unwrap_or(RCODES.len());
        self.counts[t][r].fetch_add(1, Ordering::Relaxed);
    }

    /// Every non-zero count: (type, rcode, count), with `other` and `OTHER` for the rest.
    pub fn nonzero(&self) -> Vec<(String, &'static str, u64)> {
        let mut out = Vec::new();
        for (t, row) in self.counts.iter().enumerate() {
            for (r, n) in row.iter().enumerate() {
                let n = n.load(Ordering::Relaxed);
                if n > 0 {
                    let qtype = TYPES.get(t).map_or("other".to_string(), |t| t.to_string());
                    out.push((qtype, RCODES.get(r).map_or("OTHER", |(_, name)| name), n));
                }
            }
        }
        out
    }
}

/// One member's answer counter, and what the watcher (in `state`) noted of it at its last
/// look. Kept in the member, one allocation, and handed to the member that replaces it on
/// reload: counts never reset, and the watcher needs no map of 300,000 members beside
/// the table. Only the watcher writes the `look_*` fields.
#[derive(Debug, Default)]
pub struct MemberCounters {
    /// Responses that chose this member (the query path counts it).
    pub answered: AtomicU64,
    /// The member's state at the last look, packed by the watcher; 0 before the first.
    pub look_state: AtomicU64,
    /// `answered` at the last look.
    pub look_answered: AtomicU64,
    /// The TTL answers carried at the last look.
    pub look_ttl: AtomicU32,
    /// The last look that found it answered since the one before (Unix milliseconds, 0
    /// for never), and the TTL answers carried then.
    pub last_answered_ms: AtomicU64,
    pub last_answered_ttl: AtomicU32,
}

/// Every counter of the process.
#[derive(Debug, Default)]
pub struct Counters {
    zones: Mutex<BTreeMap<String, Arc<QueryCounters>>>,
    /// Queries for names in none of our zones (refused, or forwarded).
    pub outside: QueryCounters,
    /// Members that went down, timed (recorded by the state's watcher).
    pub transitions: super::transition::Transitions,
    pub reloads_ok: AtomicU64,
    /// Zone transfer requests over TCP for zones with `transfer:` (AXFR and IXFR), answered
    /// or refused.
    pub transfers: AtomicU64,
    pub reloads_failed: AtomicU64,
    /// Unix time of the last configuration that loaded (start-up or reload).
    pub last_good_load: AtomicU64,
    pub forwarded: AtomicU64,
    pub forward_cache_hits: AtomicU64,
    pub forward_failures: AtomicU64,
    pub tcp: TcpCounters,
    /// UDP responses over the rate limit, dropped or sent truncated.
    pub rrl_dropped: AtomicU64,
    pub rrl_slipped: AtomicU64,
    /// Queries turned away by an access list, answered REFUSED or dropped.
    pub access_refused: AtomicU64,
    pub access_dropped: AtomicU64,
    /// UDP queries for the general path dropped while it had `GENERAL_IN_FLIGHT` at work.
    pub udp_general_busy: AtomicU64,
    /// UDP responses larger than the interface's MTU, sent truncated (TC=1) rather than
    /// fragmented.
    pub udp_mtu_truncated: AtomicU64,
    /// Frames taken off the AF_XDP rings (`xdp:`), and those of them left unanswered for
    /// want of room on the transmit ring or for headers that do not add up.
    pub xdp_queries: AtomicU64,
    pub xdp_dropped: AtomicU64,
    /// Time from a query's arrival to its answer leaving, over UDP and over TCP.
    pub udp_latency: LatencyHistogram,
    pub tcp_latency: LatencyHistogram,
}

/// Upper bounds, in seconds, of the query latency histogram's buckets: 20 µs to 1 s.
pub const QUERY_LATENCY_BUCKETS: [f64; 14] = [
    0.00002, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
    1.0,
];

/// How long queries took to answer: per bucket of [`QUERY_LATENCY_BUCKETS`] (not
/// cumulative) and above them, with the sum. The UDP fast path records a batch of
/// answers at once, so this costs two clock reads and two atomic adds per batch.
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    buckets: [AtomicU64; QUERY_LATENCY_BUCKETS.len() + 1],
    sum_ns: AtomicU64,
}

impl LatencyHistogram {
    /// Records `n` answers that each took `took`.
    pub fn record(&self, took: std::time::Duration, n: u64) {
        let seconds = took.as_secs_f64();
        let i = QUERY_LATENCY_BUCKETS
            .iter()
            .position(|&le| seconds <= le)
            .unwrap_or(QUERY_LATENCY_BUCKETS.len());
        self.buckets[i].fetch_add(n, Ordering::Relaxed);
        self.sum_ns
            .fetch_add(took.as_nanos() as u64 * n, Ordering::Relaxed);
    }

    /// (per-bucket counts, count, sum in seconds).
    pub fn snapshot(&self) -> (Vec<u64>, u64, f64) {
        let buckets: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let count = buckets.iter().sum();
        (
            buckets,
            count,
            self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9,
        )
    }
}

/// DNS over TCP: connections open, accepted, refused and closed (by reason).
#[derive(Debug, Default)]
pub struct TcpCounters {
    pub open: AtomicU64,
    pub accepted: AtomicU64,
    pub refused_per_client: AtomicU64,
    /// Accepts that failed for want of file descriptors.
    pub refused_no_descriptors: AtomicU64,
    pub closed_by_client: AtomicU64,
    pub closed_idle: AtomicU64,
    pub closed_io_timeout: AtomicU64,
    pub closed_query_limit: AtomicU64,
    pub closed_evicted: AtomicU64,
}

impl Counters {
    /// The query counters of `zone`.
    pub fn zone(&self, zone: &str) -> Arc<QueryCounters> {
        let mut zones = self.zones.lock().expect("counters lock");
        zones.entry(zone.to_string()).or_default().clone()
    }

    /// Every zone's counters, in zone order.
    pub fn zones(&self) -> Vec<(String, Arc<QueryCounters>)> {
        let zones = self.zones.lock().expect("counters lock");
        zones.iter().map(|(z, c)| (z.clone(), c.clone())).collect()
    }
}
