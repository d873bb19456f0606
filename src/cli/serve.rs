//! `meridian serve`: logging, the runtime, and waiting for the signal to stop.

use std::path::Path;
use std::process::ExitCode;

use tracing::{error, info};

use crate::config::{self, LogFormat};

fn init_logging(format: LogFormat) {
    // hickory-server logs two lines per query at info; keep it to warnings. The TLS
    // certificate verifier logs an ERROR on every failed handshake, so once per probe of a
    // failing HTTPS check: the checker already logs each change of state with the reason.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(
            "info,hickory_server=warn,hickory_proto=warn,hickory_net=warn,rustls=off,rustls_platform_verifier=off",
        )
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
}

pub(super) fn serve(path: &Path, found: &str) -> ExitCode {
    // The format comes from the server file, so read that first; if it is broken, the
    // full load below reports why, in text.
    let format = config::load_server(path).map_or(LogFormat::Text, |s| s.log_format);
    init_logging(format);
    info!(
        config = %path.display(),
        version = env!("MERIDIAN_VERSION"),
        "server file {} ({found})",
        path.display()
    );
    let config = match config::load(path).and_then(|mut c| {
        crate::state::create_keys(&mut c)?;
        Ok(c)
    }) {
        Ok(c) => c,
        Err(errors) => {
            for e in &errors.0 {
                error!("{e}");
            }
            error!("not starting: {} configuration error(s)", errors.0.len());
            return ExitCode::FAILURE;
        }
    };
    info!("{}", super::summary(&config));
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
        if let Err(e) = wait_for_signal().await {
            error!("cannot wait for signals: {e}");
        }
        info!("shutting down");
        running.shutdown().await;
        ExitCode::SUCCESS
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
