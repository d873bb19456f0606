//! A running Meridian: the configuration compiled into a table, and the DNS listeners
//! answering from it.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use hickory_server::Server;
use tracing::info;

use crate::config::Config;
use crate::dns::{self, Handler};
use crate::health::{Checker, Registry};
use crate::zone::{SharedTable, Table};

pub struct Running {
    /// The addresses actually bound (port 0 in the configuration resolved).
    pub addrs: Vec<SocketAddr>,
    pub table: SharedTable,
    pub registry: Arc<Registry>,
    pub checker: Arc<Checker>,
    server: Server<Handler>,
}

/// Compiles the table, binds every listen address and starts answering.
/// Must be called inside a tokio runtime.
pub async fn start(config: Config) -> io::Result<Running> {
    let registry = Arc::new(Registry::default());
    let table = Table::compile(&config, &registry);
    log_loaded(&config, &table);
    let table: SharedTable = Arc::new(ArcSwap::from_pointee(table));

    // Bind first, so that a busy port fails start-up before any probing.
    let mut bound = Vec::new();
    for addr in &config.server.listen {
        bound.push(dns::bind(*addr)?);
    }

    // Answer only once the first round of checks has decided every member's state.
    let checker = Arc::new(Checker::default());
    let probes = registry.all();
    let started = std::time::Instant::now();
    let report = checker.sync(&probes).await;
    let down = probes.iter().filter(|p| !p.is_up()).count();
    info!(
        probes = report.started,
        up = probes.len() - down,
        down,
        without_result = report.late,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "first health-check round done"
    );

    let addrs: Vec<SocketAddr> = bound.iter().map(|b| b.addr).collect();
    let server = dns::server(table.clone(), bound)?;
    for addr in &addrs {
        info!(%addr, "listening on UDP and TCP");
    }
    Ok(Running {
        addrs,
        table,
        registry,
        checker,
        server,
    })
}

fn log_loaded(config: &Config, table: &Table) {
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
    info!(zones = table.zones().len(), "zone table ready");
}

impl Running {
    /// Stops accepting queries and waits for the listeners to end.
    pub async fn shutdown(mut self) {
        if let Err(e) = self.server.shutdown_gracefully().await {
            tracing::warn!(error = %e, "listener ended with an error");
        }
    }

    /// Runs until a listener fails.
    pub async fn wait(mut self) -> io::Result<()> {
        self.server
            .block_until_done()
            .await
            .map_err(|e| io::Error::other(e.to_string()))
    }
}
