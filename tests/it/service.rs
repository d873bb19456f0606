//! Running as a service: the systemd unit, readiness notification, the configuration search
//! path, `--version`, the man page and completions, and JSON logs.

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use hickory_proto::rr::RecordType;

use crate::common::{self, addresses, query, repo, run_meridian, udp_exchange};

const ZONE: &str = "zone: svc.test\nns: [ns1.svc.test.]\nrecords:\n  www: { A: 192.0.2.80 }\n";

/// `systemd-analyze verify` on the shipped unit, pointed at this build's binary, with the
/// man page its Documentation= names: the output is `(success, everything it printed)`.
fn verify_unit(unit: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let man1 = dir.path().join("man/man1");
    std::fs::create_dir_all(&man1).unwrap();
    let (_, man, _) = run_meridian(&["generate".as_ref(), "man".as_ref()]);
    std::fs::write(man1.join("meridian.1"), man).unwrap();
    let path = dir.path().join("meridian.service");
    std::fs::write(
        &path,
        unit.replace("/usr/bin/meridian", env!("CARGO_BIN_EXE_meridian")),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .env("MANPATH", dir.path().join("man"))
        .output()
        .expect("systemd-analyze (Debian package systemd) is installed");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let unit = std::fs::read_to_string(repo().join("contrib/systemd/meridian.service")).unwrap();
    for line in [
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE CAP_NET_RAW",
        "PrivateTmp=yes",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
    ] {
        assert!(unit.lines().any(|l| l == line), "unit lacks {line}");
    }
    let (ok, said) = verify_unit(&unit);
    assert!(ok && said.trim().is_empty(), "{said}");
    // The same check catches a mistake.
    let broken = unit.replace("ProtectSystem=strict", "ProtectSystem=strickt");
    let (ok, said) = verify_unit(&broken);
    assert!(!ok || !said.trim().is_empty(), "a broken unit passed");
}

/// Waits for the next datagram on the notify socket.
fn next_notice(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = socket
        .recv(&mut buf)
        .expect("a notification within the timeout");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(pid as i32, sig) }, 0);
}

#[test]
fn systemd_hears_ready_after_the_first_health_round_and_around_each_reload() {
    // SIGHUP alone reloads, so that each reload below is the test's own.
    let (dir, server_file) = common::write_config_with("watch: false\n", &[("svc.yaml", ZONE)]);
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_meridian"));
    cmd.env("NOTIFY_SOCKET", &socket_path);
    let served = common::serve_command(cmd, &server_file);
    let pid = served.child.id();

    let ready = next_notice(&socket);
    assert!(ready.contains("READY=1\n"), "{ready}");
    assert!(
        ready.contains("STATUS=started: serving 1 zone(s), 0 health-checked name(s)"),
        "{ready}"
    );
    // READY means answering.
    let answer = udp_exchange(served.addr, &query("www.svc.test.", RecordType::A));
    assert_eq!(addresses(&answer), ["192.0.2.80"]);

    signal(pid, libc::SIGHUP);
    let reloading = next_notice(&socket);
    assert!(reloading.contains("RELOADING=1\n"), "{reloading}");
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    let reloaded = next_notice(&socket);
    assert!(
        reloaded.contains("READY=1\nSTATUS=reloaded at "),
        "{reloaded}"
    );

    std::fs::write(dir.path().join("zones/svc.yaml"), "zone: [").unwrap();
    signal(pid, libc::SIGHUP);
    assert!(next_notice(&socket).contains("RELOADING=1"));
    let rejected = next_notice(&socket);
    assert!(
        rejected.contains("rejected (1 error(s)): serving the previous configuration"),
        "{rejected}"
    );

    signal(pid, libc::SIGTERM);
    assert!(next_notice(&socket).contains("STOPPING=1"));
}

#[test]
fn without_config_the_search_path_decides_and_the_first_log_line_says_which_file() {
    let (dir, _) = common::write_config(&[("svc.yaml", ZONE)]);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_meridian"));
    cmd.current_dir(dir.path()).env_remove("MERIDIAN_CONFIG");
    let served = common::serve_command_with_args(cmd, &["serve"]);
    let first = served.log.lock().unwrap()[0].clone();
    assert!(
        first.contains("server file meridian.yaml (found in the search path)"),
        "{first}"
    );

    // An empty directory falls through to the installed file, or says there is none.
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .arg("check")
        .current_dir(empty.path())
        .env_remove("MERIDIAN_CONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if Path::new("/etc/meridian/meridian.yaml").is_file() {
        assert!(!stderr.contains("no server file"), "{stderr}");
    } else {
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr.contains("no server file: neither meridian.yaml nor /etc/meridian/meridian.yaml exists; give one with --config FILE"),
            "{stderr}"
        );
    }
}

#[test]
fn version_names_the_git_revision() {
    let (code, stdout, _) = run_meridian(&["--version".as_ref()]);
    assert_eq!(code, Some(0));
    let rev = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(repo())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let expected = format!(
        "meridian {} (git {})\n",
        env!("CARGO_PKG_VERSION"),
        rev.as_deref().unwrap_or("unknown")
    );
    assert_eq!(stdout, expected);
}

#[test]
fn help_man_page_and_completions_come_from_the_command_line_definitions() {
    let (_, help, _) = run_meridian(&["--help".as_ref()]);
    for needle in [
        "RUST_LOG",
        "SIGHUP",
        "Admin API",
        "/etc/meridian/meridian.yaml",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
    }
    let (code, man, _) = run_meridian(&["generate".as_ref(), "man".as_ref()]);
    assert_eq!(code, Some(0));
    assert!(man.contains(".TH meridian 1"), "{man}");
    assert!(man.contains("SIGHUP"));
    for sub in ["serve", "check", "explain", "drain"] {
        assert!(man.contains(sub), "the man page lacks {sub}");
    }
    let (code, bash, _) = run_meridian(&["generate".as_ref(), "bash".as_ref()]);
    assert_eq!(code, Some(0));
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("meridian.bash");
    std::fs::write(&script, &bash).unwrap();
    let syntax = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(syntax.status.success(), "bash completion does not parse");
    assert!(bash.contains("explain") && bash.contains("--config"));
    for shell in ["zsh", "fish"] {
        let (code, text, _) = run_meridian(&["generate".as_ref(), shell.as_ref()]);
        assert_eq!(code, Some(0));
        assert!(text.contains("drain"), "{shell}");
    }
}

#[test]
fn log_format_json_writes_one_object_per_line() {
    let (_dir, server_file) =
        common::write_config_with("log-format: json\n", &[("svc.yaml", ZONE)]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(["serve", "--config"])
        .arg(&server_file)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let event: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let listening = event["message"] == "listening on UDP and TCP";
        seen.push(event);
        if listening {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let first = &seen[0];
    assert_eq!(first["level"], "INFO");
    assert!(
        first["message"]
            .as_str()
            .unwrap()
            .starts_with("server file "),
        "{first}"
    );
    assert!(first["config"].as_str().unwrap().ends_with("meridian.yaml"));
    let zone = seen
        .iter()
        .find(|e| e["message"] == "loaded zone")
        .expect("a loaded zone line");
    assert_eq!(zone["zone"], "svc.test.");
    assert!(seen.last().unwrap()["addr"].as_str().is_some());
}

#[test]
fn a_wrong_log_format_is_an_error_naming_the_line() {
    let (_dir, server_file) = common::write_config_with("log-format: xml\n", &[("svc.yaml", ZONE)]);
    let (code, _, stderr) =
        run_meridian(&["check".as_ref(), "--config".as_ref(), server_file.as_ref()]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains(":3:13: log-format: `xml` is not a log format: use `text` or `json`"),
        "{stderr}"
    );
}
