//! Access lists for the server and per zone, over real UDP and TCP, on both paths.

use std::net::IpAddr;
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

use crate::common::*;

const OPEN: &str = "zone: open.test\nns: [ns1]\nrecords:\n  www: { A: 192.0.2.1 }\n";
const CLOSED: &str = "zone: closed.test\nns: [ns1]\naccess: { allow: [127.0.84.0/24] }\nfqdns:\n  rr:\n    selection: round-robin\n    members: [{ address: 192.0.2.11 }, { address: 192.0.2.12 }]\n";

fn server(access: &str, extra: &str) -> TestServer {
    let (dir, file) = write_config_with(
        &format!("admin: {{ listen: 127.0.0.1:0 }}\n{access}{extra}"),
        &[("open.yaml", OPEN), ("closed.yaml", CLOSED)],
    );
    start_with(dir, &file)
}

/// The answer to `name` from `src` over UDP and over TCP; `None` where none came within
/// half a second (answers on loopback take well under a millisecond).
fn ask_both(s: &TestServer, src: &str, name: &str) -> [Option<Message>; 2] {
    let q = query(name, RecordType::A).to_vec().unwrap();
    let src: IpAddr = ip(src);
    let wait = Duration::from_millis(500);
    let udp = try_udp_from(src, s.addr, &q, wait).map(|b| Message::from_vec(&b).unwrap());
    let tcp = try_tcp_from(src, s.addr, &q, wait).map(|b| Message::from_vec(&b).unwrap());
    [udp, tcp]
}

fn refused(m: &Option<Message>) -> bool {
    m.as_ref().is_some_and(|m| {
        m.metadata.response_code == ResponseCode::Refused
            && !m.metadata.authoritative
            && m.answers.is_empty()
            && m.authorities.is_empty()
    })
}

fn metric(s: &TestServer, name: &str) -> u64 {
    let (_, text) = http(s.admin(), "GET", "/metrics", None);
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

#[test]
fn the_server_list_refuses_or_drops_on_both_paths() {
    for extra in ["", "query-log: true\n"] {
        let s = server("access: { deny: [127.0.80.0/24] }\n", extra);
        for m in ask_both(&s, "127.0.80.1", "www.open.test.") {
            assert!(refused(&m), "{extra}: {m:?}");
        }
        for m in ask_both(&s, "127.0.81.1", "www.open.test.") {
            assert_eq!(addresses(&m.unwrap()), ["192.0.2.1"]);
        }
        assert_eq!(
            metric(&s, "meridian_access_denied_total{action=\"refuse\"}"),
            2
        );

        let s = server("access: { allow: [127.0.82.0/24], action: drop }\n", extra);
        let [udp, tcp] = ask_both(&s, "127.0.83.1", "www.open.test.");
        assert!(
            udp.is_none() && tcp.is_none(),
            "{extra}: dropped: {udp:?} {tcp:?}"
        );
        for m in ask_both(&s, "127.0.82.1", "www.open.test.") {
            assert_eq!(addresses(&m.unwrap()), ["192.0.2.1"]);
        }
        assert_eq!(
            metric(&s, "meridian_access_denied_total{action=\"drop\"}"),
            2
        );
    }
}

#[test]
fn a_zone_list_turns_clients_away_before_anything_is_chosen() {
    let s = server("", "");
    // Outside the zone's allow list: REFUSED, for its names and its missing names alike.
    for name in ["rr.closed.test.", "nothing.closed.test.", "closed.test."] {
        for _ in 0..5 {
            for m in ask_both(&s, "127.0.85.1", name) {
                assert!(refused(&m), "{name}: {m:?}");
            }
        }
    }
    // Other zones still answer that client.
    for m in ask_both(&s, "127.0.85.1", "www.open.test.") {
        assert_eq!(addresses(&m.unwrap()), ["192.0.2.1"]);
    }
    // The refused queries moved no rotation and counted no answer.
    let [first, _] = ask_both(&s, "127.0.84.1", "rr.closed.test.");
    assert_eq!(addresses(&first.unwrap()), ["192.0.2.11"]);
    assert_eq!(
        metric(
            &s,
            "meridian_answers_total{name=\"rr.closed.test.\",member=\"192.0.2.11\"}"
        ),
        1
    );
}

#[test]
fn access_lists_with_mistakes_are_reported() {
    let (dir, server) = write_config_with(
        "access: { deny: [nonsense], action: ignore }\n",
        &[("open.yaml", OPEN)],
    );
    let (code, _, stderr) = run_meridian(&["check".as_ref(), "--config".as_ref(), server.as_ref()]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("access.deny[0]: `nonsense` is not a network"),
        "{stderr}"
    );
    drop(dir);
    let (dir, server) = write_config(&[(
        "open.yaml",
        "zone: open.test\nns: [ns1]\naccess: { action: ignore }\n",
    )]);
    let (code, _, stderr) = run_meridian(&["check".as_ref(), "--config".as_ref(), server.as_ref()]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("access.action: unknown action `ignore`, expected refuse or drop"),
        "{stderr}"
    );
    drop(dir);
}
