//! Puts the git revision into `meridian --version` (MERIDIAN_GIT_REV overrides it, for
//! builds from a tarball; without either it says "unknown").

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=MERIDIAN_GIT_REV");
    // A commit moves HEAD or the branch it points at; both live under .git.
    for path in [".git/HEAD", ".git/refs/heads", ".git/packed-refs"] {
        if std::path::Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    let rev = std::env::var("MERIDIAN_GIT_REV").ok().or_else(|| {
        let out = Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
            .filter(|r| !r.is_empty())
    });
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let rev = rev.as_deref().unwrap_or("unknown");
    println!("cargo:rustc-env=MERIDIAN_REVISION={rev}");
    println!("cargo:rustc-env=MERIDIAN_VERSION={version} (git {rev})");
}
