//! Response rate limiting over real UDP: floods from one network get their burst, then
//! every second response truncated and the rest dropped; nobody else notices.

use std::net::UdpSocket;
use std::time::Duration;

use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;

use crate::common::*;

const ZONE: &str =
    "zone: rrl.test\nns: [ns1]\nrecords:\n  www: { A: 192.0.2.1 }\n  mail: { A: 192.0.2.2 }\n";

fn server(extra: &str) -> TestServer {
    let (dir, file) = write_config_with(
        &format!(
            "admin: {{ listen: 127.0.0.1:0 }}\nrate-limit: {{ responses-per-second: 10, slip: 2, exempt: [127.0.75.0/24] }}\n{extra}"
        ),
        &[("rrl.yaml", ZONE)],
    );
    start_with(dir, &file)
}

/// Replies to a burst of `n` queries sent at once from `src`: (whole answers, truncated).
fn flood(s: &TestServer, src: &str, names: impl Fn(usize) -> String, n: usize) -> (usize, usize) {
    flood_of(s, src, |i| query(&names(i), RecordType::A), n)
}

/// Like `flood`, with each query as `make` builds it.
fn flood_of(
    s: &TestServer,
    src: &str,
    make: impl Fn(usize) -> Message,
    n: usize,
) -> (usize, usize) {
    let sock = UdpSocket::bind((ip(src), 0)).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    for i in 0..n {
        let mut q = make(i);
        q.metadata.id = i as u16;
        sock.send_to(&q.to_vec().unwrap(), s.addr).unwrap();
    }
    let (mut whole, mut truncated) = (0, 0);
    let mut buf = [0u8; 1500];
    while let Ok((len, _)) = sock.recv_from(&mut buf) {
        let m = Message::from_vec(&buf[..len]).unwrap();
        if m.metadata.truncation {
            assert!(m.answers.is_empty());
            truncated += 1;
        } else {
            whole += 1;
        }
    }
    (whole, truncated)
}

fn metric(s: &TestServer, name: &str) -> u64 {
    let (_, text) = http(s.admin(), "GET", "/metrics", None);
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

fn www(_: usize) -> String {
    "www.rrl.test.".into()
}

fn assert_limited(s: &TestServer, extra_ok: usize) {
    let (whole, truncated) = flood(s, "127.0.70.1", www, 200);
    // The burst (10), a little refill while sending; then half of the rest slips.
    assert!(
        (10..=10 + extra_ok).contains(&whole),
        "{whole} whole answers"
    );
    let over = 200 - whole;
    assert!(
        truncated.abs_diff(over / 2) <= 1,
        "{truncated} truncated of {over}"
    );
    let dropped = metric(s, "meridian_rrl_dropped_total");
    let slipped = metric(s, "meridian_rrl_slipped_total");
    assert_eq!(slipped as usize, truncated);
    assert_eq!((dropped + slipped) as usize, over);
}

#[test]
fn a_flood_from_one_network_is_limited_and_nobody_else_notices() {
    let s = server("");
    assert_limited(&s, 5);
    // The same /24, another name: a bucket of its own.
    let other_name = udp_exchange_from(
        ip("127.0.70.2"),
        s.addr,
        &query("mail.rrl.test.", RecordType::A),
    );
    assert_eq!(addresses(&other_name), ["192.0.2.2"]);
    // Another /24, the same name.
    let other_net = udp_exchange_from(
        ip("127.0.71.1"),
        s.addr,
        &query("www.rrl.test.", RecordType::A),
    );
    assert_eq!(addresses(&other_net), ["192.0.2.1"]);
    // TCP is never limited, even for the flooded network.
    let tcp = tcp_raw_from(
        ip("127.0.70.1"),
        s.addr,
        &query("www.rrl.test.", RecordType::A).to_vec().unwrap(),
    );
    assert_eq!(addresses(&Message::from_vec(&tcp).unwrap()), ["192.0.2.1"]);
    // An exempt network is never limited either.
    let (whole, truncated) = flood(&s, "127.0.75.1", www, 100);
    assert_eq!((whole, truncated), (100, 0));
    // A quiet second refills the bucket.
    std::thread::sleep(Duration::from_millis(1100));
    let again = udp_exchange_from(
        ip("127.0.70.1"),
        s.addr,
        &query("www.rrl.test.", RecordType::A),
    );
    assert_eq!(addresses(&again), ["192.0.2.1"]);
}

#[test]
fn random_names_share_one_nxdomain_bucket_per_zone() {
    let s = server("");
    let (whole, truncated) = flood(&s, "127.0.72.1", |i| format!("r{i}.rrl.test."), 100);
    assert!((10..=15).contains(&whole), "{whole}");
    assert!(truncated >= 40, "{truncated}");
}

#[test]
fn random_names_in_a_signed_zone_share_the_nxdomain_bucket_too() {
    // With DO, a signed zone answers a name that does not exist NOERROR with a compact
    // denial (RFC 9824); it must not get a bucket per name.
    let (dir, file) = write_config_with(
        "rate-limit: { responses-per-second: 10, slip: 2 }\n",
        &[("rrl.yaml", &format!("{ZONE}dnssec: {{}}\n"))],
    );
    let s = start_with(dir, &file);
    let with_do = |i: usize| {
        let mut q = query(&format!("r{i}.rrl.test."), RecordType::A);
        q.edns.as_mut().unwrap().set_dnssec_ok(true);
        q
    };
    let first = s.udp(&with_do(1000));
    assert_rcode(&first, hickory_proto::op::ResponseCode::NoError);
    assert!(!first.authorities.is_empty(), "a compact denial: {first:?}");
    std::thread::sleep(Duration::from_millis(1100));
    let (whole, truncated) = flood_of(&s, "127.0.73.1", with_do, 100);
    assert!((10..=15).contains(&whole), "{whole}");
    assert!(truncated >= 40, "{truncated}");
}

#[test]
fn random_names_under_a_wildcard_share_its_bucket() {
    let (dir, file) = write_config_with(
        "rate-limit: { responses-per-second: 10, slip: 2 }\n",
        &[(
            "rrl.yaml",
            &format!("{ZONE}  \"*.w\": {{ A: 192.0.2.9 }}\n"),
        )],
    );
    let s = start_with(dir, &file);
    let (whole, truncated) = flood(&s, "127.0.74.1", |i| format!("r{i}.w.rrl.test."), 100);
    assert!((10..=15).contains(&whole), "{whole}");
    assert!(truncated >= 40, "{truncated}");
    // Another name under it from another network: its own bucket, and the wildcard's
    // answer.
    let other = udp_exchange_from(
        ip("127.0.76.1"),
        s.addr,
        &query("x.w.rrl.test.", RecordType::A),
    );
    assert_eq!(addresses(&other), ["192.0.2.9"]);
}

#[test]
fn the_general_path_is_limited_alike() {
    // With the query log on, every UDP query takes the general path.
    let s = server("query-log: true\n");
    assert_limited(&s, 8);
}
