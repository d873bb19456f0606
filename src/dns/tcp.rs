//! DNS over TCP (RFC 7766): our own accept loop and connections, so that every limit is
//! ours to set and count.
//!
//! - Open connections are capped in all (and at half the process's file limit) and per
//!   client (an IPv4 address, or an IPv6 /64). At the cap, a new connection evicts the one
//!   idle longest, so clients that hold connections open cannot shut others out.
//! - A connection is closed when idle for `idle-timeout`, when a query (once its first
//!   byte came) or a response takes longer than `io-timeout` to cross, and after
//!   `max-queries-per-connection` queries.
//! - Queries on one connection are read through a buffer. The common ones are answered
//!   in order on the connection's own task (the fast path), the rest concurrently, a few
//!   at a time, each through the general path; answers go back as they are ready, and
//!   those ready together go out in one write.
//! - When the process runs out of file descriptors, accepting backs off instead of
//!   spinning, and says so in a rate-limited log line.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_server::net::xfer::Protocol;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::task::{AbortHandle, JoinHandle};
use tracing::{info, warn};

use crate::config::TcpConfig;
use crate::model::LogLimit;
use crate::state::Meridian;

/// Queries of one connection being answered at once.
const IN_FLIGHT_PER_CONNECTION: usize = 16;
/// Longest pause between accept attempts while out of file descriptors.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// The TCP listeners and their connections; dropping this closes them all.
pub struct Tcp {
    accepting: Vec<JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl Drop for Tcp {
    fn drop(&mut self) {
        for task in &self.accepting {
            task.abort();
        }
        let conns = self.shared.conns.lock().expect("tcp lock");
        for conn in conns.open.values() {
            if let Some(task) = &conn.task {
                task.abort();
            }
        }
    }
}

struct Shared {
    state: Arc<Meridian>,
    limits: TcpConfig,
    conns: Mutex<Conns>,
    started: Instant,
    refused_log: LogLimit,
    accept_log: LogLimit,
}

#[derive(Default)]
struct Conns {
    next_id: u64,
    open: HashMap<u64, Conn>,
    per_client: HashMap<IpAddr, usize>,
}

struct Conn {
    client: IpAddr,
    /// Milliseconds since `Shared::started` of the last query read.
    last_active: Arc<AtomicU64>,
    close: Arc<Notify>,
    task: Option<AbortHandle>,
}

/// Why a connection ended, for the metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closed {
    /// The client closed it, or sent something that is not DNS over TCP.
    Client,
    Idle,
    IoTimeout,
    QueryLimit,
    /// Closed to make room for a new connection at the cap.
    Evicted,
}

/// The key connections are counted per client by: the address, or an IPv6 /64.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
    }
}

/// The soft limit on open files, after raising it to the hard limit.
fn file_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit only read and write the struct passed to them.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
        lim.rlim_cur
    }
}

/// Starts accepting on every listener. Must be called inside the runtime.
pub fn start(
    state: Arc<Meridian>,
    listeners: Vec<std::net::TcpListener>,
    config: TcpConfig,
) -> io::Result<Tcp> {
    let files = file_limit();
    let mut limits = config;
    // Half the descriptors for TCP clients; the rest stay for probes, the admin API, files.
    limits.max_connections = limits.max_connections.min((files / 2).max(1) as usize);
    info!(
        max_connections = limits.max_connections,
        per_client = limits.max_connections_per_client,
        open_file_limit = files,
        "TCP limits"
    );
    let shared = Arc::new(Shared {
        state,
        limits,
        conns: Mutex::default(),
        started: Instant::now(),
        refused_log: LogLimit::new(Duration::from_secs(10)),
        accept_log: LogLimit::new(Duration::from_secs(10)),
    });
    let mut accepting = Vec::new();
    for listener in listeners {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        accepting.push(tokio::spawn(accept(shared.clone(), listener)));
    }
    Ok(Tcp { accepting, shared })
}

fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

async fn accept(shared: Arc<Shared>, listener: tokio::net::TcpListener) {
    let mut backoff = Duration::from_millis(10);
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                backoff = Duration::from_millis(10);
                admit(&shared, stream, peer);
            }
            Err(e) if out_of_descriptors(&e) => {
                let counters = &shared.state.counters.tcp;
                counters
                    .refused_no_descriptors
                    .fetch_add(1, Ordering::Relaxed);
                if let Some(held) = shared.accept_log.allow() {
                    warn!(error = %e, pausing_ms = backoff.as_millis() as u64, similar_since_last = held, "TCP accept: out of file descriptors");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Err(e) => {
                if let Some(held) = shared.accept_log.allow() {
                    warn!(error = %e, similar_since_last = held, "TCP accept");
                }
            }
        }
    }
}

fn admit(shared: &Arc<Shared>, stream: TcpStream, peer: SocketAddr) {
    let counters = &shared.state.counters.tcp;
    let client = client_key(peer.ip());
    let mut conns = shared.conns.lock().expect("tcp lock");
    let from_client = conns.per_client.get(&client).copied().unwrap_or(0);
    if from_client >= shared.limits.max_connections_per_client {
        counters.refused_per_client.fetch_add(1, Ordering::Relaxed);
        if let Some(held) = shared.refused_log.allow() {
            warn!(%client, open = from_client, similar_since_last = held, "TCP connection refused: too many from this client");
        }
        return; // dropping the stream closes it
    }
    if conns.open.len() >= shared.limits.max_connections {
        let idlest = conns
            .open
            .values()
            .min_by_key(|c| c.last_active.load(Ordering::Relaxed));
        if let Some(c) = idlest {
            c.close.notify_one();
            // Counted as open until its task ends: it is already on its way out.
            c.last_active.store(u64::MAX, Ordering::Relaxed);
        }
    }
    let id = conns.next_id;
    conns.next_id += 1;
    let last_active = Arc::new(AtomicU64::new(shared.started.elapsed().as_millis() as u64));
    let close = Arc::new(Notify::new());
    let task = tokio::spawn(connection(
        shared.clone(),
        stream,
        peer,
        id,
        last_active.clone(),
        close.clone(),
    ));
    conns.open.insert(
        id,
        Conn {
            client,
            last_active,
            close,
            task: Some(task.abort_handle()),
        },
    );
    *conns.per_client.entry(client).or_default() += 1;
    counters.accepted.fetch_add(1, Ordering::Relaxed);
    counters.open.fetch_add(1, Ordering::Relaxed);
}

async fn connection(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    id: u64,
    last_active: Arc<AtomicU64>,
    close: Arc<Notify>,
) {
    let closed = serve(&shared, stream, peer, &last_active, &close).await;
    let counters = &shared.state.counters.tcp;
    let reason = match closed {
        Closed::Client => &counters.closed_by_client,
        Closed::Idle => &counters.closed_idle,
        Closed::IoTimeout => &counters.closed_io_timeout,
        Closed::QueryLimit => &counters.closed_query_limit,
        Closed::Evicted => &counters.closed_evicted,
    };
    reason.fetch_add(1, Ordering::Relaxed);
    counters.open.fetch_sub(1, Ordering::Relaxed);
    let mut conns = shared.conns.lock().expect("tcp lock");
    if let Some(conn) = conns.open.remove(&id) {
        let gone = match conns.per_client.get_mut(&conn.client) {
            Some(n) => {
                *n -= 1;
                *n == 0
            }
            None => false,
        };
        if gone {
            conns.per_client.remove(&conn.client);
        }
    }
}

async fn serve(
    shared: &Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    last_active: &AtomicU64,
    close: &Notify,
) -> Closed {
    let limits = shared.limits;
    let _ = stream.set_nodelay(true);
    let (reader, mut writer) = stream.into_split();
    // Buffered: one read takes in every query a client pipelined, instead of three reads
    // a query.
    let mut reader = BufReader::with_capacity(READ_BUFFER, reader);
    // Framed answers not yet written: written together once no whole query is waiting,
    // so that a pipelined burst is answered in one write.
    let mut pending: Vec<u8> = Vec::with_capacity(READ_BUFFER);
    let mut answer: Vec<u8> = Vec::with_capacity(512);
    let mut msg: Vec<u8> = Vec::with_capacity(512);
    // Answers of the general path come back from their tasks.
    let (replies, mut general) = mpsc::channel::<Vec<u8>>(IN_FLIGHT_PER_CONNECTION);
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT_PER_CONNECTION));
    let mut answered = 0;
    let closed = loop {
        if answered >= limits.max_queries_per_connection {
            break Closed::QueryLimit;
        }
        // Written once no whole query waits, or once the answers reach FLUSH_AT: answers
        // can be far larger than their queries, and a connection holds at most that much.
        if !pending.is_empty() && (pending.len() >= FLUSH_AT || !whole_message(reader.buffer())) {
            if let Err(closed) = write(&mut writer, &pending, limits.io_timeout).await {
                break closed;
            }
            pending.clear();
        }
        let first = tokio::select! {
            _ = close.notified() => break Closed::Evicted,
            Some(reply) = general.recv() => {
                frame(&mut pending, &reply);
                continue;
            }
            first = tokio::time::timeout(limits.idle_timeout, reader.read_u8()) => first,
        };
        let first = match first {
            Err(_) => break Closed::Idle,
            Ok(Err(_)) => break Closed::Client,
            Ok(Ok(b)) => b,
        };
        let rest = tokio::select! {
            _ = close.notified() => break Closed::Evicted,
            rest = tokio::time::timeout(limits.io_timeout, read_rest(&mut reader, first, &mut msg)) => rest,
        };
        match rest {
            Err(_) => break Closed::IoTimeout,
            Ok(Err(_)) => break Closed::Client,
            Ok(Ok(())) => {}
        }
        last_active.store(
            shared.started.elapsed().as_millis() as u64,
            Ordering::Relaxed,
        );
        answered += 1;
        // Zone transfers: every message of the answer, written as it comes.
        if crate::xfr::is_transfer_request(&msg) {
            let table = shared.state.table.load();
            let now = u64::from(crate::sign::now());
            if let Some(messages) = shared.state.transfers.respond(&msg, peer.ip(), &table, now) {
                drop(table);
                shared
                    .state
                    .counters
                    .transfers
                    .fetch_add(1, Ordering::Relaxed);
                let mut failed = None;
                for m in messages {
                    frame(&mut pending, &m);
                    if pending.len() >= FLUSH_AT {
                        if let Err(closed) = write(&mut writer, &pending, limits.io_timeout).await {
                            failed = Some(closed);
                            break;
                        }
                        pending.clear();
                    }
                }
                if let Some(closed) = failed {
                    break closed;
                }
                continue;
            }
        }
        // The common query is answered here, in order, without a task or hickory's
        // message model, straight into the pending answers.
        let started = std::time::Instant::now();
        let fast = super::fast_path_over(
            &shared.state,
            &shared.state.table.load(),
            &msg,
            peer.ip(),
            super::fast::Transport::Tcp,
            &mut answer,
        );
        if fast {
            shared
                .state
                .counters
                .tcp_latency
                .record(started.elapsed(), 1);
            // Empty: an access list drops this client's queries.
            if !answer.is_empty() {
                frame(&mut pending, &answer);
            }
            continue;
        }
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            break Closed::Client;
        };
        let (shared, replies, msg) = (shared.clone(), replies.clone(), msg.clone());
        tokio::spawn(async move {
            let reply = super::general_path(&shared.state, msg, peer, Protocol::Tcp).await;
            if let Some(reply) = reply {
                let _ = replies.send(reply).await;
            }
            drop(permit);
        });
    };
    drop(replies);
    if matches!(closed, Closed::Evicted | Closed::IoTimeout) {
        return closed;
    }
    // Let the answers still on their way go out (within the I/O timeout), then close.
    let finish = async {
        while let Some(reply) = general.recv().await {
            frame(&mut pending, &reply);
        }
        write(&mut writer, &pending, limits.io_timeout).await?;
        let _ = writer.shutdown().await;
        Ok(())
    };
    match tokio::time::timeout(limits.io_timeout, finish).await {
        Ok(Ok(())) => closed,
        Ok(Err(c)) => c,
        Err(_) => Closed::IoTimeout,
    }
}

/// Bytes read ahead per connection.
const READ_BUFFER: usize = 16 * 1024;
/// Answers held for one write, at most (past it they go out before the next query is
/// read): a burst of small queries for large answers must not grow a connection's memory.
const FLUSH_AT: usize = 64 * 1024;

/// Whether `buffered` starts with a whole length-prefixed message.
fn whole_message(buffered: &[u8]) -> bool {
    buffered.len() >= 2
        && buffered.len() >= 2 + usize::from(u16::from_be_bytes([buffered[0], buffered[1]]))
}

/// Appends `reply` with its length prefix (RFC 1035 4.2.2).
fn frame(pending: &mut Vec<u8>, reply: &[u8]) {
    pending.extend_from_slice(&(reply.len() as u16).to_be_bytes());
    pending.extend_from_slice(reply);
}

/// Writes `bytes` within `timeout`; how the connection ends if it cannot.
async fn write(
    writer: &mut tokio::net::tcp::OwnedWriteHalf,
    bytes: &[u8],
    timeout: Duration,
) -> Result<(), Closed> {
    match tokio::time::timeout(timeout, writer.write_all(bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(Closed::Client),
        Err(_) => Err(Closed::IoTimeout),
    }
}

/// Reads the rest of a length-prefixed message whose first length byte was `first` into
/// `msg` (reused from message to message).
async fn read_rest(
    reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    first: u8,
    msg: &mut Vec<u8>,
) -> io::Result<()> {
    let second = reader.read_u8().await?;
    let len = usize::from(u16::from_be_bytes([first, second]));
    if len == 0 {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "empty message"));
    }
    msg.resize(len, 0);
    reader.read_exact(msg).await?;
    Ok(())
}
