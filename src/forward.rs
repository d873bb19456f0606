//! Forwarding for clients that use Meridian as their only DNS server: names outside our
//! zones go to upstream resolvers, tried in order, and their answers are cached for as
//! long as their TTLs allow.
//!
//! This path is off unless `forward:` is configured, and the compiled table only sends it
//! queries from allowed client networks, so Meridian is never an open resolver. One
//! forwarder lives as long as the process: a reload changes its upstreams and cache size
//! and keeps what it has cached. The cache takes a lock; the authoritative path never
//! comes here.
//!
//! Not hickory-resolver: it caches records per lookup, while this hands back the
//! upstream's whole message (authority section included, with the SOA that sets the
//! negative TTL), with its TTLs counted down.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use hickory_proto::op::{Edns, Message, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, LowerName, RData, RecordType};
use lru::LruCache;
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

/// Where to forward to.
#[derive(Debug)]
struct Upstreams {
    /// Tried in order.
    addrs: Vec<SocketAddr>,
    timeout: Duration,
}

/// Forwarding and its cache: least recently used answers go first when it is full.
pub struct Forwarder {
    upstreams: ArcSwapOption<Upstreams>,
    /// `None` while the configured cache size is 0.
    cache: Mutex<Option<LruCache<CacheKey, Cached>>>,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field("upstreams", &self.upstreams.load())
            .finish()
    }
}

/// Where an answer came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Cache,
    Upstream(SocketAddr),
}

impl Default for Forwarder {
    fn default() -> Self {
        Forwarder {
            upstreams: ArcSwapOption::empty(),
            cache: Mutex::new(None),
        }
    }
}

impl Forwarder {
    /// Answers in the cache now.
    pub fn cache_entries(&self) -> usize {
        self.cache
            .lock()
            .expect("forward cache lock")
            .as_ref()
            .map_or(0, LruCache::len)
    }

    /// Applies a configuration (`None`: forwarding off). Cached answers stay, as far as
    /// the new cache size holds them.
    pub fn configure(&self, config: Option<&ForwardConfig>) {
        self.upstreams.store(config.map(|c| {
            Arc::new(Upstreams {
                addrs: c.upstreams.clone(),
                timeout: c.timeout,
            })
        }));
        let size = config.and_then(|c| NonZeroUsize::new(c.cache_size));
        let mut cache = self.cache.lock().expect("forward cache lock");
        match (cache.as_mut(), size) {
            (Some(lru), Some(size)) => lru.resize(size),
            (None, Some(size)) => *cache = Some(LruCache::new(size)),
            (_, None) => *cache = None,
        }
    }

    /// The answer to `query`: from the cache while fresh (TTLs counted down), else from
    /// the first upstream that answers in time. `Err` when none did, or forwarding is off.
    pub async fn resolve(&self, query: &Query) -> Result<(Message, Source), String> {
        let Some(upstreams) = self.upstreams.load_full() else {
            return Err("forwarding is not configured".into());
        };
        let key = CacheKey {
            name: LowerName::new(query.name()),
            qtype: query.query_type(),
            qclass: query.query_class(),
        };
        if let Some(message) = self.cached(&key) {
            return Ok((message, Source::Cache));
        }
        let mut last = String::from("no upstream");
        for upstream in &upstreams.addrs {
            match exchange(*upstream, query, upstreams.timeout).await {
                Ok(message) => {
                    let message = scrub(query, message);
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
        let mut cache = self.cache.lock().expect("forward cache lock");
        let lru = cache.as_mut()?;
        let now = Instant::now();
        let entry = lru.get(key)?;
        if now >= entry.expires {
            lru.pop(key);
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
        if let Some(lru) = cache.as_mut() {
            lru.put(
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

/// Keeps only what bears on the question, as resolvers do with out-of-bailiwick data: in
/// the answer, the records of the asked name and of the CNAME chain from it; in the
/// authority, the SOA and NS records of a zone holding the last name of that chain; in the
/// additional section, addresses of those name servers. Anything else (records about
/// other names, which a poisoning upstream would slip in) is dropped.
fn scrub(query: &Query, mut message: Message) -> Message {
    let qtype = query.query_type();
    let mut chain = vec![LowerName::new(query.name())];
    let mut answers = Vec::new();
    let mut rest = std::mem::take(&mut message.answers);
    // The chain may come in any order: take what it reaches until nothing more is.
    loop {
        let before = answers.len();
        rest.retain(|r| {
            let owner = LowerName::new(&r.name);
            if !chain.contains(&owner) {
                return true;
            }
            let rtype = r.record_type();
            if let RData::CNAME(target) = &r.data {
                chain.push(LowerName::new(&target.0));
            } else if rtype != qtype && qtype != RecordType::ANY && rtype != RecordType::RRSIG {
                return true;
            }
            answers.push(r.clone());
            false
        });
        if answers.len() == before {
            break;
        }
    }
    message.answers = answers;
    let last = chain.last().expect("the question").clone();
    message.authorities.retain(|r| {
        matches!(r.record_type(), RecordType::SOA | RecordType::NS)
            && LowerName::new(&r.name).zone_of(&last)
    });
    let servers: Vec<LowerName> = message
        .authorities
        .iter()
        .filter_map(|r| match &r.data {
            RData::NS(ns) => Some(LowerName::new(&ns.0)),
            _ => None,
        })
        .collect();
    message.additionals.retain(|r| {
        matches!(r.record_type(), RecordType::A | RecordType::AAAA)
            && servers.contains(&LowerName::new(&r.name))
    });
    message
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

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{CNAME, NS, SOA};
    use hickory_proto::rr::{Name, Record};

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn a(owner: &str, ip: [u8; 4]) -> Record {
        Record::from_rdata(
            name(owner),
            60,
            RData::A(std::net::Ipv4Addr::from(ip).into()),
        )
    }

    #[test]
    fn scrubbing_keeps_the_chain_its_zone_and_glue_and_nothing_else() {
        let query = Query::query(name("www.example.org."), RecordType::A);
        let mut m = Message::query();
        // Out of order: the target's address before the CNAME that leads to it.
        m.answers = vec![
            a("cdn.example.net.", [192, 0, 2, 1]),
            a("victim.example.", [6, 6, 6, 6]),
            Record::from_rdata(
                name("www.example.org."),
                60,
                RData::CNAME(CNAME(name("cdn.example.net."))),
            ),
        ];
        m.authorities = vec![
            Record::from_rdata(
                name("example.net."),
                60,
                RData::NS(NS(name("ns1.example.net."))),
            ),
            Record::from_rdata(name("victim.example."), 60, RData::NS(NS(name("ns.evil.")))),
        ];
        m.additionals = vec![
            a("ns1.example.net.", [192, 0, 2, 53]),
            a("ns.evil.", [6, 6, 6, 6]),
        ];
        let kept = scrub(&query, m);
        let names = |rs: &[Record]| rs.iter().map(|r| r.name.to_string()).collect::<Vec<_>>();
        assert_eq!(
            names(&kept.answers),
            ["www.example.org.", "cdn.example.net."]
        );
        assert_eq!(names(&kept.authorities), ["example.net."]);
        assert_eq!(names(&kept.additionals), ["ns1.example.net."]);

        // A negative answer keeps the SOA of the zone that holds the name.
        let mut nx = Message::query();
        let soa = SOA::new(
            name("ns1.example.org."),
            name("h.example.org."),
            1,
            1,
            1,
            1,
            60,
        );
        nx.authorities = vec![
            Record::from_rdata(name("example.org."), 60, RData::SOA(soa.clone())),
            Record::from_rdata(name("victim.example."), 60, RData::SOA(soa)),
        ];
        assert_eq!(names(&scrub(&query, nx).authorities), ["example.org."]);
    }
}
