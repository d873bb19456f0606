//! The one decision path: a query and the table in, a [`Plan`] of the response out.
//!
//! Both answer paths parse a message into a [`Query`] and call [`plan`]: the UDP fast path
//! encodes the plan straight to bytes, the general path (TCP, and the UDP queries the fast
//! path leaves to it) through hickory. Everything that decides a response is decided here
//! and nowhere else: the opcode, EDNS version and class checks, the EDNS Client Subnet
//! validation and scope, the lookup with its CNAME chain, selection, the payload limit and
//! whether to forward. Counting is the caller's: a plan moves only the rotations of the
//! names it answers, and a dry run ([`Mode::DryRun`]) moves nothing.

use std::net::IpAddr;

use hickory_proto::op::{OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, RData, Record, RecordType};
use ipnet::IpNet;
use smallvec::SmallVec;

use crate::geo::ClientLocation;
use crate::model::{WireRef, wire};
use crate::select::{Chosen, Client, Member, Pool};
use crate::zone::{Found, HealthCheckedName, Node, RrSet, Table, Zone};

pub use crate::select::Mode;

/// CNAME chains longer than this are cut (and loops end here).
const MAX_CNAME_CHAIN: usize = 8;
/// The UDP limit without EDNS, and the least an EDNS client is taken to accept
/// (RFC 6891 6.2.3).
pub const MIN_UDP_PAYLOAD: u16 = 512;

/// A query, as either parser presents it.
#[derive(Clone, Copy, Debug)]
pub struct Query<'q> {
    pub op_code: OpCode,
    /// The question, or `None` when the message does not have exactly one.
    pub question: Option<Question<'q>>,
    /// The OPT record, when the query has one.
    pub edns: Option<EdnsQuery>,
    /// The packet's source address.
    pub source: IpAddr,
}

#[derive(Clone, Copy, Debug)]
pub struct Question<'q> {
    /// The name's key: lower-cased wire form ([`crate::model::name`]).
    pub name: &'q [u8],
    pub qtype: RecordType,
    pub qclass: DNSClass,
}

/// What the query's OPT record says.
#[derive(Clone, Copy, Debug)]
pub struct EdnsQuery {
    /// The client's UDP buffer size.
    pub payload: u16,
    pub version: u8,
    pub ecs: Option<Ecs>,
    /// The COOKIE option, as the server's cookies judged it.
    pub cookie: Option<Cookie>,
    /// DO (RFC 3225): the client wants DNSSEC records.
    pub dnssec_ok: bool,
    /// CO (RFC 9824): the client takes NXDOMAIN with a compact denial.
    pub compact_ok: bool,
    /// The query carries an NSID option (RFC 5001): the client asks who answers.
    pub nsid: bool,
}

/// A query's DNS Cookie (RFC 7873), judged against the server secret (see `cookie`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cookie {
    /// Not a client cookie of 8 bytes with at most 32 of server cookie: FORMERR.
    Malformed,
    /// `valid`: the server cookie is one of ours, for this client, and recent; `echo`: the
    /// client cookie and a fresh server cookie, for the answer.
    Present { valid: bool, echo: [u8; 24] },
}

/// An EDNS Client Subnet option (RFC 7871): in a query as sent, in a plan as echoed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ecs {
    pub addr: IpAddr,
    pub source_prefix: u8,
    pub scope_prefix: u8,
}

impl Ecs {
    /// Address bytes on the wire: the source prefix, rounded up to whole bytes.
    pub fn address_len(&self) -> usize {
        usize::from(self.source_prefix).div_ceil(8)
    }
}

/// Everything a response needs apart from what is copied from the query (id, RD, CD and
/// the question).
#[derive(Debug)]
pub struct Plan<'t> {
    pub rcode: ResponseCode,
    pub authoritative: bool,
    /// The type looked up; `None` when the query was answered without a lookup.
    pub qtype: Option<RecordType>,
    pub answers: SmallVec<[Rr<'t>; 8]>,
    /// The zone SOA, for NXDOMAIN and NODATA (authority section).
    pub soa: Option<Rr<'t>>,
    /// The zone the question falls in, if any.
    pub zone: Option<&'t Zone>,
    /// The OPT record to send back, when the query had one.
    pub edns: Option<EdnsReply<'t>>,
    /// The name is in none of our zones and the client may use forwarding: the caller
    /// answers from the upstream resolvers instead.
    pub forward: bool,
    /// How the health-checked name that answered chose, when one did.
    pub selection: Option<Selection<'t>>,
    /// The query came with a valid server cookie (and is exempt from rate limiting).
    pub cookie_valid: bool,
    /// The client is turned away by an access list (of the server, or of the zone asked).
    pub denied: bool,
    /// And is to get no answer at all (the list's action is `drop`).
    pub drop: bool,
    /// The query has DO: RRsets of signed zones go with their RRSIGs.
    pub dnssec_ok: bool,
    /// With DO: the answer section's RRsets, each hop of a CNAME chain one, to sign.
    pub rrsets: SmallVec<[AnswerSet<'t>; 2]>,
    /// With DO, in a signed zone: the name or type that does not exist, to prove so.
    pub denial: Option<Denial<'t>>,
    /// The wildcard (its key) an answer was synthesized from, if one was: rate limiting
    /// counts such answers by it, not by the many names it answers for.
    pub wildcard: Option<&'t [u8]>,
    /// Additional-section data: the addresses of in-zone names the answer's MX, SRV and NS
    /// records point at, sent while they fit (they never cause truncation).
    pub additional: SmallVec<[Rr<'t>; 4]>,
    /// The RRsets of `additional`, in order (each owner is `Some`).
    pub additional_sets: SmallVec<[AnswerSet<'t>; 2]>,
    /// The name is delegated: a referral to the child zone.
    pub referral: Option<Referral<'t>>,
}

/// A referral (RFC 1034 4.3.2 step 3b): the delegation's NS records, which the child zone
/// vouches for (no AA, no signature), its DS records if it has any, and their glue in the
/// additional section.
#[derive(Clone, Copy, Debug)]
pub struct Referral<'t> {
    pub zone: &'t Zone,
    /// The delegation point's key.
    pub cut: &'t [u8],
    pub ns: &'t RrSet,
    pub ds: Option<&'t RrSet>,
}

impl Referral<'_> {
    /// How many NS and DS records it sends.
    pub fn record_count(&self) -> usize {
        [Some(self.ns), self.ds]
            .iter()
            .flatten()
            .map(|set| set.records.iter().count())
            .sum()
    }
}

/// One RRset of the answer section: the next `len` records of [`Plan::answers`].
#[derive(Clone, Copy, Debug)]
pub struct AnswerSet<'t> {
    pub zone: &'t Zone,
    /// The owner's key; `None` for the asked name.
    pub owner: Option<&'t [u8]>,
    pub rtype: RecordType,
    /// The RRset's TTL in the zone (its RRSIG's original TTL): the most it is sent with.
    pub zone_ttl: u32,
    pub len: usize,
    /// Glue: addresses at or below a delegation, which the child vouches for (never
    /// signed).
    pub glue: bool,
}

/// What a negative answer from a signed zone proves does not exist (RFC 9824): at the
/// owner, the asked type, or (without a node) any type at all.
#[derive(Clone, Copy, Debug)]
pub struct Denial<'t> {
    pub zone: &'t Zone,
    /// The owner's key; `None` for the asked name.
    pub owner: Option<&'t [u8]>,
    /// The node at the owner, or `None` when the name does not exist.
    pub node: Option<&'t Node>,
    pub qtype: RecordType,
}

/// A record to send and the TTL to send it with.
#[derive(Clone, Copy, Debug)]
pub struct Rr<'t> {
    pub data: RrData<'t>,
    pub ttl: u32,
    pub owner: Owner<'t>,
}

/// The owner a record goes out under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner<'t> {
    /// The name asked for (not a CNAME target): a pointer to the question.
    Question,
    /// The record's own name, as loaded.
    Stored,
    /// This name (a key): a CNAME target that a wildcard answered (RFC 4592 synthesis).
    Key(&'t [u8]),
}

/// Where a record to send comes from.
#[derive(Clone, Copy, Debug)]
pub enum RrData<'t> {
    /// A static record, a CNAME or the SOA, encoded at load time.
    Stored(WireRef<'t>),
    /// A member's A or AAAA record, written from its address under its name.
    Member(&'t HealthCheckedName, &'t Member),
    /// A zone's SOA as encoded at load time, going out with the serial served when the
    /// plan was made (a transferred zone's moves with health; see [`Zone::serial`]).
    Soa(WireRef<'t>, u32),
}

impl<'t> Rr<'t> {
    pub fn stored(stored: WireRef<'t>, ttl: u32, owner: Owner<'t>) -> Self {
        Rr {
            data: RrData::Stored(stored),
            ttl,
            owner,
        }
    }

    /// `zone`'s SOA record `stored`, with the serial the zone serves now.
    pub fn soa(zone: &Zone, stored: WireRef<'t>, ttl: u32) -> Self {
        Rr {
            data: RrData::Soa(stored, zone.serial()),
            ttl,
            owner: Owner::Stored,
        }
    }

    /// Appends the record in wire format; its owner is a pointer to `question` when it is
    /// the asked name (and `question` is given).
    #[inline]
    pub fn write(&self, out: &mut Vec<u8>, question: Option<u16>) {
        let pointer = question.filter(|_| self.owner == Owner::Question);
        match (self.data, self.owner) {
            (RrData::Stored(stored), Owner::Key(key)) => stored.write_as(out, key, self.ttl),
            (RrData::Stored(stored), _) => stored.write(out, self.ttl, pointer),
            (RrData::Soa(stored, serial), _) => {
                stored.write(out, self.ttl, pointer);
                wire::set_soa_serial(out, serial);
            }
            (RrData::Member(_, m), Owner::Key(key)) => {
                wire::write_address_as(out, key, self.ttl, m.address)
            }
            (RrData::Member(name, m), _) => {
                wire::write_address(out, &name.name, pointer, self.ttl, m.address)
            }
        }
    }

    /// How many bytes `write` appends with a question to point at.
    pub fn written_len(&self) -> usize {
        let pointer = self.owner == Owner::Question;
        match (self.data, self.owner) {
            (RrData::Stored(stored), Owner::Key(key)) => stored.written_len_as(key),
            (RrData::Stored(stored) | RrData::Soa(stored, _), _) => stored.written_len(pointer),
            (RrData::Member(_, m), Owner::Key(key)) => wire::address_len_as(key, m.address),
            (RrData::Member(name, m), _) => wire::address_len(&name.name, pointer, m.address),
        }
    }

    /// The record as hickory's type, with the TTL to send (under its own name, or the
    /// `Key` it is given; the caller names those owned by the question).
    pub fn record(&self) -> Record {
        let mut record = match self.data {
            RrData::Stored(stored) => stored.record(),
            RrData::Soa(stored, serial) => {
                let mut record = stored.record();
                if let RData::SOA(soa) = &mut record.data {
                    soa.serial = serial;
                }
                record
            }
            RrData::Member(name, m) => {
                let data = match m.address {
                    IpAddr::V4(a) => RData::A(a.into()),
                    IpAddr::V6(a) => RData::AAAA(a.into()),
                };
                Record::from_rdata(name.name.clone(), self.ttl, data)
            }
        };
        record.ttl = self.ttl;
        if let Owner::Key(key) = self.owner {
            record.name = crate::model::name::name_of(key);
        }
        record
    }
}

/// The OPT record of a response.
#[derive(Clone, Copy, Debug)]
pub struct EdnsReply<'t> {
    /// Our UDP buffer size: the client's, between 512 and the server's `edns-udp-size`.
    pub payload: u16,
    /// The query's Client Subnet, with the scope that decided the answer (0 when the
    /// answer does not depend on where the client is).
    pub ecs: Option<Ecs>,
    /// The client cookie and our server cookie, when the query had a cookie.
    pub cookie: Option<[u8; 24]>,
    /// DO, echoed (RFC 3225 3).
    pub dnssec_ok: bool,
    /// CO, echoed (RFC 9824 4).
    pub compact_ok: bool,
    /// The server's NSID, for a query that asked (and a server that has one).
    pub nsid: Option<&'t [u8]>,
}

/// How a health-checked name chose, for the caller's counters and for explain.
#[derive(Debug)]
pub struct Selection<'t> {
    pub name: &'t HealthCheckedName,
    pub zone: &'t Zone,
    /// The members of the asked address family.
    pub pool: &'t Pool,
    /// Where the client is, for policies that depend on it.
    pub location: Option<ClientLocation>,
    /// Empty when nothing is up and the name fails closed.
    pub chosen: Chosen<'t>,
}

impl Plan<'_> {
    /// The UDP payload limit for this response.
    pub fn udp_limit(&self) -> usize {
        usize::from(self.edns.map_or(MIN_UDP_PAYLOAD, |e| e.payload))
    }

    /// The size of the response as the fast path writes it, for a question of
    /// `question_len` bytes: names uncompressed but for pointers to the question (the fast
    /// path measures it as it writes). The general path's compressed encoding is never
    /// larger.
    pub fn wire_len(&self, question_len: usize) -> usize {
        let answers: usize = self.answers.iter().map(Rr::written_len).sum();
        let soa = self.soa.map_or(0, |rr| rr.written_len());
        let referral = self.referral.map_or(0, |r| {
            let sets = [Some(r.ns), r.ds];
            sets.iter()
                .flatten()
                .flat_map(|set| set.records.iter())
                .map(|w| w.written_len(false))
                .sum()
        });
        12 + question_len + answers + soa + referral + self.opt_len()
    }

    /// The size of the OPT record: fixed fields, and the Client Subnet, COOKIE and NSID
    /// options if sent.
    pub fn opt_len(&self) -> usize {
        self.edns.map_or(0, |e| {
            11 + e.ecs.map_or(0, |s| 8 + s.address_len())
                + e.cookie.map_or(0, |_| 4 + 24)
                + e.nsid.map_or(0, |n| 4 + n.len())
        })
    }

    /// Whether the response is too big for UDP: it then goes out with TC=1 and the question
    /// alone (no partial RRsets), and the client retries over TCP.
    pub fn truncated_on_udp(&self, question_len: usize) -> bool {
        self.wire_len(question_len) > self.udp_limit()
    }
}

/// Decides the response to `query` from `table`.
pub fn plan<'t>(table: &'t Table, query: &Query<'_>, mode: Mode) -> Plan<'t> {
    let mut plan = Plan::start(table, query);
    decide(table, query, mode, &mut plan);
    plan
}

/// Like [`plan`], but lends the plan to `f` rather than moving it out: the fast path's
/// way, because a plan is some 350 bytes and copying it costs a tenth of that path's work.
pub fn with_plan<R>(table: &Table, query: &Query<'_>, mode: Mode, f: impl FnOnce(&Plan) -> R) -> R {
    let mut plan = Plan::start(table, query);
    decide(table, query, mode, &mut plan);
    f(&plan)
}

impl<'t> Plan<'t> {
    /// A plan before any decision: NOERROR, nothing to answer, and the OPT record to echo.
    fn start(table: &'t Table, query: &Query<'_>) -> Self {
        // Echoed as sent, with scope 0 until an answer depends on the client's location.
        let ecs = client_subnet(table, query);
        let cookie = query.edns.and_then(|e| e.cookie);
        let cookie_valid = matches!(cookie, Some(Cookie::Present { valid: true, .. }));
        // Without a valid cookie, UDP answers may be held smaller (`nocookie-udp-size`).
        let most = if cookie_valid {
            table.options.edns_udp_size
        } else {
            table.options.nocookie_udp_size
        };
        Plan {
            rcode: ResponseCode::NoError,
            authoritative: false,
            qtype: None,
            answers: SmallVec::new(),
            soa: None,
            zone: None,
            edns: query.edns.map(|e| EdnsReply {
                payload: e.payload.clamp(MIN_UDP_PAYLOAD, most),
                ecs: ecs.map(|s| Ecs {
                    scope_prefix: 0,
                    ..s
                }),
                cookie: match cookie {
                    Some(Cookie::Present { echo, .. }) => Some(echo),
                    _ => None,
                },
                dnssec_ok: e.dnssec_ok,
                compact_ok: e.dnssec_ok && e.compact_ok,
                nsid: table.options.identity.nsid.as_deref().filter(|_| e.nsid),
            }),
            forward: false,
            selection: None,
            cookie_valid,
            denied: false,
            drop: false,
            dnssec_ok: query.edns.is_some_and(|e| e.dnssec_ok),
            rrsets: SmallVec::new(),
            denial: None,
            wildcard: None,
            additional: SmallVec::new(),
            additional_sets: SmallVec::new(),
            referral: None,
        }
    }

    /// With DO: the last `len` answers make one RRset of `zone` (signed or not: a CNAME
    /// chain may leave a signed zone).
    fn answered(
        &mut self,
        zone: &'t Zone,
        owner: Option<&'t [u8]>,
        rtype: RecordType,
        zone_ttl: u32,
        len: usize,
    ) {
        if self.dnssec_ok && len > 0 {
            self.rrsets.push(AnswerSet {
                zone,
                owner,
                rtype,
                zone_ttl,
                len,
                glue: false,
            });
        }
    }

    /// With DO, in a signed zone: proves the negative answer, compactly (RFC 9824). A name
    /// that does not exist is then NOERROR, unless the client set CO.
    fn deny_existence(
        &mut self,
        zone: &'t Zone,
        owner: Option<&'t [u8]>,
        node: Option<&'t Node>,
        qtype: RecordType,
    ) {
        if !self.dnssec_ok || zone.signer.is_none() {
            return;
        }
        self.denial = Some(Denial {
            zone,
            owner,
            node,
            qtype,
        });
        let compact_ok = self.edns.is_some_and(|e| e.compact_ok);
        if self.rcode == ResponseCode::NXDomain && !compact_ok {
            self.rcode = ResponseCode::NoError;
        }
    }

    /// Turns the client away, by `access`'s action: REFUSED, or nothing.
    fn deny(&mut self, access: &crate::config::AccessConfig) {
        self.rcode = ResponseCode::Refused;
        self.authoritative = false;
        self.answers.clear();
        self.rrsets.clear();
        self.denial = None;
        self.soa = None;
        self.denied = true;
        self.drop = access.drop;
    }
}

/// The query's Client Subnet, unless the server ignores ECS.
fn client_subnet(table: &Table, query: &Query<'_>) -> Option<Ecs> {
    query.edns.and_then(|e| e.ecs).filter(|_| table.options.ecs)
}

fn decide<'t>(table: &'t Table, query: &Query<'_>, mode: Mode, plan: &mut Plan<'t>) {
    if table.options.access.denies(query.source) {
        plan.deny(&table.options.access);
        return;
    }
    let ecs = client_subnet(table, query);
    let question = match check(query) {
        Ok(question) => question,
        Err(rcode) => {
            plan.rcode = rcode;
            return;
        }
    };
    let Some(client) = client(query.source, ecs) else {
        plan.rcode = ResponseCode::FormErr;
        // The OPT record goes back, the malformed option does not.
        if let Some(edns) = plan.edns.as_mut() {
            edns.ecs = None;
        }
        return;
    };
    plan.qtype = Some(question.qtype);
    if question.qclass == DNSClass::CH {
        chaos(table, question, plan);
        return;
    }
    let outside = lookup(table, question, client, query.source, mode, plan);
    add_additional(table, client, plan);
    if let Some(echo) = plan.edns.as_mut().and_then(|e| e.ecs.as_mut()) {
        let decided_by = plan.selection.as_ref().and_then(|s| s.location);
        echo.scope_prefix = decided_by.map_or(0, |l| l.scope).min(echo.source_prefix);
    }
    plan.forward = outside
        && table
            .options
            .forward_clients
            .iter()
            .any(|net| net.contains(&query.source));
}

/// The question to look up, or the rcode that answers the query without a lookup.
fn check<'q>(query: &Query<'q>) -> Result<Question<'q>, ResponseCode> {
    if query.op_code != OpCode::Query {
        return Err(ResponseCode::NotImp);
    }
    if query.edns.is_some_and(|e| e.version > 0) {
        return Err(ResponseCode::BADVERS);
    }
    if query
        .edns
        .is_some_and(|e| e.cookie == Some(Cookie::Malformed))
    {
        return Err(ResponseCode::FormErr);
    }
    let question = query.question.ok_or(ResponseCode::FormErr)?;
    let chaos = question.qclass == DNSClass::CH;
    if question.qclass != DNSClass::IN && question.qclass != DNSClass::ANY && !chaos {
        return Err(ResponseCode::Refused);
    }
    match question.qtype {
        RecordType::AXFR | RecordType::IXFR => Err(ResponseCode::Refused),
        // NXNAME only ever sits in a compact denial's bitmap (RFC 9824 3.5).
        RecordType::OPT | crate::sign::NXNAME => Err(ResponseCode::FormErr),
        _ => Ok(question),
    }
}

/// A CHAOS query: `version.bind`, `hostname.bind` and their kin, TXT (or ANY), when the
/// server file's `identity:` gives them; the name with any other type is NODATA, any
/// other name REFUSED, as Knot answers.
fn chaos<'t>(table: &'t Table, question: Question<'_>, plan: &mut Plan<'t>) {
    let Some(record) = table.options.identity.chaos(question.name) else {
        plan.rcode = ResponseCode::Refused;
        return;
    };
    plan.authoritative = true;
    if matches!(question.qtype, RecordType::TXT | RecordType::ANY) {
        let wire = record.wire();
        plan.answers
            .push(Rr::stored(wire, wire.ttl(), Owner::Question));
    }
}

/// The client to choose for: the ECS address when the query carries one with a non-zero
/// source prefix, else the packet source. `None` for a malformed ECS, which is FORMERR
/// (RFC 7871 7.1.1): a scope in a query, or address bits beyond the source prefix.
fn client(source: IpAddr, ecs: Option<Ecs>) -> Option<Client> {
    let Some(subnet) = ecs else {
        return Some(Client::from_source(source));
    };
    let prefix = subnet.source_prefix;
    let masked = IpNet::new(subnet.addr, prefix).map(|n| n.network());
    if subnet.scope_prefix != 0 || masked != Ok(subnet.addr) {
        return None;
    }
    if prefix == 0 {
        return Some(Client::from_source(source));
    }
    Some(Client {
        addr: subnet.addr,
        source_prefix: prefix,
    })
}

/// Looks the question up, following CNAMEs inside our zones, unless the zone asked turns
/// `source` away (before anything is chosen: a rotation moves only for answers). Returns
/// whether the name is in none of our zones.
fn lookup<'t>(
    table: &'t Table,
    question: Question<'_>,
    client: Client,
    source: IpAddr,
    mode: Mode,
    plan: &mut Plan<'t>,
) -> bool {
    let qtype = question.qtype;
    let mut name = question.name;
    // The owner of this hop's records: `None` for the asked name.
    let mut owner: Option<&'t [u8]> = None;
    for hop in 0..MAX_CNAME_CHAIN {
        let (zone, found) = match table.lookup(name) {
            Some(found) => found,
            None if hop == 0 => {
                plan.rcode = ResponseCode::Refused;
                return true;
            }
            // A CNAME pointing out of our zones: the resolver follows it from here.
            None => return false,
        };
        if hop == 0 && zone.access.denies(source) {
            plan.zone = Some(zone);
            plan.deny(&zone.access);
            return false;
        }
        plan.zone.get_or_insert(zone);
        plan.authoritative = true;
        // Where the records go out under: the question, the name a wildcard answers for
        // (RFC 4592: the answer is synthesized at that name), or their own name.
        let (node, rr_owner) = match found {
            Found::Node(node) if hop == 0 => (node, Owner::Question),
            Found::Node(node) => (node, Owner::Stored),
            Found::Wildcard(node, wildcard) => {
                plan.wildcard.get_or_insert(wildcard);
                (node, owner.map_or(Owner::Question, Owner::Key))
            }
            // DS at a delegation point is the parent's: answered here, with AA.
            Found::Delegation {
                cut, at_cut: true, ..
            } if qtype == RecordType::DS => (
                cut,
                if hop == 0 {
                    Owner::Question
                } else {
                    Owner::Stored
                },
            ),
            Found::Delegation { cut, key, .. } => {
                // AA only for the CNAMEs of ours that led here.
                plan.authoritative = hop > 0;
                let ds = cut.rrset(RecordType::DS);
                plan.referral = Some(Referral {
                    zone,
                    cut: key,
                    ns: cut
                        .rrset(RecordType::NS)
                        .expect("a delegation has NS records"),
                    // DS goes with a referral for DO queries only (RFC 4035 3.1.4).
                    ds: ds.filter(|_| plan.dnssec_ok),
                });
                // An insecure delegation, proven so for DO queries to a signed zone.
                if ds.is_none() {
                    plan.deny_existence(zone, Some(key), Some(cut), RecordType::DS);
                }
                return false;
            }
            Found::Nothing => {
                plan.rcode = ResponseCode::NXDomain;
                let soa = zone.negative_soa.wire();
                plan.soa = Some(Rr::soa(zone, soa, soa.ttl()));
                plan.deny_existence(zone, owner, None, qtype);
                return false;
            }
        };
        if let Some((cname, target)) = node.cname() {
            let cname = cname.wire();
            plan.answers.push(Rr::stored(cname, cname.ttl(), rr_owner));
            plan.answered(zone, owner, RecordType::CNAME, cname.ttl(), 1);
            if qtype == RecordType::CNAME {
                return false;
            }
            name = target;
            owner = Some(target);
            continue;
        }
        let before = plan.answers.len();
        match answer_at(table, node, zone, qtype, rr_owner, client, mode, plan) {
            Answered::Records { rtype, zone_ttl } => {
                let len = plan.answers.len() - before;
                plan.answered(zone, owner, rtype, zone_ttl, len);
            }
            Answered::Nothing(ttl) => {
                let soa = zone.negative_soa.wire();
                plan.soa = Some(Rr::soa(zone, soa, ttl.unwrap_or(soa.ttl())));
                plan.deny_existence(zone, owner, Some(node), qtype);
            }
        }
        return false;
    }
    false
}

/// Additional-section processing (RFC 1034 4.3.2 step 6), as Knot does it: for each MX,
/// SRV and NS record of the answer, the A and AAAA records of its target when the target
/// is a name of our zones (a health-checked one answers its current choice, as the next
/// query for it would get, without moving its rotation). Wildcards do not answer here.
fn add_additional<'t>(table: &'t Table, client: Client, plan: &mut Plan<'t>) {
    if plan.rcode != ResponseCode::NoError || (plan.answers.is_empty() && plan.referral.is_none()) {
        return;
    }
    let mut done: SmallVec<[&'t [u8]; 4]> = SmallVec::new();
    // The answer's records, then a referral's NS records (whose addresses are its glue).
    let referral = plan.referral.map(|r| r.ns);
    let answers = plan.answers.len();
    let delegated = referral.map_or(0, |ns| ns.records.iter().count());
    for i in 0..answers + delegated {
        let stored = if i < answers {
            let RrData::Stored(stored) = plan.answers[i].data else {
                continue;
            };
            stored
        } else {
            let Some(stored) = referral.and_then(|ns| ns.records.iter().nth(i - answers)) else {
                continue;
            };
            stored
        };
        let rdata = stored.rdata();
        let target = match stored.rtype_code() {
            15 => rdata.get(2..), // MX: preference, exchange
            33 => rdata.get(6..), // SRV: priority, weight, port, target
            2 => Some(rdata),     // NS
            _ => None,
        };
        let Some((key, _)) = target.and_then(|t| crate::model::name::KeyBuf::read(t, 0)) else {
            continue;
        };
        let Some((zone, key, node)) = table.find_key(key.as_bytes()) else {
            continue;
        };
        let glue = matches!(table.lookup(key), Some((_, Found::Delegation { .. })));
        if done.contains(&key) {
            continue;
        }
        done.push(key);
        for rtype in [RecordType::A, RecordType::AAAA] {
            let before = plan.additional.len();
            let mut zone_ttl = 0;
            if let Some(name) = node.health_checked() {
                let pool = if rtype == RecordType::A {
                    &name.v4
                } else {
                    &name.v6
                };
                if !pool.is_empty() {
                    let (chosen, _) = choose(table, zone, name, pool, client, Mode::DryRun);
                    let ttl = pool.ttl(name.ttl);
                    plan.additional.extend(chosen.iter().map(|m| Rr {
                        data: RrData::Member(name, m),
                        ttl,
                        owner: Owner::Stored,
                    }));
                    zone_ttl = name.ttl;
                }
            }
            if let Some(set) = node.rrset(rtype) {
                plan.additional.extend(
                    set.records
                        .iter()
                        .map(|r| Rr::stored(r, r.ttl(), Owner::Stored)),
                );
                zone_ttl = set.records.iter().next().map_or(0, |r| r.ttl());
            }
            let len = plan.additional.len() - before;
            if len > 0 {
                plan.additional_sets.push(AnswerSet {
                    zone,
                    owner: Some(key),
                    rtype,
                    zone_ttl,
                    len,
                    glue,
                });
            }
        }
    }
}

/// A health-checked name's choice from `pool` for `client`, and where the client was
/// placed when the policy needed it.
fn choose<'t>(
    table: &'t Table,
    zone: &'t Zone,
    name: &'t HealthCheckedName,
    pool: &'t Pool,
    client: Client,
    mode: Mode,
) -> (Chosen<'t>, Option<ClientLocation>) {
    let location = name.rules.policy.needs_client().then(|| {
        zone.sites
            .locate(client.addr, client.source_prefix, table.geoip())
    });
    let chosen = pool.select(
        name.rules,
        client,
        location.as_ref(),
        &zone.sites.sites,
        mode,
    );
    (chosen, location)
}

/// What a node answered.
enum Answered {
    /// An RRset of `rtype`, whose TTL in the zone is `zone_ttl`.
    Records { rtype: RecordType, zone_ttl: u32 },
    /// No data of the type: NODATA, with the SOA's TTL when it is not the zone's negative
    /// TTL.
    Nothing(Option<u32>),
}

/// Answers from one node.
#[allow(clippy::too_many_arguments)]
fn answer_at<'t>(
    table: &'t Table,
    node: &'t Node,
    zone: &'t Zone,
    qtype: RecordType,
    owner: Owner<'t>,
    client: Client,
    mode: Mode,
    plan: &mut Plan<'t>,
) -> Answered {
    if let Some(name) = node.health_checked() {
        let pool = match qtype {
            RecordType::A => Some(&name.v4),
            RecordType::AAAA => Some(&name.v6),
            // RFC 8482: one RRset is a complete answer to ANY; ours is the addresses.
            RecordType::ANY if !name.v4.is_empty() => Some(&name.v4),
            RecordType::ANY if !name.v6.is_empty() => Some(&name.v6),
            _ => None,
        };
        if let Some(pool) = pool.filter(|p| !p.is_empty()) {
            let (chosen, location) = choose(table, zone, name, pool, client, mode);
            let ttl = pool.ttl(name.ttl);
            plan.answers.extend(chosen.iter().map(|m| Rr {
                data: RrData::Member(name, m),
                ttl,
                owner,
            }));
            let failed_closed = chosen.is_empty();
            plan.selection = Some(Selection {
                name,
                zone,
                pool,
                location,
                chosen,
            });
            // Failing closed: negative-cache no longer than the name's own TTL.
            if failed_closed {
                return Answered::Nothing(Some(name.ttl));
            }
            let rtype = if std::ptr::eq(pool, &name.v4) {
                RecordType::A
            } else {
                RecordType::AAAA
            };
            return Answered::Records {
                rtype,
                zone_ttl: name.ttl,
            };
        }
    }
    let set = if qtype == RecordType::ANY {
        node.first_rrset()
    } else {
        node.rrset(qtype)
    };
    match set {
        Some(set) if set.rtype == RecordType::SOA => {
            let soa = set.records.iter().next().expect("a zone has its SOA");
            let mut rr = Rr::soa(zone, soa, soa.ttl());
            rr.owner = owner;
            plan.answers.push(rr);
            Answered::Records {
                rtype: RecordType::SOA,
                zone_ttl: soa.ttl(),
            }
        }
        Some(set) => {
            plan.answers
                .extend(set.records.iter().map(|r| Rr::stored(r, r.ttl(), owner)));
            let zone_ttl = set.records.iter().next().map_or(0, |r| r.ttl());
            Answered::Records {
                rtype: set.rtype,
                zone_ttl,
            }
        }
        None => Answered::Nothing(None),
    }
}
