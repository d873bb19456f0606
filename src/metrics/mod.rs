//! `/metrics`: the process's counters and health in the Prometheus text format.
//!
//! prometheus-client writes the text (names, types, label escaping). The values are read at
//! scrape time from the counter store (plain atomics that the query path bumps), the live
//! table and the probe registry, so the query path never goes through a metrics library.

mod process;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::exemplar::Exemplar;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::model::counters::QUERY_LATENCY_BUCKETS;
use crate::model::health::LATENCY_BUCKETS;
use crate::model::transition::FAILOVER_BUCKETS;
use crate::model::{Counters, ProbeState};
use crate::select::StickyTable;
use crate::zone::Table;

/// The `Content-Type` of what [`render`] returns.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Everything one scrape reads.
#[derive(Debug)]
struct Scrape {
    counters: Arc<Counters>,
    table: Arc<Table>,
    probes: Vec<Arc<ProbeState>>,
    sticky: Option<Arc<StickyTable>>,
    /// Members being drained: name, address, and whether it is safe to stop them.
    drains: Vec<(String, std::net::IpAddr, bool)>,
    forward_cache_entries: usize,
    signatures: crate::sign::CacheStats,
    last_reload_ok: bool,
    /// With `cluster:`: the cluster as this server sees it, and its traffic.
    cluster: Option<(crate::cluster::Status, ClusterTraffic)>,
}

/// The cluster exchange's counters, read once per scrape.
#[derive(Debug)]
struct ClusterTraffic {
    sent_messages: u64,
    sent_bytes: u64,
    received_messages: u64,
    received_bytes: u64,
    rejected: u64,
}

/// The metrics text for the current counters, table and probes.
#[allow(clippy::too_many_arguments)]
pub fn render(
    counters: Arc<Counters>,
    table: Arc<Table>,
    probes: Vec<Arc<ProbeState>>,
    sticky: Option<Arc<StickyTable>>,
    drains: Vec<(String, std::net::IpAddr, bool)>,
    forward_cache_entries: usize,
    signatures: crate::sign::CacheStats,
    last_reload_ok: bool,
    cluster: Option<&crate::cluster::Cluster>,
) -> String {
    let cluster = cluster.map(|c| {
        let t = c.traffic();
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        (
            c.status(),
            ClusterTraffic {
                sent_messages: load(&t.sent_messages),
                sent_bytes: load(&t.sent_bytes),
                received_messages: load(&t.received_messages),
                received_bytes: load(&t.received_bytes),
                rejected: load(&t.rejected),
            },
        )
    });
    let mut probes = probes;
    probes.sort_by_cached_key(|p| p.key.to_string());
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape {
        counters,
        table,
        probes,
        sticky,
        drains,
        forward_cache_entries,
        signatures,
        last_reload_ok,
        cluster,
    }));
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
        .expect("writing to a String cannot fail");
    out
}

fn encode_process(enc: &mut DescriptorEncoder, p: &process::Process) -> fmt::Result {
    let m = enc.encode_descriptor(
        "process_cpu_seconds",
        "User and system CPU time spent, in seconds.",
        None,
        MetricType::Counter,
    )?;
    ConstCounter::new(p.cpu_seconds).encode(m)?;
    for (name, help, value) in [
        (
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            p.resident_bytes as f64,
        ),
        (
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            p.virtual_bytes as f64,
        ),
        (
            "process_open_fds",
            "Open file descriptors.",
            p.open_fds as f64,
        ),
        (
            "process_max_fds",
            "The limit of open file descriptors.",
            p.max_fds as f64,
        ),
        (
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch, in seconds.",
            p.start_time_seconds,
        ),
        (
            "process_threads",
            "Threads of the process.",
            p.threads as f64,
        ),
    ] {
        let m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
        ConstGauge::new(value).encode(m)?;
    }
    Ok(())
}

fn counter(m: &mut MetricEncoder, labels: &[(&str, &str)], value: u64) -> fmt::Result {
    ConstCounter::new(value).encode(m.encode_family(&labels)?)
}

fn gauge(m: &mut MetricEncoder, labels: &[(&str, &str)], value: i64) -> fmt::Result {
    ConstGauge::new(value).encode(m.encode_family(&labels)?)
}

impl Collector for Scrape {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let c = &self.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);

        let mut m = enc.encode_descriptor(
            "meridian_build_info",
            "Always 1; the labels say which build runs.",
            None,
            MetricType::Gauge,
        )?;
        gauge(
            &mut m,
            &[
                ("version", env!("CARGO_PKG_VERSION")),
                ("revision", env!("MERIDIAN_REVISION")),
            ],
            1,
        )?;
        if let Some(p) = process::read() {
            encode_process(&mut enc, &p)?;
        }

        let mut m = enc.encode_descriptor(
            "meridian_queries",
            "DNS queries by zone, query type and response code.",
            None,
            MetricType::Counter,
        )?;
        let zones = c.zones();
        let by_zone = zones
            .iter()
            .map(|(zone, q)| (zone.as_str(), &**q))
            .chain([("", &c.outside)]);
        for (zone, queries) in by_zone {
            for (qtype, rcode, n) in queries.nonzero() {
                counter(
                    &mut m,
                    &[("zone", zone), ("type", &qtype), ("rcode", rcode)],
                    n,
                )?;
            }
        }

        let mut m = enc.encode_descriptor(
            "meridian_answers",
            "Responses by health-checked name and chosen member.",
            None,
            MetricType::Counter,
        )?;
        for name in self.table.health_checked_names() {
            let name_text = name.name.to_string();
            for member in name.members() {
                let n = member.counters.answered.load(Ordering::Relaxed);
                let address = member.address.to_string();
                counter(&mut m, &[("name", &name_text), ("member", &address)], n)?;
            }
        }

        let mut m = enc.encode_descriptor(
            "meridian_member_up",
            "Whether a member is up (1) or down (0), maintenance included.",
            None,
            MetricType::Gauge,
        )?;
        for name in self.table.health_checked_names() {
            let name_text = name.name.to_string();
            for member in name.members() {
                let labels = [
                    ("name", name_text.as_str()),
                    ("member", &member.address.to_string()),
                ];
                gauge(&mut m, &labels, i64::from(member.health.is_up()))?;
            }
        }

        let mut m = enc.encode_descriptor(
            "meridian_name_failing",
            "1 while every member of a name is down: mode=open answers them all anyway (when-all-down: all), mode=closed answers none.",
            None,
            MetricType::Gauge,
        )?;
        for name in self.table.health_checked_names() {
            let down = name.members().all(|m| !m.health.is_up());
            let mode = match name.rules.when_all_down {
                crate::model::WhenAllDown::FailOpen => "open",
                crate::model::WhenAllDown::FailClosed => "closed",
            };
            gauge(
                &mut m,
                &[("name", name.name.to_string().as_str()), ("mode", mode)],
                i64::from(down),
            )?;
        }

        let mut m = enc.encode_descriptor(
            "meridian_member_role",
            "A member's role (checks with roles): 1 for the role it is in, 0 for the others.",
            None,
            MetricType::Gauge,
        )?;
        for name in self.table.health_checked_names() {
            let name_text = name.name.to_string();
            for member in name.members() {
                let Some(probe) = member.health.role_probe() else {
                    continue;
                };
                let address = member.address.to_string();
                for role in probe.roles().into_iter().flat_map(|r| r.names()) {
                    let current = probe.role_name() == Some(role);
                    let labels = [
                        ("name", name_text.as_str()),
                        ("member", &address),
                        ("role", role),
                    ];
                    gauge(&mut m, &labels, i64::from(current))?;
                }
            }
        }

        let mut m = enc.encode_descriptor(
            "meridian_member_state_changes_last_hour",
            "State changes of a member's probes in the last hour.",
            None,
            MetricType::Gauge,
        )?;
        let mut flapping = Vec::new();
        for name in self.table.health_checked_names() {
            let name_text = name.name.to_string();
            for member in name.members() {
                let (changes, flaps) = member.health.flaps();
                let address = member.address.to_string();
                let labels = [("name", name_text.as_str()), ("member", &address)];
                gauge(&mut m, &labels, changes as i64)?;
                flapping.push((name_text.clone(), address, flaps));
            }
        }
        let mut m = enc.encode_descriptor(
            "meridian_member_flapping",
            "Whether a member changed state 6 times or more in the last hour (1) or not (0).",
            None,
            MetricType::Gauge,
        )?;
        for (name, address, flaps) in &flapping {
            gauge(
                &mut m,
                &[("name", name), ("member", address)],
                i64::from(*flaps),
            )?;
        }

        let mut m = enc.encode_descriptor(
            "meridian_split_brain",
            "Whether two or more members of a name claim the leader role (1) or not (0).",
            None,
            MetricType::Gauge,
        )?;
        for name in self.table.health_checked_names() {
            let views: Vec<_> = [&name.v4, &name.v6]
                .into_iter()
                .filter_map(|pool| pool.leader_view(&pool.up()))
                .collect();
            if !views.is_empty() {
                let split = views.iter().any(|v| v.split_brain());
                gauge(
                    &mut m,
                    &[("name", &name.name.to_string())],
                    i64::from(split),
                )?;
            }
        }

        let mut m = enc.encode_descriptor(
            "meridian_failover_seconds",
            "Members that went down: seconds from the first failed probe until answers left the member out (until=out-of-answers), and until the last answer naming it expired (until=ttl-expiry).",
            None,
            MetricType::Histogram,
        )?;
        for (name, (out, expiry)) in c.transitions.histograms() {
            for (until, h) in [("out-of-answers", out), ("ttl-expiry", expiry)] {
                let buckets: Vec<(f64, u64)> = FAILOVER_BUCKETS
                    .iter()
                    .copied()
                    .chain([f64::INFINITY])
                    .zip(h.buckets)
                    .collect();
                m.encode_family(&[("name", name.as_str()), ("until", until)])?
                    .encode_histogram::<NoLabelSet>(
                        h.sum,
                        h.count,
                        &buckets,
                        None::<&std::collections::HashMap<usize, Exemplar<NoLabelSet, f64>>>,
                    )?;
            }
        }

        if !self.drains.is_empty() {
            let mut m = enc.encode_descriptor(
                "meridian_member_drain_safe",
                "Members being drained: safe to stop (1: the TTL has passed and every resolver that got it has asked again) or not yet (0).",
                None,
                MetricType::Gauge,
            )?;
            for (name, member, safe) in &self.drains {
                let member = member.to_string();
                gauge(
                    &mut m,
                    &[("name", name), ("member", &member)],
                    i64::from(*safe),
                )?;
            }
        }

        if let Some(sticky) = &self.sticky {
            let m = enc.encode_descriptor(
                "meridian_sticky_entries",
                "Live entries of the stickiness table (of 65,536).",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(sticky.in_use() as i64).encode(m)?;
            let m = enc.encode_descriptor(
                "meridian_sticky_evictions",
                "Live stickiness entries taken over by another client's.",
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(sticky.evictions()).encode(m)?;
        }

        self.encode_probes(&mut enc)?;

        let m = enc.encode_descriptor(
            "meridian_zone_transfers",
            "Zone transfer requests (AXFR, IXFR) over TCP for zones with transfer: answered or refused.",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(load(&c.transfers)).encode(m)?;

        let mut m = enc.encode_descriptor(
            "meridian_reloads",
            "Configuration reloads by result.",
            None,
            MetricType::Counter,
        )?;
        counter(&mut m, &[("result", "ok")], load(&c.reloads_ok))?;
        counter(&mut m, &[("result", "failed")], load(&c.reloads_failed))?;

        let m = enc.encode_descriptor(
            "meridian_config_last_good_load_timestamp_seconds",
            "When the serving configuration was loaded.",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(load(&c.last_good_load) as i64).encode(m)?;
        let m = enc.encode_descriptor(
            "meridian_config_last_reload_successful",
            "1 when the last load of the configuration succeeded, 0 while a rejected one leaves the previous configuration serving.",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(i64::from(self.last_reload_ok)).encode(m)?;

        let mut m = enc.encode_descriptor(
            "meridian_forwarded",
            "Queries forwarded upstream, cache hits and failures.",
            None,
            MetricType::Counter,
        )?;
        counter(&mut m, &[("result", "upstream")], load(&c.forwarded))?;
        counter(&mut m, &[("result", "cache")], load(&c.forward_cache_hits))?;
        counter(&mut m, &[("result", "failed")], load(&c.forward_failures))?;
        let m = enc.encode_descriptor(
            "meridian_forward_cache_entries",
            "Answers in the forwarding cache.",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(self.forward_cache_entries as i64).encode(m)?;

        let s = &self.signatures;
        let mut m = enc.encode_descriptor(
            "meridian_dnssec_signatures",
            "RRSIGs for answers of signed zones: taken from the cache, made (a miss or a refresh), or failed to make.",
            None,
            MetricType::Counter,
        )?;
        counter(&mut m, &[("result", "cached")], s.hits)?;
        counter(&mut m, &[("result", "made")], s.misses - s.failures)?;
        counter(&mut m, &[("result", "failed")], s.failures)?;
        let mut m = enc.encode_descriptor(
            "meridian_dnssec_signature_cache",
            "The signature cache: its slots, the signatures in them and the bytes they hold.",
            None,
            MetricType::Gauge,
        )?;
        gauge(&mut m, &[("size", "slots")], s.slots as i64)?;
        gauge(&mut m, &[("size", "entries")], s.entries as i64)?;
        gauge(&mut m, &[("size", "bytes")], s.bytes as i64)?;

        let mut m = enc.encode_descriptor(
            "meridian_query_duration_seconds",
            "Time from a query's arrival to its answer leaving (UDP answers of the fast path are timed per receive batch).",
            None,
            MetricType::Histogram,
        )?;
        for (protocol, h) in [("udp", &c.udp_latency), ("tcp", &c.tcp_latency)] {
            let (counts, count, sum) = h.snapshot();
            let buckets: Vec<(f64, u64)> = QUERY_LATENCY_BUCKETS
                .iter()
                .copied()
                .chain([f64::INFINITY])
                .zip(counts)
                .collect();
            m.encode_family(&[("protocol", protocol)])?
                .encode_histogram::<NoLabelSet>(
                    sum,
                    count,
                    &buckets,
                    None::<&std::collections::HashMap<usize, Exemplar<NoLabelSet, f64>>>,
                )?;
        }

        let m = enc.encode_descriptor(
            "meridian_rrl_dropped",
            "UDP responses over the rate limit, dropped.",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(load(&c.rrl_dropped)).encode(m)?;
        let m = enc.encode_descriptor(
            "meridian_rrl_slipped",
            "UDP responses over the rate limit, sent truncated (TC=1) instead.",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(load(&c.rrl_slipped)).encode(m)?;

        let mut m = enc.encode_descriptor(
            "meridian_access_denied",
            "Queries turned away by an access list, by action.",
            None,
            MetricType::Counter,
        )?;
        counter(&mut m, &[("action", "refuse")], load(&c.access_refused))?;
        counter(&mut m, &[("action", "drop")], load(&c.access_dropped))?;

        let m = enc.encode_descriptor(
            "meridian_udp_general_path_busy",
            "UDP queries dropped because the general path had its maximum at work.",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(load(&c.udp_general_busy)).encode(m)?;
        let m = enc.encode_descriptor(
            "meridian_udp_mtu_truncated",
            "UDP responses larger than the interface's MTU, sent truncated (TC=1) rather than fragmented.",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(load(&c.udp_mtu_truncated)).encode(m)?;
        let m = enc.encode_descriptor(
            "meridian_xdp_queries",
            "UDP queries taken off the AF_XDP rings (xdp:).",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(load(&c.xdp_queries)).encode(m)?;
        let m = enc.encode_descriptor(
            "meridian_xdp_dropped",
            "Frames off the AF_XDP rings left unanswered: the transmit ring full, or headers that do not add up.",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(load(&c.xdp_dropped)).encode(m)?;

        let tcp = &c.tcp;
        let m = enc.encode_descriptor(
            "meridian_tcp_connections",
            "DNS over TCP connections open.",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(load(&tcp.open) as i64).encode(m)?;
        let m = enc.encode_descriptor(
            "meridian_tcp_accepted",
            "DNS over TCP connections accepted.",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(load(&tcp.accepted)).encode(m)?;
        let mut m = enc.encode_descriptor(
            "meridian_tcp_refused",
            "DNS over TCP connections refused, by reason.",
            None,
            MetricType::Counter,
        )?;
        counter(
            &mut m,
            &[("reason", "per-client")],
            load(&tcp.refused_per_client),
        )?;
        counter(
            &mut m,
            &[("reason", "no-file-descriptors")],
            load(&tcp.refused_no_descriptors),
        )?;
        let mut m = enc.encode_descriptor(
            "meridian_tcp_closed",
            "DNS over TCP connections closed, by reason.",
            None,
            MetricType::Counter,
        )?;
        for (reason, n) in [
            ("client", &tcp.closed_by_client),
            ("idle", &tcp.closed_idle),
            ("io-timeout", &tcp.closed_io_timeout),
            ("query-limit", &tcp.closed_query_limit),
            ("evicted", &tcp.closed_evicted),
        ] {
            counter(&mut m, &[("reason", reason)], load(n))?;
        }
        Ok(())
    }
}

impl Scrape {
    fn encode_probes(&self, enc: &mut DescriptorEncoder) -> fmt::Result {
        let labels: Vec<String> = self.probes.iter().map(|p| p.key.to_string()).collect();
        let probes = || labels.iter().zip(&self.probes);

        let mut m = enc.encode_descriptor(
            "meridian_probe_up",
            "Whether a probe is up (1) or down (0).",
            None,
            MetricType::Gauge,
        )?;
        for (probe, p) in probes() {
            gauge(&mut m, &[("probe", probe)], i64::from(p.is_up()))?;
        }

        let mut m = enc.encode_descriptor(
            "meridian_probe_results",
            "Probe runs by result.",
            None,
            MetricType::Counter,
        )?;
        for (probe, p) in probes() {
            let s = p.stats();
            counter(&mut m, &[("probe", probe), ("result", "ok")], s.ok)?;
            counter(&mut m, &[("probe", probe), ("result", "fail")], s.failed)?;
        }

        let mut m = enc.encode_descriptor(
            "meridian_probe_duration_seconds",
            "Time probe runs took.",
            None,
            MetricType::Histogram,
        )?;
        for (probe, p) in probes() {
            let s = p.stats();
            let buckets: Vec<(f64, u64)> = LATENCY_BUCKETS
                .iter()
                .copied()
                .chain([f64::INFINITY])
                .zip(s.buckets)
                .collect();
            m.encode_family(&[("probe", probe.as_str())])?
                .encode_histogram::<NoLabelSet>(
                    s.latency_us as f64 / 1e6,
                    s.ok + s.failed,
                    &buckets,
                    None::<&std::collections::HashMap<usize, Exemplar<NoLabelSet, f64>>>,
                )?;
        }

        let mut m = enc.encode_descriptor(
            "meridian_probe_state_changes",
            "Up/down changes of a probe.",
            None,
            MetricType::Counter,
        )?;
        for (probe, p) in probes() {
            counter(&mut m, &[("probe", probe)], p.detail().state_changes)?;
        }
        self.encode_quorum(enc, &labels)
    }

    /// Each view a quorum probe is decided from, and the cluster's own health.
    fn encode_quorum(&self, enc: &mut DescriptorEncoder, labels: &[String]) -> fmt::Result {
        let Some((status, traffic)) = &self.cluster else {
            return Ok(());
        };
        let quorum = || {
            labels
                .iter()
                .zip(&self.probes)
                .filter(|(_, p)| p.key.quorum != crate::model::Quorum::Local)
        };
        let mut m = enc.encode_descriptor(
            "meridian_probe_seen_up",
            "This server's own view of a probe with a quorum: up (1) or down (0); meridian_probe_up is the decision.",
            None,
            MetricType::Gauge,
        )?;
        for (probe, p) in quorum() {
            gauge(&mut m, &[("probe", probe)], i64::from(p.seen().0))?;
        }
        let mut m = enc.encode_descriptor(
            "meridian_probe_peer_up",
            "A live peer's view of a probe with a quorum: up (1) or down (0).",
            None,
            MetricType::Gauge,
        )?;
        for (probe, p) in quorum() {
            for v in p.decision().peers {
                gauge(
                    &mut m,
                    &[("probe", probe), ("peer", &v.peer)],
                    i64::from(v.up),
                )?;
            }
        }
        for (name, help, value) in [
            (
                "meridian_cluster_peers",
                "Live peers of the cluster.",
                status.peers.len(),
            ),
            (
                "meridian_cluster_isolated",
                "1 when no peer is live and every name decides by this server's own probes.",
                usize::from(status.isolated),
            ),
            (
                "meridian_cluster_config_mismatch",
                "Live peers whose zones differ from this server's (by fingerprint).",
                status.mismatched(),
            ),
        ] {
            let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
            gauge(&mut m, &[], value as i64)?;
        }
        let mut m = enc.encode_descriptor(
            "meridian_cluster_messages",
            "Cluster datagrams sent, received, and rejected (not sealed with the cluster's key).",
            None,
            MetricType::Counter,
        )?;
        for (direction, n) in [
            ("sent", traffic.sent_messages),
            ("received", traffic.received_messages),
            ("rejected", traffic.rejected),
        ] {
            counter(&mut m, &[("direction", direction)], n)?;
        }
        let mut m = enc.encode_descriptor(
            "meridian_cluster_bytes",
            "Bytes of cluster datagrams sent and received, sealed.",
            None,
            MetricType::Counter,
        )?;
        for (direction, n) in [
            ("sent", traffic.sent_bytes),
            ("received", traffic.received_bytes),
        ] {
            counter(&mut m, &[("direction", direction)], n)?;
        }
        Ok(())
    }
}
