//! The DNS front end: listeners, and the two answer paths over the one decision path
//! (`resolve::plan`).
//!
//! UDP runs on our own threads (`udp`): the common query is answered by the fast path
//! (`fast`), which encodes the plan straight to bytes, and everything else by the general
//! path (`handler`), which encodes it through hickory. TCP runs on hickory-server with the
//! general path. Both count each response here, once.

mod fast;
mod handler;
mod listen;
pub mod udp;

pub use handler::Handler;
pub use listen::{Bound, bind};

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hickory_proto::op::{MessageType, ResponseCode};
use hickory_server::Server;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::Request;

use crate::resolve::Plan;
use crate::state::Meridian;
use crate::zone::Table;

/// How long an idle TCP connection is kept open between queries.
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// Answers one UDP datagram on the fast path into `out`; false when the general path must
/// answer it instead.
pub fn fast_path(
    state: &Meridian,
    table: &Table,
    msg: &[u8],
    src: IpAddr,
    out: &mut Vec<u8>,
) -> bool {
    fast::answer(table, msg, src, out, |plan| count(state, plan, plan.rcode)).is_ok()
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
    let header = [msg[0], msg[1], msg[2], msg[3]];
    let request = match Request::from_bytes(msg, src, protocol) {
        Ok(r) => r,
        Err(_) => {
            if header[2] & 0x80 != 0 {
                return None;
            }
            // FORMERR: the id, QR, the opcode and RD as sent, no sections.
            let flags = 0x80 | (header[2] & 0x79);
            let rcode = u16::from(ResponseCode::FormErr) as u8;
            return Some(vec![
                header[0], header[1], flags, rcode, 0, 0, 0, 0, 0, 0, 0, 0,
            ]);
        }
    };
    if request.metadata.message_type == MessageType::Response {
        return None;
    }
    let reply = handler::respond(state, &request).await;
    Some(reply.encode(&request, protocol))
}

/// Counts one response: its query by zone, type and rcode, and the members it chose.
fn count(state: &Meridian, plan: &Plan, rcode: ResponseCode) {
    plan.zone
        .map_or(&state.counters.outside, |z| &*z.queries)
        .count(plan.qtype, rcode);
    if let Some(selection) = &plan.selection {
        for m in &selection.chosen {
            m.answered.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Starts answering on every bound address: TCP on a hickory server, UDP on our worker
/// threads. Must be called inside the runtime.
pub fn start(
    state: Arc<Meridian>,
    bound: Vec<Bound>,
) -> io::Result<(Server<Handler>, udp::Workers)> {
    let mut server = Server::new(Handler {
        state: state.clone(),
    });
    let mut sockets = Vec::new();
    for b in bound {
        server.register_listener(
            tokio::net::TcpListener::from_std(b.tcp)?,
            TCP_IDLE_TIMEOUT,
            32,
        );
        sockets.extend(b.udp);
    }
    let workers = udp::start(state, sockets)?;
    Ok((server, workers))
}
