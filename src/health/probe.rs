//! One probe run: TCP connect, ICMP echo, or an HTTP(S) request, with a short reason.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use reqwest::redirect::Policy as RedirectPolicy;
use surge_ping::{ICMP, PingIdentifier, PingSequence, SurgeError};
use tokio::sync::{OnceCell, Semaphore};
use tracing::{info, warn};

use super::roles;
use crate::model::{CheckSpec, HttpCheck, NO_ROLE, ProbeKey};

/// The result of one probe run.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub ok: bool,
    /// Short and stable, for logs and the status API: `connected`, `refused`, `timeout`,
    /// `status 429`, `TLS: invalid peer certificate: UnknownIssuer` ...
    pub reason: String,
    pub latency: Duration,
    /// The role the response gave (checks with roles), else [`NO_ROLE`].
    pub role: u8,
    /// Whom the node names as the leader (checks with a leader query).
    pub leader: Option<String>,
}

/// What a successful or failed run found besides its reason.
#[derive(Default)]
struct Found {
    role: Option<u8>,
    leader: Option<String>,
}

/// Most bytes of an HTTP body read for `body-contains`.
const BODY_LIMIT: usize = 64 * 1024;
/// ICMP echoes in flight at once: replies share one socket's receive buffer.
const ICMP_IN_FLIGHT: usize = 64;

/// Shared resources of all probes: the ICMP sockets, created on first use.
pub struct Prober {
    icmp_v4: OnceCell<Result<surge_ping::Client, String>>,
    icmp_v6: OnceCell<Result<surge_ping::Client, String>>,
    icmp_slots: Semaphore,
    next_ident: AtomicU16,
}

/// Per-probe state kept between runs.
pub struct ProbeContext {
    http: Option<Result<(reqwest::Client, String), String>>,
    icmp_ident: u16,
    icmp_seq: u16,
}

/// reqwest is built without a default TLS provider (ring instead of aws-lc keeps the
/// build lean), so every HTTPS client needs this first; installing twice is harmless.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl Default for Prober {
    fn default() -> Self {
        install_tls_provider();
        Prober {
            icmp_v4: OnceCell::new(),
            icmp_v6: OnceCell::new(),
            icmp_slots: Semaphore::new(ICMP_IN_FLIGHT),
            next_ident: AtomicU16::new(std::process::id() as u16),
        }
    }
}

impl Prober {
    /// Opens the ICMP sockets now (while the process may still hold the privilege raw
    /// sockets need), rather than at the first ICMP check.
    pub async fn open_icmp_sockets(&self) {
        for (cell, v4) in [(&self.icmp_v4, true), (&self.icmp_v6, false)] {
            cell.get_or_init(|| async move { icmp_client(v4) }).await;
        }
    }

    pub fn context(&self) -> ProbeContext {
        ProbeContext {
            http: None,
            icmp_ident: self.next_ident.fetch_add(1, Ordering::Relaxed),
            icmp_seq: 0,
        }
    }

    pub async fn run(&self, key: &ProbeKey, cx: &mut ProbeContext) -> Outcome {
        let timeout = key.check.timing.timeout;
        let started = Instant::now();
        let mut found = Found::default();
        let result = match &key.check.spec {
            CheckSpec::None => Ok("no check".to_string()),
            CheckSpec::Tcp { port } => tcp(SocketAddr::new(key.address, *port), timeout).await,
            CheckSpec::Icmp => self.icmp(key.address, timeout, cx).await,
            CheckSpec::Http(h) => http(key.address, h, timeout, cx, &mut found).await,
        };
        let (ok, reason) = match result {
            Ok(reason) => (true, reason),
            Err(reason) => (false, reason),
        };
        Outcome {
            ok,
            reason,
            latency: started.elapsed(),
            role: found.role.unwrap_or(NO_ROLE),
            leader: found.leader,
        }
    }

    async fn icmp(
        &self,
        ip: IpAddr,
        timeout: Duration,
        cx: &mut ProbeContext,
    ) -> Result<String, String> {
        let cell = if ip.is_ipv4() {
            &self.icmp_v4
        } else {
            &self.icmp_v6
        };
        let client = cell
            .get_or_init(|| async { icmp_client(ip.is_ipv4()) })
            .await
            .as_ref()
            .map_err(Clone::clone)?;
        let _slot = self.icmp_slots.acquire().await.map_err(|e| e.to_string())?;
        cx.icmp_seq = cx.icmp_seq.wrapping_add(1);
        let mut pinger = client.pinger(ip, PingIdentifier(cx.icmp_ident)).await;
        pinger.timeout(timeout);
        match pinger.ping(PingSequence(cx.icmp_seq), &[0u8; 16]).await {
            Ok(_) => Ok("echo reply".into()),
            Err(SurgeError::Timeout { .. }) => Err("timeout".into()),
            Err(SurgeError::IOError(e)) => Err(io_reason(&e)),
            Err(e) => Err(e.to_string()),
        }
    }
}

fn icmp_client(v4: bool) -> Result<surge_ping::Client, String> {
    let kind = if v4 { ICMP::V4 } else { ICMP::V6 };
    let family = if v4 { "IPv4" } else { "IPv6" };
    // surge-ping tries an unprivileged datagram socket first, then a raw one.
    match surge_ping::Client::new(&surge_ping::Config::builder().kind(kind).build()) {
        Ok(client) => {
            let how = if client.get_socket().get_type() == socket2::Type::DGRAM {
                "unprivileged ICMP datagram socket"
            } else {
                "raw ICMP socket"
            };
            info!("{family} ICMP checks use a {how}");
            Ok(client)
        }
        Err(e) => {
            let msg = format!(
                "cannot open an ICMP socket ({e}): run as root, grant CAP_NET_RAW, or allow ping sockets with sysctl net.ipv4.ping_group_range"
            );
            warn!("{family}: {msg}");
            Err(msg)
        }
    }
}

async fn tcp(addr: SocketAddr, timeout: Duration) -> Result<String, String> {
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Ok("connected".into()),
        Ok(Err(e)) => Err(io_reason(&e)),
        Err(_) => Err("timeout".into()),
    }
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "refused".into(),
        std::io::ErrorKind::TimedOut => "timeout".into(),
        _ => e.to_string(),
    }
}

async fn http(
    ip: IpAddr,
    check: &HttpCheck,
    timeout: Duration,
    cx: &mut ProbeContext,
    found: &mut Found,
) -> Result<String, String> {
    let started = Instant::now();
    let (client, base) = cx
        .http
        .get_or_insert_with(|| http_client(ip, check, timeout))
        .as_ref()
        .map_err(Clone::clone)?;
    let (status, body) = request(
        client,
        check,
        base,
        &check.path,
        timeout,
        check.body_wanted(),
    )
    .await?;
    let Some(role_list) = &check.roles else {
        if !check
            .expect
            .iter()
            .any(|(lo, hi)| (*lo..=*hi).contains(&status))
        {
            return Err(format!("status {status}"));
        }
        if let Some(needle) = &check.body_contains
            && !String::from_utf8_lossy(&body).contains(needle.as_str())
        {
            return Err(format!("status {status}, body lacks `{needle}`"));
        }
        return Ok(format!("status {status}"));
    };
    let Some(role) = roles::classify(role_list, status, &body, ip) else {
        return Err(format!("status {status}, matches no role"));
    };
    found.role = Some(role);
    let name = role_list.name(role).unwrap_or_default();
    if !role_list.is_healthy(role) {
        return Err(format!("status {status}, {name}"));
    }
    if let Some(query) = &role_list.leader {
        // Within what is left of the timeout; a node that cannot say gives no vote, and
        // that alone does not make it down.
        let left = timeout.saturating_sub(started.elapsed());
        if let Ok((200, body)) = request(client, check, base, &query.path, left, true).await {
            found.leader = roles::leader_host(&body, &query.field);
        }
    }
    Ok(format!("status {status}, {name}"))
}

/// One request; the body (up to [`BODY_LIMIT`]) only when `read_body`.
async fn request(
    client: &reqwest::Client,
    check: &HttpCheck,
    base: &str,
    path: &str,
    timeout: Duration,
    read_body: bool,
) -> Result<(u16, Vec<u8>), String> {
    if timeout.is_zero() {
        return Err("timeout".into());
    }
    let method = if path == check.path {
        reqwest::Method::from_bytes(check.method.as_bytes()).map_err(|e| e.to_string())?
    } else {
        reqwest::Method::GET
    };
    let mut request = client
        .request(method, format!("{base}{path}"))
        .timeout(timeout);
    if let (Some(host), false) = (&check.host, check.tls) {
        request = request.header(reqwest::header::HOST, host);
    }
    let mut response = request.send().await.map_err(|e| reqwest_reason(&e))?;
    let status = response.status().as_u16();
    let mut body = Vec::new();
    if read_body {
        while let Some(chunk) = response.chunk().await.map_err(|e| reqwest_reason(&e))? {
            body.extend_from_slice(&chunk);
            if body.len() >= BODY_LIMIT {
                body.truncate(BODY_LIMIT);
                break;
            }
        }
    }
    Ok((status, body))
}

/// A client for one probe and the URL base (scheme, host and port). With `host` on an
/// HTTPS check the URL names the host (so that
/// SNI and certificate verification use it) and the client resolves it to the member.
fn http_client(
    ip: IpAddr,
    check: &HttpCheck,
    timeout: Duration,
) -> Result<(reqwest::Client, String), String> {
    let addr = SocketAddr::new(ip, check.port);
    let scheme = if check.tls { "https" } else { "http" };
    // A fresh connection per probe proves the listener and the TLS handshake each time.
    let mut builder = reqwest::Client::builder()
        .redirect(RedirectPolicy::none())
        .pool_max_idle_per_host(0)
        .no_proxy()
        .connect_timeout(timeout)
        .timeout(timeout)
        .user_agent(concat!("meridian-health/", env!("CARGO_PKG_VERSION")));
    let base = match (&check.host, check.tls) {
        (Some(host), true) => {
            builder = builder.resolve(host, addr);
            format!("https://{host}:{}", check.port)
        }
        _ => format!("{scheme}://{addr}"),
    };
    if check.tls {
        if !check.tls_verify {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        if let Some(ca) = &check.ca {
            let pem = crate::model::file::read_regular(ca, 1 << 20)
                .map_err(|e| format!("CA {}: {e}", ca.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("bad CA {}: {e}", ca.display()))?;
            builder = builder.tls_certs_only(certs);
        }
        if let Some((cert, key)) = &check.client_cert {
            let mut pem = crate::model::file::read_regular(cert, 1 << 20)
                .map_err(|e| format!("client certificate {}: {e}", cert.display()))?;
            pem.extend(
                crate::model::file::read_regular(key, 1 << 20)
                    .map_err(|e| format!("client key {}: {e}", key.display()))?,
            );
            let identity = reqwest::Identity::from_pem(&pem)
                .map_err(|e| format!("client certificate {}: {e}", cert.display()))?;
            builder = builder.identity(identity);
        }
    }
    let client = builder.build().map_err(|e| format!("HTTP client: {e}"))?;
    Ok((client, base))
}

/// The most specific cause of a request error, prefixed with where it happened.
fn reqwest_reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timeout".into();
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut deepest = e.to_string();
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return "refused".into();
            }
            if io.kind() == std::io::ErrorKind::TimedOut {
                return "timeout".into();
            }
        }
        deepest = s.to_string();
        source = s.source();
    }
    let tls = ["certificate", "handshake", "TLS", "tls", "peer"];
    if tls.iter().any(|w| deepest.contains(w)) {
        format!("TLS: {deepest}")
    } else {
        deepest
    }
}
