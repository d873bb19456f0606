//! Why a name answers what it answers, for a given client: where the client was placed
//! and how, the policy, every member's state (and distance), and the pick.

use std::net::IpAddr;

use hickory_proto::rr::{LowerName, RecordType};
use serde::Serialize;

use super::status::{MemberStatus, member_status};
use crate::geo::{Placement, code_str, distance_km};
use crate::select::Client;
use crate::zone::Table;

#[derive(Serialize)]
pub struct Explanation {
    pub name: String,
    #[serde(rename = "type")]
    pub qtype: String,
    pub client: String,
    pub zone: Option<String>,
    pub rcode: String,
    pub policy: Option<&'static str>,
    /// Where the client was placed, for policies that depend on it.
    pub location: Option<ClientLocation>,
    pub members: Vec<ExplainedMember>,
    pub answer: Vec<String>,
    pub ttl: Option<u32>,
    /// The reasoning, in a sentence or two.
    pub why: String,
}

#[derive(Serialize)]
pub struct ClientLocation {
    /// `site-network`, `geoip` or `unknown`.
    pub found_by: &'static str,
    pub site: Option<String>,
    pub country: Option<String>,
    pub continent: Option<String>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    /// The ECS scope prefix an answer for this client carries.
    pub scope: u8,
}

#[derive(Serialize)]
pub struct ExplainedMember {
    #[serde(flatten)]
    pub member: MemberStatus,
    pub distance_km: Option<f64>,
    pub chosen: bool,
}

/// Explains the answer to `name`/`qtype` for `client` (as a full-length address, as if
/// it came without ECS). It runs the real lookup, so it also advances rotations.
pub fn explain(table: &Table, name: &LowerName, qtype: RecordType, client: IpAddr) -> Explanation {
    let who = Client::from_source(client);
    let res = table.resolve(name, qtype, &who);
    let answer: Vec<String> = res
        .answers
        .iter()
        .map(|rr| rr.record.data.to_string())
        .collect();
    let ttl = res.answers.iter().map(|rr| rr.ttl).min();
    let mut e = Explanation {
        name: name.to_string(),
        qtype: qtype.to_string(),
        client: client.to_string(),
        zone: res.zone.map(|z| z.origin.to_string()),
        rcode: crate::metrics::rcode_name(res.rcode),
        policy: None,
        location: None,
        members: Vec::new(),
        answer: answer.clone(),
        ttl,
        why: String::new(),
    };
    let Some((fqdn, zone)) = table.fqdn(name) else {
        e.why = match &e.zone {
            None => "the name is in none of our zones".into(),
            Some(z) => format!("a static name of zone {z} (no selection)"),
        };
        return e;
    };
    let pool = if qtype == RecordType::AAAA {
        &fqdn.v6
    } else {
        &fqdn.v4
    };
    let policy = fqdn.rules.policy;
    e.policy = Some(policy.as_str());
    let located = policy
        .needs_client()
        .then(|| zone.sites.locate(client, who.source_prefix, table.geoip()));
    if let Some(l) = &located {
        e.location = Some(ClientLocation {
            found_by: match l.how {
                Placement::SiteNetwork => "site-network",
                Placement::GeoIp => "geoip",
                Placement::Unknown => "unknown",
            },
            site: l.site.map(|s| zone.sites.sites[s].name.clone()),
            country: l.country.as_ref().map(|c| code_str(c).to_string()),
            continent: l.continent.as_ref().map(|c| code_str(c).to_string()),
            lat: l.lat_lon.map(|p| p.0),
            lon: l.lat_lon.map(|p| p.1),
            scope: l.scope,
        });
    }
    e.members = pool
        .members
        .iter()
        .map(|m| {
            let site_pos = m.site.and_then(|s| zone.sites.sites[s].lat_lon);
            let here = located.as_ref().and_then(|l| l.lat_lon);
            ExplainedMember {
                member: member_status(m, zone),
                distance_km: here
                    .zip(site_pos)
                    .map(|(a, b)| (distance_km(a, b) * 10.0).round() / 10.0),
                chosen: answer.contains(&m.address.to_string()),
            }
        })
        .collect();
    let up = pool.members.iter().filter(|m| m.health.is_up()).count();
    let placed = match &e.location {
        None => String::new(),
        Some(l) => match l.found_by {
            "unknown" => " The client's location is unknown.".into(),
            how => format!(
                " The client was placed by {how}{}{}.",
                l.site
                    .as_ref()
                    .map_or(String::new(), |s| format!(" at site {s}")),
                l.country
                    .as_ref()
                    .map_or(String::new(), |c| format!(" in {c}")),
            ),
        },
    };
    e.why = if pool.is_empty() {
        format!("{} has no members of this address family.", fqdn.name)
    } else if up == 0 {
        format!(
            "No member is up; when-all-down is {}.{placed}",
            if answer.is_empty() {
                "none: NODATA"
            } else {
                "all: chosen as if all were up"
            }
        )
    } else {
        format!(
            "{up} of {} members are up; {} chose {}.{placed}",
            pool.members.len(),
            policy.as_str(),
            if answer.is_empty() {
                "nothing".into()
            } else {
                answer.join(", ")
            }
        )
    };
    e
}
