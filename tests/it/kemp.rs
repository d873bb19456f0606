//! The rest of Kemp GEO's rows: manual recovery, a site's failure delay, flap accounting,
//! and the failover budget that `meridian check` computes.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::common::backend::{HttpBackend, TcpBackend, free_port};
use crate::common::*;
use hickory_proto::rr::RecordType;

const TOKEN: &str = "kemp-test-token-0123456789";

fn with_admin(file: &str, zone: &str) -> TestServer {
    let (dir, server) = write_config_with(
        &format!("admin: {{ listen: 127.0.0.1:0, token: {TOKEN} }}\n"),
        &[(file, zone)],
    );
    start_with(dir, &server)
}

fn first(s: &TestServer, name: &str) -> Option<String> {
    addresses(&s.ask(name, RecordType::A)).first().cloned()
}

fn status(s: &TestServer) -> serde_json::Value {
    serde_json::from_str(&http(s.admin(), "GET", "/status", None).1).unwrap()
}

#[test]
fn a_manual_recovery_member_stays_out_until_an_operator_recovers_it() {
    let port = free_port(ip("127.0.44.1"));
    let primary = TcpBackend::start(SocketAddr::new(ip("127.0.44.1"), port));
    let _backup = TcpBackend::start(SocketAddr::new(ip("127.0.44.2"), port));
    let zone = format!(
        "zone: r.test\nns: [ns1]\nfqdns:\n  app:\n    recovery: manual\n    check: {{ type: tcp, port: {port}, interval: 100ms, timeout: 80ms, rise: 1, fall: 1 }}\n    members:\n      - {{ address: 127.0.44.1, weight: 100 }}\n      - {{ address: 127.0.44.2, weight: 50 }}\n"
    );
    let s = with_admin("r.yaml", &zone);
    assert_eq!(first(&s, "app.r.test.").as_deref(), Some("127.0.44.1"));
    primary.stop();
    eventually(Duration::from_secs(2), "the backup to answer", || {
        first(&s, "app.r.test.").as_deref() == Some("127.0.44.2")
    });
    let _primary = TcpBackend::start(SocketAddr::new(ip("127.0.44.1"), port));
    // Its check passes again within a probe or two; it stays out all the same.
    eventually(
        Duration::from_secs(2),
        "the primary's check up again",
        || {
            let st = status(&s);
            status_member(&st, "app.r.test.", "127.0.44.1")["checks"][0]["up"] == true
        },
    );
    throughout(Duration::from_millis(500), || {
        assert_eq!(first(&s, "app.r.test.").as_deref(), Some("127.0.44.2"));
    });
    let st = status(&s);
    let held = status_member(&st, "app.r.test.", "127.0.44.1");
    assert_eq!(
        (held["held"].as_bool(), held["up"].as_bool()),
        (Some(true), Some(false)),
        "{held}"
    );
    let page = http(s.admin(), "GET", "/", None).1;
    assert!(
        page.contains("held down, waiting for an operator"),
        "{page}"
    );
    // Recovering needs the token, like every write.
    let (code, _) = http(
        s.admin(),
        "POST",
        "/members/app.r.test/127.0.44.1/recover",
        None,
    );
    assert_eq!(code, 401);
    let (code, body) = http(
        s.admin(),
        "POST",
        "/members/app.r.test/127.0.44.1/recover",
        Some(TOKEN),
    );
    assert_eq!(code, 200, "{body}");
    let reply: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (&reply["held"], &reply["up"]),
        (&false.into(), &true.into()),
        "{reply}"
    );
    assert_eq!(first(&s, "app.r.test.").as_deref(), Some("127.0.44.1"));
}

#[test]
fn a_site_is_down_only_after_failing_for_its_failure_delay() {
    let port = free_port(ip("127.0.44.11"));
    let lb = TcpBackend::start(SocketAddr::new(ip("127.0.44.11"), port));
    let zone = format!(
        "zone: d.test\nns: [ns1]\nsites:\n  a:\n    failure-delay: 1500ms\n    check: {{ type: tcp, address: 127.0.44.11, port: {port}, interval: 100ms, timeout: 80ms, rise: 1, fall: 1 }}\n  b: {{}}\nfqdns:\n  app:\n    members:\n      - {{ address: 127.0.44.12, weight: 100, site: a }}\n      - {{ address: 127.0.44.13, weight: 50, site: b }}\n"
    );
    let s = with_admin("d.yaml", &zone);
    assert_eq!(first(&s, "app.d.test.").as_deref(), Some("127.0.44.12"));
    lb.stop();
    let stopped = Instant::now();
    eventually(Duration::from_secs(4), "site b to answer", || {
        first(&s, "app.d.test.").as_deref() == Some("127.0.44.13")
    });
    let took = stopped.elapsed();
    println!("site a declared down {took:?} after its load balancer stopped");
    assert!(
        took >= Duration::from_millis(1500),
        "down after {took:?}, before the delay"
    );
}

#[test]
fn a_flapping_member_is_counted_and_flagged() {
    let port = free_port(ip("127.0.44.21"));
    let flappy = HttpBackend::start(SocketAddr::new(ip("127.0.44.21"), port), 200, None);
    let zone = format!(
        "zone: f.test\nns: [ns1]\nfqdns:\n  app:\n    check: {{ type: http, port: {port}, interval: 100ms, timeout: 80ms, rise: 1, fall: 1 }}\n    members: [{{ address: 127.0.44.21 }}]\n"
    );
    let s = with_admin("f.yaml", &zone);
    let st = status(&s);
    assert_eq!(
        status_member(&st, "app.f.test.", "127.0.44.21")["flapping"],
        false
    );
    flappy.set_flapping(true);
    eventually(
        Duration::from_secs(5),
        "the member flagged as flapping",
        || status_member(&status(&s), "app.f.test.", "127.0.44.21")["flapping"] == true,
    );
    let metrics = http(s.admin(), "GET", "/metrics", None).1;
    assert!(
        metrics.contains("meridian_member_flapping{name=\"app.f.test.\",member=\"127.0.44.21\"} 1"),
        "{metrics}"
    );
    let changes = metrics
        .lines()
        .find(|l| l.starts_with("meridian_member_state_changes_last_hour{name=\"app.f.test.\""))
        .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .unwrap();
    assert!(changes >= 6, "{changes}");
    let page = http(s.admin(), "GET", "/", None).1;
    assert!(page.contains(">flapping</span>"), "{page}");
}

#[test]
fn check_computes_the_failover_budget_and_fails_with_the_arithmetic() {
    let zone = |within: &str| {
        format!(
            "zone: b.test\nns: [ns1]\nfqdns:\n  vault:\n    ttl: 10\n    failover-within: {within}\n    check: {{ type: tcp, port: 8200, interval: 2s, timeout: 1s, fall: 2 }}\n    members: [{{ address: 192.0.2.1 }}]\n"
        )
    };
    let (dir, server) = write_config(&[("b.yaml", &zone("15s"))]);
    let (code, out, _) = run_meridian(&["check".as_ref(), "--config".as_ref(), server.as_os_str()]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("vault.b.test.: fails over within 13s at worst (failover-within: 15s): a member that fails just after a probe"),
        "{out}"
    );
    replace_file(&dir.path().join("zones/b.yaml"), &zone("8s"));
    let (code, _, err) = run_meridian(&["check".as_ref(), "--config".as_ref(), server.as_os_str()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("fqdns.vault.failover-within: the worst case is 13s, over 8s: a member that fails just after a probe is seen failing by the next, interval 2s + timeout 1s later, and an answer given just before is cached for ttl 10s (13s)"),
        "{err}"
    );
}

#[test]
fn check_warns_of_a_fail_closed_name_in_a_zone_with_a_long_negative_ttl() {
    let (_dir, server) = write_config(&[(
        "n.yaml",
        "zone: n.test\nns: [ns1]\nsoa: { minimum: 3600 }\nfqdns:\n  app:\n    when-all-down: none\n    members: [{ address: 192.0.2.1 }]\n",
    )]);
    let (code, _, err) = run_meridian(&["check".as_ref(), "--config".as_ref(), server.as_os_str()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("warning: ") && err.contains("fqdns.app.when-all-down: while no member is up this name answers NODATA; its SOA carries ttl 30s, but the zone's negative TTL (soa.minimum) is 3600s"),
        "{err}"
    );
}

#[test]
fn a_failover_is_timed_to_the_last_ttl_and_shown() {
    let port = free_port(ip("127.0.44.31"));
    let primary = TcpBackend::start(SocketAddr::new(ip("127.0.44.31"), port));
    let _backup = TcpBackend::start(SocketAddr::new(ip("127.0.44.32"), port));
    let zone = format!(
        "zone: t.test\nns: [ns1]\nfqdns:\n  app:\n    ttl: 5\n    check: {{ type: tcp, port: {port}, interval: 200ms, timeout: 150ms, rise: 2, fall: 2 }}\n    members:\n      - {{ address: 127.0.44.31, weight: 100 }}\n      - {{ address: 127.0.44.32, weight: 50 }}\n"
    );
    let s = with_admin("t.yaml", &zone);
    // A resolver takes the primary with the full TTL, just before it fails.
    let r = s.ask("app.t.test.", RecordType::A);
    assert_eq!(
        (addresses(&r)[0].as_str(), r.answers[0].ttl),
        ("127.0.44.31", 5)
    );
    let asked = Instant::now();
    primary.stop();
    eventually(Duration::from_secs(3), "the failover recorded", || {
        !status(&s)["transitions"].as_array().unwrap().is_empty()
    });
    let st = status(&s);
    let t = &st["transitions"][0];
    assert_eq!(
        (&t["name"], &t["member"]),
        (&"app.t.test.".into(), &"127.0.44.31".into()),
        "{t}"
    );
    let out = t["out_of_answers_s"].as_f64().unwrap();
    let expiry = t["until_ttl_expiry_s"].as_f64().unwrap();
    // One more failed probe after the first (fall 2), 200 ms apart; the last answer's
    // 5 s ran from before the first failure (placed at the end of the watcher's 250 ms
    // window, so up to that late).
    assert!((0.1..=1.0).contains(&out), "{t}");
    let elapsed_before_failure = asked.elapsed().as_secs_f64() - out;
    assert!(
        expiry <= 5.0 + 0.3 && expiry >= 5.0 - elapsed_before_failure - 1.0,
        "{t}"
    );
    assert!(expiry > out, "{t}");
    let page = http(s.admin(), "GET", "/", None).1;
    assert!(page.contains("<h2>Last failovers</h2>"), "{page}");
    let metrics = http(s.admin(), "GET", "/metrics", None).1;
    for until in ["out-of-answers", "ttl-expiry"] {
        let line =
            format!("meridian_failover_seconds_count{{name=\"app.t.test.\",until=\"{until}\"}} 1");
        assert!(metrics.contains(&line), "no {line} in\n{metrics}");
    }
    let why: serde_json::Value = serde_json::from_str(
        &http(
            s.admin(),
            "GET",
            "/explain?name=app.t.test&type=A&client=127.0.0.1",
            None,
        )
        .1,
    )
    .unwrap();
    assert_eq!(why["transitions"][0]["member"], "127.0.44.31", "{why}");
}

#[test]
fn a_sticky_client_keeps_its_member_while_it_is_up() {
    let members = ["127.0.44.41", "127.0.44.42", "127.0.44.43"];
    let port = free_port(ip(members[0]));
    let mut backends: Vec<Option<TcpBackend>> = members
        .iter()
        .map(|m| Some(TcpBackend::start(SocketAddr::new(ip(m), port))))
        .collect();
    let zone = format!(
        "zone: s.test\nns: [ns1]\nfqdns:\n  app:\n    selection: round-robin\n    sticky: 300s\n    check: {{ type: tcp, port: {port}, interval: 100ms, timeout: 80ms, rise: 1, fall: 1 }}\n    members: [{{ address: 127.0.44.41 }}, {{ address: 127.0.44.42 }}, {{ address: 127.0.44.43 }}]\n  plain:\n    selection: round-robin\n    members: [{{ address: 127.0.44.41 }}, {{ address: 127.0.44.42 }}, {{ address: 127.0.44.43 }}]\n"
    );
    let s = with_admin("s.yaml", &zone);
    let ask_from = |src: &str, name: &str| {
        addresses(&udp_exchange_from(
            ip(src),
            s.addr,
            &query(name, RecordType::A),
        ))[0]
            .clone()
    };
    let got =
        |src: &str, name: &str| -> Vec<String> { (0..6).map(|_| ask_from(src, name)).collect() };
    // Without stickiness the rotation moves on each time; with it, one member per client.
    let plain = got("127.0.50.1", "plain.s.test.");
    assert!(plain.windows(2).any(|w| w[0] != w[1]), "{plain:?}");
    let a = got("127.0.50.1", "app.s.test.");
    assert!(a.iter().all(|m| *m == a[0]), "{a:?}");
    let a_neighbour = got("127.0.50.200", "app.s.test.");
    assert!(
        a_neighbour.iter().all(|m| *m == a[0]),
        "the same /24: {a_neighbour:?}"
    );
    let others: Vec<String> = (51..60)
        .map(|n| ask_from(&format!("127.0.{n}.1"), "app.s.test."))
        .collect();
    assert!(
        others.iter().any(|m| *m != a[0]),
        "other clients spread: {others:?}"
    );
    // Its member goes down: the client moves, and sticks to the new one.
    let i = members.iter().position(|m| *m == a[0]).unwrap();
    backends[i].take().unwrap().stop();
    eventually(Duration::from_secs(2), "the client to move", || {
        ask_from("127.0.50.1", "app.s.test.") != a[0]
    });
    let moved = got("127.0.50.1", "app.s.test.");
    assert!(
        moved.iter().all(|m| *m == moved[0] && *m != a[0]),
        "{moved:?}"
    );
    let metrics = http(s.admin(), "GET", "/metrics", None).1;
    let entries: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("meridian_sticky_entries "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(
        entries >= 10,
        "{entries}: client 127.0.50/24 and nine others"
    );
}

#[test]
fn a_drain_says_when_it_is_safe_and_who_has_not_come_back() {
    let admin = SocketAddr::new(ip("127.0.0.1"), free_port(ip("127.0.0.1")));
    let zone = "zone: dr.test\nns: [ns1]\nfqdns:\n  app:\n    ttl: 2\n    members:\n      - { address: 127.0.44.51, weight: 100 }\n      - { address: 127.0.44.52, weight: 50 }\n";
    let (dir, file) = write_config_with(
        &format!("admin: {{ listen: {admin}, token: {TOKEN} }}\n"),
        &[("dr.yaml", zone)],
    );
    let s = start_with(dir, &file);
    let ask_from = |src: &str| {
        addresses(&udp_exchange_from(
            ip(src),
            s.addr,
            &query("app.dr.test.", RecordType::A),
        ))[0]
            .clone()
    };
    assert_eq!(ask_from("127.0.62.1"), "127.0.44.51");
    assert_eq!(ask_from("127.0.63.1"), "127.0.44.51");
    let drain = |extra: &[&str]| {
        let mut args: Vec<&std::ffi::OsStr> = vec![
            "drain".as_ref(),
            "app.dr.test".as_ref(),
            "127.0.44.51".as_ref(),
        ];
        args.extend(extra.iter().map(|a| std::ffi::OsStr::new(*a)));
        args.extend(["--config".as_ref(), file.as_os_str()]);
        run_meridian(&args)
    };
    let (code, out, err) = drain(&[]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(
        out.trim(),
        "app.dr.test. 127.0.44.51: draining, TTL 2s not passed yet, 0 of 2 resolvers asked again; waiting for 127.0.62.1, 127.0.63.1"
    );
    assert_eq!(ask_from("127.0.62.1"), "127.0.44.52", "out of answers");
    // One resolver never asks again: the TTL passes, and the drain is still not safe.
    let started = Instant::now();
    let (code, out, _) = drain(&["--wait", "--timeout", "3s"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(started.elapsed() >= Duration::from_secs(3));
    assert!(
        out.lines().last().unwrap().ends_with(
            "draining, TTL 2s passed, 1 of 2 resolvers asked again; waiting for 127.0.63.1"
        ),
        "{out}"
    );
    ask_from("127.0.63.1");
    let (code, out, _) = drain(&["--wait", "--timeout", "5s"]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(
        out.trim(),
        "app.dr.test. 127.0.44.51: safe to stop (TTL 2s passed, 2 of 2 resolvers asked again)"
    );
    let metrics = http(s.admin(), "GET", "/metrics", None).1;
    assert!(
        metrics
            .contains("meridian_member_drain_safe{name=\"app.dr.test.\",member=\"127.0.44.51\"} 1"),
        "{metrics}"
    );
    let page = http(s.admin(), "GET", "/", None).1;
    assert!(page.contains("drained: safe to stop"), "{page}");
    let (code, _) = http(
        s.admin(),
        "POST",
        "/members/app.dr.test/127.0.44.51/enable",
        Some(TOKEN),
    );
    assert_eq!(code, 200);
    assert_eq!(ask_from("127.0.62.1"), "127.0.44.51", "back in answers");
    let (code, _) = http(
        s.admin(),
        "GET",
        "/members/app.dr.test/127.0.44.51/drain",
        None,
    );
    assert_eq!(code, 409, "no longer draining");
}
