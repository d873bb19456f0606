//! Health by quorum: how the views of several servers (vantage points) on one probe make
//! the state every one of them answers with.
//!
//! Each server probes for itself. With a `cluster:`, the servers tell one another what
//! their probes see, and a name's `quorum:` says how many of them must see a member down
//! before all of them treat it as down. A peer that stops reporting is no longer counted;
//! a server that hears from no peer is left with its own view.

use serde::Deserialize;

/// How many vantage points (this server and each live peer that runs the same probe) must
/// see a target down for it to be down (`quorum:` of a health-checked name).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Quorum {
    /// This server's own probes decide (without a cluster, always).
    #[default]
    Local,
    /// Down as soon as any vantage point sees it down: up only where every one agrees.
    Any,
    /// Down when more than half see it down, up when more than half see it up; a tie
    /// (an even count split in two) keeps the state it had.
    Majority,
    /// Down only when every vantage point sees it down.
    All,
}

impl Quorum {
    pub fn as_str(self) -> &'static str {
        match self {
            Quorum::Local => "local",
            Quorum::Any => "any",
            Quorum::Majority => "majority",
            Quorum::All => "all",
        }
    }

    /// Whether the target is up when `down` of `vantage` points see it down; `None` for a
    /// majority tie, which keeps the current state. `vantage` counts this server too.
    pub fn decide(self, down: usize, vantage: usize) -> Option<bool> {
        let up = vantage - down;
        match self {
            Quorum::Local => unreachable!("a local probe is never put to a vote"),
            Quorum::Any => Some(down == 0),
            Quorum::All => Some(down < vantage),
            Quorum::Majority if 2 * down > vantage => Some(false),
            Quorum::Majority if 2 * up > vantage => Some(true),
            Quorum::Majority => None,
        }
    }
}

/// How many vantage points see a target down, and how many there are: this server (by
/// `seen_up`) and each peer.
pub fn tally(seen_up: bool, peers: &[PeerView]) -> (usize, usize) {
    let down = peers.iter().filter(|p| !p.up).count() + usize::from(!seen_up);
    (down, peers.len() + 1)
}

/// What one peer reports of a probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerView {
    /// The peer's cluster address.
    pub peer: String,
    pub up: bool,
    /// The role it sees (checks with roles), [`super::NO_ROLE`] otherwise.
    pub role: u8,
}

/// How a probe's state was decided, for status, explain and logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub quorum: Quorum,
    /// This server's own view.
    pub seen_up: bool,
    /// The live peers' views (empty: no peer reports this probe).
    pub peers: Vec<PeerView>,
    /// The state decided.
    pub up: bool,
}

impl Decision {
    /// In words: "2 of 3 vantage points see it down; majority: down".
    pub fn why(&self) -> String {
        let (down, vantage) = tally(self.seen_up, &self.peers);
        let state = if self.up { "up" } else { "down" };
        if self.quorum == Quorum::Local {
            return format!("local: this server's own view ({state})");
        }
        if self.peers.is_empty() {
            return format!(
                "{}: no peer reports it, so this server's own view decides ({state})",
                self.quorum.as_str()
            );
        }
        let tie = self.quorum.decide(down, vantage).is_none();
        format!(
            "{down} of {vantage} vantage points see it down; {}: {state}{}",
            self.quorum.as_str(),
            if tie { " (a tie keeps the state)" } else { "" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_quorum_counts_the_vantage_points_its_way() {
        // (down, vantage) -> up
        let cases = [
            (0, 3, [Some(true), Some(true), Some(true)]),
            (1, 3, [Some(false), Some(true), Some(true)]),
            (2, 3, [Some(false), Some(false), Some(true)]),
            (3, 3, [Some(false), Some(false), Some(false)]),
            (1, 2, [Some(false), None, Some(true)]),
            (0, 1, [Some(true), Some(true), Some(true)]),
            (1, 1, [Some(false), Some(false), Some(false)]),
        ];
        for (down, vantage, want) in cases {
            let got = [Quorum::Any, Quorum::Majority, Quorum::All].map(|q| q.decide(down, vantage));
            assert_eq!(got, want, "{down} of {vantage} down");
        }
    }

    #[test]
    fn the_reason_names_the_count_and_the_rule() {
        let peer = |up| PeerView {
            peer: "127.0.0.2:5400".into(),
            up,
            role: super::super::NO_ROLE,
        };
        let d = Decision {
            quorum: Quorum::Majority,
            seen_up: true,
            peers: vec![peer(false), peer(false)],
            up: false,
        };
        assert_eq!(d.why(), "2 of 3 vantage points see it down; majority: down");
        let alone = Decision {
            peers: Vec::new(),
            up: true,
            ..d
        };
        assert_eq!(
            alone.why(),
            "majority: no peer reports it, so this server's own view decides (up)"
        );
    }
}
