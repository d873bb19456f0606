//! The DNS front end: sockets, and the handler that turns a query into a response from the
//! current zone table. All hickory-server glue lives here.
//!
//! TCP runs on hickory-server. UDP runs on our own threads (`udp`): the common query is
//! answered by the fast path (`fast`) and everything else by the same `Handler` as TCP.

mod fast;
pub mod udp;

use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_proto::rr::{DNSClass, Record, RecordType};
use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use ipnet::IpNet;
use smallvec::SmallVec;
use tracing::{info, warn};

use crate::forward::{self, Forwarder};
use crate::select::Client;
use crate::server::Meridian;

/// How long an idle TCP connection is kept open between queries.
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest UDP response we send, whatever the client offers (RFC 6891 6.2.5 lets us choose).
const MAX_UDP_PAYLOAD: u16 = 4096;

/// Answers queries from the current table of a running Meridian.
pub struct Handler {
    meridian: Arc<Meridian>,
}

/// The records of one response.
#[derive(Default)]
struct Reply {
    answers: SmallVec<[Record; 8]>,
    authorities: SmallVec<[Record; 2]>,
    additionals: Vec<Record>,
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let started = Instant::now();
        let mut metadata = Metadata::response_from_request(&request.metadata);
        let table = self.meridian.table.load();
        let mut reply = Reply::default();
        let ecs = if table.ecs {
            client_subnet(request)
        } else {
            None
        };
        let mut scope = 0;
        let mut qtype = None;

        match classify(request).and_then(|q| Ok((q, client(request, ecs)?))) {
            Err(rcode) => {
                metadata.response_code = rcode;
                table.outside.count(RecordType::Unknown(0), rcode);
            }
            Ok(((name, rtype), client)) => {
                qtype = Some(rtype);
                let res = table.resolve(name, rtype, &client);
                metadata.response_code = res.rcode;
                metadata.authoritative = res.authoritative;
                // Never more bits than the query's ECS gave (0 when it asked for none).
                let given = ecs.map_or(client.source_prefix, |e| e.source_prefix());
                scope = res.scope.unwrap_or(0).min(given);
                reply
                    .answers
                    .extend(res.answers.iter().map(|rr| with_ttl(rr.record, rr.ttl)));
                reply
                    .authorities
                    .extend(res.soa.map(|rr| with_ttl(rr.record, rr.ttl)));
                let outside = res.zone.is_none();
                res.zone
                    .map_or(&*table.outside, |z| &*z.queries)
                    .count(rtype, res.rcode);
                let forwarder = table
                    .forwarder
                    .as_ref()
                    .filter(|f| f.allows(request.src().ip()));
                if let (true, Some(fwd)) = (outside, forwarder) {
                    self.forward(fwd, request, &mut metadata, &mut reply).await;
                }
            }
        }

        // Echo EDNS with the client's buffer size, so that hickory truncates (TC=1) at the
        // size the client can take; without OPT it truncates at 512. ECS comes back with
        // the scope that decided the answer (0 when the answer does not depend on it).
        let edns = request.edns.as_ref().map(|query_edns| {
            let mut e = Edns::new();
            e.set_max_payload(query_edns.max_payload().clamp(512, MAX_UDP_PAYLOAD));
            if let Some(subnet) = ecs {
                e.options_mut().insert(EdnsOption::Subnet(ClientSubnet::new(
                    subnet.addr(),
                    subnet.source_prefix(),
                    scope,
                )));
            }
            e
        });
        if table.query_log {
            log_query(request, qtype, &metadata, &reply, started);
        }
        let mut builder = MessageResponseBuilder::from_message_request(request);
        if let Some(e) = &edns {
            builder.edns(e);
        }
        let response = builder.build(
            metadata,
            reply.answers.iter(),
            reply.authorities.iter(),
            std::iter::empty(),
            reply.additionals.iter(),
        );
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(e) => {
                warn!(client = %request.src(), error = %e, "failed to send a response");
                let mut metadata = Metadata::response_from_request(&request.metadata);
                metadata.response_code = ResponseCode::ServFail;
                ResponseInfo::from(hickory_proto::op::Header {
                    metadata,
                    counts: Default::default(),
                })
            }
        }
    }
}

impl Handler {
    /// Replaces a REFUSED for a name outside our zones with the upstream's answer.
    async fn forward(
        &self,
        fwd: &Forwarder,
        request: &Request,
        metadata: &mut Metadata,
        reply: &mut Reply,
    ) {
        let Ok(info) = request.request_info() else {
            return;
        };
        let query = info.query.original();
        metadata.recursion_available = true;
        let metrics = &self.meridian.metrics;
        match fwd.resolve(query).await {
            Ok((message, source)) => {
                let counter = match source {
                    forward::Source::Cache => &metrics.forward_cache_hits,
                    forward::Source::Upstream(_) => &metrics.forwarded,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                metadata.response_code = message.metadata.response_code;
                reply.answers.extend(message.answers);
                reply.authorities.extend(message.authorities);
                reply.additionals = message.additionals;
            }
            Err(e) => {
                metrics.forward_failures.fetch_add(1, Ordering::Relaxed);
                warn!(name = %query.name(), error = %e, "every upstream failed");
                metadata.response_code = ResponseCode::ServFail;
            }
        }
    }
}

/// One line per query (`query-log: true`): only then is anything formatted.
fn log_query(
    request: &Request,
    qtype: Option<RecordType>,
    metadata: &Metadata,
    reply: &Reply,
    started: Instant,
) {
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
        qtype = %qtype.map_or("-".to_string(), |t| t.to_string()),
        rcode = %crate::metrics::rcode_name(metadata.response_code),
        answer = %answer.join(","),
        latency_us = started.elapsed().as_micros() as u64,
        "query"
    );
}

/// The query's EDNS Client Subnet option, if it has one.
fn client_subnet(request: &Request) -> Option<&ClientSubnet> {
    match request.edns.as_ref()?.option(EdnsCode::Subnet)? {
        EdnsOption::Subnet(subnet) => Some(subnet),
        _ => None,
    }
}

/// The client to choose for: the ECS address when the query carries one with a non-zero
/// source prefix, else the packet source. A malformed ECS is FORMERR (RFC 7871 7.1.1):
/// a scope in a query, or address bits beyond the source prefix.
fn client(request: &Request, ecs: Option<&ClientSubnet>) -> Result<Client, ResponseCode> {
    let Some(subnet) = ecs else {
        return Ok(Client::from_source(request.src().ip()));
    };
    let prefix = subnet.source_prefix();
    let masked = IpNet::new(subnet.addr(), prefix).map(|n| n.network());
    if subnet.scope_prefix() != 0 || masked != Ok(subnet.addr()) {
        return Err(ResponseCode::FormErr);
    }
    if prefix == 0 {
        return Ok(Client::from_source(request.src().ip()));
    }
    Ok(Client {
        addr: subnet.addr(),
        source_prefix: prefix,
    })
}

/// The question to look up, or the rcode that answers the query without a lookup.
fn classify(
    request: &Request,
) -> Result<(&hickory_proto::rr::LowerName, RecordType), ResponseCode> {
    if request.metadata.op_code != OpCode::Query {
        return Err(ResponseCode::NotImp);
    }
    if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
        return Err(ResponseCode::BADVERS);
    }
    let info = request.request_info().map_err(|_| ResponseCode::FormErr)?;
    let query = info.query;
    if query.query_class() != DNSClass::IN && query.query_class() != DNSClass::ANY {
        return Err(ResponseCode::Refused);
    }
    match query.query_type() {
        RecordType::AXFR | RecordType::IXFR => Err(ResponseCode::Refused),
        RecordType::OPT => Err(ResponseCode::FormErr),
        qtype => Ok((query.name(), qtype)),
    }
}

fn with_ttl(record: &Record, ttl: u32) -> Record {
    let mut r = record.clone();
    r.ttl = ttl;
    r
}

/// One listen address: its UDP sockets (one per core, SO_REUSEPORT) and TCP listener, bound
/// to the same port.
#[derive(Debug)]
pub struct Bound {
    pub addr: SocketAddr,
    udp: Vec<UdpSocket>,
    tcp: TcpListener,
}

fn explain(proto: &str, a: SocketAddr, e: io::Error) -> io::Error {
    let hint = match e.kind() {
        io::ErrorKind::PermissionDenied if a.port() < 1024 => {
            " (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
        }
        io::ErrorKind::AddrInUse => " (another process is using it)",
        io::ErrorKind::AddrNotAvailable => " (no interface has this address)",
        _ => "",
    };
    io::Error::new(e.kind(), format!("cannot bind {proto} {a}: {e}{hint}"))
}

fn udp_socket(addr: SocketAddr) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Every socket of the group sets it, so that a foreign socket on the port still fails.
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    // Room for bursts; the kernel caps it at net.core.rmem_max.
    let _ = socket.set_recv_buffer_size(4 << 20);
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// UDP sockets per listen address: one per core this process may run on.
fn udp_sockets_per_address() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Binds UDP and TCP on `addr`. Port 0 picks a port that is free for both.
pub fn bind(addr: SocketAddr) -> io::Result<Bound> {
    // With port 0 the kernel picks the UDP port; TCP may find it taken, so try again.
    let attempts = if addr.port() == 0 { 20 } else { 1 };
    let mut last = None;
    for _ in 0..attempts {
        let first = udp_socket(addr).map_err(|e| explain("UDP", addr, e))?;
        let bound = first.local_addr()?;
        let tcp = match TcpListener::bind(bound) {
            Ok(tcp) => tcp,
            Err(e) => {
                last = Some(explain("TCP", bound, e));
                continue;
            }
        };
        tcp.set_nonblocking(true)?;
        let mut udp = vec![first];
        for _ in 1..udp_sockets_per_address() {
            udp.push(udp_socket(bound).map_err(|e| explain("UDP", bound, e))?);
        }
        return Ok(Bound {
            addr: bound,
            udp,
            tcp,
        });
    }
    Err(last.expect("at least one attempt"))
}

/// Starts answering on every bound address: TCP on a hickory server, UDP on our worker
/// threads. Must be called inside the runtime.
pub fn server(
    meridian: Arc<Meridian>,
    bound: Vec<Bound>,
) -> io::Result<(Server<Handler>, udp::Workers)> {
    let mut server = Server::new(Handler {
        meridian: meridian.clone(),
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
    let workers = udp::start(meridian, sockets)?;
    Ok((server, workers))
}
