//! Reading a role from an HTTP response, and the leader a node names.

use std::net::IpAddr;

use serde_json::Value;

use crate::model::Roles;

/// The index of the first rule that the response matches, if any. The body is parsed as
/// JSON only when a rule asks for a field.
pub(super) fn classify(roles: &Roles, status: u16, body: &[u8], address: IpAddr) -> Option<u8> {
    let text = String::from_utf8_lossy(body);
    let mut json: Option<Option<Value>> = None;
    let address = address.to_string();
    roles
        .rules
        .iter()
        .position(|rule| {
            rule.status
                .iter()
                .any(|&(lo, hi)| (lo..=hi).contains(&status))
                && rule
                    .body_contains
                    .as_ref()
                    .is_none_or(|needle| text.contains(&needle.replace("{address}", &address)))
                && (rule.json.is_empty() || {
                    let parsed = json.get_or_insert_with(|| serde_json::from_slice(body).ok());
                    rule.json.iter().all(|(field, want)| {
                        let got = parsed.as_ref().and_then(|v| v.get(field));
                        got.is_some_and(|got| {
                            serde_json::from_str::<Value>(want).ok().as_ref() == Some(got)
                        })
                    })
                })
        })
        .map(|i| i as u8)
}

/// The host a leader field names, lower-cased: `https://Node1.vault.kemp:8200` and
/// `node1.vault.kemp:8200` give `node1.vault.kemp`, `https://[::1]:8200` gives `::1`.
/// `None` for an empty field (no leader known).
pub(super) fn leader_host(body: &[u8], field: &str) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let text = value.get(field)?.as_str()?.trim();
    let rest = text.split_once("://").map_or(text, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split_once(']')?.0
    } else if authority.matches(':').count() > 1 {
        authority // a bare IPv6 address
    } else {
        authority.split(':').next()?
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    (!host.is_empty()).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vault_role(status: u16, body: &str) -> Option<String> {
        let roles = Roles::vault();
        classify(
            &roles,
            status,
            body.as_bytes(),
            "127.0.0.1".parse().unwrap(),
        )
        .map(|i| roles.name(i).unwrap().to_string())
    }

    #[test]
    fn vault_codes_and_bodies_give_roles() {
        let active = r#"{"initialized":true,"sealed":false,"standby":false}"#;
        let standby = r#"{"initialized":true,"sealed":false,"standby":true}"#;
        assert_eq!(vault_role(200, active).as_deref(), Some("active"));
        assert_eq!(vault_role(429, standby).as_deref(), Some("standby"));
        assert_eq!(
            vault_role(473, standby).as_deref(),
            Some("performance-standby")
        );
        assert_eq!(vault_role(474, standby).as_deref(), Some("ha-unhealthy"));
        assert_eq!(vault_role(503, "{}").as_deref(), Some("sealed"));
        assert_eq!(vault_role(530, "").as_deref(), Some("removed"));
        assert_eq!(vault_role(501, "").as_deref(), Some("uninitialized"));
        // A 200 that is not Vault's (a proxy's page), or a standby's body with a 200.
        assert_eq!(vault_role(200, "<html>ok</html>"), None);
        assert_eq!(vault_role(200, standby), None);
        assert_eq!(vault_role(500, active), None);
    }

    #[test]
    fn body_rules_substitute_the_address() {
        let roles = Roles {
            rules: vec![
                crate::model::role::RoleRule {
                    role: "leader".into(),
                    status: vec![(200, 200)],
                    body_contains: Some("\"{address}:8300\"".into()),
                    json: vec![],
                    healthy: true,
                },
                crate::model::role::RoleRule {
                    role: "follower".into(),
                    status: vec![(200, 200)],
                    body_contains: None,
                    json: vec![],
                    healthy: true,
                },
            ],
            leader: None,
        };
        let at = |ip: &str| classify(&roles, 200, b"\"10.0.0.1:8300\"", ip.parse().unwrap());
        assert_eq!(at("10.0.0.1"), Some(0));
        assert_eq!(at("10.0.0.2"), Some(1));
    }

    #[test]
    fn leader_hosts_from_urls_and_addresses() {
        let host = |v: &str| {
            leader_host(
                format!(r#"{{"leader_address":"{v}"}}"#).as_bytes(),
                "leader_address",
            )
        };
        assert_eq!(
            host("https://Node1.Vault.Kemp:8200").as_deref(),
            Some("node1.vault.kemp")
        );
        assert_eq!(
            host("https://127.0.1.1:8200/").as_deref(),
            Some("127.0.1.1")
        );
        assert_eq!(
            host("http://[2001:db8::1]:8200").as_deref(),
            Some("2001:db8::1")
        );
        assert_eq!(host("10.0.0.1:8300").as_deref(), Some("10.0.0.1"));
        assert_eq!(host(""), None);
        assert_eq!(leader_host(b"not json", "leader_address"), None);
    }
}
