//! The server file: listen addresses, the zones directory, GeoIP, admin API, forwarding.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

use super::error::{ConfigError, Report};
use super::types::{
    AccessConfig, AdminConfig, CookiesConfig, ForwardConfig, IdentityConfig, LogFormat,
    RateLimitConfig, RunAs, ServerConfig, TcpConfig, XdpConfig,
};
use super::yaml::{
    AccessRaw, CookiesRaw, ForwardRaw, RateLimitRaw, ServerRaw, TcpRaw, items, parse_yaml,
    read_file,
};
use crate::geo::GeoDb;

/// Default listen address when the server file names none: unprivileged, loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:5300";

/// Where the admin API listens when `admin:` names no address.
const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9153";
/// Beside the server file, relative to it.
const DEFAULT_STATE_FILE: &str = "meridian.state.json";

/// Reads and validates the server file alone (for commands that only need its settings).
pub fn load_server(file: &Path) -> Result<ServerConfig, ConfigError> {
    let text = read_file(file)?;
    let raw: ServerRaw = parse_yaml(file, &text)?;
    let base = file.parent().unwrap_or(Path::new("."));
    let mut report = Report::new(file);

    let mut listen = Vec::new();
    match &raw.listen {
        Some(list) => {
            for (i, (loc, text)) in items(list).enumerate() {
                match parse_listen(text) {
                    Ok(addr) if listen.contains(&addr) => report.at(
                        loc,
                        format!("listen[{i}]"),
                        format!("{addr} is listed twice"),
                    ),
                    Ok(addr) => listen.push(addr),
                    Err(msg) => report.at(loc, format!("listen[{i}]"), msg),
                }
            }
            if listen.is_empty() && report.errors.is_empty() {
                report.at(list.referenced, "listen", "needs at least one address");
            }
        }
        None => listen.push(DEFAULT_LISTEN.parse().expect("valid default")),
    }
    let zones_dir = base.join(raw.zones.as_ref().map_or("zones", |z| z.value.as_str()));
    let geoip = match &raw.geoip {
        None => None,
        Some(g) => match GeoDb::open(&base.join(&g.value)) {
            Ok(db) => Some(Arc::new(db)),
            Err(msg) => {
                report.at(
                    g.referenced,
                    "geoip",
                    format!("{}: {msg}", base.join(&g.value).display()),
                );
                None
            }
        },
    };
    let admin = raw.admin.as_ref().and_then(|a| {
        let listen = match &a.value.listen {
            None => DEFAULT_ADMIN_LISTEN.parse().ok(),
            Some(l) => parse_listen(&l.value)
                .map_err(|msg| report.at(l.referenced, "admin.listen", msg))
                .ok(),
        };
        // `token-file:` keeps the token out of the server file (a Kubernetes Secret
        // mounted beside a ConfigMap, say); read at every load, so a new one takes effect
        // on reload.
        let from_file = a.value.token_file.as_ref().and_then(|f| {
            let path = base.join(f.value.trim());
            match crate::model::file::read_regular(&path, 4096) {
                Ok(bytes) => Some((
                    f,
                    "admin.token-file",
                    String::from_utf8_lossy(&bytes).into_owned(),
                )),
                Err(e) => {
                    report.at(
                        f.referenced,
                        "admin.token-file",
                        format!("{}: {e}", path.display()),
                    );
                    None
                }
            }
        });
        if let (Some(t), Some(_)) = (&a.value.token, &a.value.token_file) {
            report.at(
                t.referenced,
                "admin.token",
                "give the token or a token-file, not both",
            );
        }
        let given = a
            .value
            .token
            .as_ref()
            .map(|t| (t, "admin.token", t.value.clone()))
            .or(from_file);
        let token = given.and_then(|(t, field, text)| {
            if text.trim().len() < 16 {
                report.at(t.referenced, field, "use at least 16 characters");
                None
            } else {
                Some(text.trim().to_string())
            }
        });
        if let (Some(addr), None) = (listen, &token)
            && !addr.ip().is_loopback()
        {
            let at = a
                .value
                .listen
                .as_ref()
                .map_or(a.referenced, |l| l.referenced);
            report.at(
                at,
                "admin.listen",
                format!(
                    "{addr} is reachable from other hosts: set admin.token, or listen on 127.0.0.1"
                ),
            );
        }
        listen.map(|listen| AdminConfig { listen, token })
    });
    let forward = raw
        .forward
        .as_ref()
        .and_then(|f| validate_forward(&mut report, &f.value));
    // DNS Flag Day 2020: 1232 bytes fit any path's MTU without fragments.
    let edns_udp_size = match &raw.edns_udp_size {
        None => 1232,
        Some(s) if (512..=4096).contains(&s.value) => s.value,
        Some(s) => {
            report.at(
                s.referenced,
                "edns-udp-size",
                "must be between 512 and 4096",
            );
            1232
        }
    };
    let tcp = raw
        .tcp
        .as_ref()
        .map_or_else(TcpConfig::default, |t| validate_tcp(&mut report, &t.value));
    let rate_limit = raw
        .rate_limit
        .as_ref()
        .map(|r| validate_rate_limit(&mut report, &r.value));
    let access = validate_access(&mut report, raw.access.as_ref().map(|a| &a.value), "access");
    let run_as = validate_run_as(&mut report, raw.user.as_ref(), raw.group.as_ref());
    let cookies = validate_cookies(
        &mut report,
        raw.cookies.as_ref().map(|c| &c.value),
        edns_udp_size,
    );
    let log_format = match raw.log_format.as_ref() {
        None => LogFormat::Text,
        Some(f) => match f.value.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                report.at(
                    f.referenced,
                    "log-format",
                    format!("`{other}` is not a log format: use `text` or `json`"),
                );
                LogFormat::Text
            }
        },
    };
    let state_file = base.join(
        raw.state_file
            .as_ref()
            .map_or(DEFAULT_STATE_FILE, |f| f.value.as_str()),
    );
    let signature_cache = match &raw.signature_cache {
        None => DEFAULT_SIGNATURE_CACHE,
        Some(n) if (1..=1 << 24).contains(&n.value) => n.value,
        Some(n) => {
            report.at(
                n.referenced,
                "signature-cache",
                "must be between 1 and 16777216 slots",
            );
            DEFAULT_SIGNATURE_CACHE
        }
    };
    let identity = raw.identity.as_ref().map_or_else(Default::default, |i| {
        let mut text = |v: &Option<super::yaml::Spanned<String>>, field: &str| {
            let v = v.as_ref()?;
            let t = v.value.trim();
            if t.is_empty() || t.len() > 255 || !t.is_ascii() {
                report.at(
                    v.referenced,
                    format!("identity.{field}"),
                    "must be 1 to 255 ASCII characters (leave it out to say nothing)",
                );
                return None;
            }
            Some(t.to_string())
        };
        IdentityConfig {
            nsid: text(&i.value.nsid, "nsid"),
            version: text(&i.value.version, "version"),
            hostname: text(&i.value.hostname, "hostname"),
        }
    });
    let cluster = raw
        .cluster
        .as_ref()
        .and_then(|c| super::cluster::validate_cluster(&mut report, base, c));
    let xdp = raw.xdp.as_ref().and_then(|x| {
        let name = &x.value.interface;
        // Linux's limit (IFNAMSIZ less the NUL), and no separators.
        let valid = (1..=15).contains(&name.value.len())
            && name
                .value
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':');
        if !valid {
            report.at(
                name.referenced,
                "xdp.interface",
                "must be an interface name (1 to 15 characters, as `ip link` shows)",
            );
            return None;
        }
        // One program takes UDP to one port (port 0 is left to the check at start, once
        // bound).
        let mut ports: Vec<u16> = listen.iter().map(|a| a.port()).collect();
        ports.sort_unstable();
        ports.dedup();
        if ports.len() > 1 {
            report.at(
                x.referenced,
                "xdp",
                format!(
                    "the listen addresses must share one port to answer through AF_XDP (they use {ports:?}): give them one port, or remove xdp"
                ),
            );
            return None;
        }
        Some(XdpConfig {
            interface: name.value.clone(),
        })
    });
    if let Some(e) = report.errors.into_iter().next() {
        return Err(e);
    }
    Ok(ServerConfig {
        file: file.to_path_buf(),
        source: super::yaml::source_hash(&text),
        listen,
        zones_dir,
        geoip,
        ecs: raw.ecs.unwrap_or(true),
        edns_udp_size,
        admin,
        forward,
        query_log: raw.query_log.unwrap_or(false),
        watch: raw.watch.unwrap_or(true),
        tcp,
        rate_limit,
        cookies,
        access,
        run_as,
        log_format,
        state_file,
        signature_cache,
        identity,
        cluster,
        xdp,
    })
}

/// Slots of the DNSSEC signature cache unless `signature-cache:` says otherwise: some
/// 25 MiB when every slot holds a signature.
pub const DEFAULT_SIGNATURE_CACHE: usize = 1 << 17;

/// A user's id and primary group from the system's user database.
fn user_ids(name: &str) -> Option<(u32, u32)> {
    let name = std::ffi::CString::new(name).ok()?;
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: getpwnam_r writes into `pwd` and `buf`, both ours and of the sizes given; it
    // sets `found` to `pwd` or null.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwnam_r(
            name.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut found,
        );
        (rc == 0 && !found.is_null()).then_some((pwd.pw_uid, pwd.pw_gid))
    }
}

/// A group's id from the system's group database.
fn group_id(name: &str) -> Option<u32> {
    let name = std::ffi::CString::new(name).ok()?;
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: as for getpwnam_r above.
    unsafe {
        let mut grp: libc::group = std::mem::zeroed();
        let mut found: *mut libc::group = std::ptr::null_mut();
        let rc = libc::getgrnam_r(
            name.as_ptr(),
            &mut grp,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut found,
        );
        (rc == 0 && !found.is_null()).then_some(grp.gr_gid)
    }
}

/// The name of a group id, for messages.
fn group_name(gid: u32) -> String {
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: as for getpwnam_r above; the name is copied out before `buf` goes.
    unsafe {
        let mut grp: libc::group = std::mem::zeroed();
        let mut found: *mut libc::group = std::ptr::null_mut();
        let rc = libc::getgrgid_r(
            gid,
            &mut grp,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut found,
        );
        if rc == 0 && !found.is_null() {
            return std::ffi::CStr::from_ptr(grp.gr_name)
                .to_string_lossy()
                .into_owned();
        }
    }
    gid.to_string()
}

fn validate_run_as(
    r: &mut Report,
    user: Option<&super::yaml::Spanned<String>>,
    group: Option<&super::yaml::Spanned<String>>,
) -> Option<RunAs> {
    let Some(user) = user else {
        if let Some(g) = group {
            r.at(g.referenced, "group", "give the user to run as too (user:)");
        }
        return None;
    };
    let name = user.value.trim();
    let Some((uid, primary)) = user_ids(name) else {
        r.at(
            user.referenced,
            "user",
            format!("no user `{name}` on this system (create it, e.g. useradd --system {name})"),
        );
        return None;
    };
    let (group, gid) = match group {
        None => (group_name(primary), primary),
        Some(g) => match group_id(g.value.trim()) {
            Some(gid) => (g.value.trim().to_string(), gid),
            None => {
                r.at(
                    g.referenced,
                    "group",
                    format!("no group `{}` on this system", g.value.trim()),
                );
                return None;
            }
        },
    };
    Some(RunAs {
        user: name.to_string(),
        uid,
        group,
        gid,
    })
}

/// An `access:` section (of the server file or a zone file); `field` is its path.
pub(super) fn validate_access(
    r: &mut Report,
    raw: Option<&AccessRaw>,
    field: &str,
) -> AccessConfig {
    let Some(raw) = raw else {
        return AccessConfig::default();
    };
    let mut networks = |list: &super::yaml::Spanned<super::yaml::TextList>, what: &str| {
        let mut out = Vec::new();
        for (i, (loc, text)) in items(list).enumerate() {
            match text.trim().parse::<IpNet>() {
                Ok(n) => out.push(n.trunc()),
                Err(_) => r.at(
                    loc,
                    format!("{field}.{what}[{i}]"),
                    format!("`{text}` is not a network (write 192.0.2.0/24, or an address)"),
                ),
            }
        }
        out
    };
    let allow = raw.allow.as_ref().map(|l| networks(l, "allow"));
    let deny = raw
        .deny
        .as_ref()
        .map(|l| networks(l, "deny"))
        .unwrap_or_default();
    let drop = match raw.action.as_ref().map(|a| (a, a.value.trim())) {
        None | Some((_, "refuse")) => false,
        Some((_, "drop")) => true,
        Some((a, other)) => {
            r.at(
                a.referenced,
                format!("{field}.action"),
                format!("unknown action `{other}`, expected refuse or drop"),
            );
            false
        }
    };
    AccessConfig { allow, deny, drop }
}

fn validate_cookies(r: &mut Report, raw: Option<&CookiesRaw>, edns_udp_size: u16) -> CookiesConfig {
    // Knot's default lifetime; RFC 7873 7.1 allows up to 36 days.
    let lifetime_default = Duration::from_secs(26 * 3600);
    let secret = raw.and_then(|c| c.secret.as_ref()).and_then(|s| {
        let text = s.value.trim().trim_start_matches("0x");
        let bytes: Option<Vec<u8>> = (text.len() == 32)
            .then(|| {
                (0..16)
                    .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok())
                    .collect()
            })
            .flatten();
        match bytes {
            Some(b) => Some(b.try_into().expect("16 bytes")),
            None => {
                r.at(
                    s.referenced,
                    "cookies.secret",
                    "write 32 hex digits (16 random bytes, e.g. from `openssl rand -hex 16`)",
                );
                None
            }
        }
    });
    let secret_lifetime = duration(
        r,
        &raw.and_then(|c| c.secret_lifetime.clone()),
        "cookies.secret-lifetime",
        lifetime_default,
    );
    let nocookie_udp_size = match raw.and_then(|c| c.nocookie_udp_size.as_ref()) {
        None => edns_udp_size,
        Some(s) if (512..=edns_udp_size).contains(&s.value) => s.value,
        Some(s) => {
            r.at(
                s.referenced,
                "cookies.nocookie-udp-size",
                format!("must be between 512 and edns-udp-size ({edns_udp_size})"),
            );
            edns_udp_size
        }
    };
    CookiesConfig {
        enabled: raw.and_then(|c| c.enabled).unwrap_or(true),
        secret,
        secret_lifetime,
        nocookie_udp_size,
    }
}

fn validate_rate_limit(r: &mut Report, raw: &RateLimitRaw) -> RateLimitConfig {
    let d = RateLimitConfig::default();
    let mut within = |v: &Option<super::yaml::Spanned<u32>>,
                      field: &str,
                      lo: u32,
                      hi: u32,
                      default: u32| {
        match v {
            None => default,
            Some(s) if (lo..=hi).contains(&s.value) => s.value,
            Some(s) => {
                r.at(
                    s.referenced,
                    field,
                    format!("must be between {lo} and {hi}"),
                );
                default
            }
        }
    };
    let responses_per_second = within(
        &raw.responses_per_second,
        "rate-limit.responses-per-second",
        1,
        1_000_000,
        d.responses_per_second,
    );
    let burst = within(
        &raw.burst,
        "rate-limit.burst",
        1,
        1_000_000,
        responses_per_second,
    );
    let slip = within(&raw.slip, "rate-limit.slip", 0, 10, d.slip);
    let mut prefix =
        |v: &Option<super::yaml::Spanned<u8>>, field: &str, max: u8, default: u8| match v {
            None => default,
            Some(s) if s.value <= max => s.value,
            Some(s) => {
                r.at(s.referenced, field, format!("must be between 0 and {max}"));
                default
            }
        };
    let ipv4_prefix = prefix(
        &raw.ipv4_prefix,
        "rate-limit.ipv4-prefix",
        32,
        d.ipv4_prefix,
    );
    let ipv6_prefix = prefix(
        &raw.ipv6_prefix,
        "rate-limit.ipv6-prefix",
        128,
        d.ipv6_prefix,
    );
    let mut exempt = Vec::new();
    if let Some(list) = &raw.exempt {
        for (i, (loc, text)) in items(list).enumerate() {
            match text.trim().parse::<IpNet>() {
                Ok(n) => exempt.push(n.trunc()),
                Err(_) => r.at(
                    loc,
                    format!("rate-limit.exempt[{i}]"),
                    format!("`{text}` is not a network (write 192.0.2.0/24)"),
                ),
            }
        }
    }
    let table_size = match &raw.table_size {
        None => d.table_size,
        Some(s) if (1024..=1 << 26).contains(&s.value) => s.value,
        Some(s) => {
            r.at(
                s.referenced,
                "rate-limit.table-size",
                "must be between 1024 and 67108864",
            );
            d.table_size
        }
    };
    RateLimitConfig {
        responses_per_second,
        burst,
        slip,
        ipv4_prefix,
        ipv6_prefix,
        exempt,
        table_size,
    }
}

/// A positive duration (`500ms`, `2s`), or `default` when absent (or, after reporting, wrong).
fn duration(
    r: &mut Report,
    value: &Option<super::yaml::Spanned<String>>,
    field: &str,
    default: Duration,
) -> Duration {
    let Some(v) = value else { return default };
    match humantime::parse_duration(v.value.trim()) {
        Ok(d) if !d.is_zero() => d,
        _ => {
            r.at(v.referenced, field, "not a duration (write 500ms or 2s)");
            default
        }
    }
}

fn validate_tcp(r: &mut Report, raw: &TcpRaw) -> TcpConfig {
    let defaults = TcpConfig::default();
    let mut count = |v: &Option<super::yaml::Spanned<usize>>, field: &str, default: usize| match v {
        None => default,
        Some(c) if c.value == 0 => {
            r.at(c.referenced, field, "must be at least 1");
            default
        }
        Some(c) => c.value,
    };
    let max_connections = count(
        &raw.max_connections,
        "tcp.max-connections",
        defaults.max_connections,
    );
    let max_connections_per_client = count(
        &raw.max_connections_per_client,
        "tcp.max-connections-per-client",
        defaults.max_connections_per_client,
    );
    let max_queries_per_connection = count(
        &raw.max_queries_per_connection,
        "tcp.max-queries-per-connection",
        defaults.max_queries_per_connection,
    );
    TcpConfig {
        max_connections,
        max_connections_per_client,
        max_queries_per_connection,
        idle_timeout: duration(
            r,
            &raw.idle_timeout,
            "tcp.idle-timeout",
            defaults.idle_timeout,
        ),
        io_timeout: duration(r, &raw.io_timeout, "tcp.io-timeout", defaults.io_timeout),
    }
}

fn validate_forward(r: &mut Report, raw: &ForwardRaw) -> Option<ForwardConfig> {
    let before = r.errors.len();
    let mut upstreams = Vec::new();
    for (i, (loc, text)) in items(&raw.upstreams).enumerate() {
        match parse_listen(text) {
            Ok(a) => upstreams.push(a),
            Err(msg) => r.at(loc, format!("forward.upstreams[{i}]"), msg),
        }
    }
    if raw.upstreams.value.0.is_empty() {
        r.at(
            raw.upstreams.referenced,
            "forward.upstreams",
            "give at least one upstream resolver",
        );
    }
    let mut allow = Vec::new();
    for (i, (loc, text)) in items(&raw.allow).enumerate() {
        match text.trim().parse::<IpNet>() {
            Ok(n) => allow.push(n.trunc()),
            Err(_) => r.at(
                loc,
                format!("forward.allow[{i}]"),
                format!("`{text}` is not a network (write 10.0.0.0/8)"),
            ),
        }
    }
    let timeout = duration(r, &raw.timeout, "forward.timeout", Duration::from_secs(2));
    (r.errors.len() == before).then(|| ForwardConfig {
        upstreams,
        timeout,
        allow,
        cache_size: raw.cache_size.unwrap_or(10_000),
    })
}

/// `127.0.0.1:5300`, `[::1]:5300`, or an address alone for port 53.
fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    Err(format!(
        "`{text}` is not a listen address (write 127.0.0.1:5300 or [::1]:53)"
    ))
}
