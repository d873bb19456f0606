//! NOTIFY (RFC 1996): telling secondaries that a zone changed, so that they ask for its
//! SOA and take the difference by IXFR at once instead of at their next refresh.
//!
//! Sent over UDP from the address Meridian answers on (secondaries accept NOTIFY from
//! their primary's address), signed when the zone has a TSIG key, and sent again after
//! 1, 2, 4 and 8 seconds until the secondary answers (RFC 1996 3.6). A newer change of
//! the zone replaces the one still being sent.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{DNSClass, Name, Record, RecordType};
use tokio::net::UdpSocket;
use tracing::{info, warn};

use crate::config::TsigKeyConfig;

/// Sends, waiting this long for an answer before the first retry; doubled each time.
const FIRST_WAIT: Duration = Duration::from_secs(1);
const TRIES: u32 = 5;

/// One zone change to tell one secondary of.
#[derive(Clone, Debug)]
pub struct Notice {
    pub zone: Name,
    pub soa: Record,
    pub target: SocketAddr,
    pub tsig: Option<TsigKeyConfig>,
    /// Where to send from: the address Meridian answers on, or any.
    pub source: IpAddr,
}

/// The NOTIFY message for `notice`, with id `id`.
fn message(notice: &Notice, id: u16) -> Option<Vec<u8>> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Notify);
    m.metadata.authoritative = true;
    let mut q = Query::query(notice.zone.clone(), RecordType::SOA);
    q.set_query_class(DNSClass::IN);
    m.add_query(q);
    m.add_answer(notice.soa.clone());
    if let Some(key) = &notice.tsig {
        m.finalize(&super::tsig::signer(key), crate::sign::now().into())
            .ok()?;
    }
    m.to_vec().ok()
}

/// Sends `notice` until the secondary answers or the tries run out. Returns whether it
/// answered.
pub async fn send(notice: Notice) -> bool {
    let bind = match (notice.source, notice.target) {
        (s, t) if s.is_ipv4() == t.is_ipv4() => SocketAddr::new(s, 0),
        (_, t) if t.is_ipv4() => SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0),
        _ => SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), 0),
    };
    let socket = match UdpSocket::bind(bind).await {
        Ok(s) => s,
        Err(e) => {
            warn!(zone = %notice.zone, target = %notice.target, "NOTIFY: cannot open a socket: {e}");
            return false;
        }
    };
    let mut wait = FIRST_WAIT;
    let mut buf = [0u8; 4096];
    for attempt in 1..=TRIES {
        let id = rand_id();
        let Some(bytes) = message(&notice, id) else {
            warn!(zone = %notice.zone, "NOTIFY: cannot encode the message");
            return false;
        };
        if let Err(e) = socket.send_to(&bytes, notice.target).await {
            warn!(zone = %notice.zone, target = %notice.target, attempt, "NOTIFY: {e}");
        } else {
            let deadline = tokio::time::Instant::now() + wait;
            loop {
                let Ok(Ok((n, from))) =
                    tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await
                else {
                    break;
                };
                if from == notice.target
                    && n >= 4
                    && buf[..2] == id.to_be_bytes()
                    && buf[2] & 0x80 != 0
                {
                    info!(
                        zone = %notice.zone,
                        target = %notice.target,
                        serial = super::serial_of(&notice.soa),
                        rcode = buf[3] & 0x0f,
                        "NOTIFY answered"
                    );
                    return true;
                }
            }
        }
        wait *= 2;
    }
    warn!(
        zone = %notice.zone,
        target = %notice.target,
        tries = TRIES,
        "NOTIFY not answered; the secondary takes the change at its next refresh"
    );
    false
}

fn rand_id() -> u16 {
    let mut b = [0u8; 2];
    let _ = getrandom::fill(&mut b);
    u16::from_be_bytes(b)
}
