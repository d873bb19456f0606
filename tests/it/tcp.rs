//! DNS over TCP under clients that hold, starve or flood connections: every limit of the
//! `tcp:` section, over real connections.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;

use crate::common::*;

const ZONE: &str = "zone: tcp.test\nns: [ns1]\nrecords:\n  www: { A: 192.0.2.1 }\n";

fn server(tcp: &str) -> TestServer {
    let (dir, file) = write_config_with(
        &format!("admin: {{ listen: 127.0.0.1:0 }}\ntcp: {{ {tcp} }}\n"),
        &[("tcp.yaml", ZONE)],
    );
    start_with(dir, &file)
}

fn connect_from(src: IpAddr, addr: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::new(src, 0).into()).unwrap();
    socket.connect_timeout(&addr.into(), TIMEOUT).unwrap();
    socket.into()
}

fn frame(id: u16) -> Vec<u8> {
    let mut q = query("www.tcp.test.", RecordType::A);
    q.metadata.id = id;
    let bytes = q.to_vec().unwrap();
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&bytes);
    framed
}

/// Reads one framed reply; `None` at end of stream or after the read timeout.
fn read_reply(stream: &mut TcpStream) -> Option<Message> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).ok()?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut buf).ok()?;
    Some(Message::from_vec(&buf).unwrap())
}

/// How long until the server closes `stream` (reads until end of stream), at most `limit`.
fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 512];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Some(started.elapsed());
            }
            Err(_) => return None,
        }
    }
}

fn metric(s: &TestServer, line_start: &str) -> u64 {
    let (_, text) = http(s.admin(), "GET", "/metrics", None);
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `{line_start}` in\n{text}"))
}

#[test]
fn idle_and_slow_connections_are_closed() {
    let s = server("idle-timeout: 300ms, io-timeout: 400ms");
    // Idle: nothing sent.
    let mut idle = TcpStream::connect(s.addr).unwrap();
    let took = closed_within(&mut idle, Duration::from_secs(3)).expect("closed");
    assert!(took >= Duration::from_millis(250), "{took:?}");
    // Slow: one byte every 150 ms; the query would take 6 s to arrive.
    let mut slow = TcpStream::connect(s.addr).unwrap();
    let started = Instant::now();
    let framed = frame(7);
    for byte in &framed {
        if slow.write_all(&[*byte]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(150));
        if started.elapsed() > Duration::from_secs(2) {
            break;
        }
    }
    let took = closed_within(&mut slow, Duration::from_secs(3)).expect("closed");
    assert!(started.elapsed() < Duration::from_secs(3), "{took:?}");
    eventually(Duration::from_secs(2), "the closes counted", || {
        metric(&s, "meridian_tcp_closed_total{reason=\"idle\"}") == 1
            && metric(&s, "meridian_tcp_closed_total{reason=\"io-timeout\"}") == 1
    });
}

#[test]
fn pipelined_queries_are_all_answered_up_to_the_query_limit() {
    let s = server("max-queries-per-connection: 5");
    let mut stream = TcpStream::connect(s.addr).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    // Eight queries in one write, without waiting for answers.
    let burst: Vec<u8> = (1..=8).flat_map(frame).collect();
    stream.write_all(&burst).unwrap();
    let mut ids: Vec<u16> = std::iter::from_fn(|| read_reply(&mut stream))
        .map(|m| {
            assert_eq!(addresses(&m), ["192.0.2.1"]);
            m.metadata.id
        })
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        [1, 2, 3, 4, 5],
        "five answers, then the connection closes"
    );
    eventually(Duration::from_secs(2), "the close counted", || {
        metric(&s, "meridian_tcp_closed_total{reason=\"query-limit\"}") == 1
    });
}

#[test]
fn answers_go_out_while_the_next_query_is_still_arriving() {
    // Answers ready together are written together, but never held for a query that has
    // not fully arrived: a client may wait for its answer before sending the rest.
    let s = server("");
    let mut stream = TcpStream::connect(s.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let (one, two) = (frame(1), frame(2));
    let mut first_write = one.clone();
    first_write.extend_from_slice(&two[..5]);
    stream.write_all(&first_write).unwrap();
    let reply = read_reply(&mut stream).expect("the first answer before the second query ends");
    assert_eq!(reply.metadata.id, 1);
    stream.write_all(&two[5..]).unwrap();
    assert_eq!(read_reply(&mut stream).map(|m| m.metadata.id), Some(2));
    // A burst is answered whole.
    let burst: Vec<u8> = (3..=40).flat_map(frame).collect();
    stream.write_all(&burst).unwrap();
    let ids: Vec<u16> = (3..=40)
        .map(|_| read_reply(&mut stream).unwrap().metadata.id)
        .collect();
    assert_eq!(ids, (3..=40).collect::<Vec<u16>>(), "in order, all of them");
}

#[test]
fn one_client_cannot_take_more_than_its_share() {
    let s = server("max-connections-per-client: 3");
    let attacker = ip("127.0.60.1");
    let mut held: Vec<TcpStream> = (0..3).map(|_| connect_from(attacker, s.addr)).collect();
    // The fourth from the same address is closed at once; its query gets no answer.
    let mut fourth = connect_from(attacker, s.addr);
    let _ = fourth.write_all(&frame(4));
    fourth.set_read_timeout(Some(TIMEOUT)).unwrap();
    assert!(read_reply(&mut fourth).is_none());
    // The three it holds still work, and so does everyone else.
    for (i, stream) in held.iter_mut().enumerate() {
        stream.write_all(&frame(i as u16)).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        assert!(read_reply(stream).is_some(), "held connection {i}");
    }
    let mut other = connect_from(ip("127.0.60.2"), s.addr);
    other.write_all(&frame(9)).unwrap();
    other.set_read_timeout(Some(TIMEOUT)).unwrap();
    assert_eq!(read_reply(&mut other).unwrap().metadata.id, 9);
    assert_eq!(
        metric(&s, "meridian_tcp_refused_total{reason=\"per-client\"}"),
        1
    );
}

#[test]
fn at_the_cap_a_new_client_evicts_the_connection_idle_longest() {
    let s = server("max-connections: 6");
    // Six idle connections from six addresses fill the server.
    let mut idle: Vec<TcpStream> = (1..=6)
        .map(|i| {
            let c = connect_from(ip(&format!("127.0.61.{i}")), s.addr);
            std::thread::sleep(Duration::from_millis(20));
            c
        })
        .collect();
    eventually(Duration::from_secs(2), "six open", || {
        metric(&s, "meridian_tcp_connections ") == 6
    });
    // A newcomer is served, and the oldest idle connection makes room for it.
    let mut newcomer = connect_from(ip("127.0.61.100"), s.addr);
    newcomer.write_all(&frame(1)).unwrap();
    newcomer.set_read_timeout(Some(TIMEOUT)).unwrap();
    assert!(read_reply(&mut newcomer).is_some());
    assert!(
        closed_within(&mut idle[0], Duration::from_secs(2)).is_some(),
        "oldest evicted"
    );
    assert_eq!(
        metric(&s, "meridian_tcp_closed_total{reason=\"evicted\"}"),
        1
    );
    idle[5].write_all(&frame(2)).unwrap();
    idle[5].set_read_timeout(Some(TIMEOUT)).unwrap();
    assert!(
        read_reply(&mut idle[5]).is_some(),
        "the newest idle one is kept"
    );
}

/// CPU seconds (user + system) a process has used.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    (fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap()) / 100.0
}

#[test]
fn six_hundred_held_connections_under_a_256_file_limit_leave_tcp_and_admin_served() {
    let admin_port = crate::common::backend::free_port(ip("127.0.0.1"));
    let (_dir, file) = write_config_with(
        &format!("admin: {{ listen: 127.0.0.1:{admin_port} }}\n"),
        &[("tcp.yaml", ZONE)],
    );
    let served = serve_limited(&file, 256);
    let admin: SocketAddr = format!("127.0.0.1:{admin_port}").parse().unwrap();
    // The attacker: 600 connections from 20 addresses, held open, the closed ones reopened.
    let attackers: Vec<IpAddr> = (1..=20).map(|i| ip(&format!("127.0.62.{i}"))).collect();
    let mut held: Vec<TcpStream> = Vec::new();
    let cpu_before = cpu_seconds(served.child.id());
    let started = Instant::now();
    for round in 0..3 {
        for a in &attackers {
            for _ in 0..30 / 3 {
                if let Ok(c) = std::panic::catch_unwind(|| connect_from(*a, served.addr)) {
                    held.push(c);
                }
            }
        }
        // Meanwhile a well-behaved client and the admin API get answers.
        let mut client = connect_from(ip("127.0.63.1"), served.addr);
        client.write_all(&frame(round)).unwrap();
        client.set_read_timeout(Some(TIMEOUT)).unwrap();
        let answer = read_reply(&mut client).expect("the client is answered");
        assert_eq!(answer.metadata.id, round);
        let (code, _) = http(admin, "GET", "/healthz", None);
        assert_eq!(code, 200);
    }
    assert!(held.len() >= 500, "held {}", held.len());
    std::thread::sleep(Duration::from_millis(500));
    let busy = (cpu_seconds(served.child.id()) - cpu_before) / started.elapsed().as_secs_f64();
    assert!(
        busy < 0.5,
        "the server used {:.0} % of a core",
        busy * 100.0
    );
    assert!(served.log_contains("TCP limits"), "the cap is logged");
}
