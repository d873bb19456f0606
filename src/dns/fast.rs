//! The fast path: the common query (one question, at most an OPT record) parsed from the
//! wire, planned like any other, and encoded straight into a buffer; for UDP datagrams
//! and for the messages of a TCP connection alike.
//!
//! Parsing here is structural only; whether the query is valid and what it gets is the
//! plan's to say. Anything the parser does not take (other opcodes, several questions or
//! records, malformed messages or options), names to forward and the query log go to the
//! general path. Written by hand because it skips hickory-server's per-packet task,
//! channel and message model, which cost a quarter of the throughput.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::op::OpCode;
use hickory_proto::rr::{DNSClass, RecordType};

use super::signed::{self, Signatures};
use crate::cookie::Cookies;
use crate::model::name::KeyBuf;
use crate::resolve::{self, Ecs, EdnsQuery, Mode, Plan, Question};
use crate::rrl::Verdict;
use crate::sign::SignatureCache;
use crate::zone::Table;

/// The general path must answer this one.
#[derive(Debug)]
pub struct Slow;

/// What the response travels over: UDP responses that do not fit the client's buffer
/// are truncated (TC=1); a TCP response carries whole up to 65,535 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// What the fast path understood of a query.
struct Parsed<'q> {
    /// The asked name's key, read straight from the packet.
    name: KeyBuf,
    qtype: RecordType,
    qclass: DNSClass,
    question_end: usize,
    edns: Option<EdnsQuery>,
    /// The COOKIE option's data, for the server's cookies to judge.
    cookie: Option<&'q [u8]>,
}

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]))
}

// Inlined into its one caller: returned, the parsed query is copied out (some 30
// instructions a query).
#[inline(always)]
fn parse(msg: &[u8]) -> Result<Parsed<'_>, Slow> {
    if msg.len() < 12 {
        return Err(Slow);
    }
    // QR=0, OPCODE=QUERY; exactly one question, nothing in answer or authority.
    let counts = (
        u16_at(msg, 4),
        u16_at(msg, 6),
        u16_at(msg, 8),
        u16_at(msg, 10),
    );
    let (Some(1), Some(0), Some(0), Some(arcount)) = counts else {
        return Err(Slow);
    };
    if msg[2] & 0xf8 != 0 || arcount > 1 {
        return Err(Slow);
    }
    if !super::questions_are_plain(msg) {
        return Err(Slow);
    }
    let (name, name_end) = KeyBuf::read(msg, 12).ok_or(Slow)?;
    let (Some(qtype), Some(qclass)) = (u16_at(msg, name_end), u16_at(msg, name_end + 2)) else {
        return Err(Slow);
    };
    let question_end = name_end + 4;
    let mut parsed = Parsed {
        name,
        qtype: RecordType::from(qtype),
        qclass: DNSClass::from(qclass),
        question_end,
        edns: None,
        cookie: None,
    };
    if arcount == 0 {
        return (question_end == msg.len()).then_some(parsed).ok_or(Slow);
    }
    // The OPT record: root owner, type 41, then payload size, extended rcode, version,
    // flags and options.
    let opt = &msg[question_end..];
    if opt.len() < 11 || opt[0] != 0 || u16_at(opt, 1) != Some(41) {
        return Err(Slow);
    }
    let rdlen = u16_at(opt, 9).ok_or(Slow)? as usize;
    let options = opt.get(11..11 + rdlen).ok_or(Slow)?;
    if 11 + rdlen != opt.len() {
        return Err(Slow);
    }
    let mut edns = EdnsQuery {
        payload: u16_at(opt, 3).ok_or(Slow)?,
        version: opt[6],
        ecs: None,
        cookie: None,
        dnssec_ok: opt[7] & 0x80 != 0,
        compact_ok: opt[7] & 0x40 != 0,
        nsid: false,
    };
    let mut i = 0;
    while i < options.len() {
        let code = u16_at(options, i).ok_or(Slow)?;
        let len = u16_at(options, i + 2).ok_or(Slow)? as usize;
        let data = options.get(i + 4..i + 4 + len).ok_or(Slow)?;
        if code == 8 {
            if edns.ecs.is_some() {
                return Err(Slow);
            }
            edns.ecs = Some(parse_ecs(data)?);
        }
        if code == 10 {
            if parsed.cookie.is_some() {
                return Err(Slow);
            }
            parsed.cookie = Some(data);
        }
        // NSID asks with no data (RFC 5001 2.1).
        if code == 3 {
            edns.nsid = true;
        }
        i += 4 + len;
    }
    parsed.edns = Some(edns);
    Ok(parsed)
}

/// An ECS option of sound structure (RFC 7871 6): a known family, and as many address
/// bytes as the source prefix needs. Whether its values are valid is the plan's to say.
fn parse_ecs(data: &[u8]) -> Result<Ecs, Slow> {
    let family = u16_at(data, 0).ok_or(Slow)?;
    let (&source, &scope) = (data.get(2).ok_or(Slow)?, data.get(3).ok_or(Slow)?);
    let address = &data[4..];
    let max = match family {
        1 => 32,
        2 => 128,
        _ => return Err(Slow),
    };
    if source > max || address.len() != usize::from(source).div_ceil(8) {
        return Err(Slow);
    }
    let mut full = [0u8; 16];
    full[..address.len()].copy_from_slice(address);
    let addr = if family == 1 {
        IpAddr::V4(Ipv4Addr::new(full[0], full[1], full[2], full[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(full))
    };
    Ok(Ecs {
        addr,
        source_prefix: source,
        scope_prefix: scope,
    })
}

/// Answers `msg` from `src` into `out` (left empty when `judge` drops the response), after
/// showing the plan and the asked name to `judge`, which counts it and may limit it; or
/// says the general path must answer it.
#[allow(clippy::too_many_arguments)]
pub fn answer(
    table: &Table,
    cookies: &Cookies,
    signatures: &SignatureCache,
    msg: &[u8],
    src: IpAddr,
    transport: Transport,
    out: &mut Vec<u8>,
    judge: impl FnOnce(&Plan, &[u8]) -> Verdict,
) -> Result<(), Slow> {
    if table.options.query_log {
        return Err(Slow);
    }
    let mut parsed = parse(msg)?;
    if let (Some(edns), Some(data), true) =
        (parsed.edns.as_mut(), parsed.cookie, table.options.cookies)
    {
        edns.cookie = Some(cookies.judge(data, src));
    }
    let query = resolve::Query {
        op_code: OpCode::Query,
        question: Some(Question {
            name: parsed.name.as_bytes(),
            qtype: parsed.qtype,
            qclass: parsed.qclass,
        }),
        edns: parsed.edns,
        source: src,
    };
    resolve::with_plan(table, &query, Mode::Query, |plan| {
        if plan.forward {
            return Err(Slow);
        }
        let verdict = judge(plan, parsed.name.as_bytes());
        if plan.drop {
            out.clear();
            return Ok(());
        }
        let limit = match transport {
            Transport::Udp => plan.udp_limit(),
            Transport::Tcp => usize::from(u16::MAX),
        };
        let response = Response {
            msg,
            question_end: parsed.question_end,
            plan,
            limit,
        };
        match verdict {
            Verdict::Send if plan.dnssec_ok => {
                let signed = super::signed::signatures(plan, parsed.name.as_bytes(), signatures);
                response.encode(out, false, &signed)
            }
            Verdict::Send => response.encode(out, false, &signed::NONE),
            Verdict::Slip => response.encode(out, true, &signed::NONE),
            Verdict::Drop => out.clear(),
        }
        // Larger than a TCP message can be: the general path says what to do.
        if transport == Transport::Tcp && out.get(2).is_some_and(|f| f & 0x02 != 0) {
            return Err(Slow);
        }
        Ok(())
    })
}

/// A response to write: the query it answers and the plan.
struct Response<'a, 't> {
    msg: &'a [u8],
    question_end: usize,
    plan: &'a Plan<'t>,
    /// Larger than this, it goes out truncated.
    limit: usize,
}

impl Response<'_, '_> {
    /// Writes the response: the query's id, RD and CD; the plan's AA, rcode and records
    /// (with `signed`'s after the RRsets they cover); or, when `truncate` or larger than
    /// the limit, none of the records.
    fn encode(&self, out: &mut Vec<u8>, truncate: bool, signed: &Signatures) {
        let (msg, plan, question_end) = (self.msg, self.plan, self.question_end);
        let rcode = u16::from(plan.rcode);
        out.clear();
        out.extend_from_slice(&msg[..2]);
        let aa = if plan.authoritative { 0x04 } else { 0 };
        out.push(0x80 | aa | (msg[2] & 0x01));
        out.push((msg[3] & 0x10) | (rcode & 0x0f) as u8);
        let counts = [
            1,
            (plan.answers.len() + signed.answer_count()) as u16,
            (usize::from(plan.soa.is_some())
                + plan.referral.map_or(0, |r| r.record_count())
                + signed.authority_count()) as u16,
            u16::from(plan.edns.is_some()),
        ];
        for count in counts {
            out.extend_from_slice(&count.to_be_bytes());
        }
        // The question exactly as sent; records whose owner is the asked name point back to
        // it.
        out.extend_from_slice(&msg[12..question_end]);
        if signed.answers.is_empty() {
            for rr in &plan.answers {
                rr.write(out, Some(12));
            }
        } else {
            let mut rrs = plan.answers.iter();
            for (set, rrsig) in plan.rrsets.iter().zip(&signed.answers) {
                let mut ttl = 0;
                for rr in rrs.by_ref().take(set.len) {
                    rr.write(out, Some(12));
                    ttl = rr.ttl;
                }
                if let Some(rrsig) = rrsig {
                    let pointer = set.owner.is_none().then_some(12);
                    rrsig.rrsig.wire().write(out, ttl, pointer);
                }
            }
            // Every answer belongs to a set; were one left, it would still go out.
            for rr in rrs {
                rr.write(out, Some(12));
            }
        }
        if let Some(referral) = &plan.referral {
            for record in referral.ns.records.iter() {
                record.write(out, record.ttl(), None);
            }
            if let Some(ds) = referral.ds {
                for record in ds.records.iter() {
                    record.write(out, record.ttl(), None);
                }
                if let (Some(rrsig), Some(first)) = (&signed.ds, ds.records.iter().next()) {
                    rrsig.rrsig.wire().write(out, first.ttl(), None);
                }
            }
        }
        if let Some(soa) = &plan.soa {
            soa.write(out, None);
            if let Some(rrsig) = &signed.soa {
                rrsig.rrsig.wire().write(out, soa.ttl, None);
            }
        }
        if let (Some(denial), Some(signed)) = (&plan.denial, &signed.denial)
            && let Some(nsec) = &signed.nsec
        {
            let pointer = denial.owner.is_none().then_some(12);
            let nsec = nsec.wire();
            nsec.write(out, nsec.ttl(), pointer);
            signed.rrsig.wire().write(out, nsec.ttl(), pointer);
        }
        // What is written so far and the OPT record make the response's size: measured
        // here rather than summed first. Too big for the client's buffer: TC=1 and the
        // question alone.
        if truncate || out.len() + plan.opt_len() > self.limit {
            out.truncate(question_end);
            out[2] |= 0x02;
            out[6..10].fill(0);
        } else {
            let extra = self.write_additional(out, signed);
            out[10..12].copy_from_slice(&(extra + u16::from(plan.edns.is_some())).to_be_bytes());
        }
        self.write_opt(out, rcode);
    }

    /// Appends the additional section's RRsets (each with its RRSIG when signed) while
    /// they fit beside the OPT record: one that does not is left out with those after it.
    /// Returns how many records went in.
    fn write_additional(&self, out: &mut Vec<u8>, signed: &Signatures) -> u16 {
        let plan = self.plan;
        let mut written = 0u16;
        let mut rrs = plan.additional.iter();
        for (i, set) in plan.additional_sets.iter().enumerate() {
            let mark = out.len();
            let mut ttl = 0;
            for rr in rrs.by_ref().take(set.len) {
                rr.write(out, None);
                ttl = rr.ttl;
            }
            let rrsig = signed.additional.get(i).and_then(Option::as_ref);
            if let Some(rrsig) = rrsig {
                rrsig.rrsig.wire().write(out, ttl, None);
            }
            if out.len() + plan.opt_len() > self.limit {
                out.truncate(mark);
                break;
            }
            written += (set.len + usize::from(rrsig.is_some())) as u16;
        }
        written
    }

    fn write_opt(&self, out: &mut Vec<u8>, rcode: u16) {
        let plan = self.plan;
        if let Some(edns) = plan.edns {
            out.extend_from_slice(&[0, 0, 41]);
            out.extend_from_slice(&edns.payload.to_be_bytes());
            // Extended rcode (its upper 8 bits), version 0, then the flags: DO and CO echoed.
            let flags =
                if edns.dnssec_ok { 0x80 } else { 0 } | if edns.compact_ok { 0x40 } else { 0 };
            out.extend_from_slice(&[(rcode >> 4) as u8, 0, flags, 0]);
            let ecs_len = edns.ecs.map_or(0, |e| 8 + e.address_len());
            let cookie_len = edns.cookie.map_or(0, |c| 4 + c.len());
            let nsid_len = edns.nsid.map_or(0, |n| 4 + n.len());
            out.extend_from_slice(&((ecs_len + cookie_len + nsid_len) as u16).to_be_bytes());
            if let Some(ecs) = edns.ecs {
                out.extend_from_slice(&8u16.to_be_bytes());
                out.extend_from_slice(&(4 + ecs.address_len() as u16).to_be_bytes());
                let (family, octets) = match ecs.addr {
                    IpAddr::V4(a) => {
                        let mut octets = [0u8; 16];
                        octets[..4].copy_from_slice(&a.octets());
                        (1u16, octets)
                    }
                    IpAddr::V6(a) => (2u16, a.octets()),
                };
                out.extend_from_slice(&family.to_be_bytes());
                out.extend_from_slice(&[ecs.source_prefix, ecs.scope_prefix]);
                out.extend_from_slice(&octets[..ecs.address_len()]);
            }
            if let Some(cookie) = edns.cookie {
                out.extend_from_slice(&10u16.to_be_bytes());
                out.extend_from_slice(&(cookie.len() as u16).to_be_bytes());
                out.extend_from_slice(&cookie);
            }
            if let Some(nsid) = edns.nsid {
                out.extend_from_slice(&3u16.to_be_bytes());
                out.extend_from_slice(&(nsid.len() as u16).to_be_bytes());
                out.extend_from_slice(nsid);
            }
        }
    }
}
