//! Forwarding for clients that use Meridian as their only DNS server: names outside our
//! zones go to upstream resolvers, tried in order, and their answers are cached for as
//! long as their TTLs allow.
//!
//! This path is off unless `forward:` is configured, and only serves allowed client
//! networks, so Meridian is never an open resolver. The cache takes a lock; the
//! authoritative path never comes here.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, LowerName, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tracing::debug;

use crate::config::ForwardConfig;

/// Longest time an answer is cached, whatever its TTL.
const MAX_CACHE_TTL: Duration = Duration::from_secs(86_400);

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct CacheKey {
    name: LowerName,
    qtype: RecordType,
    qclass: DNSClass,
}

struct Cached {
    message: Message,
    stored: Instant,
    expires: Instant,
}

pub struct Forwarder {
    config: ForwardConfig,
    cache: Mutex<HashMap<CacheKey, Cached>>,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field("config", &self.config)
            .finish()
    }
}

/// Where an answer came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Cache,
    Upstream(SocketAddr),
}

impl Forwarder {
    pub fn new(config: ForwardConfig) -> Self {
        Forwarder {
            config,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn allows(&self, client: IpAddr) -> bool {
        self.config.allow.iter().any(|net| net.contains(&client))
    }

    /// The answer to `query`: from the cache while fresh (TTLs counted down), else from
    /// the first upstream that answers in time. `Err` when none did.
    pub async fn resolve(&self, query: &Query) -> Result<(Message, Source), String> {
        let key = CacheKey {
            name: LowerName::new(query.name()),
            qtype: query.query_type(),
            qclass: query.query_class(),
        };
        if let Some(message) = self.cached(&key) {
            return Ok((message, Source::Cache));
        }
        let mut last = String::from("no upstream");
        for upstream in &self.config.upstreams {
            match exchange(*upstream, query, self.config.timeout).await {
                Ok(message) => {
                    self.store(key, &message);
                    return Ok((message, Source::Upstream(*upstream)));
                }
                Err(e) => {
                    debug!(%upstream, error = %e, "upstream failed");
                    last = format!("{upstream}: {e}");
                }
            }
        }
        Err(last)
    }

    fn cached(&self, key: &CacheKey) -> Option<Message> {
        let cache = self.cache.lock().expect("forward cache lock");
        let entry = cache.get(key)?;
        let now = Instant::now();
        if now >= entry.expires {
            return None;
        }
        let age = now.duration_since(entry.stored).as_secs() as u32;
        let mut message = entry.message.clone();
        for r in message
            .answers
            .iter_mut()
            .chain(message.authorities.iter_mut())
            .chain(message.additionals.iter_mut())
        {
            r.ttl = r.ttl.saturating_sub(age);
        }
        Some(message)
    }

    fn store(&self, key: CacheKey, message: &Message) {
        let Some(ttl) = cache_ttl(message) else {
            return;
        };
        let now = Instant::now();
        let mut cache = self.cache.lock().expect("forward cache lock");
        if cache.len() >= self.config.cache_size {
            cache.retain(|_, c| c.expires > now);
            if cache.len() >= self.config.cache_size {
                // Still full of live entries: drop an arbitrary one.
                if let Some(k) = cache.keys().next().cloned() {
                    cache.remove(&k);
                }
            }
        }
        if self.config.cache_size > 0 {
            cache.insert(
                key,
                Cached {
                    message: message.clone(),
                    stored: now,
                    expires: now + ttl,
                },
            );
        }
    }
}

/// How long an upstream answer may be cached: the smallest TTL in it, and for a negative
/// answer the SOA's negative TTL (RFC 2308). Errors other than NXDOMAIN are not cached.
fn cache_ttl(message: &Message) -> Option<Duration> {
    if !matches!(
        message.metadata.response_code,
        ResponseCode::NoError | ResponseCode::NXDomain
    ) {
        return None;
    }
    let ttl = message
        .answers
        .iter()
        .chain(&message.authorities)
        .map(|r| match &r.data {
            RData::SOA(soa) => r.ttl.min(soa.minimum),
            _ => r.ttl,
        })
        .min()?;
    (ttl > 0).then(|| Duration::from_secs(ttl.into()).min(MAX_CACHE_TTL))
}

/// One query to one upstream over UDP, retried over TCP when the answer is truncated.
async fn exchange(
    upstream: SocketAddr,
    query: &Query,
    timeout: Duration,
) -> Result<Message, String> {
    let mut request = Message::query();
    request.metadata.recursion_desired = true;
    request.add_query(query.clone());
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    request.set_edns(edns);
    let bytes = request.to_vec().map_err(|e| e.to_string())?;
    let id = request.metadata.id;

    let response = tokio::time::timeout(timeout, async {
        let local: IpAddr = if upstream.is_ipv4() {
            Ipv4Addr::UNSPECIFIED.into()
        } else {
            Ipv6Addr::UNSPECIFIED.into()
        };
        let socket = UdpSocket::bind(SocketAddr::new(local, 0)).await?;
        socket.connect(upstream).await?;
        socket.send(&bytes).await?;
        let mut buf = vec![0u8; 4096];
        loop {
            let n = socket.recv(&mut buf).await?;
            // Ignore anything that is not the answer to this query (late or forged).
            let answer = Message::from_vec(&buf[..n]).ok();
            if let Some(m) =
                answer.filter(|m| m.metadata.id == id && m.queries.first() == Some(query))
            {
                return Ok::<_, std::io::Error>(m);
            }
        }
    })
    .await
    .map_err(|_| "timeout".to_string())?
    .map_err(|e| e.to_string())?;

    if !response.metadata.truncation {
        return Ok(response);
    }
    tokio::time::timeout(timeout, async {
        let mut stream = TcpStream::connect(upstream).await?;
        stream
            .write_all(&(bytes.len() as u16).to_be_bytes())
            .await?;
        stream.write_all(&bytes).await?;
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await?;
        let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
        stream.read_exact(&mut buf).await?;
        Message::from_vec(&buf).map_err(std::io::Error::other)
    })
    .await
    .map_err(|_| "timeout over TCP".to_string())?
    .map_err(|e| e.to_string())
}
