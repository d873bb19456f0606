//! The Docker Compose demo cannot run here (no Docker engine), so its files are checked:
//! the Compose file with a compose-spec parser, the demo's Meridian config with our own.

use crate::common::{repo, run_meridian};

#[test]
fn compose_file_is_valid_compose_spec() {
    let text = std::fs::read_to_string(repo().join("docker-compose.yml")).unwrap();
    let compose = compose_spec::Compose::options()
        .from_yaml_str(&text)
        .unwrap_or_else(|e| panic!("docker-compose.yml: {e}"));
    compose
        .validate_all()
        .expect("networks and volumes referenced are defined");
    let names: Vec<String> = compose.services.keys().map(ToString::to_string).collect();
    assert_eq!(names, ["meridian", "vault1", "vault2", "vault3"]);
    // The parser is strict: a misspelt key, even nested, is an error.
    for broken in [
        text.replace("ports:", "portz:"),
        text.replace("ipv4_address", "ipv4_adress"),
    ] {
        assert!(
            compose_spec::Compose::options()
                .from_yaml_str(&broken)
                .is_err()
        );
    }
    // The files it mounts and builds from exist.
    for path in [
        "Dockerfile",
        "docker/meridian.yaml",
        "docker/zones",
        "demo/fake-vault.py",
        "geoip",
    ] {
        assert!(repo().join(path).exists(), "{path} is missing");
    }
}

#[test]
fn dockerfile_builds_in_stages_and_runs_as_non_root() {
    let text = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    assert_eq!(
        text.lines().filter(|l| l.starts_with("FROM ")).count(),
        2,
        "build and runtime stages"
    );
    assert!(text.contains("\nUSER meridian\n"));
    assert!(text.contains("setcap cap_net_bind_service,cap_net_raw+ep"));
}

#[test]
fn demo_configuration_in_docker_is_valid() {
    // The image places geoip/ beside the server file; check the same layout here.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        repo().join("docker/meridian.yaml"),
        dir.path().join("meridian.yaml"),
    )
    .unwrap();
    std::os::unix::fs::symlink(repo().join("docker/zones"), dir.path().join("zones")).unwrap();
    std::os::unix::fs::symlink(repo().join("geoip"), dir.path().join("geoip")).unwrap();
    let config = dir.path().join("meridian.yaml");
    let (code, stdout, stderr) =
        run_meridian(&["check".as_ref(), "--config".as_ref(), config.as_ref()]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.starts_with("ok: 2 zone(s), 4 health-checked name(s)"),
        "{stdout}"
    );
}
