//! Compiling a validated configuration into a table: records built and encoded once,
//! members wired to their probes and counters, empty non-terminals filled in.
//!
//! Compiling has no side effects: probe states and counters come in through [`Inputs`]
//! (taken from the long-lived registry and counter store beforehand), and maintenance
//! flags are copied from the table being replaced.

use std::collections::hash_map::Entry;
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, OnceLock};

use hickory_proto::rr::rdata::{NS, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::{HealthCheckedName, Node, NodeMap, QueryOptions, RrSet, Table, Zone, ZoneTable};
use crate::config::{
    Config, HealthCheckedNameConfig, RecordSetConfig, ServerConfig, UnchangedZone, ZoneConfig,
};
use crate::geo::{self, SiteMap};
use crate::model::health::{Vote, vote_of};
use crate::model::name::{KeyBuf, key_of};
use crate::model::{Counters, MemberHealth, PackedRecords, Policy, ProbeSet, StoredRecord};
use crate::select::{Member, Pool, Rules, StickyTable};
use crate::sign::ZoneSigner;

/// What a compiled table takes from the running server.
pub struct Inputs<'a> {
    /// A state for every probe the configuration uses.
    pub probes: &'a ProbeSet,
    /// Where the table's counters live, so that they outlive it.
    pub counters: &'a Counters,
    /// The table being replaced: members that stay keep their maintenance flag.
    pub previous: &'a Table,
    /// The stickiness table, made when a name first asks for `sticky:`; it outlives tables.
    pub sticky: &'a OnceLock<Arc<StickyTable>>,
    /// The serial to serve a changed zone with, given its configuration (whose serial is
    /// the content's).
    pub serial: &'a (dyn Fn(&ZoneConfig) -> u32 + Sync),
}

impl Table {
    /// Builds the table for `config`.
    ///
    /// # Panics
    /// If `inputs.probes` lacks a probe the configuration uses.
    pub fn compile(config: &Config, inputs: &Inputs) -> Table {
        Table::compile_reusing(&config.server, config.zones.clone(), &[], inputs)
    }

    /// Builds the table for `server` and the `changed` zones, with the zones of `unchanged`
    /// files taken as they are from the table being replaced: only the changed zones are
    /// compiled. They are taken whole: their records, encoded as the table keeps them, move
    /// into it rather than being copied (a zone of a million records was held twice).
    ///
    /// # Panics
    /// If `inputs.probes` lacks a probe the configuration uses, or the table being
    /// replaced lacks an unchanged zone.
    pub fn compile_reusing(
        server: &ServerConfig,
        changed: Vec<ZoneConfig>,
        unchanged: &[UnchangedZone],
        inputs: &Inputs,
    ) -> Table {
        let mut zones: Vec<Arc<ZoneTable>> = inputs
            .previous
            .unchanged_zones(unchanged)
            .map(Arc::clone)
            .collect();
        assert_eq!(
            zones.len(),
            unchanged.len(),
            "an unchanged zone is in the table it was compiled into"
        );
        zones.extend(
            changed
                .into_iter()
                .map(|zc| Arc::new(ZoneTable::compile(zc, inputs))),
        );
        zones.sort_by(|a, b| a.zone.file.cmp(&b.zone.file));
        let zone_index = zones
            .iter()
            .enumerate()
            .map(|(i, z)| (z.zone.key.clone(), i))
            .collect();
        Table {
            zones,
            zone_index,
            geoip: server.geoip.clone(),
            options: QueryOptions {
                edns_udp_size: server.edns_udp_size,
                nocookie_udp_size: if server.cookies.enabled {
                    server.cookies.nocookie_udp_size
                } else {
                    server.edns_udp_size
                },
                cookies: server.cookies.enabled,
                ecs: server.ecs,
                query_log: server.query_log,
                forward_clients: server
                    .forward
                    .as_ref()
                    .map(|f| f.allow.clone())
                    .unwrap_or_default(),
                rate_limit: server.rate_limit.clone(),
                access: server.access.clone(),
                identity: identity(&server.identity),
            },
            server_source: server.source,
        }
    }
}

impl ZoneTable {
    /// Compiles one zone.
    fn compile(mut zc: ZoneConfig, inputs: &Inputs) -> ZoneTable {
        let mut zone = ZoneTable {
            zone: zone_of(&zc, inputs),
            // Room for every owner at once: growing the map rehashes it over and over.
            nodes: NodeMap::with_capacity_and_hasher(
                owners(&zc) + zc.health_checked.len(),
                Default::default(),
            ),
            wildcards: false,
            cuts: false,
        };
        let records = std::mem::take(&mut zc.records);
        zone.add_names(&zc, records, inputs);
        zone.wildcards = zone.nodes.keys().any(|k| k.starts_with(b"\x01*"));
        let apex = zone.zone.key.len();
        zone.cuts = zone
            .nodes
            .iter()
            .any(|(k, n)| k.len() != apex && n.rrset(RecordType::NS).is_some());
        zone
    }

    fn add_names(&mut self, zc: &ZoneConfig, records: Vec<RecordSetConfig>, inputs: &Inputs) {
        let origin = zc.origin.clone();
        let soa_rdata = soa_rdata(zc, self.zone.serial());
        let apex = self.node(&origin);
        apex.add_rrset(rrset(
            RecordType::SOA,
            vec![Record::from_rdata(origin.clone(), zc.ttl, soa_rdata)],
        ));
        apex.add_rrset(rrset(
            RecordType::NS,
            zc.ns
                .iter()
                .map(|n| Record::from_rdata(origin.clone(), zc.ttl, RData::NS(NS(n.clone()))))
                .collect(),
        ));

        // The key at the apex: DNSKEY, and CDS and CDNSKEY for parents that poll.
        let keys = self.zone.signer.as_ref().map(|s| {
            s.apex_records()
                .expect("the DNSKEY of a key read from its file digests")
        });
        for (rtype, records) in keys.into_iter().flatten() {
            self.node(&origin).add_rrset(rrset(rtype, records));
        }

        // An owner's sets come together: its node is made once, with its slice of sets
        // allocated once, for them all.
        let mut batch: Vec<(Box<[u8]>, Node)> = Vec::with_capacity(BATCH);
        let mut records = records.into_iter().peekable();
        let mut sets: Vec<RrSet> = Vec::new();
        while let Some(first) = records.next() {
            let key: Box<[u8]> = first.owner_key().as_bytes().into();
            let mut node = Node::default();
            let mut next = Some(first);
            while let Some(set) = next {
                // The owner's next set, if the next set is the owner's.
                next = records.next_if(|s| s.same_owner(&set));
                if set.rtype == RecordType::CNAME {
                    let cname = set.records.iter().next().expect("one CNAME");
                    // A CNAME's data is its target, uncompressed.
                    let (target, _) = KeyBuf::read(cname.rdata(), 0).expect("validated CNAME");
                    node.cname = Some(Box::new((
                        StoredRecord::from_wire(cname),
                        target.as_bytes().into(),
                    )));
                } else if let Some(existing) = sets.iter_mut().find(|s| s.rtype == set.rtype) {
                    // Two spellings of one owner, one after the other, give one set.
                    existing.records = existing.records.join(&set.records);
                } else {
                    sets.push(RrSet {
                        rtype: set.rtype,
                        records: set.records,
                    });
                }
            }
            node.add_rrsets(&mut sets);
            self.push_node(&mut batch, key, node);
        }
        self.insert_nodes(&mut batch);

        // Health-checked names go in the same way, in batches.
        for name in &zc.health_checked {
            let node = Node {
                health_checked: Some(Box::new(compile_health_checked(name, zc, inputs))),
                ..Node::default()
            };
            self.push_node(&mut batch, key_of(&name.name), node);
        }
        self.insert_nodes(&mut batch);

        // Every name between an owner and the apex exists (as an empty non-terminal), so
        // that it answers NODATA rather than NXDOMAIN. Worked out on the keys: an
        // ancestor's key is a tail of its descendant's, from a label boundary on.
        let origin_len = key_of(&origin).len();
        let mut missing: Vec<&[u8]> = Vec::new();
        for key in self.nodes.keys() {
            let mut i = 1 + usize::from(key[0]);
            while key.len() - i > origin_len {
                if !self.nodes.contains_key(&key[i..]) {
                    missing.push(&key[i..]);
                }
                i += 1 + usize::from(key[i]);
            }
        }
        missing.sort_unstable();
        missing.dedup();
        let missing: Vec<Box<[u8]>> = missing.into_iter().map(Box::from).collect();
        for key in missing {
            self.nodes.insert(key, Node::default());
        }
        // Inserts left room to grow; a table never grows.
        self.nodes.shrink_to_fit();
    }

    /// The node of `name`, made empty if it has none. Only the apex comes here; names go
    /// in by `push_node`.
    fn node(&mut self, name: &Name) -> &mut Node {
        self.nodes.entry(key_of(name)).or_default()
    }

    /// Adds `node` to `batch`, and the batch to the map once it is full.
    fn push_node(&mut self, batch: &mut Vec<(Box<[u8]>, Node)>, key: Box<[u8]>, node: Node) {
        batch.push((key, node));
        if batch.len() == BATCH {
            self.insert_nodes(batch);
        }
    }

    /// Puts the nodes drained from `batch` into the map, each merged into the node its
    /// name has already (the apex, or another spelling of the name), if any.
    fn insert_nodes(&mut self, batch: &mut Vec<(Box<[u8]>, Node)>) {
        for (key, node) in batch.drain(..) {
            match self.nodes.entry(key) {
                Entry::Vacant(slot) => {
                    slot.insert(node);
                }
                Entry::Occupied(slot) => slot.into_mut().merge(node),
            }
        }
    }
}

/// Nodes go into the name map this many at a time: an allocation between two inserts
/// (glibc's takes a lock, which waits for every store before it) made each insert wait out
/// its cache miss, a fifth of the load; without one, the misses of a batch overlap.
const BATCH: usize = 256;

/// How many owners the zone's record sets have (an owner's sets come together).
fn owners(zc: &ZoneConfig) -> usize {
    1 + zc
        .records
        .windows(2)
        .filter(|w| !w[0].same_owner(&w[1]))
        .count()
}

/// NSID and the CHAOS TXT records, as Knot and NSD answer them: TTL 0, class CH.
fn identity(config: &crate::config::IdentityConfig) -> super::Identity {
    let mut chaos = Vec::new();
    for (text, names) in [
        (&config.version, ["version.bind.", "version.server."]),
        (&config.hostname, ["hostname.bind.", "id.server."]),
    ] {
        let Some(text) = text else { continue };
        for name in names {
            let name = Name::from_ascii(name).expect("a valid name");
            let txt = RData::TXT(hickory_proto::rr::rdata::TXT::new(vec![text.clone()]));
            let mut record = Record::from_rdata(name.clone(), 0, txt);
            record.dns_class = hickory_proto::rr::DNSClass::CH;
            chaos.push((key_of(&name), StoredRecord::new(&record)));
        }
    }
    super::Identity {
        nsid: config.nsid.as_ref().map(|n| n.as_bytes().into()),
        chaos,
    }
}

/// The zone's SOA record data, with `serial`.
fn soa_rdata(zc: &ZoneConfig, serial: u32) -> RData {
    let soa = &zc.soa;
    RData::SOA(SOA::new(
        soa.mname.clone(),
        soa.rname.clone(),
        serial,
        soa.refresh,
        soa.retry,
        soa.expire,
        soa.minimum,
    ))
}

/// The zone's settings, as queries use them.
fn zone_of(zc: &ZoneConfig, inputs: &Inputs) -> Zone {
    let origin = &zc.origin;
    let negative_ttl = zc.ttl.min(zc.soa.minimum);
    let serial = (inputs.serial)(zc);
    Zone {
        origin: origin.clone(),
        file: zc.file.clone(),
        source: crate::config::with_dependencies(zc.source, zc.dependencies_hash()),
        serial: AtomicU32::new(serial),
        key: key_of(origin),
        negative_soa: StoredRecord::new(&Record::from_rdata(
            origin.clone(),
            negative_ttl,
            soa_rdata(zc, serial),
        )),
        sites: site_map(zc),
        access: zc.access.clone(),
        queries: inputs.counters.zone(&origin.to_string()),
        // A key not made yet (`meridian serve` makes it before compiling) leaves the zone
        // unsigned, as `meridian diff` compiles it.
        signer: zc.dnssec.as_ref().and_then(|d| {
            let key = d.key.as_ref()?;
            Some(Box::new(
                ZoneSigner::new(origin, d, key).expect("a key read from its file has a key tag"),
            ))
        }),
        dependencies: zc.dependencies(),
        transfer: zc.transfer.clone(),
    }
}

fn rrset(rtype: RecordType, records: Vec<Record>) -> RrSet {
    RrSet {
        rtype,
        records: PackedRecords::new(&records),
    }
}

fn compile_health_checked(
    fc: &HealthCheckedNameConfig,
    zc: &ZoneConfig,
    inputs: &Inputs,
) -> HealthCheckedName {
    // The name as text, for the hashes below (which lower-case as they go): a lower-cased
    // `Name` cost a sixth of compiling a large table.
    let text = fc.name.to_string();
    // The member each one replaces, found by the name once and by the address after.
    let previous_name = inputs
        .previous
        .health_checked_at(KeyBuf::of(&fc.name).as_bytes())
        .map(|(name, _)| name);
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    // Validation made every member's roles the same.
    let leader_role = fc
        .members
        .first()
        .and_then(|m| m.roles())
        .and_then(|r| r.index(&r.leader.as_ref()?.role));
    for mc in &fc.members {
        let probes = zc
            .probe_keys(mc)
            .map(|key| {
                Arc::clone(
                    inputs
                        .probes
                        .get(&key)
                        .expect("the probe set covers the configuration"),
                )
            })
            .collect();
        let site = mc.site.map(|i| &zc.sites[i]);
        let enabled = mc.enabled && site.is_none_or(|s| s.enabled);
        let previous = previous_name.and_then(|n| n.members().find(|m| m.address == mc.address));
        let in_maintenance = previous.is_some_and(|m| m.health.in_maintenance());
        let acknowledged = previous.map(|m| m.health.acknowledged_downs());
        let member = Member {
            address: mc.address,
            weight: mc.weight,
            site_index: mc
                .site
                .map(|i| u16::try_from(i).expect("validation holds sites to u16")),
            health: {
                let health =
                    MemberHealth::new(probes, enabled, in_maintenance, mc.recovery, acknowledged);
                health.set_draining(previous.and_then(|m| m.health.draining_since()));
                health
            },
            tag: {
                let mut vote = Vote::default();
                vote.add_text(&text);
                vote.add_text(" ");
                vote.address(mc.address);
                vote.finish() as u32
            },
            // The counter of the member this one replaces: counts never reset on reload.
            counters: previous.map_or_else(Arc::default, |m| Arc::clone(&m.counters)),
            identity: [
                {
                    let mut vote = Vote::default();
                    vote.address(mc.address);
                    vote.finish()
                },
                mc.node.as_deref().map_or(0, vote_of),
            ],
        };
        if mc.address.is_ipv4() {
            v4.push(member);
        } else {
            v6.push(member);
        }
    }
    // What roles' log lines call the name (only names with roles keep it).
    let label = if fc.roles.is_empty() {
        String::new()
    } else {
        text.to_ascii_lowercase()
    };
    HealthCheckedName {
        name: fc.name.clone(),
        tag: vote_of(&text) as u32 | 1,
        ttl: fc.ttl,
        rules: Rules {
            policy: fc.policy,
            answers: if fc.policy == Policy::AllAvailable {
                usize::MAX
            } else {
                fc.answers as usize
            },
            when_all_down: fc.when_all_down,
        },
        v4: sticky(
            Pool::new(v4).with_roles(&fc.roles, leader_role, &label),
            fc,
            inputs,
            4,
        ),
        v6: sticky(
            Pool::new(v6).with_roles(&fc.roles, leader_role, &label),
            fc,
            inputs,
            6,
        ),
    }
}

/// `sticky:` on a pool, its entries told apart by the name and the address family.
fn sticky(pool: Pool, fc: &HealthCheckedNameConfig, inputs: &Inputs, family: u64) -> Pool {
    match fc.sticky {
        Some(d) => {
            let table = inputs.sticky.get_or_init(Arc::default).clone();
            let id = vote_of(&fc.name.to_string()) ^ family;
            pool.with_sticky(table, d.as_secs().clamp(1, 1 << 22) as u32, id)
        }
        None => pool,
    }
}

/// The zone's sites as the geo policies use them.
fn site_map(zc: &ZoneConfig) -> SiteMap {
    let sites = zc
        .sites
        .iter()
        .map(|s| geo::Site {
            name: s.name.clone(),
            lat_lon: s.lat.zip(s.lon),
            position: s.lat.zip(s.lon).map(geo::position),
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
