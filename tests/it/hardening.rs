//! Hostile and malformed traffic: each case here was a defect found by probing, and each
//! test failed before its fix.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hickory_proto::op::Query;
use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

use crate::common::netns::NetnsHost;
use crate::common::*;

const ZONE: &str = "zone: hard.test\nns: [ns1]\nrecords:\n  www: { A: 192.0.2.1 }\n";

fn server() -> TestServer {
    start(&[("hard.yaml", ZONE)])
}

/// Sends one framed message on an open TCP stream; the reply's bytes, or `None` if none
/// comes within `wait`.
fn tcp_send(stream: &mut TcpStream, bytes: &[u8], wait: Duration) -> Option<Vec<u8>> {
    stream.set_read_timeout(Some(wait)).unwrap();
    stream
        .write_all(&(bytes.len() as u16).to_be_bytes())
        .unwrap();
    stream.write_all(bytes).unwrap();
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).ok()?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut buf).ok()?;
    Some(buf)
}

#[test]
fn responses_sent_to_the_server_get_no_reply_over_udp_or_tcp() {
    let s = server();
    let mut reply = query("www.hard.test.", RecordType::A);
    reply.metadata.message_type = MessageType::Response;
    let bytes = reply.to_vec().unwrap();
    assert!(udp_raw(s.addr, &bytes).is_none(), "UDP");
    // A malformed one too: a header that promises a question that is not there.
    let malformed = [0xab, 0xcd, 0x81, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0];
    assert!(udp_raw(s.addr, &malformed).is_none(), "UDP, malformed");
    let mut stream = TcpStream::connect(s.addr).unwrap();
    for bytes in [&bytes[..], &malformed[..]] {
        let reply = tcp_send(&mut stream, bytes, Duration::from_millis(500));
        assert!(reply.is_none(), "TCP answered {bytes:02x?}: {reply:02x?}");
    }
    // The connection still serves real queries.
    let ok = tcp_send(
        &mut stream,
        &query("www.hard.test.", RecordType::A).to_vec().unwrap(),
        TIMEOUT,
    )
    .expect("an answer");
    assert_eq!(addresses(&Message::from_vec(&ok).unwrap()), ["192.0.2.1"]);
}

#[test]
fn a_question_with_a_compression_pointer_is_formerr_without_the_question() {
    let s = server();
    // One question whose name is a pointer into the header (offset 2).
    let bytes: Vec<u8> = [
        0x00, 0x46, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0xc0, 0x02, 0x00, 0x01, 0x00, 0x01,
    ]
    .to_vec();
    // And one that points back at a real name earlier in the message is no better: a
    // question is written out in full.
    let mut stream = TcpStream::connect(s.addr).unwrap();
    for reply in [
        udp_raw(s.addr, &bytes).expect("a UDP reply"),
        tcp_send(&mut stream, &bytes, TIMEOUT).expect("a TCP reply"),
    ] {
        let m = Message::from_vec(&reply).expect("the reply parses");
        assert_eq!(m.metadata.id, 0x0046);
        assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
        assert!(m.queries.is_empty(), "{m:?}");
    }
}

/// Found by the `query` fuzz target: ten long questions under an opcode we do not
/// implement drew NOTIMP with all ten echoed, 691 bytes over UDP without EDNS.
#[test]
fn a_message_with_many_questions_is_answered_without_them() {
    let s = server();
    let label = "a".repeat(60);
    let long_name = format!("{label}.{label}.{label}.hard.test.");
    for opcode in [0u8, 3] {
        let mut bytes = vec![0x12, 0x01, opcode << 3, 0x00, 0x00, 10, 0, 0, 0, 0, 0, 0];
        for _ in 0..10 {
            for label in long_name.trim_end_matches('.').split('.') {
                bytes.push(label.len() as u8);
                bytes.extend_from_slice(label.as_bytes());
            }
            bytes.extend_from_slice(&[0, 0, 1, 0, 1]);
        }
        let mut stream = TcpStream::connect(s.addr).unwrap();
        for (transport, reply) in [
            ("UDP", udp_raw(s.addr, &bytes).expect("a UDP reply")),
            (
                "TCP",
                tcp_send(&mut stream, &bytes, TIMEOUT).expect("a TCP reply"),
            ),
        ] {
            assert!(reply.len() <= 512, "{transport}: {} bytes", reply.len());
            let m = Message::from_vec(&reply).expect("the reply parses");
            assert_eq!(m.metadata.id, 0x1201);
            let expected = match opcode {
                0 => ResponseCode::FormErr,
                _ => ResponseCode::NotImp,
            };
            assert_eq!(m.metadata.response_code, expected, "{transport}");
            assert!(m.queries.is_empty(), "{transport}: {m:?}");
        }
    }
}

#[test]
fn formerr_for_a_malformed_client_subnet_does_not_echo_it() {
    use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
    let s = server();
    let mut m = query("www.hard.test.", RecordType::A);
    let mut e = m.edns.take().unwrap();
    e.options_mut().insert(EdnsOption::Subnet(ClientSubnet::new(
        ip("192.0.2.0"),
        24,
        16,
    )));
    m.set_edns(e);
    for r in [s.udp(&m), s.tcp(&m)] {
        assert_eq!(r.metadata.response_code, ResponseCode::FormErr);
        assert!(r.edns.is_some(), "OPT still echoed");
        assert_eq!(ecs_of(&r), None, "the bad option is not sent back");
    }
}

const TOKEN: &str = "hardening-token-0123456789";

fn admin_server() -> TestServer {
    let (dir, file) = write_config_with(
        &format!("admin: {{ listen: 127.0.0.1:0, token: {TOKEN} }}\n"),
        &[("hard.yaml", ZONE)],
    );
    start_with(dir, &file)
}

/// Sends raw bytes to the admin API and returns the status line (empty if none came).
fn admin_raw(s: &TestServer, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(s.admin()).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let _ = stream.write_all(request);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    String::from_utf8_lossy(&response)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

#[test]
fn the_admin_api_bounds_bodies_headers_and_connections() {
    let s = admin_server();
    // 70 idle connections: those past 64 are closed at once; the rest wait their timeout.
    // First, while no other connection is open (one still closing would count).
    let mut idle: Vec<TcpStream> = (0..70)
        .map(|_| TcpStream::connect(s.admin()).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut closed = 0;
    for c in idle.iter_mut() {
        c.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        if matches!(c.read(&mut [0u8; 1]), Ok(0)) {
            closed += 1;
        }
    }
    assert_eq!(closed, 6);
    drop(idle);
    let admin = s.admin();
    eventually(Duration::from_secs(2), "the API again", || {
        std::panic::catch_unwind(|| http(admin, "GET", "/healthz", None).0 == 200).unwrap_or(false)
    });
    // A valid token does not buy an unbounded body.
    let body = vec![b'x'; 1 << 20];
    let mut request = format!(
        "POST /members/www.hard.test/192.0.2.1/disable HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    assert_eq!(admin_raw(&s, &request), "HTTP/1.1 413 Payload Too Large");
    // Nor headers or a URL of any size.
    let long = format!(
        "GET /status?{} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(20_000)
    );
    assert_eq!(
        admin_raw(&s, long.as_bytes()),
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
    // And DNS never noticed.
    let resp = s.ask("www.hard.test.", RecordType::A);
    assert_eq!(addresses(&resp), ["192.0.2.1"]);
}

#[test]
fn an_admin_api_reachable_from_other_hosts_needs_a_token() {
    let (dir, _) = write_config(&[("hard.yaml", ZONE)]);
    let server = dir.path().join("open.yaml");
    std::fs::write(&server, "zones: zones\nadmin:\n  listen: 0.0.0.0:9153\n").unwrap();
    let (code, _, stderr) = run_meridian(&["check".as_ref(), "--config".as_ref(), server.as_ref()]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains(
            "open.yaml:3:11: admin.listen: 0.0.0.0:9153 is reachable from other hosts: set admin.token, or listen on 127.0.0.1"
        ),
        "{stderr}"
    );
}

#[test]
fn udp_answers_stay_within_1232_bytes_whatever_the_client_offers() {
    // 16 TXT records of 240 bytes: about 3.9 KB, which a 39-byte query could pull.
    let txt = (0..16)
        .map(|i| format!("\"{}\"", format!("{i:02}").repeat(120)))
        .collect::<Vec<_>>()
        .join(", ");
    let zone = format!("zone: amp.test\nns: [ns1]\nrecords:\n  big: {{ TXT: [{txt}] }}\n");
    let s = start(&[("amp.yaml", &zone)]);
    let mut m = plain_query("big.amp.test.", RecordType::TXT);
    let mut e = hickory_proto::op::Edns::new();
    e.set_max_payload(4096);
    m.set_edns(e);
    let sent = m.to_vec().unwrap();
    let reply = udp_raw(s.addr, &sent).expect("a reply");
    let r = Message::from_vec(&reply).unwrap();
    assert!(r.metadata.truncation, "TC=1: the client retries over TCP");
    assert_eq!(
        r.edns.as_ref().unwrap().max_payload(),
        1232,
        "DNS Flag Day 2020"
    );
    assert!(reply.len() <= 1232);
    assert!(
        reply.len() < 2 * sent.len(),
        "{} bytes for {}",
        reply.len(),
        sent.len()
    );
    assert_eq!(s.tcp(&m).answers.len(), 16, "TCP carries it whole");
}

/// An answer larger than the link's MTU is never fragmented (RFC 9715): it goes out
/// truncated and the client asks again over TCP. Over a veth pair with an MTU of 1280 and
/// with `edns-udp-size: 4096`, from the namespace: over IPv4 on the fast path and (with the
/// query log on) the general path, and over IPv6. Fragmented, the 2.9 KB answer would
/// arrive whole.
#[test]
fn a_udp_answer_larger_than_the_link_mtu_is_truncated_not_fragmented() {
    let host = NetnsHost::create("m", 82);
    host.set_mtu(1280);
    let txt = (0..12)
        .map(|i| format!("\"{}\"", format!("{i:02}").repeat(120)))
        .collect::<Vec<_>>()
        .join(", ");
    let zone = format!(
        "zone: mtu.test\nns: [ns1]\nrecords:\n  big: {{ TXT: [{txt}] }}\n  small: {{ TXT: \"fits\" }}\n"
    );
    let (near6, _) = host.add_ipv6();
    let near4 = host.near();
    for (listen, socket, extra) in [
        (&near4, format!("{near4}:0"), ""),
        (&near4, format!("{near4}:0"), "query-log: true\n"),
        (&near6, format!("\"[{near6}]:0\""), ""),
    ] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("zones")).unwrap();
        std::fs::write(dir.path().join("zones/mtu.yaml"), &zone).unwrap();
        let file = dir.path().join("meridian.yaml");
        std::fs::write(
            &file,
            format!("listen: [{socket}]\nzones: zones\nedns-udp-size: 4096\n{extra}"),
        )
        .unwrap();
        let s = start_with(dir, &file);
        let port = s.addr.port().to_string();
        let dig = |name: &str, over: &str| {
            let out = host
                .command("dig")
                .args(["+norec", "+ignore", "+bufsize=4096", "+tries=1", "+time=2"])
                .args([over, "-p", &port, &format!("@{listen}"), name, "TXT"])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let small = dig("small.mtu.test", "+notcp");
        assert!(
            small.contains("flags: qr aa;") && small.contains("ANSWER: 1,"),
            "{extra}{small}"
        );
        let big = dig("big.mtu.test", "+notcp");
        assert!(big.contains("flags: qr aa tc;"), "{extra}{big}");
        assert!(
            big.contains("ANSWER: 0,") && big.contains("; EDNS: version: 0"),
            "{extra}{big}"
        );
        let counted = s.state().counters.udp_mtu_truncated.load(Ordering::Relaxed);
        assert_eq!(counted, 1, "{extra}");
        let whole = dig("big.mtu.test", "+tcp");
        assert!(whole.contains("ANSWER: 12,"), "{extra}{whole}");
    }
}

/// A flood of forwarded queries to an upstream that never answers: each would hold a task
/// and a socket until the forward timeout. At most `GENERAL_IN_FLIGHT` are at work at once
/// and the rest are dropped and counted; the fast path answers throughout, and the general
/// path again once the upstream's timeouts have passed.
#[test]
fn the_general_path_over_udp_holds_a_bounded_number_of_queries() {
    use meridian::dns::udp::GENERAL_IN_FLIGHT;
    use std::net::UdpSocket;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize};

    let silent = UdpSocket::bind("127.0.0.41:0").unwrap();
    silent
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let upstream = silent.local_addr().unwrap();
    let (received, done) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let reader = {
        let (received, done) = (received.clone(), done.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !done.load(Ordering::Relaxed) {
                if silent.recv(&mut buf).is_ok() {
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let (dir, file) = write_config_with(
        &format!("forward: {{ upstreams: [{upstream}], timeout: 3s, allow: [127.0.0.2/32] }}\n"),
        &[("hard.yaml", ZONE)],
    );
    let s = start_with(dir, &file);
    let flood = UdpSocket::bind("127.0.0.2:0").unwrap();
    let sent = 4 * GENERAL_IN_FLIGHT;
    for i in 0..sent {
        let q = query(&format!("n{i}.elsewhere.example."), RecordType::A);
        flood.send_to(&q.to_vec().unwrap(), s.addr).unwrap();
        if i % 100 == 99 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    // The fast path is not held up.
    assert_eq!(
        addresses(&s.ask("www.hard.test.", RecordType::A)),
        ["192.0.2.1"]
    );
    std::thread::sleep(Duration::from_millis(500));
    let forwarded = received.load(Ordering::Relaxed);
    let busy = s.state().counters.udp_general_busy.load(Ordering::Relaxed);
    assert!(
        (GENERAL_IN_FLIGHT / 2..=GENERAL_IN_FLIGHT).contains(&forwarded),
        "{forwarded} queries reached the upstream within its timeout"
    );
    assert!(
        busy as usize >= sent - GENERAL_IN_FLIGHT - sent / 10,
        "{busy} dropped"
    );
    // Once the upstream's timeouts have passed, the general path answers again (here: a
    // message with two questions, FORMERR).
    let mut two = query("www.hard.test.", RecordType::A);
    two.add_query(Query::query(
        Name::from_ascii("www.hard.test.").unwrap(),
        RecordType::AAAA,
    ));
    let bytes = two.to_vec().unwrap();
    eventually(Duration::from_secs(10), "the general path answers", || {
        udp_raw(s.addr, &bytes).is_some_and(|r| {
            Message::from_vec(&r).unwrap().metadata.response_code == ResponseCode::FormErr
        })
    });
    done.store(true, Ordering::Relaxed);
    reader.join().unwrap();
}
