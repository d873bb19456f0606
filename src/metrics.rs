//! Counters for `/metrics`, in the Prometheus text format.
//!
//! The query path only does relaxed increments on atomics that the compiled table holds
//! `Arc`s to. The atomics live in this long-lived registry, keyed by zone or by
//! (name, member), so a reload hands the same counters to the new table and counts never
//! reset while the process runs. The text format is written here directly: a metrics
//! crate would add a label-lookup layer over atomics we already have.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::health::Registry;
use crate::zone::Table;

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
    pub fn count(&self, qtype: RecordType, rcode: ResponseCode) {
        let t = TYPES
            .iter()
            .position(|&t| t == qtype)
            .unwrap_or(TYPES.len());
        let r = RCODES
            .iter()
            .position(|&(r, _)| r == rcode)
            .unwrap_or(RCODES.len());
        self.counts[t][r].fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, zone: &str, out: &mut String) {
        for (t, row) in self.counts.iter().enumerate() {
            for (r, n) in row.iter().enumerate() {
                let n = n.load(Ordering::Relaxed);
                if n == 0 {
                    continue;
                }
                let qtype = TYPES.get(t).map_or("other".to_string(), |t| t.to_string());
                let rcode = RCODES.get(r).map_or("OTHER", |(_, name)| name);
                let _ = writeln!(
                    out,
                    "meridian_queries_total{{zone=\"{zone}\",type=\"{qtype}\",rcode=\"{rcode}\"}} {n}"
                );
            }
        }
    }
}

/// Every counter of the process.
#[derive(Debug, Default)]
pub struct Metrics {
    zones: Mutex<BTreeMap<String, Arc<QueryCounters>>>,
    /// Queries for names in none of our zones (refused, or forwarded).
    pub outside: Arc<QueryCounters>,
    /// By name, then member: one key per name keeps this small for large zones.
    answers: Mutex<BTreeMap<String, BTreeMap<IpAddr, Arc<AtomicU64>>>>,
    pub reloads_ok: AtomicU64,
    pub reloads_failed: AtomicU64,
    /// Unix time of the last configuration that loaded (start-up or reload).
    pub last_good_load: AtomicU64,
    pub forwarded: AtomicU64,
    pub forward_cache_hits: AtomicU64,
    pub forward_failures: AtomicU64,
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Metrics {
    pub fn zone(&self, zone: &str) -> Arc<QueryCounters> {
        let mut zones = self.zones.lock().expect("metrics lock");
        zones.entry(zone.to_string()).or_default().clone()
    }

    /// The counter of answers that chose `member` for `name`.
    pub fn answers(&self, name: &str, member: IpAddr) -> Arc<AtomicU64> {
        let mut answers = self.answers.lock().expect("metrics lock");
        if !answers.contains_key(name) {
            answers.insert(name.to_string(), BTreeMap::new());
        }
        let by_member = answers.get_mut(name).expect("just inserted");
        by_member.entry(member).or_default().clone()
    }

    pub fn render(&self, table: &Table, registry: &Registry) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP meridian_queries_total DNS queries by zone, query type and response code.\n",
        );
        out.push_str("# TYPE meridian_queries_total counter\n");
        for (zone, c) in self.zones.lock().expect("metrics lock").iter() {
            c.render(zone, &mut out);
        }
        self.outside.render("", &mut out);

        out.push_str(
            "# HELP meridian_answers_total Responses by health-checked name and chosen member.\n",
        );
        out.push_str("# TYPE meridian_answers_total counter\n");
        for (name, by_member) in self.answers.lock().expect("metrics lock").iter() {
            for (member, n) in by_member {
                let n = n.load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "meridian_answers_total{{name=\"{name}\",member=\"{member}\"}} {n}"
                );
            }
        }

        out.push_str("# HELP meridian_member_up Whether a member is up (1) or down (0), maintenance included.\n");
        out.push_str("# TYPE meridian_member_up gauge\n");
        for fqdn in table.fqdns() {
            for m in fqdn.v4.members.iter().chain(&fqdn.v6.members) {
                let up = u8::from(m.health.is_up());
                let _ = writeln!(
                    out,
                    "meridian_member_up{{name=\"{}\",member=\"{}\"}} {up}",
                    fqdn.name, m.address
                );
            }
        }

        let mut probes = registry.all();
        probes.sort_by_key(|p| p.key.to_string());
        out.push_str("# HELP meridian_probe_up Whether a probe is up (1) or down (0).\n");
        out.push_str("# TYPE meridian_probe_up gauge\n");
        for p in &probes {
            let _ = writeln!(
                out,
                "meridian_probe_up{{probe=\"{}\"}} {}",
                p.key,
                u8::from(p.is_up())
            );
        }
        out.push_str("# HELP meridian_probe_results_total Probe runs by result.\n");
        out.push_str("# TYPE meridian_probe_results_total counter\n");
        for p in &probes {
            let s = p.stats();
            let _ = writeln!(
                out,
                "meridian_probe_results_total{{probe=\"{}\",result=\"ok\"}} {}",
                p.key, s.ok
            );
            let _ = writeln!(
                out,
                "meridian_probe_results_total{{probe=\"{}\",result=\"fail\"}} {}",
                p.key, s.failed
            );
        }
        out.push_str("# HELP meridian_probe_duration_seconds Time probes took.\n");
        out.push_str("# TYPE meridian_probe_duration_seconds summary\n");
        for p in &probes {
            let s = p.stats();
            let _ = writeln!(
                out,
                "meridian_probe_duration_seconds_sum{{probe=\"{}\"}} {:.6}",
                p.key,
                s.latency_us as f64 / 1e6
            );
            let _ = writeln!(
                out,
                "meridian_probe_duration_seconds_count{{probe=\"{}\"}} {}",
                p.key,
                s.ok + s.failed
            );
        }
        out.push_str("# HELP meridian_probe_state_changes_total Up/down changes of a probe.\n");
        out.push_str("# TYPE meridian_probe_state_changes_total counter\n");
        for p in &probes {
            let _ = writeln!(
                out,
                "meridian_probe_state_changes_total{{probe=\"{}\"}} {}",
                p.key,
                p.detail().state_changes
            );
        }

        let ok = self.reloads_ok.load(Ordering::Relaxed);
        let failed = self.reloads_failed.load(Ordering::Relaxed);
        out.push_str("# HELP meridian_reloads_total Configuration reloads by result.\n");
        out.push_str("# TYPE meridian_reloads_total counter\n");
        let _ = writeln!(out, "meridian_reloads_total{{result=\"ok\"}} {ok}");
        let _ = writeln!(out, "meridian_reloads_total{{result=\"failed\"}} {failed}");
        out.push_str("# HELP meridian_config_last_good_load_timestamp_seconds When the serving configuration was loaded.\n");
        out.push_str("# TYPE meridian_config_last_good_load_timestamp_seconds gauge\n");
        let _ = writeln!(
            out,
            "meridian_config_last_good_load_timestamp_seconds {}",
            self.last_good_load.load(Ordering::Relaxed)
        );
        out.push_str("# HELP meridian_forwarded_total Queries forwarded upstream, cache hits and failures.\n");
        out.push_str("# TYPE meridian_forwarded_total counter\n");
        let _ = writeln!(
            out,
            "meridian_forwarded_total{{result=\"upstream\"}} {}",
            self.forwarded.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "meridian_forwarded_total{{result=\"cache\"}} {}",
            self.forward_cache_hits.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "meridian_forwarded_total{{result=\"failed\"}} {}",
            self.forward_failures.load(Ordering::Relaxed)
        );
        out
    }
}
