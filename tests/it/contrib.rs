//! `contrib/`: the Grafana dashboard and the Prometheus alert rules ask only for metrics
//! that Meridian exports, and the rules fire as `promtool test rules` expects.

use std::collections::BTreeSet;
use std::process::Command;

use crate::common::{in_process, repo};

/// The metric families a server exports, from the HELP lines of its `/metrics`.
fn exported() -> BTreeSet<String> {
    let zone =
        "zone: c.test\nns: [ns1.c.test.]\nfqdns:\n  app:\n    members: [{ address: 192.0.2.1 }]\n";
    let s = in_process(&[("c.yaml", zone)]);
    // A cluster member too, for the cluster's metrics (alone: no peer answers).
    let cluster = meridian::config::ClusterConfig {
        listen: "127.0.97.3:0".parse().unwrap(),
        peers: vec!["127.0.97.4:5400".into()],
        key: b"a key for the metrics test, 32 chars+".to_vec(),
    };
    let member =
        s.rt.block_on(meridian::cluster::Cluster::start(
            &cluster,
            Box::new(Vec::new),
            Default::default(),
        ))
        .unwrap();
    let _ = s.state.cluster.set(member);
    s.state
        .metrics()
        .lines()
        .filter_map(|l| l.strip_prefix("# HELP ")?.split(' ').next())
        .map(str::to_string)
        .collect()
}

/// The metric names an expression uses: words that start `meridian_` or `process_`.
fn metrics_in(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut word = String::new();
    for c in expr.chars().chain([' ']) {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            if word.starts_with("meridian_") || word.starts_with("process_") {
                names.push(std::mem::take(&mut word));
            }
            word.clear();
        }
    }
    names
}

/// The names among `used` that no exported family accounts for (a histogram's `_bucket`,
/// `_sum` and `_count` belong to it).
fn unknown(used: &[String], exported: &BTreeSet<String>) -> Vec<String> {
    used.iter()
        .filter(|n| {
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| n.strip_suffix(s))
                .unwrap_or(n);
            !exported.contains(*n) && !exported.contains(family)
        })
        .cloned()
        .collect()
}

fn dashboard_exprs() -> Vec<String> {
    let text =
        std::fs::read_to_string(repo().join("contrib/grafana/meridian-dashboard.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            exprs.push(target["expr"].as_str().unwrap().to_string());
        }
    }
    for var in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(q) = var["query"].as_str() {
            exprs.push(q.to_string());
        }
    }
    exprs
}

fn alert_exprs() -> Vec<String> {
    let text =
        std::fs::read_to_string(repo().join("contrib/prometheus/meridian-alerts.yml")).unwrap();
    let rules: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    let mut exprs = Vec::new();
    for group in rules["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            exprs.push(rule["expr"].as_str().unwrap().to_string());
            for a in rule["annotations"].as_object().unwrap().values() {
                exprs.push(a.as_str().unwrap().to_string());
            }
        }
    }
    exprs
}

#[test]
fn the_dashboard_and_the_alerts_ask_only_for_exported_metrics() {
    let exported = exported();
    let dashboard: Vec<String> = dashboard_exprs()
        .iter()
        .flat_map(|e| metrics_in(e))
        .collect();
    let alerts: Vec<String> = alert_exprs().iter().flat_map(|e| metrics_in(e)).collect();
    assert!(dashboard.len() >= 20 && alerts.len() >= 6);
    assert_eq!(unknown(&dashboard, &exported), Vec::<String>::new());
    assert_eq!(unknown(&alerts, &exported), Vec::<String>::new());
    for alerted in [
        "meridian_name_failing",
        "meridian_member_flapping",
        "meridian_config_last_reload_successful",
        "meridian_probe_duration_seconds_bucket",
        "meridian_cluster_isolated",
        "meridian_cluster_config_mismatch",
    ] {
        assert!(alerts.iter().any(|a| a == alerted), "no alert on {alerted}");
    }
    // The same check catches a name Meridian does not export.
    assert_eq!(
        unknown(&metrics_in("rate(meridian_quries_total[5m])"), &exported),
        ["meridian_quries_total"]
    );
}

#[test]
fn promtool_checks_the_rules_and_each_alert_fires_as_its_test_says() {
    let dir = repo().join("contrib/prometheus");
    for args in [
        ["check", "rules", "meridian-alerts.yml"],
        ["test", "rules", "meridian-alerts.test.yml"],
    ] {
        let out = Command::new("promtool")
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("promtool (Debian package prometheus) is installed");
        assert!(
            out.status.success(),
            "promtool {}:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
