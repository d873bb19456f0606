//! UDP: one blocking thread per socket (SO_REUSEPORT spreads clients over them), each
//! answering the common query on the spot through the fast path and handing anything
//! else to the general path on the tokio runtime.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use hickory_proto::op::Message;
use hickory_server::net::xfer::Protocol;
use tokio::sync::Semaphore;
use tracing::warn;

use crate::model::LogLimit;
use crate::state::Meridian;

/// UDP queries the general path works on at once, from every worker. Most are done at
/// once; a forwarded one waits for its upstream (up to the forward timeout, with a socket
/// of its own). Past this a query is dropped, as the kernel drops what a socket buffer
/// cannot hold, rather than queued without bound: 1024 is some 2,000 forwarded queries a
/// second with an upstream answering in half a second.
pub const GENERAL_IN_FLIGHT: usize = 1024;

static BUSY_LOG: LogLimit = LogLimit::new(Duration::from_secs(10));
static MTU_LOG: LogLimit = LogLimit::new(Duration::from_secs(10));

/// How often a blocked receive wakes up to see whether the server is stopping.
const WAKE: Duration = Duration::from_millis(200);

/// The UDP worker threads; they end when this is dropped. The XDP threads are held the
/// same way, so both stop alike.
pub struct Workers {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Workers {
    pub(super) fn new() -> Workers {
        Workers {
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
        }
    }

    /// Starts a thread that works until the flag it is given is set.
    pub(super) fn spawn(
        &mut self,
        name: String,
        work: impl FnOnce(&AtomicBool) + Send + 'static,
    ) -> io::Result<()> {
        let stop = self.stop.clone();
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || work(&stop))?;
        self.threads.push(thread);
        Ok(())
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Starts one worker per socket; `general` bounds the queries at work on the general
/// path (`GENERAL_IN_FLIGHT`). Must be called inside the tokio runtime (the general path
/// runs there).
pub fn start(
    state: Arc<Meridian>,
    sockets: Vec<UdpSocket>,
    general: Arc<Semaphore>,
) -> io::Result<Workers> {
    let runtime = tokio::runtime::Handle::current();
    let mut workers = Workers::new();
    for (i, socket) in sockets.into_iter().enumerate() {
        socket.set_nonblocking(false)?;
        socket.set_read_timeout(Some(WAKE))?;
        let socket = Arc::new(socket);
        let (state, runtime, general) = (state.clone(), runtime.clone(), general.clone());
        workers.spawn(format!("meridian-udp-{i}"), move |stop| {
            serve(&socket, &state, &runtime, &general, stop)
        })?;
    }
    Ok(workers)
}

/// Datagrams read or written per system call: the kernel's per-call cost, most of the
/// CPU time at high rates, is spread over a batch.
const BATCH: usize = 32;
/// The fast path's answers are timed for `meridian_query_duration_seconds` in one receive
/// batch of this many.
pub(super) const TIMED_EVERY: u32 = 16;

fn serve(
    socket: &Arc<UdpSocket>,
    state: &Arc<Meridian>,
    runtime: &tokio::runtime::Handle,
    general: &Arc<Semaphore>,
    stop: &AtomicBool,
) {
    let mut batch = Batch::new();
    let mut replies: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::with_capacity(1232)).collect();
    let mut to: Vec<usize> = Vec::with_capacity(BATCH);
    let mut batches: u32 = 0;
    while !stop.load(Ordering::Relaxed) {
        let received = match batch.receive(socket) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(e) => {
                warn!("UDP receive: {e}");
                continue;
            }
        };
        // One batch in TIMED_EVERY is timed: two clock reads per batch cost about 5 % of
        // the user-space instructions of a query when batches hold one query each.
        batches = batches.wrapping_add(1);
        let arrived = batches
            .is_multiple_of(TIMED_EVERY)
            .then(std::time::Instant::now);
        let table = state.table.load();
        to.clear();
        for i in 0..received {
            let Some(src) = batch.peer(i) else { continue };
            // As hickory-server does: never answer port 0 or unspecified sources.
            if src.port() == 0 || src.ip().is_unspecified() {
                continue;
            }
            let query = batch.datagram(i);
            if super::fast_path(state, &table, query, src.ip(), &mut replies[to.len()]) {
                // An empty reply is one the rate limit dropped.
                if !replies[to.len()].is_empty() {
                    to.push(i);
                }
            } else {
                let Ok(permit) = general.clone().try_acquire_owned() else {
                    state
                        .counters
                        .udp_general_busy
                        .fetch_add(1, Ordering::Relaxed);
                    if let Some(held) = BUSY_LOG.allow() {
                        warn!(
                            in_flight = GENERAL_IN_FLIGHT,
                            similar_since_last = held,
                            "general path busy: dropping UDP queries"
                        );
                    }
                    continue;
                };
                let raw = query.to_vec();
                let (socket, state) = (socket.clone(), state.clone());
                runtime.spawn(async move {
                    if let Some(reply) = super::general_path(&state, raw, src, Protocol::Udp).await
                        && let Err(e) = socket.send_to(&reply, src)
                        && let Some(short) = too_big(&e, &reply, &state.counters.udp_mtu_truncated)
                    {
                        let _ = socket.send_to(&short, src);
                    }
                    drop(permit);
                });
            }
        }
        batch.send(socket, &mut replies, &to, &state.counters.udp_mtu_truncated);
        if let Some(arrived) = arrived
            && !to.is_empty()
        {
            state
                .counters
                .udp_latency
                .record(arrived.elapsed(), to.len() as u64);
        }
    }
}

/// Buffers and peer addresses for `recvmmsg`/`sendmmsg`.
struct Batch {
    buffers: Vec<[u8; 4096]>,
    lengths: [usize; BATCH],
    peers: [libc::sockaddr_storage; BATCH],
    peer_lengths: [libc::socklen_t; BATCH],
}

impl Batch {
    fn new() -> Self {
        Batch {
            buffers: vec![[0u8; 4096]; BATCH],
            lengths: [0; BATCH],
            // SAFETY: sockaddr_storage is plain data; all zeroes is a valid value.
            peers: unsafe { std::mem::zeroed() },
            peer_lengths: [0; BATCH],
        }
    }

    /// Waits for at least one datagram and takes up to BATCH that are ready.
    fn receive(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        // SAFETY: plain C structs; all zeroes is valid (null pointers, zero lengths).
        let mut iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        let mut headers: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for i in 0..BATCH {
            iov[i].iov_base = self.buffers[i].as_mut_ptr().cast();
            iov[i].iov_len = self.buffers[i].len();
            let h = &mut headers[i].msg_hdr;
            h.msg_name = (&mut self.peers[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut iov[i];
            h.msg_iovlen = 1;
        }
        // SAFETY: every header points at buffers and addresses that live through the
        // call; the kernel writes at most the lengths given.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                headers.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        for (i, h) in headers.iter().take(n).enumerate() {
            self.lengths[i] = h.msg_len as usize;
            self.peer_lengths[i] = h.msg_hdr.msg_namelen;
        }
        Ok(n)
    }

    fn datagram(&self, i: usize) -> &[u8] {
        &self.buffers[i][..self.lengths[i]]
    }

    fn peer(&self, i: usize) -> Option<SocketAddr> {
        let storage = &self.peers[i];
        match i32::from(storage.ss_family) {
            libc::AF_INET => {
                // SAFETY: the kernel wrote a sockaddr_in for AF_INET.
                let sin = unsafe {
                    &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>()
                };
                let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                Some(SocketAddr::from((ip, u16::from_be(sin.sin_port))))
            }
            libc::AF_INET6 => {
                // SAFETY: the kernel wrote a sockaddr_in6 for AF_INET6.
                let sin6 = unsafe {
                    &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
                };
                let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                    ip,
                    u16::from_be(sin6.sin6_port),
                    sin6.sin6_flowinfo,
                    sin6.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }

    /// Sends `replies[j]` to the peer of datagram `to[j]`, for every j, in as few calls as
    /// the kernel allows. A reply too big for the interface goes out truncated; any other
    /// the kernel refuses (an unreachable peer, a full buffer) is dropped, as a lost
    /// datagram would be.
    fn send(
        &mut self,
        socket: &UdpSocket,
        replies: &mut [Vec<u8>],
        to: &[usize],
        truncations: &AtomicU64,
    ) {
        if to.is_empty() {
            return;
        }
        // SAFETY: plain C structs; all zeroes is valid.
        let mut iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        let mut headers: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for (j, &i) in to.iter().enumerate() {
            iov[j].iov_base = replies[j].as_ptr() as *mut libc::c_void;
            iov[j].iov_len = replies[j].len();
            let h = &mut headers[j].msg_hdr;
            h.msg_name = (&mut self.peers[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = self.peer_lengths[i];
            h.msg_iov = &mut iov[j];
            h.msg_iovlen = 1;
        }
        let mut sent = 0;
        while sent < to.len() {
            // SAFETY: the headers point at replies and addresses that live through the
            // call; the kernel only reads them.
            let n = unsafe {
                libc::sendmmsg(
                    socket.as_raw_fd(),
                    headers[sent..].as_mut_ptr(),
                    (to.len() - sent) as libc::c_uint,
                    0,
                )
            };
            if n > 0 {
                sent += n as usize;
                continue;
            }
            let e = io::Error::last_os_error();
            let reply = &mut replies[sent];
            if let Some(short) = too_big(&e, reply, truncations) {
                // Shorter, so it fits where the reply was and the header still points at it.
                reply.clear();
                reply.extend_from_slice(&short);
                iov[sent].iov_len = reply.len();
            } else {
                sent += 1;
            }
        }
    }
}

/// When sending `reply` failed for being larger than the interface's MTU (the sockets
/// never fragment: `listen.rs`), the reply to send instead: its question and OPT record
/// alone, with TC=1, so that the client asks again over TCP (RFC 9715, section 3.1, R3).
/// Counted, and logged once per 10 s: it means `edns-udp-size` is above the link's MTU.
/// Through hickory: this is rare, and the reply may come from either path.
fn too_big(e: &io::Error, reply: &[u8], truncations: &AtomicU64) -> Option<Vec<u8>> {
    if e.raw_os_error() != Some(libc::EMSGSIZE) {
        return None;
    }
    truncated(reply, truncations)
}

/// `reply` cut to its question and OPT record, with TC=1; counted and logged as above.
pub(super) fn truncated(reply: &[u8], truncations: &AtomicU64) -> Option<Vec<u8>> {
    let mut m = Message::from_vec(reply).ok()?;
    m.metadata.truncation = true;
    m.answers.clear();
    m.authorities.clear();
    m.additionals.clear();
    m.signature = None;
    let short = m.to_vec().ok().filter(|s| s.len() < reply.len())?;
    truncations.fetch_add(1, Ordering::Relaxed);
    if let Some(held) = MTU_LOG.allow() {
        warn!(
            bytes = reply.len(),
            similar_since_last = held,
            "UDP response larger than the interface's MTU: sent truncated (TC=1); lower edns-udp-size to the MTU less 48 bytes"
        );
    }
    Some(short)
}
