//! The general path: hickory's message model, for TCP and for the UDP queries the fast path
//! leaves to it. It answers from the same plan as the fast path, and adds what only it
//! does: forwarding and the query log.

use std::sync::LazyLock;
use std::sync::atomic::Ordering;
use std::time::Instant;

use hickory_proto::op::{Edns, Metadata, ResponseCode};
use hickory_proto::rr::Record;
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption, NSIDPayload};
use hickory_proto::serialize::binary::{BinDecoder, BinEncoder};
use hickory_server::net::xfer::Protocol;
use hickory_server::server::Request;
use hickory_server::zone_handler::{MessageResponseBuilder, Queries};
use smallvec::SmallVec;
use tracing::{info, warn};

use super::signed::Signatures;
use crate::cookie::Cookies;
use crate::forward::Source;
use crate::model::name::KeyBuf;
use crate::resolve::{self, Ecs, EdnsQuery, Mode, Owner, Plan, Question, Rr};
use crate::rrl::Verdict;
use crate::state::Meridian;

/// The CO flag (RFC 9824 4) among the EDNS flags hickory keeps as `z` (DO apart).
const COMPACT_OK: u16 = 0x4000;

/// A response, ready to encode.
pub(super) struct Reply {
    metadata: Metadata,
    answers: SmallVec<[Record; 8]>,
    authorities: SmallVec<[Record; 2]>,
    additionals: Vec<Record>,
    edns: Option<Edns>,
    /// Too big for UDP as planned (a forwarded answer is measured once encoded).
    too_big_for_udp: bool,
    /// What the rate limit says of it, over UDP.
    verdict: Verdict,
    /// An access list says to answer nothing.
    drop: bool,
}

/// The query as the plan takes it; its cookie judged by `cookies`, when they are on.
fn query_of<'r>(
    request: &'r Request,
    name: &'r Option<KeyBuf>,
    cookies: Option<&Cookies>,
) -> resolve::Query<'r> {
    let question = match (request.queries.queries(), name) {
        ([q], Some(name)) => Some(Question {
            name: name.as_bytes(),
            qtype: q.query_type(),
            qclass: q.query_class(),
        }),
        _ => None,
    };
    let edns = request.edns.as_ref().map(|e| EdnsQuery {
        payload: e.max_payload(),
        version: e.version(),
        ecs: match e.option(EdnsCode::Subnet) {
            Some(EdnsOption::Subnet(s)) => Some(Ecs {
                addr: s.addr(),
                source_prefix: s.source_prefix(),
                scope_prefix: s.scope_prefix(),
            }),
            _ => None,
        },
        cookie: match (e.option(EdnsCode::Cookie), cookies) {
            (Some(EdnsOption::Unknown(_, data)), Some(cookies)) => {
                Some(cookies.judge(data, request.src().ip()))
            }
            _ => None,
        },
        dnssec_ok: e.flags().dnssec_ok,
        compact_ok: e.flags().z & COMPACT_OK != 0,
        nsid: e.option(EdnsCode::NSID).is_some(),
    });
    resolve::Query {
        op_code: request.metadata.op_code,
        question,
        edns,
        source: request.src().ip(),
    }
}

/// The response to `request`: planned, forwarded when the plan says so, counted, logged.
pub(super) async fn respond(state: &Meridian, request: &Request) -> Reply {
    let started = Instant::now();
    let table = state.table.load();
    let cookies = table.options.cookies.then_some(&state.cookies);
    // The question's key, when there is exactly one question.
    let name = match request.queries.queries() {
        [q] => Some(KeyBuf::of(q.name())),
        _ => None,
    };
    let plan = resolve::plan(&table, &query_of(request, &name, cookies), Mode::Query);
    let mut metadata = Metadata::response_from_request(&request.metadata);
    metadata.response_code = plan.rcode;
    metadata.authoritative = plan.authoritative;
    let qname = name.as_ref().map_or(&[][..], KeyBuf::as_bytes);
    let signed = super::signed::signatures(&plan, qname, &state.signatures);
    let (answers, authorities) = sections(&plan, &signed, request);
    let additionals = additional_section(&plan, &signed, request);
    let mut reply = Reply {
        metadata,
        answers,
        authorities,
        additionals,
        edns: plan.edns.map(|e| {
            let mut edns = Edns::new();
            edns.set_max_payload(e.payload);
            edns.set_dnssec_ok(e.dnssec_ok);
            if e.compact_ok {
                edns.flags_mut().z |= COMPACT_OK;
            }
            if let Some(ecs) = e.ecs {
                edns.options_mut()
                    .insert(EdnsOption::Subnet(ClientSubnet::new(
                        ecs.addr,
                        ecs.source_prefix,
                        ecs.scope_prefix,
                    )));
            }
            if let Some(cookie) = e.cookie {
                edns.options_mut()
                    .insert(EdnsOption::Unknown(10, cookie.to_vec()));
            }
            if let Some(nsid) = e.nsid.and_then(|n| NSIDPayload::new(n).ok()) {
                edns.options_mut().insert(EdnsOption::NSID(nsid));
            }
            edns
        }),
        too_big_for_udp: plan.truncated_on_udp(request.queries.as_bytes().len()),
        verdict: Verdict::Send,
        drop: plan.drop,
    };
    if plan.forward {
        forward(state, request, &mut reply).await;
    }
    let rcode = reply.metadata.response_code;
    super::count(state, &plan, rcode, request.src().ip());
    // Every UDP response with a question counts; one with several questions is an error,
    // whose bucket has no name.
    if request.protocol() == Protocol::Udp && !request.queries.queries().is_empty() {
        let qname = name.as_ref().map_or(&[][..], KeyBuf::as_bytes);
        reply.verdict = super::rate_limit(state, &table, request.src().ip(), &plan, rcode, qname);
    }
    if table.options.query_log {
        log_query(request, &plan, &reply, started);
    }
    reply
}

/// The answer and authority sections of `plan` as hickory's records, with the signatures
/// after the RRsets they cover. Records owned by the asked name take its spelling.
fn sections(
    plan: &Plan,
    signed: &Signatures,
    request: &Request,
) -> (SmallVec<[Record; 8]>, SmallVec<[Record; 2]>) {
    let asked = request
        .queries
        .queries()
        .first()
        .map(|q| q.original().name());
    let owned = |mut record: Record, ttl: u32, by_question: bool| {
        if let (true, Some(asked)) = (by_question, asked) {
            record.name = asked.clone();
        }
        record.ttl = ttl;
        record
    };
    let record = |rr: &Rr| owned(rr.record(), rr.ttl, rr.owner == Owner::Question);
    let mut answers: SmallVec<[Record; 8]> = SmallVec::new();
    if signed.answers.is_empty() {
        answers.extend(plan.answers.iter().map(record));
    } else {
        let mut rrs = plan.answers.iter();
        for (set, rrsig) in plan.rrsets.iter().zip(&signed.answers) {
            let mut ttl = 0;
            for rr in rrs.by_ref().take(set.len) {
                answers.push(record(rr));
                ttl = rr.ttl;
            }
            if let Some(rrsig) = rrsig {
                answers.push(owned(rrsig.rrsig.wire().record(), ttl, set.owner.is_none()));
            }
        }
        answers.extend(rrs.map(record));
    }
    let mut authorities: SmallVec<[Record; 2]> = SmallVec::new();
    if let Some(referral) = &plan.referral {
        let sets = [Some(referral.ns), referral.ds];
        authorities.extend(
            sets.iter()
                .flatten()
                .flat_map(|set| set.records.iter().map(|w| w.record())),
        );
        if let (Some(rrsig), Some(ds)) = (&signed.ds, referral.ds) {
            let ttl = ds.records.iter().next().map_or(0, |w| w.ttl());
            authorities.push(owned(rrsig.rrsig.wire().record(), ttl, false));
        }
    }
    authorities.extend(plan.soa.iter().map(|rr| rr.record()));
    if let (Some(soa), Some(rrsig)) = (&plan.soa, &signed.soa) {
        authorities.push(owned(rrsig.rrsig.wire().record(), soa.ttl, false));
    }
    if let (Some(denial), Some(signed)) = (&plan.denial, &signed.denial)
        && let Some(nsec) = &signed.nsec
    {
        let by_question = denial.owner.is_none();
        let ttl = nsec.ttl();
        authorities.push(owned(nsec.wire().record(), ttl, by_question));
        authorities.push(owned(signed.rrsig.wire().record(), ttl, by_question));
    }
    (answers, authorities)
}

/// The additional section's RRsets that fit (each with its RRSIG when signed), measured as
/// the fast path writes them: hickory compresses names, so what fits there fits here.
fn additional_section(plan: &Plan, signed: &Signatures, request: &Request) -> Vec<Record> {
    let limit = match request.protocol() {
        Protocol::Udp => plan.udp_limit(),
        _ => usize::from(u16::MAX),
    };
    let rrsig_len = |s: &Option<std::sync::Arc<crate::sign::Signed>>| {
        s.as_ref().map_or(0, |s| s.rrsig.wire().written_len(false))
    };
    let mut size = plan.wire_len(request.queries.as_bytes().len())
        + signed.answers.iter().map(rrsig_len).sum::<usize>()
        + rrsig_len(&signed.soa)
        + signed.denial.as_ref().map_or(0, |d| {
            d.rrsig.wire().written_len(false)
                + d.nsec.as_ref().map_or(0, |n| n.wire().written_len(false))
        });
    let mut out = Vec::new();
    let mut rrs = plan.additional.iter();
    for (i, set) in plan.additional_sets.iter().enumerate() {
        let records: Vec<&Rr> = rrs.by_ref().take(set.len).collect();
        let rrsig = signed.additional.get(i).and_then(Option::as_ref);
        size += records.iter().map(|rr| rr.written_len()).sum::<usize>()
            + rrsig.map_or(0, |s| s.rrsig.wire().written_len(false));
        if size > limit {
            break;
        }
        let ttl = records.last().map_or(0, |rr| rr.ttl);
        out.extend(records.iter().map(|rr| rr.record()));
        if let Some(rrsig) = rrsig {
            let mut record = rrsig.rrsig.wire().record();
            record.ttl = ttl;
            out.push(record);
        }
    }
    out
}

/// Replaces the REFUSED for a name outside our zones with the upstream's answer.
async fn forward(state: &Meridian, request: &Request, reply: &mut Reply) {
    let Some(query) = request.queries.queries().first() else {
        return;
    };
    let query = query.original();
    reply.metadata.recursion_available = true;
    let counters = &state.counters;
    match state.forwarder.resolve(query).await {
        Ok((message, source)) => {
            let counter = match source {
                Source::Cache => &counters.forward_cache_hits,
                Source::Upstream(_) => &counters.forwarded,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            reply.metadata.response_code = message.metadata.response_code;
            reply.answers.extend(message.answers);
            reply.authorities.extend(message.authorities);
            reply.additionals = message.additionals;
        }
        Err(e) => {
            counters.forward_failures.fetch_add(1, Ordering::Relaxed);
            warn!(name = %query.name(), error = %e, "every upstream failed");
            reply.metadata.response_code = ResponseCode::ServFail;
        }
    }
}

impl Reply {
    /// The response as hickory encodes it: the question as sent, then the records (none
    /// when `truncated`, which sets TC). A message with other than one question is
    /// answered without any: echoing ten questions would grow a reply past 512 bytes
    /// without EDNS, and there is no one question the answer is for.
    fn response<'q>(
        &'q self,
        request: &'q Request,
        truncated: bool,
    ) -> hickory_server::zone_handler::MessageResponse<
        'q,
        'q,
        impl Iterator<Item = &'q Record> + Send + 'q,
        impl Iterator<Item = &'q Record> + Send + 'q,
        impl Iterator<Item = &'q Record> + Send + 'q,
        impl Iterator<Item = &'q Record> + Send + 'q,
    > {
        let queries = match request.queries.len() {
            1 => &request.queries,
            _ => no_questions(),
        };
        let mut builder = MessageResponseBuilder::new(queries, None);
        if let Some(e) = &self.edns {
            builder.edns(e);
        }
        let mut metadata = self.metadata;
        let sections: [&[Record]; 3] = if truncated {
            metadata.truncation = true;
            [&[], &[], &[]]
        } else {
            [&self.answers, &self.authorities, &self.additionals]
        };
        builder.build(
            metadata,
            sections[0].iter(),
            sections[1].iter(),
            std::iter::empty(),
            sections[2].iter(),
        )
    }

    /// The encoded response, or nothing when the rate limit drops it. Over UDP, one that
    /// does not fit the client's buffer (or that the rate limit slips) goes out with TC=1
    /// and the question alone (no partial RRsets), as the fast path sends it.
    pub(super) fn encode(&self, request: &Request, protocol: Protocol) -> Option<Vec<u8>> {
        if self.drop {
            return None;
        }
        if protocol == Protocol::Udp {
            match self.verdict {
                Verdict::Drop => return None,
                Verdict::Slip => return Some(emit(self.response(request, true), &self.metadata)),
                Verdict::Send => {}
            }
        }
        let full = emit(self.response(request, false), &self.metadata);
        let limit = self
            .edns
            .as_ref()
            .map_or(usize::from(resolve::MIN_UDP_PAYLOAD), |e| {
                usize::from(e.max_payload())
            });
        if protocol == Protocol::Udp && (self.too_big_for_udp || full.len() > limit) {
            Some(emit(self.response(request, true), &self.metadata))
        } else {
            Some(full)
        }
    }
}

/// An empty question section.
fn no_questions() -> &'static Queries {
    static NONE: LazyLock<Queries> = LazyLock::new(|| {
        Queries::read(&mut BinDecoder::new(&[]), 0).expect("no questions read from nothing")
    });
    &NONE
}

/// Encodes a response; if hickory cannot, a bare SERVFAIL with the query's id.
fn emit<'a>(
    response: hickory_server::zone_handler::MessageResponse<
        '_,
        'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
    >,
    metadata: &Metadata,
) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(512);
    let mut encoder = BinEncoder::new(&mut bytes);
    if response.destructive_emit(&mut encoder).is_ok() {
        return bytes;
    }
    warn!("cannot encode a response; answering SERVFAIL");
    let mut header = [0u8; 12];
    header[..2].copy_from_slice(&metadata.id.to_be_bytes());
    header[2] = 0x80 | u8::from(metadata.recursion_desired);
    header[3] = u16::from(ResponseCode::ServFail) as u8;
    header.to_vec()
}

/// One line per query (`query-log: true`): only then is anything formatted.
fn log_query(request: &Request, plan: &Plan, reply: &Reply, started: Instant) {
    let name = request
        .queries
        .queries()
        .first()
        .map(|q| q.name().to_string());
    let answer: Vec<String> = reply.answers.iter().map(|r| r.data.to_string()).collect();
    info!(
        target: "meridian::query",
        client = %request.src(),
        protocol = %request.protocol(),
        name = name.as_deref().unwrap_or("-"),
        qtype = %plan.qtype.map_or("-".to_string(), |t| t.to_string()),
        rcode = %crate::model::rcode_name(reply.metadata.response_code),
        answer = %answer.join(","),
        latency_us = started.elapsed().as_micros() as u64,
        "query"
    );
}
