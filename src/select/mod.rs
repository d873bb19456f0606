//! Selection policies: which members of a health-checked name go into one response.
//!
//! Everything here runs on the query path, so it reads member state through atomics, keeps
//! its per-name rotation in an atomic counter, and collects into inline `SmallVec`s.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use smallvec::SmallVec;

use crate::geo::{ClientLocation, Site, nearness};
use crate::model::{MemberCounters, MemberHealth, Policy, WhenAllDown};

pub mod history;
pub mod recipients;
mod roles;
mod sticky;

pub use roles::{Agreement, Flags, LeaderView};
pub use sticky::StickyTable;

/// Whether a selection counts as an answer given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A real query: round-robin and weighted rotations move on.
    Query,
    /// A dry run (explain): the choice the next query would get, and nothing moves.
    DryRun,
}

/// The client a response is chosen for: the packet source, or the EDNS Client Subnet.
#[derive(Clone, Copy, Debug)]
pub struct Client {
    pub addr: IpAddr,
    /// How many leading bits of `addr` are known: the ECS source prefix, or the full
    /// address length for the packet source.
    pub source_prefix: u8,
}

impl Client {
    /// A client known by its packet source address.
    pub fn from_source(addr: IpAddr) -> Self {
        let source_prefix = if addr.is_ipv4() { 32 } else { 128 };
        Client {
            addr,
            source_prefix,
        }
    }
}

/// One address of a health-checked name.
#[derive(Debug)]
pub struct Member {
    pub address: IpAddr,
    pub weight: u32,
    /// The index of its site in the zone's (see [`Member::site`]); u16 to keep a member
    /// small, as validation holds a zone to far fewer sites.
    pub site_index: Option<u16>,
    pub health: MemberHealth,
    /// Responses that chose this member, and what the watcher noted at its last look.
    pub counters: Arc<MemberCounters>,
    /// This member of this name in the recipients table (see `recipients`).
    pub tag: u32,
    /// How nodes name this member as the leader: the `vote_of` its address and of its
    /// node name (0 when it has none).
    pub identity: [u64; 2],
}

impl Member {
    /// The index of its site among the zone's sites, if it has one.
    pub fn site(&self) -> Option<usize> {
        self.site_index.map(usize::from)
    }
}

/// The members of one name and one address family, with their rotation state.
#[derive(Debug)]
pub struct Pool {
    /// Boxed, not a `Vec`: exactly as many as there are (a `Vec` grown by pushes kept
    /// room for four, which at 100,000 names was a third of the table).
    pub members: Box<[Member]>,
    /// Member indices by weight, highest first, list order within a weight; `None` when
    /// that is the list order (equal weights, or listed heaviest first), as for most names.
    by_weight: Option<Box<[u16]>>,
    rotation: AtomicU64,
    /// Role tiers and stickiness, which few names use: boxed, so that the others pay one
    /// pointer for them.
    extras: Option<Box<Extras>>,
}

/// The parts of a pool that only `roles:` and `sticky:` use.
#[derive(Debug, Default)]
struct Extras {
    /// The name's `roles:` tiers, as masks of role indices; empty when roles do not choose.
    tiers: Box<[u64]>,
    /// The role that needs leader consensus (see `roles`), when a tier asks for it.
    leader_role: Option<u8>,
    /// Whether two members claimed the leader role at the last look, so that the log
    /// says when a split brain begins and ends, and only then.
    split_brain: AtomicBool,
    /// The name, for those log lines.
    label: Box<str>,
    /// `sticky:`: the table, how long an entry lives, and this pool's part of the key.
    sticky: Option<(Arc<StickyTable>, u32, u64)>,
}

/// Inline capacity of a selection; larger all-available sets spill to the heap.
pub type Chosen<'a> = SmallVec<[&'a Member; 8]>;

/// Settings of one name that selection needs.
#[derive(Clone, Copy, Debug)]
pub struct Rules {
    pub policy: Policy,
    pub answers: usize,
    pub when_all_down: WhenAllDown,
}

impl Pool {
    pub fn new(members: Vec<Member>) -> Self {
        // Validation holds a name to 1,000 members.
        let mut by_weight: Vec<u16> = (0..members.len() as u16).collect();
        by_weight.sort_by_key(|&i| std::cmp::Reverse(members[usize::from(i)].weight));
        let in_list_order = by_weight
            .iter()
            .enumerate()
            .all(|(k, &i)| k == usize::from(i));
        Pool {
            members: members.into_boxed_slice(),
            by_weight: (!in_list_order).then(|| by_weight.into_boxed_slice()),
            rotation: AtomicU64::new(0),
            extras: None,
        }
    }

    fn extras_mut(&mut self) -> &mut Extras {
        self.extras.get_or_insert_with(Box::default)
    }

    /// Member indices by weight, highest first, list order within a weight.
    fn by_weight(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.members.len()).map(|k| {
            self.by_weight
                .as_deref()
                .map_or(k, |order| usize::from(order[k]))
        })
    }

    /// The `roles:` tiers, as masks of role indices; empty when roles do not choose.
    fn tiers(&self) -> &[u64] {
        self.extras.as_deref().map_or(&[], |e| &e.tiers)
    }

    /// The role that needs leader consensus, when a tier asks for it.
    fn leader_role(&self) -> Option<u8> {
        self.extras.as_deref().and_then(|e| e.leader_role)
    }

    /// Keeps each client on the member it got for `seconds` after its last query; `id`
    /// tells this pool's entries from other pools' in the shared table.
    pub fn with_sticky(mut self, table: Arc<StickyTable>, seconds: u32, id: u64) -> Self {
        self.extras_mut().sticky = Some((table, seconds, id));
        self
    }

    /// Chooses by role: the first of `tiers` (masks of role indices) with a member up in
    /// it; `leader_role` is believed only with the other members' agreement.
    pub fn with_roles(mut self, tiers: &[u64], leader_role: Option<u8>, name: &str) -> Self {
        if tiers.is_empty() {
            return self;
        }
        let extras = self.extras_mut();
        extras.tiers = tiers.into();
        extras.label = name.into();
        extras.leader_role = leader_role.filter(|&r| tiers.iter().any(|t| t >> r & 1 == 1));
        self
    }

    pub fn chooses_by_role(&self) -> bool {
        !self.tiers().is_empty()
    }

    /// Whether each member is up (enabled, out of maintenance, every probe up).
    pub fn up(&self) -> Flags {
        self.members.iter().map(|m| m.health.is_up()).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The TTL to answer with: the name's, cut down while any member is down or changing
    /// to the time until its state could next change, so that resolvers do not hold on
    /// to a failover decision for long. Never below one second.
    pub fn ttl(&self, name_ttl: u32) -> u32 {
        let soonest = self
            .members
            .iter()
            .filter_map(|m| m.health.change_deadline())
            .min();
        match soonest {
            Some(d) => name_ttl.min(crate::model::health::time_until(d).as_secs().max(1) as u32),
            None => name_ttl,
        }
    }

    /// Chooses the members to answer with for a client at `location` (known only for
    /// policies that need it), given the zone's `sites`. Empty only when nothing is up and
    /// the name fails closed (or the pool is empty).
    pub fn select(
        &self,
        rules: Rules,
        client: Client,
        location: Option<&ClientLocation>,
        sites: &[Site],
        mode: Mode,
    ) -> Chosen<'_> {
        let Some((up, failing_open)) = self.candidates(rules) else {
            return Chosen::new();
        };
        let chosen = self.choose(rules, &up, location, sites, mode);
        match self.extras.as_deref().and_then(|e| e.sticky.as_ref()) {
            Some(sticky) if !failing_open => {
                self.stick(sticky, client, chosen, &up, rules.answers, mode)
            }
            _ => chosen,
        }
    }

    /// With `sticky:`, the member this client got before comes first while it is still
    /// in the chosen set's reach (up, and in the answering tier); else the fresh choice's
    /// first, remembered.
    fn stick<'a>(
        &'a self,
        (table, seconds, id): &(Arc<StickyTable>, u32, u64),
        client: Client,
        chosen: Chosen<'a>,
        up: &[bool],
        answers: usize,
        mode: Mode,
    ) -> Chosen<'a> {
        let Some(first) = chosen.first() else {
            return chosen;
        };
        let key = sticky::key(*id, client.addr, client.source_prefix);
        let index_of = |m: &Member| self.members.iter().position(|x| std::ptr::eq(x, m));
        let kept = table
            .get(key)
            .filter(|&i| up.get(i).copied().unwrap_or(false));
        let (keep, out) = match kept {
            Some(i) => {
                let kept = &self.members[i];
                let mut out: Chosen<'a> = Chosen::new();
                out.push(kept);
                out.extend(chosen.iter().copied().filter(|m| !std::ptr::eq(*m, kept)));
                out.truncate(answers);
                (i, out)
            }
            None => match index_of(first) {
                Some(i) => (i, chosen),
                None => return chosen,
            },
        };
        if mode == Mode::Query {
            table.put(key, keep, *seconds);
        }
        out
    }

    /// The members a choice may take: those up (in the answering tier, with roles), and
    /// whether that is failing open; `None` when the name fails closed.
    fn candidates(&self, rules: Rules) -> Option<(Flags, bool)> {
        let mut up = self.up();
        if self.chooses_by_role() {
            let (_, in_tier) = self.by_role(&up);
            if in_tier.contains(&true) {
                return Some((in_tier, false));
            }
            if rules.when_all_down == WhenAllDown::FailClosed {
                return None;
            }
            // Failing open: the members up in any role; if none is, all (below).
            if up.contains(&true) {
                return Some((up, true));
            }
        }
        if up.contains(&true) {
            return Some((up, false));
        }
        match rules.when_all_down {
            WhenAllDown::FailClosed => None,
            WhenAllDown::FailOpen => {
                up.iter_mut().for_each(|u| *u = true);
                Some((up, true))
            }
        }
    }

    fn choose(
        &self,
        rules: Rules,
        up: &[bool],
        location: Option<&ClientLocation>,
        sites: &[Site],
        mode: Mode,
    ) -> Chosen<'_> {
        let turn = || match mode {
            Mode::Query => self.rotation.fetch_add(1, Ordering::Relaxed),
            Mode::DryRun => self.rotation.load(Ordering::Relaxed),
        };
        match rules.policy {
            Policy::RoundRobin => self.round_robin(up, rules.answers, turn()),
            Policy::Weighted => self.weighted(up, rules.answers, turn()),
            Policy::AllAvailable => self.iter_up(up).collect(),
            Policy::FixedWeight => self.fixed_weight(up, rules.answers),
            Policy::Proximity => match location.and_then(|l| l.position) {
                Some(here) => self.proximity(up, rules.answers, &here, sites),
                None => self.fixed_weight(up, rules.answers),
            },
            Policy::Location => self.location(up, rules.answers, location, sites, turn),
        }
    }

    fn fixed_weight(&self, up: &[bool], answers: usize) -> Chosen<'_> {
        self.by_weight()
            .filter(|&i| up[i])
            .take(answers)
            .map(|i| &self.members[i])
            .collect()
    }

    /// Nearest first by great-circle distance from the client to the member's site; ties
    /// by weight, then list order. Members without a placed site come last, by weight.
    fn proximity(
        &self,
        up: &[bool],
        answers: usize,
        here: &[f64; 3],
        sites: &[Site],
    ) -> Chosen<'_> {
        // Nearest first: the largest dot product of positions is the shortest great-circle
        // distance (see `geo::position`); members without a located site go last.
        let candidates = self.by_weight().filter(|&i| up[i]).map(|i| {
            let m = &self.members[i];
            let there = m.site().and_then(|s| sites[s].position.as_ref());
            (
                there.map_or(f64::INFINITY, |there| -nearness(here, there)),
                m,
            )
        });
        nearest_first(candidates, answers)
    }

    /// The up members on the client's own site, else on sites listing its country, else
    /// its continent, else on default sites, else all up members; round-robin within.
    fn location(
        &self,
        up: &[bool],
        answers: usize,
        location: Option<&ClientLocation>,
        sites: &[Site],
        turn: impl FnOnce() -> u64,
    ) -> Chosen<'_> {
        match self.nearest_tier(up, location, sites) {
            Some(tier) => self.round_robin(&tier, answers, turn()),
            None => self.round_robin(up, answers, turn()),
        }
    }

    /// The members up in the nearest tier that has any, for a client at `location`: its
    /// own site, its country, its continent, the default sites.
    fn nearest_tier(
        &self,
        up: &[bool],
        location: Option<&ClientLocation>,
        sites: &[Site],
    ) -> Option<SmallVec<[bool; 16]>> {
        let here = location?;
        let on = |matches: &dyn Fn(&Site) -> bool| -> SmallVec<[bool; 16]> {
            self.members
                .iter()
                .zip(up)
                .map(|(m, &u)| u && m.site().is_some_and(|s| matches(&sites[s])))
                .collect()
        };
        let own = here.site.map(|s| sites[s].name.as_str());
        let tiers: [&dyn Fn(&Site) -> bool; 4] = [
            &|s: &Site| Some(s.name.as_str()) == own,
            &|s: &Site| here.country.is_some_and(|c| s.countries.contains(&c)),
            &|s: &Site| here.continent.is_some_and(|c| s.continents.contains(&c)),
            &|s: &Site| s.default,
        ];
        tiers
            .into_iter()
            .map(on)
            .find(|chosen| chosen.contains(&true))
    }

    /// The members a zone transfer carries for a client at `location`: the choice a query
    /// would get, but whole and in weight order wherever a query's would rotate, so that
    /// it changes only when health does. Secondaries rotate what they serve themselves.
    pub fn steady(
        &self,
        rules: Rules,
        location: Option<&ClientLocation>,
        sites: &[Site],
    ) -> Chosen<'_> {
        let Some((up, _)) = self.candidates(rules) else {
            return Chosen::new();
        };
        let all = |up: &[bool]| -> Chosen<'_> {
            self.by_weight()
                .filter(|&i| up[i])
                .map(|i| &self.members[i])
                .collect()
        };
        match rules.policy {
            Policy::FixedWeight => self.fixed_weight(&up, rules.answers),
            Policy::Proximity => match location.and_then(|l| l.position) {
                Some(here) => self.proximity(&up, rules.answers, &here, sites),
                None => self.fixed_weight(&up, rules.answers),
            },
            Policy::Location => match self.nearest_tier(&up, location, sites) {
                Some(tier) => all(&tier),
                None => all(&up),
            },
            Policy::RoundRobin | Policy::Weighted | Policy::AllAvailable => all(&up),
        }
    }

    fn iter_up<'a, 'u>(
        &'a self,
        up: &'u [bool],
    ) -> impl Iterator<Item = &'a Member> + Clone + use<'a, 'u> {
        self.members
            .iter()
            .zip(up)
            .filter(|(_, u)| **u)
            .map(|(m, _)| m)
    }

    fn round_robin(&self, up: &[bool], answers: usize, turn: u64) -> Chosen<'_> {
        let live = up.iter().filter(|u| **u).count();
        let start = (turn % live as u64) as usize;
        self.iter_up(up)
            .cycle()
            .skip(start)
            .take(answers.min(live))
            .collect()
    }

    /// Weighted rotation without a lock: the n-th response takes the point n·φ (mod 1) of
    /// the up members' total weight, a low-discrepancy sequence. Over N responses every
    /// member's count is within O(log N) of N·weight/total, and picks interleave smoothly
    /// as in nginx's smooth weighted round-robin. Further answers follow in list order.
    fn weighted(&self, up: &[bool], answers: usize, turn: u64) -> Chosen<'_> {
        let total: u64 = self.iter_up(up).map(|m| u64::from(m.weight)).sum();
        let point = turn.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut target = ((u128::from(point) * u128::from(total)) >> 64) as u64;
        let live = up.iter().filter(|u| **u).count();
        let mut first = 0;
        for (i, m) in self.iter_up(up).enumerate() {
            let w = u64::from(m.weight);
            if target < w {
                first = i;
                break;
            }
            target -= w;
        }
        self.iter_up(up)
            .cycle()
            .skip(first)
            .take(answers.min(live))
            .collect()
    }
}

/// The `answers` candidates with the smallest keys, smallest first; equal keys keep the
/// order they came in (the fixed-weight order). Most names answer with one or two
/// members, so a short sorted list kept while scanning does it in one pass: collecting
/// and sorting every member cost a tenth of an ECS query's instructions. A long
/// `answers` sorts instead, so the cost stays n log n.
fn nearest_first<T: Copy>(
    candidates: impl Iterator<Item = (f64, T)>,
    answers: usize,
) -> SmallVec<[T; 8]> {
    const SHORT: usize = 8;
    if answers > SHORT {
        let mut all: Vec<(f64, T)> = candidates.collect();
        all.sort_by(|a, b| a.0.total_cmp(&b.0));
        return all.into_iter().take(answers).map(|(_, t)| t).collect();
    }
    let mut kept: SmallVec<[(f64, T); SHORT]> = SmallVec::new();
    for (key, t) in candidates {
        let at = kept.partition_point(|(k, _)| k.total_cmp(&key).is_le());
        if at < answers {
            kept.truncate(answers - 1);
            kept.insert(at, (key, t));
        }
    }
    kept.iter().map(|&(_, t)| t).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(weights: &[u32]) -> Pool {
        Pool::new(
            weights
                .iter()
                .enumerate()
                .map(|(i, &w)| {
                    let address = IpAddr::from([192, 0, 2, i as u8 + 1]);
                    Member {
                        address,
                        weight: w,
                        site_index: None,
                        health: MemberHealth::always_up(),
                        counters: Arc::default(),
                        identity: [0; 2],
                        tag: i as u32,
                    }
                })
                .collect(),
        )
    }

    fn client() -> Client {
        Client::from_source(IpAddr::from([198, 51, 100, 7]))
    }

    fn rules(policy: Policy, answers: usize) -> Rules {
        Rules {
            policy,
            answers,
            when_all_down: WhenAllDown::FailOpen,
        }
    }

    #[test]
    fn weighted_shares_are_proportional_and_interleaved() {
        let p = pool(&[100, 50, 50]);
        let mut counts = [0usize; 3];
        let mut last = usize::MAX;
        let mut longest_run = 0;
        let mut run = 0;
        for _ in 0..1000 {
            let chosen = p.select(rules(Policy::Weighted, 1), client(), None, &[], Mode::Query);
            let i = p
                .members
                .iter()
                .position(|m| std::ptr::eq(m, chosen[0]))
                .unwrap();
            counts[i] += 1;
            run = if i == last { run + 1 } else { 1 };
            longest_run = longest_run.max(run);
            last = i;
        }
        assert!((490..=510).contains(&counts[0]), "{counts:?}");
        assert!((240..=260).contains(&counts[1]), "{counts:?}");
        assert!(
            longest_run <= 3,
            "picks should interleave, saw a run of {longest_run}"
        );
    }

    #[test]
    fn fixed_weight_prefers_heaviest_then_list_order() {
        let p = pool(&[50, 100, 100]);
        let chosen = p.select(
            rules(Policy::FixedWeight, 2),
            client(),
            None,
            &[],
            Mode::Query,
        );
        let got: Vec<_> = chosen.iter().map(|m| m.address.to_string()).collect();
        assert_eq!(got, ["192.0.2.2", "192.0.2.3"]);
    }

    #[test]
    fn nearest_first_is_a_stable_sort_cut_to_the_answers() {
        // Keys from a small set, so that ties are common, and infinity for no site.
        let keys = [-1.0, -0.5, 0.0, 0.25, f64::INFINITY];
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..2000 {
            let n = (next() % 24) as usize;
            let candidates: Vec<(f64, usize)> = (0..n)
                .map(|i| (keys[(next() % keys.len() as u64) as usize], i))
                .collect();
            let answers = (next() % 14) as usize;
            let mut sorted = candidates.clone();
            sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
            let expected: Vec<usize> = sorted.iter().take(answers).map(|&(_, i)| i).collect();
            let got = nearest_first(candidates.iter().copied(), answers);
            assert_eq!(
                got.as_slice(),
                expected,
                "{candidates:?}, answers {answers}"
            );
        }
    }

    #[test]
    fn a_dry_run_shows_the_next_choice_and_moves_nothing() {
        let p = pool(&[1, 1, 1]);
        let first =
            |mode| p.select(rules(Policy::RoundRobin, 1), client(), None, &[], mode)[0].address;
        let next = first(Mode::DryRun);
        assert_eq!(first(Mode::DryRun), next, "a dry run does not rotate");
        assert_eq!(
            first(Mode::Query),
            next,
            "the query gets what the dry run showed"
        );
        assert_ne!(first(Mode::DryRun), next, "the query rotated");
    }
}
