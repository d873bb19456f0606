//! Validation of roles: the rules of an HTTP check's `roles:`, and the tiers of roles a
//! health-checked name asks for (`roles: [active, standby]`).

use std::sync::Arc;

use super::yaml::Spanned;

use super::check::parse_status_range;
use super::error::Report;
use super::yaml::{RoleRaw, TextList, items};
use crate::model::Roles;
use crate::model::role::{MAX_ROLES, RoleRule};

/// A check's own `roles:` list; `None` when it has an error (already reported).
pub(super) fn validate_rules(
    r: &mut Report,
    field: &str,
    raw: &Spanned<Vec<Spanned<RoleRaw>>>,
) -> Option<Arc<Roles>> {
    let field = format!("{field}.roles");
    if raw.value.is_empty() || raw.value.len() > MAX_ROLES {
        r.at(
            raw.referenced,
            &field,
            format!("give between 1 and {MAX_ROLES} roles"),
        );
        return None;
    }
    let mut ok = true;
    let mut rules = Vec::new();
    for (i, rule) in raw.value.iter().enumerate() {
        let rfield = format!("{field}[{i}]");
        let rule = &rule.value;
        let name = rule.role.value.trim();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            r.at(
                rule.role.referenced,
                format!("{rfield}.role"),
                format!("`{name}` is not a role name (letters, digits, - and _)"),
            );
            ok = false;
        }
        let mut status = Vec::new();
        match &rule.status {
            None => status.push((200, 299)),
            Some(list) => {
                for (j, (loc, text)) in items(list).enumerate() {
                    match parse_status_range(text) {
                        Some(range) => status.push(range),
                        None => {
                            r.at(
                                loc,
                                format!("{rfield}.status[{j}]"),
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
        let json = rule.json.as_ref().map_or_else(Vec::new, |m| {
            m.value
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect()
        });
        rules.push(RoleRule {
            role: name.to_string(),
            status,
            body_contains: rule.body_contains.as_ref().map(|b| b.value.clone()),
            json,
            healthy: rule.healthy.unwrap_or(true),
        });
    }
    ok.then(|| {
        Arc::new(Roles {
            rules,
            leader: None,
        })
    })
}

/// A name's `roles:` as one mask of role indices per tier, given the roles of its
/// members' checks (`None` for a member whose checks have none). Every member must have
/// the same roles, or a tier would mean different things for different members.
pub(super) fn validate_tiers(
    r: &mut Report,
    field: &str,
    raw: &Spanned<Vec<Spanned<TextList>>>,
    members: &[(String, Option<Arc<Roles>>)],
) -> Option<Vec<u64>> {
    let field = format!("{field}.roles");
    let mut roles: Option<&Arc<Roles>> = None;
    for (mfield, member_roles) in members {
        match (member_roles, roles) {
            (None, _) => {
                r.at(
                    raw.referenced,
                    &field,
                    format!("{mfield} has no check with roles: give the name or the member a `vault` check, or an http check with `roles:`"),
                );
                return None;
            }
            (Some(m), Some(first)) if m.names() != first.names() => {
                r.at(
                    raw.referenced,
                    &field,
                    format!("{mfield} has roles [{}], unlike the first member's [{}]; give every member the same roles", m.names().join(", "), first.names().join(", ")),
                );
                return None;
            }
            (Some(m), _) => roles = roles.or(Some(m)),
        }
    }
    let roles = roles?;
    if raw.value.is_empty() {
        r.at(raw.referenced, &field, "give at least one role");
        return None;
    }
    let mut ok = true;
    let mut tiers = Vec::new();
    for (i, tier) in raw.value.iter().enumerate() {
        let mut mask = 0u64;
        for (loc, name) in items(tier) {
            let matching: u64 = roles
                .rules
                .iter()
                .enumerate()
                .filter(|(_, rule)| rule.role == name)
                .fold(0, |m, (j, _)| m | 1 << j);
            if matching == 0 {
                r.at(
                    loc,
                    format!("{field}[{i}]"),
                    format!(
                        "unknown role `{name}` (known: {})",
                        roles.names().join(", ")
                    ),
                );
                ok = false;
            } else if roles
                .rules
                .iter()
                .any(|rule| rule.role == name && !rule.healthy)
            {
                r.at(
                    loc,
                    format!("{field}[{i}]"),
                    format!("role `{name}` is unhealthy: a member in it is down, so no name can answer it"),
                );
                ok = false;
            }
            mask |= matching;
        }
        tiers.push(mask);
    }
    ok.then_some(tiers)
}
