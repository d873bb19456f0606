//! Geo selection over real UDP with EDNS Client Subnet, GeoIP and site networks.

use std::net::SocketAddr;
use std::time::Duration;

use crate::common::backend::{TcpBackend, free_port};
use crate::common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

// Addresses of MaxMind's City test database.
const LONDON: &str = "81.2.69.142";
const SWEDEN: &str = "89.160.20.112";
const US: &str = "216.160.83.56";
const GERMANY_V6: &str = "2a02:d180::1";
const JAPAN_V6: &str = "2001:218::1";
const NOT_FOUND: &str = "1.1.1.1";

fn zone(port: u16) -> String {
    format!(
        r#"zone: geo.test
ns: [ns1]
sites:
  lon: {{ lat: 51.51, lon: -0.13, countries: [GB], continents: [EU], networks: [10.1.0.0/16] }}
  sto: {{ lat: 59.33, lon: 18.07, countries: [SE], continents: [EU], networks: [10.0.0.0/8, 127.0.21.0/24] }}
  nyc: {{ lat: 40.71, lon: -74.01, countries: [US], continents: [NA], networks: [192.168.0.0/16], default: true }}
fqdns:
  prox:
    selection: proximity
    check: {{ type: tcp, port: {port}, interval: 200ms, timeout: 100ms, rise: 1, fall: 1 }}
    members:
      - {{ address: 127.0.20.1, site: lon }}
      - {{ address: 127.0.20.2, site: sto }}
      - {{ address: 127.0.20.3, site: nyc }}
  loc:
    selection: location
    check: {{ type: tcp, port: {port}, interval: 200ms, timeout: 100ms, rise: 1, fall: 1 }}
    members:
      - {{ address: 127.0.20.1, site: lon }}
      - {{ address: 127.0.20.2, site: sto }}
      - {{ address: 127.0.20.3, site: nyc }}
  plain:
    members: [{{ address: 192.0.2.1 }}]
"#
    )
}

struct Geo {
    server: TestServer,
    listeners: Vec<Option<TcpBackend>>,
}

fn setup(server_extra: &str) -> Geo {
    let port = free_port(ip("127.0.20.1"));
    let listeners = (1..=3)
        .map(|i| {
            Some(TcpBackend::start(SocketAddr::new(
                ip(&format!("127.0.20.{i}")),
                port,
            )))
        })
        .collect();
    let db = geoip_file("maxmind-test-data/GeoIP2-City-Test.mmdb");
    let extra = format!("geoip: {}\n{server_extra}", db.display());
    let (dir, file) = write_config_with(&extra, &[("geo.yaml", &zone(port))]);
    Geo {
        server: start_with(dir, &file),
        listeners,
    }
}

/// The first address answered for `name` to a client in `subnet`, and the ECS scope.
fn pick(s: &TestServer, name: &str, subnet: &str) -> (String, u8) {
    let rtype = RecordType::A;
    let resp = s.udp(&ecs_query(name, rtype, subnet));
    assert_eq!(
        resp.metadata.response_code,
        ResponseCode::NoError,
        "{resp:?}"
    );
    let (_, _, scope) = ecs_of(&resp).expect("ECS echoed");
    (addresses(&resp)[0].clone(), scope)
}

#[test]
fn proximity_picks_the_nearest_up_site_and_moves_on_when_it_goes_down() {
    let mut g = setup("");
    let s = &g.server;
    assert_eq!(
        pick(s, "prox.geo.test.", &format!("{LONDON}/32")).0,
        "127.0.20.1"
    );
    assert_eq!(
        pick(s, "prox.geo.test.", &format!("{SWEDEN}/32")).0,
        "127.0.20.2"
    );
    assert_eq!(
        pick(s, "prox.geo.test.", &format!("{US}/32")).0,
        "127.0.20.3"
    );
    // IPv6 clients are placed too.
    assert_eq!(
        pick(s, "prox.geo.test.", &format!("{GERMANY_V6}/56")).0,
        "127.0.20.1"
    );
    // Unknown location: fixed-weight order (list order at equal weights).
    assert_eq!(
        pick(s, "prox.geo.test.", &format!("{NOT_FOUND}/32")).0,
        "127.0.20.1"
    );

    // London's site goes down: London clients go to the next nearest, Stockholm.
    g.listeners[0].take().unwrap().stop();
    eventually(
        Duration::from_secs(3),
        "London clients sent to Stockholm",
        || pick(&g.server, "prox.geo.test.", &format!("{LONDON}/32")).0 == "127.0.20.2",
    );
    // And with Stockholm down as well, New York.
    g.listeners[1].take().unwrap().stop();
    eventually(
        Duration::from_secs(3),
        "London clients sent to New York",
        || pick(&g.server, "prox.geo.test.", &format!("{LONDON}/32")).0 == "127.0.20.3",
    );
}

#[test]
fn location_picks_by_country_then_continent_then_default() {
    let mut g = setup("");
    let s = &g.server;
    assert_eq!(
        pick(s, "loc.geo.test.", &format!("{LONDON}/32")).0,
        "127.0.20.1"
    );
    assert_eq!(
        pick(s, "loc.geo.test.", &format!("{SWEDEN}/32")).0,
        "127.0.20.2"
    );
    assert_eq!(
        pick(s, "loc.geo.test.", &format!("{US}/32")).0,
        "127.0.20.3"
    );
    // Germany: no site lists DE; both EU sites do list the continent: round-robin over them.
    let mut eu: Vec<String> = (0..4)
        .map(|_| pick(s, "loc.geo.test.", &format!("{GERMANY_V6}/48")).0)
        .collect();
    eu.sort();
    eu.dedup();
    assert_eq!(eu, ["127.0.20.1", "127.0.20.2"]);
    // Japan: neither country nor continent: the default site.
    assert_eq!(
        pick(s, "loc.geo.test.", &format!("{JAPAN_V6}/48")).0,
        "127.0.20.3"
    );
    assert_eq!(
        pick(s, "loc.geo.test.", &format!("{NOT_FOUND}/32")).0,
        "127.0.20.3"
    );

    // Health first: with London down, a London client gets the other EU site.
    g.listeners[0].take().unwrap().stop();
    eventually(
        Duration::from_secs(3),
        "London clients sent to the other EU site",
        || pick(&g.server, "loc.geo.test.", &format!("{LONDON}/32")).0 == "127.0.20.2",
    );
    // With the default site down too, an unknown client gets any up member.
    g.listeners[2].take().unwrap().stop();
    eventually(
        Duration::from_secs(3),
        "unknown clients sent to any up member",
        || pick(&g.server, "loc.geo.test.", &format!("{JAPAN_V6}/48")).0 == "127.0.20.2",
    );
}

#[test]
fn site_networks_place_private_clients_most_specific_first() {
    let g = setup("");
    let s = &g.server;
    // 10.1/16 is London's, the rest of 10/8 Stockholm's, 192.168/16 New York's.
    assert_eq!(
        pick(s, "prox.geo.test.", "10.1.2.3/32"),
        ("127.0.20.1".into(), 16)
    );
    assert_eq!(
        pick(s, "loc.geo.test.", "10.1.2.0/24"),
        ("127.0.20.1".into(), 16)
    );
    // 10.2.3.4: the /8 decides, but a /8 scope would also cover London's 10.1/16: 15 bits.
    assert_eq!(
        pick(s, "prox.geo.test.", "10.2.3.4/32"),
        ("127.0.20.2".into(), 15)
    );
    // 10.200/24: a /8 scope would cover 10.1/16 too; 9 bits (10.128.0.0/9) do not.
    assert_eq!(
        pick(s, "prox.geo.test.", "10.200.0.0/24"),
        ("127.0.20.2".into(), 9)
    );
    assert_eq!(
        pick(s, "loc.geo.test.", "192.168.7.0/24"),
        ("127.0.20.3".into(), 16)
    );
}

#[test]
fn ecs_scope_is_the_prefix_that_decided() {
    let g = setup("");
    let s = &g.server;
    // GeoIP network of 81.2.69.142 is a /31: capped by the source prefix.
    assert_eq!(pick(s, "prox.geo.test.", &format!("{LONDON}/32")).1, 31);
    assert_eq!(pick(s, "prox.geo.test.", "81.2.69.0/24").1, 24);
    // Not in the database: the scope of the empty network it fell in.
    let resp = s.udp(&ecs_query("prox.geo.test.", RecordType::A, "1.1.1.0/24"));
    let (addr, source, scope) = ecs_of(&resp).unwrap();
    assert_eq!((addr, source), (ip("1.1.1.0"), 24));
    assert!(scope <= 24);
    // A name that does not depend on the client: scope 0, address and source echoed.
    let resp = s.udp(&ecs_query("plain.geo.test.", RecordType::A, "81.2.69.0/24"));
    assert_eq!(ecs_of(&resp), Some((ip("81.2.69.0"), 24, 0)));
    // Negative answers echo ECS with scope 0 too.
    let resp = s.udp(&ecs_query(
        "nothing.geo.test.",
        RecordType::A,
        "81.2.69.0/24",
    ));
    assert_eq!(resp.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(ecs_of(&resp), Some((ip("81.2.69.0"), 24, 0)));
    // No ECS in the query, none in the response.
    assert_eq!(ecs_of(&s.ask("prox.geo.test.", RecordType::A)), None);
}

#[test]
fn without_ecs_the_source_address_places_the_client() {
    let g = setup("");
    // 127.0.21.0/24 is a Stockholm site network.
    let resp = udp_exchange_from(
        ip("127.0.21.5"),
        g.server.addr,
        &query("prox.geo.test.", RecordType::A),
    );
    assert_eq!(addresses(&resp), ["127.0.20.2"]);
    let resp = udp_exchange_from(
        ip("127.0.21.5"),
        g.server.addr,
        &query("loc.geo.test.", RecordType::A),
    );
    assert_eq!(addresses(&resp), ["127.0.20.2"]);
    // ECS with source prefix 0 asks us not to use it: the source decides, scope 0.
    let resp = udp_exchange_from(
        ip("127.0.21.5"),
        g.server.addr,
        &ecs_query("prox.geo.test.", RecordType::A, "0.0.0.0/0"),
    );
    assert_eq!(addresses(&resp), ["127.0.20.2"]);
    assert_eq!(ecs_of(&resp), Some((ip("0.0.0.0"), 0, 0)));
}

#[test]
fn malformed_ecs_gets_formerr() {
    use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
    let g = setup("");
    let with = |subnet: ClientSubnet| {
        let mut m = query("prox.geo.test.", RecordType::A);
        let mut e = m.edns.take().unwrap();
        e.options_mut().insert(EdnsOption::Subnet(subnet));
        m.set_edns(e);
        g.server.udp(&m)
    };
    // A scope in a query.
    let r = with(ClientSubnet::new(ip("81.2.69.0"), 24, 16));
    assert_eq!(r.metadata.response_code, ResponseCode::FormErr);
    // Address bits beyond the source prefix (81.2.69.x/20: 69 = 0100 0101, bits 21-24 set).
    let r = with(ClientSubnet::new(ip("81.2.69.0"), 20, 0));
    assert_eq!(r.metadata.response_code, ResponseCode::FormErr);
    // Bytes that do not parse as ECS at all (IPv4 with a /33 source prefix).
    let mut raw = query("prox.geo.test.", RecordType::A).to_vec().unwrap();
    // OPT rdata is at the end: append option 8 (len 8): family 1, source 33, scope 0, 4 bytes.
    let opt = [0u8, 8, 0, 8, 0, 1, 33, 0, 81, 2, 69, 142];
    let rdlen_at = raw.len() - 2;
    raw[rdlen_at..].copy_from_slice(&(opt.len() as u16).to_be_bytes());
    raw.extend_from_slice(&opt);
    let reply = udp_raw(g.server.addr, &raw).expect("a reply");
    assert_eq!(reply[3] & 0x0f, 1, "FORMERR");
    // And the server keeps answering.
    assert_eq!(
        pick(&g.server, "prox.geo.test.", &format!("{LONDON}/32")).0,
        "127.0.20.1"
    );
}

#[test]
fn ecs_can_be_switched_off() {
    let g = setup("ecs: false\n");
    let resp = g.server.udp(&ecs_query(
        "prox.geo.test.",
        RecordType::A,
        &format!("{US}/32"),
    ));
    assert_eq!(ecs_of(&resp), None, "no ECS processing, no ECS echo");
    // The source 127.0.0.1 is unknown to the database: fixed-weight order.
    assert_eq!(addresses(&resp), ["127.0.20.1"]);
}

#[test]
fn a_country_database_places_by_country_only() {
    let port = free_port(ip("127.0.20.1"));
    let _l: Vec<TcpBackend> = (1..=3)
        .map(|i| TcpBackend::start(SocketAddr::new(ip(&format!("127.0.20.{i}")), port)))
        .collect();
    let db = geoip_file("maxmind-test-data/GeoIP2-Country-Test.mmdb");
    let (dir, file) = write_config_with(
        &format!("geoip: {}\n", db.display()),
        &[("geo.yaml", &zone(port))],
    );
    let s = start_with(dir, &file);
    assert_eq!(
        pick(&s, "loc.geo.test.", &format!("{LONDON}/32")).0,
        "127.0.20.1"
    );
    // No coordinates in a Country database: proximity falls back to fixed-weight order.
    assert_eq!(pick(&s, "prox.geo.test.", "2001:218::/32").0, "127.0.20.1");
}
