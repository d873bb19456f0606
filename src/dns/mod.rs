//! The DNS front end: listeners, and the two answer paths over the one decision path
//! (`resolve::plan`).
//!
//! UDP runs on our own threads (`udp`): the common query is answered by the fast path
//! (`fast`), which encodes the plan straight to bytes, and everything else by the general
//! path (`handler`), which encodes it through hickory. TCP (`tcp`) is ours too, with its
//! limits, and answers through the general path. Each response is counted here, once.

mod fast;
mod handler;
mod listen;
mod signed;
pub mod tcp;
pub mod udp;
pub mod xdp;

pub use listen::{Bound, bind};

use hickory_proto::op::{MessageType, ResponseCode};
use hickory_server::net::xfer::Protocol;
use hickory_server::server::Request;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::config::TcpConfig;
use crate::resolve::Plan;
use crate::rrl::Verdict;
use crate::select::history;
use crate::select::recipients::Resolver;
use crate::state::Meridian;
use crate::zone::Table;

/// Answers one UDP datagram on the fast path into `out` (left empty when the rate limit
/// drops it); false when the general path must answer it instead.
pub fn fast_path(
    state: &Meridian,
    table: &Table,
    msg: &[u8],
    src: IpAddr,
    out: &mut Vec<u8>,
) -> bool {
    fast_path_over(state, table, msg, src, fast::Transport::Udp, out)
}

/// The fast path over either transport. Over TCP there is no rate limit: a TCP client
/// has proven its address.
fn fast_path_over(
    state: &Meridian,
    table: &Table,
    msg: &[u8],
    src: IpAddr,
    transport: fast::Transport,
    out: &mut Vec<u8>,
) -> bool {
    fast::answer(
        table,
        &state.cookies,
        &state.signatures,
        msg,
        src,
        transport,
        out,
        |plan, qname| {
            count(state, plan, plan.rcode, src);
            match transport {
                fast::Transport::Udp => rate_limit(state, table, src, plan, plan.rcode, qname),
                fast::Transport::Tcp => Verdict::Send,
            }
        },
    )
    .is_ok()
}

/// The rate limiter's verdict on a UDP response, when rate limiting is on.
fn rate_limit(
    state: &Meridian,
    table: &Table,
    client: IpAddr,
    plan: &Plan,
    rcode: ResponseCode,
    qname: &[u8],
) -> Verdict {
    match (&table.options.rate_limit, state.limiter.get()) {
        // A valid server cookie proves the address is the client's own: not a reflection.
        _ if plan.cookie_valid => Verdict::Send,
        (Some(config), Some(limiter)) => {
            limiter.check(config, &state.counters, client, plan, rcode, qname)
        }
        _ => Verdict::Send,
    }
}

/// Answers one message on the general path, as hickory-server would frame it: messages
/// too short for a header and responses are dropped, unparsable ones get FORMERR.
pub async fn general_path(
    state: &Meridian,
    msg: Vec<u8>,
    src: SocketAddr,
    protocol: Protocol,
) -> Option<Vec<u8>> {
    if msg.len() < 12 {
        return None;
    }
    if msg[2] & 0x80 != 0 {
        return None;
    }
    let header = [msg[0], msg[1], msg[2], msg[3]];
    // FORMERR: the id, QR, the opcode and RD as sent, no sections; for messages that do
    // not parse, and for questions that cannot be echoed as sent.
    let formerr = || {
        let flags = 0x80 | (header[2] & 0x79);
        let rcode = u16::from(ResponseCode::FormErr) as u8;
        Some(vec![
            header[0], header[1], flags, rcode, 0, 0, 0, 0, 0, 0, 0, 0,
        ])
    };
    if !questions_are_plain(&msg) {
        return formerr();
    }
    // A query signed with TSIG (a secondary asking for the SOA of a zone it transfers):
    // checked with the zone's key, and the response signed with it.
    let now = u64::from(crate::sign::now());
    let mut signing = None;
    if u16::from_be_bytes([msg[10], msg[11]]) > 0
        && let Ok(message) = hickory_proto::op::Message::from_vec(&msg)
        && message.signature.is_some()
    {
        let table = state.table.load();
        let key = message.queries.first().and_then(|q| {
            let zone = table.zones().find(|z| z.origin.zone_of(q.name()))?;
            zone.transfer.as_ref()?.tsig.as_ref()
        });
        match crate::xfr::tsig::check(&msg, &message, key, now) {
            Ok(s) => signing = s,
            Err(rejected) => return Some(crate::xfr::reject(&msg, *rejected, now)),
        }
    }
    let request = match Request::from_bytes(msg, src, protocol) {
        Ok(r) => r,
        Err(_) => return formerr(),
    };
    if request.metadata.message_type == MessageType::Response {
        return None;
    }
    let started = std::time::Instant::now();
    let reply = handler::respond(state, &request).await;
    let mut encoded = reply.encode(&request, protocol);
    if let (Some(mut signing), Some(bytes)) = (signing, encoded.as_mut()) {
        signing.sign(bytes, None);
    }
    let latency = match protocol {
        Protocol::Tcp => &state.counters.tcp_latency,
        _ => &state.counters.udp_latency,
    };
    latency.record(started.elapsed(), 1);
    encoded
}

/// Whether every question's name is written out in labels. A compression pointer in a
/// question would be echoed as sent, pointing somewhere else in the response; such a
/// query is malformed (a question is the first name of its message, with nothing to point
/// back at). A message whose questions do not even fit passes here and fails to parse.
fn questions_are_plain(msg: &[u8]) -> bool {
    let count = u16::from_be_bytes([msg[4], msg[5]]);
    let mut i = 12;
    for _ in 0..count {
        loop {
            let Some(&len) = msg.get(i) else {
                return true;
            };
            if len & 0xc0 != 0 {
                return false;
            }
            i += 1 + usize::from(len);
            if len == 0 {
                break;
            }
        }
        i += 4;
    }
    true
}

/// Counts one response: its query by zone, type and rcode, and the members it chose (and
/// who got them, for drains).
fn count(state: &Meridian, plan: &Plan, rcode: ResponseCode, client: IpAddr) {
    plan.zone
        .map_or(&state.counters.outside, |z| &*z.queries)
        .count(plan.qtype, rcode);
    if let Some(selection) = &plan.selection {
        let recipients = state.recipients.get_or_init(Default::default);
        let resolver = Resolver::new(client);
        for m in &selection.chosen {
            m.counters.answered.fetch_add(1, Ordering::Relaxed);
            recipients.record(m.tag, resolver);
        }
        if history::sample_now() {
            record_decision(state, plan, selection, resolver);
        }
    }
    if plan.denied {
        let counter = if plan.drop {
            &state.counters.access_dropped
        } else {
            &state.counters.access_refused
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Writes one sampled answer to the decision history.
fn record_decision(state: &Meridian, plan: &Plan, s: &crate::resolve::Selection, client: Resolver) {
    let members = &s.pool.members;
    let up = members.iter().filter(|m| m.health.is_up()).count();
    let tag = |i: usize| s.chosen.get(i).map_or(0, |m| m.tag);
    let saturate = |n: usize| n.min(255) as u8;
    let decision = history::Decision {
        name: s.name.tag,
        chosen: [tag(0), tag(1)],
        chosen_count: saturate(s.chosen.len()),
        up: saturate(up),
        pool: saturate(members.len()),
        failing_open: up == 0 && !s.chosen.is_empty(),
        aaaa: plan.qtype == Some(hickory_proto::rr::RecordType::AAAA),
        site: s
            .location
            .and_then(|l| l.site)
            .map_or(0, |i| saturate(i + 1)),
    };
    state
        .history
        .get_or_init(Default::default)
        .record(client, &decision);
}

/// Starts answering on every bound address: TCP on our connection tasks, UDP on our
/// worker threads, and UDP off the AF_XDP rings when `xdp` is set up. Must be called
/// inside the runtime.
pub fn start(
    state: Arc<Meridian>,
    bound: Vec<Bound>,
    tcp: TcpConfig,
    xdp: Option<xdp::Xdp>,
) -> io::Result<(tcp::Tcp, udp::Workers, Option<xdp::Workers>)> {
    let mut sockets = Vec::new();
    let mut listeners = Vec::new();
    for b in bound {
        listeners.push(b.tcp);
        sockets.extend(b.udp);
    }
    let general = Arc::new(tokio::sync::Semaphore::new(udp::GENERAL_IN_FLIGHT));
    let xdp = match xdp {
        Some(xdp) => {
            let through = sockets
                .iter()
                .map(|s| s.try_clone().map(Arc::new))
                .collect::<io::Result<Vec<_>>>()?;
            Some(xdp::start(xdp, state.clone(), through, general.clone())?)
        }
        None => None,
    };
    let tcp = tcp::start(state.clone(), listeners, tcp)?;
    let workers = udp::start(state, sockets, general)?;
    Ok((tcp, workers, xdp))
}
