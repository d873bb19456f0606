//! Validation of health checks (`check:` and `checks:` on names, members and sites).

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::yaml::Spanned;

use super::error::Report;
use super::roles::validate_rules;
use super::yaml::{CheckRaw, items};
use crate::model::{Check, CheckSpec, HttpCheck, Roles, Timing};

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

/// One check; `None` when it has an error (already reported).
fn validate_check(
    r: &mut Report,
    field: &str,
    check: &Spanned<CheckRaw>,
    needs_address: bool,
) -> Option<Check> {
    let raw = &check.value;
    let kind = raw.kind.value.as_str();
    let timing = validate_timing(r, field, check);
    let address = validate_address(r, field, check, needs_address);
    let fields_fit = reject_http_fields(r, field, raw, kind);
    let spec = match kind {
        "none" | "icmp" => validate_portless(r, field, raw, kind),
        "tcp" => validate_tcp(r, field, check),
        "http" | "https" | "vault" => validate_http(r, field, check, kind),
        other => {
            r.at(
                raw.kind.referenced,
                format!("{field}.type"),
                format!(
                    "unknown check type `{other}`, expected one of none, tcp, icmp, http, https, vault"
                ),
            );
            None
        }
    };
    Some(Check {
        spec: spec?,
        timing: timing?,
        address: address?,
    })
    .filter(|_| fields_fit)
}

/// `interval`, `timeout`, `rise` and `fall`, with their defaults.
fn validate_timing(r: &mut Report, field: &str, check: &Spanned<CheckRaw>) -> Option<Timing> {
    let raw = &check.value;
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
    let failure_delay = match &raw.failure_delay {
        None => Some(Duration::ZERO),
        Some(s) => match humantime::parse_duration(s.value.trim()) {
            Ok(d) => Some(d),
            Err(_) => {
                r.at(
                    s.referenced,
                    format!("{field}.failure-delay"),
                    format!("`{}` is not a duration (write 30s or 2m)", s.value),
                );
                None
            }
        },
    };
    let (interval, timeout, rise, fall, failure_delay) =
        (interval?, timeout?, rise?, fall?, failure_delay?);
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
        return None;
    }
    Some(Timing {
        interval,
        timeout,
        rise,
        fall,
        failure_delay,
    })
}

/// The address to probe instead of the member's; `Some(None)` when there is none.
fn validate_address(
    r: &mut Report,
    field: &str,
    check: &Spanned<CheckRaw>,
    needs_address: bool,
) -> Option<Option<IpAddr>> {
    let raw = &check.value;
    match &raw.address {
        Some(a) => match a.value.trim().parse::<IpAddr>() {
            Ok(ip) => Some(Some(ip)),
            Err(_) => {
                r.at(
                    a.referenced,
                    format!("{field}.address"),
                    format!("`{}` is not an IP address", a.value),
                );
                None
            }
        },
        None if needs_address && raw.kind.value != "none" => {
            r.at(
                check.referenced,
                format!("{field}.address"),
                "a site check needs the address to probe (e.g. the site's load balancer)",
            );
            None
        }
        None => Some(None),
    }
}

/// Fields that only HTTP(S) checks read, or that a `vault` check sets itself: naming them
/// where they do nothing is a mistake. Returns whether there were none.
fn reject_http_fields(r: &mut Report, field: &str, raw: &CheckRaw, kind: &str) -> bool {
    let at = |v: &Option<Spanned<String>>| v.as_ref().map(|s| s.referenced);
    let mut unused: Vec<(&str, Option<super::yaml::Location>)> = match kind {
        "http" | "https" => vec![("tls", raw.tls.as_ref().map(|s| s.referenced))],
        "vault" => vec![
            ("expect", raw.expect.as_ref().map(|s| s.referenced)),
            ("body-contains", at(&raw.body_contains)),
            ("roles", raw.roles.as_ref().map(|s| s.referenced)),
            ("method", at(&raw.method)),
        ],
        _ => vec![
            ("tls", raw.tls.as_ref().map(|s| s.referenced)),
            ("client-cert", at(&raw.client_cert)),
            ("client-key", at(&raw.client_key)),
            ("roles", raw.roles.as_ref().map(|s| s.referenced)),
        ],
    };
    if !["http", "https", "vault"].contains(&kind) {
        unused.extend([
            ("method", at(&raw.method)),
            ("path", at(&raw.path)),
            ("host", at(&raw.host)),
            ("expect", raw.expect.as_ref().map(|s| s.referenced)),
            ("body-contains", at(&raw.body_contains)),
            ("tls-verify", raw.tls_verify.as_ref().map(|s| s.referenced)),
            ("ca", at(&raw.ca)),
        ]);
    }
    let mut fit = true;
    for (name, loc) in unused {
        if let Some(loc) = loc {
            r.at(
                loc,
                format!("{field}.{name}"),
                format!("not used by a `{kind}` check"),
            );
            fit = false;
        }
    }
    fit
}

/// `none` and `icmp`: nothing to set, and no port.
fn validate_portless(r: &mut Report, field: &str, raw: &CheckRaw, kind: &str) -> Option<CheckSpec> {
    if let Some(p) = &raw.port {
        r.at(
            p.referenced,
            format!("{field}.port"),
            format!(
                "a{} {kind} check has no port",
                if kind == "icmp" { "n" } else { "" }
            ),
        );
        return None;
    }
    Some(if kind == "icmp" {
        CheckSpec::Icmp
    } else {
        CheckSpec::None
    })
}

fn validate_tcp(r: &mut Report, field: &str, check: &Spanned<CheckRaw>) -> Option<CheckSpec> {
    match &check.value.port {
        Some(p) if p.value > 0 => Some(CheckSpec::Tcp { port: p.value }),
        Some(p) => {
            r.at(p.referenced, format!("{field}.port"), "must be 1-65535");
            None
        }
        None => {
            r.at(
                check.referenced,
                format!("{field}.port"),
                "a tcp check needs a port",
            );
            None
        }
    }
}

/// `http`, `https` and `vault` (HTTPS to port 8200 by default, `/v1/sys/health`, with
/// Vault's roles and leader query).
fn validate_http(
    r: &mut Report,
    field: &str,
    check: &Spanned<CheckRaw>,
    kind: &str,
) -> Option<CheckSpec> {
    let raw = &check.value;
    let vault = kind == "vault";
    let tls = match kind {
        "vault" => raw.tls.as_ref().is_none_or(|t| t.value),
        other => other == "https",
    };
    let mut ok = true;
    let default_port = match (vault, tls) {
        (true, _) => 8200,
        (false, true) => 443,
        (false, false) => 80,
    };
    let port = raw.port.as_ref().map_or(default_port, |p| p.value);
    let default_path = if vault { "/v1/sys/health" } else { "/" };
    let path = raw
        .path
        .as_ref()
        .map_or(default_path.to_string(), |p| p.value.clone());
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
                            format!(
                                "`{text}` is not a status code or range (write 200 or 200-299)"
                            ),
                        );
                        ok = false;
                    }
                }
            }
        }
    }
    if !tls
        && (raw.tls_verify.is_some()
            || raw.ca.is_some()
            || raw.client_cert.is_some()
            || raw.client_key.is_some())
    {
        r.at(
            check.referenced,
            field,
            "tls-verify, ca, client-cert and client-key apply to checks over TLS only",
        );
        ok = false;
    }
    let mut file = |r: &mut Report, v: &Option<Spanned<String>>, what: &str| {
        let c = v.as_ref()?;
        let path = r.file.parent().unwrap_or(Path::new(".")).join(&c.value);
        if let Err(e) = crate::model::file::check_regular(&path, 1 << 20) {
            r.at(
                c.referenced,
                format!("{field}.{what}"),
                format!("{}: {e}", path.display()),
            );
            ok = false;
        }
        Some(path)
    };
    let ca = file(r, &raw.ca, "ca");
    let client_cert = match (
        file(r, &raw.client_cert, "client-cert"),
        file(r, &raw.client_key, "client-key"),
    ) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        _ => {
            r.at(
                check.referenced,
                field,
                "give client-cert and client-key together",
            );
            ok = false;
            None
        }
    };
    let roles = if vault {
        Some(Arc::new(Roles::vault()))
    } else {
        match &raw.roles {
            None => None,
            Some(list) => {
                if let Some(loc) = raw
                    .expect
                    .as_ref()
                    .map(|e| e.referenced)
                    .or(raw.body_contains.as_ref().map(|b| b.referenced))
                {
                    r.at(
                        loc,
                        field,
                        "with roles, each role's status and body decide; remove expect and body-contains",
                    );
                    ok = false;
                }
                let roles = validate_rules(r, field, list);
                ok &= roles.is_some();
                roles
            }
        }
    };
    ok.then(|| {
        CheckSpec::Http(Box::new(HttpCheck {
            tls,
            port,
            method,
            path,
            host: raw.host.as_ref().map(|h| h.value.clone()),
            expect,
            body_contains: raw.body_contains.as_ref().map(|b| b.value.clone()),
            tls_verify: raw.tls_verify.as_ref().is_none_or(|v| v.value),
            ca,
            client_cert,
            roles,
        }))
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
