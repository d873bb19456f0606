//! The authoritative core over real UDP and TCP: flags, rcodes and every section.

use std::collections::HashMap;

use crate::common::*;
use hickory_proto::op::{Edns, Message, OpCode, ResponseCode};
use hickory_proto::rr::{RData, RecordType};

fn zone() -> String {
    let big = (1..=60)
        .map(|i| format!("192.0.2.{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"
zone: example.test
ttl: 300
soa: {{ mname: ns1.example.test., rname: hostmaster.example.test., serial: 2026112201, minimum: 60 }}
ns: [ns1.example.test., ns2.example.test.]
records:
  ns1: {{ A: 192.0.2.53 }}
  ns2: {{ A: 192.0.2.54, ttl: 600 }}
  www: {{ CNAME: app }}
  ext: {{ CNAME: www.elsewhere.invalid. }}
  dangling: {{ CNAME: missing }}
  loop1: {{ CNAME: loop2 }}
  loop2: {{ CNAME: loop1 }}
  _svc._tcp: {{ SRV: "0 0 8200 app.example.test." }}
  txt: {{ TXT: ["hello world", "second"] }}
  "@": {{ MX: "10 mail" }}
  mail: {{ A: 192.0.2.25 }}
  big: {{ A: [{big}] }}
fqdns:
  app:
    selection: fixed-weight
    ttl: 10
    members:
      - {{ address: 192.0.2.11, weight: 100 }}
      - {{ address: 192.0.2.12, weight: 50 }}
      - {{ address: "2001:db8::11" }}
  rr:
    selection: round-robin
    members: [{{ address: 192.0.2.21 }}, {{ address: 192.0.2.22 }}, {{ address: 192.0.2.23 }}]
  rr2:
    selection: round-robin
    answers: 2
    members: [{{ address: 192.0.2.21 }}, {{ address: 192.0.2.22 }}, {{ address: 192.0.2.23 }}]
  wrr:
    selection: weighted
    members:
      - {{ address: 192.0.2.31, weight: 100 }}
      - {{ address: 192.0.2.32, weight: 50 }}
      - {{ address: 192.0.2.33, weight: 50 }}
  all:
    selection: all-available
    members:
      - {{ address: 192.0.2.41 }}
      - {{ address: 192.0.2.42, enabled: false }}
      - {{ address: 192.0.2.43 }}
      - {{ address: "2001:db8::41" }}
  failover:
    selection: fixed-weight
    members:
      - {{ address: 192.0.2.51, weight: 100, enabled: false }}
      - {{ address: 192.0.2.52, weight: 50 }}
      - {{ address: 192.0.2.53, weight: 50 }}
  closed:
    ttl: 7
    when-all-down: none
    members: [{{ address: 192.0.2.61, enabled: false }}, {{ address: 192.0.2.62, enabled: false }}]
  open:
    ttl: 7
    when-all-down: all
    members: [{{ address: 192.0.2.71, enabled: false, weight: 5 }}, {{ address: 192.0.2.72, enabled: false, weight: 9 }}]
"#
    )
}

fn server() -> TestServer {
    start(&[("example.test.yaml", &zone())])
}

fn soa_of(msg: &Message) -> (String, u32) {
    assert_eq!(msg.authorities.len(), 1, "one SOA in authority: {msg:?}");
    let soa = &msg.authorities[0];
    assert_eq!(soa.record_type(), RecordType::SOA);
    (soa.name.to_string(), soa.ttl)
}

#[test]
fn answer_is_authoritative_over_udp_and_tcp() {
    let s = server();
    for resp in [
        s.ask("app.example.test.", RecordType::A),
        s.tcp(&query("app.example.test.", RecordType::A)),
    ] {
        assert_rcode(&resp, ResponseCode::NoError);
        assert!(resp.metadata.authoritative);
        assert!(!resp.metadata.recursion_available);
        assert!(!resp.metadata.truncation);
        assert_eq!(addresses(&resp), ["192.0.2.11"]);
        assert_eq!(resp.answers[0].ttl, 10);
        assert_eq!(resp.answers[0].name.to_string(), "app.example.test.");
        assert!(resp.authorities.is_empty());
        assert!(resp.additionals.is_empty());
        assert!(resp.edns.is_some(), "OPT echoed");
    }
}

#[test]
fn question_is_echoed_as_sent_and_lookup_ignores_case() {
    let s = server();
    let resp = s.ask("ApP.ExAmPlE.TeSt.", RecordType::A);
    assert_eq!(resp.queries[0].name().to_string(), "ApP.ExAmPlE.TeSt.");
    assert_eq!(addresses(&resp), ["192.0.2.11"]);
}

#[test]
fn names_outside_our_zones_are_refused_without_aa() {
    let s = server();
    for name in ["example.com.", "test.", "xexample.test."] {
        let resp = s.ask(name, RecordType::A);
        assert_rcode(&resp, ResponseCode::Refused);
        assert!(!resp.metadata.authoritative, "{name}");
        assert!(resp.answers.is_empty() && resp.authorities.is_empty());
    }
}

#[test]
fn with_many_zones_each_name_finds_its_own() {
    // Past eight zones a query finds its zone by hashing its name's tails, not by a scan.
    // Origins of one, two and three labels, under two parents.
    let origin = |i: usize| match i % 3 {
        0 => format!("z{i}."),
        1 => format!("z{i}.test."),
        _ => format!("z{i}.deep.example."),
    };
    let files: Vec<(String, String)> = (0..12)
        .map(|i| {
            let text = format!(
                "zone: {}\nns: [ns1]\nrecords:\n  www: {{ A: 192.0.2.{} }}\n  a.b.c: {{ A: 198.51.100.{i} }}\n",
                origin(i),
                i + 1
            );
            (format!("z{i:02}.yaml"), text)
        })
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(f, t)| (f.as_str(), t.as_str()))
        .collect();
    let s = start(&refs);
    for i in 0..12 {
        let origin = origin(i);
        let www = s.ask(&format!("WWW.{origin}"), RecordType::A);
        assert_eq!(addresses(&www), [format!("192.0.2.{}", i + 1)], "{origin}");
        let deep = s.ask(&format!("a.b.c.{origin}"), RecordType::A);
        assert_eq!(addresses(&deep), [format!("198.51.100.{i}")], "{origin}");
        // An empty non-terminal, and a name that does not exist, in the right zone.
        let ent = s.ask(&format!("b.c.{origin}"), RecordType::A);
        assert_rcode(&ent, ResponseCode::NoError);
        let missing = s.ask(&format!("nothing.{origin}"), RecordType::A);
        assert_rcode(&missing, ResponseCode::NXDomain);
        assert_eq!(soa_of(&missing).0, origin);
    }
    for name in [
        "test.",
        "z99.test.",
        "xz1.test.",
        "deep.example.",
        "z1.test.org.",
    ] {
        assert_rcode(&s.ask(name, RecordType::A), ResponseCode::Refused);
    }
}

#[test]
fn nxdomain_carries_the_soa_with_the_negative_ttl() {
    let s = server();
    for resp in [
        s.ask("nope.example.test.", RecordType::A),
        s.tcp(&query("a.b.nope.example.test.", RecordType::AAAA)),
    ] {
        assert_rcode(&resp, ResponseCode::NXDomain);
        assert!(resp.metadata.authoritative);
        assert!(resp.answers.is_empty());
        // min(zone ttl 300, SOA minimum 60), RFC 2308.
        assert_eq!(soa_of(&resp), ("example.test.".into(), 60));
        let RData::SOA(soa) = &resp.authorities[0].data else {
            panic!()
        };
        assert_eq!(soa.serial, 2026112201);
    }
    // A name below an existing leaf does not exist either.
    assert_rcode(
        &s.ask("x.ns1.example.test.", RecordType::A),
        ResponseCode::NXDomain,
    );
}

#[test]
fn nodata_for_missing_types_and_empty_non_terminals() {
    let s = server();
    for (name, rtype) in [
        ("ns1.example.test.", RecordType::AAAA),
        ("app.example.test.", RecordType::MX),
        ("rr.example.test.", RecordType::AAAA),
        ("_tcp.example.test.", RecordType::A),
        ("_tcp.example.test.", RecordType::SRV),
    ] {
        let resp = s.ask(name, rtype);
        assert_rcode(&resp, ResponseCode::NoError);
        assert!(resp.metadata.authoritative);
        assert!(resp.answers.is_empty(), "{name} {rtype}");
        assert_eq!(soa_of(&resp), ("example.test.".into(), 60));
    }
}

#[test]
fn apex_has_soa_and_ns_and_static_types_answer() {
    let s = server();
    let soa = s.ask("example.test.", RecordType::SOA);
    assert_eq!(soa.answers.len(), 1);
    assert_eq!(soa.answers[0].ttl, 300);
    let ns = s.ask("example.test.", RecordType::NS);
    let mut names: Vec<String> = ns.answers.iter().map(|r| r.data.to_string()).collect();
    names.sort();
    assert_eq!(names, ["ns1.example.test.", "ns2.example.test."]);
    assert_eq!(
        s.ask("ns2.example.test.", RecordType::A).answers[0].ttl,
        600
    );
    let mx = s.ask("example.test.", RecordType::MX);
    assert_eq!(mx.answers[0].data.to_string(), "10 mail.example.test.");
    let srv = s.ask("_svc._tcp.example.test.", RecordType::SRV);
    assert_eq!(
        srv.answers[0].data.to_string(),
        "0 0 8200 app.example.test."
    );
    let txt = s.ask("txt.example.test.", RecordType::TXT);
    assert_eq!(txt.answers.len(), 2);
}

#[test]
fn cname_is_followed_inside_our_zones() {
    let s = server();
    let resp = s.ask("www.example.test.", RecordType::A);
    assert_rcode(&resp, ResponseCode::NoError);
    assert!(resp.metadata.authoritative);
    assert_eq!(resp.answers.len(), 2);
    assert_eq!(resp.answers[0].record_type(), RecordType::CNAME);
    assert_eq!(resp.answers[0].data.to_string(), "app.example.test.");
    assert_eq!(resp.answers[1].name.to_string(), "app.example.test.");
    assert_eq!(addresses(&resp), ["192.0.2.11"]);

    // Asking for the CNAME itself gives only the CNAME.
    let only = s.ask("www.example.test.", RecordType::CNAME);
    assert_eq!(only.answers.len(), 1);

    // The target exists without the type: NODATA with the CNAME and the SOA.
    let nodata = s.ask("www.example.test.", RecordType::MX);
    assert_eq!(nodata.answers.len(), 1);
    assert_eq!(soa_of(&nodata).0, "example.test.");

    // A target outside our zones: the CNAME alone, for the resolver to chase.
    let ext = s.ask("ext.example.test.", RecordType::A);
    assert_rcode(&ext, ResponseCode::NoError);
    assert_eq!(ext.answers.len(), 1);
    assert!(ext.authorities.is_empty());

    // A target in our zone that does not exist: NXDOMAIN (RFC 6604) after the CNAME.
    let dangling = s.ask("dangling.example.test.", RecordType::A);
    assert_rcode(&dangling, ResponseCode::NXDomain);
    assert_eq!(dangling.answers.len(), 1);

    // A loop ends; the server answers and keeps serving.
    let looped = s.ask("loop1.example.test.", RecordType::A);
    assert!(looped.answers.len() <= 8);
    assert_eq!(
        addresses(&s.ask("app.example.test.", RecordType::A)),
        ["192.0.2.11"]
    );
}

#[test]
fn any_is_answered_minimally() {
    let s = server();
    let resp = s.ask("app.example.test.", RecordType::ANY);
    assert_rcode(&resp, ResponseCode::NoError);
    assert!(
        resp.answers
            .iter()
            .all(|r| r.record_type() == RecordType::A)
    );
    assert_eq!(resp.answers.len(), 1);
    let apex = s.ask("example.test.", RecordType::ANY);
    let types: std::collections::HashSet<_> =
        apex.answers.iter().map(|r| r.record_type()).collect();
    assert_eq!(types.len(), 1, "one RRset, RFC 8482");
}

#[test]
fn edns_buffer_size_decides_truncation() {
    let s = server();
    // No EDNS: 512 bytes at most, TC set, no OPT.
    let small = s.udp(&plain_query("big.example.test.", RecordType::A));
    assert!(small.metadata.truncation);
    assert!(small.edns.is_none());
    assert!(small.to_vec().unwrap().len() <= 512);
    assert!(small.answers.len() < 60);

    // EDNS 1232: the 60 records (about 1 KB) fit.
    let large = s.ask("big.example.test.", RecordType::A);
    assert!(!large.metadata.truncation);
    assert_eq!(large.answers.len(), 60);
    assert_eq!(large.edns.as_ref().unwrap().max_payload(), 1232);

    // A client offering less than 512 is treated as 512 (RFC 6891 6.2.3).
    let mut tiny = plain_query("big.example.test.", RecordType::A);
    let mut e = Edns::new();
    e.set_max_payload(100);
    tiny.set_edns(e);
    let resp = s.udp(&tiny);
    assert!(resp.metadata.truncation);
    assert_eq!(resp.edns.as_ref().unwrap().max_payload(), 512);

    // TCP always carries the whole answer.
    let tcp = s.tcp(&plain_query("big.example.test.", RecordType::A));
    assert!(!tcp.metadata.truncation);
    assert_eq!(tcp.answers.len(), 60);
}

#[test]
fn unsupported_edns_version_gets_badvers() {
    let s = server();
    let mut m = plain_query("app.example.test.", RecordType::A);
    let mut e = Edns::new();
    e.set_version(1);
    m.set_edns(e);
    let resp = s.udp(&m);
    // BADVERS and BADSIG share code 16; the decoder names it BADSIG.
    assert_eq!(u16::from(resp.metadata.response_code), 16);
    assert_eq!(resp.edns.as_ref().unwrap().version(), 0);
    assert!(resp.answers.is_empty());
}

#[test]
fn other_opcodes_are_not_implemented_and_transfers_refused() {
    let s = server();
    let mut m = query("example.test.", RecordType::SOA);
    m.metadata.op_code = OpCode::Notify;
    assert_rcode(&s.udp(&m), ResponseCode::NotImp);
    let axfr = s.tcp(&query("example.test.", RecordType::AXFR));
    assert_rcode(&axfr, ResponseCode::Refused);
}

#[test]
fn malformed_queries_do_not_stop_the_server() {
    let s = server();
    // Too short for a header: dropped.
    assert!(udp_raw(s.addr, &[1, 2, 3]).is_none());
    // A header that promises a question that is not there: FORMERR.
    let header = [0xab, 0xcd, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0];
    let resp = udp_raw(s.addr, &header).expect("a FORMERR reply");
    assert_eq!(&resp[..2], &[0xab, 0xcd]);
    assert_eq!(resp[3] & 0x0f, 1, "rcode FORMERR");
    // Two questions: FORMERR.
    let mut two = plain_query("app.example.test.", RecordType::A);
    two.add_query(hickory_proto::op::Query::query(
        "rr.example.test.".parse().unwrap(),
        RecordType::A,
    ));
    assert_rcode(&s.udp(&two), ResponseCode::FormErr);
    // A response sent to us is ignored (no reflection).
    let mut reply = plain_query("app.example.test.", RecordType::A);
    reply.metadata.message_type = hickory_proto::op::MessageType::Response;
    assert!(udp_raw(s.addr, &reply.to_vec().unwrap()).is_none());
    // Garbage bytes of every length up to 64: the server keeps answering.
    for len in 0..64u8 {
        let junk: Vec<u8> = (0..len)
            .map(|i| i.wrapping_mul(37).wrapping_add(len))
            .collect();
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.send_to(&junk, s.addr).unwrap();
    }
    assert_eq!(
        addresses(&s.ask("app.example.test.", RecordType::A)),
        ["192.0.2.11"]
    );
    assert_eq!(
        addresses(&s.tcp(&query("app.example.test.", RecordType::A))),
        ["192.0.2.11"]
    );
}

#[test]
fn members_are_chosen_by_address_family() {
    let s = server();
    assert_eq!(
        addresses(&s.ask("app.example.test.", RecordType::AAAA)),
        ["2001:db8::11"]
    );
    assert_eq!(
        addresses(&s.ask("all.example.test.", RecordType::AAAA)),
        ["2001:db8::41"]
    );
}

fn counts(s: &TestServer, name: &str, n: usize) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for _ in 0..n {
        for a in addresses(&s.ask(name, RecordType::A)) {
            *counts.entry(a).or_insert(0) += 1;
        }
    }
    counts
}

#[test]
fn round_robin_rotates_through_members() {
    let s = server();
    let first: Vec<String> = (0..6)
        .map(|_| addresses(&s.ask("rr.example.test.", RecordType::A))[0].clone())
        .collect();
    assert_eq!(
        first,
        [
            "192.0.2.21",
            "192.0.2.22",
            "192.0.2.23",
            "192.0.2.21",
            "192.0.2.22",
            "192.0.2.23"
        ]
    );
    let c = counts(&s, "rr.example.test.", 999);
    assert_eq!(c.values().copied().collect::<Vec<_>>(), [333, 333, 333]);
    // With answers: 2, each response is two consecutive members, starting one further on.
    let pairs: Vec<Vec<String>> = (0..3)
        .map(|_| addresses(&s.ask("rr2.example.test.", RecordType::A)))
        .collect();
    assert_eq!(pairs[0], ["192.0.2.21", "192.0.2.22"]);
    assert_eq!(pairs[1], ["192.0.2.22", "192.0.2.23"]);
    assert_eq!(pairs[2], ["192.0.2.23", "192.0.2.21"]);
}

#[test]
fn weighted_shares_follow_the_weights() {
    let s = server();
    let c = counts(&s, "wrr.example.test.", 1000);
    assert!((485..=515).contains(&c["192.0.2.31"]), "{c:?}");
    assert!((235..=265).contains(&c["192.0.2.32"]), "{c:?}");
    assert!((235..=265).contains(&c["192.0.2.33"]), "{c:?}");
}

#[test]
fn fixed_weight_takes_the_next_member_when_the_first_is_down() {
    let s = server();
    let c = counts(&s, "failover.example.test.", 50);
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(c["192.0.2.52"], 50, "equal weights: list order decides");
    let c = counts(&s, "app.example.test.", 1000);
    assert_eq!(c["192.0.2.11"], 1000);
}

#[test]
fn all_available_returns_every_up_member() {
    let s = server();
    let resp = s.ask("all.example.test.", RecordType::A);
    let mut got = addresses(&resp);
    got.sort();
    assert_eq!(got, ["192.0.2.41", "192.0.2.43"]);
}

#[test]
fn when_all_down_none_answers_nodata_with_the_names_ttl() {
    let s = server();
    let resp = s.ask("closed.example.test.", RecordType::A);
    assert_rcode(&resp, ResponseCode::NoError);
    assert!(resp.metadata.authoritative);
    assert!(resp.answers.is_empty());
    assert_eq!(soa_of(&resp), ("example.test.".into(), 7));
}

#[test]
fn when_all_down_all_answers_as_if_all_were_up() {
    let s = server();
    let resp = s.ask("open.example.test.", RecordType::A);
    assert_eq!(addresses(&resp), ["192.0.2.72"]);
    assert_eq!(resp.answers[0].ttl, 7);
}

/// `identity:` in the server file: NSID (RFC 5001) for queries that ask, and the CHAOS TXT
/// names, as Knot and NSD answer them; none of it unless configured.
#[test]
fn identity_answers_nsid_and_chaos_names_only_when_configured() {
    use hickory_proto::rr::DNSClass;
    use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption, NSIDPayload};
    let zone = "zone: id.test\nns: [ns1]\nrecords:\n  ns1: { A: 192.0.2.53 }\n";
    let chaos = |name: &str, rtype: RecordType| {
        let mut q = query(name, rtype);
        q.queries[0].set_query_class(DNSClass::CH);
        q
    };
    let with_nsid = || {
        let mut q = query("ns1.id.test.", RecordType::A);
        q.edns
            .as_mut()
            .unwrap()
            .options_mut()
            .insert(EdnsOption::NSID(NSIDPayload::new(Vec::new()).unwrap()));
        q
    };
    let nsid_of = |m: &Message| match m.edns.as_ref()?.option(EdnsCode::NSID)? {
        EdnsOption::NSID(n) => Some(String::from_utf8_lossy(n.as_ref()).into_owned()),
        _ => None,
    };

    // Not configured: REFUSED, and no NSID.
    let s = start(&[("id.yaml", zone)]);
    for exchange in [udp_exchange, tcp_exchange] {
        let m = exchange(s.addr, &chaos("version.bind.", RecordType::TXT));
        assert_rcode(&m, ResponseCode::Refused);
        assert_eq!(nsid_of(&exchange(s.addr, &with_nsid())), None);
    }
    drop(s);

    let (dir, file) = write_config_with(
        "identity: { nsid: ns1.example, version: \"Meridian test\", hostname: ns1.example }\n",
        &[("id.yaml", zone)],
    );
    let s = start_with(dir, &file);
    for exchange in [udp_exchange, tcp_exchange] {
        for (name, want) in [
            ("version.bind.", "Meridian test"),
            ("VERSION.server.", "Meridian test"),
            ("hostname.bind.", "ns1.example"),
            ("id.server.", "ns1.example"),
        ] {
            let m = exchange(s.addr, &chaos(name, RecordType::TXT));
            assert_rcode(&m, ResponseCode::NoError);
            assert!(m.metadata.authoritative);
            assert_eq!(m.answers.len(), 1, "{name}: {m:?}");
            let r = &m.answers[0];
            assert_eq!((r.dns_class, r.ttl), (DNSClass::CH, 0));
            assert_eq!(r.data.to_string(), want, "{name}");
        }
        // The name with another type: NODATA; another CH name: REFUSED.
        let m = exchange(s.addr, &chaos("version.bind.", RecordType::A));
        assert_rcode(&m, ResponseCode::NoError);
        assert!(m.answers.is_empty());
        assert_rcode(
            &exchange(s.addr, &chaos("authors.bind.", RecordType::TXT)),
            ResponseCode::Refused,
        );
        // NSID only to a query that asks.
        let m = exchange(s.addr, &with_nsid());
        assert_eq!(addresses(&m), ["192.0.2.53"]);
        assert_eq!(nsid_of(&m).as_deref(), Some("ns1.example"));
        assert_eq!(
            nsid_of(&exchange(s.addr, &query("ns1.id.test.", RecordType::A))),
            None
        );
    }
    // What dig shows.
    let out = std::process::Command::new("dig")
        .args([
            "+nsid",
            "+norec",
            "-p",
            &s.addr.port().to_string(),
            "@127.0.0.1",
            "ns1.id.test",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("NSID: 6e 73 31 2e 65 78 61 6d 70 6c 65 (\"ns1.example\")"),
        "{text}"
    );
}

/// Additional-section data for a health-checked target: its current choice, without moving
/// its rotation; and only while it fits, never truncating the answer for it.
#[test]
fn additional_addresses_of_a_health_checked_target_fit_or_are_left_out() {
    let zone = "zone: add.test\nns: [ns1]\nrecords:\n  ns1: { A: 192.0.2.53 }\n  \"@\": { MX: \"10 mail\" }\n  big: { MX: [\"10 mail\"], TXT: [\"x\"] }\nfqdns:\n  mail:\n    selection: round-robin\n    members: [{ address: 192.0.2.1 }, { address: 192.0.2.2 }, { address: \"2001:db8::1\" }]\n";
    let s = start(&[("add.yaml", zone)]);
    let additional = |m: &Message| -> Vec<String> {
        m.additionals
            .iter()
            .map(|r| format!("{} {}", r.name, r.data))
            .collect()
    };
    for exchange in [udp_exchange, tcp_exchange] {
        let m = exchange(s.addr, &query("add.test.", RecordType::MX));
        assert_eq!(m.answers.len(), 1);
        // Round-robin answers one member; the additional section shows what the next A
        // query would get, and asking does not move the rotation.
        let next = addresses(&exchange(s.addr, &query("mail.add.test.", RecordType::A)));
        let m = exchange(s.addr, &query("add.test.", RecordType::MX));
        let shown = additional(&m);
        assert_eq!(shown.len(), 2, "{shown:?}");
        assert!(
            shown.contains(&"mail.add.test. 2001:db8::1".to_string()),
            "{shown:?}"
        );
        let a = addresses(&exchange(s.addr, &query("mail.add.test.", RecordType::A)));
        assert_ne!(
            a, next,
            "the rotation moved for queries, not for the additional section"
        );
        assert!(
            shown.contains(&format!("mail.add.test. {}", a[0])),
            "{shown:?} {a:?}"
        );
    }
    // A target of 40 addresses has no room in 512 bytes: they are left out, and the
    // answer is not truncated; over TCP they are all there.
    let many: String = (1..=40)
        .map(|i| format!("{{ address: 192.0.2.{i} }}, "))
        .collect();
    let zone = format!(
        "zone: many.test\nns: [ns1]\nrecords:\n  ns1: {{ A: 192.0.2.53 }}\n  \"@\": {{ MX: \"10 many\" }}\nfqdns:\n  many:\n    selection: all-available\n    members: [{many}]\n"
    );
    let s = start(&[("many.yaml", &zone)]);
    let mut q = Message::query();
    q.add_query(hickory_proto::op::Query::query(
        hickory_proto::rr::Name::from_ascii("many.test.").unwrap(),
        RecordType::MX,
    ));
    let udp = udp_exchange(s.addr, &q);
    assert!(!udp.metadata.truncation, "{udp:?}");
    assert_eq!((udp.answers.len(), udp.additionals.len()), (1, 0));
    let tcp = tcp_exchange(s.addr, &q);
    assert_eq!((tcp.answers.len(), tcp.additionals.len()), (1, 40));
}

/// What a delegation hides is an error naming it: data below it but glue, data at it but
/// NS, DS and glue, a health-checked name under it, a delegation under it, DS without NS.
#[test]
fn data_a_delegation_would_hide_is_refused() {
    let zone = |records: &str| {
        format!(
            "zone: cut.test\nns: [ns1]\nrecords:\n  ns1: {{ A: 192.0.2.53 }}\n  sub: {{ NS: ns1.sub }}\n{records}"
        )
    };
    let errors = |text: &str| -> Vec<String> {
        meridian::config::parse_zone(std::path::Path::new("z.yaml"), text)
            .unwrap_err()
            .0
            .iter()
            .map(|e| e.to_string())
            .collect()
    };
    let e = errors(&zone("  www.sub: { TXT: hidden }\n"));
    assert!(
        e[0].contains("records.www.sub")
            && e[0].contains("TXT records below the delegation sub.cut.test."),
        "{e:?}"
    );
    let e = errors(
        "zone: cut.test\nns: [ns1]\nrecords:\n  ns1: { A: 192.0.2.53 }\n  sub: { NS: ns1.sub, MX: \"10 mail\" }\n",
    );
    assert!(
        e.iter().any(|m| m.contains("at the delegation point")),
        "{e:?}"
    );
    let e = errors(&zone("  deeper.sub: { NS: ns.elsewhere.example. }\n"));
    assert!(e[0].contains("a delegation below the delegation"), "{e:?}");
    let e = errors(&zone("  ds-only: { DS: \"1 13 2 00\" }\n"));
    assert!(
        e[0].contains("DS records belong at a delegation point"),
        "{e:?}"
    );
    let e = errors(&format!(
        "{}fqdns:\n  app.sub:\n    members: [{{ address: 192.0.2.1 }}]\n",
        zone("")
    ));
    assert!(e[0].contains("at or below the delegation"), "{e:?}");
    // Glue below it and at it is fine.
    assert!(
        meridian::config::parse_zone(
            std::path::Path::new("z.yaml"),
            &zone("  ns1.sub: { A: 192.0.2.98, AAAA: \"2001:db8::98\" }\n")
        )
        .is_ok()
    );
}

/// A master file with a bad record: the error names the master file and the line where the
/// record starts; records in both the YAML and the file are an error too.
#[test]
fn a_records_file_error_names_its_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let zone = dir.path().join("z.yaml");
    std::fs::write(
        dir.path().join("z.zone"),
        "$ORIGIN rf.test.\nwww A 192.0.2.1\nmail MX ( 10\n  mail )\nbad A 999.1.1.1\n",
    )
    .unwrap();
    let text =
        "zone: rf.test\nns: [ns1]\nrecords-file: z.zone\nrecords:\n  ns1: { A: 192.0.2.53 }\n";
    let errors: Vec<String> = meridian::config::parse_zone(&zone, text)
        .unwrap_err()
        .0
        .iter()
        .map(|e| e.to_string())
        .collect();
    let want = format!("{}:5:1: records-file:", dir.path().join("z.zone").display());
    assert!(errors[0].starts_with(&want), "{errors:?}");
    std::fs::write(
        dir.path().join("z.zone"),
        "www A 192.0.2.1\nns1 A 192.0.2.9\n",
    )
    .unwrap();
    let errors: Vec<String> = meridian::config::parse_zone(&zone, text)
        .unwrap_err()
        .0
        .iter()
        .map(|e| e.to_string())
        .collect();
    assert!(
        errors[0].contains("ns1.rf.test. A is both under records: and in"),
        "{errors:?}"
    );
    std::fs::write(dir.path().join("z.zone"), "www A 192.0.2.1\n").unwrap();
    let ok = meridian::config::parse_zone(&zone, text).unwrap();
    assert_eq!(ok.records.len(), 2);
}

/// An owner written twice (in two spellings, apart in the file) is one name with the
/// records of both, and `records.@` adds to the apex's own NS.
#[test]
fn an_owner_written_twice_is_one_name_with_both_records() {
    let zone = r#"
zone: spell.test
ns: [ns1.spell.test.]
records:
  ns1: { A: 192.0.2.53 }
  www: { A: 192.0.2.1, TXT: first }
  other: { A: 192.0.2.9 }
  WWW: { A: 192.0.2.2 }
  www.spell.test.: { TXT: second, AAAA: "2001:db8::1" }
  "@": { NS: [ns2.spell.test.], MX: "10 mail" }
"#;
    let s = start(&[("spell.test.yaml", zone)]);
    let data = |name: &str, rtype| {
        let mut all: Vec<String> = s
            .ask(name, rtype)
            .answers
            .iter()
            .map(|r| r.data.to_string())
            .collect();
        all.sort();
        all
    };
    assert_eq!(
        data("www.spell.test.", RecordType::A),
        ["192.0.2.1", "192.0.2.2"]
    );
    assert_eq!(
        data("Www.spell.test.", RecordType::TXT),
        ["first", "second"]
    );
    assert_eq!(data("www.spell.test.", RecordType::AAAA), ["2001:db8::1"]);
    assert_eq!(data("other.spell.test.", RecordType::A), ["192.0.2.9"]);
    assert_eq!(
        data("spell.test.", RecordType::NS),
        ["ns1.spell.test.", "ns2.spell.test."]
    );
    assert_eq!(data("spell.test.", RecordType::MX), ["10 mail.spell.test."]);
}

/// A health-checked name with static records of other types answers both.
#[test]
fn a_health_checked_name_keeps_its_static_records() {
    let zone = r#"
zone: mix.test
ns: [ns1.mix.test.]
records:
  ns1: { A: 192.0.2.53 }
  app: { TXT: "static text" }
fqdns:
  app:
    members: [{ address: 192.0.2.11 }, { address: 192.0.2.12 }]
"#;
    let s = start(&[("mix.test.yaml", zone)]);
    let a = addresses(&s.ask("app.mix.test.", RecordType::A));
    assert!(!a.is_empty(), "{a:?}");
    assert!(
        a.iter()
            .all(|ip| ["192.0.2.11", "192.0.2.12"].contains(&ip.as_str())),
        "{a:?}"
    );
    let txt = s.ask("app.mix.test.", RecordType::TXT);
    assert_eq!(txt.answers.len(), 1, "{txt:?}");
    assert_eq!(txt.answers[0].data.to_string(), "static text");
}
