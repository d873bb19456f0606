//! DNSSEC: a signed zone's answers validated by real validators. A validating Unbound
//! (Debian's package), started here with the zone's DNSKEY as its trust anchor and
//! Meridian as the zone's stub, must set AD on every kind of answer, a health-checked one
//! before and after a step-down included; `delv` (bind9-dnsutils) must validate them
//! too; and a trust anchor for another key must make both fail.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

use crate::common::backend::{HttpBackend, free_port};
use crate::common::*;

const MERIDIAN: &str = "127.0.90.1";
const UNBOUND: &str = "127.0.90.53";

/// A query with DO (and CO when asked), buffer 1232.
fn do_query(name: &str, rtype: RecordType, compact_ok: bool) -> Message {
    let mut msg = Message::query();
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    edns.set_dnssec_ok(true);
    if compact_ok {
        edns.flags_mut().z |= 0x4000;
    }
    msg.set_edns(edns);
    msg
}

fn types(records: &[hickory_proto::rr::Record]) -> Vec<RecordType> {
    records.iter().map(|r| r.record_type()).collect()
}

/// The zone: static records, a CNAME, an empty non-terminal, and a health-checked name
/// whose leader answers 200 on /health.
fn zone(port: u16) -> String {
    let txt = "t".repeat(99);
    format!(
        "zone: signed.test\nns: [ns1]\ndnssec: {{}}\nrecords:\n  ns1: {{ A: {MERIDIAN} }}\n  www: {{ A: [192.0.2.1, 192.0.2.2], TXT: hello }}\n  alias: {{ CNAME: www }}\n  deep.er: {{ A: 192.0.2.9 }}\n  big: {{ TXT: [{txt}, {txt}x, {txt}y, {txt}z] }}\nfqdns:\n  vault:\n    ttl: 1\n    selection: all-available\n    check: {{ type: http, port: {port}, path: /health, expect: [200], interval: 200ms, timeout: 150ms, rise: 1, fall: 1 }}\n    members:\n      - {{ address: 127.0.90.11 }}\n      - {{ address: 127.0.90.12 }}\n"
    )
}

struct Signed {
    served: Served,
    dir: tempfile::TempDir,
    /// The DNSKEY's fields as Unbound and delv take them: "257 3 13 <base64>".
    dnskey: String,
}

fn start_signed(port: u16) -> Signed {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("zones")).unwrap();
    std::fs::write(dir.path().join("zones/signed.yaml"), zone(port)).unwrap();
    let config = dir.path().join("meridian.yaml");
    std::fs::write(&config, format!("listen: [{MERIDIAN}:0]\nzones: zones\n")).unwrap();
    let served = serve(&config);
    assert!(
        served.log_contains("created a DNSSEC key"),
        "the first start creates the key and says so"
    );
    assert!(dir.path().join("zones/signed.test.dnssec.pem").is_file());
    let keys = udp_exchange(
        served.addr,
        &do_query("signed.test.", RecordType::DNSKEY, false),
    );
    let dnskey = keys
        .answers
        .iter()
        .find(|r| r.record_type() == RecordType::DNSKEY)
        .expect("a DNSKEY at the apex")
        .data
        .to_string();
    Signed {
        served,
        dir,
        dnskey,
    }
}

struct Unbound {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Unbound {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A validating Unbound on 127.0.90.53 trusting `dnskey` for signed.test, which it asks
/// of `meridian` alone (the root too, so nothing leaves the machine).
fn start_unbound(dir: &Path, meridian: SocketAddr, dnskey: &str) -> Unbound {
    let port = free_port(ip(UNBOUND));
    let conf = dir.join("unbound.conf");
    let stub = format!("{}@{}", meridian.ip(), meridian.port());
    std::fs::write(
        &conf,
        format!(
            "server:\n  interface: {UNBOUND}\n  port: {port}\n  do-daemonize: no\n  username: \"\"\n  chroot: \"\"\n  directory: \"{dir}\"\n  pidfile: \"\"\n  use-syslog: no\n  logfile: \"\"\n  verbosity: 1\n  val-log-level: 2\n  do-ip6: no\n  do-not-query-localhost: no\n  access-control: 127.0.0.0/8 allow\n  module-config: \"validator iterator\"\n  trust-anchor: \"signed.test. DNSKEY {dnskey}\"\n  cache-max-ttl: 1\n  cache-max-negative-ttl: 1\n  qname-minimisation: no\n  local-zone: \"test.\" nodefault\nremote-control:\n  control-enable: no\nstub-zone:\n  name: \"signed.test\"\n  stub-addr: {stub}\nstub-zone:\n  name: \".\"\n  stub-addr: {stub}\n",
            dir = dir.display()
        ),
    )
    .unwrap();
    let child = Command::new("unbound")
        .args(["-d", "-c"])
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("unbound is installed (Debian package unbound)");
    let addr = SocketAddr::new(ip(UNBOUND), port);
    let unbound = Unbound { child, addr };
    let probe = do_query("www.signed.test.", RecordType::A, false)
        .to_vec()
        .unwrap();
    eventually(Duration::from_secs(10), "unbound to answer", || {
        try_udp_from(ip("127.0.0.1"), addr, &probe, Duration::from_millis(300)).is_some()
    });
    unbound
}

/// Unbound's answer and whether it validated it (AD).
fn through(unbound: &Unbound, name: &str, rtype: RecordType) -> Message {
    udp_exchange(unbound.addr, &do_query(name, rtype, false))
}

fn validated(msg: &Message) -> bool {
    msg.metadata.authentic_data
}

fn delv(meridian: SocketAddr, anchor: &Path, name: &str, rtype: &str) -> String {
    let out = Command::new("delv")
        .arg(format!("@{}", meridian.ip()))
        .args(["-p", &meridian.port().to_string(), "-a"])
        .arg(anchor)
        .args(["+root=signed.test", name, rtype])
        .output()
        .expect("delv is installed (Debian package bind9-dnsutils)");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn anchor_file(dir: &Path, dnskey: &str, file: &str) -> PathBuf {
    let mut words = dnskey.split_whitespace();
    let (flags, protocol, alg) = (
        words.next().unwrap(),
        words.next().unwrap(),
        words.next().unwrap(),
    );
    let key: String = words.collect();
    let path = dir.join(file);
    std::fs::write(
        &path,
        format!(
            "trust-anchors {{ signed.test. static-key {flags} {protocol} {alg} \"{key}\"; }};\n"
        ),
    )
    .unwrap();
    path
}

#[test]
fn unbound_and_delv_validate_every_kind_of_answer_across_a_step_down() {
    let port = free_port(ip("127.0.90.11"));
    let a = HttpBackend::start(SocketAddr::new(ip("127.0.90.11"), port), 200, None);
    let b = HttpBackend::start(SocketAddr::new(ip("127.0.90.12"), port), 429, None);
    let signed = start_signed(port);
    let meridian = signed.served.addr;
    eventually(Duration::from_secs(5), "the leader to answer", || {
        addresses(&udp_exchange(
            meridian,
            &query("vault.signed.test.", RecordType::A),
        )) == ["127.0.90.11"]
    });
    let unbound = start_unbound(signed.dir.path(), meridian, &signed.dnskey);

    // Positive, CNAME, NODATA, a name that does not exist, an empty non-terminal.
    let www = through(&unbound, "www.signed.test.", RecordType::A);
    assert!(validated(&www), "www A: {www:?}");
    assert_eq!(addresses(&www), ["192.0.2.1", "192.0.2.2"]);
    let alias = through(&unbound, "alias.signed.test.", RecordType::A);
    assert!(validated(&alias), "alias A: {alias:?}");
    assert_eq!(types(&alias.answers)[0], RecordType::CNAME);
    for (name, rtype) in [
        ("www.signed.test.", RecordType::AAAA),
        ("nothing.signed.test.", RecordType::A),
        ("er.signed.test.", RecordType::A),
    ] {
        let negative = through(&unbound, name, rtype);
        assert!(validated(&negative), "{name} {rtype}: {negative:?}");
        assert_rcode(&negative, ResponseCode::NoError);
        assert!(negative.answers.is_empty(), "{name} {rtype}: {negative:?}");
    }

    // The health-checked name: its leader, then the other member after a step-down.
    let before = through(&unbound, "vault.signed.test.", RecordType::A);
    assert!(validated(&before), "vault A: {before:?}");
    assert_eq!(addresses(&before), ["127.0.90.11"]);
    a.set_status(429);
    b.set_status(200);
    eventually(
        Duration::from_secs(10),
        "the step-down through unbound",
        || {
            let after = through(&unbound, "vault.signed.test.", RecordType::A);
            validated(&after) && addresses(&after) == ["127.0.90.12"]
        },
    );

    // delv validates the same answers against the same key.
    let anchor = anchor_file(signed.dir.path(), &signed.dnskey, "anchor.conf");
    for (name, rtype, want) in [
        ("www.signed.test", "A", "; fully validated"),
        ("alias.signed.test", "A", "; fully validated"),
        ("vault.signed.test", "A", "; fully validated"),
        (
            "www.signed.test",
            "AAAA",
            "; negative response, fully validated",
        ),
        (
            "nothing.signed.test",
            "A",
            "; negative response, fully validated",
        ),
    ] {
        let out = delv(meridian, &anchor, name, rtype);
        assert!(out.contains(want), "delv {name} {rtype}:\n{out}");
    }

    // Another key as the trust anchor: neither validator accepts the answers.
    let other = tempfile::tempdir().unwrap();
    let key = meridian::config::create_key(
        &other.path().join("k.pem"),
        hickory_proto::dnssec::Algorithm::ECDSAP256SHA256,
    )
    .unwrap();
    let wrong = hickory_proto::dnssec::rdata::DNSKEY::with_flags(257, key.public).to_string();
    let tampered = anchor_file(other.path(), &wrong, "anchor.conf");
    let out = delv(meridian, &tampered, "www.signed.test", "A");
    assert!(
        !out.contains("fully validated") && out.contains("resolution failed"),
        "delv with another key:\n{out}"
    );
    drop(unbound);
    let unbound = start_unbound(other.path(), meridian, &wrong);
    let refused = through(&unbound, "www.signed.test.", RecordType::A);
    assert_rcode(&refused, ResponseCode::ServFail);
}

#[test]
fn signed_answers_carry_their_signatures_on_both_paths_and_only_with_do() {
    let signed = start_signed(free_port(ip("127.0.90.11")));
    let meridian = signed.served.addr;
    // Without DO: no DNSSEC records.
    let plain = udp_exchange(meridian, &query("www.signed.test.", RecordType::A));
    assert_eq!(types(&plain.answers), [RecordType::A, RecordType::A]);
    let nx = udp_exchange(meridian, &query("nothing.signed.test.", RecordType::A));
    assert_rcode(&nx, ResponseCode::NXDomain);
    assert_eq!(types(&nx.authorities), [RecordType::SOA]);

    // With DO, UDP (the fast path) and TCP (the general path) send the same records.
    for exchange in [udp_exchange, tcp_exchange] {
        let www = exchange(
            meridian,
            &do_query("www.signed.test.", RecordType::A, false),
        );
        assert_eq!(
            types(&www.answers),
            [RecordType::A, RecordType::A, RecordType::RRSIG]
        );
        assert!(www.edns.as_ref().unwrap().flags().dnssec_ok, "DO echoed");
        let alias = exchange(
            meridian,
            &do_query("alias.signed.test.", RecordType::A, false),
        );
        assert_eq!(
            types(&alias.answers),
            [
                RecordType::CNAME,
                RecordType::RRSIG,
                RecordType::A,
                RecordType::A,
                RecordType::RRSIG
            ]
        );
        // A name that does not exist: NOERROR with the compact denial, or NXDOMAIN with
        // it when the client sets CO.
        for (co, rcode) in [
            (false, ResponseCode::NoError),
            (true, ResponseCode::NXDomain),
        ] {
            let nx = exchange(
                meridian,
                &do_query("nothing.signed.test.", RecordType::A, co),
            );
            assert_rcode(&nx, rcode);
            assert_eq!(
                types(&nx.authorities),
                [
                    RecordType::SOA,
                    RecordType::RRSIG,
                    RecordType::NSEC,
                    RecordType::RRSIG
                ]
            );
            let RData::DNSSEC(hickory_proto::dnssec::rdata::DNSSECRData::NSEC(nsec)) =
                &nx.authorities[2].data
            else {
                panic!("{nx:?}")
            };
            assert_eq!(
                nsec.next_domain_name().to_string(),
                "\\000.nothing.signed.test."
            );
            let bitmap: Vec<RecordType> = nsec.type_bit_maps().collect();
            assert!(
                bitmap.contains(&RecordType::Unknown(128)),
                "NXNAME: {bitmap:?}"
            );
            assert_eq!(
                nx.edns.as_ref().unwrap().flags().z & 0x4000 != 0,
                co,
                "CO echoed"
            );
        }
    }
    // NXNAME is for bitmaps only (RFC 9824 3.5).
    let nxname = udp_exchange(
        meridian,
        &do_query("www.signed.test.", RecordType::Unknown(128), false),
    );
    assert_rcode(&nxname, ResponseCode::FormErr);
    // Fits a 512-byte buffer unsigned, not signed: truncated, and whole over TCP.
    let mut unsigned = query("big.signed.test.", RecordType::TXT);
    unsigned.edns.as_mut().unwrap().set_max_payload(512);
    let fits = udp_exchange(meridian, &unsigned);
    assert!(
        !fits.metadata.truncation && fits.answers.len() == 4,
        "{fits:?}"
    );
    let mut small = do_query("big.signed.test.", RecordType::TXT, false);
    small.edns.as_mut().unwrap().set_max_payload(512);
    let udp = udp_exchange(meridian, &small);
    assert!(udp.metadata.truncation && udp.answers.is_empty(), "{udp:?}");
    let whole = tcp_exchange(meridian, &small);
    assert_eq!(
        types(&whole.answers),
        [
            RecordType::TXT,
            RecordType::TXT,
            RecordType::TXT,
            RecordType::TXT,
            RecordType::RRSIG
        ]
    );
}

#[test]
fn kdig_shows_the_signatures() {
    let signed = start_signed(free_port(ip("127.0.90.11")));
    let meridian = signed.served.addr;
    let out = Command::new("kdig")
        .arg(format!("@{}", meridian.ip()))
        .args([
            "-p",
            &meridian.port().to_string(),
            "+dnssec",
            "www.signed.test",
            "A",
        ])
        .output()
        .expect("kdig is installed (Debian package knot-dnsutils)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("RRSIG\tA 13 3 300") && text.contains(" signed.test. "),
        "{text}"
    );
    assert!(
        text.contains("EDNS PSEUDOSECTION:") && text.contains("DO"),
        "{text}"
    );
}
