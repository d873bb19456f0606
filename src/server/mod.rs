//! Starting and stopping a server: binds the listeners, builds the running state, runs the
//! first round of checks, and starts the DNS front end, the admin API and the reloader.
//! It only wires the other modules together.

mod notify;
mod privileges;
mod watch;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tracing::{info, warn};

use crate::config::Config;
use crate::dns;
use crate::state::{Meridian, release_free_memory};

pub struct Running {
    /// The addresses actually bound (port 0 in the configuration resolved).
    pub addrs: Vec<SocketAddr>,
    /// Where the admin API listens, if it is on.
    pub admin: Option<SocketAddr>,
    pub meridian: Arc<Meridian>,
    tcp: dns::tcp::Tcp,
    udp: dns::udp::Workers,
    xdp: Option<dns::xdp::Workers>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Binds every listen address, runs the first round of checks, and starts answering, with
/// the admin API and the reloader (file watching and SIGHUP). Must run inside a
/// multi-threaded tokio runtime.
pub async fn start(config: Config) -> io::Result<Running> {
    // What the files looked like as loaded, to notice any change from here on.
    let watched = Arc::new(watch::watched_paths(&config));
    let seen = watched.fingerprint();
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
    // Before dropping root: the program and its sockets need CAP_NET_ADMIN and CAP_BPF.
    let xdp = match &config.server.xdp {
        Some(x) => Some(dns::xdp::open(x, xdp_port(&addrs)?)?),
        None => None,
    };
    let meridian = Arc::new(Meridian::new(&config, addrs.clone()));
    if let Some(cluster) = &config.server.cluster {
        let state = Arc::downgrade(&meridian);
        let probes = Box::new(move || {
            state
                .upgrade()
                .map(|m| m.registry.all())
                .unwrap_or_default()
        });
        let seen = meridian.registry.seen_changed.clone();
        let member = crate::cluster::Cluster::start(cluster, probes, seen)
            .await
            .map_err(|e| {
                io::Error::new(e.kind(), format!("cluster.listen {}: {e}", cluster.listen))
            })?;
        let _ = meridian.cluster.set(member);
    }

    // Answer only once the first round of checks has decided every member's state.
    let started = Instant::now();
    if config.server.run_as.is_some() {
        meridian.checker.open_icmp_sockets().await;
    }
    // The zones go to the table whole; the server settings stay for what follows.
    let serving = serving_status(&config, "started");
    let server = config.server.clone();
    meridian.apply(config).await;
    meridian.restore_flags();
    if let Some(run_as) = &server.run_as {
        match privileges::drop_to(run_as)? {
            true => {
                info!(user = %run_as.user, group = %run_as.group, "dropped root: running as this user")
            }
            false => warn!(user = %run_as.user, "not running as root: user: has nothing to drop"),
        }
    }
    let probes = meridian.registry.all();
    let down = probes.iter().filter(|p| !p.is_up()).count();
    info!(
        probes = probes.len(),
        up = probes.len() - down,
        down,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "first health-check round done"
    );

    let (tcp, udp, xdp) = dns::start(meridian.clone(), bound, server.tcp, xdp)?;
    if let Some(x) = &server.xdp {
        info!(interface = %x.interface, "answering UDP through AF_XDP");
    }
    for addr in &addrs {
        info!(%addr, "listening on UDP and TCP");
    }
    // SIGHUP's default action ends the process: take it over before anything else.
    let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .inspect_err(|e| warn!("cannot listen for SIGHUP: {e}"))
        .ok();
    let watching = watch::watch(watched.clone());
    let mut tasks = vec![tokio::spawn(watch::reloader(
        meridian.clone(),
        watched,
        watching,
        hangup,
        seen,
    ))];
    tasks.push(tokio::spawn(rotate_cookie_secret(meridian.clone())));
    tasks.push(tokio::spawn(crate::state::watch_transitions(
        meridian.clone(),
    )));
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
    notify::ready(&serving);
    drop(server);
    release_free_memory();
    Ok(Running {
        addrs,
        admin,
        meridian,
        tcp,
        udp,
        xdp,
        tasks,
    })
}

/// Replaces the random DNS Cookie secret when it has lived its lifetime (a configured
/// secret never changes).
async fn rotate_cookie_secret(meridian: Arc<Meridian>) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if meridian.cookies.rotate_if_due() {
            info!("DNS Cookies: new server secret (the previous one is still accepted)");
        }
    }
}

/// The time of day (UTC) for status lines.
fn clock_time() -> String {
    let secs = crate::state::unix_now() % 86_400;
    format!(
        "{:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// The one line `systemctl status` shows.
fn serving_status(config: &Config, how: &str) -> String {
    let names: usize = config.zones.iter().map(|z| z.health_checked.len()).sum();
    format!(
        "{how}: serving {} zone(s), {names} health-checked name(s)",
        config.zones.len()
    )
}

fn log_loaded(config: &Config) {
    if let Some(db) = &config.server.geoip {
        info!(path = %db.path.display(), kind = db.database_type(), "GeoIP database loaded");
    }
    for zone in &config.zones {
        let members: usize = zone.health_checked.iter().map(|f| f.members.len()).sum();
        info!(
            zone = %zone.origin,
            file = %zone.file.display(),
            records = zone.records.len(),
            fqdns = zone.health_checked.len(),
            members,
            "loaded zone"
        );
    }
}

impl Running {
    /// Stops answering and checking.
    pub async fn shutdown(self) {
        notify::stopping();
        for t in &self.tasks {
            t.abort();
        }
        drop(self.tcp);
        drop(self.xdp);
        drop(self.udp);
        self.meridian.checker.stop_all();
    }
}

/// The one port the XDP program takes UDP to: every listen address must share it.
fn xdp_port(addrs: &[SocketAddr]) -> io::Result<u16> {
    let mut ports: Vec<u16> = addrs.iter().map(SocketAddr::port).collect();
    ports.sort_unstable();
    ports.dedup();
    match ports.as_slice() {
        [port] => Ok(*port),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("xdp: the listen addresses must share one port (bound {addrs:?})"),
        )),
    }
}
