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
        family(
            &mut out,
            "meridian_queries_total",
            "counter",
            "DNS queries by zone, query type and response code.",
        );
        for (zone, c) in self.zones.lock().expect("metrics lock").iter() {
            c.render(zone, &mut out);
        }
        self.outside.render("", &mut out);

        family(
            &mut out,
            "meridian_answers_total",
            "counter",
            "Responses by health-checked name and chosen member.",
        );
        for (name, by_member) in self.answers.lock().expect("metrics lock").iter() {
            for (member, n) in by_member {
                let labels = format!("name=\"{name}\",member=\"{member}\"");
                sample(
                    &mut out,
                    "meridian_answers_total",
                    &labels,
                    n.load(Ordering::Relaxed),
                );
            }
        }

        family(
            &mut out,
            "meridian_member_up",
            "gauge",
            "Whether a member is up (1) or down (0), maintenance included.",
        );
        for fqdn in table.fqdns() {
            for m in fqdn.v4.members.iter().chain(&fqdn.v6.members) {
                let labels = format!("name=\"{}\",member=\"{}\"", fqdn.name, m.address);
                sample(
                    &mut out,
                    "meridian_member_up",
                    &labels,
                    u8::from(m.health.is_up()),
                );
            }
        }

        let mut probes: Vec<_> = registry
            .all()
            .into_iter()
            .map(|p| (format!("probe=\"{}\"", p.key), p))
            .collect();
        probes.sort_by(|a, b| a.0.cmp(&b.0));
        family(
            &mut out,
            "meridian_probe_up",
            "gauge",
            "Whether a probe is up (1) or down (0).",
        );
        for (labels, p) in &probes {
            sample(&mut out, "meridian_probe_up", labels, u8::from(p.is_up()));
        }
        family(
            &mut out,
            "meridian_probe_results_total",
            "counter",
            "Probe runs by result.",
        );
        for (labels, p) in &probes {
            let s = p.stats();
            sample(
                &mut out,
                "meridian_probe_results_total",
                &format!("{labels},result=\"ok\""),
                s.ok,
            );
            sample(
                &mut out,
                "meridian_probe_results_total",
                &format!("{labels},result=\"fail\""),
                s.failed,
            );
        }
        family(
            &mut out,
            "meridian_probe_duration_seconds",
            "summary",
            "Time probes took.",
        );
        for (labels, p) in &probes {
            let s = p.stats();
            let seconds = format!("{:.6}", s.latency_us as f64 / 1e6);
            sample(
                &mut out,
                "meridian_probe_duration_seconds_sum",
                labels,
                seconds,
            );
            sample(
                &mut out,
                "meridian_probe_duration_seconds_count",
                labels,
                s.ok + s.failed,
            );
        }
        family(
            &mut out,
            "meridian_probe_state_changes_total",
            "counter",
            "Up/down changes of a probe.",
        );
        for (labels, p) in &probes {
            sample(
                &mut out,
                "meridian_probe_state_changes_total",
                labels,
                p.detail().state_changes,
            );
        }

        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        family(
            &mut out,
            "meridian_reloads_total",
            "counter",
            "Configuration reloads by result.",
        );
        sample(
            &mut out,
            "meridian_reloads_total",
            "result=\"ok\"",
            load(&self.reloads_ok),
        );
        sample(
            &mut out,
            "meridian_reloads_total",
            "result=\"failed\"",
            load(&self.reloads_failed),
        );
        let last = "meridian_config_last_good_load_timestamp_seconds";
        family(
            &mut out,
            last,
            "gauge",
            "When the serving configuration was loaded.",
        );
        sample(&mut out, last, "", load(&self.last_good_load));
        family(
            &mut out,
            "meridian_forwarded_total",
            "counter",
            "Queries forwarded upstream, cache hits and failures.",
        );
        sample(
            &mut out,
            "meridian_forwarded_total",
            "result=\"upstream\"",
            load(&self.forwarded),
        );
        sample(
            &mut out,
            "meridian_forwarded_total",
            "result=\"cache\"",
            load(&self.forward_cache_hits),
        );
        sample(
            &mut out,
            "meridian_forwarded_total",
            "result=\"failed\"",
            load(&self.forward_failures),
        );
        out
    }
}

/// The HELP and TYPE lines that open a metric family.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// One sample line; no labels when `labels` is empty.
fn sample(out: &mut String, name: &str, labels: &str, value: impl std::fmt::Display) {
    if labels.is_empty() {
        let _ = writeln!(out, "{name} {value}");
    } else {
        let _ = writeln!(out, "{name}{{{labels}}} {value}");
    }
}
