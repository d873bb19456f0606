//! UDP through AF_XDP (`xdp:`), on the host's end of a veth pair into a network
//! namespace, where dig asks.

use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::common::backend::free_port;
use crate::common::netns::NetnsHost;
use crate::common::{
    eventually, ip, query, run_meridian, serve, start_with, udp_exchange, write_config_listening,
};
use hickory_proto::rr::RecordType;

#[test]
fn udp_through_af_xdp_is_answered_on_both_paths_and_the_rest_passes() {
    let host = NetnsHost::create("x", 84);
    let (near6, _) = host.add_ipv6();
    let near4 = host.near();
    let other = host.add_address(3, false);
    let port = free_port(ip(&near4));
    let (dir, file) = server_files(
        &format!("[\"{near4}:{port}\", \"[{near6}]:{port}\"]"),
        host.host_interface(),
    );
    let s = start_with(dir, &file);
    let counters = &s.state().counters;
    let dig = |server: &str, args: &[&str]| {
        let out = host
            .command("dig")
            .args(["+norec", "+tries=1", "+time=2", "-p", &port.to_string()])
            .arg(format!("@{server}"))
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };

    // The fast path, over IPv4 and IPv6, with and without EDNS, answered in the frame.
    let a = dig(&near4, &["www.xdp.test", "A"]);
    assert!(
        a.contains("status: NOERROR") && a.contains("192.0.2.10"),
        "{a}"
    );
    let plain = dig(&near4, &["+noedns", "www.xdp.test", "AAAA"]);
    assert!(plain.contains("2001:db8::10"), "{plain}");
    let v6 = dig(&near6, &["www.xdp.test", "A"]);
    assert!(
        v6.contains("192.0.2.10") && v6.contains("SERVER: fd00:84::1#"),
        "{v6}"
    );
    assert_eq!(counters.xdp_queries.load(Ordering::Relaxed), 3);
    // A burst of 256 from one socket, every one answered (how many land in one batch off
    // the ring is the scheduler's to say).
    assert_eq!(burst(&host, &near4, port, 256), 256);
    let taken = 3 + 256;
    assert_eq!(counters.xdp_queries.load(Ordering::Relaxed), taken);
    // The general path (an opcode the fast path leaves to it) answers through the socket.
    let status = dig(&near4, &["+opcode=status", "www.xdp.test"]);
    assert!(status.contains("status: NOTIMP"), "{status}");
    assert_eq!(counters.xdp_queries.load(Ordering::Relaxed), taken + 1);
    // TCP is the kernel's, as always.
    let tcp = dig(&near4, &["+tcp", "www.xdp.test", "A"]);
    assert!(tcp.contains("192.0.2.10"), "{tcp}");
    assert_eq!(counters.xdp_queries.load(Ordering::Relaxed), taken + 1);

    // UDP to another port on the interface is not the program's: it reaches its socket.
    let socket = UdpSocket::bind((ip(&near4), 0)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let elsewhere = socket.local_addr().unwrap().port().to_string();
    host.command("dig")
        .args(["+tries=1", "+time=1", "-p", &elsewhere])
        .arg(format!("@{near4}"))
        .arg("www.xdp.test")
        .output()
        .unwrap();
    let mut buf = [0u8; 512];
    let (n, from) = socket
        .recv_from(&mut buf)
        .expect("the datagram to another port");
    assert!(
        n > 12 && from.ip() == ip(&host.far()),
        "{n} bytes from {from}"
    );

    // The port on an address Meridian does not listen on: taken off the ring, not ours,
    // dropped (a socket of ours would never have had it).
    let stray = dig(&other, &["www.xdp.test", "A"]);
    assert!(stray.contains("timed out"), "{stray}");
    assert_eq!(counters.xdp_queries.load(Ordering::Relaxed), taken + 2);
    assert_eq!(counters.xdp_dropped.load(Ordering::Relaxed), 1);

    // The program goes with the server.
    drop(s);
    let link = std::process::Command::new("ip")
        .args(["link", "show", host.host_interface()])
        .output()
        .unwrap();
    let link = String::from_utf8_lossy(&link.stdout);
    assert!(!link.contains("xdp"), "{link}");
}

/// Sends `n` queries at once from inside the namespace, then counts the answers that come
/// within 3 s.
fn burst(host: &NetnsHost, server: &str, port: u16, n: u16) -> usize {
    let (ns, far, server) = (host.ns.clone(), host.far(), ip(server));
    std::thread::spawn(move || {
        // This thread alone joins the namespace, so its socket is the namespace's.
        let netns = std::fs::File::open(format!("/var/run/netns/{ns}")).unwrap();
        // SAFETY: setns(2) on an open namespace file; it affects this thread only.
        let r = unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
        let socket = UdpSocket::bind((ip(&far), 0)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(3)))
            .unwrap();
        for id in 0..n {
            let mut q = query("www.xdp.test", RecordType::A);
            q.metadata.id = id;
            socket
                .send_to(&q.to_vec().unwrap(), (server, port))
                .unwrap();
        }
        let mut seen = std::collections::HashSet::new();
        let mut buf = [0u8; 512];
        while seen.len() < usize::from(n) {
            let Ok((len, _)) = socket.recv_from(&mut buf) else {
                break;
            };
            let m = hickory_proto::op::Message::from_vec(&buf[..len]).unwrap();
            assert_eq!(m.answers.len(), 1);
            seen.insert(m.metadata.id);
        }
        seen.len()
    })
    .join()
    .unwrap()
}

#[test]
fn an_interface_deleted_under_xdp_is_reported_and_the_server_answers_on() {
    let host = NetnsHost::create("y", 85);
    let near = host.near();
    let port = free_port(ip(&near));
    let (_dir, file) = server_files(
        &format!("[\"{near}:{port}\", \"127.0.0.1:{port}\"]"),
        host.host_interface(),
    );
    let served = serve(&file);
    let asked = host
        .command("dig")
        .args(["+short", "+tries=1", "+time=2", "-p", &port.to_string()])
        .arg(format!("@{near}"))
        .arg("www.xdp.test")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&asked.stdout).trim(), "192.0.2.10");

    host.remove();
    eventually(Duration::from_secs(5), "the warning", || {
        served.log_contains("xdp: the interface is gone")
    });
    let local = format!("127.0.0.1:{port}").parse().unwrap();
    let answer = udp_exchange(local, &query("www.xdp.test", RecordType::A));
    assert_eq!(crate::common::addresses(&answer), ["192.0.2.10"]);
}

#[test]
fn bad_xdp_settings_stop_the_start_or_the_check_saying_where_and_why() {
    let (_dir, file) = server_files("[127.0.0.1:0]", "nosuchif0");
    let (code, _, err) = run_meridian(&["serve".as_ref(), "-c".as_ref(), file.as_os_str()]);
    assert_ne!(code, Some(0));
    assert!(
        err.contains("xdp.interface nosuchif0: no such interface"),
        "{err}"
    );
    std::fs::write(
        &file,
        "listen: [127.0.0.1:0]\nzones: zones\nxdp: { interface: \"eth0/1\" }\n",
    )
    .unwrap();
    let (code, out, err) = run_meridian(&["check".as_ref(), "-c".as_ref(), file.as_os_str()]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        format!("{out}{err}")
            .contains("meridian.yaml:3:19: xdp.interface: must be an interface name"),
        "{out}{err}"
    );
    std::fs::write(
        &file,
        "listen: [\"127.0.0.1:5300\", \"127.0.0.2:5301\"]\nzones: zones\nxdp: { interface: lo }\n",
    )
    .unwrap();
    let (code, out, err) = run_meridian(&["check".as_ref(), "-c".as_ref(), file.as_os_str()]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        format!("{out}{err}").contains(
            "meridian.yaml:3:6: xdp: the listen addresses must share one port to answer through AF_XDP (they use [5300, 5301])"
        ),
        "{out}{err}"
    );
}

/// A zone `xdp.test` (www: A 192.0.2.10, AAAA 2001:db8::10) and a server file with these
/// listen addresses (a YAML list) and `xdp: { interface }`.
fn server_files(listen: &str, interface: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    write_config_listening(
        listen,
        &format!("xdp: {{ interface: {interface} }}\n"),
        &[(
            "x.yaml",
            "zone: xdp.test\nns: [ns1]\nrecords:\n  www: { A: 192.0.2.10, AAAA: \"2001:db8::10\" }\n",
        )],
    )
}
