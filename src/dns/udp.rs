//! UDP: one blocking thread per socket (SO_REUSEPORT spreads clients over them), each
//! answering the common query on the spot through the fast path and handing anything
//! else to the general handler on the tokio runtime.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use hickory_proto::op::{MessageType, ResponseCode};
use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::BinEncoder;
use hickory_server::net::NetError;
use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponse;
use tracing::warn;

use super::{Handler, fast};
use crate::server::Meridian;

/// How often a blocked receive wakes up to see whether the server is stopping.
const WAKE: Duration = Duration::from_millis(200);

/// The UDP worker threads; they end when this is dropped.
pub struct Workers {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Starts one worker per socket. Must be called inside the tokio runtime (the general
/// handler runs there).
pub fn start(meridian: Arc<Meridian>, sockets: Vec<UdpSocket>) -> io::Result<Workers> {
    let stop = Arc::new(AtomicBool::new(false));
    let runtime = tokio::runtime::Handle::current();
    let handler = Arc::new(Handler {
        meridian: meridian.clone(),
    });
    let mut threads = Vec::new();
    for (i, socket) in sockets.into_iter().enumerate() {
        socket.set_nonblocking(false)?;
        socket.set_read_timeout(Some(WAKE))?;
        let socket = Arc::new(socket);
        let (meridian, handler, runtime, stop) = (
            meridian.clone(),
            handler.clone(),
            runtime.clone(),
            stop.clone(),
        );
        threads.push(
            std::thread::Builder::new()
                .name(format!("meridian-udp-{i}"))
                .spawn(move || serve(&socket, &meridian, &handler, &runtime, &stop))?,
        );
    }
    Ok(Workers { stop, threads })
}

fn serve(
    socket: &Arc<UdpSocket>,
    meridian: &Meridian,
    handler: &Arc<Handler>,
    runtime: &tokio::runtime::Handle,
    stop: &AtomicBool,
) {
    let mut buf = [0u8; 4096];
    let mut out = Vec::with_capacity(1232);
    while !stop.load(Ordering::Relaxed) {
        let (n, src) = match socket.recv_from(&mut buf) {
            Ok(x) => x,
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
        // As hickory-server does: never answer port 0, unspecified or broadcast sources.
        if src.port() == 0 || src.ip().is_unspecified() {
            continue;
        }
        let table = meridian.table.load();
        match fast::answer(&table, &buf[..n], src.ip(), &mut out) {
            Ok(()) => {
                let _ = socket.send_to(&out, src);
            }
            Err(fast::Slow) => {
                let raw = buf[..n].to_vec();
                let (socket, handler) = (socket.clone(), handler.clone());
                runtime.spawn(async move {
                    if let Some(reply) = general(&handler, raw, src).await {
                        let _ = socket.send_to(&reply, src);
                    }
                });
            }
        }
    }
}

/// Answers through the general handler, as hickory-server would have: messages too short
/// for a header are dropped, unparsable ones get FORMERR, responses are ignored.
async fn general(handler: &Handler, raw: Vec<u8>, src: SocketAddr) -> Option<Vec<u8>> {
    if raw.len() < 12 {
        return None;
    }
    let header = [raw[0], raw[1], raw[2], raw[3]];
    let request = match Request::from_bytes(raw, src, Protocol::Udp) {
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
    let capture = Capture::default();
    handler
        .handle_request::<_, TokioTime>(&request, capture.clone())
        .await;
    capture.0.lock().ok()?.take()
}

/// A response handler that keeps the encoded response instead of sending it.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Option<Vec<u8>>>>);

#[async_trait::async_trait]
impl ResponseHandler for Capture {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        // As hickory encodes for UDP: the client's buffer size, or 512 without EDNS; the
        // encoder truncates whole records and sets TC beyond it.
        let max = response.edns().map_or(512, |e| e.max_payload());
        let mut bytes = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut bytes);
        encoder.set_max_size(max);
        let info = response
            .destructive_emit(&mut encoder)
            .map_err(|e| NetError::from(e.to_string()))?;
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(bytes);
        }
        Ok(info)
    }
}
