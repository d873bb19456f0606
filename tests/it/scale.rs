//! 2,000 members checked every second, with the server as its own process so that its
//! CPU time and memory can be read from /proc.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::common::backend::{TcpBackend, free_port};
use crate::common::*;
use hickory_proto::rr::RecordType;

/// (CPU seconds, RSS MiB) of a process.
fn usage(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss_kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap();
    (ticks / 100.0, rss_kb / 1024.0)
}

#[test]
fn two_thousand_members_checked_every_second_keep_their_state() {
    // 20 names x 100 members on 127.0.{10..17}.x; even members have a listener, odd ones not.
    let addrs: Vec<IpAddr> = (0..2000u32)
        .map(|i| IpAddr::from([127, 0, 10 + (i / 250) as u8, 1 + (i % 250) as u8]))
        .collect();
    let port = free_port(addrs[0]);
    let mut listeners: Vec<Option<TcpBackend>> = addrs
        .iter()
        .enumerate()
        .map(|(i, a)| (i % 2 == 0).then(|| TcpBackend::start(SocketAddr::new(*a, port))))
        .collect();
    let mut zone = String::from("zone: scale.test\nns: [ns1]\nfqdns:\n");
    for name in 0..20 {
        zone += &format!(
            "  n{name}:\n    selection: all-available\n    when-all-down: none\n    check: {{ type: tcp, port: {port}, interval: 1s, timeout: 500ms, rise: 1, fall: 1 }}\n    members:\n"
        );
        for a in &addrs[name * 100..(name + 1) * 100] {
            zone += &format!("      - {{ address: {a} }}\n");
        }
    }
    let (dir, file) = write_config(&[("scale.yaml", &zone)]);
    let started = Instant::now();
    let served = serve(&file);
    let addr = served.addr;
    let pid = served.child.id();
    println!(
        "2000 probes: start-up including the first round in {:?}",
        started.elapsed()
    );
    let ask = |name: usize| {
        let mut got = addresses(&udp_exchange(
            addr,
            &query(&format!("n{name}.scale.test."), RecordType::A),
        ));
        got.sort();
        got
    };
    let expect_up = |listeners: &[Option<TcpBackend>], name: usize| -> Vec<String> {
        let mut v: Vec<String> = (name * 100..(name + 1) * 100)
            .filter(|&i| listeners[i].is_some())
            .map(|i| addrs[i].to_string())
            .collect();
        v.sort();
        v
    };
    for name in 0..20 {
        assert_eq!(ask(name), expect_up(&listeners, name), "n{name}");
    }

    // Checking alone, no queries: what 2,000 probes a second cost.
    let (cpu0, _) = usage(pid);
    let quiet = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    let (cpu1, rss) = usage(pid);
    let idle_share = (cpu1 - cpu0) / quiet.elapsed().as_secs_f64();

    // Take the listeners of n3 away while querying; every name must stay right.
    for slot in listeners[300..400].iter_mut() {
        if let Some(l) = slot.take() {
            l.stop();
        }
    }
    eventually(Duration::from_secs(10), "n3 to have no up member", || {
        ask(3).is_empty()
    });
    let until = Instant::now() + Duration::from_secs(3);
    let mut queries = 0;
    while Instant::now() < until && queries < 20_000 {
        for name in 0..20 {
            assert_eq!(ask(name), expect_up(&listeners, name), "n{name}");
        }
        queries += 20;
    }
    let (_, rss_after) = usage(pid);
    println!(
        "2000 members every 1 s: server CPU {:.1}% of one core while only checking; RSS {rss:.1} MiB, {rss_after:.1} MiB after {queries} more queries",
        100.0 * idle_share
    );
    drop(served);
    drop(dir);
}
