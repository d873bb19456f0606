//! Member health: the state that checkers write and the query path reads.
//!
//! A probe is one check of one address. Probes are keyed by (address, check), so names
//! that share an address share its probe, and a reload can hand an unchanged probe's state
//! to the new table.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::config::Check;

/// What a probe checks: the address and the check spec with its timing.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ProbeKey {
    pub address: IpAddr,
    pub check: Check,
}

/// The live state of one probe.
#[derive(Debug)]
pub struct ProbeState {
    pub key: ProbeKey,
    up: AtomicBool,
}

impl ProbeState {
    fn new(key: ProbeKey) -> Self {
        ProbeState {
            key,
            up: AtomicBool::new(true),
        }
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::Relaxed);
    }
}

/// The health of one member as the query path sees it: up when it is enabled and every
/// probe behind it (its own checks and its site's) is up.
#[derive(Debug, Clone)]
pub struct MemberHealth {
    probes: Box<[Arc<ProbeState>]>,
    enabled: bool,
}

impl MemberHealth {
    pub fn new(probes: Vec<Arc<ProbeState>>, enabled: bool) -> Self {
        MemberHealth {
            probes: probes.into_boxed_slice(),
            enabled,
        }
    }

    pub fn always_up() -> Self {
        Self::new(Vec::new(), true)
    }

    pub fn is_up(&self) -> bool {
        self.enabled && self.probes.iter().all(|p| p.is_up())
    }

    pub fn probes(&self) -> &[Arc<ProbeState>] {
        &self.probes
    }
}

/// Every probe the current configuration needs, one per distinct (address, check).
#[derive(Debug, Default)]
pub struct Registry {
    probes: Mutex<HashMap<ProbeKey, Arc<ProbeState>>>,
}

impl Registry {
    /// The probe for this key, shared with every other user of the same key.
    pub fn probe(&self, key: ProbeKey) -> Arc<ProbeState> {
        let mut probes = self.probes.lock().expect("registry lock poisoned");
        probes
            .entry(key.clone())
            .or_insert_with(|| Arc::new(ProbeState::new(key)))
            .clone()
    }

    pub fn all(&self) -> Vec<Arc<ProbeState>> {
        self.probes
            .lock()
            .expect("registry lock poisoned")
            .values()
            .cloned()
            .collect()
    }
}
