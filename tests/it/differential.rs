//! The fast path and the general path give the same answers.
//!
//! Two servers start from the same files, so their rotations move in step. Every query
//! goes, in-process, through server A's fast path (or its general path when the fast path
//! declines) and server B's general path, which must agree; then over a real UDP socket to
//! A and a real TCP connection to B, which must agree too, but for truncation: what UDP
//! truncates (TC=1, the question alone), TCP carries whole.

use std::net::{IpAddr, SocketAddr};

use hickory_proto::op::{Edns, Message, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use hickory_server::net::xfer::Protocol;
use meridian::dns;

use crate::common::backend::FakeResolver;
use crate::common::*;

fn zone() -> String {
    let a_records = |n: usize| {
        (1..=n)
            .map(|i| format!("192.0.2.{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        r#"zone: diff.test
ttl: 300
soa: {{ serial: 7, minimum: 60 }}
ns: [ns1, ns2]
records:
  ns1: {{ A: 192.0.2.53 }}
  ns2: {{ A: 192.0.2.54, AAAA: "2001:db8::54" }}
  www: {{ CNAME: app }}
  chain: {{ CNAME: www }}
  ext: {{ CNAME: www.elsewhere.invalid. }}
  dangling: {{ CNAME: missing }}
  loop1: {{ CNAME: loop2 }}
  loop2: {{ CNAME: loop1 }}
  big: {{ A: [{big}] }}
  mid: {{ A: [{mid}] }}
  tomid: {{ CNAME: mid }}
  txt: {{ TXT: ["hello world", "second"] }}
  "@": {{ MX: "10 mail" }}
  _svc._tcp: {{ SRV: "0 0 8200 app.diff.test." }}
sites:
  lon: {{ lat: 51.51, lon: -0.13, countries: [GB], continents: [EU], networks: [10.1.0.0/16] }}
  sto: {{ lat: 59.33, lon: 18.07, countries: [SE], continents: [EU], networks: [10.0.0.0/8] }}
  nyc: {{ lat: 40.71, lon: -74.01, countries: [US], continents: [NA], default: true }}
fqdns:
  app:
    ttl: 10
    members: [{{ address: 192.0.2.11, weight: 100 }}, {{ address: 192.0.2.12 }}, {{ address: "2001:db8::11" }}]
  rr:
    selection: round-robin
    answers: 2
    members: [{{ address: 192.0.2.21 }}, {{ address: 192.0.2.22 }}, {{ address: 192.0.2.23 }}]
  wrr:
    selection: weighted
    members: [{{ address: 192.0.2.31, weight: 3 }}, {{ address: 192.0.2.32 }}]
  all:
    selection: all-available
    members: [{{ address: 192.0.2.41 }}, {{ address: 192.0.2.42, enabled: false }}, {{ address: "2001:db8::41" }}]
  prox:
    selection: proximity
    members: [{{ address: 192.0.2.61, site: lon }}, {{ address: 192.0.2.62, site: sto }}, {{ address: 192.0.2.63, site: nyc }}]
  loc:
    selection: location
    members: [{{ address: 192.0.2.71, site: lon }}, {{ address: 192.0.2.72, site: sto }}, {{ address: 192.0.2.73, site: nyc }}]
  closed:
    ttl: 7
    when-all-down: none
    members: [{{ address: 192.0.2.81, enabled: false }}]
  open:
    when-all-down: all
    members: [{{ address: 192.0.2.91, enabled: false }}, {{ address: 192.0.2.92, enabled: false, weight: 5 }}]
"#,
        big = a_records(60),
        // 16 records after the CNAME: 535 bytes as the fast path writes them (owners
        // uncompressed), 318 as hickory compresses them. Both must truncate at 512 alike.
        mid = a_records(16),
    )
}

/// A query in wire form: name, type, class, EDNS buffer size, Client Subnet, EDNS version.
#[derive(Clone, Copy)]
struct Case {
    name: &'static str,
    qtype: RecordType,
    class: DNSClass,
    payload: Option<u16>,
    ecs: Option<(&'static str, u8, u8)>,
    cookie: Option<&'static [u8]>,
    version: u8,
    source: &'static str,
}

impl Case {
    fn new(name: &'static str, qtype: RecordType) -> Self {
        Case {
            name,
            qtype,
            class: DNSClass::IN,
            payload: Some(1232),
            ecs: None,
            cookie: None,
            version: 0,
            source: "127.0.0.1",
        }
    }

    fn bytes(&self, id: u16) -> Vec<u8> {
        let mut m = Message::query();
        m.metadata.id = id;
        m.metadata.recursion_desired = id.is_multiple_of(2);
        m.metadata.checking_disabled = id.is_multiple_of(3);
        let mut q = Query::query(Name::from_ascii(self.name).unwrap(), self.qtype);
        q.set_query_class(self.class);
        m.add_query(q);
        if let Some(payload) = self.payload {
            let mut e = Edns::new();
            e.set_max_payload(payload);
            e.set_version(self.version);
            if let Some((addr, source, scope)) = self.ecs {
                let addr: IpAddr = addr.parse().unwrap();
                e.options_mut()
                    .insert(EdnsOption::Subnet(ClientSubnet::new(addr, source, scope)));
            }
            if let Some(cookie) = self.cookie {
                e.options_mut()
                    .insert(EdnsOption::Unknown(10, cookie.to_vec()));
            }
            m.set_edns(e);
        }
        m.to_vec().unwrap()
    }

    fn describe(&self) -> String {
        format!(
            "{} {} {} payload {:?} ecs {:?} cookie {:?} version {} from {}",
            self.name,
            self.qtype,
            self.class,
            self.payload,
            self.ecs,
            self.cookie,
            self.version,
            self.source
        )
    }
}

fn cases() -> Vec<Case> {
    use RecordType::*;
    let mut cases = Vec::new();
    let names = [
        "app.diff.test.",
        "APP.Diff.Test.",
        "www.diff.test.",
        "chain.diff.test.",
        "ext.diff.test.",
        "dangling.diff.test.",
        "loop1.diff.test.",
        "big.diff.test.",
        "tomid.diff.test.",
        "mid.diff.test.",
        "txt.diff.test.",
        "diff.test.",
        "_svc._tcp.diff.test.",
        "_tcp.diff.test.",
        "ns2.diff.test.",
        "nope.diff.test.",
        "a.b.nope.diff.test.",
        "rr.diff.test.",
        "wrr.diff.test.",
        "all.diff.test.",
        "prox.diff.test.",
        "loc.diff.test.",
        "closed.diff.test.",
        "open.diff.test.",
        "example.org.",
    ];
    for name in names {
        for qtype in [A, AAAA, MX, TXT, ANY, CNAME, SOA, NS, SRV] {
            cases.push(Case::new(name, qtype));
        }
        for payload in [None, Some(100), Some(512), Some(4096), Some(65535)] {
            cases.push(Case {
                payload,
                ..Case::new(name, A)
            });
        }
    }
    // Client Subnet: site networks, GeoIP-known and unknown addresses, IPv6, /0, and the
    // malformed ones that are FORMERR (a scope in a query, bits beyond the prefix).
    for name in [
        "prox.diff.test.",
        "loc.diff.test.",
        "app.diff.test.",
        "nope.diff.test.",
    ] {
        for ecs in [
            ("10.1.7.0", 24, 0),
            ("10.2.0.0", 16, 0),
            ("81.2.69.142", 32, 0),
            ("89.160.20.0", 24, 0),
            ("216.160.83.56", 32, 0),
            ("1.1.1.0", 24, 0),
            ("2a02:d180::", 48, 0),
            ("0.0.0.0", 0, 0),
            ("10.1.7.0", 24, 16),
            ("10.1.7.0", 20, 0),
        ] {
            cases.push(Case {
                ecs: Some(ecs),
                ..Case::new(name, A)
            });
        }
    }
    // DNS Cookies: a client cookie, one with a server cookie that is not ours, malformed.
    const FORGED: [u8; 24] = [9; 24];
    for name in [
        "app.diff.test.",
        "big.diff.test.",
        "nope.diff.test.",
        "prox.diff.test.",
    ] {
        for cookie in [&[5u8; 8][..], &FORGED[..], &[5u8; 5][..]] {
            cases.push(Case {
                cookie: Some(cookie),
                ecs: Some(("10.1.7.0", 24, 0)),
                ..Case::new(name, A)
            });
        }
    }
    // Forwarding: allowed and refused clients, names outside and inside our zones.
    for source in ["127.0.0.1", "127.0.0.2"] {
        for name in [
            "example.org.",
            "ext.diff.test.",
            "app.diff.test.",
            "loop1.diff.test.",
        ] {
            cases.push(Case {
                source,
                ..Case::new(name, A)
            });
        }
    }
    // Refused or not implemented without a lookup.
    cases.push(Case {
        class: DNSClass::CH,
        ..Case::new("app.diff.test.", TXT)
    });
    cases.push(Case::new("diff.test.", AXFR));
    cases.push(Case {
        version: 1,
        ..Case::new("app.diff.test.", A)
    });
    cases.push(Case {
        version: 1,
        ecs: Some(("10.1.7.0", 24, 0)),
        ..Case::new("prox.diff.test.", A)
    });
    cases
}

/// The message with TTLs of forwarded answers (which count down in a cache) zeroed, and
/// the time and hash of a server cookie (made in whichever second the answer was).
fn comparable(bytes: &[u8], forwarded: bool) -> Message {
    let mut m = Message::from_vec(bytes).expect("a parsable response");
    if let Some(edns) = m.edns.as_mut()
        && let Some(EdnsOption::Unknown(10, cookie)) = edns
            .option(hickory_proto::rr::rdata::opt::EdnsCode::Cookie)
            .cloned()
    {
        assert_eq!(
            (cookie.len(), cookie[8]),
            (24, 1),
            "a client cookie and ours"
        );
        let mut masked = cookie.clone();
        masked[12..].fill(0);
        edns.options_mut().remove(EdnsCode::Cookie);
        edns.options_mut().insert(EdnsOption::Unknown(10, masked));
    }
    if forwarded {
        for r in m.answers.iter_mut().chain(m.authorities.iter_mut()) {
            r.ttl = 0;
        }
    }
    m
}

fn pair() -> (TestServer, TestServer, FakeResolver) {
    let upstream = FakeResolver::start(ip("127.0.0.60"), "192.0.2.199".parse().unwrap());
    let server = || {
        let (dir, file) = write_config_with(
            &format!(
                "cookies: {{ secret: 0123456789abcdef0123456789abcdef }}\ngeoip: {}\nforward: {{ upstreams: [{}], timeout: 1s, allow: [127.0.0.2/32] }}\n",
                geoip_file("maxmind-test-data/GeoIP2-City-Test.mmdb").display(),
                upstream.addr
            ),
            &[("diff.yaml", &zone())],
        );
        start_with(dir, &file)
    };
    (server(), server(), upstream)
}

#[test]
fn fast_and_general_paths_answer_alike_over_udp_and_tcp() {
    let (a, b, _upstream) = pair();
    let (mut compared, mut fast, mut truncated) = (0, 0, 0);
    for (i, case) in cases().iter().enumerate() {
        let query = case.bytes(i as u16);
        let what = case.describe();
        let src = SocketAddr::new(ip(case.source), 53000);
        let forwarded = case.source == "127.0.0.2" && case.name == "example.org.";

        // In-process: A's fast path (else its general path) against B's general path.
        let mut out = Vec::new();
        let table = a.state().table.load();
        let from_a = if dns::fast_path(a.state(), &table, &query, src.ip(), &mut out) {
            fast += 1;
            out
        } else {
            a.block_on(dns::general_path(
                a.state(),
                query.clone(),
                src,
                Protocol::Udp,
            ))
            .expect("an answer")
        };
        let from_b = b
            .block_on(dns::general_path(
                b.state(),
                query.clone(),
                src,
                Protocol::Udp,
            ))
            .expect("an answer");
        assert_eq!(
            comparable(&from_a, forwarded),
            comparable(&from_b, forwarded),
            "paths differ for {what}"
        );
        // Agreeing is not enough for the malformed: RFC 7871 7.1.1 says FORMERR.
        let malformed = matches!(case.ecs, Some((_, _, scope)) if scope != 0)
            || matches!(case.ecs, Some(("10.1.7.0", 20, _)));
        if malformed && case.version == 0 {
            let rcode = Message::from_vec(&from_a).unwrap().metadata.response_code;
            assert_eq!(rcode, ResponseCode::FormErr, "{what}");
        }
        assert!(from_a.len() <= 4096, "{what}");
        compared += 1;

        // Over sockets: UDP to A, TCP to B.
        let udp = udp_raw_from(src.ip(), a.addr, &query).expect("a UDP answer");
        let udp = comparable(&udp, forwarded);
        let tcp = comparable(&tcp_raw_from(src.ip(), b.addr, &query), forwarded);
        if udp.metadata.truncation {
            truncated += 1;
            assert!(!tcp.metadata.truncation, "{what}");
            assert!(
                udp.answers.is_empty() && udp.authorities.is_empty(),
                "{what}"
            );
            assert!(!tcp.answers.is_empty(), "{what}");
            let mut whole = udp.clone();
            whole.metadata.truncation = false;
            whole.answers = tcp.answers.clone();
            whole.authorities = tcp.authorities.clone();
            whole.additionals = tcp.additionals.clone();
            assert_eq!(
                whole, tcp,
                "UDP and TCP differ beyond truncation for {what}"
            );
        } else {
            assert_eq!(udp, tcp, "UDP and TCP differ for {what}");
        }
    }
    assert!(
        compared > 300 && fast > 250,
        "compared {compared}, fast path {fast}"
    );
    // big and tomid without EDNS, and with 100 and 512 bytes.
    assert_eq!(truncated, 6, "truncated answers");
}

#[test]
fn general_path_alone_answers_what_the_fast_path_leaves() {
    let (a, _, _upstream) = pair();
    let src = SocketAddr::new(ip("127.0.0.1"), 53000);
    let mut notify = Message::query();
    notify.metadata.op_code = OpCode::Notify;
    notify.add_query(Query::query(
        Name::from_ascii("diff.test.").unwrap(),
        RecordType::SOA,
    ));
    let mut two = Message::query();
    for name in ["app.diff.test.", "rr.diff.test."] {
        two.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    }
    let table = a.state().table.load();
    for (m, rcode) in [(notify, 4), (two, 1)] {
        let bytes = m.to_vec().unwrap();
        assert!(!dns::fast_path(
            a.state(),
            &table,
            &bytes,
            src.ip(),
            &mut Vec::new()
        ));
        let reply = a
            .block_on(dns::general_path(a.state(), bytes, src, Protocol::Udp))
            .unwrap();
        assert_eq!(
            u16::from(Message::from_vec(&reply).unwrap().metadata.response_code),
            rcode
        );
    }
}
