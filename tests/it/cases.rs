//! Table-driven cases in the style of CoreDNS's `test.Case`: a question, and the rcode and
//! records it must get, in-process (no sockets) through the decision path itself, the
//! fast path and the general path.

use std::net::SocketAddr;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use hickory_server::net::xfer::Protocol;
use meridian::dns;
use meridian::resolve::{self, Mode, Question};

use crate::common::*;

const ZONE: &str = r#"zone: case.test
ttl: 300
soa: { mname: ns1.case.test., rname: hostmaster.case.test., serial: 42, minimum: 60 }
ns: [ns1.case.test., ns2.case.test.]
records:
  ns1: { A: 192.0.2.53 }
  ns2: { A: 192.0.2.54, ttl: 600 }
  www: { CNAME: app }
  ext: { CNAME: www.elsewhere.invalid. }
  dangling: { CNAME: missing }
  txt: { TXT: ["hello world", "second"] }
  "@": { MX: "10 mail" }
  _svc._tcp: { SRV: "0 0 8200 all.case.test." }
fqdns:
  app:
    ttl: 10
    members: [{ address: 192.0.2.11, weight: 100 }, { address: 192.0.2.12 }, { address: "2001:db8::11" }]
  all:
    selection: all-available
    members: [{ address: 192.0.2.41 }, { address: 192.0.2.42, enabled: false }, { address: 192.0.2.43 }]
  closed:
    ttl: 7
    when-all-down: none
    members: [{ address: 192.0.2.61, enabled: false }]
  open:
    ttl: 7
    members: [{ address: 192.0.2.71, enabled: false, weight: 5 }, { address: 192.0.2.72, enabled: false, weight: 9 }]
"#;

const SOA: &str = "case.test. 60 IN SOA ns1.case.test. hostmaster.case.test. 42 3600 600 604800 60";

struct Case {
    qname: &'static str,
    qtype: RecordType,
    rcode: ResponseCode,
    aa: bool,
    answer: &'static [&'static str],
    ns: &'static [&'static str],
    /// The additional section, but the OPT record.
    additional: &'static [&'static str],
}

const fn case(qname: &'static str, qtype: RecordType, answer: &'static [&'static str]) -> Case {
    Case {
        qname,
        qtype,
        rcode: ResponseCode::NoError,
        aa: true,
        answer,
        ns: &[],
        additional: &[],
    }
}

const fn negative(qname: &'static str, qtype: RecordType, rcode: ResponseCode) -> Case {
    Case {
        qname,
        qtype,
        rcode,
        aa: true,
        answer: &[],
        ns: &[SOA],
        additional: &[],
    }
}

const CASES: &[Case] = {
    use RecordType::*;
    use ResponseCode::*;
    &[
        case("app.case.test.", A, &["app.case.test. 10 IN A 192.0.2.11"]),
        case(
            "app.case.test.",
            AAAA,
            &["app.case.test. 10 IN AAAA 2001:db8::11"],
        ),
        case(
            "app.case.test.",
            ANY,
            &["app.case.test. 10 IN A 192.0.2.11"],
        ),
        case(
            "www.case.test.",
            A,
            &[
                "www.case.test. 300 IN CNAME app.case.test.",
                "app.case.test. 10 IN A 192.0.2.11",
            ],
        ),
        case(
            "www.case.test.",
            CNAME,
            &["www.case.test. 300 IN CNAME app.case.test."],
        ),
        Case {
            answer: &["www.case.test. 300 IN CNAME app.case.test."],
            ..negative("www.case.test.", MX, NoError)
        },
        case(
            "ext.case.test.",
            A,
            &["ext.case.test. 300 IN CNAME www.elsewhere.invalid."],
        ),
        Case {
            answer: &["dangling.case.test. 300 IN CNAME missing.case.test."],
            ..negative("dangling.case.test.", A, NXDomain)
        },
        case(
            "all.case.test.",
            A,
            &[
                "all.case.test. 30 IN A 192.0.2.41",
                "all.case.test. 30 IN A 192.0.2.43",
            ],
        ),
        Case {
            ns: &["case.test. 7 IN SOA ns1.case.test. hostmaster.case.test. 42 3600 600 604800 60"],
            ..negative("closed.case.test.", A, NoError)
        },
        case("open.case.test.", A, &["open.case.test. 7 IN A 192.0.2.72"]),
        case("ns2.case.test.", A, &["ns2.case.test. 600 IN A 192.0.2.54"]),
        case(
            "case.test.",
            MX,
            &["case.test. 300 IN MX 10 mail.case.test."],
        ),
        // The name servers' addresses come in the additional section.
        Case {
            additional: &[
                "ns1.case.test. 300 IN A 192.0.2.53",
                "ns2.case.test. 600 IN A 192.0.2.54",
            ],
            ..case(
                "case.test.",
                NS,
                &[
                    "case.test. 300 IN NS ns1.case.test.",
                    "case.test. 300 IN NS ns2.case.test.",
                ],
            )
        },
        case(
            "case.test.",
            SOA,
            &["case.test. 300 IN SOA ns1.case.test. hostmaster.case.test. 42 3600 600 604800 60"],
        ),
        case(
            "txt.case.test.",
            TXT,
            &[
                "txt.case.test. 300 IN TXT hello world",
                "txt.case.test. 300 IN TXT second",
            ],
        ),
        // A health-checked target's addresses: the members it answers with.
        Case {
            additional: &[
                "all.case.test. 30 IN A 192.0.2.41",
                "all.case.test. 30 IN A 192.0.2.43",
            ],
            ..case(
                "_svc._tcp.case.test.",
                SRV,
                &["_svc._tcp.case.test. 300 IN SRV 0 0 8200 all.case.test."],
            )
        },
        negative("_tcp.case.test.", SRV, NoError),
        negative("ns1.case.test.", AAAA, NoError),
        negative("app.case.test.", MX, NoError),
        negative("nope.case.test.", A, NXDomain),
        negative("x.ns1.case.test.", A, NXDomain),
        Case {
            aa: false,
            ns: &[],
            ..negative("example.com.", A, Refused)
        },
        Case {
            aa: false,
            ns: &[],
            ..negative("case.test.", AXFR, Refused)
        },
    ]
};

fn records(records: &[hickory_proto::rr::Record]) -> Vec<String> {
    records.iter().map(ToString::to_string).collect()
}

fn check(c: &Case, got: &Message, path: &str) {
    let what = format!("{} {} via {path}", c.qname, c.qtype);
    assert_eq!(got.metadata.response_code, c.rcode, "{what}");
    assert_eq!(got.metadata.authoritative, c.aa, "{what}");
    assert_eq!(records(&got.answers), c.answer, "{what}");
    assert_eq!(records(&got.authorities), c.ns, "{what}");
    assert_eq!(records(&got.additionals), c.additional, "{what}");
}

#[test]
fn cases_through_the_plan_and_both_paths() {
    let p = in_process(&[("case.yaml", ZONE)]);
    let src = SocketAddr::from(([127, 0, 0, 1], 53000));
    for c in CASES {
        // The decision path itself (a dry run: nothing moves).
        let table = p.state.table.load();
        let name = meridian::model::name::key_of(&Name::from_ascii(c.qname).unwrap());
        let plan = resolve::plan(
            &table,
            &resolve::Query {
                op_code: hickory_proto::op::OpCode::Query,
                question: Some(Question {
                    name: &name,
                    qtype: c.qtype,
                    qclass: DNSClass::IN,
                }),
                edns: None,
                source: src.ip(),
            },
            Mode::DryRun,
        );
        let what = format!("{} {} planned", c.qname, c.qtype);
        assert_eq!(plan.rcode, c.rcode, "{what}");
        assert_eq!(plan.authoritative, c.aa, "{what}");
        let mut planned: Vec<String> = Vec::new();
        for rr in &plan.answers {
            planned.push(rr.record().to_string());
        }
        assert_eq!(planned, c.answer, "{what}");

        // Both answer paths, from the same bytes.
        let query = query(c.qname, c.qtype).to_vec().unwrap();
        let mut out = Vec::new();
        assert!(dns::fast_path(&p.state, &table, &query, src.ip(), &mut out));
        check(c, &Message::from_vec(&out).unwrap(), "the fast path");
        let general =
            p.rt.block_on(dns::general_path(&p.state, query, src, Protocol::Tcp))
                .unwrap();
        check(c, &Message::from_vec(&general).unwrap(), "the general path");
    }
}
