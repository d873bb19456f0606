//! Why a name answers what it answers, for a given client: where the client was placed
//! and how, the policy, every member's state (and distance), and the pick.
//!
//! It is a dry run of the real decision path: the plan a query would get, with no counter
//! and no rotation moved.

use std::net::IpAddr;

use hickory_proto::op::OpCode;
use hickory_proto::rr::{DNSClass, LowerName, RecordType};
use serde::{Deserialize, Serialize};

use crate::model::name::{KeyBuf, name_of};

use super::status::{LeaderStatus, MemberStatus, TransitionStatus, leader_status, member_status};
use crate::geo::{ClientLocation, code_str, distance_km};
use crate::resolve::{self, Mode, Query, Question};
use crate::select::{Member, Pool};
use crate::zone::{HealthCheckedName, Table, Zone};

#[derive(Debug, Serialize, Deserialize)]
pub struct Explanation {
    pub name: String,
    #[serde(rename = "type")]
    pub qtype: String,
    pub client: String,
    pub zone: Option<String>,
    pub rcode: String,
    pub policy: Option<String>,
    /// Where the client was located, for policies that depend on it.
    pub location: Option<ExplainedLocation>,
    pub members: Vec<ExplainedMember>,
    /// `roles:` tiers, when roles choose, and the one that answers (from 1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answering_tier: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<LeaderStatus>,
    pub answer: Vec<String>,
    /// The health-checked name that chose (the asked name, or a CNAME's target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chosen_by: Option<String>,
    /// The name's latest failovers, newest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transitions: Vec<TransitionStatus>,
    pub ttl: Option<u32>,
    /// The reasoning, in a sentence or two.
    pub why: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ExplainedLocation {
    /// `site-network`, `geoip` or `unknown`.
    pub found_by: String,
    pub site: Option<String>,
    pub country: Option<String>,
    pub continent: Option<String>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    /// The ECS scope prefix an answer for this client carries.
    pub scope: u8,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ExplainedMember {
    #[serde(flatten)]
    pub member: MemberStatus,
    pub distance_km: Option<f64>,
    pub chosen: bool,
}

/// What chose (or would choose) the answer: a health-checked name and its pool.
struct Chooser<'t> {
    name: &'t HealthCheckedName,
    zone: &'t Zone,
    pool: &'t Pool,
    location: Option<ClientLocation>,
    chosen: &'t [&'t Member],
}

/// Explains the answer to `name`/`qtype` for `client` (as a full-length address, as if it
/// came without ECS), as the next query would get it.
pub fn explain(table: &Table, name: &LowerName, qtype: RecordType, client: IpAddr) -> Explanation {
    let key = KeyBuf::of(name);
    let query = Query {
        op_code: OpCode::Query,
        question: Some(Question {
            name: key.as_bytes(),
            qtype,
            qclass: DNSClass::IN,
        }),
        edns: None,
        source: client,
    };
    let plan = resolve::plan(table, &query, Mode::DryRun);
    let answer: Vec<String> = plan
        .answers
        .iter()
        .map(|rr| rr.record().data.to_string())
        .collect();
    let mut e = Explanation {
        name: name.to_string(),
        qtype: qtype.to_string(),
        client: client.to_string(),
        zone: plan.zone.map(|z| z.origin.to_string()),
        rcode: crate::model::rcode_name(plan.rcode),
        policy: None,
        location: None,
        members: Vec::new(),
        roles: Vec::new(),
        answering_tier: None,
        leader: None,
        answer,
        chosen_by: None,
        transitions: Vec::new(),
        ttl: plan.answers.iter().map(|rr| rr.ttl).min(),
        why: String::new(),
    };
    // The name that chose; else the asked name's own members, for a type it has none of.
    let chooser = match &plan.selection {
        Some(s) => Chooser {
            name: s.name,
            zone: s.zone,
            pool: s.pool,
            location: s.location,
            chosen: &s.chosen,
        },
        None => match table.health_checked(name) {
            Some((hc, _)) if !matches!(qtype, RecordType::A | RecordType::AAAA) => {
                e.chosen_by = Some(hc.name.to_string());
                e.policy = Some(hc.rules.policy.as_str().to_string());
                e.why = format!(
                    "{} is a health-checked name: its members answer A and AAAA queries. It has no {qtype} records, so a {qtype} query gets {}.",
                    hc.name,
                    negative(&e, &plan)
                );
                return e;
            }
            Some((hc, zone)) => Chooser {
                name: hc,
                zone,
                pool: if qtype == RecordType::AAAA {
                    &hc.v6
                } else {
                    &hc.v4
                },
                location: None,
                chosen: &[],
            },
            None => {
                e.why = static_why(&e, &plan, qtype);
                return e;
            }
        },
    };
    describe(&mut e, &chooser);
    e
}

/// NXDOMAIN or NODATA, in words, with how long resolvers may cache it.
fn negative(e: &Explanation, plan: &resolve::Plan) -> String {
    let cached = plan.soa.map_or(String::new(), |soa| {
        format!(", cached by resolvers for up to {} s", soa.ttl)
    });
    if e.rcode == "NXDOMAIN" {
        format!("NXDOMAIN (the zone's SOA in the authority section{cached})")
    } else {
        format!(
            "NODATA: NOERROR with no answer and the zone's SOA in the authority section{cached}"
        )
    }
}

/// Why a name that no health-checked name decides answers as it does.
fn static_why(e: &Explanation, plan: &resolve::Plan, qtype: RecordType) -> String {
    if plan.denied {
        let action = if plan.drop {
            "dropped without an answer"
        } else {
            "REFUSED"
        };
        return format!("The client is turned away by an access list (access:): {action}.");
    }
    let Some(zone) = &e.zone else {
        if plan.forward {
            return format!(
                "{} is in none of our zones. This client may use forwarding, so the query goes to the upstream resolvers, and their answer comes back with RA set and AA clear.",
                e.name
            );
        }
        return format!(
            "{} is in none of our zones, and this client may not use forwarding (there is no forward: section, or the client is not in forward.allow): REFUSED.",
            e.name
        );
    };
    if let Some(referral) = &plan.referral {
        let servers: Vec<String> = referral
            .ns
            .records
            .iter()
            .map(|r| r.record().data.to_string())
            .collect();
        return format!(
            "{} is delegated: it is at or below {}, which has NS records in zone {zone}, so the answer is a referral to the child zone's name servers ({}): NOERROR without AA, the NS records in the authority section and their addresses (glue) in the additional section.",
            e.name,
            name_of(referral.cut),
            servers.join(", ")
        );
    }
    if e.rcode == "NXDOMAIN" {
        return format!(
            "{} does not exist in zone {zone}: {}.",
            e.name,
            negative(e, plan)
        );
    }
    // A wildcard answered for a name that does not exist (RFC 4592).
    let wildcard = plan.wildcard.map_or(String::new(), |w| {
        format!(
            "{} does not exist in zone {zone}, but the wildcard {} answers for it. ",
            e.name,
            name_of(w)
        )
    });
    if e.answer.is_empty() {
        if !wildcard.is_empty() {
            return format!(
                "{wildcard}It has no {qtype} records: {}.",
                negative(e, plan)
            );
        }
        return format!(
            "{} exists in zone {zone} but has no {qtype} records: {}.",
            e.name,
            negative(e, plan)
        );
    }
    let first = &plan.answers[0].record();
    if first.record_type() == RecordType::CNAME && qtype != RecordType::CNAME {
        let target = first.data.to_string();
        return if plan.answers.len() == 1 {
            format!(
                "{} is an alias (CNAME) of {target}, which has no {qtype} records: the answer is the CNAME alone (NOERROR).",
                e.name
            )
        } else {
            format!(
                "{} is an alias (CNAME) of {target}: the answer is the CNAME chain followed by the static {qtype} records it ends at.",
                e.name
            )
        };
    }
    if !wildcard.is_empty() {
        return format!(
            "{wildcard}Its static {qtype} records are answered under the asked name, with no selection."
        );
    }
    format!(
        "{} has static {qtype} records in zone {zone}: answered as written, with no selection.",
        e.name
    )
}

fn describe(e: &mut Explanation, c: &Chooser) {
    e.chosen_by = Some(c.name.name.to_string());
    let policy = c.name.rules.policy;
    let sites = &c.zone.sites.sites;
    e.policy = Some(policy.as_str().to_string());
    e.location = c.location.map(|l| ExplainedLocation {
        found_by: l.found_by.as_str().to_string(),
        site: l.site.map(|s| sites[s].name.clone()),
        country: l.country.as_ref().map(|c| code_str(c).to_string()),
        continent: l.continent.as_ref().map(|c| code_str(c).to_string()),
        lat: l.lat_lon.map(|p| p.0),
        lon: l.lat_lon.map(|p| p.1),
        scope: l.scope,
    });
    let here = c.location.and_then(|l| l.lat_lon);
    e.members = c
        .pool
        .members
        .iter()
        .map(|m| {
            let there = m.site().and_then(|s| sites[s].lat_lon);
            ExplainedMember {
                member: member_status(m, c.zone),
                distance_km: here
                    .zip(there)
                    .map(|(a, b)| (distance_km(a, b) * 10.0).round() / 10.0),
                chosen: c.chosen.iter().any(|chosen| std::ptr::eq(*chosen, m)),
            }
        })
        .collect();
    let up = c.pool.members.iter().filter(|m| m.health.is_up()).count();
    let roles = if c.pool.chooses_by_role() {
        e.roles = c.pool.tier_names();
        e.answering_tier = c.pool.by_role(&c.pool.up()).0.map(|t| t + 1);
        e.leader = leader_status(c.pool);
        roles_why(e)
    } else {
        String::new()
    };
    let located = match &e.location {
        None => String::new(),
        Some(l) if l.found_by == "unknown" => " The client's location is unknown.".into(),
        Some(l) => format!(
            " The client was placed by {}{}{}.",
            l.found_by,
            l.site
                .as_ref()
                .map_or(String::new(), |s| format!(" at site {s}")),
            l.country
                .as_ref()
                .map_or(String::new(), |c| format!(" in {c}")),
        ),
    };
    let picked = if e.answer.is_empty() {
        "nothing".to_string()
    } else {
        e.answer.join(", ")
    };
    e.why = if c.pool.is_empty() {
        format!("{} has no members of this address family.", c.name.name)
    } else if up == 0 {
        let outcome = if e.answer.is_empty() {
            "none: NODATA"
        } else {
            "all: chosen as if all were up"
        };
        format!("No member is up; when-all-down is {outcome}.{located}")
    } else {
        format!(
            "{up} of {} members are up;{roles} {} chose {picked}.{located}",
            c.pool.members.len(),
            policy.as_str(),
        )
    };
}

/// The part of the reasoning that roles add: the tier that answers, and who leads.
fn roles_why(e: &Explanation) -> String {
    let tier = |t: usize| e.roles[t - 1].join(" or ");
    let mut why = match e.answering_tier {
        Some(t) => format!(" roles: tier {t} ({}) answers", tier(t)),
        None => " roles: no tier has a member up".to_string(),
    };
    if let Some(l) = &e.leader {
        why += &match (&l.leader, l.split_brain) {
            (Some(x), true) => format!(
                "; split brain: {} claim the leader role, the majority names {x}",
                l.claimants.join(" and ")
            ),
            (None, true) => format!(
                "; split brain: {} claim the leader role and no majority names one, so none leads",
                l.claimants.join(" and ")
            ),
            (Some(x), false) => format!(
                "; {x} leads ({}, named by {} of {} voting)",
                l.agreement, l.votes, l.voters
            ),
            (None, false) if l.claimants.is_empty() => "; no member claims the leader role".into(),
            (None, false) => format!(
                "; {} claims the leader role, but other members name another leader",
                l.claimants.join(", ")
            ),
        };
    }
    why + ";"
}

impl Explanation {
    /// The explanation as text, for a terminal and the status page.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let e = self;
        let mut out = String::new();
        let _ = writeln!(out, "{} {} for client {}", e.name, e.qtype, e.client);
        let _ = writeln!(
            out,
            "zone: {}   rcode: {}   policy: {}",
            e.zone.as_deref().unwrap_or("none"),
            e.rcode,
            e.policy.as_deref().unwrap_or("none (static)")
        );
        if let Some(l) = &e.location {
            let mut place = format!("client placed by {}", l.found_by);
            for (value, label) in [
                (&l.site, "site"),
                (&l.country, "country"),
                (&l.continent, "continent"),
            ] {
                if let Some(x) = value {
                    let _ = write!(place, ", {label} {x}");
                }
            }
            if let (Some(lat), Some(lon)) = (l.lat, l.lon) {
                let _ = write!(place, ", at {lat:.2},{lon:.2}");
            }
            let _ = writeln!(out, "{place}; ECS scope /{}", l.scope);
        }
        if !e.members.is_empty() {
            let _ = writeln!(out, "members:");
        }
        for m in &e.members {
            let s = &m.member;
            let state = if s.up {
                "up"
            } else if s.maintenance {
                "maintenance"
            } else if !s.enabled {
                "disabled"
            } else {
                "down"
            };
            let mark = if m.chosen { "*" } else { " " };
            let distance = m
                .distance_km
                .map_or(String::new(), |d| format!("  {d:.0} km"));
            let site = s
                .site
                .as_ref()
                .map_or(String::new(), |x| format!("  site {x}"));
            let _ = writeln!(
                out,
                "  {mark} {:<24} {:<11} weight {}{site}{distance}",
                s.address, state, s.weight
            );
            for c in &s.checks {
                let _ = writeln!(
                    out,
                    "      {} {}: {}",
                    if c.up { "up  " } else { "down" },
                    c.probe,
                    c.reason.as_deref().unwrap_or("-")
                );
            }
        }
        let ttl = e.ttl.map_or(String::new(), |t| format!(" (ttl {t})"));
        let answer = if e.answer.is_empty() {
            "none".to_string()
        } else {
            e.answer.join(", ")
        };
        let _ = writeln!(out, "answer: {answer}{ttl}");
        let _ = writeln!(out, "why: {}", e.why);
        out
    }
}
