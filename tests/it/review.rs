//! `meridian diff`: the answers that a configuration change alters, between directories
//! and between git revisions, with every member up or with a running server's health.

use std::path::Path;
use std::process::Command;

use crate::common::backend::{TcpBackend, free_port};
use crate::common::{ip, run_meridian, start_with, write_config_with};

fn zone(weight_a: u32, with_b: bool, mail: &str) -> String {
    let b = if with_b {
        "      - { address: 127.0.48.2, weight: 50 }\n"
    } else {
        ""
    };
    format!(
        "zone: rev.test\nns: [ns1.rev.test.]\nrecords:\n  mail: {{ A: {mail} }}\n  www: {{ CNAME: app.rev.test. }}\nsites:\n  lan: {{ networks: [10.9.0.0/16] }}\nfqdns:\n  app:\n    selection: fixed-weight\n    check: {{ type: tcp, port: 80 }}\n    members:\n      - {{ address: 127.0.48.1, weight: {weight_a} }}\n{b}"
    )
}

fn diff(args: &[&str], cwd: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .arg("diff")
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn diff_prints_the_answers_that_change_and_exits_1() {
    let (old, _) = write_config_with("", &[("rev.yaml", &zone(100, true, "192.0.2.25"))]);
    let (new, _) = write_config_with("", &[("rev.yaml", &zone(10, true, "192.0.2.26"))]);
    let (code, stdout, stderr) = diff(
        &[
            old.path().to_str().unwrap(),
            new.path().to_str().unwrap(),
            "--client",
            "192.0.2.77",
        ],
        old.path(),
    );
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(
        stdout,
        "app.rev.test. A: 127.0.48.1 -> 127.0.48.2  (for every client (3))\n\
         mail.rev.test. A: 192.0.2.25 -> 192.0.2.26  (for every client (3))\n\
         www.rev.test. A: app.rev.test., 127.0.48.1 -> app.rev.test., 127.0.48.2  (for every client (3))\n\
         9 answer(s) change, at 3 name(s): 7 question(s) for 3 client(s), with every member up\n"
    );
    // The clients: one without a location, the site network's first address, the extra.
    let (code, stdout, _) = diff(
        &[old.path().to_str().unwrap(), old.path().to_str().unwrap()],
        old.path(),
    );
    assert_eq!(code, 0);
    assert_eq!(
        stdout,
        "no answer changes: 7 question(s) for 2 client(s), with every member up\n"
    );
}

#[test]
fn diff_compares_git_revisions() {
    let (dir, server) = write_config_with("", &[("rev.yaml", &zone(100, true, "192.0.2.25"))]);
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    git(&["init", "-q"]);
    git(&["add", "-A"]);
    git(&["commit", "-qm", "one"]);
    std::fs::write(
        dir.path().join("zones/rev.yaml"),
        zone(100, true, "192.0.2.99"),
    )
    .unwrap();
    // The working tree against the last commit: the edit under review.
    let (code, stdout, stderr) = diff(
        &["HEAD:meridian.yaml", server.to_str().unwrap()],
        dir.path(),
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stdout.starts_with("mail.rev.test. A: 192.0.2.25 -> 192.0.2.99  (for every client (2))\n"),
        "{stdout}"
    );
    git(&["commit", "-qam", "two"]);
    let (code, stdout, _) = diff(&["HEAD~1:", "HEAD:"], dir.path());
    assert_eq!(code, 1);
    assert!(stdout.contains("192.0.2.25 -> 192.0.2.99"), "{stdout}");
    let (code, _, stderr) = diff(&["nosuchrev:", "HEAD:"], dir.path());
    assert_eq!(code, 2);
    assert_eq!(
        stderr.trim(),
        "nosuchrev:: `nosuchrev` is not a git revision here"
    );
}

#[test]
fn diff_with_a_running_servers_health_and_a_broken_side() {
    // The server: app's heavy member is down (nothing listens on its port).
    let port = free_port(ip("127.0.48.2"));
    let _b = TcpBackend::start(format!("127.0.48.2:{port}").parse().unwrap());
    let admin = format!("127.0.48.9:{}", free_port(ip("127.0.48.9")));
    let with_port = |z: String| z.replace("port: 80", &format!("port: {port}"));
    let (dir, file) = write_config_with(
        &format!("admin: {{ listen: \"{admin}\" }}\n"),
        &[("rev.yaml", &with_port(zone(100, true, "192.0.2.25")))],
    );
    let _server = start_with(dir, &file);
    let (old, _) = write_config_with(
        "",
        &[("rev.yaml", &with_port(zone(100, true, "192.0.2.25")))],
    );
    let (new, _) = write_config_with(
        "",
        &[("rev.yaml", &with_port(zone(100, false, "192.0.2.25")))],
    );
    let (o, n) = (old.path().to_str().unwrap(), new.path().to_str().unwrap());
    // Every member up: removing the light member changes nothing.
    let (code, stdout, _) = diff(&[o, n], old.path());
    assert_eq!(code, 0, "{stdout}");
    // With the server's health, the light member was answering: now the name fails open.
    let (code, stdout, stderr) = diff(&[o, n, "--health-from", &admin], old.path());
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stdout.starts_with("app.rev.test. A: 127.0.48.2 -> 127.0.48.1  (for every client (2))\n"),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("with the server's current health (1 member(s) down)\n"),
        "{stdout}"
    );

    std::fs::write(new.path().join("zones/rev.yaml"), "zone: [").unwrap();
    let (code, _, stderr) = run_meridian(&["diff".as_ref(), o.as_ref(), n.as_ref()]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.ends_with(&format!(
            "{n}: 1 configuration error(s); nothing compared\n"
        )),
        "{stderr}"
    );
}
