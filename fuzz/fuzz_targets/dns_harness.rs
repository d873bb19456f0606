//! What the DNS fuzz targets share: two servers' states built in-process from the same
//! files (so that their rotations move in step), both answer paths, and the properties
//! every response must have.

use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;

use hickory_proto::op::Message;
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_server::net::xfer::Protocol;
use meridian::dns;
use meridian::state::Meridian;

/// Largest UDP answer to a query without a valid cookie over its size: 1232 bytes (the
/// default `edns-udp-size`) for the smallest query that can carry EDNS, 28 bytes.
pub const MAX_AMPLIFICATION: usize = 44;

const ZONE: &str = r#"zone: fuzz.test
ns: [ns1]
records:
  ns1: { A: 192.0.2.53 }
  www: { CNAME: app }
  ext: { CNAME: www.elsewhere.invalid. }
  loop1: { CNAME: loop2 }
  loop2: { CNAME: loop1 }
  txt: { TXT: ["hello", "world"] }
  big: { A: [192.0.2.1, 192.0.2.2, 192.0.2.3, 192.0.2.4, 192.0.2.5, 192.0.2.6, 192.0.2.7, 192.0.2.8, 192.0.2.9, 192.0.2.10, 192.0.2.11, 192.0.2.12, 192.0.2.13, 192.0.2.14, 192.0.2.15, 192.0.2.16, 192.0.2.17, 192.0.2.18, 192.0.2.19, 192.0.2.20, 192.0.2.21, 192.0.2.22, 192.0.2.23, 192.0.2.24, 192.0.2.25, 192.0.2.26, 192.0.2.27, 192.0.2.28, 192.0.2.29, 192.0.2.30, 192.0.2.31, 192.0.2.32, 192.0.2.33, 192.0.2.34, 192.0.2.35, 192.0.2.36, 192.0.2.37, 192.0.2.38, 192.0.2.39, 192.0.2.40, 192.0.2.41, 192.0.2.42, 192.0.2.43, 192.0.2.44, 192.0.2.45, 192.0.2.46, 192.0.2.47, 192.0.2.48, 192.0.2.49, 192.0.2.50, 192.0.2.51, 192.0.2.52, 192.0.2.53, 192.0.2.54, 192.0.2.55, 192.0.2.56, 192.0.2.57, 192.0.2.58, 192.0.2.59, 192.0.2.60, 192.0.2.61, 192.0.2.62, 192.0.2.63, 192.0.2.64, 192.0.2.65, 192.0.2.66, 192.0.2.67, 192.0.2.68, 192.0.2.69, 192.0.2.70, 192.0.2.71, 192.0.2.72, 192.0.2.73, 192.0.2.74, 192.0.2.75, 192.0.2.76, 192.0.2.77, 192.0.2.78, 192.0.2.79, 192.0.2.80] }
sites:
  lon: { lat: 51.51, lon: -0.13, countries: [GB], continents: [EU], networks: [10.1.0.0/16] }
  nyc: { lat: 40.71, lon: -74.01, countries: [US], continents: [NA], default: true }
fqdns:
  app:
    members: [{ address: 192.0.2.11, weight: 100 }, { address: 192.0.2.12 }, { address: "2001:db8::11" }]
  rr:
    selection: round-robin
    answers: 2
    members: [{ address: 192.0.2.21 }, { address: 192.0.2.22 }, { address: 192.0.2.23 }]
  wrr:
    selection: weighted
    members: [{ address: 192.0.2.31, weight: 3 }, { address: 192.0.2.32 }]
  prox:
    selection: proximity
    members: [{ address: 192.0.2.61, site: lon }, { address: 192.0.2.63, site: nyc }]
  loc:
    selection: location
    members: [{ address: 192.0.2.71, site: lon }, { address: 192.0.2.73, site: nyc }]
  closed:
    when-all-down: none
    members: [{ address: 192.0.2.81, enabled: false }]
"#;

pub struct Pair {
    pub rt: tokio::runtime::Runtime,
    pub a: Meridian,
    pub b: Meridian,
}

/// The two states, built once per fuzzing process.
pub fn pair() -> &'static Pair {
    static PAIR: OnceLock<Pair> = OnceLock::new();
    PAIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("meridian-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("zones")).unwrap();
        std::fs::write(dir.join("zones/fuzz.yaml"), ZONE).unwrap();
        // Forwarding to a port nobody listens on: refused at once, answered SERVFAIL.
        std::fs::write(
            dir.join("meridian.yaml"),
            "listen: [127.0.0.1:0]\nzones: zones\nwatch: false\n\
             cookies: { secret: 000102030405060708090a0b0c0d0e0f }\n\
             forward: { upstreams: [127.0.0.1:9], timeout: 100ms, allow: [127.0.0.2/32] }\n\
             access: { deny: [127.0.0.66/32] }\n",
        )
        .unwrap();
        let config = meridian::config::load(&dir.join("meridian.yaml")).expect("fuzz config");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let a = Meridian::new(&config, Vec::new());
        let b = Meridian::new(&config, Vec::new());
        rt.block_on(a.apply(config.clone()));
        rt.block_on(b.apply(config));
        Pair { rt, a, b }
    })
}

/// A client address for an input: mostly plain, sometimes one that may forward or is denied.
pub fn source(selector: u8) -> SocketAddr {
    let ip: IpAddr = match selector % 8 {
        0 => [127, 0, 0, 2].into(),
        1 => [127, 0, 0, 66].into(),
        _ => [127, 0, 0, 1].into(),
    };
    SocketAddr::new(ip, 53000)
}

/// Answers `msg` over UDP on `state`: the fast path, else the general path.
pub fn udp(
    state: &Meridian,
    rt: &tokio::runtime::Runtime,
    msg: &[u8],
    src: SocketAddr,
) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let table = state.table.load();
    if dns::fast_path(state, &table, msg, src.ip(), &mut out) {
        return (!out.is_empty()).then_some(out);
    }
    rt.block_on(dns::general_path(state, msg.to_vec(), src, Protocol::Udp))
}

/// The reply with the time and hash of a server cookie masked: two answers to one query
/// may fall in different seconds.
fn comparable(reply: &[u8]) -> Option<Message> {
    let mut m = Message::from_vec(reply).ok()?;
    if let Some(edns) = m.edns.as_mut()
        && let Some(EdnsOption::Unknown(10, cookie)) = edns.option(EdnsCode::Cookie).cloned()
    {
        let mut masked = cookie.clone();
        masked.iter_mut().skip(12).for_each(|b| *b = 0);
        edns.options_mut().remove(EdnsCode::Cookie);
        edns.options_mut().insert(EdnsOption::Unknown(10, masked));
    }
    Some(m)
}

/// Checks one query against both states: the properties of any reply, and that the two
/// paths agree.
pub fn check(msg: &[u8], selector: u8) {
    let p = pair();
    let src = source(selector);
    let from_a = udp(&p.a, &p.rt, msg, src);
    let from_b =
        p.rt.block_on(dns::general_path(&p.b, msg.to_vec(), src, Protocol::Udp));
    properties(msg, from_a.as_deref());
    properties(msg, from_b.as_deref());
    match (&from_a, &from_b) {
        (Some(a), Some(b)) => {
            assert_eq!(
                comparable(a),
                comparable(b),
                "fast and general paths differ"
            );
        }
        (None, None) => {}
        _ => panic!("one path answered and the other did not: {from_a:?} {from_b:?}"),
    }
}

/// Where the first question of a message ends (after its type and class).
fn question_end(msg: &[u8]) -> Option<usize> {
    let mut i = 12;
    loop {
        let len = usize::from(*msg.get(i)?);
        if len & 0xc0 != 0 {
            return None;
        }
        i += 1 + len;
        if len == 0 {
            break;
        }
    }
    (i + 4 <= msg.len()).then_some(i + 4)
}

/// What every reply to `query` must be: none to a response (QR=1); else one that parses,
/// echoes the id and the question, fits the client's limit, and amplifies at most
/// `MAX_AMPLIFICATION` times.
pub fn properties(query: &[u8], reply: Option<&[u8]>) {
    let Some(reply) = reply else { return };
    assert!(query.len() >= 12, "a reply to {} bytes", query.len());
    assert_eq!(query[2] & 0x80, 0, "a reply to a message with QR=1");
    let m = Message::from_vec(reply).expect("every reply parses");
    assert_eq!(reply[..2], query[..2], "the id is echoed");
    assert!(reply.len() <= 1232, "{} bytes over UDP", reply.len());
    assert!(
        reply.len() <= MAX_AMPLIFICATION * query.len(),
        "{} bytes for a query of {}",
        reply.len(),
        query.len()
    );
    if m.queries.len() == 1 {
        let end = question_end(query).expect("a question was echoed, so there was one");
        assert_eq!(
            &reply[12..end],
            &query[12..end],
            "the question is echoed as sent"
        );
    }
    if m.edns.is_none() {
        assert!(reply.len() <= 512, "{} bytes without EDNS", reply.len());
    }
}
