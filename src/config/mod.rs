//! YAML configuration: the server file and one file per zone, parsed and validated.
//!
//! Parsing happens in two passes. serde (through serde-saphyr) turns YAML into the shapes
//! of `yaml`, which keep the source position of every value (`Spanned`); then `server`,
//! `zone` and `check` validate those into the typed configuration of `types`, which the
//! zone table is compiled from. Every problem found on the way becomes a [`ConfigError`]
//! naming file, line, column and field, and validation keeps going so that
//! `meridian check` reports all of them at once.

mod budget;
mod check;
mod cluster;
mod dnssec;
mod error;
mod flow_lines;
mod load;
mod master;
mod quick_yaml;
mod rdata;
mod records_lines;
mod records_yaml;
mod roles;
mod scalar;
mod server;
mod transfer;
mod types;
mod words;
mod yaml;
mod zone;

pub use budget::Budget;
pub use cluster::ClusterConfig;
pub use dnssec::{
    CreatedKey, DnssecConfig, ZoneKey, algorithm_name, algorithm_named, create_key,
    create_missing_keys, read_key,
};
pub use error::{ConfigError, ConfigErrors};
pub use load::{load, load_reusing, parse_zone, with_dependencies, zone_files};
pub use server::{DEFAULT_LISTEN, load_server};
pub use transfer::{TransferConfig, TransferView, TsigKeyConfig};
pub use types::*;
pub use yaml::yaml_readers_agree;

#[cfg(test)]
mod tests {
    use super::check::parse_status_range;
    use super::*;
    use crate::model::CheckSpec;
    use hickory_proto::rr::{RData, RecordType};
    use std::path::Path;
    use std::time::Duration;

    fn zone(text: &str) -> Result<ZoneConfig, ConfigErrors> {
        parse_zone(Path::new("z.yaml"), text)
    }

    #[test]
    fn minimal_zone_gets_defaults() {
        let z =
            zone("zone: example.test\nns: [ns1]\nrecords:\n  ns1: { A: 192.0.2.53 }\n").unwrap();
        assert_eq!(z.origin.to_string(), "example.test.");
        assert_eq!(z.soa.mname.to_string(), "ns1.example.test.");
        assert_eq!(z.soa.rname.to_string(), "hostmaster.example.test.");
        assert_eq!(
            z.records[0].rdata(),
            vec![RData::A(
                "192.0.2.53".parse::<std::net::Ipv4Addr>().unwrap().into()
            )]
        );
    }

    #[test]
    fn a_health_checked_name_clashes_with_static_records_of_its_families() {
        let text = |records: &str| {
            format!(
                "zone: example.test\nns: [ns1]\nrecords:\n  ns1: {{ A: 192.0.2.53 }}\n{records}fqdns:\n  www:\n    members: [{{ address: 192.0.2.1 }}]\n  db:\n    members: [{{ address: 192.0.2.2 }}]\n"
            )
        };
        let errs = zone(&text("  WWW: { A: 192.0.2.9 }\n  db: { CNAME: www }\n"))
            .unwrap_err()
            .0;
        let mut lines: Vec<String> = errs.iter().map(|e| e.message.clone()).collect();
        lines.sort();
        assert_eq!(
            lines,
            [
                "db.example.test. also has a CNAME under records.db",
                "www.example.test. also has static A records under records.www",
            ]
        );
        // Records of the other family, or at other names, stand beside it.
        assert!(
            zone(&text(
                "  www: { AAAA: \"2001:db8::1\", TXT: hello }\n  app: { A: 192.0.2.7 }\n"
            ))
            .is_ok()
        );
    }

    #[test]
    fn a_zone_has_at_most_a_thousand_sites() {
        let text = |n: usize| {
            let sites: String = (0..n).map(|i| format!("  s{i}: {{}}\n")).collect();
            format!("zone: example.test\nns: [ns1]\nsites:\n{sites}")
        };
        assert!(zone(&text(1000)).is_ok());
        let errs = zone(&text(1001)).unwrap_err().0;
        assert_eq!(errs.len(), 1);
        // Named at one site's line (the sites are kept in name order).
        let (line, field) = (errs[0].line, &errs[0].field);
        assert!(
            (4..=1004).contains(&line) && field.starts_with("sites.s"),
            "{}",
            errs[0]
        );
        assert!(
            errs[0].message.contains("at most 1000 sites"),
            "{}",
            errs[0]
        );
    }

    #[test]
    fn errors_name_line_column_and_field() {
        let text = "zone: example.test\nns: [ns1]\nfqdns:\n  www:\n    members:\n      - { address: 192.0.2.1, weight: 0 }\n      - { address: 192.0.2.1 }\n      - { address: nope }\n";
        let errs = zone(text).unwrap_err().0;
        let lines: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert!(
            lines.contains(
                &"z.yaml:6:39: fqdns.www.members[0].weight: must be between 1 and 1000000 (got 0)"
                    .to_string()
            ),
            "{lines:?}"
        );
        assert!(
            lines.contains(
                &"z.yaml:7:20: fqdns.www.members[1].address: duplicate member 192.0.2.1"
                    .to_string()
            ),
            "{lines:?}"
        );
        assert!(
            lines.contains(
                &"z.yaml:8:20: fqdns.www.members[2].address: `nope` is not an IP address"
                    .to_string()
            ),
            "{lines:?}"
        );
    }

    #[test]
    fn unknown_field_is_reported_with_its_path() {
        let text = "zone: example.test\nns: [ns1]\nfqdns:\n  www:\n    members:\n      - { address: 192.0.2.1, wieght: 5 }\n";
        let e = &zone(text).unwrap_err().0[0];
        assert_eq!((e.line, e.column), (6, 31));
        assert_eq!(e.field, "fqdns.www.members[0].wieght");
        assert!(
            e.message.starts_with("unknown field `wieght`"),
            "{}",
            e.message
        );
    }

    #[test]
    fn relative_and_absolute_rdata_names() {
        let text = "zone: example.test\nns: [ns1]\nrecords:\n  www: { CNAME: vault }\n  _x._tcp: { SRV: \"0 0 8200 vault.example.test.\" }\n  mx: { MX: \"10 mail\" }\n";
        let z = zone(text).unwrap();
        let get = |t| z.records.iter().find(|s| s.rtype == t).unwrap().rdata()[0].to_string();
        assert_eq!(get(RecordType::CNAME), "vault.example.test.");
        assert_eq!(get(RecordType::SRV), "0 0 8200 vault.example.test.");
        assert_eq!(get(RecordType::MX), "10 mail.example.test.");
    }

    #[test]
    fn check_timing_and_status_ranges() {
        let text = "zone: example.test\nns: [ns1]\nfqdns:\n  www:\n    check: { type: https, path: /v1/sys/health, expect: [200, 429-430], interval: 1s }\n    members: [{ address: 192.0.2.1 }]\n";
        let z = zone(text).unwrap();
        let c = &z.health_checked[0].members[0].checks[0];
        assert_eq!(c.timing.interval, Duration::from_secs(1));
        assert_eq!(c.timing.timeout, Duration::from_millis(800));
        let CheckSpec::Http(h) = &c.spec else {
            panic!()
        };
        assert_eq!(
            (h.port, h.tls, h.expect.clone()),
            (443, true, vec![(200, 200), (429, 430)])
        );
    }

    #[test]
    fn vault_checks_and_role_tiers() {
        let text = "zone: example.test\nns: [ns1]\nfqdns:\n  vault:\n    roles: [[active, performance-standby], standby]\n    check: { type: vault }\n    members: [{ address: 192.0.2.1, node: Node1.Vault.Kemp }]\n";
        let z = zone(text).unwrap();
        let name = &z.health_checked[0];
        let CheckSpec::Http(h) = &name.members[0].checks[0].spec else {
            panic!()
        };
        assert_eq!(
            (h.port, h.tls, h.path.as_str()),
            (8200, true, "/v1/sys/health")
        );
        let roles = h.roles.as_ref().unwrap();
        let bit = |r: &str| 1u64 << roles.index(r).unwrap();
        assert_eq!(
            name.roles,
            [bit("active") | bit("performance-standby"), bit("standby")]
        );
        assert_eq!(name.members[0].node.as_deref(), Some("node1.vault.kemp"));
    }

    #[test]
    fn role_errors_say_what_to_do() {
        let errors = |text: &str| -> Vec<String> {
            zone(text)
                .unwrap_err()
                .0
                .iter()
                .map(|e| e.to_string())
                .collect()
        };
        let head = "zone: example.test\nns: [ns1]\nfqdns:\n  www:\n";
        let e = errors(&format!(
            "{head}    roles: [active]\n    check: {{ type: http }}\n    members: [{{ address: 192.0.2.1 }}]\n"
        ));
        assert_eq!(
            e,
            [
                "z.yaml:5:12: fqdns.www.roles: members[0] has no check with roles: give the name or the member a `vault` check, or an http check with `roles:`"
            ]
        );
        let e = errors(&format!(
            "{head}    roles: [leader]\n    check: {{ type: vault }}\n    members: [{{ address: 192.0.2.1 }}]\n"
        ));
        assert_eq!(
            e,
            [
                "z.yaml:5:13: fqdns.www.roles[0]: unknown role `leader` (known: uninitialized, removed, sealed, ha-unhealthy, dr-secondary, performance-standby, standby, active)"
            ]
        );
        let e = errors(&format!(
            "{head}    roles: [sealed]\n    check: {{ type: vault }}\n    members: [{{ address: 192.0.2.1 }}]\n"
        ));
        assert!(
            e[0].ends_with(
                "role `sealed` is unhealthy: a member in it is down, so no name can answer it"
            ),
            "{e:?}"
        );
        let e = errors(&format!(
            "{head}    check: {{ type: vault, expect: [200] }}\n    members: [{{ address: 192.0.2.1 }}]\n"
        ));
        assert!(
            e[0].ends_with("fqdns.www.check.expect: not used by a `vault` check"),
            "{e:?}"
        );
        let e = errors(&format!(
            "{head}    check: {{ type: http, expect: [200], roles: [{{ role: up }}] }}\n    members: [{{ address: 192.0.2.1 }}]\n"
        ));
        assert!(
            e[0].ends_with(
                "with roles, each role's status and body decide; remove expect and body-contains"
            ),
            "{e:?}"
        );
        let e = errors(&format!(
            "{head}    check: {{ type: vault, tls: false, tls-verify: false }}\n    members: [{{ address: 192.0.2.1 }}]\n"
        ));
        assert!(
            e[0].ends_with(
                "tls-verify, ca, client-cert and client-key apply to checks over TLS only"
            ),
            "{e:?}"
        );
    }

    #[test]
    fn generic_roles_for_patroni() {
        let text = "zone: example.test\nns: [ns1]\nfqdns:\n  db:\n    roles: [primary]\n    check:\n      type: http\n      port: 8008\n      path: /patroni\n      roles:\n        - { role: primary, status: 200, json: { role: primary } }\n        - { role: replica, status: 200, json: { role: replica } }\n    members: [{ address: 192.0.2.1 }]\n";
        let z = zone(text).unwrap();
        let CheckSpec::Http(h) = &z.health_checked[0].members[0].checks[0].spec else {
            panic!()
        };
        let roles = h.roles.as_ref().unwrap();
        assert_eq!(roles.names(), ["primary", "replica"]);
        assert_eq!(
            roles.rules[0].json,
            [("role".to_string(), "\"primary\"".to_string())]
        );
        assert_eq!(z.health_checked[0].roles, [1]);
    }

    #[test]
    fn recovery_comes_from_the_member_its_name_or_its_site() {
        let text = "zone: example.test\nns: [ns1]\nsites:\n  a: { recovery: manual }\n  b: {}\nfqdns:\n  www:\n    members:\n      - { address: 192.0.2.1, site: a }\n      - { address: 192.0.2.2, site: a, recovery: auto }\n      - { address: 192.0.2.3, site: b }\n  api:\n    recovery: manual\n    members: [{ address: 192.0.2.4, site: b }]\n";
        let z = zone(text).unwrap();
        let of = |n: usize| -> Vec<crate::model::Recovery> {
            z.health_checked[n]
                .members
                .iter()
                .map(|m| m.recovery)
                .collect()
        };
        use crate::model::Recovery::{Auto, Manual};
        assert_eq!(of(1), [Manual, Auto, Auto], "www");
        assert_eq!(of(0), [Manual], "api");
    }

    #[test]
    fn status_range_parsing() {
        assert_eq!(parse_status_range("200"), Some((200, 200)));
        assert_eq!(parse_status_range("200-299"), Some((200, 299)));
        assert_eq!(parse_status_range("299-200"), None);
        assert_eq!(parse_status_range("99"), None);
    }
}
