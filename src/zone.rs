//! The compiled zone table: every owner name of every zone in one hash map, with records
//! built at load time. A table is immutable once built; a reload builds a new one and
//! swaps it in whole.

use std::collections::HashMap;
use std::sync::Arc;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{NS, SOA};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};
use smallvec::SmallVec;

use crate::config::{Config, FqdnConfig, ZoneConfig};
use crate::forward::Forwarder;
use crate::geo::{self, GeoDb, Located, SiteMap};
use crate::health::{Maintenance, MemberHealth, ProbeKey, Registry};
use crate::metrics::{Metrics, QueryCounters};
use crate::select::{Client, Member, Pool, Rules};

/// CNAME chains longer than this are cut (and loops end here).
const MAX_CNAME_CHAIN: usize = 8;

/// FxHash: the keys come from the operator's configuration and queries only look them
/// up, so a DoS-resistant (and slower) hasher buys nothing here.
type NodeMap = HashMap<LowerName, Node, rustc_hash::FxBuildHasher>;

#[derive(Debug)]
pub struct Table {
    nodes: NodeMap,
    zones: Vec<Zone>,
    geoip: Option<Arc<GeoDb>>,
    /// Whether queries' EDNS Client Subnet places the client (server file `ecs`).
    pub ecs: bool,
    /// Counters of queries for names in none of our zones.
    pub outside: Arc<QueryCounters>,
    /// Forwarding of names outside our zones, when configured.
    pub forwarder: Option<Arc<Forwarder>>,
    /// Whether to log every query.
    pub query_log: bool,
}

/// What a compiled table takes from the running server: probe states, maintenance flags
/// and counters, all of which outlive any one table.
pub struct Live<'a> {
    pub registry: &'a Registry,
    pub maintenance: &'a Maintenance,
    pub metrics: &'a Metrics,
}

#[derive(Debug)]
pub struct Zone {
    pub origin: Name,
    pub file: std::path::PathBuf,
    pub serial: u32,
    lower: LowerName,
    /// The SOA as it goes into negative answers: TTL = min(zone TTL, SOA minimum), RFC 2308.
    negative_soa: Record,
    negative_soa_wire: Wire,
    pub sites: SiteMap,
    pub queries: Arc<QueryCounters>,
}

/// Everything at one owner name. An empty node is an empty non-terminal.
#[derive(Debug, Default)]
struct Node {
    zone: usize,
    rrsets: Vec<RrSet>,
    /// Boxed: most nodes have none, and the record is large.
    cname: Option<Box<(Record, Wire, LowerName)>>,
    fqdn: Option<Box<Fqdn>>,
}

#[derive(Debug)]
struct RrSet {
    rtype: RecordType,
    records: Vec<Record>,
    wires: Vec<Wire>,
}

impl RrSet {
    fn new(rtype: RecordType, records: Vec<Record>) -> RrSet {
        let wires = records.iter().map(Wire::new).collect();
        RrSet {
            rtype,
            records,
            wires,
        }
    }
}

/// A health-checked name, compiled.
#[derive(Debug)]
pub struct Fqdn {
    pub name: Name,
    pub ttl: u32,
    pub rules: Rules,
    pub v4: Pool,
    pub v6: Pool,
}

/// A record to send and the TTL to send it with.
#[derive(Clone, Copy, Debug)]
pub struct Rr<'t> {
    pub record: &'t Record,
    /// The same record in wire format, for the UDP fast path.
    pub wire: &'t Wire,
    pub ttl: u32,
    /// The owner is the name asked for (not a CNAME target), so it can point at the question.
    pub owner_is_qname: bool,
}

/// A record encoded once at load time: the owner name (uncompressed), then type, class,
/// TTL, length and data (names in the data uncompressed too). The fast path copies it, with
/// the owner replaced by a pointer to the question where it is the asked name, and patches
/// the TTL.
#[derive(Debug)]
pub struct Wire {
    bytes: Box<[u8]>,
    owner_len: usize,
}

impl Wire {
    pub fn new(record: &Record) -> Wire {
        use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};
        let mut bytes = Vec::new();
        let mut enc = BinEncoder::new(&mut bytes);
        enc.set_name_encoding(NameEncoding::Uncompressed);
        record.name.emit(&mut enc).expect("a valid name encodes");
        let owner_len = enc.len();
        drop(enc);
        bytes.clear();
        let mut enc = BinEncoder::new(&mut bytes);
        enc.set_name_encoding(NameEncoding::Uncompressed);
        record.emit(&mut enc).expect("a valid record encodes");
        Wire {
            bytes: bytes.into_boxed_slice(),
            owner_len,
        }
    }

    /// Appends the record with this TTL; `pointer` replaces the owner with a compression
    /// pointer to that offset.
    pub fn write(&self, out: &mut Vec<u8>, ttl: u32, pointer: Option<u16>) {
        match pointer {
            Some(offset) => out.extend_from_slice(&(0xc000 | offset).to_be_bytes()),
            None => out.extend_from_slice(&self.bytes[..self.owner_len]),
        }
        let tail = &self.bytes[self.owner_len..];
        out.extend_from_slice(&tail[..4]);
        out.extend_from_slice(&ttl.to_be_bytes());
        out.extend_from_slice(&tail[8..]);
    }
}

/// The outcome of looking up one question: everything the response needs apart from the
/// header fields copied from the query.
#[derive(Debug)]
pub struct Resolution<'t> {
    pub rcode: ResponseCode,
    pub authoritative: bool,
    pub answers: SmallVec<[Rr<'t>; 8]>,
    /// The zone SOA for NXDOMAIN and NODATA (authority section).
    pub soa: Option<Rr<'t>>,
    /// Set when the answer depended on where the client is: the ECS scope prefix.
    pub scope: Option<u8>,
    /// The zone the question fell in, if any.
    pub zone: Option<&'t Zone>,
}

/// What one node had for the asked type.
enum Found {
    Answered,
    /// No data of this type; the SOA's TTL, when it is not the zone's negative TTL.
    NoData(Option<u32>),
}

impl Table {
    /// The keys of every probe this table's members use.
    pub fn probe_keys(&self) -> std::collections::HashSet<ProbeKey> {
        self.fqdns()
            .flat_map(|f| f.v4.members.iter().chain(&f.v6.members))
            .flat_map(|m| m.health.probes().iter().map(|p| p.key.clone()))
            .collect()
    }

    /// A table with no zones, to stand until the first configuration is compiled.
    pub fn empty() -> Table {
        Table {
            nodes: NodeMap::default(),
            zones: Vec::new(),
            geoip: None,
            ecs: false,
            outside: Arc::default(),
            forwarder: None,
            query_log: false,
        }
    }

    /// Builds the table, taking probe states, maintenance flags and counters from `live`.
    pub fn compile(config: &Config, live: &Live) -> Table {
        live.registry.clear_users();
        let mut table = Table {
            nodes: NodeMap::default(),
            zones: Vec::new(),
            geoip: config.server.geoip.clone(),
            ecs: config.server.ecs,
            outside: live.metrics.outside.clone(),
            forwarder: config
                .server
                .forward
                .clone()
                .map(|f| Arc::new(Forwarder::new(f))),
            query_log: config.server.query_log,
        };
        for zone in &config.zones {
            table.add_zone(zone, live);
        }
        table
    }

    fn add_zone(&mut self, zc: &ZoneConfig, live: &Live) {
        let index = self.zones.len();
        let origin = zc.origin.clone();
        let soa = &zc.soa;
        let soa_rdata = RData::SOA(SOA::new(
            soa.mname.clone(),
            soa.rname.clone(),
            soa.serial,
            soa.refresh,
            soa.retry,
            soa.expire,
            soa.minimum,
        ));
        let negative_ttl = zc.ttl.min(soa.minimum);
        self.zones.push(Zone {
            origin: origin.clone(),
            file: zc.file.clone(),
            serial: soa.serial,
            lower: LowerName::new(&origin),
            negative_soa: Record::from_rdata(origin.clone(), negative_ttl, soa_rdata.clone()),
            negative_soa_wire: Wire::new(&Record::from_rdata(
                origin.clone(),
                negative_ttl,
                soa_rdata.clone(),
            )),
            sites: site_map(zc),
            queries: live.metrics.zone(&origin.to_string()),
        });

        let apex = self.node(&origin, index);
        apex.rrsets.push(RrSet::new(
            RecordType::SOA,
            vec![Record::from_rdata(origin.clone(), zc.ttl, soa_rdata)],
        ));
        apex.rrsets.push(RrSet::new(
            RecordType::NS,
            zc.ns
                .iter()
                .map(|n| Record::from_rdata(origin.clone(), zc.ttl, RData::NS(NS(n.clone()))))
                .collect(),
        ));

        for set in &zc.records {
            let records: Vec<Record> = set
                .rdata
                .iter()
                .map(|d| Record::from_rdata(set.owner.clone(), set.ttl, d.clone()))
                .collect();
            let node = self.node(&set.owner, index);
            if set.rtype == RecordType::CNAME {
                let RData::CNAME(target) = &set.rdata[0] else {
                    unreachable!("validated CNAME")
                };
                let target = LowerName::new(&target.0);
                let cname = records.into_iter().next().expect("one CNAME");
                let wire = Wire::new(&cname);
                node.cname = Some(Box::new((cname, wire, target)));
            } else if let Some(existing) = node.rrsets.iter_mut().find(|s| s.rtype == set.rtype) {
                // The apex NS list may be extended under records.@.
                existing.wires.extend(records.iter().map(Wire::new));
                existing.records.extend(records);
            } else {
                node.rrsets.push(RrSet::new(set.rtype, records));
            }
        }

        for fc in &zc.fqdns {
            let fqdn = compile_fqdn(fc, zc, live);
            self.node(&fc.name, index).fqdn = Some(Box::new(fqdn));
        }

        // Every name between an owner and the apex exists (as an empty non-terminal), so
        // that it answers NODATA rather than NXDOMAIN.
        let owners: Vec<Name> = self
            .nodes
            .values()
            .filter(|n| n.zone == index)
            .flat_map(|n| n.owner())
            .collect();
        for owner in owners {
            let mut name = owner.base_name();
            while name.num_labels() > origin.num_labels() {
                self.node(&name, index);
                name = name.base_name();
            }
        }
    }

    fn node(&mut self, name: &Name, zone: usize) -> &mut Node {
        self.nodes
            .entry(LowerName::new(name))
            .or_insert_with(|| Node {
                zone,
                ..Node::default()
            })
    }

    pub fn zones(&self) -> &[Zone] {
        &self.zones
    }

    /// All health-checked names, for status pages and logs.
    pub fn fqdns(&self) -> impl Iterator<Item = &Fqdn> {
        self.nodes.values().filter_map(|n| n.fqdn.as_deref())
    }

    /// All health-checked names with their zones, in name order.
    pub fn fqdns_by_name(&self) -> Vec<(&Fqdn, &Zone)> {
        let mut v: Vec<_> = self
            .nodes
            .values()
            .filter_map(|n| n.fqdn.as_deref().map(|f| (f, &self.zones[n.zone])))
            .collect();
        v.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        v
    }

    /// The health-checked name `name`, with its zone.
    pub fn fqdn(&self, name: &LowerName) -> Option<(&Fqdn, &Zone)> {
        let node = self.nodes.get(name)?;
        node.fqdn.as_deref().map(|f| (f, &self.zones[node.zone]))
    }

    /// The member `address` of the health-checked name `name`, if there is one.
    pub fn member(&self, name: &LowerName, address: std::net::IpAddr) -> Option<&Member> {
        let (fqdn, _) = self.fqdn(name)?;
        fqdn.v4
            .members
            .iter()
            .chain(&fqdn.v6.members)
            .find(|m| m.address == address)
    }

    /// The GeoIP database in use, if any.
    pub fn geoip(&self) -> Option<&GeoDb> {
        self.geoip.as_deref()
    }

    /// The zone a name belongs to, if any: the longest origin that contains it.
    fn zone_of(&self, name: &LowerName) -> Option<&Zone> {
        self.zones
            .iter()
            .filter(|z| z.lower.zone_of(name))
            .max_by_key(|z| z.lower.num_labels())
    }

    /// Answers one question. Never allocates for answers of up to eight records.
    pub fn resolve<'t>(
        &'t self,
        qname: &LowerName,
        qtype: RecordType,
        client: &Client,
    ) -> Resolution<'t> {
        let mut res = Resolution {
            rcode: ResponseCode::NoError,
            authoritative: false,
            answers: SmallVec::new(),
            soa: None,
            scope: None,
            zone: None,
        };
        let mut name = qname;
        for hop in 0..MAX_CNAME_CHAIN {
            let Some(node) = self.nodes.get(name) else {
                if let Some(zone) = self.zone_of(name) {
                    res.zone = Some(zone);
                    res.authoritative = true;
                    res.rcode = ResponseCode::NXDomain;
                    res.soa = Some(Rr {
                        record: &zone.negative_soa,
                        wire: &zone.negative_soa_wire,
                        ttl: zone.negative_soa.ttl,
                        owner_is_qname: false,
                    });
                } else if hop == 0 {
                    res.rcode = ResponseCode::Refused;
                }
                // A CNAME pointing out of our zones: the resolver follows it from here.
                return res;
            };
            res.authoritative = true;
            if let Some((cname, wire, target)) = node.cname.as_deref() {
                res.answers.push(Rr {
                    record: cname,
                    wire,
                    ttl: cname.ttl,
                    owner_is_qname: hop == 0,
                });
                if qtype == RecordType::CNAME {
                    return res;
                }
                name = target;
                continue;
            }
            let zone = &self.zones[node.zone];
            res.zone = Some(zone);
            let found = node.answer(qtype, hop == 0, &mut res, &zone.sites, || {
                zone.sites
                    .locate(client.addr, client.source_prefix, self.geoip.as_deref())
            });
            if let Found::NoData(ttl) = found {
                let soa = &zone.negative_soa;
                res.soa = Some(Rr {
                    record: soa,
                    wire: &zone.negative_soa_wire,
                    ttl: ttl.unwrap_or(soa.ttl),
                    owner_is_qname: false,
                });
            }
            return res;
        }
        res
    }
}

impl Node {
    fn owner(&self) -> Option<Name> {
        if let Some(f) = &self.fqdn {
            return Some(f.name.clone());
        }
        if let Some((c, _, _)) = self.cname.as_deref() {
            return Some(c.name.clone());
        }
        self.rrsets
            .first()
            .and_then(|s| s.records.first())
            .map(|r| r.name.clone())
    }

    /// `locate` places the client; it runs only for names whose policy needs it.
    fn answer<'t>(
        &'t self,
        qtype: RecordType,
        owner_is_qname: bool,
        res: &mut Resolution<'t>,
        sites: &SiteMap,
        locate: impl FnOnce() -> Located,
    ) -> Found {
        if let Some(fqdn) = &self.fqdn {
            let pool = match qtype {
                RecordType::A => Some(&fqdn.v4),
                RecordType::AAAA => Some(&fqdn.v6),
                // RFC 8482: one RRset is a complete answer to ANY; ours is the addresses.
                RecordType::ANY if !fqdn.v4.is_empty() => Some(&fqdn.v4),
                RecordType::ANY if !fqdn.v6.is_empty() => Some(&fqdn.v6),
                _ => None,
            };
            if let Some(pool) = pool.filter(|p| !p.is_empty()) {
                let located = fqdn.rules.policy.needs_client().then(locate);
                if let Some(l) = &located {
                    res.scope = Some(l.scope);
                }
                let place = located.as_ref().map(|l| (l, sites.sites.as_slice()));
                let chosen = pool.select(fqdn.rules, place);
                if chosen.is_empty() {
                    // Failing closed: negative-cache no longer than the name's own TTL.
                    return Found::NoData(Some(fqdn.ttl));
                }
                let ttl = pool.ttl(fqdn.ttl);
                for m in &chosen {
                    m.answered
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                res.answers.extend(chosen.iter().map(|m| Rr {
                    record: &m.record,
                    wire: &m.wire,
                    ttl,
                    owner_is_qname,
                }));
                return Found::Answered;
            }
        }
        let set = if qtype == RecordType::ANY {
            self.rrsets.first()
        } else {
            self.rrsets.iter().find(|s| s.rtype == qtype)
        };
        match set {
            Some(set) => {
                res.answers
                    .extend(set.records.iter().zip(&set.wires).map(|(r, wire)| Rr {
                        record: r,
                        wire,
                        ttl: r.ttl,
                        owner_is_qname,
                    }));
                Found::Answered
            }
            None => Found::NoData(None),
        }
    }
}

fn compile_fqdn(fc: &FqdnConfig, zc: &ZoneConfig, live: &Live) -> Fqdn {
    let lower_name = fc.name.to_lowercase().to_string();
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for mc in &fc.members {
        let site = mc.site.map(|i| &zc.sites[i]);
        let site_checks = site.map(|s| s.checks.as_slice()).unwrap_or_default();
        let probes = mc
            .checks
            .iter()
            .map(|c| (c.address.unwrap_or(mc.address), c))
            .chain(
                site_checks
                    .iter()
                    .map(|c| (c.address.unwrap_or(mc.address), c)),
            )
            .map(|(address, check)| {
                let key = ProbeKey {
                    address,
                    check: check.clone(),
                };
                live.registry
                    .probe(key, format!("{} {}", fc.name, mc.address))
            })
            .collect();
        let enabled = mc.enabled && site.is_none_or(|s| s.enabled);
        let rdata = match mc.address {
            std::net::IpAddr::V4(a) => RData::A(a.into()),
            std::net::IpAddr::V6(a) => RData::AAAA(a.into()),
        };
        let record = Record::from_rdata(fc.name.clone(), fc.ttl, rdata);
        let member = Member {
            wire: Wire::new(&record),
            record,
            address: mc.address,
            weight: mc.weight,
            site: mc.site,
            health: MemberHealth::new(
                probes,
                enabled,
                live.maintenance.is_disabled(&lower_name, mc.address),
            ),
            answered: live.metrics.answers(&lower_name, mc.address),
        };
        if mc.address.is_ipv4() {
            v4.push(member);
        } else {
            v6.push(member);
        }
    }
    Fqdn {
        name: fc.name.clone(),
        ttl: fc.ttl,
        rules: Rules {
            policy: fc.policy,
            answers: if fc.policy == crate::select::Policy::AllAvailable {
                usize::MAX
            } else {
                fc.answers as usize
            },
            when_all_down: fc.when_all_down,
        },
        v4: Pool::new(v4),
        v6: Pool::new(v6),
    }
}

/// A table shared with the DNS handler and replaced whole on reload.
pub type SharedTable = Arc<arc_swap::ArcSwap<Table>>;

/// The zone's sites as the geo policies use them.
fn site_map(zc: &ZoneConfig) -> SiteMap {
    let sites = zc
        .sites
        .iter()
        .map(|s| geo::Site {
            name: s.name.clone(),
            lat_lon: s.lat.zip(s.lon),
            countries: s.countries.iter().filter_map(|c| geo::code(c)).collect(),
            continents: s.continents.iter().filter_map(|c| geo::code(c)).collect(),
            default: s.default,
        })
        .collect();
    let networks = zc
        .sites
        .iter()
        .enumerate()
        .flat_map(|(i, s)| s.networks.iter().map(move |n| (*n, i)))
        .collect();
    SiteMap::new(sites, networks)
}
