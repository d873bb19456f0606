//! `GET /history?name=N&client=NET&at=UNIX&within=SECONDS`: what a client network got from
//! a health-checked name around a time, and why, from the sampled decision history, with
//! the member state changes of that name up to then.

use std::net::IpAddr;

use hickory_proto::rr::LowerName;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::model::events::Event;
use crate::model::health::vote_of;
use crate::select::history::{History, SAMPLE_EVERY, Sample};
use crate::zone::Table;

#[derive(Debug, Serialize, Deserialize)]
pub struct HistoryReport {
    pub name: String,
    /// The client network asked about (all clients when none was given).
    pub client: Option<String>,
    /// Unix seconds asked about, and the window either side.
    pub at: Option<u64>,
    pub within: u64,
    /// One answer in how many is kept.
    pub sampled_one_in: u32,
    pub answers: Vec<PastAnswer>,
    /// The name's member state changes up to the end of the window, newest first.
    pub changes: Vec<PastChange>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PastAnswer {
    pub at: u64,
    pub client: String,
    pub qtype: String,
    /// The first two members chosen (`?` for a member the configuration no longer has).
    pub members: Vec<String>,
    pub chosen: u8,
    pub up: u8,
    pub pool: u8,
    pub why: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PastChange {
    pub at: u64,
    pub member: String,
    pub from: String,
    pub to: String,
    pub reason: String,
}

/// The client network a question names: an address means its /24 (IPv4) or /64 (IPv6),
/// the networks the history can tell apart.
pub fn client_network(text: &str) -> Result<IpNet, String> {
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    let ip: IpAddr = text.parse().map_err(|_| {
        format!("`{text}` is not an IP address or network: give 192.0.2.1 or 192.0.2.0/24")
    })?;
    let len = if ip.is_ipv4() { 24 } else { 64 };
    Ok(IpNet::new(ip, len).expect("valid prefix").trunc())
}

/// The report for `name`, from `history` and `events`, as the serving table names members.
pub fn report(
    table: &Table,
    history: Option<&History>,
    events: &[Event],
    name: &LowerName,
    client: Option<IpNet>,
    at: Option<u64>,
    within: u64,
) -> Result<HistoryReport, String> {
    let (hc, zone) = table
        .health_checked(name)
        .ok_or_else(|| format!("{name} is not a health-checked name: only those are recorded"))?;
    let members: Vec<_> = hc.members().collect();
    let address_of = |tag: u32| {
        members
            .iter()
            .find(|m| m.tag == tag)
            .map_or("?".to_string(), |m| m.address.to_string())
    };
    let lower_text = name.to_string();
    let tag = vote_of(&lower_text) as u32 | 1;
    let in_window = |t: u64| at.is_none_or(|a| t + within >= a && t <= a + within);
    let samples: Vec<Sample> = history.map_or_else(Vec::new, |h| h.of(tag));
    let policy = hc.rules.policy.as_str();
    let answers = samples
        .iter()
        .filter(|s| in_window(u64::from(s.at)))
        .filter(|s| client.is_none_or(|net| net.contains(&s.client)))
        .map(|s| {
            let d = &s.decision;
            let shown = usize::from(d.chosen_count).min(2);
            let members: Vec<String> = d.chosen[..shown].iter().map(|&t| address_of(t)).collect();
            let mut list = members.join(", ");
            if d.chosen_count > 2 {
                list.push_str(&format!(" and {} more", d.chosen_count - 2));
            }
            let site = if d.site > 0 {
                zone.sites
                    .sites
                    .get(usize::from(d.site) - 1)
                    .map_or(String::new(), |s| {
                        format!("; the client was placed at site {}", s.name)
                    })
            } else {
                String::new()
            };
            let why = if d.chosen_count == 0 {
                format!("no member was up and the name fails closed: no address{site}")
            } else if d.failing_open {
                format!("no member was up: failing open, {list} answered as if all were up{site}")
            } else {
                format!(
                    "{} of {} members were up; {policy} chose {list}{site}",
                    d.up, d.pool
                )
            };
            PastAnswer {
                at: u64::from(s.at),
                client: s.client.to_string(),
                qtype: if d.aaaa { "AAAA" } else { "A" }.into(),
                members,
                chosen: d.chosen_count,
                up: d.up,
                pool: d.pool,
                why,
            }
        })
        .collect();
    let until = at.map(|a| a + within);
    let changes = events
        .iter()
        .filter(|e| e.name == lower_text)
        .filter(|e| until.is_none_or(|u| e.at_ms / 1000 <= u))
        .map(|e| PastChange {
            at: e.at_ms / 1000,
            member: e.member.to_string(),
            from: e.from.clone(),
            to: e.to.clone(),
            reason: e.reason.clone(),
        })
        .collect();
    Ok(HistoryReport {
        name: lower_text,
        client: client.map(|c| c.to_string()),
        at,
        within,
        sampled_one_in: SAMPLE_EVERY,
        answers,
        changes,
    })
}

/// The time of day, UTC, of a unix time.
fn clock(t: u64) -> String {
    let s = t % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

impl HistoryReport {
    /// The report as text, for `meridian explain --at`.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let who = self.client.as_deref().unwrap_or("every client");
        let when = self.at.map_or("so far".to_string(), |a| {
            format!("within {} s of {} UTC", self.within, clock(a))
        });
        let _ = writeln!(
            out,
            "{} for {who}, {when} (one answer in {} is kept):",
            self.name, self.sampled_one_in
        );
        if self.answers.is_empty() {
            let _ = writeln!(out, "  no answer kept");
        }
        for a in &self.answers {
            let _ = writeln!(
                out,
                "  {} {:<20} {:<4} {}",
                clock(a.at),
                a.client,
                a.qtype,
                a.why
            );
        }
        if !self.changes.is_empty() {
            let _ = writeln!(
                out,
                "state changes of its members up to then, newest first:"
            );
        }
        for c in &self.changes {
            let _ = writeln!(
                out,
                "  {} {:<20} {} -> {}: {}",
                clock(c.at),
                c.member,
                c.from,
                c.to,
                c.reason
            );
        }
        out
    }
}
