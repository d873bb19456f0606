//! Backends for health checks, started by the tests on 127.x: TCP listeners, and HTTP(S)
//! servers whose status the test switches (a stand-in for Vault's /v1/sys/health).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;
use tokio::task::AbortHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{self, pki_types};

/// One runtime for every backend of the test binary.
pub(super) fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
}

pub(super) fn bind(addr: SocketAddr) -> tokio::net::TcpListener {
    let std = std::net::TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    std.set_nonblocking(true).unwrap();
    let _guard = runtime().enter();
    tokio::net::TcpListener::from_std(std).unwrap()
}

/// Waits until nothing accepts on `addr` any more (bounded).
fn wait_closed(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("{addr} still accepts after stop");
}

/// A TCP listener that accepts and closes every connection.
pub struct TcpBackend {
    pub addr: SocketAddr,
    task: AbortHandle,
}

impl TcpBackend {
    pub fn start(addr: SocketAddr) -> Self {
        let listener = bind(addr);
        let addr = listener.local_addr().unwrap();
        let task = runtime().spawn(async move {
            loop {
                if let Ok((conn, _)) = listener.accept().await {
                    drop(conn);
                }
            }
        });
        TcpBackend {
            addr,
            task: task.abort_handle(),
        }
    }

    pub fn stop(self) {
        self.task.abort();
        wait_closed(self.addr);
    }
}

impl Drop for TcpBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An HTTP or HTTPS server answering every request with the current status.
pub struct HttpBackend {
    status: Arc<AtomicU16>,
    flapping: Arc<AtomicBool>,
    pub requests: Arc<AtomicUsize>,
    task: AbortHandle,
}

impl HttpBackend {
    pub fn start(addr: SocketAddr, status: u16, tls: Option<&TestTls>) -> Self {
        let listener = bind(addr);
        let status = Arc::new(AtomicU16::new(status));
        let flapping = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicUsize::new(0));
        let acceptor = tls.map(|t| TlsAcceptor::from(t.server.clone()));
        let (s, f, r) = (status.clone(), flapping.clone(), requests.clone());
        let task = runtime().spawn(async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    continue;
                };
                let n = r.fetch_add(1, Ordering::SeqCst);
                let code = if f.load(Ordering::SeqCst) && n % 2 == 1 {
                    503
                } else {
                    s.load(Ordering::SeqCst)
                };
                match &acceptor {
                    Some(acceptor) => {
                        let acceptor = acceptor.clone();
                        tokio::spawn(async move {
                            if let Ok(stream) = acceptor.accept(conn).await {
                                serve(stream, code).await;
                            }
                        });
                    }
                    None => {
                        tokio::spawn(serve(conn, code));
                    }
                }
            }
        });
        HttpBackend {
            status,
            flapping,
            requests,
            task: task.abort_handle(),
        }
    }

    pub fn set_status(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    /// Every other request answers 503.
    pub fn set_flapping(&self, on: bool) {
        self.flapping.store(on, Ordering::SeqCst);
    }
}

impl Drop for HttpBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(mut stream: S, code: u16) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let body = format!("{{\"initialized\":true,\"sealed\":false,\"code\":{code}}}");
    let reply = format!(
        "HTTP/1.1 {code} Status\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(reply.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// A CA made by the test, a leaf certificate for `host` signed by it, and a TLS server
/// configuration presenting the leaf.
pub struct TestTls {
    pub ca_pem: String,
    pub server: Arc<rustls::ServerConfig>,
    /// A client certificate signed by the same CA, and its key (PEM), for servers that
    /// require one (`requiring_client_cert`).
    pub client_cert_pem: String,
    pub client_key_pem: String,
}

impl TestTls {
    pub fn new(host: &str) -> Self {
        Self::build(host, false)
    }

    /// Like `new`, with a server that refuses clients without a certificate of the CA.
    pub fn requiring_client_cert(host: &str) -> Self {
        Self::build(host, true)
    }

    fn build(host: &str, client_auth: bool) -> Self {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "Meridian test CA");
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);

        let leaf_key = KeyPair::generate().unwrap();
        let mut leaf = CertificateParams::new(vec![host.to_string()]).unwrap();
        leaf.is_ca = IsCa::ExplicitNoCa;
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();

        let client_key = KeyPair::generate().unwrap();
        let mut client = CertificateParams::new(vec!["meridian.test".to_string()]).unwrap();
        client.is_ca = IsCa::ExplicitNoCa;
        let client_cert = client.signed_by(&client_key, &issuer).unwrap();

        let key = pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = if client_auth {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca_cert.der().clone()).unwrap();
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let server = builder
            .with_single_cert(vec![leaf_cert.der().clone()], key)
            .unwrap();
        TestTls {
            ca_pem: ca_cert.pem(),
            server: Arc::new(server),
            client_cert_pem: client_cert.pem(),
            client_key_pem: client_key.serialize_pem(),
        }
    }
}

/// A free port on `ip`, for servers that several addresses must share.
pub fn free_port(ip: IpAddr) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A stand-in upstream resolver on 127.x: answers every A query with `answer` (TTL 60)
/// and counts the queries it gets.
pub struct FakeResolver {
    pub addr: SocketAddr,
    pub queries: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl FakeResolver {
    pub fn start(ip: IpAddr, answer: std::net::Ipv4Addr) -> Self {
        Self::start_with(ip, answer, false)
    }

    /// One that also slips in records about names nobody asked for, in every section, as a
    /// poisoning upstream would: `victim.example.` NS and A 6.6.6.6.
    pub fn poisoned(ip: IpAddr, answer: std::net::Ipv4Addr) -> Self {
        Self::start_with(ip, answer, true)
    }

    fn start_with(ip: IpAddr, answer: std::net::Ipv4Addr, poison: bool) -> Self {
        use hickory_proto::op::{Message, MessageType};
        use hickory_proto::rr::{RData, Record};
        let socket = std::net::UdpSocket::bind((ip, 0)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let queries = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (q, s) = (queries.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !s.load(Ordering::SeqCst) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let Ok(query) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                q.fetch_add(1, Ordering::SeqCst);
                let mut reply = query.clone();
                reply.metadata.message_type = MessageType::Response;
                reply.metadata.recursion_available = true;
                let name = query.queries[0].name().clone();
                reply.add_answer(Record::from_rdata(name, 60, RData::A(answer.into())));
                if poison {
                    use hickory_proto::rr::Name;
                    use hickory_proto::rr::rdata::NS;
                    let victim = Name::from_ascii("victim.example.").unwrap();
                    let evil = RData::A(std::net::Ipv4Addr::new(6, 6, 6, 6).into());
                    reply.add_answer(Record::from_rdata(victim.clone(), 86400, evil.clone()));
                    let ns = RData::NS(NS(Name::from_ascii("ns.evil.example.").unwrap()));
                    reply.add_authority(Record::from_rdata(victim.clone(), 86400, ns));
                    reply.add_additional(Record::from_rdata(victim, 86400, evil));
                }
                let _ = socket.send_to(&reply.to_vec().unwrap(), from);
            }
        });
        FakeResolver {
            addr,
            queries,
            stop,
        }
    }
}

impl Drop for FakeResolver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}
