//! Meridian as a hidden primary: real secondaries (Debian's knot and bind9) take a zone by
//! AXFR signed with TSIG, are sent NOTIFY on every change, and follow a health change by
//! IXFR. The requests a secondary makes are also made by hand, to check each answer.

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::rdata::tsig::TsigAlgorithm;
use hickory_proto::rr::{Name, RData, Record, RecordType, TSigner};

use crate::common::InProcess;
use crate::common::backend::{TcpBackend, free_port};
use crate::common::daemon::Daemon;
use crate::common::*;

const PRIMARY: &str = "127.0.94.1";
const KNOT: &str = "127.0.94.2";
/// named listens only on the addresses of interfaces, and 127.0.0.1 is the loopback's.
const BIND: &str = "127.0.0.1";
const NSD: &str = "127.0.94.4";
const KEY: &str = "xfr-key";
const SECRET: &str = "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0cw==";

/// A secondary server process, killed when dropped; its log kept to read.
struct Secondary(Daemon);

impl std::ops::Deref for Secondary {
    type Target = Daemon;
    fn deref(&self) -> &Daemon {
        &self.0
    }
}

impl Secondary {
    /// Waits up to `limit` for `f`; on timeout, fails with the secondary's log.
    fn wait(&self, limit: Duration, what: &str, f: impl Fn(&Secondary) -> bool) {
        let start = Instant::now();
        while start.elapsed() < limit {
            if f(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "timed out after {limit:?} waiting for {what}; its log:\n{}",
            self.log()
        );
    }

    /// The addresses it answers for `name` (A), sorted, when it answers with authority.
    fn answer(&self, name: &str) -> Option<Vec<String>> {
        let q = query(name, RecordType::A).to_vec().unwrap();
        let bytes = try_udp_from(ip("127.0.0.1"), self.addr, &q, Duration::from_millis(300))?;
        let m = Message::from_vec(&bytes).ok()?;
        // Sorted: secondaries rotate RRsets.
        (m.metadata.authoritative && m.metadata.response_code == ResponseCode::NoError).then(|| {
            let mut a = addresses(&m);
            a.sort();
            a
        })
    }

    fn serial(&self, zone: &str) -> Option<u32> {
        let q = query(zone, RecordType::SOA).to_vec().unwrap();
        let bytes = try_udp_from(ip("127.0.0.1"), self.addr, &q, Duration::from_millis(300))?;
        serial_in(&Message::from_vec(&bytes).ok()?.answers)
    }
}

fn serial_in(records: &[Record]) -> Option<u32> {
    records.iter().find_map(|r| match &r.data {
        RData::SOA(s) => Some(s.serial),
        _ => None,
    })
}

/// knotd as a secondary of `primary` for `zone`, taking NOTIFY from it (signed).
fn knot_secondary(zone: &str, primary: SocketAddr, port: u16) -> Secondary {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["run", "db"] {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
    }
    let d = dir.path().display();
    let (pip, pport) = (primary.ip(), primary.port());
    std::fs::write(
        dir.path().join("knot.conf"),
        format!(
            "server:\n  rundir: \"{d}/run\"\n  listen: {KNOT}@{port}\n  udp-workers: 1\n  tcp-workers: 1\n  background-workers: 1\n\
             database:\n  storage: \"{d}/db\"\n\
             log:\n  - target: \"{d}/knot.log\"\n    any: info\n\
             key:\n  - id: {KEY}\n    algorithm: hmac-sha256\n    secret: {SECRET}\n\
             remote:\n  - id: primary\n    address: {pip}@{pport}\n    key: {KEY}\n\
             acl:\n  - id: notify\n    address: {pip}\n    key: {KEY}\n    action: notify\n\
             zone:\n  - domain: {zone}\n    storage: \"{d}\"\n    file: zone.db\n    master: primary\n    acl: notify\n    zonefile-sync: -1\n"
        ),
    )
    .unwrap();
    let mut cmd = Command::new("knotd");
    cmd.arg("-c").arg(dir.path().join("knot.conf"));
    let log = dir.path().join("knot.log");
    Secondary(Daemon::spawn(
        cmd,
        dir,
        SocketAddr::new(ip(KNOT), port),
        log,
        false,
        "knot",
    ))
}

/// named (BIND 9) as a secondary of `primary` for `zone`, with the key for everything it
/// asks the primary.
fn bind_secondary(zone: &str, primary: SocketAddr, port: u16) -> Secondary {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let (pip, pport) = (primary.ip(), primary.port());
    std::fs::write(
        dir.path().join("named.conf"),
        format!(
            "options {{\n  directory \"{d}\";\n  pid-file \"{d}/named.pid\";\n  session-keyfile \"{d}/session.key\";\n  managed-keys-directory \"{d}\";\n  listen-on port {port} {{ {BIND}; }};\n  listen-on-v6 {{ none; }};\n  recursion no;\n  dnssec-validation no;\n  notify no;\n}};\n\
             key \"{KEY}\" {{ algorithm hmac-sha256; secret \"{SECRET}\"; }};\n\
             server {pip} {{ keys {{ {KEY}; }}; }};\n\
             controls {{ }};\n\
             zone \"{zone}\" {{ type secondary; primaries port {pport} {{ {pip} key {KEY}; }}; file \"{d}/zone.db\"; }};\n"
        ),
    )
    .unwrap();
    let mut cmd = Command::new("named");
    cmd.args(["-g", "-n", "1", "-c"])
        .arg(dir.path().join("named.conf"));
    // named -g logs to stderr only.
    let log = dir.path().join("named.log");
    Secondary(Daemon::spawn(
        cmd,
        dir,
        SocketAddr::new(ip(BIND), port),
        log,
        true,
        "bind9",
    ))
}

/// nsd as a secondary of `primary` for `zone`, taking NOTIFY from it (signed).
fn nsd_secondary(zone: &str, primary: SocketAddr, port: u16) -> Secondary {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let (pip, pport) = (primary.ip(), primary.port());
    std::fs::write(
        dir.path().join("nsd.conf"),
        format!(
            "server:\n  ip-address: {NSD}@{port}\n  zonesdir: \"{d}\"\n  pidfile: \"{d}/nsd.pid\"\n  database: \"\"\n  xfrdfile: \"{d}/xfrd.state\"\n  zonelistfile: \"{d}/zone.list\"\n  xfrdir: \"{d}\"\n  username: \"\"\n  chroot: \"\"\n  logfile: \"{d}/nsd.log\"\n  verbosity: 2\n  server-count: 1\n  xfrd-reload-timeout: 0\n\
             remote-control:\n  control-enable: no\n\
             key:\n  name: \"{KEY}\"\n  algorithm: hmac-sha256\n  secret: \"{SECRET}\"\n\
             zone:\n  name: \"{zone}\"\n  zonefile: \"zone.db\"\n  allow-notify: {pip} {KEY}\n  request-xfr: {pip}@{pport} {KEY}\n"
        ),
    )
    .unwrap();
    let mut cmd = Command::new("nsd");
    cmd.args(["-d", "-c"]).arg(dir.path().join("nsd.conf"));
    let log = dir.path().join("nsd.log");
    Secondary(Daemon::spawn(
        cmd,
        dir,
        SocketAddr::new(ip(NSD), port),
        log,
        false,
        "nsd",
    ))
}

/// The zone: static records, and a health-checked name whose first member is the one
/// answered while it is up (fixed weight).
fn zone_yaml(backend_port: u16, notify: &[SocketAddr], members: [&str; 2]) -> String {
    let notify: Vec<String> = notify.iter().map(|a| format!("\"{a}\"")).collect();
    let [leader, standby] = members;
    format!(
        "zone: kemp.test\nttl: 300\nns: [ns1]\nrecords:\n  ns1: {{ A: {PRIMARY} }}\n  www: {{ A: [192.0.2.10, 192.0.2.11], TXT: \"hello\" }}\n  mail: {{ MX: \"10 mx1\" }}\n  mx1: {{ AAAA: \"2001:db8::25\" }}\n\
         fqdns:\n  vault:\n    ttl: 30\n    selection: fixed-weight\n    check: {{ type: tcp, port: {backend_port}, interval: 200ms, timeout: 100ms, rise: 1, fall: 1 }}\n    members:\n      - {{ address: {leader}, weight: 100 }}\n      - {{ address: {standby}, weight: 50 }}\n\
         transfer:\n  allow: [127.0.0.1]\n  notify: [{}]\n  tsig: {{ name: {KEY}, secret: \"{SECRET}\" }}\n",
        notify.join(", ")
    )
}

/// Meridian on `addr`, serving `zone`.
fn primary(zone: &str, addr: SocketAddr) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("zones")).unwrap();
    std::fs::write(dir.path().join("zones/kemp.yaml"), zone).unwrap();
    let file = dir.path().join("meridian.yaml");
    std::fs::write(&file, format!("listen: [\"{addr}\"]\nzones: zones\n")).unwrap();
    start_with(dir, &file)
}

fn signer() -> TSigner {
    let secret = data_encoding::BASE64.decode(SECRET.as_bytes()).unwrap();
    TSigner::new(
        secret,
        TsigAlgorithm::HmacSha256,
        Name::from_ascii(KEY).unwrap(),
        300,
    )
    .unwrap()
}

/// A transfer request for `zone`: AXFR, or IXFR from `serial`; signed with `key`.
fn transfer_query(zone: &str, serial: Option<u32>, key: Option<&TSigner>) -> Vec<u8> {
    let mut m = plain_query(
        zone,
        if serial.is_some() {
            RecordType::IXFR
        } else {
            RecordType::AXFR
        },
    );
    if let Some(serial) = serial {
        let soa = SOA::new(Name::root(), Name::root(), serial, 0, 0, 0, 0);
        m.authorities.push(Record::from_rdata(
            Name::from_ascii(zone).unwrap(),
            0,
            RData::SOA(soa),
        ));
    }
    if let Some(key) = key {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        m.finalize(key, now).unwrap();
    }
    m.to_vec().unwrap()
}

/// Every message of the answer to `request` over one TCP connection, read until the
/// closing SOA (or the first message, for an error or a lone SOA).
fn transfer(addr: SocketAddr, request: &[u8]) -> Vec<Message> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut framed = (request.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(request);
    s.write_all(&framed).unwrap();
    let mut out: Vec<Message> = Vec::new();
    let mut soas = 0;
    loop {
        let mut len = [0u8; 2];
        if s.read_exact(&mut len).is_err() {
            break;
        }
        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
        s.read_exact(&mut buf).unwrap();
        let m = Message::from_vec(&buf).unwrap();
        soas += m
            .answers
            .iter()
            .filter(|r| r.record_type() == RecordType::SOA)
            .count();
        let done = m.metadata.response_code != ResponseCode::NoError
            || m.answers.len() == 1 && out.is_empty()
            || soas >= 2
                && m.answers
                    .last()
                    .is_some_and(|r| r.record_type() == RecordType::SOA);
        out.push(m);
        if done {
            break;
        }
    }
    out
}

/// Each record of the answer messages as type and data: "SOA <serial>", "A 192.0.2.1".
fn records(messages: &[Message]) -> Vec<String> {
    messages
        .iter()
        .flat_map(|m| &m.answers)
        .map(|r| match &r.data {
            RData::SOA(s) => format!("SOA {}", s.serial),
            data => format!("{} {} {data}", r.name, r.record_type()),
        })
        .collect()
}

fn kdig_axfr(server: SocketAddr, secret: &str) -> (bool, String) {
    let out = Command::new("kdig")
        .arg(format!("@{}", server.ip()))
        .args(["-p", &server.port().to_string(), "kemp.test.", "AXFR", "-y"])
        .arg(format!("hmac-sha256:{KEY}:{secret}"))
        .output()
        .expect("kdig is installed (Debian package knot-dnsutils)");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success() && !text.contains(";; ERROR"), text)
}

#[test]
fn transfers_need_the_key_and_an_allowed_address_and_ixfr_sends_the_difference() {
    let backend = TcpBackend::start("127.0.95.10:0".parse().unwrap());
    let port = backend.addr.port();
    let _standby = TcpBackend::start(format!("127.0.95.11:{port}").parse().unwrap());
    let addr = SocketAddr::new(ip("127.0.95.1"), free_port(ip("127.0.95.1")));
    let server = primary(&zone_yaml(port, &[], ["127.0.95.10", "127.0.95.11"]), addr);
    let key = signer();

    // kdig checks the TSIG of every message it gets.
    let (ok, text) = kdig_axfr(server.addr, SECRET);
    assert!(ok, "{text}");
    assert!(
        text.contains("vault.kemp.test.") && text.contains("127.0.95.10"),
        "{text}"
    );
    assert!(
        !text.contains("127.0.95.11"),
        "the standby is not answered: {text}"
    );
    let (ok, text) = kdig_axfr(
        server.addr,
        "b3RoZXJvdGhlcm90aGVyb3RoZXJvdGhlcm90aGVyb3RoZXI=",
    );
    assert!(!ok && text.contains("BADSIG"), "a wrong secret: {text}");

    // Without the key, from elsewhere, or over UDP: refused.
    let rcode = |bytes: &[u8]| Message::from_vec(bytes).unwrap().metadata.response_code;
    let unsigned = transfer(server.addr, &transfer_query("kemp.test.", None, None));
    assert_eq!(unsigned[0].metadata.response_code, ResponseCode::Refused);
    let signed = transfer_query("kemp.test.", None, Some(&key));
    assert_eq!(
        rcode(&tcp_raw_from(ip("127.0.0.2"), server.addr, &signed)),
        ResponseCode::Refused
    );
    assert_eq!(
        rcode(&udp_raw(server.addr, &signed).unwrap()),
        ResponseCode::Refused
    );
    let other = transfer(
        server.addr,
        &transfer_query("other.test.", None, Some(&key)),
    );
    assert_eq!(other[0].metadata.response_code, ResponseCode::NotAuth);

    // IXFR from the current serial: the SOA alone.
    let serial = served_serial(&server);
    let ixfr = |from: u32| {
        transfer(
            server.addr,
            &transfer_query("kemp.test.", Some(from), Some(&key)),
        )
    };
    assert_eq!(records(&ixfr(serial)), [format!("SOA {serial}")]);

    // A step-down: the serial goes up by one, and IXFR from the old one is the difference.
    backend.stop();
    eventually(Duration::from_secs(5), "the serial to move on", || {
        served_serial(&server) == serial.wrapping_add(1)
    });
    let next = serial.wrapping_add(1);
    let diff = records(&ixfr(serial));
    assert_eq!(diff.len(), 6, "{diff:?}");
    assert_eq!(diff[0], format!("SOA {next}"));
    assert_eq!(diff[1], format!("SOA {serial}"));
    assert!(
        diff[2].starts_with("vault.kemp.test. A 127.0.95.10"),
        "{diff:?}"
    );
    assert_eq!(diff[3], format!("SOA {next}"));
    assert!(
        diff[4].starts_with("vault.kemp.test. A 127.0.95.11"),
        "{diff:?}"
    );
    assert_eq!(diff[5], format!("SOA {next}"));
    // From a serial the journal does not hold: the whole zone, as AXFR sends it.
    let whole = records(&ixfr(serial.wrapping_sub(5)));
    assert_eq!(whole.first(), Some(&format!("SOA {next}")));
    assert_eq!(whole.last(), Some(&format!("SOA {next}")));
    assert!(
        whole.iter().any(|r| r.starts_with("www.kemp.test. TXT")),
        "{whole:?}"
    );
    assert_eq!(whole.len(), 10, "{whole:?}");
}

fn leader(server: &TestServer) -> Vec<String> {
    addresses(&udp_exchange(
        server.addr,
        &query("vault.kemp.test.", RecordType::A),
    ))
}

fn served_serial(server: &TestServer) -> u32 {
    serial_in(&udp_exchange(server.addr, &query("kemp.test.", RecordType::SOA)).answers)
        .expect("an SOA")
}

#[test]
fn secondaries_take_the_zone_and_follow_a_step_down_by_notify_and_ixfr() {
    let backend = TcpBackend::start("127.0.94.10:0".parse().unwrap());
    let port = backend.addr.port();
    let _standby = TcpBackend::start(format!("127.0.94.11:{port}").parse().unwrap());
    // Every address first: the zone names the secondaries, they name the primary.
    let pport = free_port(ip(PRIMARY));
    let (kport, bport, nport) = (free_port(ip(KNOT)), free_port(ip(BIND)), free_port(ip(NSD)));
    let at = |host: &str, port| SocketAddr::new(ip(host), port);
    let notify = [at(KNOT, kport), at(BIND, bport), at(NSD, nport)];
    let zone = zone_yaml(port, &notify, ["127.0.94.10", "127.0.94.11"]);
    let server = primary(&zone, at(PRIMARY, pport));
    let knot = knot_secondary("kemp.test", server.addr, kport);
    let bind = bind_secondary("kemp.test", server.addr, bport);
    let nsd = nsd_secondary("kemp.test", server.addr, nport);
    let secondaries = [("Knot", &knot), ("BIND", &bind), ("NSD", &nsd)];
    let serial = served_serial(&server);
    for (who, s) in secondaries {
        s.wait(
            Duration::from_secs(20),
            &format!("{who} to take the zone"),
            |s| s.answer("vault.kemp.test.") == Some(vec!["127.0.94.10".to_string()]),
        );
        assert_eq!(s.serial("kemp.test."), Some(serial), "{who}: {}", s.log());
        assert_eq!(
            s.answer("www.kemp.test."),
            Some(vec!["192.0.2.10".to_string(), "192.0.2.11".to_string()])
        );
    }
    assert!(knot.log().contains("AXFR, incoming"), "{}", knot.log());

    // The leader goes: Meridian answers the standby, and the secondaries follow.
    backend.stop();
    let stopped = Instant::now();
    eventually(
        Duration::from_secs(5),
        "Meridian to answer the standby",
        || leader(&server) == ["127.0.94.11"],
    );
    let meridian_took = stopped.elapsed();
    let answered = Instant::now();
    // All three asked in each round, so that each one's time is its own.
    let mut took: Vec<Option<Duration>> = vec![None; secondaries.len()];
    while took.iter().any(Option::is_none) && answered.elapsed() < Duration::from_secs(10) {
        for (i, (_, s)) in secondaries.iter().enumerate() {
            if took[i].is_none()
                && s.answer("vault.kemp.test.") == Some(vec!["127.0.94.11".to_string()])
            {
                took[i] = Some(answered.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let took: Vec<(&str, Duration)> = secondaries
        .iter()
        .zip(&took)
        .map(|((who, s), t)| {
            (
                *who,
                t.unwrap_or_else(|| panic!("{who} kept the leader:\n{}", s.log())),
            )
        })
        .collect();
    eprintln!(
        "step-down: Meridian answered the standby {meridian_took:?} after the leader stopped; the secondaries {} later (NOTIFY + IXFR)",
        took.iter()
            .map(|(w, t)| format!("{w} {t:?}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    // NOTIFY + IXFR, not a refresh timer (3600 s): well within a few seconds.
    for (who, t) in &took {
        assert!(*t < Duration::from_secs(5), "{who} took {t:?}");
    }
    let after = served_serial(&server);
    assert_eq!(after, serial.wrapping_add(1));
    assert_eq!(knot.serial("kemp.test."), Some(after));
    assert_eq!(bind.serial("kemp.test."), Some(after));
    assert_eq!(nsd.serial("kemp.test."), Some(after));
    assert!(knot.log().contains("IXFR, incoming"), "{}", knot.log());
    // BIND names no transfer type; the second one carried the difference alone: the new
    // SOA, the old one, the leader's address out, the new SOA, the standby's in, the new
    // SOA (a whole zone would be 10 records).
    let log = bind.log();
    let last = log
        .lines()
        .rfind(|l| l.contains("Transfer completed"))
        .unwrap_or("");
    assert!(last.contains(" 6 records"), "{log}");
}

#[test]
fn a_zone_serial_is_the_same_for_the_same_files_and_grows_on_every_change() {
    let zone = "zone: serial.test\nns: [ns1]\nrecords:\n  www: { A: 192.0.2.1 }\n";
    let serial = |s: &InProcess| s.state.table.load().zones().next().unwrap().serial();
    let a = in_process(&[("z.yaml", zone)]);
    let b = in_process(&[("another-name.yaml", zone)]);
    assert_eq!(serial(&a), serial(&b), "two servers, the same zone text");

    // Each edit serves a serial above the last (RFC 1982), though the content's own
    // (a hash) is smaller about every other time: then the last one plus one.
    let mut last = serial(&a);
    let mut stepped = 0;
    for i in 2..10 {
        let text = zone.replace("192.0.2.1", &format!("192.0.2.{i}"));
        std::fs::write(a.dir().join("zones/z.yaml"), text).unwrap();
        a.rt.block_on(a.state.reload()).unwrap();
        let now = serial(&a);
        assert!(
            meridian::model::serial_above(now, last),
            "{now} after {last}"
        );
        stepped += usize::from(now == last.wrapping_add(1));
        last = now;
    }
    assert!(stepped > 0, "some edit's own serial was below the last");

    // A serial the file gives is served as it is.
    let given = in_process(&[(
        "z.yaml",
        &zone.replace("ns: [ns1]", "ns: [ns1]\nsoa: { serial: 2026120501 }"),
    )]);
    assert_eq!(serial(&given), 2026120501);
}

#[test]
fn the_transfer_view_decides_what_a_health_checked_name_goes_out_as() {
    let backend = TcpBackend::start("127.0.96.10:0".parse().unwrap());
    let port = backend.addr.port();
    let _b = TcpBackend::start(format!("127.0.96.20:{port}").parse().unwrap());
    let _c = TcpBackend::start(format!("127.0.96.21:{port}").parse().unwrap());
    let zone = |view: &str| {
        format!(
            "zone: view.test\nns: [ns1]\nrecords:\n  ns1: {{ A: 192.0.2.53 }}\n\
             sites:\n  site-a: {{ lat: 51.5, lon: -0.1 }}\n  site-b: {{ lat: 40.7, lon: -74.0 }}\n\
             fqdns:\n  app:\n    selection: location\n    check: {{ type: tcp, port: {port} }}\n    members:\n      - {{ address: 127.0.96.10, site: site-a }}\n      - {{ address: 127.0.96.20, site: site-b }}\n      - {{ address: 127.0.96.21, site: site-b }}\n\
             transfer:\n  allow: [127.0.0.1]\n{view}"
        )
    };
    let axfr = |view: &str| {
        let addr = SocketAddr::new(ip("127.0.96.1"), free_port(ip("127.0.96.1")));
        let server = primary(&zone(view), addr);
        let mut app: Vec<String> = records(&transfer(
            server.addr,
            &transfer_query("view.test.", None, None),
        ))
        .into_iter()
        .filter(|r| r.starts_with("app.view.test."))
        .collect();
        app.sort();
        app
    };
    let a = |last: &str| format!("app.view.test. A 127.0.96.{last}");
    // A client at site-b gets either of site-b's members, in turn: both go out.
    assert_eq!(axfr("transfer-view: site-b\n"), [a("20"), a("21")]);
    assert_eq!(axfr("transfer-view: site-a\n"), [a("10")]);
    // Every member up.
    assert_eq!(axfr(""), [a("10"), a("20"), a("21")]);
}

#[test]
fn a_transfer_section_that_cannot_work_is_an_error_at_its_line() {
    let errors = |zone: &str| {
        let (dir, file) = write_config(&[("bad.yaml", zone)]);
        let (code, _, err) = run_meridian(&["check".as_ref(), "-c".as_ref(), file.as_os_str()]);
        drop(dir);
        assert_eq!(code, Some(1), "{err}");
        err
    };
    let base = "zone: bad.test\nns: [ns1]\n";
    let err = errors(&format!(
        "{base}transfer:\n  allow: [127.0.0.1]\ntransfer-view: site-x\n"
    ));
    assert!(err.contains("bad.yaml:5:16: transfer-view: `site-x` is neither `all` nor a site of this zone (sites: none)"), "{err}");
    let err = errors(&format!(
        "{base}transfer:\n  notify: [127.0.0.1]\n  tsig: {{ name: k, secret: \"not base64!\" }}\n"
    ));
    assert!(
        err.contains("bad.yaml:5:28: transfer.tsig.secret: not a key in base64"),
        "{err}"
    );
    let err = errors(&format!(
        "{base}transfer: {{ tsig: {{ name: k, secret: \"{SECRET}\" }} }}\n"
    ));
    assert!(
        err.contains("bad.yaml:3:11: transfer: say who may transfer the zone"),
        "{err}"
    );
    let err = errors(&format!(
        "{base}dnssec: {{ key: k.pem }}\ntransfer:\n  allow: [127.0.0.1]\n"
    ));
    assert!(
        err.contains("transfer: a zone signed online (`dnssec:`) cannot be transferred"),
        "{err}"
    );
    let err = errors(&format!("{base}transfer-view: all\n"));
    assert!(
        err.contains(
            "bad.yaml:3:16: transfer-view: only means something with a `transfer:` section"
        ),
        "{err}"
    );
}
