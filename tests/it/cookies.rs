//! DNS Cookies (RFC 7873, RFC 9018) over real UDP and TCP: echoed on both paths, a valid
//! cookie lifts the rate limit and the no-cookie size cap, servers sharing a secret accept
//! each other's cookies, and a malformed option is FORMERR.

use std::net::UdpSocket;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, ResponseCode};
use hickory_proto::rr::RecordType;
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};

use crate::common::*;

const SECRET: &str = "000102030405060708090a0b0c0d0e0f";

fn zone() -> String {
    let big = (1..=60)
        .map(|i| format!("192.0.2.{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "zone: cookie.test\nns: [ns1]\nrecords:\n  www: {{ A: 192.0.2.1 }}\n  big: {{ A: [{big}] }}\n"
    )
}

fn server(extra: &str) -> TestServer {
    let (dir, file) = write_config_with(extra, &[("cookie.yaml", &zone())]);
    start_with(dir, &file)
}

/// A query carrying the COOKIE option `cookie` (a client cookie, maybe a server cookie).
fn with_cookie(name: &str, cookie: &[u8]) -> Message {
    let mut m = query(name, RecordType::A);
    let mut e = m.edns.take().unwrap();
    e.options_mut()
        .insert(EdnsOption::Unknown(10, cookie.to_vec()));
    m.set_edns(e);
    m
}

fn cookie_of(m: &Message) -> Option<Vec<u8>> {
    match m.edns.as_ref()?.option(EdnsCode::Cookie)? {
        EdnsOption::Unknown(_, data) => Some(data.clone()),
        _ => None,
    }
}

/// The server cookie `s` hands a client cookie of `client`.
fn server_cookie(s: &TestServer, client: [u8; 8]) -> Vec<u8> {
    let r = s.udp(&with_cookie("www.cookie.test.", &client));
    let cookie = cookie_of(&r).expect("a cookie comes back");
    assert_eq!(cookie.len(), 24);
    assert_eq!(&cookie[..8], &client, "the client cookie, echoed");
    assert_eq!(cookie[8], 1, "an RFC 9018 server cookie, version 1");
    cookie
}

#[test]
fn cookies_are_echoed_over_udp_and_tcp_on_both_paths() {
    for extra in ["", "query-log: true\n"] {
        let s = server(extra);
        for r in [
            s.udp(&with_cookie("www.cookie.test.", &[1; 8])),
            s.tcp(&with_cookie("www.cookie.test.", &[1; 8])),
        ] {
            assert_eq!(addresses(&r), ["192.0.2.1"], "{extra}");
            let cookie = cookie_of(&r).expect("echoed");
            assert_eq!((&cookie[..8], cookie.len()), (&[1u8; 8][..], 24));
        }
        // A query without a cookie gets none.
        assert_eq!(cookie_of(&s.ask("www.cookie.test.", RecordType::A)), None);
        // A malformed option (5 bytes) is FORMERR, and not echoed.
        let r = s.udp(&with_cookie("www.cookie.test.", &[1; 5]));
        assert_eq!(r.metadata.response_code, ResponseCode::FormErr);
        assert_eq!(cookie_of(&r), None);
    }
    // Off: the option is ignored.
    let off = server("cookies: { enabled: false }\n");
    assert_eq!(
        cookie_of(&off.udp(&with_cookie("www.cookie.test.", &[1; 8]))),
        None
    );
}

#[test]
fn a_valid_cookie_lifts_the_rate_limit_and_a_forged_one_does_not() {
    let s = server("rate-limit: { responses-per-second: 5 }\n");
    let client = [7u8; 8];
    let good = server_cookie(&s, client);
    let mut forged = good.clone();
    forged[23] ^= 0xff;
    let burst = |cookie: &[u8]| {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let bytes = with_cookie("www.cookie.test.", cookie).to_vec().unwrap();
        for _ in 0..100 {
            sock.send_to(&bytes, s.addr).unwrap();
        }
        let mut whole = 0;
        let mut buf = [0u8; 1500];
        while let Ok((n, _)) = sock.recv_from(&mut buf) {
            if !Message::from_vec(&buf[..n]).unwrap().metadata.truncation {
                whole += 1;
            }
        }
        whole
    };
    assert_eq!(burst(&good), 100, "valid cookie: exempt");
    assert!(
        burst(&forged) <= 10,
        "forged cookie: limited like no cookie"
    );
}

#[test]
fn without_a_valid_cookie_udp_answers_are_held_to_nocookie_udp_size() {
    let s = server("cookies: { nocookie-udp-size: 512 }\n");
    let big = |m: &Message| s.udp(m);
    // 60 addresses (about 1 KB) do not fit 512 bytes: truncated without a valid cookie...
    assert!(
        big(&query("big.cookie.test.", RecordType::A))
            .metadata
            .truncation
    );
    assert!(
        big(&with_cookie("big.cookie.test.", &[2; 8]))
            .metadata
            .truncation
    );
    // ...and whole with one.
    let good = server_cookie(&s, [2; 8]);
    let r = big(&with_cookie("big.cookie.test.", &good));
    assert!(!r.metadata.truncation);
    assert_eq!(r.answers.len(), 60);
    assert_eq!(r.edns.as_ref().map(Edns::max_payload), Some(1232));
}

#[test]
fn servers_that_share_a_secret_accept_each_others_cookies() {
    let extra = format!("cookies: {{ secret: {SECRET}, nocookie-udp-size: 512 }}\n");
    let (a, b) = (server(&extra), server(&extra));
    let from_a = server_cookie(&a, [3; 8]);
    let r = b.udp(&with_cookie("big.cookie.test.", &from_a));
    assert!(!r.metadata.truncation, "B took A's cookie as valid");
    // A server with another secret does not.
    let c =
        server("cookies: { secret: ffffffffffffffffffffffffffffffff, nocookie-udp-size: 512 }\n");
    assert!(
        c.udp(&with_cookie("big.cookie.test.", &from_a))
            .metadata
            .truncation
    );
}
