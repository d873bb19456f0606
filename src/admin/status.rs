//! `/status` (JSON) and `/` (the same facts as a page), generated from the live table.

use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::model::ProbeState;
use crate::model::transition::Transition;
use crate::select::{Member, Pool};
use crate::state::{DrainReport, Meridian};
use crate::zone::{HealthCheckedName, Zone};

#[derive(Serialize)]
pub struct Status {
    pub version: &'static str,
    pub config_file: String,
    pub listen: Vec<String>,
    /// Unix time the serving configuration was loaded.
    pub last_good_load: u64,
    pub reloads_ok: u64,
    pub reloads_failed: u64,
    /// The errors of the last reload, when it failed (the previous configuration serves).
    pub last_reload_error: Option<ReloadError>,
    pub zones: Vec<ZoneStatus>,
    pub names: Vec<NameStatus>,
    /// The latest members to go down, newest first, with their measured failover.
    pub transitions: Vec<TransitionStatus>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct TransitionStatus {
    pub name: String,
    pub member: String,
    /// Unix time of the first failed probe.
    pub first_failure: u64,
    /// Seconds from the first failed probe until answers left the member out.
    pub out_of_answers_s: f64,
    /// Seconds from the first failed probe until the last answer naming it expired.
    pub until_ttl_expiry_s: f64,
    pub reason: String,
}

pub fn transition_status(t: &Transition) -> TransitionStatus {
    let secs = |d: std::time::Duration| (d.as_secs_f64() * 10.0).round() / 10.0;
    TransitionStatus {
        name: t.name.clone(),
        member: t.member.to_string(),
        first_failure: unix(t.first_failure),
        out_of_answers_s: secs(t.out_of_answers),
        until_ttl_expiry_s: secs(t.until_ttl_expiry),
        reason: t.reason.clone(),
    }
}

#[derive(Serialize)]
pub struct ReloadError {
    pub at: u64,
    pub errors: Vec<String>,
}

#[derive(Serialize)]
pub struct ZoneStatus {
    pub zone: String,
    pub file: String,
    pub serial: u32,
}

#[derive(Serialize)]
pub struct NameStatus {
    pub name: String,
    pub policy: &'static str,
    pub ttl: u32,
    pub answers: usize,
    pub when_all_down: &'static str,
    /// `roles:` tiers, when roles choose.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<Vec<String>>,
    /// The tier that answers now (A, else AAAA), from 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answering_tier: Option<usize>,
    /// Who leads, for names whose roles need leader consensus.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader: Option<LeaderStatus>,
    pub members: Vec<MemberStatus>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct LeaderStatus {
    /// The member handed out as the leader.
    pub leader: Option<String>,
    /// `majority`, `self-report` or `none`.
    pub agreement: String,
    /// Members that claim the leader role.
    pub claimants: Vec<String>,
    /// Members that name some leader, and how many name this one.
    pub voters: usize,
    pub votes: usize,
    pub split_brain: bool,
}

pub fn leader_status(pool: &Pool) -> Option<LeaderStatus> {
    let v = pool.leader_view(&pool.up())?;
    let address = |i: usize| pool.members[i].address.to_string();
    Some(LeaderStatus {
        leader: v.leader.map(address),
        agreement: v.by.as_str().to_string(),
        claimants: v.claimants.iter().map(|&i| address(i)).collect(),
        voters: v.voters,
        votes: v.votes,
        split_brain: v.split_brain(),
    })
}

/// The pool a name answers A queries from, else its AAAA pool.
fn main_pool(f: &HealthCheckedName) -> &Pool {
    if f.v4.is_empty() { &f.v6 } else { &f.v4 }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct MemberStatus {
    pub address: String,
    pub weight: u32,
    pub site: Option<String>,
    pub up: bool,
    /// `enabled: false` in YAML.
    pub enabled: bool,
    /// Disabled through the admin API.
    pub maintenance: bool,
    /// `recovery: manual` and down since an operator last recovered it: out of answers
    /// until `POST /members/{name}/{address}/recover`.
    #[serde(default)]
    pub held: bool,
    /// Where its drain stands, while it is draining (`/status` and explain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain: Option<DrainReport>,
    /// What its check with roles says it is (`active`, `standby`, `sealed`...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Whom it names as the leader (checks with a leader query).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub names_leader: Option<String>,
    pub answers: u64,
    /// State changes of its probes in the last hour, and whether that is flapping.
    #[serde(default)]
    pub changes_last_hour: usize,
    #[serde(default)]
    pub flapping: bool,
    pub checks: Vec<CheckStatus>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct CheckStatus {
    pub probe: String,
    pub up: bool,
    pub reason: Option<String>,
    pub latency_ms: Option<f64>,
    /// Unix time of the last result.
    pub checked_at: Option<u64>,
    /// Unix time the current state began.
    pub since: u64,
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

pub fn check_status(p: &ProbeState) -> CheckStatus {
    let d = p.detail();
    CheckStatus {
        probe: p.key.to_string(),
        up: p.is_up(),
        reason: d.last.as_ref().map(|l| l.reason.clone()),
        latency_ms: d.last.as_ref().map(|l| l.latency.as_secs_f64() * 1000.0),
        checked_at: d.last.as_ref().map(|l| unix(l.at)),
        since: unix(d.since),
    }
}

pub fn member_status(m: &Member, zone: &Zone) -> MemberStatus {
    MemberStatus {
        address: m.address.to_string(),
        weight: m.weight,
        site: m.site.map(|s| zone.sites.sites[s].name.clone()),
        up: m.health.is_up(),
        enabled: m.health.enabled(),
        maintenance: m.health.in_maintenance(),
        held: m.health.is_held(),
        drain: None,
        role: m
            .health
            .role_probe()
            .and_then(|p| p.role_name())
            .map(str::to_string),
        names_leader: m.health.role_probe().and_then(|p| p.detail().last?.leader),
        answers: m.answered.load(Ordering::Relaxed),
        changes_last_hour: m.health.flaps().0,
        flapping: m.health.flaps().1,
        checks: m.health.probes().iter().map(|p| check_status(p)).collect(),
    }
}

fn name_status(f: &HealthCheckedName, zone: &Zone) -> NameStatus {
    NameStatus {
        name: f.name.to_string(),
        policy: f.rules.policy.as_str(),
        ttl: f.ttl,
        answers: f.rules.answers,
        when_all_down: f.rules.when_all_down.as_str(),
        roles: main_pool(f).tier_names(),
        answering_tier: {
            let pool = main_pool(f);
            pool.chooses_by_role()
                .then(|| pool.by_role(&pool.up()).0.map(|t| t + 1))
                .flatten()
        },
        leader: leader_status(main_pool(f)),
        members: f.members().map(|m| member_status(m, zone)).collect(),
    }
}

pub fn status(m: &Meridian) -> Status {
    let table = m.table.load();
    let load = m.status();
    let mut names: Vec<NameStatus> = table
        .health_checked_by_name()
        .into_iter()
        .map(|(f, z)| name_status(f, z))
        .collect();
    fill_drains(m, &mut names);
    Status {
        version: env!("CARGO_PKG_VERSION"),
        config_file: m.config_file.display().to_string(),
        listen: m.listen.iter().map(ToString::to_string).collect(),
        last_good_load: load.last_good,
        reloads_ok: m.counters.reloads_ok.load(Ordering::Relaxed),
        reloads_failed: m.counters.reloads_failed.load(Ordering::Relaxed),
        last_reload_error: load
            .last_error
            .map(|(at, errors)| ReloadError { at, errors }),
        zones: table
            .zones()
            .iter()
            .map(|z| ZoneStatus {
                zone: z.origin.to_string(),
                file: z.file.display().to_string(),
                serial: z.serial,
            })
            .collect(),
        names,
        transitions: m
            .counters
            .transitions
            .recent()
            .iter()
            .map(transition_status)
            .collect(),
    }
}

/// The drain reports of the members that are draining.
pub fn fill_drains(m: &Meridian, names: &mut [NameStatus]) {
    for n in names {
        let Ok(name) = hickory_proto::rr::Name::from_ascii(&n.name) else {
            continue;
        };
        let lower = hickory_proto::rr::LowerName::new(&name);
        for member in &mut n.members {
            if let Ok(address) = member.address.parse() {
                member.drain = m.drain_report(&lower, address).ok().flatten();
            }
        }
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn ago(now: u64, t: u64) -> String {
    let s = now.saturating_sub(t);
    match s {
        0..=119 => format!("{s}s ago"),
        120..=7199 => format!("{}m ago", s / 60),
        _ => format!("{}h ago", s / 3600),
    }
}

/// The status as a page an operator reads at a glance.
pub fn page(s: &Status) -> String {
    let now = unix(SystemTime::now());
    let mut h = String::new();
    h.push_str("<!doctype html><html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"5\">");
    h.push_str("<title>Meridian</title><style>body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}");
    h.push_str("table{border-collapse:collapse;margin:.3em 0 1.4em}td,th{padding:.25em .7em;border-bottom:1px solid #ddd;text-align:left}");
    h.push_str(".up{color:#fff;background:#2a7;padding:0 .5em;border-radius:3px}.down{color:#fff;background:#c33;padding:0 .5em;border-radius:3px}");
    h.push_str(".role{color:#fff;background:#37a;padding:0 .5em;border-radius:3px}.muted{color:#888}.err{background:#fee;border:1px solid #c33;padding:.5em}</style></head><body>");
    let _ = write!(
        h,
        "<h1>Meridian {}</h1><p class=\"muted\">{} &middot; listening on {} &middot; configuration loaded {} &middot; reloads {} ok, {} failed</p>",
        s.version,
        esc(&s.config_file),
        esc(&s.listen.join(", ")),
        ago(now, s.last_good_load),
        s.reloads_ok,
        s.reloads_failed
    );
    if let Some(e) = &s.last_reload_error {
        let _ = write!(
            h,
            "<div class=\"err\"><b>Last reload failed ({}); the previous configuration is serving:</b><pre>",
            ago(now, e.at)
        );
        for line in &e.errors {
            let _ = writeln!(h, "{}", esc(line));
        }
        h.push_str("</pre></div>");
    }
    for n in &s.names {
        let _ = write!(
            h,
            "<h2>{}</h2><p class=\"muted\">{} &middot; ttl {} &middot; when all down: {}</p>",
            esc(&n.name),
            n.policy,
            n.ttl,
            n.when_all_down
        );
        if !n.roles.is_empty() {
            let tiers: Vec<String> = n.roles.iter().map(|t| t.join(" or ")).collect();
            let answering = match n.answering_tier {
                Some(t) => format!("tier {t} ({}) answers", esc(&tiers[t - 1])),
                None => "no tier has a member up".to_string(),
            };
            let _ = write!(
                h,
                "<p>roles, in order: {} &middot; {answering}",
                esc(&tiers.join(", then "))
            );
            if let Some(l) = &n.leader {
                let _ = write!(
                    h,
                    " &middot; leader: {} ({}, named by {} of {} voting)",
                    esc(l.leader.as_deref().unwrap_or("none")),
                    l.agreement,
                    l.votes,
                    l.voters
                );
            }
            h.push_str("</p>");
            if let Some(l) = n.leader.as_ref().filter(|l| l.split_brain) {
                let _ = write!(
                    h,
                    "<div class=\"err\"><b>Split brain:</b> {} all claim the leader role; {}</div>",
                    esc(&l.claimants.join(", ")),
                    match &l.leader {
                        Some(x) =>
                            format!("the majority names {}, which alone is handed out.", esc(x)),
                        None =>
                            "no majority names one, so none is handed out as the leader.".into(),
                    }
                );
            }
        }
        h.push_str("<table><tr><th>member</th><th>state</th><th>weight</th><th>site</th><th>check</th><th>last result</th><th>latency</th><th>since</th><th>changes (1 h)</th><th>answers</th></tr>");
        for m in &n.members {
            let state = if let (true, Some(role)) = (m.up, &m.role) {
                let class = if n.leader.as_ref().and_then(|l| l.leader.as_ref()) == Some(&m.address)
                {
                    "up"
                } else {
                    "role"
                };
                format!("<span class=\"{class}\">{}</span>", esc(role))
            } else if m.up {
                "<span class=\"up\">up</span>".to_string()
            } else if !m.enabled {
                "<span class=\"down\">disabled</span>".to_string()
            } else if m.maintenance {
                "<span class=\"down\">maintenance</span>".to_string()
            } else if let Some(d) = &m.drain {
                if d.safe {
                    "<span class=\"role\">drained: safe to stop</span>".to_string()
                } else {
                    format!(
                        "<span class=\"role\">draining</span> TTL {}, {} of {} resolvers back{}",
                        if d.ttl_passed { "passed" } else { "not passed" },
                        d.returned,
                        d.received,
                        if d.not_returned.is_empty() {
                            String::new()
                        } else {
                            format!(
                                " (waiting for {})",
                                esc(&d
                                    .not_returned
                                    .iter()
                                    .map(ToString::to_string)
                                    .collect::<Vec<_>>()
                                    .join(", "))
                            )
                        }
                    )
                }
            } else if m.held && m.checks.iter().all(|c| c.up) {
                "<span class=\"down\">held down, waiting for an operator</span>".to_string()
            } else if let Some(role) = &m.role {
                format!("<span class=\"down\">down: {}</span>", esc(role))
            } else {
                "<span class=\"down\">down</span>".to_string()
            };
            let rows = m.checks.len().max(1);
            let _ = write!(
                h,
                "<tr><td rowspan=\"{rows}\">{}</td><td rowspan=\"{rows}\">{state}</td><td rowspan=\"{rows}\">{}</td><td rowspan=\"{rows}\">{}</td>",
                esc(&m.address),
                m.weight,
                esc(m.site.as_deref().unwrap_or("-"))
            );
            if m.checks.is_empty() {
                let _ = write!(
                    h,
                    "<td class=\"muted\">none</td><td></td><td></td><td></td><td></td><td>{}</td></tr>",
                    m.answers
                );
            }
            for (i, c) in m.checks.iter().enumerate() {
                if i > 0 {
                    h.push_str("<tr>");
                }
                let mark = if c.up { "up" } else { "down" };
                let _ = write!(
                    h,
                    "<td><span class=\"{mark}\">{mark}</span> {}</td><td>{}</td><td>{}</td><td>{}</td>",
                    esc(&c.probe),
                    esc(c.reason.as_deref().unwrap_or("-")),
                    c.latency_ms.map_or("-".into(), |l| format!("{l:.1} ms")),
                    ago(now, c.since)
                );
                if i == 0 {
                    let flaps = if m.flapping {
                        format!(
                            "<span class=\"down\">flapping</span> {}",
                            m.changes_last_hour
                        )
                    } else {
                        m.changes_last_hour.to_string()
                    };
                    let _ = write!(
                        h,
                        "<td rowspan=\"{rows}\">{flaps}</td><td rowspan=\"{rows}\">{}</td>",
                        m.answers
                    );
                }
                h.push_str("</tr>");
            }
        }
        h.push_str("</table>");
    }
    if !s.transitions.is_empty() {
        h.push_str("<h2>Last transitions</h2><table><tr><th>name</th><th>member</th><th>first failed probe</th><th>out of answers after</th><th>last TTL expired after</th><th>reason</th></tr>");
        for t in &s.transitions {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.1} s</td><td>{:.1} s</td><td>{}</td></tr>",
                esc(&t.name),
                esc(&t.member),
                ago(now, t.first_failure),
                t.out_of_answers_s,
                t.until_ttl_expiry_s,
                esc(&t.reason)
            );
        }
        h.push_str("</table>");
    }
    h.push_str("<p class=\"muted\">JSON: <a href=\"/status\">/status</a> &middot; <a href=\"/metrics\">/metrics</a> &middot; why an answer: /explain?name=&amp;type=A&amp;client=</p></body></html>");
    h
}
