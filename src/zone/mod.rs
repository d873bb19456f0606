//! The compiled zone table: each zone's owner names in a hash map of its own, with records
//! encoded at load time, and the query options that came with them. A table is immutable
//! once built (health and rotations move only through atomics); a reload builds a new one
//! ([`compile`]), compiling only the zones whose files changed and sharing the others
//! with the table it replaces, and swaps it in whole.
//!
//! The table only holds data and finds it; deciding an answer is `resolve`'s job.

mod compile;

pub use compile::Inputs;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use hickory_proto::rr::{LowerName, Name, RecordType};
use ipnet::IpNet;

use crate::config::{AccessConfig, RateLimitConfig};
use crate::geo::{GeoDb, SiteMap};
use crate::model::name::{self as key, KeyBuf};
use crate::model::{PackedRecords, QueryCounters, StoredRecord};
use crate::select::{Member, Pool, Rules};
use crate::sign::ZoneSigner;

/// Keyed by the lower-cased wire form of the owner ([`crate::model::name`]), which the
/// fast path reads straight out of the packet. FxHash: the keys come from the operator's
/// configuration and queries only look them up, so a DoS-resistant (and slower) hasher
/// buys nothing here.
type NodeMap = std::collections::HashMap<Box<[u8]>, Node, rustc_hash::FxBuildHasher>;

#[derive(Debug)]
pub struct Table {
    /// In zone file order. Each zone is compiled on its own, so that a reload reuses the
    /// zones whose files did not change.
    zones: Vec<Arc<ZoneTable>>,
    /// With many zones, a query finds its zone by hashing its name's tails (see
    /// [`Table::zone_of`]); with few, a scan is quicker.
    zone_index: rustc_hash::FxHashMap<Box<[u8]>, usize>,
    geoip: Option<Arc<GeoDb>>,
    pub options: QueryOptions,
    /// The server file's text hash, for the next reload to tell whether zones may be reused.
    server_source: u64,
}

/// Zones scanned in turn for a query's zone; above this, the index is used.
const ZONES_SCANNED: usize = 8;

/// One zone, compiled: its names and settings. Immutable, shared by the tables that
/// serve it: a reload that leaves its file alone keeps it as it is (members, rotations
/// and maintenance flags included).
#[derive(Debug)]
pub struct ZoneTable {
    pub zone: Zone,
    nodes: NodeMap,
    /// Whether any owner is a wildcard (`*.…`): only then does a name that is not found
    /// look for one.
    wildcards: bool,
    /// Whether any name below the apex has NS records (a delegation): only then is a
    /// name's path from the apex searched for one.
    cuts: bool,
}

/// What a name finds in its zone.
#[derive(Clone, Copy, Debug)]
pub enum Found<'t> {
    /// The node at the name.
    Node(&'t Node),
    /// No node at the name, but one at the wildcard (whose key comes with it) below the
    /// name's closest encloser: the answer is synthesized from it (RFC 4592 3.3.1).
    Wildcard(&'t Node, &'t [u8]),
    /// The name is at or below a delegation (the cut's node and key come with it):
    /// a referral, or at the cut itself for DS, the parent's answer.
    Delegation {
        cut: &'t Node,
        key: &'t [u8],
        at_cut: bool,
    },
    /// The name does not exist.
    Nothing,
}

/// Settings from the server file that decide answers, swapped in with the zones.
#[derive(Clone, Debug)]
pub struct QueryOptions {
    /// Largest UDP response, whatever the client offers (RFC 6891 6.2.5 lets us choose).
    pub edns_udp_size: u16,
    /// Largest UDP response to a query without a valid server cookie.
    pub nocookie_udp_size: u16,
    /// Whether COOKIE options are read and answered (RFC 7873).
    pub cookies: bool,
    /// Whether queries' EDNS Client Subnet places the client (server file `ecs`).
    pub ecs: bool,
    /// Whether to log every query.
    pub query_log: bool,
    /// Client networks whose queries for names outside our zones are forwarded (empty
    /// without `forward:`).
    pub forward_clients: Vec<IpNet>,
    /// Response rate limiting for UDP, when configured.
    pub rate_limit: Option<RateLimitConfig>,
    /// Who may query the server at all.
    pub access: AccessConfig,
    /// NSID and the CHAOS TXT names (`identity:`).
    pub identity: Identity,
}

/// What the server says of itself, when configured.
#[derive(Clone, Debug, Default)]
pub struct Identity {
    /// The NSID option's data (RFC 5001).
    pub nsid: Option<Box<[u8]>>,
    /// CH TXT records by their name's key: `version.bind`, `hostname.bind`…
    pub chaos: Vec<(Box<[u8]>, StoredRecord)>,
}

impl Identity {
    /// The CH TXT record at the name with key `name`, if configured.
    pub fn chaos(&self, name: &[u8]) -> Option<&StoredRecord> {
        self.chaos
            .iter()
            .find(|(k, _)| **k == *name)
            .map(|(_, r)| r)
    }
}

#[derive(Debug)]
pub struct Zone {
    pub origin: Name,
    pub file: PathBuf,
    /// The zone file's text hash, to reuse this zone when the file is unchanged.
    pub source: u64,
    /// The serial served: compiled into the SOA records, and moved on by zone transfers
    /// when a health change alters the transferred content (see [`Zone::serial`]).
    serial: AtomicU32,
    /// The origin's key (lower-cased wire form).
    key: Box<[u8]>,
    /// The SOA as it goes into negative answers: TTL = min(zone TTL, SOA minimum), RFC 2308.
    pub negative_soa: StoredRecord,
    pub sites: SiteMap,
    /// Who may query this zone.
    pub access: AccessConfig,
    /// Queries for names in this zone (counted by the DNS front end).
    pub queries: Arc<QueryCounters>,
    /// The zone's key, when it is signed (`dnssec:` with its key file in place).
    pub signer: Option<Box<ZoneSigner>>,
    /// The other files the zone is read from (key files, records file), whose changes a
    /// reload looks for.
    pub dependencies: Vec<PathBuf>,
    /// Zone transfers, when the zone has a `transfer:` section.
    pub transfer: Option<crate::config::TransferConfig>,
}

/// Everything at one owner name. An empty node is an empty non-terminal.
#[derive(Debug, Default)]
pub struct Node {
    /// A slice of its exact size rather than a `Vec`: 8 bytes less in every slot of the
    /// name map (some 17 bytes a name, as the map keeps room), which took the table's
    /// memory per static name below Knot's.
    rrsets: Box<[RrSet]>,
    /// Boxed: most nodes have none. The target comes as its key.
    cname: Option<Box<(StoredRecord, Box<[u8]>)>>,
    health_checked: Option<Box<HealthCheckedName>>,
}

/// The static records of one type at one name.
#[derive(Debug)]
pub struct RrSet {
    pub rtype: RecordType,
    pub records: PackedRecords,
}

/// A health-checked name, compiled: its members by address family, and how to choose.
#[derive(Debug)]
pub struct HealthCheckedName {
    pub name: Name,
    /// The name in the decision history: a hash of its lower-cased text (odd, never 0),
    /// the same across reloads.
    pub tag: u32,
    pub ttl: u32,
    pub rules: Rules,
    pub v4: Pool,
    pub v6: Pool,
}

impl HealthCheckedName {
    /// IPv4 members, then IPv6 ones.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.v4.members.iter().chain(&self.v6.members)
    }
}

impl Zone {
    /// The serial to serve: the SOA records as stored carry the compiled one, and every
    /// SOA written goes out with this one instead.
    #[inline]
    pub fn serial(&self) -> u32 {
        self.serial.load(Ordering::Relaxed)
    }

    /// Serves `serial` from now on (a transferred zone whose content changed with health).
    pub fn set_serial(&self, serial: u32) {
        self.serial.store(serial, Ordering::Relaxed);
    }

    /// The origin's key (lower-cased wire form).
    pub fn key(&self) -> &[u8] {
        &self.key
    }
}

impl Node {
    /// The CNAME at this name, with its target's key.
    pub fn cname(&self) -> Option<(&StoredRecord, &[u8])> {
        self.cname.as_deref().map(|(r, target)| (r, &**target))
    }

    pub fn health_checked(&self) -> Option<&HealthCheckedName> {
        self.health_checked.as_deref()
    }

    /// The static records of `rtype`.
    pub fn rrset(&self, rtype: RecordType) -> Option<&RrSet> {
        self.rrsets.iter().find(|s| s.rtype == rtype)
    }

    /// The types that have data here: static records, and the address families of a
    /// health-checked name.
    pub fn types(&self) -> impl Iterator<Item = RecordType> + '_ {
        let name = self.health_checked.as_deref();
        let families = [
            (RecordType::A, name.is_some_and(|n| !n.v4.is_empty())),
            (RecordType::AAAA, name.is_some_and(|n| !n.v6.is_empty())),
        ];
        self.rrsets.iter().map(|s| s.rtype).chain(
            families
                .into_iter()
                .filter_map(|(t, present)| present.then_some(t)),
        )
    }

    /// The static RRsets.
    pub fn rrsets(&self) -> &[RrSet] {
        &self.rrsets
    }

    /// The first static RRset (the apex: the SOA), the one answer to ANY.
    pub fn first_rrset(&self) -> Option<&RrSet> {
        self.rrsets.first()
    }

    /// Adds an RRset while compiling: the slice grows by one, exactly (a node has a few).
    fn add_rrset(&mut self, set: RrSet) {
        self.add_rrsets(&mut vec![set]);
    }

    /// Adds `other`'s records while compiling (another spelling of the name, or the apex's
    /// records under `records.@`): a set of a type it has joins it (the apex NS list may
    /// be extended so), and `other`'s CNAME or health-checked name, if any, replaces its
    /// own.
    fn merge(&mut self, other: Node) {
        let mut sets = Vec::new();
        for set in other.rrsets.into_vec() {
            match self.rrsets.iter_mut().find(|s| s.rtype == set.rtype) {
                Some(existing) => existing.records = existing.records.join(&set.records),
                None => sets.push(set),
            }
        }
        self.add_rrsets(&mut sets);
        if other.cname.is_some() {
            self.cname = other.cname;
        }
        if other.health_checked.is_some() {
            self.health_checked = other.health_checked;
        }
    }

    /// Adds the RRsets drained from `sets`, growing the slice exactly, once.
    fn add_rrsets(&mut self, sets: &mut Vec<RrSet>) {
        if sets.is_empty() {
            return;
        }
        let mut all = std::mem::take(&mut self.rrsets).into_vec();
        all.reserve_exact(sets.len());
        all.append(sets);
        self.rrsets = all.into_boxed_slice();
    }
}

impl Table {
    /// A table with no zones, to stand until the first configuration is compiled.
    pub fn empty() -> Table {
        Table {
            zones: Vec::new(),
            zone_index: Default::default(),
            geoip: None,
            options: QueryOptions {
                edns_udp_size: 512,
                nocookie_udp_size: 512,
                cookies: false,
                ecs: false,
                query_log: false,
                forward_clients: Vec::new(),
                rate_limit: None,
                access: AccessConfig::default(),
                identity: Identity::default(),
            },
            server_source: 0,
        }
    }

    /// The zones, in zone file order.
    pub fn zones(&self) -> impl ExactSizeIterator<Item = &Zone> {
        self.zones.iter().map(|z| &z.zone)
    }

    /// What this table serves, as one number: the same zone files (and the files they
    /// read) give the same fingerprint on every server, whatever each one's server file
    /// says. The servers of a cluster compare theirs.
    pub fn fingerprint(&self) -> u64 {
        use std::hash::Hasher;
        let mut zones: Vec<(String, u64)> = self
            .zones()
            .map(|z| (z.origin.to_ascii().to_ascii_lowercase(), z.source))
            .collect();
        zones.sort();
        let mut h = siphasher::sip::SipHasher13::new_with_keys(0x007a_6f6e_6573, 0x6669_6e67_6572);
        for (origin, source) in zones {
            h.write(origin.as_bytes());
            h.write_u64(source);
        }
        h.finish()
    }

    /// The compiled zones, in zone file order.
    pub fn zone_tables(&self) -> impl ExactSizeIterator<Item = &Arc<ZoneTable>> {
        self.zones.iter()
    }

    /// What this table was compiled from, for a reload to skip the files that did not
    /// change.
    pub fn known(&self) -> crate::config::Known {
        crate::config::Known {
            server: self.server_source,
            zones: self
                .zones
                .iter()
                .map(|z| {
                    let known = crate::config::KnownZone {
                        source: z.zone.source,
                        origin: z.zone.origin.clone(),
                        dependencies: z.zone.dependencies.clone(),
                    };
                    (z.zone.file.clone(), known)
                })
                .collect(),
        }
    }

    /// The compiled zone from `file`, if this table serves one.
    pub fn zone_table(&self, file: &std::path::Path) -> Option<&Arc<ZoneTable>> {
        self.zones.iter().find(|z| z.zone.file == file)
    }

    /// The compiled zones from the `unchanged` files that this table serves (in one pass:
    /// a reload may keep thousands).
    pub fn unchanged_zones<'a>(
        &'a self,
        unchanged: &[crate::config::UnchangedZone],
    ) -> impl Iterator<Item = &'a Arc<ZoneTable>> {
        let files: std::collections::HashSet<&std::path::Path> =
            unchanged.iter().map(|u| u.file.as_path()).collect();
        self.zones
            .iter()
            .filter(move |z| files.contains(z.zone.file.as_path()))
    }

    /// The zone that holds the name with key `name`. Zones do not overlap, so at most
    /// one does.
    #[inline]
    fn zone_of(&self, name: &[u8]) -> Option<&ZoneTable> {
        if self.zones.len() <= ZONES_SCANNED {
            return self
                .zones
                .iter()
                .find(|z| key::is_within(name, &z.zone.key))
                .map(|z| &**z);
        }
        // The name's tails, longest first, from one label boundary to the next.
        let mut i = 0;
        loop {
            if let Some(&z) = self.zone_index.get(&name[i..]) {
                return Some(&self.zones[z]);
            }
            match name.get(i) {
                Some(&0) | None => return None,
                Some(&len) => i += 1 + usize::from(len),
            }
        }
    }

    /// The zone of the name with key `name`, and the node at that name if there is one
    /// (else the name does not exist in the zone); `None` when no zone holds it.
    #[inline]
    pub fn find(&self, name: &[u8]) -> Option<(&Zone, Option<&Node>)> {
        let zone = self.zone_of(name)?;
        Some((&zone.zone, zone.nodes.get(name)))
    }

    /// Like [`Table::find`], with wildcards: a name without a node finds the wildcard that
    /// answers for it, if any.
    #[inline]
    pub fn lookup(&self, name: &[u8]) -> Option<(&Zone, Found<'_>)> {
        let zone = self.zone_of(name)?;
        Some((&zone.zone, zone.lookup(name)))
    }

    /// The zone of the name with key `name`, the table's own copy of the key (it lives as
    /// long as the table), and the node at it; `None` when the name has no node.
    pub fn find_key(&self, name: &[u8]) -> Option<(&Zone, &[u8], &Node)> {
        let zone = self.zone_of(name)?;
        let (key, node) = zone.nodes.get_key_value(name)?;
        Some((&zone.zone, key, node))
    }

    /// The node at the name with key `name`, with its zone.
    pub fn get(&self, name: &[u8]) -> Option<(&Node, &Zone)> {
        let (zone, node) = self.find(name)?;
        Some((node?, zone))
    }

    /// The GeoIP database in use, if any.
    pub fn geoip(&self) -> Option<&GeoDb> {
        self.geoip.as_deref()
    }

    /// All health-checked names, for status pages and metrics.
    pub fn health_checked_names(&self) -> impl Iterator<Item = &HealthCheckedName> {
        self.zones.iter().flat_map(|z| z.health_checked_names())
    }

    /// All health-checked names with their zones, in name order.
    pub fn health_checked_by_name(&self) -> Vec<(&HealthCheckedName, &Zone)> {
        let mut v: Vec<_> = self
            .zones
            .iter()
            .flat_map(|z| z.health_checked_names().map(|f| (f, &z.zone)))
            .collect();
        v.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        v
    }

    /// The health-checked name `name`, with its zone.
    pub fn health_checked(&self, name: &LowerName) -> Option<(&HealthCheckedName, &Zone)> {
        self.health_checked_at(KeyBuf::of(name).as_bytes())
    }

    /// [`Table::health_checked`] by the name's key (its lower-cased wire form).
    pub fn health_checked_at(&self, key: &[u8]) -> Option<(&HealthCheckedName, &Zone)> {
        let (node, zone) = self.get(key)?;
        node.health_checked().map(|f| (f, zone))
    }

    /// The member `address` of the health-checked name `name`, if there is one.
    pub fn member(&self, name: &LowerName, address: IpAddr) -> Option<&Member> {
        let (name, _) = self.health_checked(name)?;
        name.members().find(|m| m.address == address)
    }
}

impl ZoneTable {
    fn lookup(&self, name: &[u8]) -> Found<'_> {
        if self.cuts
            && let Some(found) = self.delegation(name)
        {
            return found;
        }
        if let Some(node) = self.nodes.get(name) {
            return Found::Node(node);
        }
        if !self.wildcards {
            return Found::Nothing;
        }
        // The closest encloser: the longest ancestor that exists (empty non-terminals do;
        // the apex always does). Only `*.` under it can answer (RFC 4592 3.3.1): a
        // wildcard further up does not match below an existing name.
        let apex = self.zone.key.len();
        let mut at = 0;
        loop {
            at += 1 + usize::from(name[at]);
            let tail = &name[at..];
            if tail.len() > apex && !self.nodes.contains_key(tail) {
                continue;
            }
            let mut key = [0u8; key::MAX_WIRE_LEN + 2];
            if tail.len() + 2 > key::MAX_WIRE_LEN {
                return Found::Nothing;
            }
            key[0] = 1;
            key[1] = b'*';
            key[2..2 + tail.len()].copy_from_slice(tail);
            return match self.nodes.get_key_value(&key[..2 + tail.len()]) {
                Some((wildcard, node)) => Found::Wildcard(node, wildcard),
                None => Found::Nothing,
            };
        }
    }

    /// The delegation `name` is at or below: the cut nearest the apex on its path.
    fn delegation(&self, name: &[u8]) -> Option<Found<'_>> {
        let apex = self.zone.key.len();
        // Where each of the name's tails below the apex starts, the name itself first.
        let mut starts = [0u8; key::MAX_WIRE_LEN / 2 + 1];
        let (mut count, mut at) = (0, 0usize);
        while name.len() - at > apex {
            starts[count] = at as u8;
            count += 1;
            at += 1 + usize::from(name[at]);
        }
        (0..count).rev().find_map(|i| {
            let (key, node) = self.nodes.get_key_value(&name[usize::from(starts[i])..])?;
            node.rrset(RecordType::NS).map(|_| Found::Delegation {
                cut: node,
                key,
                at_cut: i == 0,
            })
        })
    }

    /// The node at the zone's apex (its SOA and NS).
    pub fn apex(&self) -> Option<&Node> {
        self.nodes.get(self.zone.key())
    }

    /// Every owner name (its key) with its node, in no order.
    pub fn nodes(&self) -> impl Iterator<Item = (&[u8], &Node)> {
        self.nodes.iter().map(|(k, n)| (&**k, n))
    }

    /// The zone's health-checked names.
    pub fn health_checked_names(&self) -> impl Iterator<Item = &HealthCheckedName> {
        self.nodes
            .values()
            .filter_map(|n| n.health_checked.as_deref())
    }
}

/// A table shared with the DNS handler and replaced whole on reload.
pub type SharedTable = arc_swap::ArcSwap<Table>;
