//! Roles: what an HTTP check's response says a member is (the active Vault node, a
//! standby, a sealed node...), beyond up or down.
//!
//! A check with roles has an ordered list of rules; the first rule a response matches
//! names the member's role, and says whether that role is healthy. `vault` is a built-in
//! list, in the order Vault itself evaluates a node's state.

/// Role index meaning "no role": the probe failed, or the response matched no rule.
pub const NO_ROLE: u8 = u8::MAX;
/// Most rules in one list, so that a set of roles fits in a `u64` mask.
pub const MAX_ROLES: usize = 64;

/// The roles of one check, in the order they are tried.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Roles {
    pub rules: Vec<RoleRule>,
    /// Where each node says who the leader is, for leader consensus (`vault`).
    pub leader: Option<LeaderQuery>,
}

/// One rule: a response with a status in `status`, whose body holds `body_contains` and
/// whose top-level JSON fields have the values in `json`, gives the member `role`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RoleRule {
    pub role: String,
    /// Inclusive ranges.
    pub status: Vec<(u16, u16)>,
    /// `{address}` stands for the member's address, as the node would write it.
    pub body_contains: Option<String>,
    /// Field name and the value as JSON text (`true`, `"primary"`, `3`).
    pub json: Vec<(String, String)>,
    /// A member in an unhealthy role is down, whatever names ask for it.
    pub healthy: bool,
}

/// A second request that asks a node which node leads (Vault's `/v1/sys/leader`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LeaderQuery {
    pub path: String,
    /// The top-level JSON field that holds the leader's URL or address.
    pub field: String,
    /// The role that needs the others' agreement to be handed out.
    pub role: String,
}

impl Roles {
    pub fn index(&self, role: &str) -> Option<u8> {
        self.rules
            .iter()
            .position(|r| r.role == role)
            .map(|i| i as u8)
    }

    pub fn name(&self, index: u8) -> Option<&str> {
        self.rules.get(usize::from(index)).map(|r| r.role.as_str())
    }

    pub fn is_healthy(&self, index: u8) -> bool {
        self.rules
            .get(usize::from(index))
            .is_some_and(|r| r.healthy)
    }

    /// Every role name, in rule order, each once.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for r in &self.rules {
            if !names.contains(&r.role.as_str()) {
                names.push(&r.role);
            }
        }
        names
    }

    /// Vault's `/v1/sys/health`, as Vault 1.19 evaluates it (and OpenBao's subset: 200,
    /// 429, 501, 503): not initialised, removed from the Raft cluster, sealed, a standby
    /// that lost its heartbeat to the active node, DR secondary, performance standby,
    /// standby, active. Active and standby are believed only with the JSON body that
    /// Vault sends with them, so that a proxy's page with a 200 is no leader. A standby
    /// that lost its heartbeat (474) is unsealed and up, as node names should see it,
    /// but it cannot forward to the active node: it is its own role, which names that ask
    /// for standbys do not take.
    pub fn vault() -> Roles {
        let rule = |role: &str, code: u16, json: &[(&str, &str)], healthy: bool| RoleRule {
            role: role.to_string(),
            status: vec![(code, code)],
            body_contains: None,
            json: json
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            healthy,
        };
        Roles {
            rules: vec![
                rule("uninitialized", 501, &[], false),
                rule("removed", 530, &[], false),
                rule("sealed", 503, &[], false),
                rule("ha-unhealthy", 474, &[], true),
                rule("dr-secondary", 472, &[], true),
                rule("performance-standby", 473, &[], true),
                rule("standby", 429, &[("standby", "true")], true),
                rule(
                    "active",
                    200,
                    &[
                        ("initialized", "true"),
                        ("sealed", "false"),
                        ("standby", "false"),
                    ],
                    true,
                ),
            ],
            leader: Some(LeaderQuery {
                path: "/v1/sys/leader".to_string(),
                field: "leader_address".to_string(),
                role: "active".to_string(),
            }),
        }
    }
}
