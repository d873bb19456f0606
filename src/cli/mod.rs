//! The `meridian` command line: a thin layer over the library. `serve` runs the server,
//! `check` and `diff` read configurations, `explain` and `drain` ask a running server's
//! admin API, and `generate` writes the man page and shell completions.

mod diff;
mod dnssec;
mod remote;
mod serve;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

use crate::config::{self, Config};

/// Where `--config` is looked for when it is not given: a checkout (or any directory with
/// its own server file) first, then the installed package's.
const SEARCH_PATH: [&str; 2] = ["meridian.yaml", "/etc/meridian/meridian.yaml"];

const AFTER_HELP: &str = "\
Configuration:
  Without --config (or $MERIDIAN_CONFIG), the server file is ./meridian.yaml if it exists,
  else /etc/meridian/meridian.yaml. The first log line of `serve` says which file it read.

Running:
  SIGHUP reloads the configuration (so does `systemctl reload meridian`); a bad
  configuration is rejected and the previous one keeps serving. SIGTERM stops the server.
  RUST_LOG sets what is logged, e.g. RUST_LOG=debug or RUST_LOG=meridian::query=info;
  `log-format: json` in the server file writes one JSON object per line.

Admin API:
  With an `admin:` section the server answers HTTP on admin.listen (default
  127.0.0.1:9153): / (status page), /status, /metrics, /healthz, /events, /explain and
  the member endpoints. `explain` and `drain` use it.

Documentation: man meridian, and the README.";

#[derive(Parser)]
#[command(
    name = "meridian",
    version = env!("MERIDIAN_VERSION"),
    about = "Authoritative GEO DNS server with health-checked records",
    after_help = AFTER_HELP
)]
struct Cli {
    /// The server file [default: ./meridian.yaml, else /etc/meridian/meridian.yaml].
    #[arg(long, short, global = true, env = "MERIDIAN_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the configured zones.
    Serve,
    /// Validate the server file and every zone file, print every error, and exit 1 if any.
    Check,
    /// Ask the running server (through its admin API) why NAME answers what it answers.
    Explain {
        /// The name to explain, e.g. vault.kemp.local
        name: String,
        /// The query type.
        #[arg(long, short, default_value = "A")]
        r#type: String,
        /// The client to answer for (default: this machine as the admin API sees it);
        /// with --at, the client network to look back for (an address means its /24 or
        /// /64; default: every client).
        #[arg(long)]
        client: Option<String>,
        /// Look back instead: what the name answered around this time, and why, from the
        /// sampled decision history. A time (2026-12-01T23:50:00Z) or how long ago (5m).
        #[arg(long)]
        at: Option<String>,
        /// With --at: how far either side of the time to look.
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        within: std::time::Duration,
    },
    /// Drain a member (through the admin API): stop handing it out, and say when it is
    /// safe to stop: its TTL has passed and the resolvers that got it have asked again.
    Drain {
        /// The health-checked name, e.g. vault.kemp.local
        name: String,
        /// The member's address.
        address: std::net::IpAddr,
        /// Return only when it is safe to stop (exit 1 if that takes longer than --timeout).
        #[arg(long)]
        wait: bool,
        /// How long --wait waits.
        #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
    },
    /// Compare the answers of two configurations: every name and type, for a set of
    /// clients, through the server's own decision code. Prints each answer that changes;
    /// exit 0 when none does, 1 when some do, 2 on a configuration error.
    Diff {
        /// The configuration before: a server file, a directory with meridian.yaml, or a
        /// git revision of one (HEAD~1:meridian.yaml).
        old: String,
        /// The configuration after, in the same forms.
        new: String,
        /// Also ask for these clients: a file of IP addresses, one per line.
        #[arg(long)]
        clients: Option<PathBuf>,
        /// Also ask for this client (repeat for more).
        #[arg(long = "client")]
        client: Vec<std::net::IpAddr>,
        /// Take the members a running server has down as down (its admin API, e.g.
        /// 127.0.0.1:9153); otherwise every member is up.
        #[arg(long, value_name = "ADMIN_ADDRESS")]
        health_from: Option<String>,
    },
    /// Print what the parent zone needs for each signed zone (DS, and the DNSKEY, CDS and
    /// CDNSKEY the zone publishes), creating keys not made yet with --create-keys.
    Dnssec {
        /// Only these zones (e.g. kemp.local); default: every zone with `dnssec:`.
        zones: Vec<String>,
        /// Create the key files that do not exist yet (as `serve` does at start), e.g. to
        /// give the parent the DS before the first start.
        #[arg(long)]
        create_keys: bool,
    },
    /// Write the man page or a shell completion script to stdout.
    Generate {
        #[arg(value_enum)]
        what: Generated,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Generated {
    /// The man page, meridian(1), in roff.
    Man,
    /// Completions for bash.
    Bash,
    /// Completions for zsh.
    Zsh,
    /// Completions for fish.
    Fish,
}

pub fn main() -> ExitCode {
    crate::health::install_tls_provider();
    let cli = Cli::parse();
    match &cli.command {
        Command::Generate { what } => return generate(*what),
        Command::Diff {
            old,
            new,
            clients,
            client,
            health_from,
        } => {
            return diff::diff(old, new, clients.as_deref(), client, health_from.as_deref());
        }
        _ => {}
    }
    let (config, found) = match locate(cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Check => check(&config),
        Command::Dnssec { zones, create_keys } => dnssec::dnssec(&config, &zones, create_keys),
        Command::Serve => serve::serve(&config, found),
        Command::Explain {
            name,
            client,
            at: Some(at),
            within,
            ..
        } => remote::history(&config, &name, client.as_deref(), &at, within),
        Command::Explain {
            name,
            r#type,
            client,
            at: None,
            ..
        } => remote::explain(&config, &name, &r#type, client.as_deref()),
        Command::Drain {
            name,
            address,
            wait,
            timeout,
        } => remote::drain(&config, &name, address, wait.then_some(timeout)),
        Command::Generate { .. } | Command::Diff { .. } => unreachable!("handled above"),
    }
}

/// The server file to use, and how it was chosen (for the first log line).
fn locate(given: Option<PathBuf>) -> Result<(PathBuf, &'static str), String> {
    if let Some(path) = given {
        return Ok((path, "given"));
    }
    SEARCH_PATH
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .map(|p| (p, "found in the search path"))
        .ok_or_else(|| {
            format!(
                "no server file: neither {} exists; give one with --config FILE",
                SEARCH_PATH.join(" nor ")
            )
        })
}

fn generate(what: Generated) -> ExitCode {
    let mut cmd = Cli::command();
    let mut out = std::io::stdout();
    let written = match what {
        Generated::Man => clap_mangen::Man::new(cmd).render(&mut out),
        shell => {
            let shell = match shell {
                Generated::Bash => clap_complete::Shell::Bash,
                Generated::Zsh => clap_complete::Shell::Zsh,
                _ => clap_complete::Shell::Fish,
            };
            clap_complete::generate(shell, &mut cmd, "meridian", &mut out);
            Ok(())
        }
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn check(path: &Path) -> ExitCode {
    match config::load(path) {
        Ok(config) => {
            for w in config.warnings() {
                eprintln!("warning: {w}");
            }
            let alone = config.quorum_without_cluster();
            if let Some(first) = alone.first() {
                eprintln!(
                    "warning: {} name(s) set quorum: (first {first}) but {} has no cluster: section; they decide by this server's own probes",
                    alone.len(),
                    config.server.file.display()
                );
            }
            for zone in &config.zones {
                for file in zone.dnssec.iter().flat_map(|d| d.missing_keys()) {
                    println!("{}", missing_key(&zone.origin, file));
                }
            }
            for name in config.zones.iter().flat_map(|z| &z.health_checked) {
                if let (Some(within), Some(b)) = (name.failover_within, &name.budget) {
                    println!(
                        "{}: fails over within {} at worst (failover-within: {}): {}",
                        name.name,
                        humantime::format_duration(b.worst),
                        humantime::format_duration(within),
                        b.why
                    );
                }
            }
            println!("{}", summary(&config));
            ExitCode::SUCCESS
        }
        Err(errors) => {
            print_errors(&errors);
            ExitCode::FAILURE
        }
    }
}

/// Each configuration error on a line of its own, then their count (stderr).
fn print_errors(errors: &config::ConfigErrors) {
    for e in &errors.0 {
        eprintln!("{e}");
    }
    eprintln!("{} error(s)", errors.0.len());
}

/// What `check` and `dnssec` say of a key file not made yet.
fn missing_key(origin: &hickory_proto::rr::Name, file: &Path) -> String {
    format!(
        "{origin}: no key file {} yet: `meridian serve` creates it at start, or `meridian dnssec --create-keys` now",
        file.display()
    )
}

fn summary(config: &Config) -> String {
    let names: usize = config.zones.iter().map(|z| z.health_checked.len()).sum();
    let members: usize = config
        .zones
        .iter()
        .flat_map(|z| &z.health_checked)
        .map(|f| f.members.len())
        .sum();
    format!(
        "ok: {} zone(s), {} health-checked name(s), {} member(s)",
        config.zones.len(),
        names,
        members
    )
}
