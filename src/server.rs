//! A running Meridian: the state that outlives any one configuration (probes, maintenance
//! flags, counters), the table compiled from the current configuration, the DNS listeners,
//! the admin API, and reloads.

use std::collections::HashSet;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use hickory_server::Server;
use notify::EventKind;
use notify::event::{AccessKind, AccessMode};
use notify_debouncer_full::{DebounceEventResult, new_debouncer};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::config::{self, Config, ConfigErrors};
use crate::dns::{self, Handler};
use crate::health::{Checker, Maintenance, ProbeKey, Registry};
use crate::metrics::{Metrics, unix_now};
use crate::zone::{Live, SharedTable, Table};

/// How long file events settle before a reload.
const DEBOUNCE: Duration = Duration::from_millis(300);
/// How often the watched files are also compared by size and modification time, for
/// changes the file watcher missed (just after start-up, or on network filesystems).
const POLL: Duration = Duration::from_secs(2);

/// The outcome of the last load of the configuration.
#[derive(Clone, Debug, Default)]
pub struct LoadStatus {
    /// Unix time of the last configuration that loaded (and is serving).
    pub last_good: u64,
    /// The errors of the last reload if it failed, with its Unix time. Cleared by a good one.
    pub last_error: Option<(u64, Vec<String>)>,
}

/// Everything a running server shares between its DNS handler, admin API and reloader.
pub struct Meridian {
    pub config_file: PathBuf,
    pub table: SharedTable,
    pub registry: Registry,
    pub maintenance: Maintenance,
    pub metrics: Metrics,
    pub checker: Checker,
    /// The DNS addresses bound at start-up.
    pub listen: Vec<SocketAddr>,
    /// The configuration's listen and admin settings at start-up (changes need a restart).
    started_with: (Vec<SocketAddr>, Option<config::AdminConfig>),
    status: Mutex<LoadStatus>,
    reloading: tokio::sync::Mutex<()>,
}

impl Meridian {
    fn live(&self) -> Live<'_> {
        Live {
            registry: &self.registry,
            maintenance: &self.maintenance,
            metrics: &self.metrics,
        }
    }

    pub fn status(&self) -> LoadStatus {
        self.status.lock().expect("status lock").clone()
    }

    pub fn admin_config(&self) -> Option<&config::AdminConfig> {
        self.started_with.1.as_ref()
    }

    /// Compiles `config`, starts the probes it adds (waiting for their first results, so
    /// that new members are not answered before they are checked), swaps the table in
    /// whole, and stops the probes it no longer uses. Unchanged probes keep their state.
    async fn apply(&self, config: &Config) {
        let table = Table::compile(config, &self.live());
        let keep: HashSet<ProbeKey> = table.probe_keys();
        self.registry.retain(&keep);
        let report = self.checker.sync(&self.registry.all()).await;
        if report.started > 0 {
            info!(
                new_probes = report.started,
                without_result = report.late,
                "started probes"
            );
        }
        self.table.store(Arc::new(table));
        // A member put in maintenance while the table compiled: set it in the new one too.
        let table = self.table.load();
        for (name, address) in self.maintenance.entries() {
            let lower = hickory_proto::rr::Name::from_ascii(&name)
                .map(|n| hickory_proto::rr::LowerName::new(&n));
            if let Some(m) = lower.ok().and_then(|l| table.member(&l, address)) {
                m.health.set_maintenance(true);
            }
        }
        self.metrics
            .last_good_load
            .store(unix_now(), Ordering::Relaxed);
        let mut status = self.status.lock().expect("status lock");
        status.last_good = unix_now();
        status.last_error = None;
    }

    /// Re-reads every file, validates it exactly as `meridian check` does, and applies it
    /// only if it is all valid; otherwise the current table keeps serving untouched.
    pub async fn reload(&self) -> Result<(), ConfigErrors> {
        let _one_at_a_time = self.reloading.lock().await;
        let started = Instant::now();
        let file = self.config_file.clone();
        let loaded = tokio::task::spawn_blocking(move || config::load(&file))
            .await
            .unwrap_or_else(|e| {
                Err(ConfigErrors(vec![internal_error(
                    &self.config_file,
                    &e.to_string(),
                )]))
            });
        match loaded {
            Err(errors) => {
                self.metrics.reloads_failed.fetch_add(1, Ordering::Relaxed);
                for e in &errors.0 {
                    error!("{e}");
                }
                error!(
                    errors = errors.0.len(),
                    "reload rejected; still serving the previous configuration"
                );
                let lines = errors.0.iter().map(ToString::to_string).collect();
                self.status.lock().expect("status lock").last_error = Some((unix_now(), lines));
                Err(errors)
            }
            Ok(config) => {
                let zones = config.zones.len();
                if config.server.listen != self.started_with.0 {
                    warn!(
                        configured = ?config.server.listen,
                        serving = ?self.listen,
                        "listen addresses changed: restart Meridian to bind them"
                    );
                }
                if config.server.admin != self.started_with.1 {
                    warn!("admin settings changed: restart Meridian to apply them");
                }
                self.apply(&config).await;
                drop(config);
                release_free_memory();
                self.metrics.reloads_ok.fetch_add(1, Ordering::Relaxed);
                info!(
                    zones,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "configuration reloaded"
                );
                Ok(())
            }
        }
    }
}

/// glibc keeps the memory freed after parsing a large configuration in its arenas; hand it
/// back to the system, so that the resident size is what the table really uses.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the kernel; no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn internal_error(file: &Path, message: &str) -> config::ConfigError {
    config::ConfigError {
        file: file.to_path_buf(),
        line: 0,
        column: 0,
        field: String::new(),
        message: message.to_string(),
    }
}

pub struct Running {
    /// The addresses actually bound (port 0 in the configuration resolved).
    pub addrs: Vec<SocketAddr>,
    /// Where the admin API listens, if it is on.
    pub admin: Option<SocketAddr>,
    pub meridian: Arc<Meridian>,
    server: Server<Handler>,
    udp: dns::udp::Workers,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Binds every listen address, runs the first round of checks, and starts answering, with
/// the admin API and the reloader (file watching and SIGHUP). Must run inside a tokio
/// runtime.
pub async fn start(config: Config) -> io::Result<Running> {
    // What the files looked like as loaded, to notice any change from here on.
    let seen = watched_paths(&config).fingerprint();
    log_loaded(&config);
    // Bind first, so that a busy port fails start-up before any probing.
    let mut bound = Vec::new();
    for addr in &config.server.listen {
        bound.push(dns::bind(*addr)?);
    }
    let admin_listener = match &config.server.admin {
        Some(admin) => Some(crate::admin::bind(admin.listen)?),
        None => None,
    };
    let addrs: Vec<SocketAddr> = bound.iter().map(|b| b.addr).collect();

    let empty = Table::empty();
    let meridian = Arc::new(Meridian {
        config_file: config.server.file.clone(),
        table: Arc::new(ArcSwap::from_pointee(empty)),
        registry: Registry::default(),
        maintenance: Maintenance::default(),
        metrics: Metrics::default(),
        checker: Checker::default(),
        listen: addrs.clone(),
        started_with: (config.server.listen.clone(), config.server.admin.clone()),
        status: Mutex::default(),
        reloading: tokio::sync::Mutex::new(()),
    });

    // Answer only once the first round of checks has decided every member's state.
    let started = Instant::now();
    meridian.apply(&config).await;
    let probes = meridian.registry.all();
    let down = probes.iter().filter(|p| !p.is_up()).count();
    info!(
        probes = probes.len(),
        up = probes.len() - down,
        down,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "first health-check round done"
    );

    let (server, udp) = dns::server(meridian.clone(), bound)?;
    for addr in &addrs {
        info!(%addr, "listening on UDP and TCP");
    }
    // SIGHUP's default action ends the process: take it over before anything else.
    let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .inspect_err(|e| warn!("cannot listen for SIGHUP: {e}"))
        .ok();
    let watched = Arc::new(watched_paths(&config));
    let watching = watch(watched.clone());
    let mut tasks = vec![tokio::spawn(reloader(
        meridian.clone(),
        watched,
        watching,
        hangup,
        seen,
    ))];
    let admin = match admin_listener {
        Some(listener) => {
            let addr = listener.local_addr()?;
            tasks.push(tokio::spawn(crate::admin::serve(
                listener,
                meridian.clone(),
            )));
            info!(%addr, "admin API listening");
            Some(addr)
        }
        None => None,
    };
    drop(config);
    release_free_memory();
    Ok(Running {
        addrs,
        admin,
        meridian,
        server,
        udp,
        tasks,
    })
}

fn log_loaded(config: &Config) {
    if let Some(db) = &config.server.geoip {
        info!(path = %db.path.display(), kind = db.database_type(), "GeoIP database loaded");
    }
    for zone in &config.zones {
        let members: usize = zone.fqdns.iter().map(|f| f.members.len()).sum();
        info!(
            zone = %zone.origin,
            file = %zone.file.display(),
            records = zone.records.len(),
            fqdns = zone.fqdns.len(),
            members,
            "loaded zone"
        );
    }
}

/// The files whose changes trigger a reload, and the directories to watch for them.
/// Directories, not files: editors and deploy tools replace files by rename, which ends a
/// watch on the file itself.
struct Watched {
    enabled: bool,
    dirs: Vec<PathBuf>,
    server_file: PathBuf,
    zones_dir: PathBuf,
    geoip: Option<PathBuf>,
}

fn watched_paths(config: &Config) -> Watched {
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let server_file = abs(&config.server.file);
    let zones_dir = abs(&config.server.zones_dir);
    let geoip = config.server.geoip.as_ref().map(|g| abs(&g.path));
    let mut dirs = vec![zones_dir.clone()];
    dirs.extend(server_file.parent().map(Path::to_path_buf));
    dirs.extend(
        geoip
            .as_ref()
            .and_then(|g| g.parent())
            .map(Path::to_path_buf),
    );
    dirs.sort();
    dirs.dedup();
    Watched {
        enabled: config.server.watch,
        dirs,
        server_file,
        zones_dir,
        geoip,
    }
}

/// Name, size and modification time of every watched file.
type Fingerprint = Vec<(PathBuf, u64, Option<std::time::SystemTime>)>;

impl Watched {
    fn fingerprint(&self) -> Fingerprint {
        let stat = |p: PathBuf| {
            let meta = std::fs::metadata(&p).ok();
            let len = meta.as_ref().map_or(0, |m| m.len());
            let modified = meta.and_then(|m| m.modified().ok());
            (p, len, modified)
        };
        let mut files: Vec<PathBuf> = config::zone_files(&self.zones_dir).unwrap_or_default();
        files.push(self.server_file.clone());
        files.extend(self.geoip.clone());
        files.into_iter().map(stat).collect()
    }

    fn concerns(&self, path: &Path) -> bool {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let zone_file = path.parent() == Some(&self.zones_dir)
            && (name.ends_with(".yaml") || name.ends_with(".yml"))
            && !name.starts_with('.');
        zone_file || path == self.server_file || Some(path) == self.geoip.as_deref()
    }
}

/// Starts watching (before `start` returns); each relevant batch of file events sends one
/// message.
fn watch(watched: Arc<Watched>) -> (Option<Debouncer>, mpsc::UnboundedReceiver<()>) {
    let (tx, rx) = mpsc::unbounded_channel::<()>();
    if !watched.enabled {
        return (None, rx);
    }
    let dirs = watched.dirs.clone();
    let debouncer = new_debouncer(DEBOUNCE, None, move |result: DebounceEventResult| {
        let Ok(events) = result else { return };
        // Reading a file is an event too: react only to writes, or a reload would
        // trigger the next one.
        let relevant = events.iter().any(|e| {
            let writes = matches!(
                e.kind,
                EventKind::Create(_)
                    | EventKind::Modify(_)
                    | EventKind::Remove(_)
                    | EventKind::Access(AccessKind::Close(AccessMode::Write))
            );
            writes && e.paths.iter().any(|p| watched.concerns(p))
        });
        if relevant {
            let _ = tx.send(());
        }
    });
    match debouncer {
        Ok(mut d) => {
            for dir in &dirs {
                if let Err(e) = d.watch(dir, notify::RecursiveMode::NonRecursive) {
                    warn!(dir = %dir.display(), "cannot watch for changes: {e}; reload with SIGHUP");
                }
            }
            (Some(d), rx)
        }
        Err(e) => {
            warn!("cannot watch files: {e}; reload with SIGHUP");
            (None, rx)
        }
    }
}

type Debouncer = notify_debouncer_full::Debouncer<
    notify::RecommendedWatcher,
    notify_debouncer_full::RecommendedCache,
>;

/// Reloads on SIGHUP and on changes to the watched files, one reload at a time.
async fn reloader(
    meridian: Arc<Meridian>,
    watched: Arc<Watched>,
    (_watching, mut changes): (Option<Debouncer>, mpsc::UnboundedReceiver<()>),
    mut hangup: Option<tokio::signal::unix::Signal>,
    mut seen: Fingerprint,
) {
    let mut poll = tokio::time::interval(POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let hup = async {
            match hangup.as_mut() {
                Some(s) => s.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            Some(()) = changes.recv() => {
                // Coalesce what piled up while the last reload ran; one edit can come
                // as several batches of events, so reload only if a file really differs.
                while changes.try_recv().is_ok() {}
                if watched.fingerprint() == seen {
                    continue;
                }
                info!("configuration files changed: reloading");
            }
            _ = hup => info!("SIGHUP: reloading"),
            _ = poll.tick(), if watched.enabled => {
                if watched.fingerprint() == seen {
                    continue;
                }
                info!("configuration files changed: reloading");
            }
        }
        seen = watched.fingerprint();
        let _ = meridian.reload().await;
    }
}

impl Running {
    /// Stops answering and checking.
    pub async fn shutdown(mut self) {
        for t in &self.tasks {
            t.abort();
        }
        if let Err(e) = self.server.shutdown_gracefully().await {
            warn!(error = %e, "listener ended with an error");
        }
        drop(self.udp);
        self.meridian.checker.stop_all();
    }
}
