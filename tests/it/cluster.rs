//! Health by quorum: three servers on one machine, one of them in a network namespace of
//! the test's own, so that each backend is seen by some of them only.
//!
//! - X listens in the root namespace: A and B see it up, C (in the namespace) cannot
//!   reach it.
//! - Y is C's own DNS listener on the namespace's loopback: only C sees it up.
//!
//! Six names, X and Y each under `quorum: any`, `majority` and `all`, show the three
//! rules; cutting C off, killing B and bringing it back with other zones show the rest.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hickory_proto::rr::RecordType;

use crate::common::backend::{TcpBackend, free_port};
use crate::common::netns::NetnsHost;
use crate::common::*;

const KEY: &str = "cluster key of the test, 32 characters or more";
const TOKEN: &str = "admin token of the cluster test";
const X: &str = "127.0.98.10";
const Y: &str = "127.0.98.11";

struct Fleet {
    host: NetnsHost,
    _x: TcpBackend,
    dir: tempfile::TempDir,
    a: Served,
    b: Option<Served>,
    c: Served,
    /// Admin addresses of A, B and C.
    admin: [SocketAddr; 3],
    /// The gossip addresses of A and B (this side) and of C (the namespace's).
    gossip_near: String,
    gossip_far: String,
}

fn zone(x_port: u16, extra: &str) -> String {
    let mut z =
        format!("zone: q.test\nns: [ns1]\nrecords:\n  ns1: {{ A: 192.0.2.53 }}\n{extra}fqdns:\n");
    for (target, address, port) in [("x", X, x_port), ("y", Y, 5353)] {
        for quorum in ["any", "majority", "all"] {
            z.push_str(&format!(
                "  {target}-{quorum}:\n    quorum: {quorum}\n    when-all-down: none\n    check: {{ type: tcp, port: {port}, interval: 300ms, timeout: 200ms, rise: 1, fall: 1 }}\n    members: [{{ address: {address} }}]\n"
            ));
        }
    }
    z
}

/// A server's directory: its server file and zone.
fn server_dir(root: &Path, name: &str, server: &str, zone: &str) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(dir.join("zones")).unwrap();
    std::fs::write(dir.join("zones/q.yaml"), zone).unwrap();
    std::fs::write(dir.join("meridian.yaml"), server).unwrap();
    dir.join("meridian.yaml")
}

fn server_file(listen: &str, admin: SocketAddr, gossip: &str, peers: &[String]) -> String {
    format!(
        "listen: [{listen}]\nzones: zones\nadmin: {{ listen: \"{admin}\", token: \"{TOKEN}\" }}\ncluster:\n  listen: {gossip}\n  peers: [{}]\n  key: \"{KEY}\"\n",
        peers.join(", ")
    )
}

impl Fleet {
    /// A, B and C, with subnet `subnet` of 169.254.0.0/16 for the namespace.
    fn start(tag: &str, subnet: u8) -> Fleet {
        let host = NetnsHost::create(tag, subnet);
        // Queries and admin requests go between .1 and .2; gossip between .3 and .4, so
        // that cutting gossip leaves C reachable for the test.
        let gossip_near = host.add_address(3, false);
        let gossip_far = host.add_address(4, true);
        let x_port = free_port(ip(X));
        let x = TcpBackend::start(SocketAddr::new(ip(X), x_port));
        let dir = tempfile::tempdir().unwrap();
        let near_ip = ip(&gossip_near);
        let (pa, pb) = (free_port(near_ip), free_port(near_ip));
        let gossip = [
            format!("{gossip_near}:{pa}"),
            format!("{gossip_near}:{pb}"),
            format!("{gossip_far}:5400"),
        ];
        let others = |i: usize| -> Vec<String> {
            (0..3)
                .filter(|&j| j != i)
                .map(|j| gossip[j].clone())
                .collect()
        };
        let admin = [
            SocketAddr::new(ip("127.0.98.1"), free_port(ip("127.0.98.1"))),
            SocketAddr::new(ip("127.0.98.2"), free_port(ip("127.0.98.2"))),
            format!("{}:9153", host.far()).parse().unwrap(),
        ];
        let z = zone(x_port, "");
        let fa = server_dir(
            dir.path(),
            "a",
            &server_file("127.0.98.1:0", admin[0], &gossip[0], &others(0)),
            &z,
        );
        let fb = server_dir(
            dir.path(),
            "b",
            &server_file("127.0.98.2:0", admin[1], &gossip[1], &others(1)),
            &z,
        );
        // C answers on the namespace's veth address and on Y, its loopback.
        let c_listen = format!("{}:5353, {Y}:5353", host.far());
        let fc = server_dir(
            dir.path(),
            "c",
            &server_file(&c_listen, admin[2], &gossip[2], &others(2)),
            &z,
        );
        let c = serve_command(host.command(env!("CARGO_BIN_EXE_meridian")), &fc);
        let a = serve(&fa);
        let b = serve(&fb);
        Fleet {
            host,
            _x: x,
            dir,
            a,
            b: Some(b),
            c,
            admin,
            gossip_near,
            gossip_far,
        }
    }

    fn dns(&self, i: usize) -> SocketAddr {
        match i {
            0 => self.a.addr,
            1 => self.b.as_ref().expect("B runs").addr,
            _ => self.c.addr,
        }
    }

    fn answer(&self, i: usize, name: &str) -> Vec<String> {
        let q = query(&format!("{name}.q.test."), RecordType::A);
        // C is reached over the veth, from this side's address.
        let source = if i == 2 {
            ip(&self.host.near())
        } else {
            ip("127.0.0.1")
        };
        addresses(&udp_exchange_from(source, self.dns(i), &q))
    }

    fn status(&self, i: usize) -> serde_json::Value {
        let (code, body) = http(self.admin[i], "GET", "/status", None);
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    fn metrics(&self, i: usize) -> String {
        http(self.admin[i], "GET", "/metrics", None).1
    }

    /// Waits until every server in `servers` answers each name as `want` says (the
    /// member, or nothing).
    fn expect(&self, servers: &[usize], want: &[(&str, bool)], what: &str) {
        eventually(Duration::from_secs(20), what, || {
            servers.iter().all(|&i| {
                want.iter().all(|(name, up)| {
                    let member = if name.starts_with('x') { X } else { Y };
                    let got = self.answer(i, name);
                    got == if *up {
                        vec![member.to_string()]
                    } else {
                        Vec::new()
                    }
                })
            })
        });
    }

    /// Server `i`'s status of the one check of `name` (say `x-any`).
    fn check(&self, i: usize, name: &str) -> serde_json::Value {
        let s = self.status(i);
        let n = s["names"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == format!("{name}.q.test."))
            .unwrap_or_else(|| panic!("no {name} in {s}"));
        n["members"][0]["checks"][0].clone()
    }

    fn live_peers(&self, i: usize) -> usize {
        self.status(i)["cluster"]["peers"].as_array().unwrap().len()
    }

    /// Waits until each server counts `peers` views beside its own for every probe.
    fn wait_counted(&self, servers: &[usize], peers: usize) -> Duration {
        eventually(Duration::from_secs(20), "every view counted", || {
            servers.iter().all(|&i| {
                let s = self.status(i);
                s["cluster"]["peers"].as_array().unwrap().len() == peers
                    && s["names"].as_array().unwrap().iter().all(|n| {
                        n["members"][0]["checks"][0]["quorum"]["peers"]
                            .as_array()
                            .is_some_and(|v| v.len() == peers)
                    })
            })
        })
    }
}

/// What every server answers with all three live: X is seen down by C alone, Y up by C
/// alone.
const ALL_THREE: &[(&str, bool)] = &[
    ("x-any", false),
    ("x-majority", true),
    ("x-all", true),
    ("y-any", false),
    ("y-majority", false),
    ("y-all", true),
];

#[test]
fn any_majority_and_all_decide_alike_everywhere_and_a_cut_off_server_falls_back_to_its_own_view() {
    let f = Fleet::start("q", 79);
    let took = f.wait_counted(&[0, 1, 2], 2);
    println!("all views counted on every server {took:?} after the last started");
    f.expect(
        &[0, 1, 2],
        ALL_THREE,
        "the cluster's decisions on every server",
    );

    // What status and metrics say of one decision, on A: its own view is up, C's down.
    let check = |name: &str| f.check(0, name);
    let x_any = check("x-any");
    assert_eq!(x_any["up"], false, "{x_any}");
    assert_eq!(x_any["quorum"]["rule"], "any");
    assert_eq!(x_any["quorum"]["seen_up"], true, "A reaches X itself");
    assert_eq!(
        x_any["quorum"]["why"],
        "1 of 3 vantage points see it down; any: down"
    );
    let far = format!("{}:5400", f.gossip_far);
    let c_view = x_any["quorum"]["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["peer"] == far.as_str())
        .unwrap();
    assert_eq!(c_view["up"], false, "C cannot reach X");
    assert_eq!(
        check("y-majority")["quorum"]["why"],
        "2 of 3 vantage points see it down; majority: down"
    );
    let s = f.status(0);
    assert_eq!(s["cluster"]["isolated"], false);
    assert_eq!(s["cluster"]["config_mismatch"], 0);
    let metrics = f.metrics(0);
    for line in [
        "meridian_cluster_peers 2".to_string(),
        "meridian_cluster_isolated 0".to_string(),
        "meridian_cluster_config_mismatch 0".to_string(),
        format!(
            "meridian_probe_peer_up{{probe=\"{}\",peer=\"{far}\"}} 0",
            x_any["probe"].as_str().unwrap()
        ),
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing `{line}` in\n{metrics}"
        );
    }
    // Explain gives the same account for one query.
    let (_, explain) = http(
        f.admin[2],
        "GET",
        "/explain?name=x-majority.q.test&type=A",
        None,
    );
    let e: serde_json::Value = serde_json::from_str(&explain).unwrap();
    assert_eq!(
        e["members"][0]["checks"][0]["quorum"]["why"],
        "1 of 3 vantage points see it down; majority: up",
        "{e}"
    );
    assert_eq!(
        e["answer"][0], X,
        "C answers X, which it cannot reach itself"
    );

    // C is cut off: it falls back to its own view and says so; A and B count two.
    f.host.cut(&f.gossip_near, &f.gossip_far);
    eventually(Duration::from_secs(20), "C to see itself cut off", || {
        f.status(2)["cluster"]["isolated"] == true
    });
    assert!(
        f.metrics(2)
            .lines()
            .any(|l| l == "meridian_cluster_isolated 1")
    );
    let own_view_of_c = &[
        ("x-any", false),
        ("x-majority", false),
        ("x-all", false),
        ("y-any", true),
        ("y-majority", true),
        ("y-all", true),
    ];
    f.expect(&[2], own_view_of_c, "C deciding by its own probes");
    let two_in_root = &[
        ("x-any", true),
        ("x-majority", true),
        ("x-all", true),
        ("y-any", false),
        ("y-majority", false),
        ("y-all", false),
    ];
    f.expect(&[0, 1], two_in_root, "A and B deciding between them");
    assert!(
        f.status(0)["cluster"]["unreachable"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == far.as_str())
    );

    // The cut mends: C rejoins, and every server decides with all three again.
    f.host.mend(&f.gossip_near, &f.gossip_far);
    eventually(Duration::from_secs(20), "C to rejoin", || {
        (0..3).all(|i| f.live_peers(i) == 2)
    });
    f.expect(&[0, 1, 2], ALL_THREE, "all three deciding again");
}

#[test]
fn a_peer_that_dies_drops_out_of_the_count_and_one_serving_other_zones_is_reported() {
    let mut f = Fleet::start("d", 80);
    f.wait_counted(&[0, 1, 2], 2);
    f.expect(&[0, 1, 2], ALL_THREE, "the cluster's decisions");

    // B dies: after the failure detector's timeout, A and C count two vantage points.
    // X: A up, C down; a tie under majority keeps the state it had (up).
    drop(f.b.take());
    eventually(Duration::from_secs(20), "B to drop out", || {
        f.live_peers(0) == 1 && f.live_peers(2) == 1
    });
    // The same answers as with three: any sees C's down, all sees C's up, and majority's
    // tie leaves each state as it was.
    f.expect(&[0, 2], ALL_THREE, "A and C deciding between them");
    assert_eq!(
        f.check(0, "x-majority")["quorum"]["why"],
        "1 of 2 vantage points see it down; majority: up (a tie keeps the state)"
    );

    // B comes back serving other zone files: it counts again, and the mismatch shows.
    let fb = f.dir.path().join("b/meridian.yaml");
    let zone_b = f.dir.path().join("b/zones/q.yaml");
    let text = std::fs::read_to_string(&zone_b).unwrap();
    std::fs::write(
        &zone_b,
        text.replace("ns1: { A: 192.0.2.53 }", "ns1: { A: 192.0.2.54 }"),
    )
    .unwrap();
    f.b = Some(serve(&fb));
    eventually(Duration::from_secs(20), "B to rejoin", || {
        (0..3).all(|i| f.live_peers(i) == 2)
    });
    f.expect(&[0, 1, 2], ALL_THREE, "all three deciding again");
    eventually(Duration::from_secs(10), "the mismatch to show on A", || {
        f.status(0)["cluster"]["config_mismatch"] == 1
    });
    let s = f.status(0);
    let b = s["cluster"]["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["same_config"] == false)
        .unwrap()
        .clone();
    assert!(
        b["address"].as_str().unwrap().starts_with(&f.gossip_near),
        "{b}"
    );
    assert_ne!(b["fingerprint"], s["cluster"]["fingerprint"]);
    assert!(
        f.metrics(0)
            .lines()
            .any(|l| l == "meridian_cluster_config_mismatch 1")
    );
    let (_, page) = http(f.admin[0], "GET", "/", None);
    assert!(page.contains("1 peer(s) serve other zones"), "{page}");

    // B drops x-any from its zone (a reload): its view of that probe is retracted, and
    // A counts C's alone beside its own.
    let text = std::fs::read_to_string(&zone_b).unwrap();
    let start = text.find("  x-any:").unwrap();
    let end = start + text[start..].find("  x-majority:").unwrap();
    std::fs::write(&zone_b, format!("{}{}", &text[..start], &text[end..])).unwrap();
    eventually(
        Duration::from_secs(10),
        "B's view of x-any retracted",
        || {
            let x_any = f.check(0, "x-any")["quorum"].clone();
            x_any["why"] == "1 of 2 vantage points see it down; any: down"
                && x_any["peers"][0]["peer"] == format!("{}:5400", f.gossip_far)
        },
    );
}

#[test]
fn gossip_without_the_key_is_dropped_and_counted() {
    let f = Fleet::start("k", 81);
    eventually(
        Duration::from_secs(20),
        "every server sees two peers",
        || (0..3).all(|i| f.live_peers(i) == 2),
    );
    // A datagram that is not sealed with the key, to A's gossip port.
    let a_gossip: SocketAddr = f.status(0)["cluster"]["address"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let sock = std::net::UdpSocket::bind((ip(&f.gossip_near), 0)).unwrap();
    for _ in 0..3 {
        sock.send_to(
            b"\x01not sealed with the cluster key at all......",
            a_gossip,
        )
        .unwrap();
    }
    eventually(
        Duration::from_secs(5),
        "the rejected datagrams counted",
        || {
            f.metrics(0)
                .lines()
                .any(|l| l == "meridian_cluster_messages_total{direction=\"rejected\"} 3")
        },
    );
    assert!(f.a.log_contains("dropped a datagram not sealed with cluster.key"));
    assert_eq!(f.live_peers(0), 2, "the cluster is unmoved");
}

#[test]
fn a_cluster_section_or_quorum_that_cannot_work_is_an_error_at_its_line() {
    let check = |server_extra: &str, zone: &str| {
        let (dir, file) = write_config_with(server_extra, &[("q.yaml", zone)]);
        let (code, _, err) = run_meridian(&["check".as_ref(), "-c".as_ref(), file.as_os_str()]);
        drop(dir);
        (code, err)
    };
    let zone = "zone: q.test\nns: [ns1]\nfqdns:\n  app:\n    quorum: majority\n    members: [{ address: 192.0.2.1 }]\n";
    let server = |listen: &str, peers: &str, key: &str| {
        format!("cluster:\n  listen: {listen}\n  peers: [{peers}]\n  key: \"{key}\"\n")
    };
    let (code, err) = check(&server("127.0.0.1:5400", "127.0.0.2:5400", "short"), zone);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("meridian.yaml:6:8: cluster.key: use at least 32 characters"),
        "{err}"
    );
    let (_, err) = check(&server("127.0.0.1", "127.0.0.2:5400", KEY), zone);
    assert!(
        err.contains(
            "meridian.yaml:4:11: cluster.listen: `127.0.0.1` is not an address with a port"
        ),
        "{err}"
    );
    let (_, err) = check(
        &server("127.0.0.1:5400", "127.0.0.2:5400, peers.example", KEY),
        zone,
    );
    assert!(
        err.contains("cluster.peers[1]: `peers.example` is not host:port"),
        "{err}"
    );
    let (_, err) = check(&server("127.0.0.1:5400", "127.0.0.1:5400", KEY), zone);
    assert!(
        err.contains("cluster.peers[0]: is this server's own cluster.listen"),
        "{err}"
    );
    let (_, err) = check(
        &server("127.0.0.1:5400", "127.0.0.2:5400", KEY),
        &zone.replace("majority", "most"),
    );
    assert!(err.contains("q.yaml:5:13: fqdns.app.quorum: "), "{err}");
    assert!(err.contains("majority"), "the choices are named: {err}");
    let (code, err) = check(&server("127.0.0.1:5400", "127.0.0.2:5400", KEY), zone);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn quorum_without_a_cluster_is_local_and_says_so() {
    let zone = "zone: q.test\nns: [ns1]\nfqdns:\n  app:\n    quorum: any\n    check: { type: icmp, interval: 1s }\n    members: [{ address: 127.0.97.50 }]\n";
    let (dir, file) = write_config(&[("q.yaml", zone)]);
    let (code, _, err) = run_meridian(&["check".as_ref(), "-c".as_ref(), file.as_os_str()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("warning: 1 name(s) set quorum: (first app.q.test.) but ")
            && err.contains("has no cluster: section; they decide by this server's own probes"),
        "{err}"
    );
    let s = start_with(dir, &file);
    assert_eq!(
        addresses(&s.ask("app.q.test.", RecordType::A)),
        ["127.0.97.50"]
    );
    let probe = &s.state().registry.all()[0];
    assert_eq!(
        probe.decision().why(),
        "any: no peer reports it, so this server's own view decides (up)"
    );
}
