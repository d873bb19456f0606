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
    let signed = serve_zone(&zone(port));
    assert!(
        signed.served.log_contains("created a DNSSEC key"),
        "the first start creates the key and says so"
    );
    assert!(
        signed
            .dir
            .path()
            .join("zones/signed.test.dnssec.pem")
            .is_file()
    );
    signed
}

/// `meridian serve` on 127.0.90.1 with one zone file, `zones/signed.yaml`, holding `zone`,
/// and the first DNSKEY it publishes for signed.test.
fn serve_zone(zone: &str) -> Signed {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("zones")).unwrap();
    std::fs::write(dir.path().join("zones/signed.yaml"), zone).unwrap();
    let config = dir.path().join("meridian.yaml");
    std::fs::write(&config, format!("listen: [{MERIDIAN}:0]\nzones: zones\n")).unwrap();
    let served = serve(&config);
    let dnskey = dnskeys(served.addr).remove(0);
    Signed {
        served,
        dir,
        dnskey,
    }
}

impl Signed {
    /// A trust anchor file for delv holding the zone's DNSKEY.
    fn anchor(&self) -> PathBuf {
        anchor_file(self.dir.path(), &self.dnskey, "anchor.conf")
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

/// A trust anchor file for delv holding `dnskey` (a parent with its DS).
fn anchor_file(dir: &Path, dnskey: &str, file: &str) -> PathBuf {
    anchors_file(dir, &[dnskey], file)
}

/// A trust anchor file holding each of `keys` (a parent with their DS records).
fn anchors_file(dir: &Path, keys: &[&str], file: &str) -> PathBuf {
    let mut text = String::from("trust-anchors {\n");
    for dnskey in keys {
        let mut words = dnskey.split_whitespace();
        let (flags, protocol, alg) = (
            words.next().unwrap(),
            words.next().unwrap(),
            words.next().unwrap(),
        );
        let key: String = words.collect();
        text.push_str(&format!(
            "  signed.test. static-key {flags} {protocol} {alg} \"{key}\";\n"
        ));
    }
    text.push_str("};\n");
    let path = dir.join(file);
    std::fs::write(&path, text).unwrap();
    path
}

/// The DNSKEYs the zone publishes, as "257 3 13 <base64>".
fn dnskeys(meridian: SocketAddr) -> Vec<String> {
    let keys = udp_exchange(
        meridian,
        &do_query("signed.test.", RecordType::DNSKEY, false),
    );
    keys.answers
        .iter()
        .filter(|r| r.record_type() == RecordType::DNSKEY)
        .map(|r| r.data.to_string())
        .collect()
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
    let mut got = addresses(&www);
    got.sort();
    assert_eq!(got, ["192.0.2.1", "192.0.2.2"]);
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
    let anchor = signed.anchor();
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

#[test]
fn keys_are_created_once_checked_and_their_ds_printed() {
    let (dir, config) = write_config(&[(
        "signed.yaml",
        "zone: signed.test\nns: [ns1]\ndnssec: { algorithm: ed25519, key: keys/signed.pem }\nrecords:\n  ns1: { A: 192.0.2.53 }\n",
    )]);
    let run = |args: &[&str]| {
        let mut all: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
        all.extend(["--config".as_ref(), config.as_os_str()]);
        run_meridian(&all)
    };
    // No key directory yet: check says what serve will do, and creating the key fails
    // with what to do.
    let (code, out, _) = run(&["check"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("no key file") && out.contains("keys/signed.pem"),
        "{out}"
    );
    let (code, _, err) = run(&["dnssec", "--create-keys"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("signed.yaml") && err.contains("create the directory"),
        "{err}"
    );

    std::fs::create_dir(dir.path().join("zones/keys")).unwrap();
    let (code, first, err) = run(&["dnssec", "--create-keys"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("created"), "{err}");
    let ds = first
        .lines()
        .find(|l| l.starts_with("signed.test. 3600 IN DS "))
        .unwrap_or_else(|| panic!("{first}"))
        .to_string();
    assert!(
        ds.starts_with("signed.test. 3600 IN DS ") && ds.contains(" 15 2 "),
        "{first}"
    );
    // The key stays: the same DS every time, from the printing and from the server.
    let (_, again, _) = run(&["dnssec"]);
    assert_eq!(again, first);
    let served = serve(&config);
    assert!(!served.log_contains("created a DNSSEC key"));
    let cds = udp_exchange(
        served.addr,
        &do_query("signed.test.", RecordType::CDS, false),
    );
    let tag = ds.split_whitespace().nth(4).unwrap();
    assert!(
        cds.answers[0]
            .data
            .to_string()
            .starts_with(&format!("{tag} 15 2 ")),
        "{cds:?}"
    );

    // A key file that is not a key: an error at the zone file's `key:` line.
    std::fs::write(dir.path().join("zones/keys/signed.pem"), "not a key\n").unwrap();
    let (code, _, err) = run(&["check"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("signed.yaml:3:")
            && err.contains("dnssec.key")
            && err.contains("neither a PEM private key nor a BIND private key"),
        "{err}"
    );
}

/// A rollover of the zone's key as the README tells it (a pre-published CSK with both DS
/// at the parent): validation against the two keys holds at every step, and each step
/// publishes what it should.
#[test]
fn a_key_rolls_over_without_breaking_validation() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("zones")).unwrap();
    let zone_file = dir.path().join("zones/signed.yaml");
    let zone = |dnssec: &str| {
        format!(
            "zone: signed.test\nns: [ns1]\ndnssec: {dnssec}\nrecords:\n  ns1: {{ A: {MERIDIAN} }}\n  www: {{ A: 192.0.2.1 }}\n"
        )
    };
    std::fs::write(&zone_file, zone("{ key: old.pem }")).unwrap();
    let config = dir.path().join("meridian.yaml");
    std::fs::write(&config, format!("listen: [{MERIDIAN}:0]\nzones: zones\n")).unwrap();
    let served = serve(&config);
    let meridian = served.addr;
    let old = dnskeys(meridian);
    assert_eq!(old.len(), 1);
    let validates = |keys: &[&str]| {
        let anchor = anchors_file(dir.path(), keys, "anchors.conf");
        delv(meridian, &anchor, "www.signed.test", "A").contains("; fully validated")
    };
    assert!(validates(&[&old[0]]));

    // 1. The next key is published (made by the server on reload), and signs nothing.
    replace_file(&zone_file, &zone("{ key: old.pem, publish: [new.pem] }"));
    eventually(
        Duration::from_secs(10),
        "the new key to be published",
        || dnskeys(meridian).len() == 2,
    );
    let both = dnskeys(meridian);
    let new = both.iter().find(|k| **k != old[0]).unwrap().clone();
    let cds = udp_exchange(meridian, &do_query("signed.test.", RecordType::CDS, false));
    assert_eq!(
        types(&cds.answers),
        [RecordType::CDS, RecordType::CDS, RecordType::RRSIG],
        "CDS asks the parent for both DS"
    );
    assert!(validates(&[&old[0]]), "the old key still signs");
    assert!(!validates(&[&new]), "the new key signs nothing yet");
    assert!(validates(&[&old[0], &new]));

    // 2. With both DS at the parent, the new key takes over; the old one stays published.
    replace_file(&zone_file, &zone("{ key: new.pem, publish: [old.pem] }"));
    eventually(Duration::from_secs(10), "the new key to sign", || {
        validates(&[&new])
    });
    assert!(validates(&[&old[0], &new]));
    assert_eq!(dnskeys(meridian).len(), 2);

    // 3. Once the old DS is gone from the parent and caches, the old key goes.
    replace_file(&zone_file, &zone("{ key: new.pem }"));
    eventually(Duration::from_secs(10), "the old key to go", || {
        dnskeys(meridian) == [new.clone()]
    });
    assert!(validates(&[&new]));
    assert!(!validates(&[&old[0]]));
}

/// A name failing closed (NODATA while every member is down), a name whose TTL is cut
/// while a member is down, and a name chosen by the client's subnet (ECS) are signed like
/// the rest: delv validates them, the NODATA's denial lists no A at the name, the cut TTL
/// goes out under the zone TTL the RRSIG covers, and the ECS option keeps its scope.
#[test]
fn failing_closed_health_aware_ttl_and_ecs_answers_are_signed_and_validate() {
    // Nothing listens on this port at 127.0.90.21: the one member of `closed`, and one of
    // `degraded`'s two, are down.
    let port = free_port(ip("127.0.90.21"));
    let _up = crate::common::backend::TcpBackend::start(SocketAddr::new(ip("127.0.90.22"), port));
    let zone = format!(
        "zone: signed.test\nns: [ns1]\ndnssec: {{}}\nrecords:\n  ns1: {{ A: {MERIDIAN} }}\nsites:\n  lon: {{ networks: [10.1.0.0/16] }}\n  nyc: {{ networks: [10.2.0.0/16] }}\nfqdns:\n  closed:\n    when-all-down: none\n    check: {{ type: tcp, port: {port}, interval: 200ms, timeout: 100ms, rise: 1, fall: 1 }}\n    members: [{{ address: 127.0.90.21 }}]\n  degraded:\n    ttl: 300\n    selection: all-available\n    check: {{ type: tcp, port: {port}, interval: 200ms, timeout: 100ms, rise: 1, fall: 1 }}\n    members: [{{ address: 127.0.90.21 }}, {{ address: 127.0.90.22 }}]\n  near:\n    selection: location\n    members:\n      - {{ address: 192.0.2.1, site: lon }}\n      - {{ address: 192.0.2.2, site: nyc }}\n"
    );
    let signed = serve_zone(&zone);
    let meridian = signed.served.addr;
    let anchor = signed.anchor();

    let closed = eventually(Duration::from_secs(5), "the member to be down", || {
        udp_exchange(
            meridian,
            &do_query("closed.signed.test.", RecordType::A, false),
        )
        .answers
        .is_empty()
    });
    let _ = closed;
    let nodata = udp_exchange(
        meridian,
        &do_query("closed.signed.test.", RecordType::A, false),
    );
    assert_rcode(&nodata, ResponseCode::NoError);
    let nsec = nodata
        .authorities
        .iter()
        .find_map(|r| match &r.data {
            RData::DNSSEC(hickory_proto::dnssec::rdata::DNSSECRData::NSEC(n)) => Some(n),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{nodata:?}"));
    let bitmap: Vec<RecordType> = nsec.type_bit_maps().collect();
    assert!(!bitmap.contains(&RecordType::A), "{bitmap:?}");
    let out = delv(meridian, &anchor, "closed.signed.test", "A");
    assert!(
        out.contains("; negative response, fully validated"),
        "{out}"
    );

    for (subnet, want) in [("10.1.7.0/24", "192.0.2.1"), ("10.2.7.0/24", "192.0.2.2")] {
        let mut q = ecs_query("near.signed.test.", RecordType::A, subnet);
        q.edns.as_mut().unwrap().set_dnssec_ok(true);
        let answer = udp_exchange(meridian, &q);
        assert_eq!(addresses(&answer), [want], "{subnet}");
        assert_eq!(types(&answer.answers), [RecordType::A, RecordType::RRSIG]);
        let (_, source, scope) = ecs_of(&answer).expect("ECS echoed");
        assert_eq!((source, scope), (24, 16), "{subnet}");
        // delv sends no ECS: it gets (and validates) the answer for its own address.
    }
    let out = delv(meridian, &anchor, "near.signed.test", "A");
    assert!(out.contains("; fully validated"), "{out}");
}

/// A key file broken under a running server: the reload is rejected, the zone keeps
/// serving with the key it had, and the error names the zone file's `dnssec.key`.
#[test]
fn a_broken_key_file_is_rejected_on_reload() {
    let signed = serve_zone(&format!(
        "zone: signed.test\nns: [ns1]\ndnssec: {{ key: k.pem }}\nrecords:\n  ns1: {{ A: {MERIDIAN} }}\n  www: {{ A: 192.0.2.1 }}\n"
    ));
    let meridian = signed.served.addr;
    let anchor = signed.anchor();
    assert!(delv(meridian, &anchor, "www.signed.test", "A").contains("; fully validated"));

    replace_file(
        &signed.dir.path().join("zones/k.pem"),
        "-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n",
    );
    eventually(Duration::from_secs(10), "the reload to be rejected", || {
        signed.served.log_contains("reload rejected")
    });
    assert!(
        signed.served.log_contains("signed.yaml:3:") && signed.served.log_contains("dnssec.key")
    );
    assert_eq!(dnskeys(meridian), std::slice::from_ref(&signed.dnskey));
    assert!(delv(meridian, &anchor, "www.signed.test", "A").contains("; fully validated"));
}

/// A health-checked wildcard (`"*.app"` under fqdns) answers every name below `app` with
/// its members, signed at the asked name; delv validates it, and a name the wildcard does
/// not cover is still a validated denial.
#[test]
fn a_health_checked_wildcard_is_signed_at_the_asked_name() {
    let signed = serve_zone(&format!(
        "zone: signed.test\nns: [ns1]\ndnssec: {{}}\nrecords:\n  ns1: {{ A: {MERIDIAN} }}\n  web: {{ CNAME: tenant42.app }}\nfqdns:\n  \"*.app\":\n    selection: all-available\n    members: [{{ address: 192.0.2.7 }}, {{ address: 192.0.2.8 }}]\n"
    ));
    let meridian = signed.served.addr;
    let anchor = signed.anchor();

    for exchange in [udp_exchange, tcp_exchange] {
        let answer = exchange(
            meridian,
            &do_query("Tenant7.app.signed.test.", RecordType::A, false),
        );
        let mut got = addresses(&answer);
        got.sort();
        assert_eq!(got, ["192.0.2.7", "192.0.2.8"]);
        assert!(
            answer
                .answers
                .iter()
                .all(|r| r.name.to_string() == "Tenant7.app.signed.test."),
            "{answer:?}"
        );
        assert_eq!(types(&answer.answers)[2], RecordType::RRSIG);
        // Through a CNAME, the wildcard answers at the CNAME's target.
        let web = exchange(
            meridian,
            &do_query("web.signed.test.", RecordType::A, false),
        );
        assert_eq!(
            types(&web.answers),
            [
                RecordType::CNAME,
                RecordType::RRSIG,
                RecordType::A,
                RecordType::A,
                RecordType::RRSIG
            ]
        );
        assert_eq!(web.answers[2].name.to_string(), "tenant42.app.signed.test.");
    }
    for (name, want) in [
        ("tenant7.app.signed.test", "; fully validated"),
        ("web.signed.test", "; fully validated"),
        (
            "nothing.signed.test",
            "; negative response, fully validated",
        ),
    ] {
        let out = delv(meridian, &anchor, name, "A");
        assert!(out.contains(want), "{name}:\n{out}");
    }
    let out = delv(meridian, &anchor, "tenant7.app.signed.test", "TXT");
    assert!(
        out.contains("; negative response, fully validated"),
        "{out}"
    );
}

/// Delegations in a signed zone: a referral to a signed child carries its DS with the DS's
/// RRSIG, one to an unsigned child the signed proof that it has no DS (an NSEC at the cut
/// listing NS but no DS), and the NS records are not signed (the child vouches for them);
/// delv validates the DS answer and its absence.
#[test]
fn referrals_from_a_signed_zone_prove_the_child_s_ds_or_its_absence() {
    let signed = serve_zone(&format!(
        "zone: signed.test\nns: [ns1]\ndnssec: {{}}\nrecords:\n  ns1: {{ A: {MERIDIAN} }}\n  insecure: {{ NS: ns1.insecure }}\n  ns1.insecure: {{ A: 192.0.2.98 }}\n  secure: {{ NS: ns1.secure, DS: \"12345 13 2 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\" }}\n  ns1.secure: {{ A: 192.0.2.99 }}\n"
    ));
    let meridian = signed.served.addr;
    for exchange in [udp_exchange, tcp_exchange] {
        let insecure = exchange(
            meridian,
            &do_query("www.insecure.signed.test.", RecordType::A, false),
        );
        assert!(!insecure.metadata.authoritative && insecure.answers.is_empty());
        assert_eq!(
            types(&insecure.authorities),
            [RecordType::NS, RecordType::NSEC, RecordType::RRSIG],
            "{insecure:?}"
        );
        let RData::DNSSEC(hickory_proto::dnssec::rdata::DNSSECRData::NSEC(nsec)) =
            &insecure.authorities[1].data
        else {
            panic!()
        };
        let bitmap: Vec<RecordType> = nsec.type_bit_maps().collect();
        assert!(
            bitmap.contains(&RecordType::NS) && !bitmap.contains(&RecordType::DS),
            "{bitmap:?}"
        );
        assert_eq!(types(&insecure.additionals), [RecordType::A]);
        let secure = exchange(
            meridian,
            &do_query("www.secure.signed.test.", RecordType::A, false),
        );
        assert_eq!(
            types(&secure.authorities),
            [RecordType::NS, RecordType::DS, RecordType::RRSIG],
            "{secure:?}"
        );
    }
    let anchor = signed.anchor();
    let out = delv(meridian, &anchor, "secure.signed.test", "DS");
    assert!(out.contains("; fully validated"), "{out}");
    let out = delv(meridian, &anchor, "insecure.signed.test", "DS");
    assert!(
        out.contains("; negative response, fully validated"),
        "{out}"
    );
}
