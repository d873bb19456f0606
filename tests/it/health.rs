//! Health checks against real backends on 127.x: the answer follows the checkers.

use std::net::SocketAddr;
use std::time::Duration;

use crate::common::backend::{HttpBackend, TcpBackend, TestTls, free_port};
use crate::common::netns::NetnsHost;
use crate::common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

/// Polls `name` until its first A answer is `want`; returns how long that took.
fn wait_for(s: &TestServer, name: &str, want: &str, limit: Duration) -> Duration {
    eventually(limit, &format!("{name} to answer {want}"), || {
        addresses(&s.ask(name, RecordType::A))
            .first()
            .map(String::as_str)
            == Some(want)
    })
}

/// The longest a state change may take to show: the change can land just after a probe,
/// then `count` more probes decide it; plus scheduling slack.
fn within(count: u32, interval: Duration) -> Duration {
    interval * (count + 1) + Duration::from_millis(400)
}

const INTERVAL: Duration = Duration::from_millis(200);

#[test]
fn fixed_weight_follows_tcp_listeners_closed_mid_test() {
    let port = free_port(ip("127.0.3.1"));
    let primary = TcpBackend::start(SocketAddr::new(ip("127.0.3.1"), port));
    let _backup = TcpBackend::start(SocketAddr::new(ip("127.0.3.2"), port));
    let zone = format!(
        "zone: tcp.test\nns: [ns1]\nfqdns:\n  app:\n    ttl: 10\n    check: {{ type: tcp, port: {port}, interval: 200ms, timeout: 100ms, rise: 2, fall: 2 }}\n    members:\n      - {{ address: 127.0.3.1, weight: 100 }}\n      - {{ address: 127.0.3.2, weight: 50 }}\n"
    );
    let s = start(&[("tcp.yaml", &zone)]);
    let first = s.ask("app.tcp.test.", RecordType::A);
    assert_eq!(addresses(&first), ["127.0.3.1"]);
    assert_eq!(
        first.answers[0].ttl, 10,
        "all up and stable: the name's TTL"
    );

    primary.stop();
    let took = wait_for(&s, "app.tcp.test.", "127.0.3.2", within(2, INTERVAL));
    println!("failover after the listener closed: {took:?}");
    // While the primary is down, answers are cached no longer than until it could return.
    let during = s.ask("app.tcp.test.", RecordType::A);
    assert_eq!(
        during.answers[0].ttl, 1,
        "rise x interval = 400ms, rounded up to the 1 s minimum"
    );

    let _primary = TcpBackend::start(SocketAddr::new(ip("127.0.3.1"), port));
    let took = wait_for(&s, "app.tcp.test.", "127.0.3.1", within(2, INTERVAL));
    println!("failback after the listener returned: {took:?}");
}

fn http_zone(zone: &str, port: u16, extra: &str, members: &[&str]) -> String {
    let members: String = members
        .iter()
        .map(|m| format!("      - {{ address: {m} }}\n"))
        .collect();
    format!(
        "zone: {zone}\nns: [ns1]\nfqdns:\n  vault:\n    selection: fixed-weight\n    check: {{ port: {port}, path: /v1/sys/health, expect: [200], interval: 200ms, timeout: 150ms, rise: 2, fall: 2{extra} }}\n    members:\n{members}"
    )
}

#[test]
fn http_check_follows_the_node_that_answers_200() {
    let port = free_port(ip("127.0.3.11"));
    let a = HttpBackend::start(SocketAddr::new(ip("127.0.3.11"), port), 200, None);
    let b = HttpBackend::start(SocketAddr::new(ip("127.0.3.12"), port), 429, None);
    let zone = http_zone(
        "http.test",
        port,
        ", type: http",
        &["127.0.3.11", "127.0.3.12"],
    );
    let s = start(&[("http.yaml", &zone)]);
    assert_eq!(
        addresses(&s.ask("vault.http.test.", RecordType::A)),
        ["127.0.3.11"]
    );
    let probes = s.running().meridian.registry.all();
    let b_probe = probes
        .iter()
        .find(|p| p.key.address == ip("127.0.3.12"))
        .unwrap();
    assert_eq!(b_probe.detail().last.unwrap().reason, "status 429");

    a.set_status(429);
    b.set_status(200);
    let took = wait_for(&s, "vault.http.test.", "127.0.3.12", within(2, INTERVAL));
    println!("HTTP 200 moved, answer followed in {took:?}");
    a.set_status(200);
    b.set_status(429);
    wait_for(&s, "vault.http.test.", "127.0.3.11", within(2, INTERVAL));
    assert!(a.requests.load(std::sync::atomic::Ordering::SeqCst) >= 3);
}

#[test]
fn https_check_verifies_the_test_ca_and_follows_200() {
    let tls = TestTls::new("vault.https.test");
    let port = free_port(ip("127.0.3.13"));
    let a = HttpBackend::start(SocketAddr::new(ip("127.0.3.13"), port), 200, Some(&tls));
    let b = HttpBackend::start(SocketAddr::new(ip("127.0.3.14"), port), 429, Some(&tls));
    let zone = http_zone(
        "https.test",
        port,
        ", type: https, host: vault.https.test, ca: ca.pem",
        &["127.0.3.13", "127.0.3.14"],
    );
    let (dir, file) = write_config(&[("https.yaml", &zone)]);
    std::fs::write(dir.path().join("zones/ca.pem"), &tls.ca_pem).unwrap();
    let s = start_with(dir, &file);
    assert_eq!(
        addresses(&s.ask("vault.https.test.", RecordType::A)),
        ["127.0.3.13"]
    );
    a.set_status(429);
    b.set_status(200);
    let took = wait_for(&s, "vault.https.test.", "127.0.3.14", within(2, INTERVAL));
    println!("HTTPS 200 moved, answer followed in {took:?}");
}

#[test]
fn an_https_check_presents_its_client_certificate_to_a_server_that_requires_one() {
    let tls = TestTls::requiring_client_cert("vault.mtls.test");
    let port = free_port(ip("127.0.3.16"));
    let _a = HttpBackend::start(SocketAddr::new(ip("127.0.3.16"), port), 200, Some(&tls));
    let check = |extra: &str| {
        format!("{{ type: https, port: {port}, host: vault.mtls.test, ca: ca.pem{extra} }}")
    };
    let zone = format!(
        "zone: mtls.test\nns: [ns1]\nfqdns:\n  with:\n    check: {}\n    members: [{{ address: 127.0.3.16 }}]\n  without:\n    check: {}\n    members: [{{ address: 127.0.3.16 }}]\n",
        check(", client-cert: client.pem, client-key: client-key.pem"),
        check("")
    );
    let (dir, file) = write_config(&[("mtls.yaml", &zone)]);
    for (name, pem) in [
        ("ca.pem", &tls.ca_pem),
        ("client.pem", &tls.client_cert_pem),
        ("client-key.pem", &tls.client_key_pem),
    ] {
        std::fs::write(dir.path().join("zones").join(name), pem).unwrap();
    }
    let s = start_with(dir, &file);
    let probes = s.running().meridian.registry.all();
    let probe = |user: &str| {
        probes
            .iter()
            .find(|p| p.users()[0].starts_with(user))
            .unwrap()
    };
    let with = probe("with.");
    assert!(with.is_up(), "{:?}", with.detail());
    let without = probe("without.");
    assert!(!without.is_up());
    let reason = without.detail().last.unwrap().reason;
    assert!(
        !reason.starts_with("status"),
        "refused at the handshake: {reason}"
    );
}

#[test]
fn https_check_without_the_ca_fails_verification_unless_disabled() {
    let tls = TestTls::new("vault.tls.test");
    let port = free_port(ip("127.0.3.15"));
    let _a = HttpBackend::start(SocketAddr::new(ip("127.0.3.15"), port), 200, Some(&tls));
    let zone = format!(
        "zone: tls.test\nns: [ns1]\nfqdns:\n  strict:\n    check: {{ type: https, port: {port}, host: vault.tls.test }}\n    members: [{{ address: 127.0.3.15 }}]\n  lax:\n    check: {{ type: https, port: {port}, tls-verify: false }}\n    members: [{{ address: 127.0.3.15 }}]\n"
    );
    let s = start(&[("tls.yaml", &zone)]);
    let probes = s.running().meridian.registry.all();
    let strict = probes
        .iter()
        .find(|p| p.key.to_string().contains("https") && p.users()[0].starts_with("strict"))
        .unwrap();
    let lax = probes
        .iter()
        .find(|p| p.users()[0].starts_with("lax"))
        .unwrap();
    let reason = strict.detail().last.unwrap().reason;
    assert!(!strict.is_up());
    assert!(
        reason.starts_with("TLS") && reason.contains("UnknownIssuer"),
        "{reason}"
    );
    assert!(lax.is_up(), "{:?}", lax.detail());
}

#[test]
fn vault_step_down_moves_the_cluster_name_to_the_new_leader() {
    let port = free_port(ip("127.0.1.1"));
    let nodes: Vec<HttpBackend> = ["127.0.1.1", "127.0.1.2", "127.0.1.3"]
        .iter()
        .enumerate()
        .map(|(i, a)| {
            HttpBackend::start(
                SocketAddr::new(ip(a), port),
                if i == 0 { 200 } else { 429 },
                None,
            )
        })
        .collect();
    let zone = http_zone(
        "kemp.local",
        port,
        ", type: http",
        &["127.0.1.1", "127.0.1.2", "127.0.1.3"],
    );
    let s = start(&[("kemp.local.yaml", &zone)]);
    assert_eq!(
        addresses(&s.ask("vault.kemp.local.", RecordType::A)),
        ["127.0.1.1"]
    );
    // `vault operator step-down`: the leader becomes a standby, another node takes over.
    for leader in [1, 2, 0] {
        for (i, n) in nodes.iter().enumerate() {
            n.set_status(if i == leader { 200 } else { 429 });
        }
        let want = format!("127.0.1.{}", leader + 1);
        let took = wait_for(&s, "vault.kemp.local.", &want, within(2, INTERVAL));
        println!("leader moved to {want}: DNS followed in {took:?}");
    }
}

#[test]
fn flapping_backend_is_held_by_rise_and_fall() {
    let port = free_port(ip("127.0.3.21"));
    let flappy = HttpBackend::start(SocketAddr::new(ip("127.0.3.21"), port), 200, None);
    let _steady = HttpBackend::start(SocketAddr::new(ip("127.0.3.22"), port), 200, None);
    let zone = format!(
        "zone: flap.test\nns: [ns1]\nfqdns:\n  app:\n    check: {{ type: http, port: {port}, interval: 100ms, timeout: 80ms, rise: 3, fall: 3 }}\n    members:\n      - {{ address: 127.0.3.21, weight: 100 }}\n      - {{ address: 127.0.3.22, weight: 50 }}\n"
    );
    let s = start(&[("flap.yaml", &zone)]);
    let hold = |want: &str| {
        throughout(Duration::from_millis(1500), || {
            assert_eq!(addresses(&s.ask("app.flap.test.", RecordType::A)), [want]);
        })
    };
    // Up, then every other probe fails: never three failures in a row, so it stays up.
    flappy.set_flapping(true);
    hold("127.0.3.21");
    // Failing for good: down after three failures.
    flappy.set_flapping(false);
    flappy.set_status(503);
    wait_for(
        &s,
        "app.flap.test.",
        "127.0.3.22",
        within(3, Duration::from_millis(100)),
    );
    // Flapping again: never three successes in a row, so it stays down.
    flappy.set_status(200);
    flappy.set_flapping(true);
    hold("127.0.3.22");
    let probes = s.running().meridian.registry.all();
    let p = probes
        .iter()
        .find(|p| p.key.address == ip("127.0.3.21"))
        .unwrap();
    assert_eq!(p.detail().state_changes, 1, "one change: up -> down");
}

#[test]
fn when_all_down_with_real_checks() {
    // Nothing listens on this port on these addresses: every probe is refused.
    let port = free_port(ip("127.0.3.31"));
    let zone = format!(
        "zone: down.test\nns: [ns1]\nfqdns:\n  closed:\n    ttl: 20\n    when-all-down: none\n    check: {{ type: tcp, port: {port}, interval: 1s }}\n    members: [{{ address: 127.0.3.31 }}, {{ address: 127.0.3.32 }}]\n  open:\n    ttl: 20\n    when-all-down: all\n    check: {{ type: tcp, port: {port}, interval: 1s }}\n    members: [{{ address: 127.0.3.31 }}, {{ address: 127.0.3.32, weight: 3 }}]\n"
    );
    let s = start(&[("down.yaml", &zone)]);
    let closed = s.ask("closed.down.test.", RecordType::A);
    assert_rcode(&closed, ResponseCode::NoError);
    assert!(closed.answers.is_empty());
    assert_eq!(closed.authorities[0].ttl, 20);
    let open = s.ask("open.down.test.", RecordType::A);
    assert_eq!(
        addresses(&open),
        ["127.0.3.32"],
        "fail open: the heaviest member"
    );
    assert!(
        open.answers[0].ttl <= 2,
        "rise 2 x 1s: {}",
        open.answers[0].ttl
    );
}

#[test]
fn icmp_up_for_reachable_hosts_and_down_for_a_removed_one() {
    let host = NetnsHost::create("i", 77);
    let netns_peer = host.far();
    let zone = format!(
        "zone: icmp.test\nns: [ns1]\nfqdns:\n  app:\n    check: {{ type: icmp, interval: 200ms, timeout: 150ms, rise: 2, fall: 2 }}\n    members:\n      - {{ address: {netns_peer}, weight: 100 }}\n      - {{ address: 127.0.4.1, weight: 50 }}\n      - {{ address: \"::1\" }}\n"
    );
    {
        let s = start(&[("icmp.yaml", &zone)]);
        assert_eq!(
            addresses(&s.ask("app.icmp.test.", RecordType::A)),
            [netns_peer.as_str()]
        );
        assert_eq!(
            addresses(&s.ask("app.icmp.test.", RecordType::AAAA)),
            ["::1"]
        );
        let probes = s.running().meridian.registry.all();
        assert!(
            probes.iter().all(|p| p.is_up()),
            "every address answers echo"
        );

        host.remove();
        let took = wait_for(&s, "app.icmp.test.", "127.0.4.1", within(2, INTERVAL));
        println!("ICMP: host removed, answer moved in {took:?}");
        let gone = probes
            .iter()
            .find(|p| p.key.address == ip(&netns_peer))
            .unwrap();
        assert!(!gone.is_up());
        println!("reason: {}", gone.detail().last.unwrap().reason);
        let local = probes
            .iter()
            .find(|p| p.key.address == ip("127.0.4.1"))
            .unwrap();
        assert!(local.is_up());
    }
}

#[test]
fn site_checks_several_checks_per_member_and_shared_probes() {
    let port = free_port(ip("127.0.3.41"));
    let lb = TcpBackend::start(SocketAddr::new(ip("127.0.3.41"), port));
    let listeners: Vec<TcpBackend> = ["127.0.3.42", "127.0.3.43", "127.0.3.44", "127.0.3.45"]
        .iter()
        .map(|a| TcpBackend::start(SocketAddr::new(ip(a), port)))
        .collect();
    let check =
        format!("{{ type: tcp, port: {port}, interval: 200ms, timeout: 100ms, rise: 1, fall: 1 }}");
    let zone = format!(
        "zone: site.test\nns: [ns1]\nsites:\n  a: {{ check: {{ type: tcp, address: 127.0.3.41, port: {port}, interval: 200ms, timeout: 100ms, rise: 1, fall: 1 }} }}\n  b: {{}}\nfqdns:\n  app:\n    check: {check}\n    members:\n      - {{ address: 127.0.3.42, weight: 100, site: a }}\n      - {{ address: 127.0.3.43, weight: 90, site: a }}\n      - {{ address: 127.0.3.44, weight: 50, site: b }}\n  other:\n    check: {check}\n    members: [{{ address: 127.0.3.42 }}]\n  both:\n    checks: [{{ type: icmp, interval: 200ms, timeout: 100ms }}, {check}]\n    members:\n      - {{ address: 127.0.3.45, weight: 100 }}\n      - {{ address: 127.0.3.44, weight: 50 }}\n"
    );
    let s = start(&[("site.yaml", &zone)]);
    // app and other share the probe of 127.0.3.42; the site check is one more probe.
    let probes = s.running().meridian.registry.all();
    let shared = probes
        .iter()
        .find(|p| p.key.address == ip("127.0.3.42"))
        .unwrap();
    assert_eq!(shared.users().len(), 2, "{:?}", shared.users());
    assert_eq!(
        probes.len(),
        1 + 4 + 2,
        "site, four tcp probes, icmp for .44 and .45"
    );
    assert_eq!(
        addresses(&s.ask("app.site.test.", RecordType::A)),
        ["127.0.3.42"]
    );
    assert_eq!(
        addresses(&s.ask("both.site.test.", RecordType::A)),
        ["127.0.3.45"]
    );

    // The site's load balancer fails: every member on site a is down at once.
    lb.stop();
    wait_for(&s, "app.site.test.", "127.0.3.44", within(1, INTERVAL));
    // `other` has no site: its member stays up.
    assert_eq!(
        addresses(&s.ask("other.site.test.", RecordType::A)),
        ["127.0.3.42"]
    );

    // ICMP still answers, but the TCP check fails: with several checks, all must pass.
    let mut listeners = listeners;
    listeners.pop().unwrap().stop();
    wait_for(&s, "both.site.test.", "127.0.3.44", within(1, INTERVAL));
}
