//! UDP through AF_XDP (`xdp:` in the server file): an XDP program on the interface hands
//! every UDP datagram to the listen port to an AF_XDP socket, one per receive queue, and
//! a thread per socket answers the common query on the spot through the fast path and
//! writes the answer into the same frame, headers and all. The rest of the path goes
//! by: no `recvmmsg`, no `sendmmsg`, no socket buffers (`bench/xdp.sh` measures what
//! that saves). Queries the fast path leaves to the general path are answered
//! through the listen address's UDP socket, as they would be without XDP.
//!
//! Taking queries before the kernel's stack also takes them before its firewall and
//! connection tracking: the server's own access lists, rate limit and cookies still
//! apply, `iptables`/`nftables` rules on the port do not.

mod bpf;
// Public for the fuzz target (`fuzz/fuzz_targets/frame.rs`).
pub mod frame;
mod ring;

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hickory_server::net::xfer::Protocol;
use tokio::sync::Semaphore;
use tracing::warn;

use crate::config::XdpConfig;
use crate::state::Meridian;

/// Frames read off the receive ring before the answers go out.
const BATCH: usize = 64;
/// How often a wait for queries wakes up to see whether the server is stopping.
const WAKE: Duration = Duration::from_millis(200);

/// The program on the interface and a socket per queue, made while the server still
/// runs as root (they need `CAP_NET_ADMIN` and `CAP_BPF`).
pub struct Xdp {
    program: bpf::Program,
    sockets: Vec<ring::Socket>,
    /// Largest frame the interface sends: its MTU and the Ethernet header.
    largest: usize,
    interface: Interface,
}

/// The interface the program is on. It is known by its index, which it keeps while it
/// lives, down or renamed; a name can pass to another interface.
#[derive(Clone)]
struct Interface {
    name: String,
    index: u32,
}

impl Interface {
    fn present(&self) -> bool {
        let mut name = [0 as libc::c_char; libc::IF_NAMESIZE];
        // SAFETY: a buffer of IF_NAMESIZE bytes, as if_indextoname(3) needs.
        !unsafe { libc::if_indextoname(self.index, name.as_mut_ptr()) }.is_null()
    }
}

/// Attaches to `config.interface` for UDP to `port`.
pub fn open(config: &XdpConfig, port: u16) -> io::Result<Xdp> {
    let name = &config.interface;
    let fail = |what: &str, e: io::Error| {
        io::Error::new(e.kind(), format!("xdp.interface {name}: {what}: {e}"))
    };
    let c_name = std::ffi::CString::new(name.as_str())
        .map_err(|e| fail("not a name", io::Error::other(e)))?;
    // SAFETY: a NUL-terminated string.
    let ifindex = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
    if ifindex == 0 {
        return Err(fail("no such interface", io::Error::last_os_error()));
    }
    let sys = std::path::Path::new("/sys/class/net").join(name);
    let queues = std::fs::read_dir(sys.join("queues"))
        .map_err(|e| fail("reading its queues", e))?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
        .count() as u32;
    let mtu: usize = std::fs::read_to_string(sys.join("mtu"))
        .map_err(|e| fail("reading its MTU", e))?
        .trim()
        .parse()
        .map_err(|e| fail("reading its MTU", io::Error::other(e)))?;
    let program = bpf::Program::attach(ifindex, port, queues.max(1)).map_err(|e| fail("XDP", e))?;
    let mut sockets = Vec::new();
    for queue in 0..queues.max(1) {
        let socket = ring::Socket::open(ifindex, queue).map_err(|e| fail("AF_XDP socket", e))?;
        program
            .insert(queue, socket.raw_fd())
            .map_err(|e| fail("AF_XDP socket map", e))?;
        sockets.push(socket);
    }
    Ok(Xdp {
        program,
        sockets,
        largest: (mtu + 14).min(ring::FRAME),
        interface: Interface {
            name: name.clone(),
            index: ifindex,
        },
    })
}

/// The threads answering off the rings; they stop, and then the program comes off the
/// interface, when this is dropped (fields drop in order).
pub struct Workers {
    _threads: super::udp::Workers,
    _program: bpf::Program,
}

/// Starts a thread per socket. `sockets` are the listen addresses' UDP sockets, through
/// which the general path answers. Must be called inside the tokio runtime.
pub fn start(
    xdp: Xdp,
    state: Arc<Meridian>,
    sockets: Vec<Arc<UdpSocket>>,
    general: Arc<Semaphore>,
) -> io::Result<Workers> {
    let runtime = tokio::runtime::Handle::current();
    let sockets = sockets
        .into_iter()
        .map(|s| Ok((s.local_addr()?, s)))
        .collect::<io::Result<Vec<_>>>()?;
    let mut threads = super::udp::Workers::new();
    for (queue, socket) in xdp.sockets.into_iter().enumerate() {
        let (state, runtime) = (state.clone(), runtime.clone());
        let (sockets, general, largest) = (sockets.clone(), general.clone(), xdp.largest);
        let interface = xdp.interface.clone();
        threads.spawn(format!("meridian-xdp-{queue}"), move |stop| {
            let answering = Answering {
                state: &state,
                runtime: &runtime,
                sockets: &sockets,
                general: &general,
                largest,
                interface: &interface,
                queue,
            };
            answering.serve(socket, stop);
        })?;
    }
    Ok(Workers {
        _threads: threads,
        _program: xdp.program,
    })
}

struct Answering<'a> {
    state: &'a Arc<Meridian>,
    runtime: &'a tokio::runtime::Handle,
    /// The listen addresses' sockets, by address.
    sockets: &'a [(SocketAddr, Arc<UdpSocket>)],
    general: &'a Arc<Semaphore>,
    largest: usize,
    interface: &'a Interface,
    queue: usize,
}

impl Answering<'_> {
    fn serve(&self, mut socket: ring::Socket, stop: &AtomicBool) {
        let mut reply = Vec::with_capacity(ring::FRAME);
        let mut batches: u32 = 0;
        while !stop.load(Ordering::Relaxed) {
            if !socket.wait(WAKE) {
                // A deleted interface takes the program and the sockets' binding with it,
                // and says nothing on the ring: seen when a wait finds nothing.
                if !self.interface.present() {
                    if self.queue == 0 {
                        warn!(
                            interface = %self.interface.name,
                            "xdp: the interface is gone; UDP is answered through the sockets \
                             from now on; restart Meridian to answer through AF_XDP again"
                        );
                    }
                    return;
                }
                continue;
            }
            // As the sockets' threads do: one batch in TIMED_EVERY is timed.
            batches = batches.wrapping_add(1);
            let arrived = batches
                .is_multiple_of(super::udp::TIMED_EVERY)
                .then(std::time::Instant::now);
            let mut answered = 0;
            let table = self.state.table.load();
            for _ in 0..BATCH {
                let Some((addr, len)) = socket.receive() else {
                    break;
                };
                self.state
                    .counters
                    .xdp_queries
                    .fetch_add(1, Ordering::Relaxed);
                let frame = socket.frame(addr);
                match self.answer(&table, frame, len, &mut reply) {
                    Some(out) => {
                        if socket.send(addr, out) {
                            answered += 1;
                        } else {
                            self.dropped();
                        }
                    }
                    None => socket.recycle(addr),
                }
            }
            socket.flush();
            if let Some(arrived) = arrived
                && answered > 0
            {
                self.state
                    .counters
                    .udp_latency
                    .record(arrived.elapsed(), answered);
            }
        }
    }

    /// Answers the query in `frame` in place, and returns the answer frame's length; or
    /// `None` when it goes elsewhere (to the general path) or nowhere.
    fn answer(
        &self,
        table: &crate::zone::Table,
        frame: &mut [u8],
        len: usize,
        reply: &mut Vec<u8>,
    ) -> Option<usize> {
        let Some(query) = frame.get(..len).and_then(frame::parse) else {
            self.dropped();
            return None;
        };
        let src = query.source;
        // As the socket path does: never answer port 0 or unspecified sources. And only
        // what a socket of ours would have received: the program takes the port's UDP to
        // any address, and a frame may reach the interface for another host.
        if src.port() == 0 || src.ip().is_unspecified() || !self.ours(query.destination) {
            self.dropped();
            return None;
        }
        let message = &frame[query.message.clone()];
        reply.clear();
        if !super::fast_path(self.state, table, message, src.ip(), reply) {
            self.general(message.to_vec(), src, query.destination);
            return None;
        }
        // An empty reply is one the rate limit dropped.
        if reply.is_empty() {
            return None;
        }
        if query.headers() + reply.len() > self.largest.min(frame.len()) {
            let short = super::udp::truncated(reply, &self.state.counters.udp_mtu_truncated)?;
            reply.clear();
            reply.extend_from_slice(&short);
        }
        frame[query.headers()..query.headers() + reply.len()].copy_from_slice(reply);
        Some(frame::answer(frame, &query, reply.len()))
    }

    /// The general path, answering through the socket of the address asked (`to`), or of
    /// the unspecified address that takes it.
    fn general(&self, raw: Vec<u8>, src: SocketAddr, to: SocketAddr) {
        let listening = |a: &SocketAddr| a.ip() == to.ip();
        let Some((_, socket)) = self
            .sockets
            .iter()
            .find(|(a, _)| listening(a))
            .or_else(|| {
                self.sockets
                    .iter()
                    .find(|(a, _)| a.is_ipv4() == to.is_ipv4())
            })
            .cloned()
        else {
            self.dropped();
            return;
        };
        let Ok(permit) = self.general.clone().try_acquire_owned() else {
            self.state
                .counters
                .udp_general_busy
                .fetch_add(1, Ordering::Relaxed);
            return;
        };
        let state = self.state.clone();
        self.runtime.spawn(async move {
            if let Some(reply) = super::general_path(&state, raw, src, Protocol::Udp).await {
                let _ = socket.send_to(&reply, src);
            }
            drop(permit);
        });
    }

    /// Whether a listen address takes datagrams to `to`.
    fn ours(&self, to: SocketAddr) -> bool {
        self.sockets.iter().any(|(a, _)| {
            a.port() == to.port()
                && a.is_ipv4() == to.is_ipv4()
                && (a.ip().is_unspecified() || a.ip() == to.ip())
        })
    }

    fn dropped(&self) {
        self.state
            .counters
            .xdp_dropped
            .fetch_add(1, Ordering::Relaxed);
    }
}
