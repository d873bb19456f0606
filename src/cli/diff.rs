//! `meridian diff OLD NEW`: the answers a configuration change alters, like `terraform
//! plan` for zones. OLD and NEW are server files, directories holding `meridian.yaml`, or
//! git revisions of them (`HEAD~1:meridian.yaml`, read with `git archive`). Exit status:
//! 0 when no answer changes, 1 when some do, 2 when either configuration cannot be loaded.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use hickory_proto::rr::Name;

use crate::config::{self, Config};
use crate::review;

/// A configuration to compare, and the directory it was exported to from git (removed
/// when done).
struct Side {
    server_file: PathBuf,
    exported: Option<PathBuf>,
}

impl Drop for Side {
    fn drop(&mut self) {
        if let Some(dir) = &self.exported {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A path (a server file, or a directory with `meridian.yaml`), else `REV:PATH` of the git
/// repository around the current directory.
fn side(arg: &str, n: usize) -> Result<Side, String> {
    let path = Path::new(arg);
    if path.exists() {
        let server_file = if path.is_dir() {
            path.join("meridian.yaml")
        } else {
            path.to_path_buf()
        };
        return Ok(Side {
            server_file,
            exported: None,
        });
    }
    let Some((rev, inner)) = arg.split_once(':') else {
        return Err(format!(
            "{arg}: no such file or directory (give a server file, a directory, or REV:PATH of git)"
        ));
    };
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .map_err(|e| format!("{arg}: cannot run git: {e}"))
    };
    let top = git(&["rev-parse", "--show-toplevel"])?;
    if !top.status.success() {
        return Err(format!(
            "{arg}: not a file, and this directory is not in a git repository"
        ));
    }
    let top = PathBuf::from(String::from_utf8_lossy(&top.stdout).trim());
    let verified = git(&[
        "rev-parse",
        "--verify",
        "--quiet",
        &format!("{rev}^{{commit}}"),
    ])?;
    if !verified.status.success() {
        return Err(format!("{arg}: `{rev}` is not a git revision here"));
    }
    let dir = std::env::temp_dir().join(format!("meridian-diff-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let side = Side {
        server_file: dir.join(if inner.is_empty() {
            "meridian.yaml"
        } else {
            inner
        }),
        exported: Some(dir.clone()),
    };
    let status = Command::new("sh")
        .arg("-c")
        .arg("git -C \"$1\" archive --format=tar \"$2\" | tar -x -C \"$3\"")
        .args(["sh", &top.to_string_lossy(), rev, &dir.to_string_lossy()])
        .status()
        .map_err(|e| format!("{arg}: {e}"))?;
    if !status.success() {
        return Err(format!("{arg}: git archive {rev} failed"));
    }
    if side.server_file.is_dir() {
        return Ok(Side {
            server_file: side.server_file.join("meridian.yaml"),
            exported: side.exported.clone(),
        });
    }
    Ok(side)
}

fn load(label: &str, side: &Side) -> Result<Config, ExitCode> {
    config::load(&side.server_file).map_err(|errors| {
        for e in &errors.0 {
            eprintln!("{e}");
        }
        eprintln!(
            "{label}: {} configuration error(s); nothing compared",
            errors.0.len()
        );
        ExitCode::from(2)
    })
}

/// Client addresses from a file: one per line, `#` starts a comment.
fn read_clients(path: &Path) -> Result<Vec<IpAddr>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let word = line.split('#').next().unwrap_or("").trim();
        if word.is_empty() {
            continue;
        }
        out.push(word.parse().map_err(|_| {
            format!(
                "{}:{}: `{word}` is not an IP address (one client address per line)",
                path.display(),
                i + 1
            )
        })?);
    }
    Ok(out)
}

/// The members a running server has down, from its admin API's `/status`.
fn down_members(admin: &str) -> Result<Vec<(Name, IpAddr)>, String> {
    let status: serde_json::Value = super::remote::get_json_at(admin, "/status")?;
    let mut down = Vec::new();
    for name in status["names"].as_array().into_iter().flatten() {
        let Some(n) = name["name"].as_str().and_then(|n| Name::from_ascii(n).ok()) else {
            continue;
        };
        for m in name["members"].as_array().into_iter().flatten() {
            if m["up"] == false
                && let Some(address) = m["address"].as_str().and_then(|a| a.parse().ok())
            {
                down.push((n.clone(), address));
            }
        }
    }
    Ok(down)
}

pub(super) fn diff(
    old: &str,
    new: &str,
    clients_file: Option<&Path>,
    extra: &[IpAddr],
    health_from: Option<&str>,
) -> ExitCode {
    let sides = side(old, 0).and_then(|o| side(new, 1).map(|n| (o, n)));
    let (old_side, new_side) = match sides {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let (before, after) = match (load(old, &old_side), load(new, &new_side)) {
        (Ok(b), Ok(a)) => (b, a),
        (Err(code), _) | (_, Err(code)) => return code,
    };
    let mut extra = extra.to_vec();
    if let Some(file) = clients_file {
        match read_clients(file) {
            Ok(c) => extra.extend(c),
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(2);
            }
        }
    }
    let down = match health_from.map(down_members).transpose() {
        Ok(d) => d.unwrap_or_default(),
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let both = [&before, &after];
    let questions = review::questions(&both);
    let clients = review::clients(&both, &extra);
    let changes = review::diff(
        &review::compile(&before, &down),
        &review::compile(&after, &down),
        &questions,
        &clients,
    );
    let health = if health_from.is_some() {
        format!(
            "the server's current health ({} member(s) down)",
            down.len()
        )
    } else {
        "every member up".to_string()
    };
    for line in review::grouped(&changes, clients.len()) {
        println!("{line}");
    }
    let names: std::collections::BTreeSet<&str> = changes.iter().map(|c| c.name.as_str()).collect();
    if changes.is_empty() {
        println!(
            "no answer changes: {} question(s) for {} client(s), with {health}",
            questions.len(),
            clients.len()
        );
        ExitCode::SUCCESS
    } else {
        println!(
            "{} answer(s) change, at {} name(s): {} question(s) for {} client(s), with {health}",
            changes.len(),
            names.len(),
            questions.len(),
            clients.len()
        );
        ExitCode::FAILURE
    }
}
