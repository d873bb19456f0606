//! The Kubernetes manifests (`deploy/kubernetes/`): rendered with `kubectl kustomize`,
//! checked offline against the Kubernetes schemas with `kubernetes-validate` (PyPI), and
//! the configuration they mount served from a directory laid out as the kubelet lays out
//! a ConfigMap volume, whose update (the `..data` symlink swap) Meridian reloads.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use hickory_proto::rr::RecordType;

use crate::common::backend::free_port;
use crate::common::*;

/// `kubectl kustomize DIR` (DIR from the repository root).
fn kustomize(dir: &str) -> String {
    let out = Command::new("kubectl")
        .args(["kustomize", dir])
        .current_dir(repo())
        .output()
        .expect("kubectl is installed (its kustomize renders the manifests)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Whether `yaml` passes `kubernetes-validate --strict` (unknown fields fail), with what
/// it printed.
fn validate(yaml: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rendered.yaml");
    std::fs::write(&file, yaml).unwrap();
    let out = Command::new("kubernetes-validate")
        .args(["--strict", "--kubernetes-version", "1.30.0"])
        .arg(&file)
        .output()
        .expect("kubernetes-validate is installed (pip install kubernetes-validate)");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success() && !text.contains("ERROR"), text)
}

#[test]
fn the_manifests_render_and_pass_the_kubernetes_schemas() {
    for dir in [
        "deploy/kubernetes/base",
        "deploy/kubernetes/overlays/example",
    ] {
        let (ok, text) = validate(&kustomize(dir));
        assert!(ok, "{dir}:\n{text}");
        for kind in ["deployment", "service", "poddisruptionbudget", "configmap"] {
            assert!(
                text.contains(&format!("passed for resource {kind}/")),
                "{dir}: {kind}\n{text}"
            );
        }
    }
    let example = kustomize("deploy/kubernetes/overlays/example");
    for promised in [
        "replicas: 3",
        "type: NodePort",
        "image: registry.example.com/meridian:0.1.0",
        "namespace: dns",
        "path: /healthz",
        "readOnlyRootFilesystem: true",
        "kind: ServiceMonitor",
        "kind: PodDisruptionBudget",
        "clusterIP: None",
    ] {
        assert!(
            example.contains(promised),
            "the example overlay lacks `{promised}`"
        );
    }
    // Every capability dropped, none added back.
    assert!(example.contains("drop:\n            - ALL"), "{example}");
    assert!(!example.contains("add:"), "{example}");
    // The check can fail: a misspelt field is rejected.
    let (ok, text) = validate(&example.replace("replicas: 3", "replica: 3"));
    assert!(!ok, "a misspelt field passed:\n{text}");
}

/// Writes `files` into `dir` as the kubelet updates a ConfigMap or Secret volume: a new
/// timestamped directory, a `..data_tmp` symlink to it renamed over `..data`, each file a
/// symlink through `..data`, and the previous directory removed.
fn project(dir: &Path, generation: u32, files: &[(&str, &str)]) {
    use std::os::unix::fs::symlink;
    std::fs::create_dir_all(dir).unwrap();
    let stamped = format!("..2026_12_05_12_00_00.{generation:09}");
    std::fs::create_dir(dir.join(&stamped)).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(&stamped).join(name), text).unwrap();
    }
    let old = std::fs::read_link(dir.join("..data")).ok();
    symlink(&stamped, dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    for (name, _) in files {
        let visible = dir.join(name);
        if std::fs::symlink_metadata(&visible).is_err() {
            symlink(Path::new("..data").join(name), visible).unwrap();
        }
    }
    if let Some(old) = old {
        std::fs::remove_dir_all(dir.join(old)).unwrap();
    }
}

fn repo_file(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap()
}

#[test]
fn the_mounted_configuration_serves_and_a_configmap_update_reloads_it() {
    let root = tempfile::tempdir().unwrap();
    let host = "127.0.97.1";
    let (port, admin_port, gossip_port) = (
        free_port(ip(host)),
        free_port(ip(host)),
        free_port(ip(host)),
    );
    // The base's server file, as mounted, with loopback addresses and a state file here.
    let server = repo_file("deploy/kubernetes/base/meridian.yaml")
        .replace("0.0.0.0:5353", &format!("{host}:{port}"))
        .replace("0.0.0.0:9153", &format!("{host}:{admin_port}"))
        // A peer that is not there: this server alone, cut off, decides by its own view.
        .replace("0.0.0.0:5400", &format!("{host}:{gossip_port}"))
        .replace("meridian-peers:5400", "127.0.97.2:5400")
        .replace(
            "/var/lib/meridian/meridian.state.json",
            &root
                .path()
                .join("meridian.state.json")
                .display()
                .to_string(),
        );
    let zone = repo_file("deploy/kubernetes/base/zones/example.test.yaml");
    let token = repo_file("deploy/kubernetes/overlays/example/admin-token");
    project(
        &root.path().join("server"),
        1,
        &[("meridian.yaml", &server)],
    );
    project(
        &root.path().join("zones"),
        1,
        &[("example.test.yaml", &zone)],
    );
    let key = repo_file("deploy/kubernetes/overlays/example/cluster-key");
    project(
        &root.path().join("secret"),
        1,
        &[("admin-token", &token), ("cluster-key", &key)],
    );

    let served = serve(&root.path().join("server/meridian.yaml"));
    let www = || {
        addresses(&udp_exchange(
            served.addr,
            &query("www.example.test.", RecordType::A),
        ))
    };
    assert_eq!(www(), ["192.0.2.10"]);
    // The readiness probe's answer, and the token read from the Secret's file.
    let admin = std::net::SocketAddr::new(ip(host), admin_port);
    assert_eq!(http(admin, "GET", "/healthz", None).0, 200);
    // The cluster key read from the Secret's file: the member runs, alone so far.
    let (_, status) = http(admin, "GET", "/status", None);
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["cluster"]["isolated"], true, "{status}");
    let write = |token| {
        http(
            admin,
            "POST",
            "/members/www.example.test/192.0.2.10/disable",
            token,
        )
        .0
    };
    assert_eq!(write(Some("not-the-token-at-all")), 401);
    assert_eq!(
        write(Some(token.trim())),
        404,
        "the token is accepted; the name has no members"
    );

    // `kubectl apply -k` with an edited zone: the kubelet swaps `..data`.
    project(
        &root.path().join("zones"),
        2,
        &[(
            "example.test.yaml",
            &zone.replace("192.0.2.10", "192.0.2.11"),
        )],
    );
    let took = eventually(Duration::from_secs(5), "the swapped zone to serve", || {
        www() == ["192.0.2.11"]
    });
    assert!(served.log_contains("configuration files changed: reloading"));
    // Within the file watcher's debounce, not the 2 s poll that would catch it anyway.
    assert!(took < Duration::from_millis(1800), "took {took:?}");
}

#[test]
fn the_admin_token_file_must_exist_and_hold_a_long_enough_token() {
    let check = |admin: &str, token: Option<&str>| {
        let (dir, file) = write_config_with(admin, &[("z.yaml", "zone: z.test\nns: [ns1]\n")]);
        if let Some(t) = token {
            std::fs::write(dir.path().join("token"), t).unwrap();
        }
        let (code, _, err) = run_meridian(&["check".as_ref(), "-c".as_ref(), file.as_os_str()]);
        (code, err, dir)
    };
    let admin = "admin:\n  listen: 127.0.0.1:0\n  token-file: token\n";
    let (code, err, dir) = check(admin, None);
    assert_eq!(code, Some(1), "{err}");
    let missing = dir.path().join("token");
    assert!(
        err.contains(&format!(
            "meridian.yaml:5:15: admin.token-file: {}",
            missing.display()
        )),
        "{err}"
    );
    let (code, err, _) = check(admin, Some("short\n"));
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("meridian.yaml:5:15: admin.token-file: use at least 16 characters"),
        "{err}"
    );
    let (code, err, _) = check(admin, Some("a-token-long-enough-0123\n"));
    assert_eq!(code, Some(0), "{err}");
}
