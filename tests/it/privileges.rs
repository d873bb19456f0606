//! Started as root with `user:`, the server binds, opens its ICMP sockets, and then runs as
//! that user: it keeps answering, checking (ICMP included) and reloading.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use hickory_proto::rr::RecordType;

use crate::common::*;

fn zone(names: &[&str]) -> String {
    let mut z = String::from("zone: priv.test\nns: [ns1]\nfqdns:\n");
    for n in names {
        z.push_str(&format!(
            "  {n}:\n    when-all-down: none\n    check: {{ type: icmp, interval: 200ms, timeout: 150ms, rise: 1, fall: 1 }}\n    members: [{{ address: 127.0.0.1 }}]\n"
        ));
    }
    z
}

/// (real, effective, saved) uid and gid of a process, from /proc.
fn ids(pid: u32) -> (String, String) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap()
            .split_whitespace()
            .skip(1)
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    };
    (field("Uid:"), field("Gid:"))
}

#[test]
fn with_user_it_runs_as_that_user_after_binding_and_keeps_working() {
    let (dir, file) = write_config_with(
        "user: nobody\nwatch: false\n",
        &[("priv.yaml", &zone(&["ping"]))],
    );
    // The user must be able to read what it reloads.
    for path in [dir.path(), &dir.path().join("zones")] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let served = serve(&file);
    let pid = served.child.id();
    eventually(Duration::from_secs(5), "the drop", || {
        served.log_contains("dropped root")
    });
    assert_eq!(
        ids(pid),
        ("65534 65534 65534".into(), "65534 65534 65534".into())
    );
    let ask = |name: &str| addresses(&udp_exchange(served.addr, &query(name, RecordType::A)));
    assert_eq!(
        ask("ping.priv.test."),
        ["127.0.0.1"],
        "ICMP checks still run"
    );

    // A reload after the drop, adding an ICMP check: it uses the socket opened as root.
    let zone_file = dir.path().join("zones/priv.yaml");
    std::fs::write(&zone_file, zone(&["ping", "pong"])).unwrap();
    std::fs::set_permissions(&zone_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(
        std::process::Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    eventually(Duration::from_secs(5), "the new name, checked", || {
        ask("pong.priv.test.") == ["127.0.0.1"]
    });
    assert!(!served.log_contains("cannot open an ICMP socket"));
}

#[test]
fn an_unknown_user_or_group_is_a_configuration_error() {
    for (extra, expect) in [
        (
            "user: no-such-user-here\n",
            "user: no user `no-such-user-here` on this system",
        ),
        (
            "user: nobody\ngroup: no-such-group\n",
            "group: no group `no-such-group` on this system",
        ),
        (
            "group: nogroup\n",
            "group: give the user to run as too (user:)",
        ),
    ] {
        let (_dir, file) = write_config_with(extra, &[("priv.yaml", &zone(&["ping"]))]);
        let (code, _, stderr) =
            run_meridian(&["check".as_ref(), "--config".as_ref(), file.as_ref()]);
        assert_eq!(code, Some(1), "{extra}");
        assert!(stderr.contains(expect), "{extra}: {stderr}");
    }
}
