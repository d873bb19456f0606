//! File watching: which files a configuration depends on, and the reloader task that
//! reloads on their changes and on SIGHUP.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::EventKind;
use notify::event::{AccessKind, AccessMode};
use notify_debouncer_full::{DebounceEventResult, new_debouncer};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::config::{self, Config};
use crate::state::Meridian;

/// How long file events settle before a reload.
const DEBOUNCE: Duration = Duration::from_millis(300);
/// How often the watched files are also compared by size and modification time, for
/// changes the file watcher missed (just after start-up, or on network filesystems).
const POLL: Duration = Duration::from_secs(2);

/// The files whose changes trigger a reload, and the directories to watch for them.
/// Directories, not files: editors and deploy tools replace files by rename, which ends a
/// watch on the file itself.
pub(super) struct Watched {
    enabled: bool,
    dirs: Vec<PathBuf>,
    server_file: PathBuf,
    zones_dir: PathBuf,
    geoip: Option<PathBuf>,
    /// The other files zones are read from: key files and records files (at start; such
    /// files in the zones directory are recognised whenever they appear).
    dependencies: Vec<PathBuf>,
}

pub(super) fn watched_paths(config: &Config) -> Watched {
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let server_file = abs(&config.server.file);
    let zones_dir = abs(&config.server.zones_dir);
    let geoip = config.server.geoip.as_ref().map(|g| abs(&g.path));
    let dependencies: Vec<PathBuf> = config
        .zones
        .iter()
        .flat_map(|z| z.dependencies())
        .map(|p| abs(&p))
        .collect();
    let mut dirs = vec![zones_dir.clone()];
    dirs.extend(
        dependencies
            .iter()
            .filter_map(|k| k.parent())
            .map(Path::to_path_buf),
    );
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
        dependencies,
    }
}

/// Name, size and modification time of every watched file.
pub(super) type Fingerprint = Vec<(PathBuf, u64, Option<std::time::SystemTime>)>;

impl Watched {
    pub(super) fn fingerprint(&self) -> Fingerprint {
        let stat = |p: PathBuf| {
            let meta = std::fs::metadata(&p).ok();
            let len = meta.as_ref().map_or(0, |m| m.len());
            let modified = meta.and_then(|m| m.modified().ok());
            (p, len, modified)
        };
        let mut files: Vec<PathBuf> = config::zone_files(&self.zones_dir).unwrap_or_default();
        files.push(self.server_file.clone());
        files.extend(self.geoip.clone());
        files.extend(self.dependencies.iter().cloned());
        files.into_iter().map(stat).collect()
    }

    fn concerns(&self, path: &Path) -> bool {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let zone_file = path.parent() == Some(&self.zones_dir)
            && (name.ends_with(".yaml") || name.ends_with(".yml"))
            && !name.starts_with('.');
        // Key files as `meridian serve` and BIND name them.
        let key_file = path.parent() == Some(&self.zones_dir)
            && [".pem", ".private", ".key"]
                .iter()
                .any(|e| name.ends_with(e))
            && !name.starts_with('.');
        // A ConfigMap mounted by the kubelet: its files are symlinks through `..data`,
        // which it swaps (a rename) to update them all at once.
        let kubelet_swap = name == "..data"
            && (path.parent() == Some(&self.zones_dir)
                || path.parent() == self.server_file.parent());
        zone_file
            || key_file
            || kubelet_swap
            || path == self.server_file
            || Some(path) == self.geoip.as_deref()
            || self.dependencies.iter().any(|k| k == path)
    }
}

/// Starts watching (before `start` returns); each relevant batch of file events sends one
/// message.
pub(super) fn watch(watched: Arc<Watched>) -> (Option<Debouncer>, mpsc::UnboundedReceiver<()>) {
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

pub(super) type Debouncer = notify_debouncer_full::Debouncer<
    notify::RecommendedWatcher,
    notify_debouncer_full::RecommendedCache,
>;

/// Reloads on SIGHUP and on changes to the watched files, one reload at a time.
pub(super) async fn reloader(
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
        super::notify::reloading();
        let status = match meridian.reload().await {
            Ok(()) => format!("reloaded at {}", super::clock_time()),
            Err(e) => format!(
                "reload at {} rejected ({} error(s)): serving the previous configuration",
                super::clock_time(),
                e.0.len()
            ),
        };
        super::notify::ready(&status);
    }
}
