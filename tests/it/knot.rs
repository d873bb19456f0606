//! Meridian beside Knot (Debian's `knot` package) on the same zone content: every query of
//! a corpus must get the same rcode, AA flag, answer and authority sections from both.
//! The zone content is written twice, as a YAML zone for Meridian and as a master file for
//! Knot; each corpus entry names the behaviour it checks.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use hickory_proto::op::Message;
use hickory_proto::rr::{Record, RecordType};

use crate::common::backend::free_port;
use crate::common::daemon::Daemon;
use crate::common::*;

const KNOT: &str = "127.0.91.1";

pub struct Knot(Daemon);

impl std::ops::Deref for Knot {
    type Target = Daemon;
    fn deref(&self) -> &Daemon {
        &self.0
    }
}

impl Knot {
    /// Starts knotd serving `origin` from the master file `zone`, and waits until it
    /// answers for the apex.
    pub fn start(origin: &str, zone: &str) -> Knot {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port(ip(KNOT));
        std::fs::write(dir.path().join("zone.db"), zone).unwrap();
        for sub in ["run", "db"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        let d = dir.path().display();
        std::fs::write(
            dir.path().join("knot.conf"),
            format!(
                "server:\n  rundir: \"{d}/run\"\n  listen: {KNOT}@{port}\n  udp-workers: 1\n  tcp-workers: 1\n  background-workers: 1\ndatabase:\n  storage: \"{d}/db\"\nlog:\n  - target: stderr\n    any: warning\nzone:\n  - domain: {origin}\n    storage: \"{d}\"\n    file: zone.db\n    zonefile-sync: -1\n    journal-content: none\n"
            ),
        )
        .unwrap();
        let mut cmd = Command::new("knotd");
        cmd.arg("-c").arg(dir.path().join("knot.conf"));
        let addr = SocketAddr::new(ip(KNOT), port);
        let log = dir.path().join("knot.log");
        let knot = Knot(Daemon::spawn(cmd, dir, addr, log, false, "knot"));
        let probe = query(origin, RecordType::SOA).to_vec().unwrap();
        eventually(Duration::from_secs(10), "knotd to serve the zone", || {
            try_udp_from(ip("127.0.0.1"), addr, &probe, Duration::from_millis(300))
                .and_then(|b| Message::from_vec(&b).ok())
                .is_some_and(|m| !m.answers.is_empty())
        });
        knot
    }
}

/// A section as text to compare, lower-cased (names compare without case, and a server
/// may spell a name in the data as the question does, compressing it into the question),
/// sorted, each record once: Knot 3.2 repeats a target's addresses in the additional
/// section when two records point at it, which Meridian does not (RFC 2181 5.5 has a
/// receiver drop the copy anyway).
fn section(records: &[Record]) -> Vec<String> {
    let mut out: Vec<String> = records
        .iter()
        .map(|r| r.to_string().to_lowercase())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// What a response says, for the comparison.
fn shape(msg: &Message) -> String {
    format!(
        "rcode {:?}, aa {}\nanswer:\n  {}\nauthority:\n  {}\nadditional:\n  {}",
        msg.metadata.response_code,
        msg.metadata.authoritative,
        section(&msg.answers).join("\n  "),
        section(&msg.authorities).join("\n  "),
        section(&msg.additionals).join("\n  ")
    )
}

/// Asks both servers every (name, type) of `corpus`; returns each difference.
pub fn differences(
    meridian: SocketAddr,
    knot: SocketAddr,
    corpus: &[(&str, RecordType, &str)],
) -> Vec<String> {
    let mut wrong = Vec::new();
    for (name, rtype, why) in corpus {
        let q = query(name, *rtype);
        let (ours, theirs) = (udp_exchange(meridian, &q), udp_exchange(knot, &q));
        if shape(&ours) != shape(&theirs) {
            wrong.push(format!(
                "{name} {rtype} ({why}):\nMeridian: {}\nKnot:     {}\n",
                shape(&ours),
                shape(&theirs)
            ));
        }
    }
    wrong
}

/// Starts Meridian on one YAML zone.
fn meridian(zone: &str) -> TestServer {
    start(&[("zone.yaml", zone)])
}

/// The zone of RFC 4592 2.2.1 (without its delegation, and with a CNAME into the
/// wildcard and a wildcard CNAME added).
const WILDCARD_YAML: &str = r#"zone: example
ttl: 3600
soa: { mname: ns.example.com., rname: hostmaster.example., serial: 1, refresh: 3600, retry: 600, expire: 604800, minimum: 60 }
ns: [ns.example.com., ns.example.net.]
records:
  "*": { TXT: "this is a wildcard", MX: "10 host1" }
  "sub.*": { TXT: "this is not a wildcard" }
  host1: { A: 192.0.2.1 }
  _ssh._tcp.host1: { SRV: "0 0 22 host1" }
  _ssh._tcp.host2: { SRV: "0 0 22 host2" }
  alias: { CNAME: foo.bar }
  "*.cn": { CNAME: host1 }
"#;

const WILDCARD_ZONE: &str = r#"$ORIGIN example.
$TTL 3600
@ SOA ns.example.com. hostmaster.example. 1 3600 600 604800 60
@ NS ns.example.com.
@ NS ns.example.net.
* TXT "this is a wildcard"
* MX 10 host1.example.
sub.* TXT "this is not a wildcard"
host1 A 192.0.2.1
_ssh._tcp.host1 SRV 0 0 22 host1.example.
_ssh._tcp.host2 SRV 0 0 22 host2.example.
alias CNAME foo.bar.example.
*.cn CNAME host1.example.
"#;

#[test]
fn wildcards_answer_as_knot_answers_the_rfc_4592_examples() {
    let ours = meridian(WILDCARD_YAML);
    let knot = Knot::start("example.", WILDCARD_ZONE);
    use RecordType::*;
    let corpus = [
        (
            "host3.example.",
            MX,
            "a wildcard answers for a name that does not exist",
        ),
        ("host3.example.", A, "the wildcard has no A: NODATA"),
        (
            "foo.bar.example.",
            TXT,
            "several labels below the closest encloser",
        ),
        (
            "host1.example.",
            MX,
            "an existing name is not matched: NODATA",
        ),
        (
            "sub.*.example.",
            MX,
            "a name below the wildcard exists: NODATA",
        ),
        (
            "_telnet._tcp.host1.example.",
            SRV,
            "the closest encloser _tcp.host1 has no wildcard: NXDOMAIN",
        ),
        (
            "_ssh._tcp.host3.example.",
            SRV,
            "matched by *.example, which has no SRV: NODATA",
        ),
        (
            "ghost.*.example.",
            MX,
            "the closest encloser is *.example, with no *.*: NXDOMAIN",
        ),
        ("*.example.", TXT, "the wildcard asked for by name"),
        (
            "_tcp.host1.example.",
            A,
            "an empty non-terminal stops the wildcard: NODATA",
        ),
        (
            "alias.example.",
            TXT,
            "a CNAME into the wildcard: synthesized at its target",
        ),
        ("x.cn.example.", A, "a wildcard CNAME"),
        ("x.y.cn.example.", TXT, "a wildcard CNAME, two labels down"),
        ("HOST3.Example.", MX, "case is the asker's"),
        ("example.", SOA, "the apex"),
    ];
    let wrong = differences(ours.addr, knot.addr, &corpus);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The corpus is run over TCP too, where answers take the general path (hickory's
/// encoder), so that both of Meridian's answer paths agree with Knot.
#[test]
fn wildcard_answers_agree_over_tcp() {
    let ours = meridian(WILDCARD_YAML);
    for (name, rtype) in [
        ("host3.example.", RecordType::MX),
        ("alias.example.", RecordType::TXT),
        ("x.y.cn.example.", RecordType::A),
    ] {
        let q = query(name, rtype);
        let (udp, tcp) = (ours.udp(&q), ours.tcp(&q));
        assert_eq!(shape(&udp), shape(&tcp), "{name} {rtype}");
        assert!(!udp.answers.is_empty());
    }
}

const ADDITIONAL_YAML: &str = r#"zone: add.test
ttl: 300
soa: { mname: ns1.add.test., rname: hostmaster.add.test., serial: 1, refresh: 3600, retry: 600, expire: 604800, minimum: 60 }
ns: [ns1, ns2, ns.elsewhere.example.]
records:
  ns1: { A: 192.0.2.53, AAAA: "2001:db8::53" }
  ns2: { A: 192.0.2.54 }
  "@": { MX: ["10 mail", "20 mx.elsewhere.example.", "30 mail"] }
  mail: { A: [192.0.2.25, 192.0.2.26] }
  _imap._tcp: { SRV: ["0 0 143 mail", "1 0 143 app"] }
  app: { AAAA: "2001:db8::80" }
  alias: { CNAME: add.test. }
  empty-target: { MX: "10 nowhere" }
"#;

const ADDITIONAL_ZONE: &str = r#"$ORIGIN add.test.
$TTL 300
@ SOA ns1.add.test. hostmaster.add.test. 1 3600 600 604800 60
@ NS ns1
@ NS ns2
@ NS ns.elsewhere.example.
ns1 A 192.0.2.53
ns1 AAAA 2001:db8::53
ns2 A 192.0.2.54
@ MX 10 mail
@ MX 20 mx.elsewhere.example.
@ MX 30 mail
mail A 192.0.2.25
mail A 192.0.2.26
_imap._tcp SRV 0 0 143 mail
_imap._tcp SRV 1 0 143 app
app AAAA 2001:db8::80
alias CNAME @
empty-target MX 10 nowhere
"#;

#[test]
fn additional_sections_hold_what_knot_adds() {
    let ours = meridian(ADDITIONAL_YAML);
    let knot = Knot::start("add.test.", ADDITIONAL_ZONE);
    use RecordType::*;
    let corpus = [
        (
            "add.test.",
            NS,
            "the apex NS: in-zone name servers' addresses, not the others",
        ),
        (
            "add.test.",
            MX,
            "MX exchanges: one target twice, added once; one outside",
        ),
        ("_imap._tcp.add.test.", SRV, "SRV targets of each family"),
        ("alias.add.test.", MX, "through a CNAME"),
        (
            "empty-target.add.test.",
            MX,
            "a target that does not exist adds nothing",
        ),
        ("mail.add.test.", A, "an address answer adds nothing"),
        ("add.test.", SOA, "SOA adds nothing"),
    ];
    let wrong = differences(ours.addr, knot.addr, &corpus);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

const TYPES_YAML: &str = r#"zone: types.test
ttl: 300
soa: { mname: ns1.types.test., rname: hostmaster.types.test., serial: 1, refresh: 3600, retry: 600, expire: 604800, minimum: 60 }
ns: [ns1]
records:
  ns1: { A: 192.0.2.53 }
  _443._tcp.www: { TLSA: "3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" }
  host: { SSHFP: "4 2 fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210" }
  sip: { NAPTR: '100 10 "S" "SIP+D2U" "" _sip._udp.types.test.' }
  _dns.resolver: { SVCB: "1 dns.types.test. alpn=dot port=853" }
  www: { HTTPS: "1 . alpn=h2,h3 ipv4hint=192.0.2.1 ipv6hint=2001:db8::1" }
  geo: { LOC: "42 21 54 N 71 06 18 W -24m 30m" }
  _http._tcp.uri: { URI: '10 1 "https://www.types.test/"' }
  generic: { TYPE65534: '\# 4 0a000001', A: '\# 4 C0000201' }
"#;

const TYPES_ZONE: &str = r#"$ORIGIN types.test.
$TTL 300
@ SOA ns1.types.test. hostmaster.types.test. 1 3600 600 604800 60
@ NS ns1
ns1 A 192.0.2.53
_443._tcp.www TLSA 3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
host SSHFP 4 2 fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210
sip NAPTR 100 10 "S" "SIP+D2U" "" _sip._udp.types.test.
_dns.resolver SVCB 1 dns.types.test. alpn=dot port=853
www HTTPS 1 . alpn=h2,h3 ipv4hint=192.0.2.1 ipv6hint=2001:db8::1
geo LOC 42 21 54 N 71 06 18 W -24m 30m
_http._tcp.uri URI 10 1 "https://www.types.test/"
generic TYPE65534 \# 4 0a000001
generic A 192.0.2.1
"#;

#[test]
fn record_types_encode_as_knot_encodes_them() {
    let ours = meridian(TYPES_YAML);
    let knot = Knot::start("types.test.", TYPES_ZONE);
    use RecordType::*;
    let corpus = [
        ("_443._tcp.www.types.test.", TLSA, "TLSA (RFC 6698)"),
        ("host.types.test.", SSHFP, "SSHFP (RFC 4255)"),
        ("sip.types.test.", NAPTR, "NAPTR (RFC 3403)"),
        (
            "_dns.resolver.types.test.",
            SVCB,
            "SVCB with alpn and port (RFC 9460)",
        ),
        (
            "www.types.test.",
            HTTPS,
            "HTTPS with ipv4hint and ipv6hint (RFC 9460)",
        ),
        ("geo.types.test.", Unknown(29), "LOC (RFC 1876)"),
        ("_http._tcp.uri.types.test.", Unknown(256), "URI (RFC 7553)"),
        (
            "generic.types.test.",
            Unknown(65534),
            "an unknown type in the generic form (RFC 3597)",
        ),
        ("generic.types.test.", A, "a known type in the generic form"),
        ("www.types.test.", A, "NODATA beside an HTTPS record"),
    ];
    let wrong = differences(ours.addr, knot.addr, &corpus);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

const DELEGATION_YAML: &str = r#"zone: parent.test
ttl: 300
soa: { mname: ns1.parent.test., rname: hostmaster.parent.test., serial: 1, refresh: 3600, retry: 600, expire: 604800, minimum: 60 }
ns: [ns1]
records:
  ns1: { A: 192.0.2.53 }
  sub: { NS: [ns1.sub, ns.elsewhere.example., ns1] }
  ns1.sub: { A: 192.0.2.98, AAAA: "2001:db8::98" }
  secure: { NS: ns1.secure, DS: "12345 13 2 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" }
  ns1.secure: { A: 192.0.2.99 }
  to-child: { CNAME: www.sub }
"#;

const DELEGATION_ZONE: &str = r#"$ORIGIN parent.test.
$TTL 300
@ SOA ns1.parent.test. hostmaster.parent.test. 1 3600 600 604800 60
@ NS ns1
ns1 A 192.0.2.53
sub NS ns1.sub
sub NS ns.elsewhere.example.
sub NS ns1
ns1.sub A 192.0.2.98
ns1.sub AAAA 2001:db8::98
secure NS ns1.secure
secure DS 12345 13 2 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
ns1.secure A 192.0.2.99
to-child CNAME www.sub
"#;

#[test]
fn delegations_refer_as_knot_refers() {
    let ours = meridian(DELEGATION_YAML);
    let knot = Knot::start("parent.test.", DELEGATION_ZONE);
    use RecordType::*;
    let corpus = [
        (
            "www.sub.parent.test.",
            A,
            "below a delegation: a referral with its glue",
        ),
        ("sub.parent.test.", NS, "the delegation point itself"),
        (
            "sub.parent.test.",
            A,
            "any type at the cut but DS: a referral",
        ),
        (
            "ns1.sub.parent.test.",
            A,
            "glue is not an answer: a referral",
        ),
        ("deep.www.sub.parent.test.", TXT, "several labels below"),
        (
            "sub.parent.test.",
            DS,
            "DS at the cut is the parent's: NODATA with AA",
        ),
        (
            "secure.parent.test.",
            DS,
            "DS at the cut is the parent's: the answer",
        ),
        ("x.secure.parent.test.", A, "a referral to a signed child"),
        ("to-child.parent.test.", A, "a CNAME into a delegation"),
        ("parent.test.", NS, "the apex is no delegation"),
    ];
    let wrong = differences(ours.addr, knot.addr, &corpus);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// A zone whose records come from the very master file Knot loads (`records-file:`):
/// the same answers as Knot's, for the wildcard corpus.
#[test]
fn a_records_file_serves_as_knot_serves_it() {
    let yaml = "zone: example\nttl: 3600\nsoa: { mname: ns.example.com., rname: hostmaster.example., serial: 1, refresh: 3600, retry: 600, expire: 604800, minimum: 60 }\nns: [ns.example.com.]\nrecords-file: example.zone\n";
    let (dir, file) = write_config(&[("example.yaml", yaml)]);
    std::fs::write(dir.path().join("zones/example.zone"), WILDCARD_ZONE).unwrap();
    let ours = start_with(dir, &file);
    let knot = Knot::start("example.", WILDCARD_ZONE);
    use RecordType::*;
    let corpus = [
        ("example.", NS, "apex NS from the file beside the YAML's"),
        ("host1.example.", A, "a record from the file"),
        ("host3.example.", MX, "a wildcard from the file"),
        ("_telnet._tcp.host1.example.", SRV, "NXDOMAIN"),
        (
            "alias.example.",
            TXT,
            "a CNAME from the file into its wildcard",
        ),
    ];
    let wrong = differences(ours.addr, knot.addr, &corpus);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
