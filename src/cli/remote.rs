//! The commands that ask a running server through its admin API: `explain` and `drain`.

use std::path::Path;
use std::process::ExitCode;

use crate::admin::{Explanation, HistoryReport};
use crate::config;

/// The admin API settings of the server file, for the commands that ask the running server.
fn admin_api(config: &Path) -> Result<config::AdminConfig, String> {
    let server = config::load_server(config).map_err(|e| e.to_string())?;
    server.admin.ok_or_else(|| {
        format!(
            "{}: no `admin:` section, so there is no API to ask",
            config.display()
        )
    })
}

pub(super) fn drain(
    config: &Path,
    name: &str,
    address: std::net::IpAddr,
    wait: Option<std::time::Duration>,
) -> ExitCode {
    let admin = match admin_api(config) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let url = format!("http://{}/members/{name}/{address}/drain", admin.listen);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome: Result<bool, String> = rt.block_on(async {
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(|e| e.to_string())?;
        let ask = |post: bool| {
            let mut req = if post {
                client.post(&url)
            } else {
                client.get(&url)
            };
            if let Some(token) = &admin.token {
                req = req.bearer_auth(token);
            }
            async move {
                let resp = req
                    .send()
                    .await
                    .map_err(|e| format!("cannot reach the admin API at {}: {e}", admin.listen))?;
                let status = resp.status();
                let body = resp.text().await.map_err(|e| e.to_string())?;
                if !status.is_success() {
                    return Err(api_error(status, &body));
                }
                serde_json::from_str::<crate::state::DrainReport>(&body).map_err(|e| e.to_string())
            }
        };
        let mut report = ask(true).await?;
        let deadline = std::time::Instant::now() + wait.unwrap_or_default();
        let mut said = String::new();
        loop {
            let line = drain_line(&report);
            if line != said {
                println!("{line}");
                said = line;
            }
            if report.safe || wait.is_none() {
                return Ok(report.safe || wait.is_none());
            }
            if std::time::Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            report = ask(false).await?;
        }
    });
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!(
                "not safe yet after {}",
                humantime::format_duration(wait.unwrap_or_default())
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn drain_line(r: &crate::state::DrainReport) -> String {
    if r.safe {
        return format!(
            "{} {}: safe to stop (TTL {}s passed, {} of {} resolvers asked again)",
            r.name, r.member, r.ttl, r.returned, r.received
        );
    }
    let waiting = if r.not_returned.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = r.not_returned.iter().map(ToString::to_string).collect();
        format!("; waiting for {}", list.join(", "))
    };
    format!(
        "{} {}: draining, TTL {}s {}, {} of {} resolvers asked again{waiting}",
        r.name,
        r.member,
        r.ttl,
        if r.ttl_passed {
            "passed"
        } else {
            "not passed yet"
        },
        r.returned,
        r.received
    )
}

/// GETs `path_and_query` from the admin API of the server file and parses the JSON answer.
fn get_json<T: serde::de::DeserializeOwned>(
    config: &Path,
    path_and_query: &str,
) -> Result<T, String> {
    get_json_at(&admin_api(config)?.listen.to_string(), path_and_query)
}

/// GETs `path_and_query` from the admin API at `admin` (host:port) and parses the JSON.
pub(super) fn get_json_at<T: serde::de::DeserializeOwned>(
    admin: &str,
    path_and_query: &str,
) -> Result<T, String> {
    let url = format!("http://{admin}{path_and_query}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let body = rt.block_on(async {
        let resp = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(|e| e.to_string())?
            .get(&url)
            .send()
            .await
            .map_err(|e| format!("cannot reach the admin API at {admin}: {e}"))?;
        let status = resp.status();
        let body = resp.text().await.map_err(|e| e.to_string())?;
        if status.is_success() {
            Ok(body)
        } else {
            Err(api_error(status, &body))
        }
    })?;
    serde_json::from_str::<T>(&body).map_err(|e| format!("{url}: {e}"))
}

fn print_or_fail(result: Result<String, String>) -> ExitCode {
    match result {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn query_value(v: &str) -> String {
    form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

pub(super) fn explain(config: &Path, name: &str, qtype: &str, client: Option<&str>) -> ExitCode {
    let mut path = format!(
        "/explain?name={}&type={}",
        query_value(name),
        query_value(qtype)
    );
    if let Some(c) = client {
        path.push_str(&format!("&client={}", query_value(c)));
    }
    print_or_fail(get_json::<Explanation>(config, &path).map(|e| e.to_text()))
}

/// `explain --at`: what the name answered around `at` (a time, or how long ago).
pub(super) fn history(
    config: &Path,
    name: &str,
    client: Option<&str>,
    at: &str,
    within: std::time::Duration,
) -> ExitCode {
    let when = match parse_when(at) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let mut path = format!(
        "/history?name={}&at={when}&within={}",
        query_value(name),
        within.as_secs()
    );
    if let Some(c) = client {
        path.push_str(&format!("&client={}", query_value(c)));
    }
    print_or_fail(get_json::<HistoryReport>(config, &path).map(|r| r.to_text()))
}

/// Unix seconds of `--at`: an RFC 3339 time, `now`, or a duration ago (`5m`).
fn parse_when(at: &str) -> Result<u64, String> {
    let now = std::time::SystemTime::now();
    let t = if at == "now" {
        now
    } else if let Ok(ago) = humantime::parse_duration(at) {
        now - ago
    } else {
        humantime::parse_rfc3339_weak(at).map_err(|_| {
            format!("--at `{at}`: give a time (2026-12-01T23:50:00Z), `now`, or how long ago (5m)")
        })?
    };
    Ok(t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()))
}

/// The admin API's `{"error": "..."}` as its sentence; anything else as it came.
fn api_error(status: reqwest::StatusCode, body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error")?.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{status}: {body}"))
}
