//! The running state: what a running Meridian shares between its DNS front end, its admin
//! API and its reloads (the table handle, the probe registry and checker, the counters,
//! the forwarder), and how a configuration is applied to it.
//!
//! Everything here outlives any one configuration. A configuration becomes a table
//! compiled beside the serving one and swapped in whole.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use hickory_proto::rr::{LowerName, Name};
use tracing::{error, info, warn};

use crate::config::{
    self, AdminConfig, Config, ConfigError, ConfigErrors, UnchangedZone, XdpConfig,
};
use crate::cookie::Cookies;
use crate::forward::Forwarder;
use crate::health::{Checker, Registry};
use crate::model::Counters;
use crate::model::events::Events;
use crate::rrl::RateLimiter;
use crate::select::StickyTable;
use crate::select::history::History;
use crate::select::recipients::Recipients;
use crate::zone::{Inputs, SharedTable, Table};

mod saved;
mod serials;
mod watcher;

pub use serials::Serials;

pub use watcher::watch_transitions;

/// The outcome of the last load of the configuration.
#[derive(Clone, Debug, Default)]
pub struct LoadStatus {
    /// Unix time of the last configuration that loaded (and is serving).
    pub last_good: u64,
    /// The errors of the last reload if it failed, with its Unix time. Cleared by a good one.
    pub last_error: Option<(u64, Vec<String>)>,
}

/// Why a maintenance change was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaintenanceError {
    NoSuchName,
    NoSuchMember,
}

struct StartedWith {
    listen: Vec<SocketAddr>,
    admin: Option<AdminConfig>,
    xdp: Option<XdpConfig>,
}

/// Everything a running server shares between its DNS front end, admin API and reloader.
pub struct Meridian {
    pub config_file: PathBuf,
    pub table: SharedTable,
    pub registry: Registry,
    pub counters: Arc<Counters>,
    pub checker: Checker,
    pub forwarder: Forwarder,
    /// The server secret of DNS Cookies.
    pub cookies: Cookies,
    /// The rate limiter's buckets, made by the first configuration with `rate-limit:`.
    pub limiter: OnceLock<RateLimiter>,
    /// Who got which member (`sticky:`), made by the first configuration that asks.
    pub sticky: OnceLock<Arc<StickyTable>>,
    /// Which resolvers received which member, for drains; made at the first answer.
    pub recipients: OnceLock<Recipients>,
    /// Sampled answers of health-checked names; made at the first answer.
    pub history: OnceLock<History>,
    /// Signatures of signed zones' answers, kept across reloads.
    pub signatures: crate::sign::SignatureCache,
    /// The DNS addresses bound at start-up.
    pub listen: Vec<SocketAddr>,
    /// Recent changes of member state.
    pub events: Events,
    /// The SOA serials served, kept growing.
    pub serials: Serials,
    /// Transferred zones' content and changes, for AXFR, IXFR and NOTIFY.
    pub transfers: crate::xfr::Transfers,
    /// The cluster member, with `cluster:` (started with the server).
    pub cluster: OnceLock<crate::cluster::Cluster>,
    /// Where maintenance flags and drains are kept across restarts (`state-file:`).
    state_file: Mutex<PathBuf>,
    /// The state file as read at start-up, until `restore_flags` takes it: the first
    /// load may write the file (serials) before the flags are restored.
    read_at_start: Mutex<Option<Result<Option<saved::Saved>, String>>>,
    /// The settings read only at start-up (a reload that changes them says to restart).
    started_with: StartedWith,
    status: Mutex<LoadStatus>,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
    /// Held while a table compiles and is swapped in, and while a maintenance flag
    /// changes: compiling copies the flags from the serving table, so none is lost.
    swapping: tokio::sync::Mutex<()>,
}

/// Creates the keys of signed zones whose key files do not exist yet, and says so in the
/// log with the DS record the parent zone needs: a new key breaks validation until the
/// parent publishes it.
pub fn create_keys(config: &mut Config) -> Result<(), ConfigErrors> {
    for created in crate::config::create_missing_keys(config)? {
        let zone = config.zones.iter().find(|z| z.origin == created.origin);
        let ds = zone.and_then(|z| {
            let d = z.dnssec.as_ref()?;
            let signer = crate::sign::ZoneSigner::new(&z.origin, d, d.key.as_ref()?).ok()?;
            // After creating, every key file has its key: the signer's keys are in file order.
            let at = d.key_files().iter().position(|p| *p == created.path)?;
            signer.ds_record(signer.keys().nth(at)?).ok()
        });
        warn!(
            zone = %created.origin,
            key = %created.path.display(),
            "created a DNSSEC key: give the parent zone its DS record ({}), or see `meridian dnssec`",
            ds.map_or_else(|| "-".to_string(), |r| r.to_string())
        );
    }
    Ok(())
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Meridian {
    /// The state for `config`, serving an empty table until [`Meridian::apply`] runs.
    pub fn new(config: &Config, listen: Vec<SocketAddr>) -> Self {
        let meridian = Meridian {
            config_file: config.server.file.clone(),
            table: ArcSwap::from_pointee(Table::empty()),
            registry: Registry::default(),
            counters: Arc::default(),
            checker: Checker::default(),
            forwarder: Forwarder::default(),
            cookies: Cookies::new(
                config.server.cookies.secret,
                config.server.cookies.secret_lifetime,
            ),
            limiter: OnceLock::new(),
            sticky: OnceLock::new(),
            recipients: OnceLock::new(),
            history: OnceLock::new(),
            signatures: crate::sign::SignatureCache::new(config.server.signature_cache),
            listen,
            events: Events::default(),
            serials: Serials::default(),
            transfers: crate::xfr::Transfers::default(),
            cluster: OnceLock::new(),
            read_at_start: Mutex::new(Some(saved::read(&config.server.state_file))),
            state_file: Mutex::new(config.server.state_file.clone()),
            started_with: StartedWith {
                listen: config.server.listen.clone(),
                admin: config.server.admin.clone(),
                xdp: config.server.xdp.clone(),
            },
            status: Mutex::default(),
            reloading: tokio::sync::Mutex::new(()),
            swapping: tokio::sync::Mutex::new(()),
        };
        // The serials served before, so that they keep growing; a broken file is told of
        // by `restore_flags`.
        if let Some(Ok(Some(saved))) = &*meridian.read_at_start.lock().expect("state lock") {
            meridian.serials.restore(&saved.serials);
        }
        meridian
    }

    pub fn status(&self) -> LoadStatus {
        self.status.lock().expect("status lock").clone()
    }

    pub fn admin_config(&self) -> Option<&AdminConfig> {
        self.started_with.admin.as_ref()
    }

    /// The metrics text.
    pub fn metrics(&self) -> String {
        let table = self.table.load_full();
        let mut drains = Vec::new();
        for name in table.health_checked_names() {
            let lower = LowerName::new(&name.name);
            for m in name.members() {
                if let Ok(Some(r)) = self.drain_report(&lower, m.address) {
                    drains.push((r.name, r.member, r.safe));
                }
            }
        }
        crate::metrics::render(
            self.counters.clone(),
            table,
            self.registry.all(),
            self.sticky.get().cloned(),
            drains,
            self.forwarder.cache_entries(),
            self.signatures.stats(),
            self.status().last_error.is_none(),
            self.cluster.get(),
        )
    }

    /// Starts the probes `config` adds (waiting for their first results, so that new
    /// members are not answered before they are checked), compiles the table and swaps it
    /// in whole, then stops the probes it no longer uses. Unchanged probes keep their
    /// state, and members that stay keep their maintenance flag. Must run on a
    /// multi-threaded runtime (compiling blocks in place).
    pub async fn apply(&self, config: Config) {
        self.apply_reusing(config, &[]).await;
    }

    /// Like [`Meridian::apply`], with the zones of `unchanged` files kept as the serving
    /// table has them: their members keep their state, and only the changed zones are
    /// compiled.
    pub async fn apply_reusing(&self, config: Config, unchanged: &[UnchangedZone]) {
        for w in config.warnings() {
            warn!("configuration: {w}");
        }
        let alone = config.quorum_without_cluster();
        if let Some(first) = alone.first() {
            warn!(
                names = alone.len(),
                %first,
                "quorum: without a cluster: section in the server file; these names decide by this server's own probes"
            );
        }
        // Where this configuration keeps its state: serials are written there as it loads.
        *self.state_file.lock().expect("state file lock") = config.server.state_file.clone();
        // The changed zones' probes (a probe they share with an unchanged zone keeps its
        // state, and from now on names only their users in its log lines), then the
        // unchanged zones' own, as they are.
        let mut probes = self.registry.probes_for(config.probe_users());
        if !unchanged.is_empty() {
            let serving = self.table.load();
            for zone in serving.unchanged_zones(unchanged) {
                for probe in zone
                    .health_checked_names()
                    .flat_map(|n| n.members())
                    .flat_map(|m| m.health.probes())
                {
                    if !probes.contains_key(&probe.key) {
                        probes.insert(probe.key.clone(), Arc::clone(probe));
                    }
                }
            }
        }
        // The zones go to the compiler whole (their records move into the table).
        let Config { server, zones } = config;
        let report = self.checker.sync(&probes).await;
        if report.started > 0 {
            info!(
                new_probes = report.started,
                without_result = report.late,
                "started probes"
            );
        }
        {
            let _swapping = self.swapping.lock().await;
            let previous = self.table.load_full();
            let serials_before = self.serials.saved();
            let inputs = Inputs {
                serial: &|z| self.serials.serve(&z.origin, z.soa.serial),
                probes: &probes,
                counters: &self.counters,
                previous: &previous,
                sticky: &self.sticky,
            };
            // Compiling a large configuration takes seconds: keep the runtime's other
            // tasks (TCP, admin) moving meanwhile. On a thread of its own, because glibc
            // gives each thread its own heap (arena): the table's many small allocations
            // then sit together instead of among the parsed configuration's, and the
            // pages the configuration frees go back to the system whole.
            let table = tokio::task::block_in_place(|| {
                std::thread::scope(|scope| {
                    std::thread::Builder::new()
                        .name("compile".into())
                        .spawn_scoped(scope, || {
                            Table::compile_reusing(&server, zones, unchanged, &inputs)
                        })
                        .expect("a thread to compile on")
                        .join()
                        .expect("compiling does not panic")
                })
            });
            self.table.store(Arc::new(table));
            // Serving from here: the status says so before anything slower (the state
            // file, zone transfers) runs.
            let now = unix_now();
            self.counters.last_good_load.store(now, Ordering::Relaxed);
            {
                let mut status = self.status.lock().expect("status lock");
                status.last_good = now;
                status.last_error = None;
            }
            self.refresh_transfers_locked(serials_before);
        }
        self.registry.retain(&probes);
        if let Some(cluster) = self.cluster.get() {
            cluster.loaded(self.table.load().fingerprint());
        }
        self.forwarder.configure(server.forward.as_ref());
        let cookies = &server.cookies;
        self.cookies
            .configure(cookies.secret, cookies.secret_lifetime);
        if let Some(limits) = &server.rate_limit {
            let limiter = self
                .limiter
                .get_or_init(|| RateLimiter::new(limits.table_size));
            if limiter.slots() != limits.table_size.next_power_of_two() {
                warn!(
                    slots = limiter.slots(),
                    "rate-limit.table-size changed: restart Meridian to apply it"
                );
            }
        }
        let slots = self.signatures.stats().slots;
        if slots != server.signature_cache.next_power_of_two() {
            warn!(
                slots,
                "signature-cache changed: restart Meridian to apply it"
            );
        }
    }

    /// Takes the transferred zones' content again (after a health change): a zone whose
    /// content moved gets the next serial, and its secondaries NOTIFY.
    pub async fn refresh_transfers(&self) {
        let _swapping = self.swapping.lock().await;
        self.refresh_transfers_locked(self.serials.saved());
    }

    /// `refresh_transfers`, with the swap lock held; `serials_before` as they were before
    /// the caller changed anything, to keep them in the state file if they moved.
    fn refresh_transfers_locked(&self, serials_before: Vec<serials::SavedSerial>) {
        let table = self.table.load();
        let changed = self.transfers.refresh(&table, &|zone, served, hash| {
            self.serials.transferred(zone, served, hash)
        });
        if self.serials.saved() != serials_before {
            self.save(&table);
        }
        if changed.is_empty() {
            return;
        }
        let source = self
            .listen
            .first()
            .map_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |a| a.ip());
        for c in &changed {
            info!(zone = %c.zone, serial = c.serial, "zone serial for secondaries");
            if tokio::runtime::Handle::try_current().is_ok() {
                self.transfers.notify(c, &table, source);
            }
        }
    }

    /// Re-reads every file, validates it exactly as `meridian check` does, and applies it
    /// only if it is all valid; otherwise the current table keeps serving untouched.
    pub async fn reload(&self) -> Result<(), ConfigErrors> {
        let _one_at_a_time = self.reloading.lock().await;
        let started = Instant::now();
        let file = self.config_file.clone();
        // Zone files whose text did not change (with the server file unchanged) are not
        // parsed or compiled again.
        let known = self.table.load().known();
        let loaded = tokio::task::spawn_blocking(move || {
            let (mut config, unchanged) = config::load_reusing(&file, &known)?;
            create_keys(&mut config)?;
            Ok((config, unchanged))
        })
        .await
        .unwrap_or_else(|e| {
            Err(ConfigErrors(vec![ConfigError::whole_file(
                &self.config_file,
                e.to_string(),
            )]))
        });
        let (config, unchanged) = match loaded {
            Ok(loaded) => loaded,
            Err(errors) => {
                self.counters.reloads_failed.fetch_add(1, Ordering::Relaxed);
                for e in &errors.0 {
                    error!("{e}");
                }
                error!(
                    errors = errors.0.len(),
                    "reload rejected; still serving the previous configuration"
                );
                let lines = errors.0.iter().map(ToString::to_string).collect();
                self.status.lock().expect("status lock").last_error = Some((unix_now(), lines));
                return Err(errors);
            }
        };
        let zones = config.zones.len() + unchanged.len();
        let recompiled = config.zones.len();
        if config.server.listen != self.started_with.listen {
            warn!(
                configured = ?config.server.listen,
                serving = ?self.listen,
                "listen addresses changed: restart Meridian to bind them"
            );
        }
        if config.server.admin != self.started_with.admin {
            warn!("admin settings changed: restart Meridian to apply them");
        }
        if config.server.xdp != self.started_with.xdp {
            warn!("xdp settings changed: restart Meridian to apply them");
        }
        if config.server.cluster.as_ref() != self.cluster.get().map(|c| c.config()) {
            warn!("cluster settings changed: restart Meridian to apply them");
        }
        self.apply_reusing(config, &unchanged).await;
        // The new table serves from here; handing freed memory back comes after.
        let serving_after = started.elapsed();
        release_free_memory();
        self.counters.reloads_ok.fetch_add(1, Ordering::Relaxed);
        info!(
            zones,
            recompiled,
            elapsed_ms = serving_after.as_millis() as u64,
            memory_returned_after_ms = started.elapsed().as_millis() as u64,
            "configuration reloaded"
        );
        Ok(())
    }

    /// Puts a member of a health-checked name in maintenance (down, whatever its checks
    /// say) or takes it out. The flag lives in the serving table's member, and reloads
    /// carry it over while the member stays in the configuration.
    pub async fn set_maintenance(
        &self,
        name: &LowerName,
        address: IpAddr,
        on: bool,
    ) -> Result<(), MaintenanceError> {
        let _swapping = self.swapping.lock().await;
        let table = self.table.load();
        let member = self.find(&table, name, address)?;
        member.health.set_maintenance(on);
        if !on {
            member.health.set_draining(None);
        }
        self.save(&table);
        Ok(())
    }

    /// Starts draining a member (out of answers), unless it already is; then its report.
    pub async fn drain(
        &self,
        name: &LowerName,
        address: IpAddr,
    ) -> Result<DrainReport, MaintenanceError> {
        {
            let _swapping = self.swapping.lock().await;
            let table = self.table.load();
            let member = self.find(&table, name, address)?;
            if member.health.draining_since().is_none() {
                member.health.set_draining(Some(unix_now()));
                self.save(&table);
            }
        }
        self.drain_report(name, address)
            .map(|r| r.expect("draining: just started"))
    }

    /// Whether a draining member is safe to stop: `None` when it is not draining.
    pub fn drain_report(
        &self,
        name: &LowerName,
        address: IpAddr,
    ) -> Result<Option<DrainReport>, MaintenanceError> {
        let table = self.table.load();
        let member = self.find(&table, name, address)?;
        let Some(since) = member.health.draining_since() else {
            return Ok(None);
        };
        let (hc, _) = table
            .health_checked(name)
            .ok_or(MaintenanceError::NoSuchName)?;
        let ttl = hc.ttl;
        let now = unix_now();
        let tags: Vec<u32> = hc.members().map(|m| m.tag).collect();
        let (mut received, mut returned) = (Vec::new(), Vec::new());
        if let Some(recipients) = self.recipients.get() {
            // The table's clock, from the drain's unix time.
            let clock = i64::from(recipients.now());
            let drained_at = clock - now.saturating_sub(since) as i64;
            let entries = recipients.of(&tags);
            for e in &entries {
                let could_hold = i64::from(e.at) >= drained_at - i64::from(ttl);
                if e.member == member.tag && could_hold && !received.contains(&e.resolver) {
                    received.push(e.resolver);
                }
            }
            for e in &entries {
                if e.member != member.tag
                    && i64::from(e.at) >= drained_at
                    && received.contains(&e.resolver)
                    && !returned.contains(&e.resolver)
                {
                    returned.push(e.resolver);
                }
            }
        }
        received.sort();
        returned.sort();
        let not_returned: Vec<IpAddr> = received
            .iter()
            .filter(|r| !returned.contains(r))
            .copied()
            .collect();
        let ttl_passed = now >= since + u64::from(ttl);
        Ok(Some(DrainReport {
            name: name.to_string(),
            member: address,
            since,
            ttl,
            ttl_passed,
            received: received.len(),
            returned: returned.len(),
            safe: ttl_passed && not_returned.is_empty(),
            not_returned,
        }))
    }

    /// Writes every member's maintenance flag and drain, and the zones' serials, to the
    /// state file. A failure is logged: the flags still hold until a restart.
    pub fn save(&self, table: &Table) {
        let mut members = Vec::new();
        for name in table.health_checked_names() {
            for m in name.members() {
                let maintenance = m.health.in_maintenance();
                let draining_since = m.health.draining_since();
                if maintenance || draining_since.is_some() {
                    members.push(saved::SavedMember {
                        name: name.name.to_string(),
                        address: m.address,
                        maintenance,
                        draining_since,
                    });
                }
            }
        }
        let path = self.state_file.lock().expect("state file lock").clone();
        if let Err(e) = saved::write(&path, members, self.serials.saved()) {
            warn!(
                state_file = %path.display(),
                "cannot write the state file (maintenance flags and serials for the next start): {e}"
            );
        }
    }

    /// Puts back the maintenance flags and drains of the state file (at start-up, once the
    /// first table serves and before any query is answered).
    pub fn restore_flags(&self) {
        let path = self.state_file.lock().expect("state file lock").clone();
        let read = self.read_at_start.lock().expect("state lock").take();
        let saved = match read.unwrap_or_else(|| saved::read(&path)) {
            Ok(Some(s)) => s,
            Ok(None) => return,
            Err(e) => {
                warn!("state file ignored, no maintenance flags restored: {e}");
                return;
            }
        };
        let table = self.table.load();
        for s in &saved.members {
            let name = Name::from_ascii(&s.name).map(|n| LowerName::new(&n));
            match name.ok().and_then(|n| table.member(&n, s.address)) {
                Some(m) => {
                    m.health.set_maintenance(s.maintenance);
                    m.health.set_draining(s.draining_since);
                    info!(
                        name = %s.name,
                        member = %s.address,
                        maintenance = s.maintenance,
                        draining = s.draining_since.is_some(),
                        state_file = %path.display(),
                        "restored from the state file"
                    );
                }
                None => warn!(
                    name = %s.name,
                    member = %s.address,
                    state_file = %path.display(),
                    "the state file names a member the configuration no longer has: dropped"
                ),
            }
        }
    }

    fn find<'t>(
        &self,
        table: &'t Table,
        name: &LowerName,
        address: IpAddr,
    ) -> Result<&'t crate::select::Member, MaintenanceError> {
        if table.health_checked(name).is_none() {
            return Err(MaintenanceError::NoSuchName);
        }
        table
            .member(name, address)
            .ok_or(MaintenanceError::NoSuchMember)
    }

    /// Lets a member with manual recovery back in once its checks pass.
    pub async fn recover(&self, name: &LowerName, address: IpAddr) -> Result<(), MaintenanceError> {
        let _swapping = self.swapping.lock().await;
        let table = self.table.load();
        self.find(&table, name, address)?.health.recover();
        Ok(())
    }
}

/// Where a drain stands: safe to stop once the longest TTL that could still name the
/// member has passed and every resolver that received it (within that TTL before the
/// drain) has asked for the name again since.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct DrainReport {
    pub name: String,
    pub member: IpAddr,
    /// Unix time the drain began.
    pub since: u64,
    /// The name's TTL: the longest an answer naming the member can be cached.
    pub ttl: u32,
    pub ttl_passed: bool,
    /// Resolvers (IPv4 addresses, IPv6 /64s) that received the member, and how many of
    /// them have asked again since the drain began.
    pub received: usize,
    pub returned: usize,
    /// Those that have not (the record is bounded: an evicted resolver is not named).
    pub not_returned: Vec<IpAddr>,
    pub safe: bool,
}

/// glibc keeps the memory freed after parsing a large configuration in its arenas; hand it
/// back to the system, so that the resident size is what the table really uses.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the kernel; no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}
