//! The UDP fast path: the common query (one question, at most an OPT record with ECS)
//! parsed from the wire and answered from the compiled table straight into a buffer.
//!
//! Anything else (other opcodes, EDNS versions, malformed or unusual messages, names to
//! forward, the query log) returns `Slow`, and the general handler answers it. Both paths
//! read the same table and produce the same answers; this one just skips hickory-server's
//! per-packet task, channel and message model.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::op::Query;
use hickory_proto::rr::{DNSClass, LowerName, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use super::MAX_UDP_PAYLOAD;
use crate::select::Client;
use crate::zone::Table;

/// The general handler must answer this one.
#[derive(Debug)]
pub struct Slow;

/// What the fast path understood of a query.
struct Parsed<'q> {
    query: Query,
    question_end: usize,
    /// The client's UDP buffer size, when it sent an OPT record.
    edns_payload: Option<u16>,
    ecs: Option<Ecs<'q>>,
}

/// A valid EDNS Client Subnet option, as sent.
struct Ecs<'q> {
    family: u16,
    source: u8,
    address_bytes: &'q [u8],
    addr: IpAddr,
}

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]))
}

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
    let mut decoder = BinDecoder::new(msg);
    decoder.read_slice(12).map_err(|_| Slow)?;
    let query = Query::read(&mut decoder).map_err(|_| Slow)?;
    let question_end = decoder.index();
    if query.query_class() != DNSClass::IN
        || matches!(
            query.query_type(),
            RecordType::AXFR | RecordType::IXFR | RecordType::OPT
        )
    {
        return Err(Slow);
    }
    let mut parsed = Parsed {
        query,
        question_end,
        edns_payload: None,
        ecs: None,
    };
    if arcount == 0 {
        return (question_end == msg.len()).then_some(parsed).ok_or(Slow);
    }
    // The OPT record: root owner, type 41, version 0.
    let opt = &msg[question_end..];
    if opt.len() < 11 || opt[0] != 0 || u16_at(opt, 1) != Some(41) || opt[6] != 0 {
        return Err(Slow);
    }
    parsed.edns_payload = u16_at(opt, 3);
    let rdlen = u16_at(opt, 9).ok_or(Slow)? as usize;
    let options = opt.get(11..11 + rdlen).ok_or(Slow)?;
    if 11 + rdlen != opt.len() {
        return Err(Slow);
    }
    let mut i = 0;
    while i < options.len() {
        let code = u16_at(options, i).ok_or(Slow)?;
        let len = u16_at(options, i + 2).ok_or(Slow)? as usize;
        let data = options.get(i + 4..i + 4 + len).ok_or(Slow)?;
        if code == 8 {
            if parsed.ecs.is_some() {
                return Err(Slow);
            }
            parsed.ecs = Some(parse_ecs(data)?);
        }
        i += 4 + len;
    }
    Ok(parsed)
}

/// A well-formed ECS option (RFC 7871 6): anything else is for the general handler,
/// which answers FORMERR.
fn parse_ecs(data: &[u8]) -> Result<Ecs<'_>, Slow> {
    let family = u16_at(data, 0).ok_or(Slow)?;
    let (&source, &scope) = (data.get(2).ok_or(Slow)?, data.get(3).ok_or(Slow)?);
    let address_bytes = &data[4..];
    let max = match family {
        1 => 32,
        2 => 128,
        _ => return Err(Slow),
    };
    if scope != 0 || source > max || address_bytes.len() != usize::from(source).div_ceil(8) {
        return Err(Slow);
    }
    let mut full = [0u8; 16];
    full[..address_bytes.len()].copy_from_slice(address_bytes);
    let addr = if family == 1 {
        IpAddr::V4(Ipv4Addr::new(full[0], full[1], full[2], full[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(full))
    };
    // No bits set beyond the source prefix.
    let masked = ipnet::IpNet::new(addr, source).map_err(|_| Slow)?.network();
    if masked != addr {
        return Err(Slow);
    }
    Ok(Ecs {
        family,
        source,
        address_bytes,
        addr,
    })
}

/// Answers `msg` from `src` into `out`, or says it is for the general handler.
pub fn answer(table: &Table, msg: &[u8], src: IpAddr, out: &mut Vec<u8>) -> Result<(), Slow> {
    if table.query_log {
        return Err(Slow);
    }
    let parsed = parse(msg)?;
    let ecs = parsed.ecs.as_ref().filter(|_| table.ecs);
    let client = match ecs {
        Some(e) if e.source > 0 => Client {
            addr: e.addr,
            source_prefix: e.source,
        },
        _ => Client::from_source(src),
    };
    let qname = LowerName::new(parsed.query.name());
    let qtype = parsed.query.query_type();
    let res = table.resolve(&qname, qtype, &client);
    if res.zone.is_none() && table.forwarder.as_ref().is_some_and(|f| f.allows(src)) {
        return Err(Slow);
    }
    res.zone
        .map_or(&*table.outside, |z| &*z.queries)
        .count(qtype, res.rcode);
    let scope = ecs.map_or(0, |e| res.scope.unwrap_or(0).min(e.source));

    // Header: the query's id, RD and CD; our QR, AA and rcode.
    out.clear();
    out.extend_from_slice(&msg[..2]);
    let rd = msg[2] & 0x01;
    out.push(0x80 | if res.authoritative { 0x04 } else { 0 } | rd);
    out.push((msg[3] & 0x10) | (u16::from(res.rcode) & 0x0f) as u8);
    let counts = [
        1,
        res.answers.len() as u16,
        u16::from(res.soa.is_some()),
        u16::from(parsed.edns_payload.is_some()),
    ];
    for c in counts {
        out.extend_from_slice(&c.to_be_bytes());
    }
    // The question exactly as sent; answers whose owner is the asked name point back to it.
    out.extend_from_slice(&msg[12..parsed.question_end]);
    for rr in &res.answers {
        rr.wire.write(out, rr.ttl, rr.owner_is_qname.then_some(12));
    }
    if let Some(soa) = &res.soa {
        soa.wire.write(out, soa.ttl, None);
    }
    let limit = parsed
        .edns_payload
        .map_or(512, |p| p.clamp(512, MAX_UDP_PAYLOAD)) as usize;
    let opt_len = parsed
        .edns_payload
        .map_or(0, |_| 11 + ecs.map_or(0, |e| 8 + e.address_bytes.len()));
    if out.len() + opt_len > limit {
        // Too big for the client's buffer: TC=1 with the question alone; it retries over TCP.
        out.truncate(parsed.question_end);
        out[2] |= 0x02;
        out[6..10].fill(0);
    }
    if let Some(payload) = parsed.edns_payload {
        out.extend_from_slice(&[0, 0, 41]);
        out.extend_from_slice(&payload.clamp(512, MAX_UDP_PAYLOAD).to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, 0]);
        match ecs {
            Some(e) => {
                let len = 4 + e.address_bytes.len() as u16;
                out.extend_from_slice(&(4 + len).to_be_bytes());
                out.extend_from_slice(&8u16.to_be_bytes());
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(&e.family.to_be_bytes());
                out.extend_from_slice(&[e.source, scope]);
                out.extend_from_slice(e.address_bytes);
            }
            None => out.extend_from_slice(&[0, 0]),
        }
    }
    // Extended rcodes need the OPT's high bits: leave them to the general handler.
    if u16::from(res.rcode) > 0x0f {
        return Err(Slow);
    }
    Ok(())
}
