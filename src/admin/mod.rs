//! The admin HTTP API: metrics, status (JSON and a page), maintenance, health, explain.
//!
//! It reads the same live table as the DNS handler and never blocks it. It is bounded like
//! the DNS side: at most `MAX_CONNECTIONS` open, requests of at most `MAX_HEAD` bytes of
//! request line and headers and `MAX_BODY` of body, `REQUEST_TIMEOUT` to send a request.

mod explain;
mod history;
mod page;
mod status;

pub use explain::{Explanation, explain};
pub use history::{HistoryReport, client_network};
pub use status::{Status, status};

use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Limited;
use tokio::sync::Semaphore;

use hickory_proto::rr::{LowerName, Name, RecordType};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use tracing::{info, warn};

use crate::model::LogLimit;
use crate::state::{MaintenanceError, Meridian};

/// Connections open at once; more are closed as they come.
const MAX_CONNECTIONS: usize = 64;
/// Request line and headers, at most (hyper's smallest buffer).
const MAX_HEAD: usize = 8192;
/// Request body, at most; the API's requests carry none.
const MAX_BODY: usize = 4096;
/// Time to send the request line and headers, and then the body.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds the admin listener (before start-up goes further, so a busy port fails early).
pub fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot bind the admin API on {addr}: {e}"),
        )
    })?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

pub async fn serve(listener: std::net::TcpListener, meridian: Arc<Meridian>) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            warn!("admin API: {e}");
            return;
        }
    };
    let open = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let log = Arc::new(LogLimit::new(Duration::from_secs(10)));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                if let Some(held) = log.allow() {
                    warn!(error = %e, similar_since_last = held, "admin API accept");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            if let Some(held) = log.allow() {
                warn!(%peer, open = MAX_CONNECTIONS, similar_since_last = held, "admin API: too many connections; closing a new one");
            }
            continue; // dropping the stream closes it
        };
        let meridian = meridian.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let meridian = meridian.clone();
                async move { Ok::<_, Infallible>(route(&meridian, req, peer.ip()).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(REQUEST_TIMEOUT)
                .max_buf_size(MAX_HEAD)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            drop(permit);
        });
    }
}

type Reply = Response<Full<Bytes>>;

fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Reply {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, "no-store")
        .body(Full::new(body.into()))
        .expect("valid response")
}

fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Reply {
    let body = serde_json::to_vec_pretty(value).unwrap_or_default();
    reply(status, "application/json", body)
}

fn error(status: StatusCode, message: &str) -> Reply {
    json(status, &serde_json::json!({ "error": message }))
}

async fn route(m: &Meridian, req: Request<Incoming>, peer: IpAddr) -> Reply {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (req.method(), segments.as_slice()) {
        (&Method::GET, [""]) => reply(
            StatusCode::OK,
            "text/html; charset=utf-8",
            page::page(&status(m), &m.events.recent()),
        ),
        (&Method::GET, ["events"]) => json(StatusCode::OK, &m.events.recent()),
        (&Method::GET, ["history"]) => match history_route(m, &query) {
            Ok(report) => json(StatusCode::OK, &report),
            Err(message) => error(StatusCode::BAD_REQUEST, &message),
        },
        (&Method::GET, ["status"]) => json(StatusCode::OK, &status(m)),
        (&Method::GET, ["metrics"]) => {
            reply(StatusCode::OK, crate::metrics::CONTENT_TYPE, m.metrics())
        }
        (&Method::GET, ["healthz"]) => {
            if m.table.load().zones().len() == 0 {
                reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "no zones loaded\n",
                )
            } else {
                reply(StatusCode::OK, "text/plain", "ok\n")
            }
        }
        (&Method::GET, ["explain"]) => explain_route(m, &query, peer),
        (&Method::GET, ["members", name, address, "drain"]) => drain_report(m, name, address),
        (
            &Method::POST,
            [
                "members",
                name,
                address,
                action @ ("enable" | "disable" | "recover" | "drain"),
            ],
        ) => {
            if let Err(denied) = authorize(m, &req) {
                return *denied;
            }
            // Read the body (ignored, and small) so that keep-alive connections stay in step.
            let body = Limited::new(req.into_body(), MAX_BODY).collect();
            match tokio::time::timeout(REQUEST_TIMEOUT, body).await {
                Ok(Ok(_)) => {}
                Ok(Err(_)) => {
                    return error(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
                }
                Err(_) => return error(StatusCode::REQUEST_TIMEOUT, "request body too slow"),
            }
            member_action(m, name, address, action).await
        }
        (_, ["members", ..])
        | (_, ["status" | "metrics" | "healthz" | "explain" | "events" | "history"]) => {
            error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        _ => error(StatusCode::NOT_FOUND, "no such endpoint"),
    }
}

/// Write endpoints need `Authorization: Bearer <token>`; with no token configured they
/// are closed (403).
fn authorize(m: &Meridian, req: &Request<Incoming>) -> Result<(), Box<Reply>> {
    let Some(token) = m.admin_config().and_then(|a| a.token.as_deref()) else {
        return Err(Box::new(error(
            StatusCode::FORBIDDEN,
            "write endpoints are off: set admin.token in the server file",
        )));
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Takes the same time wherever the first difference is (only the length shows).
    if bool::from(subtle::ConstantTimeEq::ct_eq(
        given.as_bytes(),
        token.as_bytes(),
    )) {
        Ok(())
    } else {
        Err(Box::new(error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token",
        )))
    }
}

fn parse_name(text: &str) -> Option<LowerName> {
    let mut name = Name::from_ascii(text).ok()?;
    name.set_fqdn(true);
    Some(LowerName::new(&name))
}

fn no_such(e: MaintenanceError) -> Reply {
    match e {
        MaintenanceError::NoSuchName => error(StatusCode::NOT_FOUND, "no such health-checked name"),
        MaintenanceError::NoSuchMember => {
            error(StatusCode::NOT_FOUND, "no such member of that name")
        }
    }
}

/// Where a drain stands (409 when the member is not draining).
fn drain_report(m: &Meridian, name: &str, address: &str) -> Reply {
    let (Some(lower), Ok(address)) = (parse_name(name), address.parse::<IpAddr>()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "expected /members/{name}/{address}/drain",
        );
    };
    match m.drain_report(&lower, address) {
        Ok(Some(report)) => json(StatusCode::OK, &report),
        Ok(None) => error(
            StatusCode::CONFLICT,
            "the member is not draining: POST to start",
        ),
        Err(e) => no_such(e),
    }
}

/// `enable` and `disable` (maintenance, `enable` also ends a drain), `recover` (manual
/// recovery) and `drain`.
async fn member_action(m: &Meridian, name: &str, address: &str, action: &str) -> Reply {
    let (Some(lower), Ok(address)) = (parse_name(name), address.parse::<IpAddr>()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "expected /members/{name}/{address}/enable|disable|recover",
        );
    };
    if action == "drain" {
        return match m.drain(&lower, address).await {
            Ok(report) => {
                info!(name = %lower, member = %address, "member draining through the admin API");
                json(StatusCode::OK, &report)
            }
            Err(e) => no_such(e),
        };
    }
    let done = match action {
        "recover" => m.recover(&lower, address).await,
        _ => {
            m.set_maintenance(&lower, address, action == "disable")
                .await
        }
    };
    match done {
        Ok(()) => {}
        Err(MaintenanceError::NoSuchName) => {
            return error(StatusCode::NOT_FOUND, "no such health-checked name");
        }
        Err(MaintenanceError::NoSuchMember) => {
            return error(StatusCode::NOT_FOUND, "no such member of that name");
        }
    }
    if action == "recover" {
        info!(name = %lower, member = %address, "member recovered through the admin API");
        let member = m
            .table
            .load()
            .member(&lower, address)
            .map(|mb| mb.health.is_up());
        return json(
            StatusCode::OK,
            &serde_json::json!({ "name": lower.to_string(), "member": address, "held": false, "up": member }),
        );
    }
    let disable = action == "disable";
    let state = if disable { "disabled" } else { "enabled" };
    info!(name = %lower, member = %address, "member {state} through the admin API");
    json(
        StatusCode::OK,
        &serde_json::json!({ "name": lower.to_string(), "member": address, "maintenance": disable }),
    )
}

/// `/history?name=N&client=NET&at=UNIX&within=SECONDS` (name required).
fn history_route(m: &Meridian, query: &str) -> Result<HistoryReport, String> {
    let (mut name, mut client, mut at, mut within) = (None, None, None, 60);
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "name" => {
                name = Some(parse_name(&v).ok_or_else(|| format!("`{v}` is not a domain name"))?)
            }
            "client" if !v.is_empty() => client = Some(client_network(&v)?),
            "at" if !v.is_empty() => {
                at = Some(v.parse::<u64>().map_err(|_| {
                    format!("at: `{v}` is not a time: give unix seconds, e.g. at=1796170000")
                })?)
            }
            "within" => {
                within = v
                    .parse::<u64>()
                    .map_err(|_| format!("within: `{v}` is not a number of seconds"))?
            }
            _ => {}
        }
    }
    let name = name.ok_or("give ?name=vault.kemp.local (and client=, at=, within=)")?;
    history::report(
        &m.table.load(),
        m.history.get(),
        &m.events.recent(),
        &name,
        client,
        at,
        within,
    )
}

fn explain_route(m: &Meridian, query: &str, peer: IpAddr) -> Reply {
    let mut asked = (String::new(), "A".to_string(), String::new());
    let mut html = false;
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "name" => asked.0 = v.trim().to_string(),
            "type" => asked.1 = v.trim().to_string(),
            "client" => asked.2 = v.trim().to_string(),
            "format" => html = v == "html",
            _ => {}
        }
    }
    let answer = explain_asked(m, &asked, peer);
    let question = (asked.0.as_str(), asked.1.as_str(), asked.2.as_str());
    match (html, answer) {
        (true, Ok(e)) => reply(
            StatusCode::OK,
            "text/html; charset=utf-8",
            page::explain_page(question, Ok(&e)),
        ),
        (true, Err(message)) => reply(
            StatusCode::BAD_REQUEST,
            "text/html; charset=utf-8",
            page::explain_page(question, Err(&message)),
        ),
        (false, Ok(e)) => json(StatusCode::OK, &e),
        (false, Err(message)) => error(StatusCode::BAD_REQUEST, &message),
    }
}

/// The explanation of (name, type, client), or a sentence saying what is wrong with the
/// question.
fn explain_asked(
    m: &Meridian,
    (name, qtype, client): &(String, String, String),
    peer: IpAddr,
) -> Result<Explanation, String> {
    if name.is_empty() {
        return Err("give a name to explain: ?name=vault.kemp.local&type=A&client=IP".into());
    }
    let name = parse_name(name).ok_or_else(|| format!("`{name}` is not a domain name"))?;
    let qtype = qtype.to_ascii_uppercase().parse::<RecordType>().map_err(|_| {
        format!("`{qtype}` is not a DNS record type: use one such as A, AAAA, CNAME, MX, TXT, SRV, NS or SOA")
    })?;
    let client = if client.is_empty() {
        peer
    } else {
        client.parse().map_err(|_| {
            format!("`{client}` is not an IP address: give the client as 192.0.2.1 or 2001:db8::1")
        })?
    };
    let table = m.table.load();
    let mut e = explain(&table, &name, qtype, client);
    // Transitions are the running state's, not the table's: the name's, where it chose.
    e.transitions = m
        .counters
        .transitions
        .recent()
        .iter()
        .filter(|t| Some(&t.name) == e.chosen_by.as_ref())
        .map(status::transition_status)
        .collect();
    if let Some(chooser) = e.chosen_by.as_deref().and_then(parse_name) {
        for em in &mut e.members {
            if let Ok(address) = em.member.address.parse() {
                em.member.drain = m.drain_report(&chooser, address).ok().flatten();
            }
        }
    }
    Ok(e)
}
