//! A zone's `transfer:` section: who may take the zone by AXFR and IXFR, which
//! secondaries are sent NOTIFY, the TSIG key that signs all three, and `transfer-view:`,
//! the client a transferred health-checked name answers for.

use std::net::{IpAddr, SocketAddr};

use super::yaml::Spanned;
use hickory_proto::rr::Name;
use hickory_proto::rr::rdata::tsig::TsigAlgorithm;
use ipnet::IpNet;

use super::error::Report;
use super::types::SiteConfig;
use super::yaml::{TransferRaw, TsigRaw, items};

/// How a zone is transferred to its secondaries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransferConfig {
    /// Clients that may transfer the zone: `allow:`, and the secondaries sent NOTIFY.
    pub allow: Vec<IpNet>,
    /// Secondaries told of every change (RFC 1996).
    pub notify: Vec<SocketAddr>,
    /// When given, transfers must be signed with it and NOTIFY messages are.
    pub tsig: Option<TsigKeyConfig>,
    /// What a health-checked name is transferred as.
    pub view: TransferView,
}

/// A TSIG key (RFC 8945), as BIND's `tsig-keygen` and Knot's `keymgr -t` print it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TsigKeyConfig {
    pub name: Name,
    pub algorithm: TsigAlgorithm,
    pub secret: Vec<u8>,
}

/// The answer a health-checked name is transferred with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransferView {
    /// Every member up (in the answering tier, with roles).
    AllUp,
    /// What a client at this site (by index among the zone's sites) would be answered.
    Site(usize),
}

/// `transfer-view: all`: every member up. A site cannot take this name as its view.
const ALL_UP: &str = "all";

pub(super) fn validate_transfer(
    r: &mut Report,
    raw: &Spanned<TransferRaw>,
    view: Option<&Spanned<String>>,
    sites: &[SiteConfig],
) -> Option<TransferConfig> {
    let t = &raw.value;
    let mut allow = Vec::new();
    if let Some(list) = &t.allow {
        for (i, (loc, text)) in items(list).enumerate() {
            match text.trim().parse::<IpNet>() {
                Ok(n) => allow.push(n.trunc()),
                Err(_) => match text.trim().parse::<IpAddr>() {
                    Ok(a) => allow.push(IpNet::from(a)),
                    Err(_) => r.at(
                        loc,
                        format!("transfer.allow[{i}]"),
                        format!("`{text}` is not a network (write 192.0.2.0/24, or an address)"),
                    ),
                },
            }
        }
    }
    let mut notify = Vec::new();
    if let Some(list) = &t.notify {
        for (i, (loc, text)) in items(list).enumerate() {
            let text = text.trim();
            let addr = text
                .parse::<SocketAddr>()
                .or_else(|_| text.parse::<IpAddr>().map(|a| SocketAddr::new(a, 53)));
            match addr {
                Ok(a) => {
                    notify.push(a);
                    allow.push(IpNet::from(a.ip()));
                }
                Err(_) => r.at(
                    loc,
                    format!("transfer.notify[{i}]"),
                    format!(
                        "`{text}` is not an address (write 192.0.2.53, 192.0.2.53:5300 or [2001:db8::53]:53)"
                    ),
                ),
            }
        }
    }
    if allow.is_empty() && t.allow.is_none() && t.notify.is_none() {
        r.at(
            raw.referenced,
            "transfer",
            "say who may transfer the zone: `allow:` (networks) or `notify:` (secondaries' addresses, which may then transfer)",
        );
    }
    let tsig = t.tsig.as_ref().and_then(|k| validate_tsig(r, k));
    let view = match view {
        None => TransferView::AllUp,
        Some(v) if v.value.trim() == ALL_UP => TransferView::AllUp,
        Some(v) => match sites.iter().position(|s| s.name == v.value.trim()) {
            Some(i) => TransferView::Site(i),
            None => {
                let known: Vec<&str> = sites.iter().map(|s| s.name.as_str()).collect();
                r.at(
                    v.referenced,
                    "transfer-view",
                    format!(
                        "`{}` is neither `{ALL_UP}` nor a site of this zone (sites: {})",
                        v.value,
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                );
                TransferView::AllUp
            }
        },
    };
    Some(TransferConfig {
        allow,
        notify,
        tsig,
        view,
    })
}

fn validate_tsig(r: &mut Report, raw: &Spanned<TsigRaw>) -> Option<TsigKeyConfig> {
    let k = &raw.value;
    let name = match Name::from_ascii(k.name.value.trim()) {
        Ok(mut n) => {
            n.set_fqdn(true);
            n
        }
        Err(e) => {
            r.at(
                k.name.referenced,
                "transfer.tsig.name",
                format!("`{}` is not a key name: {e}", k.name.value),
            );
            return None;
        }
    };
    let algorithm = match k
        .algorithm
        .as_ref()
        .map(|a| (a, a.value.trim().to_ascii_lowercase()))
    {
        None => TsigAlgorithm::HmacSha256,
        Some((_, a)) if a == "hmac-sha256" => TsigAlgorithm::HmacSha256,
        Some((_, a)) if a == "hmac-sha384" => TsigAlgorithm::HmacSha384,
        Some((_, a)) if a == "hmac-sha512" => TsigAlgorithm::HmacSha512,
        Some((a, _)) => {
            r.at(
                a.referenced,
                "transfer.tsig.algorithm",
                format!(
                    "unknown algorithm `{}` (known: hmac-sha256, the default, hmac-sha384, hmac-sha512)",
                    a.value
                ),
            );
            return None;
        }
    };
    let secret = match data_encoding::BASE64.decode(k.secret.value.trim().as_bytes()) {
        Ok(s) if !s.is_empty() => s,
        _ => {
            r.at(
                k.secret.referenced,
                "transfer.tsig.secret",
                "not a key in base64 (make one with `tsig-keygen -a hmac-sha256 NAME` or `keymgr -t NAME hmac-sha256`)",
            );
            return None;
        }
    };
    Some(TsigKeyConfig {
        name,
        algorithm,
        secret,
    })
}
