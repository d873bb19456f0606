//! The `meridian` command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing::{error, info};

use crate::config::{self, Config};

#[derive(Parser)]
#[command(
    name = "meridian",
    version,
    about = "Authoritative GEO DNS server with health-checked records"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the configured zones.
    Serve {
        /// The server file.
        #[arg(long, short, default_value = "meridian.yaml")]
        config: PathBuf,
    },
    /// Validate the server file and every zone file, print every error, and exit 1 if any.
    Check {
        /// The server file.
        #[arg(long, short, default_value = "meridian.yaml")]
        config: PathBuf,
    },
}

pub fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Check { config } => check(&config),
        Command::Serve { config } => serve(&config),
    }
}

fn check(path: &Path) -> ExitCode {
    match config::load(path) {
        Ok(config) => {
            println!("{}", summary(&config));
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("{e}");
            }
            eprintln!("{} error(s)", errors.0.len());
            ExitCode::FAILURE
        }
    }
}

fn summary(config: &Config) -> String {
    let fqdns: usize = config.zones.iter().map(|z| z.fqdns.len()).sum();
    let members: usize = config
        .zones
        .iter()
        .flat_map(|z| &z.fqdns)
        .map(|f| f.members.len())
        .sum();
    format!(
        "ok: {} zone(s), {} health-checked name(s), {} member(s)",
        config.zones.len(),
        fqdns,
        members
    )
}

fn init_logging() {
    // hickory-server logs two lines per query at info; keep it to warnings.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(
            "info,hickory_server=warn,hickory_proto=warn,hickory_net=warn",
        )
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn serve(path: &Path) -> ExitCode {
    init_logging();
    let config = match config::load(path) {
        Ok(c) => c,
        Err(errors) => {
            for e in &errors.0 {
                error!("{e}");
            }
            error!("not starting: {} configuration error(s)", errors.0.len());
            return ExitCode::FAILURE;
        }
    };
    info!(config = %path.display(), "{}", summary(&config));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            error!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let running = match crate::server::start(config).await {
            Ok(r) => r,
            Err(e) => {
                error!("{e}");
                return ExitCode::FAILURE;
            }
        };
        tokio::select! {
            result = wait_for_signal() => {
                if let Err(e) = result {
                    error!("cannot wait for signals: {e}");
                }
                info!("shutting down");
                running.shutdown().await;
                ExitCode::SUCCESS
            }
        }
    })
}

async fn wait_for_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r,
        _ = term.recv() => Ok(()),
    }
}
