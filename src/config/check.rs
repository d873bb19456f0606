//! Validation of health checks (`check:` and `checks:` on names, members and sites).

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use serde_saphyr::Spanned;

use super::yaml::{CheckRaw, items};
use super::{Check, CheckSpec, HttpCheck, Report, Timing};

/// `check:` (one) or `checks:` (a list); `None` when neither is given.
pub(super) fn validate_checks(
    r: &mut Report,
    field: &str,
    one: &Option<Box<Spanned<CheckRaw>>>,
    many: &Option<Vec<Spanned<CheckRaw>>>,
    needs_address: bool,
) -> Option<Vec<Check>> {
    let list: Vec<(String, &Spanned<CheckRaw>)> = match (one, many) {
        (None, None) => return None,
        (Some(c), None) => vec![(format!("{field}.check"), c)],
        (None, Some(cs)) => cs
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("{field}.checks[{i}]"), c))
            .collect(),
        (Some(c), Some(_)) => {
            r.at(
                c.referenced,
                field,
                "give either `check` or `checks`, not both",
            );
            return Some(Vec::new());
        }
    };
    let mut out = Vec::new();
    for (cfield, raw) in list {
        if let Some(c) = validate_check(r, &cfield, raw, needs_address) {
            out.push(c);
        }
    }
    Some(out)
}

fn validate_check(
    r: &mut Report,
    field: &str,
    check: &Spanned<CheckRaw>,
    needs_address: bool,
) -> Option<Check> {
    let raw = &check.value;
    let kind = raw.kind.value.as_str();
    let mut ok = true;
    let duration =
        |r: &mut Report, v: &Option<Spanned<String>>, what: &str, default: Duration| match v {
            None => Some(default),
            Some(s) => match humantime::parse_duration(s.value.trim()) {
                Ok(d) if !d.is_zero() => Some(d),
                _ => {
                    r.at(
                        s.referenced,
                        format!("{field}.{what}"),
                        format!("`{}` is not a duration (write 500ms, 5s or 1m)", s.value),
                    );
                    None
                }
            },
        };
    let defaults = Timing::default();
    let interval = duration(r, &raw.interval, "interval", defaults.interval);
    let timeout = duration(r, &raw.timeout, "timeout", defaults.timeout);
    let mut count = |v: &Option<Spanned<u32>>, what: &str, default: u32| match v {
        Some(s) if s.value == 0 => {
            r.at(
                s.referenced,
                format!("{field}.{what}"),
                "must be at least 1",
            );
            None
        }
        Some(s) => Some(s.value),
        None => Some(default),
    };
    let rise = count(&raw.rise, "rise", defaults.rise);
    let fall = count(&raw.fall, "fall", defaults.fall);
    let timing = match (interval, timeout, rise, fall) {
        (Some(interval), Some(timeout), Some(rise), Some(fall)) => {
            // An explicit timeout must fit in the interval; a default one shrinks to fit.
            let timeout = if raw.timeout.is_none() {
                timeout.min(interval.mul_f64(0.8))
            } else {
                timeout
            };
            if timeout >= interval {
                let at = raw
                    .timeout
                    .as_ref()
                    .map_or(check.referenced, |t| t.referenced);
                r.at(
                    at,
                    format!("{field}.timeout"),
                    "must be less than the interval",
                );
                ok = false;
            }
            Timing {
                interval,
                timeout,
                rise,
                fall,
            }
        }
        _ => {
            ok = false;
            defaults
        }
    };
    let address = match &raw.address {
        None => None,
        Some(a) => match a.value.trim().parse::<IpAddr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                r.at(
                    a.referenced,
                    format!("{field}.address"),
                    format!("`{}` is not an IP address", a.value),
                );
                ok = false;
                None
            }
        },
    };
    if needs_address && address.is_none() && raw.address.is_none() && kind != "none" {
        r.at(
            check.referenced,
            format!("{field}.address"),
            "a site check needs the address to probe (e.g. the site's load balancer)",
        );
        ok = false;
    }
    // Fields that only some check types read: naming them elsewhere is a mistake.
    let http_only = [
        ("method", raw.method.as_ref().map(|s| s.referenced)),
        ("path", raw.path.as_ref().map(|s| s.referenced)),
        ("host", raw.host.as_ref().map(|s| s.referenced)),
        ("expect", raw.expect.as_ref().map(|s| s.referenced)),
        (
            "body-contains",
            raw.body_contains.as_ref().map(|s| s.referenced),
        ),
        ("tls-verify", raw.tls_verify.as_ref().map(|s| s.referenced)),
        ("ca", raw.ca.as_ref().map(|s| s.referenced)),
    ];
    let is_http = kind == "http" || kind == "https";
    if !is_http {
        for (name, loc) in http_only {
            if let Some(loc) = loc {
                r.at(
                    loc,
                    format!("{field}.{name}"),
                    format!("not used by a `{kind}` check"),
                );
                ok = false;
            }
        }
    }
    let spec = match kind {
        "none" => CheckSpec::None,
        "icmp" => {
            if let Some(p) = &raw.port {
                r.at(
                    p.referenced,
                    format!("{field}.port"),
                    "an icmp check has no port",
                );
                ok = false;
            }
            CheckSpec::Icmp
        }
        "tcp" => match &raw.port {
            Some(p) if p.value > 0 => CheckSpec::Tcp { port: p.value },
            Some(p) => {
                r.at(p.referenced, format!("{field}.port"), "must be 1-65535");
                return None;
            }
            None => {
                r.at(
                    check.referenced,
                    format!("{field}.port"),
                    "a tcp check needs a port",
                );
                return None;
            }
        },
        "http" | "https" => {
            let tls = kind == "https";
            let port = raw
                .port
                .as_ref()
                .map_or(if tls { 443 } else { 80 }, |p| p.value);
            let path = raw
                .path
                .as_ref()
                .map_or("/".to_string(), |p| p.value.clone());
            if !path.starts_with('/') {
                let at = raw.path.as_ref().map_or(check.referenced, |p| p.referenced);
                r.at(at, format!("{field}.path"), "must start with /");
                ok = false;
            }
            let method = raw
                .method
                .as_ref()
                .map_or("GET".to_string(), |m| m.value.to_ascii_uppercase());
            if !["GET", "HEAD", "POST", "OPTIONS"].contains(&method.as_str()) {
                let at = raw
                    .method
                    .as_ref()
                    .map_or(check.referenced, |m| m.referenced);
                r.at(
                    at,
                    format!("{field}.method"),
                    "must be GET, HEAD, POST or OPTIONS",
                );
                ok = false;
            }
            let mut expect = Vec::new();
            match &raw.expect {
                None => expect.push((200, 299)),
                Some(list) => {
                    for (i, (loc, text)) in items(list).enumerate() {
                        match parse_status_range(text) {
                            Some(range) => expect.push(range),
                            None => {
                                r.at(
                                    loc,
                                    format!("{field}.expect[{i}]"),
                                    format!("`{text}` is not a status code or range (write 200 or 200-299)"),
                                );
                                ok = false;
                            }
                        }
                    }
                }
            }
            if !tls && (raw.tls_verify.is_some() || raw.ca.is_some()) {
                r.at(
                    check.referenced,
                    field,
                    "tls-verify and ca apply to https checks only",
                );
                ok = false;
            }
            CheckSpec::Http(HttpCheck {
                tls,
                port,
                method,
                path,
                host: raw.host.as_ref().map(|h| h.value.clone()),
                expect,
                body_contains: raw.body_contains.as_ref().map(|b| b.value.clone()),
                tls_verify: raw.tls_verify.as_ref().is_none_or(|v| v.value),
                ca: raw.ca.as_ref().and_then(|c| {
                    let path = r.file.parent().unwrap_or(Path::new(".")).join(&c.value);
                    if path.is_file() {
                        Some(path)
                    } else {
                        r.at(
                            c.referenced,
                            format!("{field}.ca"),
                            format!("no such file {}", path.display()),
                        );
                        ok = false;
                        None
                    }
                }),
            })
        }
        other => {
            r.at(
                raw.kind.referenced,
                format!("{field}.type"),
                format!(
                    "unknown check type `{other}`, expected one of none, tcp, icmp, http, https"
                ),
            );
            return None;
        }
    };
    if let (CheckSpec::None, Some(p)) = (&spec, &raw.port) {
        r.at(
            p.referenced,
            format!("{field}.port"),
            "a none check has no port",
        );
        ok = false;
    }
    ok.then_some(Check {
        spec,
        timing,
        address,
    })
}

pub(super) fn parse_status_range(text: &str) -> Option<(u16, u16)> {
    let valid = |c: u16| (100..=599).contains(&c);
    let (lo, hi) = match text.split_once('-') {
        Some((a, b)) => (a.trim().parse().ok()?, b.trim().parse().ok()?),
        None => {
            let c = text.trim().parse().ok()?;
            (c, c)
        }
    };
    (valid(lo) && valid(hi) && lo <= hi).then_some((lo, hi))
}
