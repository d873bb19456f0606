//! The commands that ask a running server through its admin API: `explain` and `drain`.

use std::path::Path;
use std::process::ExitCode;

use crate::admin::Explanation;
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

pub(super) fn explain(
    config: &Path,
    name: &str,
    qtype: &str,
    client: Option<std::net::IpAddr>,
) -> ExitCode {
    let admin = match admin_api(config) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let mut url = format!("http://{}/explain?name={name}&type={qtype}", admin.listen);
    if let Some(c) = client {
        url.push_str(&format!("&client={c}"));
    }
    let fetched = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|rt| {
            rt.block_on(async {
                let resp = reqwest::Client::builder()
                    .no_proxy()
                    .build()
                    .map_err(|e| e.to_string())?
                    .get(&url)
                    .send()
                    .await
                    .map_err(|e| format!("cannot reach the admin API at {}: {e}", admin.listen))?;
                let status = resp.status();
                let body = resp.text().await.map_err(|e| e.to_string())?;
                if status.is_success() {
                    Ok(body)
                } else {
                    Err(api_error(status, &body))
                }
            })
        });
    match fetched
        .and_then(|body| serde_json::from_str::<Explanation>(&body).map_err(|e| e.to_string()))
    {
        Ok(e) => {
            print!("{}", e.to_text());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// The admin API's `{"error": "..."}` as its sentence; anything else as it came.
fn api_error(status: reqwest::StatusCode, body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error")?.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{status}: {body}"))
}
