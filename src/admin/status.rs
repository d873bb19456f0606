//! `/status` (JSON) and `/` (the same facts as a page), generated from the live table.

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
    pub summary: Summary,
    /// With `cluster:`: the peers, and whether they serve the same zones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterStatus>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// The address the peers know this server by.
    pub address: Option<String>,
    /// No live peer: every name decides by this server's own probes.
    pub isolated: bool,
    /// Of the zones this server serves (hex); peers compare theirs.
    pub fingerprint: String,
    /// Live peers serving other zones.
    pub config_mismatch: usize,
    pub peers: Vec<PeerStatus>,
    /// Configured peers that are not live members.
    pub unreachable: Vec<String>,
    /// Probes of names with a quorum.
    pub quorum_probes: usize,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PeerStatus {
    pub address: String,
    /// `alive`, or `suspect` while the cluster checks whether it is gone.
    pub state: String,
    /// Unix time it started.
    pub started: u64,
    /// Of the zones it serves (hex), once it has said.
    pub fingerprint: Option<String>,
    pub same_config: bool,
    /// Probes it reports on.
    pub views: usize,
}

pub fn cluster_status(c: &crate::cluster::Cluster) -> ClusterStatus {
    let s = c.status();
    ClusterStatus {
        address: s.address.map(|a| a.to_string()),
        isolated: s.isolated,
        fingerprint: format!("{:016x}", s.fingerprint),
        config_mismatch: s.mismatched(),
        peers: s
            .peers
            .iter()
            .map(|p| PeerStatus {
                address: p.address.to_string(),
                state: p.state.to_string(),
                started: p.started,
                fingerprint: p.fingerprint.map(|f| format!("{f:016x}")),
                same_config: p.same_config,
                views: p.views,
            })
            .collect(),
        unreachable: s.unreachable.iter().map(ToString::to_string).collect(),
        quorum_probes: s.quorum_probes,
    }
}

/// The first line of the page: how many names answer as they should.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    /// Every enabled member up.
    pub names_up: usize,
    /// Some members down, at least one up.
    pub names_degraded: usize,
    /// No member up, and `when-all-down: all` answers them all anyway.
    pub names_failing_open: usize,
    /// No member up, and `when-all-down: none` answers none.
    pub names_failing_closed: usize,
    pub members_up: usize,
    pub members: usize,
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
    /// `up`, `degraded`, `failing open` or `failing closed` (see [`Summary`]).
    pub state: &'static str,
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
    /// With a `quorum:` other than local: the views counted and the decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum: Option<QuorumStatus>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct QuorumStatus {
    /// `any`, `majority` or `all`.
    pub rule: String,
    /// This server's own view.
    pub seen_up: bool,
    /// Each live peer's view.
    pub peers: Vec<PeerViewStatus>,
    /// The decision in words.
    pub why: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PeerViewStatus {
    pub peer: String,
    pub up: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

pub(super) fn unix(t: SystemTime) -> u64 {
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
        quorum: (p.key.quorum != crate::model::Quorum::Local).then(|| {
            let decision = p.decision();
            QuorumStatus {
                rule: p.key.quorum.as_str().to_string(),
                seen_up: decision.seen_up,
                why: decision.why(),
                peers: decision
                    .peers
                    .into_iter()
                    .map(|v| PeerViewStatus {
                        role: p.roles().and_then(|r| r.name(v.role)).map(str::to_string),
                        peer: v.peer,
                        up: v.up,
                    })
                    .collect(),
            }
        }),
    }
}

pub fn member_status(m: &Member, zone: &Zone) -> MemberStatus {
    MemberStatus {
        address: m.address.to_string(),
        weight: m.weight,
        site: m.site().map(|s| zone.sites.sites[s].name.clone()),
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
        answers: m.counters.answered.load(Ordering::Relaxed),
        changes_last_hour: m.health.flaps().0,
        flapping: m.health.flaps().1,
        checks: m.health.probes().iter().map(|p| check_status(p)).collect(),
    }
}

fn name_status(f: &HealthCheckedName, zone: &Zone) -> NameStatus {
    let up = f.members().filter(|m| m.health.is_up()).count();
    let enabled = f.members().filter(|m| m.health.enabled()).count();
    let state = if up == 0 {
        match f.rules.when_all_down {
            crate::model::WhenAllDown::FailOpen => "failing open",
            crate::model::WhenAllDown::FailClosed => "failing closed",
        }
    } else if up < enabled {
        "degraded"
    } else {
        "up"
    };
    NameStatus {
        state,
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
    let mut summary = Summary::default();
    for n in &names {
        match n.state {
            "up" => summary.names_up += 1,
            "degraded" => summary.names_degraded += 1,
            "failing open" => summary.names_failing_open += 1,
            _ => summary.names_failing_closed += 1,
        }
        summary.members += n.members.len();
        summary.members_up += n.members.iter().filter(|m| m.up).count();
    }
    Status {
        summary,
        version: env!("MERIDIAN_VERSION"),
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
            .map(|z| ZoneStatus {
                zone: z.origin.to_string(),
                file: z.file.display().to_string(),
                serial: z.serial(),
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
        cluster: m.cluster.get().map(cluster_status),
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
