//! The `meridian` binary: `check` on broken files, and `serve` on the shipped demo.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{repo, run_meridian};

fn check(config: &Path) -> (i32, String, String) {
    let (code, stdout, stderr) =
        run_meridian(&["check".as_ref(), "--config".as_ref(), config.as_ref()]);
    (code.unwrap_or(-1), stdout, stderr)
}

/// Runs `meridian serve` on a configuration that must not start: (exit code, stderr).
fn serve_refused(config: &Path) -> (Option<i32>, String) {
    let (code, _, stderr) = run_meridian(&["serve".as_ref(), "--config".as_ref(), config.as_ref()]);
    (code, stderr)
}

#[test]
fn shipped_demo_configuration_is_valid() {
    let (code, stdout, stderr) = check(&repo().join("meridian.yaml"));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("ok: 3 zone(s)"), "{stdout}");
    // The README's admin examples use the demo's token.
    let server = meridian::config::load_server(&repo().join("meridian.yaml")).unwrap();
    let token = server
        .admin
        .and_then(|a| a.token)
        .expect("the demo has a token");
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    assert!(readme.contains(&format!("export TOKEN={token}")));
}

const BROKEN: &str = r#"zone: broken.test
ns: [ns1]
records:
  ns1: { A: 192.0.2.300 }
  www: { CNAME: app, A: 192.0.2.1 }
  away.example.com.: { A: 192.0.2.2 }
  mx: { MX: "ten mail" }
sites:
  lon: { lat: 51.5, lon: -0.1 }
fqdns:
  app:
    selection: fixed-weight
    members:
      - { address: 192.0.2.10, weight: 0 }
      - { address: 192.0.2.10, site: paris }
      - { address: 10.0.0.300 }
  rr:
    selection: random
    members: [{ address: 192.0.2.20 }]
"#;

#[test]
fn check_reports_every_error_with_file_line_column_and_field() {
    let (dir, server) = crate::common::write_config(&[("broken.yaml", BROKEN)]);
    let (code, _, stderr) = check(&server);
    assert_eq!(code, 1, "{stderr}");
    let file = dir.path().join("zones/broken.yaml");
    let f = file.display();
    // serde stops at the first type error (`random`), so the semantic pass only runs once
    // that is fixed: check the two passes separately.
    assert!(
        stderr.contains(&format!(
            "{f}:18:16: fqdns.rr.selection: unknown variant `random`"
        )),
        "{stderr}"
    );
    std::fs::write(&file, BROKEN.replace("random", "round-robin")).unwrap();
    let (code, _, stderr) = check(&server);
    assert_eq!(code, 1);
    for expected in [
        format!("{f}:4:13: records.ns1.A[0]: `192.0.2.300` is not an IPv4 address"),
        format!("{f}:5:17: records.www.CNAME: a CNAME cannot stand beside other data"),
        format!(
            "{f}:6:22: records.away.example.com.: away.example.com. is outside the zone broken.test."
        ),
        format!("{f}:7:13: records.mx.MX[0]: bad MX data `ten mail`"),
        format!("{f}:14:40: fqdns.app.members[0].weight: must be between 1 and 1000000 (got 0)"),
        format!("{f}:15:20: fqdns.app.members[1].address: duplicate member 192.0.2.10"),
        format!("{f}:15:38: fqdns.app.members[1].site: unknown site `paris` (known sites: lon)"),
        format!("{f}:16:20: fqdns.app.members[2].address: `10.0.0.300` is not an IP address"),
    ] {
        assert!(
            stderr.contains(&expected),
            "missing\n  {expected}\nin\n{stderr}"
        );
    }
    assert!(stderr.trim_end().ends_with("8 error(s)"), "{stderr}");
}

#[test]
fn check_reports_yaml_syntax_unknown_fields_and_duplicate_keys() {
    let cases = [
        (
            "zone: a.test\nns: [ns1]\nfqdns:\n  x:\n    members: [{ address: 192.0.2.1, wieght: 5 }]\n",
            "5:37: fqdns.x.members[0].wieght: unknown field `wieght`",
        ),
        (
            "zone: a.test\nns: [ns1]\nfqdns:\n  x: { members: [] }\n  x: { members: [] }\n",
            "5:3: fqdns: `x` is given twice, on line 4 and on line 5: keep one (merge what the two hold); reading stopped here, so the rest of this file is checked once this is fixed",
        ),
        (
            "zone: a.test\nns: [ns1]\nfqdns:\n  x:\n    check: { type: tcp, port: 82000 }\n    members: [{ address: 192.0.2.1 }]\n",
            "5:31: fqdns.x.check.port: must be 1-65535 (got 82000); reading stopped here",
        ),
        (
            "zone: a..test\nns: [ns1]\n",
            "1:7: zone: `a..test` has an empty label (two dots in a row, or a leading dot): separate labels with single dots",
        ),
        (
            "zone: a.test\nns: [ns1]\nrecords:\n  www: { A: 192.0.2.1 }\n    mail: { A: 192.0.2.2 }\n",
            "5:5: records: while parsing a block mapping, did not find expected key: line 5 is indented 4 spaces, more than line 4 (2 spaces), which does not open a block: indent it 2 spaces like line 4",
        ),
        (
            "zone: a.test\nns: [ns1]\nfqdns:\n  x:\n    check: { type: tpc, port: 80 }\n    members: [{ address: 192.0.2.1 }]\n",
            "5:20: fqdns.x.check.type: unknown check type `tpc`, expected one of none, tcp, icmp, http, https, vault\n",
        ),
        ("zone: a.test\nns: [ns1\n", "2:5"),
        (
            "zone: a.test\nns: [ns1]\nfqdns:\n  x: { members: [] }\n",
            "4:17: fqdns.x.members: needs at least one member",
        ),
        (
            "zone: a.test\nns: [ns1]\nfqdns:\n  x:\n    check: { type: tcp }\n    members: [{ address: 192.0.2.1 }]\n",
            "5:12: fqdns.x.check.port: a tcp check needs a port",
        ),
    ];
    for (text, expected) in cases {
        let (dir, server) = crate::common::write_config(&[("a.yaml", text)]);
        let (code, _, stderr) = check(&server);
        assert_eq!(code, 1, "{text}");
        let want = format!("{}:{expected}", dir.path().join("zones/a.yaml").display());
        assert!(stderr.contains(&want), "missing\n  {want}\nin\n{stderr}");
        // One mistake, one error.
        assert!(stderr.ends_with("\n1 error(s)\n"), "{stderr}");
    }
}

#[test]
fn check_warns_of_names_that_lack_their_trailing_dot_and_finds_a_missing_zones_directory() {
    let zone = "zone: kemp.local\nsoa: { mname: ns1.kemp.local, rname: hostmaster.kemp.local. }\nns: [ns1.kemp.local.]\nrecords:\n  www: { CNAME: app.kemp.local }\n  ok: { CNAME: app }\n  app: { A: 192.0.2.1 }\n";
    let (dir, server) = crate::common::write_config(&[("k.yaml", zone)]);
    let (code, stdout, stderr) = check(&server);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("ok: 1 zone(s)"));
    let f = dir.path().join("zones/k.yaml");
    let f = f.display();
    let warnings: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        warnings,
        [
            format!(
                "warning: {f}:2:15: soa.mname: `ns1.kemp.local` has no trailing dot, so it is relative to the zone and becomes ns1.kemp.local.kemp.local.; write `ns1.kemp.local.` if you mean that name"
            ),
            format!(
                "warning: {f}:5:17: records.www.CNAME[0]: `app.kemp.local` has no trailing dot, so it is relative to the zone and becomes app.kemp.local.kemp.local.; write `app.kemp.local.` if you mean that name"
            ),
        ]
    );

    std::fs::write(&server, "listen: [127.0.0.1:0]\nzones: elsewhere\n").unwrap();
    let (code, _, stderr) = check(&server);
    assert_eq!(code, 1);
    assert_eq!(
        stderr,
        format!(
            "{}:2:8: zones: the zones directory {} does not exist: create it and put the zone files in it, or point `zones:` at the directory that holds them\n1 error(s)\n",
            server.display(),
            dir.path().join("elsewhere").display()
        )
    );
}

#[test]
fn check_reports_a_zone_defined_twice() {
    let z = "zone: a.test\nns: [ns1]\n";
    let (dir, server) = crate::common::write_config(&[("a.yaml", z), ("b.yaml", z)]);
    let (code, _, stderr) = check(&server);
    assert_eq!(code, 1);
    let b = dir.path().join("zones/b.yaml");
    assert!(
        stderr.contains(&format!(
            "{}:1:1: zone: zone a.test. is already defined",
            b.display()
        )),
        "{stderr}"
    );
}

#[test]
fn demo_answers_dig_as_the_readme_shows() {
    let dir = tempfile::tempdir().unwrap();
    let server = dir.path().join("meridian.yaml");
    let zones = repo().join("zones");
    std::fs::write(
        &server,
        format!("listen: [127.0.0.1:0]\nzones: {}\n", zones.display()),
    )
    .unwrap();
    let served = crate::common::serve(&server);
    let addr = served.addr;
    let dig = |args: &[&str]| {
        let out = Command::new("dig")
            .arg(format!("@{}", addr.ip()))
            .args(["-p", &addr.port().to_string()])
            .args(args)
            .output()
            .expect("dig is installed (apt-get install dnsutils)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // The README's first block, word for word but the query id and the TTL.
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let block = readme
        .split("```console\n$ dig @127.0.0.1 -p 5300 ")
        .nth(1)
        .and_then(|b| b.split("\n```").next())
        .expect("the README's dig block");
    let (flags, shown) = block.split_once('\n').unwrap();
    let args: Vec<&str> = flags.split_whitespace().collect();
    let printed = dig(&args);
    let normal = |text: &str| -> Vec<String> {
        text.lines()
            .map(|l| match l.split_once(", id: ") {
                Some((head, _)) => format!("{head}, id: N"),
                None if l.starts_with("vault.kemp.local.\t") => {
                    let f: Vec<&str> = l.split('\t').collect();
                    format!("{}\tTTL\t{}", f[0], f[2..].join("\t"))
                }
                None => l.to_string(),
            })
            .collect()
    };
    assert_eq!(normal(printed.trim_end()), normal(shown), "{printed}");
    let out = dig(&["vault.kemp.local"]);
    assert!(out.contains("status: NOERROR"), "{out}");
    assert!(out.contains("flags: qr aa"), "{out}");
    // No fake Vault runs here, so every member is down and the name fails open to the
    // heaviest member, with a TTL cut to the time until a member could come up.
    let answer = out
        .lines()
        .find(|l| l.starts_with("vault.kemp.local.\t"))
        .expect("an answer line");
    assert!(answer.ends_with("\tIN\tA\t127.0.1.1"), "{out}");
    let ttl: u32 = answer.split('\t').nth(1).unwrap().parse().unwrap();
    assert!((1..=4).contains(&ttl), "TTL {ttl} <= rise 2 x interval 2s");
    let short = dig(&["+short", "node3.vault.kemp"]);
    assert_eq!(short.trim(), "127.0.1.3");
    let tcp = dig(&["+tcp", "+short", "www.kemp.local"]);
    assert_eq!(tcp.trim(), "vault.kemp.local.\n127.0.1.1");
    let nx = dig(&["nothing.kemp.local"]);
    assert!(nx.contains("status: NXDOMAIN"), "{nx}");
    drop(served);
}

#[test]
fn serve_fails_clearly_when_the_port_is_taken() {
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let (dir, _) = crate::common::write_config(&[("a.yaml", "zone: a.test\nns: [ns1]\n")]);
    let server = dir.path().join("busy.yaml");
    std::fs::write(
        &server,
        format!("listen: [127.0.0.1:{port}]\nzones: zones\n"),
    )
    .unwrap();
    let started = Instant::now();
    let (code, stderr) = serve_refused(&server);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains(&format!(
            "cannot bind UDP 127.0.0.1:{port}: Address already in use"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn serve_refuses_to_start_on_a_broken_configuration() {
    let (_dir, server) = crate::common::write_config(&[(
        "a.yaml",
        "zone: a.test\nns: [ns1]\nrecords: { x: { A: nope } }\n",
    )]);
    let (code, stderr) = serve_refused(&server);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("records.x.A[0]: `nope` is not an IPv4 address"),
        "{stderr}"
    );
}

#[test]
fn check_reports_a_missing_corrupt_or_unsuitable_geoip_database() {
    let geoip = repo().join("geoip/maxmind-test-data");
    let cases = [
        (geoip.join("nope.mmdb"), "cannot open GeoIP database"),
        (
            geoip.join("GeoIP2-City-Test-Invalid-Node-Count.mmdb"),
            "cannot open GeoIP database",
        ),
        (
            geoip.join("GeoLite2-ASN-Test.mmdb"),
            "GeoIP database type is `GeoLite2-ASN`; a City or Country database (GeoIP2/GeoLite2 layout) is needed",
        ),
    ];
    for (db, expected) in cases {
        let (dir, _) = crate::common::write_config(&[("a.yaml", "zone: a.test\nns: [ns1]\n")]);
        let server = dir.path().join("geo.yaml");
        std::fs::write(&server, format!("zones: zones\ngeoip: {}\n", db.display())).unwrap();
        let (code, _, stderr) = check(&server);
        assert_eq!(code, 1, "{stderr}");
        let want = format!(
            "{}:2:8: geoip: {}: {expected}",
            server.display(),
            db.display()
        );
        assert!(stderr.contains(&want), "missing\n  {want}\nin\n{stderr}");
        // serve refuses to start on it as well.
        assert_eq!(serve_refused(&server).0, Some(1));
    }
}
