//! Member health: the state that checkers write and the query path reads.
//!
//! A probe is one check of one address. Probes are keyed by (address, check), so names
//! that share an address share its probe, and a reload can hand an unchanged probe's state
//! to the new table. The query path reads only the atomics of [`ProbeState`].

mod checker;
mod probe;

pub use checker::Checker;
pub use probe::install_tls_provider;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use crate::config::{Check, CheckSpec};

/// What a probe checks: the address and the check spec with its timing.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ProbeKey {
    pub address: IpAddr,
    pub check: Check,
}

impl fmt::Display for ProbeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = |port| SocketAddr::new(self.address, port);
        match &self.check.spec {
            CheckSpec::None => write!(f, "none {}", self.address),
            CheckSpec::Icmp => write!(f, "icmp {}", self.address),
            CheckSpec::Tcp { port } => write!(f, "tcp {}", at(*port)),
            CheckSpec::Http(h) => {
                let scheme = if h.tls { "https" } else { "http" };
                write!(f, "{scheme} {}{}", at(h.port), h.path)
            }
        }
    }
}

/// Milliseconds on a process-wide monotonic clock; 0 is reserved for "no deadline".
fn clock_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

/// The last completed probe, kept for the status API and logs.
#[derive(Clone, Debug)]
pub struct ProbeResult {
    pub ok: bool,
    pub reason: String,
    pub latency: Duration,
    pub at: SystemTime,
}

/// What the status API shows of a probe besides up/down.
#[derive(Clone, Debug)]
pub struct ProbeDetail {
    pub last: Option<ProbeResult>,
    /// When the current state began.
    pub since: SystemTime,
    pub state_changes: u64,
}

/// The live state of one probe.
#[derive(Debug)]
pub struct ProbeState {
    pub key: ProbeKey,
    up: AtomicBool,
    /// `clock_ms()` time by which the state could flip; 0 while up and stable.
    change_deadline: AtomicU64,
    detail: Mutex<ProbeDetail>,
    /// Names and members that use this probe, for log lines.
    users: Mutex<Vec<String>>,
    runs_ok: AtomicU64,
    runs_failed: AtomicU64,
    latency_us: AtomicU64,
}

/// Totals of a probe's runs, for metrics.
#[derive(Clone, Copy, Debug)]
pub struct ProbeStats {
    pub ok: u64,
    pub failed: u64,
    /// Sum of run durations, microseconds.
    pub latency_us: u64,
}

impl ProbeState {
    fn new(key: ProbeKey) -> Self {
        ProbeState {
            key,
            // Up until the first result: that result decides at once, and the server does
            // not answer before the first round is over.
            up: AtomicBool::new(true),
            change_deadline: AtomicU64::new(0),
            detail: Mutex::new(ProbeDetail {
                last: None,
                since: SystemTime::now(),
                state_changes: 0,
            }),
            users: Mutex::new(Vec::new()),
            runs_ok: AtomicU64::new(0),
            runs_failed: AtomicU64::new(0),
            latency_us: AtomicU64::new(0),
        }
    }

    pub fn stats(&self) -> ProbeStats {
        ProbeStats {
            ok: self.runs_ok.load(Ordering::Relaxed),
            failed: self.runs_failed.load(Ordering::Relaxed),
            latency_us: self.latency_us.load(Ordering::Relaxed),
        }
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// How long until this probe's state could change, if it is down or changing.
    pub fn change_within(&self) -> Option<Duration> {
        let deadline = self.change_deadline.load(Ordering::Relaxed);
        (deadline != 0).then(|| Duration::from_millis(deadline.saturating_sub(clock_ms())))
    }

    pub fn detail(&self) -> ProbeDetail {
        self.detail.lock().expect("probe detail lock").clone()
    }

    pub fn users(&self) -> Vec<String> {
        self.users.lock().expect("probe users lock").clone()
    }

    fn add_user(&self, user: String) {
        let mut users = self.users.lock().expect("probe users lock");
        if !users.contains(&user) {
            users.push(user);
        }
    }

    /// Publishes a checker decision: the state, and how soon it could change again.
    fn publish(&self, up: bool, change_in: Option<Duration>, result: ProbeResult) {
        let runs = if result.ok {
            &self.runs_ok
        } else {
            &self.runs_failed
        };
        runs.fetch_add(1, Ordering::Relaxed);
        self.latency_us
            .fetch_add(result.latency.as_micros() as u64, Ordering::Relaxed);
        let deadline = change_in.map_or(0, |d| clock_ms() + d.as_millis() as u64);
        self.change_deadline.store(deadline, Ordering::Relaxed);
        let was = self.up.swap(up, Ordering::Relaxed);
        let mut detail = self.detail.lock().expect("probe detail lock");
        if was != up || detail.last.is_none() {
            detail.since = result.at;
        }
        if was != up {
            detail.state_changes += 1;
        }
        detail.last = Some(result);
    }
}

/// The health of one member as the query path sees it: up when it is enabled (in YAML
/// and not put in maintenance through the admin API) and every probe behind it (its own
/// checks and its site's) is up.
#[derive(Debug)]
pub struct MemberHealth {
    probes: Box<[Arc<ProbeState>]>,
    enabled: bool,
    maintenance: AtomicBool,
}

impl MemberHealth {
    pub fn new(probes: Vec<Arc<ProbeState>>, enabled: bool, in_maintenance: bool) -> Self {
        MemberHealth {
            probes: probes.into_boxed_slice(),
            enabled,
            maintenance: AtomicBool::new(in_maintenance),
        }
    }

    pub fn always_up() -> Self {
        Self::new(Vec::new(), true, false)
    }

    pub fn set_maintenance(&self, on: bool) {
        self.maintenance.store(on, Ordering::Relaxed);
    }

    pub fn is_up(&self) -> bool {
        self.enabled
            && !self.maintenance.load(Ordering::Relaxed)
            && self.probes.iter().all(|p| p.is_up())
    }

    /// Enabled in the configuration.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Disabled through the admin API.
    pub fn in_maintenance(&self) -> bool {
        self.maintenance.load(Ordering::Relaxed)
    }

    pub fn probes(&self) -> &[Arc<ProbeState>] {
        &self.probes
    }

    /// The soonest any of this member's probes could change state, if one is down or
    /// changing. A disabled member is stable.
    pub fn change_within(&self) -> Option<Duration> {
        if !self.enabled {
            return None;
        }
        self.probes.iter().filter_map(|p| p.change_within()).min()
    }
}

/// Every probe the current configuration needs, one per distinct (address, check).
#[derive(Debug, Default)]
pub struct Registry {
    probes: Mutex<HashMap<ProbeKey, Arc<ProbeState>>>,
}

impl Registry {
    /// The probe for this key, shared with every other user of the same key. `user`
    /// names who uses it, for log lines.
    pub fn probe(&self, key: ProbeKey, user: String) -> Arc<ProbeState> {
        let mut probes = self.probes.lock().expect("registry lock");
        let probe = probes
            .entry(key.clone())
            .or_insert_with(|| Arc::new(ProbeState::new(key)))
            .clone();
        probe.add_user(user);
        probe
    }

    pub fn all(&self) -> Vec<Arc<ProbeState>> {
        let probes = self.probes.lock().expect("registry lock");
        probes.values().cloned().collect()
    }

    /// Drops every probe whose key is not in `keep` (after a reload compiled a new table).
    pub fn retain(&self, keep: &HashSet<ProbeKey>) {
        let mut probes = self.probes.lock().expect("registry lock");
        probes.retain(|k, _| keep.contains(k));
    }

    /// Forgets who uses which probe, before a compile records it afresh.
    pub fn clear_users(&self) {
        for p in self.probes.lock().expect("registry lock").values() {
            p.users.lock().expect("probe users lock").clear();
        }
    }
}

/// Members put in maintenance through the admin API, by name (lower case, with its
/// trailing dot) and address. Kept across reloads, lost on restart. Compiling a table sets
/// each member's flag from here; the admin API records here and flips the live flag.
#[derive(Debug, Default)]
pub struct Maintenance {
    disabled: Mutex<HashMap<String, HashSet<IpAddr>>>,
}

impl Maintenance {
    pub fn is_disabled(&self, name: &str, address: IpAddr) -> bool {
        let disabled = self.disabled.lock().expect("maintenance lock");
        disabled.get(name).is_some_and(|set| set.contains(&address))
    }

    pub fn set(&self, name: &str, address: IpAddr, disabled: bool) {
        let mut map = self.disabled.lock().expect("maintenance lock");
        if disabled {
            map.entry(name.to_string()).or_default().insert(address);
        } else if let Some(set) = map.get_mut(name) {
            set.remove(&address);
            if set.is_empty() {
                map.remove(name);
            }
        }
    }

    /// Every (name, address) in maintenance.
    pub fn entries(&self) -> Vec<(String, IpAddr)> {
        let map = self.disabled.lock().expect("maintenance lock");
        map.iter()
            .flat_map(|(n, set)| set.iter().map(move |a| (n.clone(), *a)))
            .collect()
    }
}
