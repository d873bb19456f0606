//! Health checking: the registry of probes, the checker that runs them on their intervals
//! (with rise/fall hysteresis), and the probe runs themselves (TCP, ICMP, HTTP(S)).
//!
//! Probes are keyed by (address, check), so names that share an address share its probe,
//! and a reload hands an unchanged probe's state to the new table. The state itself
//! ([`ProbeState`]) is part of the shared vocabulary, because the query path reads it.

mod checker;
mod probe;
mod roles;

pub use checker::Checker;
pub use probe::{Outcome, install_tls_provider};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::model::{ProbeKey, ProbeSet, ProbeState};

/// Runs one probe now, outside any schedule (its first result, as the checker would get it).
pub async fn probe_now(key: &ProbeKey) -> Outcome {
    let prober = probe::Prober::default();
    let mut cx = prober.context();
    prober.run(key, &mut cx).await
}

/// Every probe the current configuration needs, one per distinct (address, check); it
/// outlives configurations, so that an unchanged probe keeps its state across reloads.
#[derive(Debug, Default)]
pub struct Registry {
    probes: Mutex<HashMap<ProbeKey, Arc<ProbeState>>>,
    /// Woken when any of its probes changes state.
    pub changed: Arc<tokio::sync::Notify>,
    /// Woken when this server's own view of a probe with a quorum changes (the cluster
    /// member waits on it).
    pub seen_changed: Arc<tokio::sync::Notify>,
}

impl Registry {
    /// The probes for `wanted` (each key with who uses it): the existing state where the
    /// key is known, a new one (up until its first result) otherwise. Users are replaced.
    pub fn probes_for(&self, wanted: impl IntoIterator<Item = (ProbeKey, String)>) -> ProbeSet {
        let mut users: HashMap<ProbeKey, Vec<String>> = HashMap::new();
        for (key, user) in wanted {
            let list = users.entry(key).or_default();
            if !list.contains(&user) {
                list.push(user);
            }
        }
        let mut probes = self.probes.lock().expect("registry lock");
        users
            .into_iter()
            .map(|(key, users)| {
                let probe = probes
                    .entry(key.clone())
                    .or_insert_with(|| {
                        Arc::new(ProbeState::watched(
                            key.clone(),
                            self.changed.clone(),
                            self.seen_changed.clone(),
                        ))
                    })
                    .clone();
                probe.set_users(users);
                (key, probe)
            })
            .collect()
    }

    pub fn all(&self) -> Vec<Arc<ProbeState>> {
        let probes = self.probes.lock().expect("registry lock");
        probes.values().cloned().collect()
    }

    /// Drops every probe that is not in `keep` (once a new table serves).
    pub fn retain(&self, keep: &ProbeSet) {
        let mut probes = self.probes.lock().expect("registry lock");
        probes.retain(|k, _| keep.contains_key(k));
    }
}
