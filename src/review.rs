//! `meridian diff`: what a configuration change does to the answers, before it lands.
//!
//! Both configurations are compiled into tables exactly as the server compiles them, and
//! every question (each name of either, with each type it answers) is put to both for each
//! client in a set, through the same dry run that `explain` uses: the decision code of the
//! query path, with no counter or rotation moved. Members are up unless the caller marks
//! some down (the health of a running server, read from its `/status`).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::OnceLock;

use hickory_proto::rr::{LowerName, Name, RecordType};

use crate::admin::explain;
use crate::config::Config;
use crate::health::Registry;
use crate::model::Counters;
use crate::zone::{Inputs, Table};

/// What one question got: the response code and the answer's records in order (both
/// tables are fresh, so rotations start at the same turn).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub rcode: String,
    pub answer: Vec<String>,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.answer.is_empty() {
            write!(f, "{} (no answer)", self.rcode)
        } else if self.rcode == "NOERROR" {
            write!(f, "{}", self.answer.join(", "))
        } else {
            write!(f, "{} {}", self.rcode, self.answer.join(", "))
        }
    }
}

/// A question whose outcome differs between the two configurations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub name: String,
    pub qtype: RecordType,
    pub client: IpAddr,
    pub before: Outcome,
    pub after: Outcome,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} for {}: {} -> {}",
            self.name, self.qtype, self.client, self.before, self.after
        )
    }
}

/// `config` compiled as the server would, with fresh probes (up until they run: none runs
/// here) and the members in `down` (health-checked name, address) taken out.
pub fn compile(config: &Config, down: &[(Name, IpAddr)]) -> Table {
    let registry = Registry::default();
    let probes = registry.probes_for(config.probe_users());
    let counters = Counters::default();
    let previous = Table::empty();
    let sticky = OnceLock::new();
    let inputs = Inputs {
        serial: &|z| z.soa.serial,
        probes: &probes,
        counters: &counters,
        previous: &previous,
        sticky: &sticky,
    };
    let table = Table::compile(config, &inputs);
    for (name, address) in down {
        if let Some(m) = table.member(&LowerName::new(name), *address) {
            m.health.set_maintenance(true);
        }
    }
    table
}

/// Every question either configuration answers: each static record set's owner and type,
/// each zone's NS, and each health-checked name with A and AAAA. Not the SOA: its serial
/// follows the files' modification times, so it would differ between any two copies.
pub fn questions(configs: &[&Config]) -> BTreeSet<(Name, RecordType)> {
    let mut out = BTreeSet::new();
    for config in configs {
        for zone in &config.zones {
            out.insert((zone.origin.clone(), RecordType::NS));
            for set in &zone.records {
                out.insert((set.owner(), set.rtype));
                // An alias answers address queries through its target.
                if set.rtype == RecordType::CNAME {
                    out.insert((set.owner(), RecordType::A));
                    out.insert((set.owner(), RecordType::AAAA));
                }
            }
            for name in &zone.health_checked {
                out.insert((name.name.clone(), RecordType::A));
                out.insert((name.name.clone(), RecordType::AAAA));
            }
        }
    }
    out
}

/// The clients to ask for: one without a location (127.0.0.1), the first address of
/// every site network of either configuration, and `extra` (GeoIP test addresses, a
/// file of real clients).
pub fn clients(configs: &[&Config], extra: &[IpAddr]) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = vec![IpAddr::from([127, 0, 0, 1])];
    for config in configs {
        for zone in &config.zones {
            for site in &zone.sites {
                for net in &site.networks {
                    out.push(net.hosts().next().unwrap_or(net.addr()));
                }
            }
        }
    }
    out.extend_from_slice(extra);
    let mut seen = BTreeSet::new();
    out.retain(|c| seen.insert(*c));
    out
}

/// Changes that are the same for several clients, as one line each: the question, the
/// change, and the clients (all of them, or a list).
pub fn grouped(changes: &[Change], clients: usize) -> Vec<String> {
    let mut groups: Vec<(&Change, Vec<IpAddr>)> = Vec::new();
    for c in changes {
        match groups.iter_mut().find(|(g, _)| {
            g.name == c.name && g.qtype == c.qtype && g.before == c.before && g.after == c.after
        }) {
            Some((_, list)) => list.push(c.client),
            None => groups.push((c, vec![c.client])),
        }
    }
    groups
        .into_iter()
        .map(|(c, list)| {
            let who = if list.len() == clients && clients > 1 {
                format!("every client ({clients})")
            } else {
                let list: Vec<String> = list.iter().map(ToString::to_string).collect();
                list.join(", ")
            };
            format!(
                "{} {}: {} -> {}  (for {who})",
                c.name, c.qtype, c.before, c.after
            )
        })
        .collect()
}

/// The outcome of one question for one client.
fn ask(table: &Table, name: &Name, qtype: RecordType, client: IpAddr) -> Outcome {
    let e = explain(table, &LowerName::new(name), qtype, client);
    Outcome {
        rcode: e.rcode,
        answer: e.answer,
    }
}

/// Every question whose outcome differs, for every client, in name, type, client order.
pub fn diff(
    before: &Table,
    after: &Table,
    questions: &BTreeSet<(Name, RecordType)>,
    clients: &[IpAddr],
) -> Vec<Change> {
    let mut changes = Vec::new();
    for (name, qtype) in questions {
        for &client in clients {
            let (b, a) = (
                ask(before, name, *qtype, client),
                ask(after, name, *qtype, client),
            );
            if a != b {
                changes.push(Change {
                    name: name.to_string(),
                    qtype: *qtype,
                    client,
                    before: b,
                    after: a,
                });
            }
        }
    }
    changes
}
