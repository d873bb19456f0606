//! How a health-checked name chooses among its members.

use serde::Deserialize;

/// How a name chooses among its up members (`selection:` in YAML).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// Each response starts one further along the list of up members.
    RoundRobin,
    /// Each member's share of responses is proportional to its weight.
    Weighted,
    /// The highest-weight up member (list order breaks ties): active/passive.
    FixedWeight,
    /// Every up member.
    AllAvailable,
    /// The up members nearest the client.
    Proximity,
    /// The up members whose site matches the client's country or continent.
    Location,
}

impl Policy {
    /// Whether answers depend on where the client is.
    pub fn needs_client(self) -> bool {
        matches!(self, Policy::Proximity | Policy::Location)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Policy::RoundRobin => "round-robin",
            Policy::Weighted => "weighted",
            Policy::FixedWeight => "fixed-weight",
            Policy::AllAvailable => "all-available",
            Policy::Proximity => "proximity",
            Policy::Location => "location",
        }
    }
}

/// What to answer when no member is up (`when-all-down:`, written `all` or `none`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum WhenAllDown {
    /// `all`: choose as if every member were up, so that clients keep getting an address.
    #[default]
    #[serde(rename = "all")]
    FailOpen,
    /// `none`: answer NODATA.
    #[serde(rename = "none")]
    FailClosed,
}

impl WhenAllDown {
    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            WhenAllDown::FailOpen => "all",
            WhenAllDown::FailClosed => "none",
        }
    }
}
