//! Choosing by role: the first tier of a name's `roles:` with a member up in it, and
//! leader consensus for the role a cluster has one of (Vault's `active`).
//!
//! A node's word that it leads is not enough: a partitioned or stale node can go on
//! saying so (two pods with the `vault-active` label, a dead leader still listed beside
//! the new one). So each node is also asked whom it names as the leader, and a member
//! that claims the leader role is handed out as the leader only when
//!
//! 1. more than half of the name's members (of this address family, up or not) name it, or
//! 2. failing any majority, it is the only member that claims the role and no member
//!    names another member.
//!
//! A member claims the role when its check says it is in it and it names itself as the
//! leader, or nobody. Two or more claimants is a split brain: the one a majority names is
//! the leader, and without a majority none is (the name falls to its next tier).

use std::sync::atomic::Ordering;

use smallvec::SmallVec;
use tracing::{info, warn};

use super::{Member, Pool};
use crate::model::NO_ROLE;

/// Per-member flags, inline for the pools of a cluster.
pub type Flags = SmallVec<[bool; 16]>;

/// What the members of a pool say about who leads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaderView {
    /// Members up in the leader role that name themselves (or nobody) as the leader.
    pub claimants: SmallVec<[usize; 2]>,
    /// The claimant handed out as the leader, if any.
    pub leader: Option<usize>,
    /// How it was found.
    pub by: Agreement,
    /// Members that name a leader (any), and the votes the leader got.
    pub voters: usize,
    pub votes: usize,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Agreement {
    /// No member claims the role, or the claimants lack agreement.
    #[default]
    None,
    /// A majority of the members names it.
    Majority,
    /// It alone claims the role, and no member names another.
    SelfReport,
}

impl Agreement {
    pub fn as_str(self) -> &'static str {
        match self {
            Agreement::None => "none",
            Agreement::Majority => "majority",
            Agreement::SelfReport => "self-report",
        }
    }
}

impl LeaderView {
    /// Two or more members claim to lead.
    pub fn split_brain(&self) -> bool {
        self.claimants.len() > 1
    }
}

impl Member {
    /// Whether the member's leader vote names this member (by address or node name).
    fn is_named_by(&self, vote: u64) -> bool {
        vote != 0 && self.identity.contains(&vote)
    }
}

impl Pool {
    /// Who leads, by the rule above; `None` when the name's roles have no leader role.
    /// Whoever looks (a query, explain, a metrics scrape) logs the start and end of a
    /// split brain, if it is the first to see it.
    pub fn leader_view(&self, up: &[bool]) -> Option<LeaderView> {
        let role = self.leader_role()?;
        let mut view = LeaderView::default();
        let votes: SmallVec<[u64; 16]> = self
            .members
            .iter()
            .map(|m| m.health.role_probe().map_or(0, |p| p.leader_vote()))
            .collect();
        view.voters = votes.iter().filter(|&&v| v != 0).count();
        // A node that settled in the leader role but already names another (a leader that
        // stepped down, before `rise` probes have settled it as a standby) claims nothing.
        view.claimants = (0..self.members.len())
            .filter(|&i| {
                let m = &self.members[i];
                up[i] && m.health.role() == role && (votes[i] == 0 || m.is_named_by(votes[i]))
            })
            .collect();
        let named = |i: usize| {
            votes
                .iter()
                .filter(|&&v| self.members[i].is_named_by(v))
                .count()
        };
        let majority = self.members.len() / 2 + 1;
        if let Some(&i) = view.claimants.iter().find(|&&i| named(i) >= majority) {
            view.leader = Some(i);
            view.by = Agreement::Majority;
            view.votes = named(i);
        } else if let [only] = view.claimants[..] {
            let names_another = votes.iter().any(|&v| {
                self.members
                    .iter()
                    .enumerate()
                    .any(|(j, m)| j != only && m.is_named_by(v))
            });
            if !names_another {
                view.leader = Some(only);
                view.by = Agreement::SelfReport;
                view.votes = named(only);
            }
        }
        self.note_split_brain(&view);
        Some(view)
    }

    /// The tiers as role names, for status and explain.
    pub fn tier_names(&self) -> Vec<Vec<String>> {
        let Some(roles) = self
            .members
            .iter()
            .find_map(|m| m.health.role_probe()?.roles())
        else {
            return Vec::new();
        };
        self.tiers()
            .iter()
            .map(|&mask| {
                let mut names: Vec<String> = Vec::new();
                for (i, rule) in roles.rules.iter().enumerate() {
                    if mask >> i & 1 == 1 && !names.contains(&rule.role) {
                        names.push(rule.role.clone());
                    }
                }
                names
            })
            .collect()
    }

    /// Logs the start and the end of a split brain (once each: the flag flips only then).
    fn note_split_brain(&self, view: &LeaderView) {
        let split = view.split_brain();
        let Some(extras) = self.extras.as_deref() else {
            return;
        };
        if extras.split_brain.load(Ordering::Relaxed) == split
            || extras.split_brain.swap(split, Ordering::Relaxed) == split
        {
            return;
        }
        let claimants: Vec<String> = view
            .claimants
            .iter()
            .map(|&i| self.members[i].address.to_string())
            .collect();
        let leader = view
            .leader
            .map_or("none".to_string(), |i| self.members[i].address.to_string());
        if split {
            warn!(name = %extras.label, claimants = ?claimants, leader = %leader, votes = view.votes, voters = view.voters, "split brain: more than one member claims the leader role");
        } else {
            info!(name = %extras.label, leader = %leader, "split brain over: at most one member claims the leader role");
        }
    }

    /// The index of the first tier with a member up in one of its roles, and those
    /// members; `None` (and no member) when no tier has one.
    pub fn by_role(&self, up: &[bool]) -> (Option<usize>, Flags) {
        let leader = self.leader_view(up).and_then(|v| v.leader);
        let roles: SmallVec<[u8; 16]> = self.members.iter().map(|m| m.health.role()).collect();
        for (t, &mask) in self.tiers().iter().enumerate() {
            let in_tier: Flags = (0..self.members.len())
                .map(|i| {
                    let role = roles[i];
                    up[i]
                        && role != NO_ROLE
                        && mask >> role & 1 == 1
                        && (Some(role) != self.leader_role() || leader == Some(i))
                })
                .collect();
            if in_tier.contains(&true) {
                return (Some(t), in_tier);
            }
        }
        (None, SmallVec::from_elem(false, self.members.len()))
    }
}
