//! Operating it: live reload, SIGHUP, the admin API, forwarding, the query log.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::common::backend::{FakeResolver, TcpBackend, free_port};
use crate::common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

const TOKEN: &str = "test-token-0123456789";

fn zone(address: &str) -> String {
    format!(
        "zone: ops.test\nns: [ns1]\nfqdns:\n  app:\n    members:\n      - {{ address: {address}, weight: 100 }}\n      - {{ address: 192.0.2.2, weight: 50 }}\n"
    )
}

fn first(s: &TestServer, name: &str) -> Option<String> {
    addresses(&s.ask(name, RecordType::A)).into_iter().next()
}

#[test]
fn editing_zone_files_while_serving_changes_the_answers() {
    let s = start(&[("ops.yaml", &zone("192.0.2.1"))]);
    assert_eq!(first(&s, "app.ops.test.").as_deref(), Some("192.0.2.1"));
    let zones = s.dir.path().join("zones");

    replace_file(&zones.join("ops.yaml"), &zone("192.0.2.9"));
    eventually(Duration::from_secs(5), "the edited answer", || {
        first(&s, "app.ops.test.").as_deref() == Some("192.0.2.9")
    });

    // A new zone file is picked up; a removed one stops being served.
    std::fs::write(
        zones.join("new.yaml"),
        "zone: new.test\nns: [ns1]\nrecords:\n  www: { A: 192.0.2.77 }\n",
    )
    .unwrap();
    eventually(Duration::from_secs(5), "the new zone", || {
        first(&s, "www.new.test.").as_deref() == Some("192.0.2.77")
    });
    std::fs::remove_file(zones.join("new.yaml")).unwrap();
    eventually(
        Duration::from_secs(5),
        "the removed zone to be refused",
        || s.ask("www.new.test.", RecordType::A).metadata.response_code == ResponseCode::Refused,
    );
    // The new table serves before the reload finishes (and is counted).
    eventually(Duration::from_secs(5), "three reloads counted", || {
        s.running()
            .meridian
            .counters
            .reloads_ok
            .load(Ordering::Relaxed)
            >= 3
    });
}

#[test]
fn a_reload_compiles_only_the_zone_files_that_changed() {
    let other = "zone: other.test\nns: [ns1]\nfqdns:\n  rr:\n    selection: round-robin\n    answers: 1\n    members: [{ address: 192.0.2.11 }, { address: 192.0.2.12 }]\n";
    let s = start(&[("ops.yaml", &zone("192.0.2.1")), ("other.yaml", other)]);
    let zones = s.dir.path().join("zones");
    let table = || s.running().meridian.table.load_full();
    // The compiled zone of `origin` in a table.
    let compiled = |t: &meridian::zone::Table, origin: &str| {
        let file = t
            .zones()
            .find(|z| z.origin.to_string() == origin)
            .map(|z| z.file.clone())
            .unwrap();
        Arc::clone(t.zone_table(&file).unwrap())
    };
    let counters = || &s.running().meridian.counters;
    let reloads = || counters().reloads_ok.load(Ordering::Relaxed);
    let failed = || counters().reloads_failed.load(Ordering::Relaxed);
    let before = table();
    // The rotation of the unchanged zone moves on: its name is the same object.
    let rr = first(&s, "rr.other.test.").unwrap();

    replace_file(&zones.join("ops.yaml"), &zone("192.0.2.9"));
    eventually(Duration::from_secs(5), "the edited answer", || {
        first(&s, "app.ops.test.").as_deref() == Some("192.0.2.9")
    });
    let after = table();
    assert!(
        Arc::ptr_eq(
            &compiled(&before, "other.test."),
            &compiled(&after, "other.test.")
        ),
        "the unchanged zone is reused as it was"
    );
    assert!(!Arc::ptr_eq(
        &compiled(&before, "ops.test."),
        &compiled(&after, "ops.test.")
    ));
    assert_ne!(
        first(&s, "rr.other.test.").unwrap(),
        rr,
        "the rotation went on"
    );

    // A changed file is still checked against the unchanged ones.
    replace_file(
        &zones.join("ops.yaml"),
        "zone: sub.other.test\nns: [ns1]\nrecords:\n  www: { A: 192.0.2.5 }\n",
    );
    eventually(Duration::from_secs(5), "the rejected reload", || {
        failed() == 1
    });
    let (_, errors) = s.running().meridian.status().last_error.unwrap();
    assert!(errors.concat().contains("overlaps"), "{errors:?}");
    assert_eq!(first(&s, "app.ops.test.").as_deref(), Some("192.0.2.9"));

    // A changed server file compiles every zone anew.
    replace_file(&zones.join("ops.yaml"), &zone("192.0.2.9"));
    eventually(Duration::from_secs(5), "the repaired reload", || {
        reloads() == 2
    });
    let server_file = s.dir.path().join("meridian.yaml");
    let text = std::fs::read_to_string(&server_file).unwrap();
    replace_file(&server_file, &format!("{text}# edited\n"));
    eventually(Duration::from_secs(5), "the server file's reload", || {
        reloads() == 3
    });
    assert!(!Arc::ptr_eq(
        &compiled(&after, "other.test."),
        &compiled(&table(), "other.test.")
    ));
}

fn status(s: &TestServer) -> serde_json::Value {
    let (code, body) = http(s.admin(), "GET", "/status", None);
    assert_eq!(code, 200);
    serde_json::from_str(&body).unwrap()
}

#[test]
fn a_broken_file_keeps_the_old_answers_and_shows_the_error() {
    let (dir, file) = write_config_with(
        "admin: { listen: 127.0.0.1:0 }\n",
        &[("ops.yaml", &zone("192.0.2.1"))],
    );
    let s = start_with(dir, &file);
    let path = s.dir.path().join("zones/ops.yaml");
    replace_file(
        &path,
        &zone("192.0.2.1").replace("weight: 50", "weight: -3"),
    );
    eventually(
        Duration::from_secs(5),
        "the reload error in /status",
        || !status(&s)["last_reload_error"].is_null(),
    );
    let st = status(&s);
    let errors = st["last_reload_error"]["errors"].as_array().unwrap();
    let expected = format!(
        "{}:7:39: fqdns.app.members[1].weight: must be between 1 and 1000000 (got -3)",
        path.display()
    );
    assert_eq!(errors[0].as_str().unwrap(), expected);
    assert_eq!(st["reloads_failed"], 1);
    // The previous configuration still serves, whole.
    assert_eq!(first(&s, "app.ops.test.").as_deref(), Some("192.0.2.1"));
    let (_, page) = http(s.admin(), "GET", "/", None);
    assert!(page.contains("Last reload failed"), "{page}");

    // YAML that does not even parse: same.
    replace_file(&path, "zone: ops.test\nns: [ns1\n");
    eventually(Duration::from_secs(5), "the second failure", || {
        status(&s)["reloads_failed"] == 2
    });
    assert_eq!(first(&s, "app.ops.test.").as_deref(), Some("192.0.2.1"));

    // Fixed: applied, and the error is gone.
    replace_file(&path, &zone("192.0.2.5"));
    eventually(Duration::from_secs(5), "the fixed file", || {
        first(&s, "app.ops.test.").as_deref() == Some("192.0.2.5")
    });
    assert!(status(&s)["last_reload_error"].is_null());
}

#[test]
fn probe_state_and_timers_survive_a_reload() {
    let port = free_port(ip("127.0.30.1"));
    let _backend = TcpBackend::start(SocketAddr::new(ip("127.0.30.1"), port));
    let check =
        format!("{{ type: tcp, port: {port}, interval: 100ms, timeout: 80ms, rise: 3, fall: 3 }}");
    let text = |extra: &str| {
        format!(
            "zone: keep.test\nns: [ns1]\n{extra}fqdns:\n  app:\n    check: {check}\n    members: [{{ address: 127.0.30.1 }}]\n"
        )
    };
    let s = start(&[("keep.yaml", &text(""))]);
    let m = &s.running().meridian;
    let before = m.registry.all();
    assert_eq!(before.len(), 1);
    assert!(before[0].is_up());

    // Answer continuously while the reload happens: the member must never drop out.
    let stop = Arc::new(AtomicBool::new(false));
    let addr = s.addr;
    let watcher = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut answers = 0;
            while !stop.load(Ordering::SeqCst) && answers < 10_000 {
                let got = addresses(&udp_exchange(addr, &query("app.keep.test.", RecordType::A)));
                assert_eq!(got, ["127.0.30.1"], "flapped during reload");
                answers += 1;
            }
            answers
        })
    };
    replace_file(
        &s.dir.path().join("zones/keep.yaml"),
        &text("records:\n  www: { A: 192.0.2.80 }\n"),
    );
    eventually(Duration::from_secs(5), "the reload", || {
        first(&s, "www.keep.test.").is_some()
    });
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    assert!(watcher.join().unwrap() > 0);

    let after = m.registry.all();
    assert_eq!(after.len(), 1);
    assert!(
        Arc::ptr_eq(&before[0], &after[0]),
        "the same probe state carries on"
    );
    assert_eq!(after[0].detail().state_changes, 0, "never flapped");
    assert_eq!(m.checker.running(), 1);

    // A changed check is a new probe: the old one stops.
    replace_file(
        &s.dir.path().join("zones/keep.yaml"),
        &text("").replace("rise: 3", "rise: 2"),
    );
    eventually(Duration::from_secs(5), "the new probe", || {
        m.registry
            .all()
            .first()
            .is_some_and(|p| !Arc::ptr_eq(p, &before[0]))
    });
    assert_eq!(m.checker.running(), 1);
}

#[test]
fn sighup_reloads_and_the_query_log_shows_queries() {
    let (dir, file) = write_config_with(
        "watch: false\nquery-log: true\n",
        &[("ops.yaml", &zone("192.0.2.1"))],
    );
    let served = serve(&file);
    let ask = || {
        addresses(&udp_exchange(
            served.addr,
            &query("app.ops.test.", RecordType::A),
        ))
    };
    assert_eq!(ask(), ["192.0.2.1",]);
    replace_file(&dir.path().join("zones/ops.yaml"), &zone("192.0.2.3"));
    // Watching is off: nothing changes by itself.
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(ask(), ["192.0.2.1"]);
    let pid = served.child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    eventually(Duration::from_secs(5), "the SIGHUP reload", || {
        ask() == ["192.0.2.3"]
    });
    assert!(served.log_contains("SIGHUP: reloading"));
    eventually(Duration::from_secs(2), "a query log line", || {
        served.log_contains("query")
            && served.log_contains("name=\"app.ops.test.\"")
            && served.log_contains("rcode=NOERROR")
    });
}

#[test]
fn a_replaced_geoip_database_is_read_again() {
    // test-sites.mmdb places 127.0.4.0/24 in New York; MaxMind's City test DB knows nothing of it.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("geo.mmdb");
    std::fs::copy(geoip_file("maxmind-test-data/GeoIP2-City-Test.mmdb"), &db).unwrap();
    let zone = "zone: g.test\nns: [ns1]\nsites:\n  eu: { countries: [GB], default: true }\n  us: { countries: [US] }\nfqdns:\n  loc:\n    selection: location\n    members:\n      - { address: 192.0.2.1, site: eu }\n      - { address: 192.0.2.2, site: us }\n";
    let (cfg_dir, file) =
        write_config_with(&format!("geoip: {}\n", db.display()), &[("g.yaml", zone)]);
    let s = start_with(cfg_dir, &file);
    let ask = || addresses(&s.udp(&ecs_query("loc.g.test.", RecordType::A, "127.0.4.1/32")));
    assert_eq!(ask(), ["192.0.2.1"], "unknown client: the default site");
    let tmp = dir.path().join("geo.mmdb.new");
    std::fs::copy(geoip_file("test-sites.mmdb"), &tmp).unwrap();
    std::fs::rename(&tmp, &db).unwrap();
    eventually(Duration::from_secs(5), "the new database", || {
        ask() == ["192.0.2.2"]
    });
}

fn admin_server(token: Option<&str>) -> TestServer {
    let token = token.map_or(String::new(), |t| format!(", token: {t}"));
    let (dir, file) = write_config_with(
        &format!("admin: {{ listen: 127.0.0.1:0{token} }}\n"),
        &[("ops.yaml", &zone("192.0.2.1"))],
    );
    start_with(dir, &file)
}

#[test]
fn metrics_count_known_queries() {
    let s = admin_server(None);
    for _ in 0..3 {
        s.ask("app.ops.test.", RecordType::A);
    }
    for _ in 0..2 {
        s.ask("nope.ops.test.", RecordType::A);
    }
    s.ask("app.ops.test.", RecordType::MX);
    s.ask("example.com.", RecordType::AAAA);
    let (code, text) = http(s.admin(), "GET", "/metrics", None);
    assert_eq!(code, 200);
    for line in [
        "meridian_queries_total{zone=\"ops.test.\",type=\"A\",rcode=\"NOERROR\"} 3",
        "meridian_queries_total{zone=\"ops.test.\",type=\"A\",rcode=\"NXDOMAIN\"} 2",
        "meridian_queries_total{zone=\"ops.test.\",type=\"MX\",rcode=\"NOERROR\"} 1",
        "meridian_queries_total{zone=\"\",type=\"AAAA\",rcode=\"REFUSED\"} 1",
        "meridian_answers_total{name=\"app.ops.test.\",member=\"192.0.2.1\"} 3",
        "meridian_answers_total{name=\"app.ops.test.\",member=\"192.0.2.2\"} 0",
        "meridian_member_up{name=\"app.ops.test.\",member=\"192.0.2.1\"} 1",
        "meridian_reloads_total{result=\"ok\"} 0",
        "# TYPE meridian_probe_results_total counter",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in\n{text}"
        );
    }
}

#[test]
fn status_page_healthz_and_explain() {
    let s = admin_server(None);
    assert_eq!(
        http(s.admin(), "GET", "/healthz", None),
        (200, "ok\n".to_string())
    );
    let st = status(&s);
    let name = &st["names"][0];
    assert_eq!(name["name"], "app.ops.test.");
    assert_eq!(name["policy"], "fixed-weight");
    assert_eq!(name["members"][0]["address"], "192.0.2.1");
    assert_eq!(name["members"][0]["up"], true);
    let (code, page) = http(s.admin(), "GET", "/", None);
    assert_eq!(code, 200);
    assert!(
        page.contains("<h3>app.ops.test.</h3>") && page.contains("192.0.2.2"),
        "{page}"
    );

    let (code, body) = http(
        s.admin(),
        "GET",
        "/explain?name=app.ops.test&type=A&client=81.2.69.142",
        None,
    );
    assert_eq!(code, 200, "{body}");
    let e: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(e["answer"][0], "192.0.2.1");
    assert_eq!(e["policy"], "fixed-weight");
    assert_eq!(e["members"][0]["chosen"], true);
    assert!(
        e["why"].as_str().unwrap().contains("2 of 2 members are up"),
        "{e}"
    );
    assert_eq!(http(s.admin(), "GET", "/explain", None).0, 400);
    assert_eq!(http(s.admin(), "GET", "/nope", None).0, 404);
}

#[test]
fn maintenance_needs_the_token_and_moves_a_fixed_weight_answer() {
    let closed = admin_server(None);
    let path = "/members/app.ops.test/192.0.2.1/disable";
    assert_eq!(
        http(closed.admin(), "POST", path, Some(TOKEN)).0,
        403,
        "no token configured: writes are off"
    );

    let s = admin_server(Some(TOKEN));
    assert_eq!(http(s.admin(), "POST", path, None).0, 401);
    assert_eq!(
        http(s.admin(), "POST", path, Some("wrong-token-0123456789")).0,
        401
    );
    assert_eq!(first(&s, "app.ops.test.").as_deref(), Some("192.0.2.1"));
    assert_eq!(http(s.admin(), "POST", path, Some(TOKEN)).0, 200);
    assert_eq!(first(&s, "app.ops.test.").as_deref(), Some("192.0.2.2"));
    assert_eq!(status(&s)["names"][0]["members"][0]["maintenance"], true);
    // Maintenance survives a reload (it is not in the YAML).
    replace_file(
        &s.dir.path().join("zones/ops.yaml"),
        &format!("{}  # edited\n", zone("192.0.2.1")),
    );
    eventually(Duration::from_secs(5), "the reload", || {
        status(&s)["reloads_ok"] == 1
    });
    assert_eq!(first(&s, "app.ops.test.").as_deref(), Some("192.0.2.2"));
    let enable = "/members/APP.ops.test./192.0.2.1/enable";
    assert_eq!(http(s.admin(), "POST", enable, Some(TOKEN)).0, 200);
    assert_eq!(first(&s, "app.ops.test.").as_deref(), Some("192.0.2.1"));
    assert_eq!(
        http(
            s.admin(),
            "POST",
            "/members/app.ops.test/192.0.2.99/disable",
            Some(TOKEN)
        )
        .0,
        404
    );
    assert_eq!(http(s.admin(), "GET", path, Some(TOKEN)).0, 405);
}

#[test]
fn explain_command_asks_the_running_server() {
    let admin_port = free_port(ip("127.0.0.1"));
    let (dir, file) = write_config_with(
        &format!(
            "admin: {{ listen: 127.0.0.1:{admin_port} }}\ngeoip: {}\n",
            geoip_file("maxmind-test-data/GeoIP2-City-Test.mmdb").display()
        ),
        &[(
            "geo.yaml",
            "zone: geo.test\nns: [ns1]\nsites:\n  lon: { lat: 51.5, lon: -0.1 }\n  nyc: { lat: 40.7, lon: -74.0 }\nfqdns:\n  near:\n    selection: proximity\n    members: [{ address: 192.0.2.1, site: nyc }, { address: 192.0.2.2, site: lon }]\n",
        )],
    );
    let _served = serve(&file);
    let args = [
        "explain",
        "near.geo.test",
        "--client",
        "81.2.69.142",
        "--config",
    ];
    let mut args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
    args.push(file.as_ref());
    let (code, text, stderr) = run_meridian(&args);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(text.contains("policy: proximity"), "{text}");
    assert!(
        text.contains("client placed by geoip, country GB, continent EU"),
        "{text}"
    );
    assert!(text.contains("* 192.0.2.2"), "{text}");
    assert!(text.contains("answer: 192.0.2.2"), "{text}");
    drop(dir);
}

fn forwarding_server(upstream: SocketAddr, timeout: &str) -> TestServer {
    let (dir, file) = write_config_with(
        &format!(
            "forward: {{ upstreams: [{upstream}], timeout: {timeout}, allow: [127.0.0.2/32, 127.0.0.3/32] }}\n"
        ),
        &[("ops.yaml", &zone("192.0.2.1"))],
    );
    start_with(dir, &file)
}

#[test]
fn forwarding_answers_allowed_clients_from_cache_and_refuses_others() {
    let upstream = FakeResolver::start(ip("127.0.0.40"), "192.0.2.99".parse().unwrap());
    let s = forwarding_server(upstream.addr, "1s");
    let q = query("www.example.org.", RecordType::A);
    let r1 = udp_exchange_from(ip("127.0.0.2"), s.addr, &q);
    assert_eq!(r1.metadata.response_code, ResponseCode::NoError);
    assert_eq!(addresses(&r1), ["192.0.2.99"]);
    assert!(r1.metadata.recursion_available && !r1.metadata.authoritative);
    let r2 = udp_exchange_from(ip("127.0.0.3"), s.addr, &q);
    assert_eq!(addresses(&r2), ["192.0.2.99"]);
    assert!(r2.answers[0].ttl <= 60);
    assert_eq!(
        upstream.queries.load(Ordering::SeqCst),
        1,
        "the second answer came from the cache"
    );

    // Not allowed: REFUSED, and the upstream is not asked.
    let r3 = udp_exchange_from(
        ip("127.0.0.1"),
        s.addr,
        &query("other.example.org.", RecordType::A),
    );
    assert_eq!(r3.metadata.response_code, ResponseCode::Refused);
    assert_eq!(upstream.queries.load(Ordering::SeqCst), 1);
    // Our own zones stay authoritative for everyone.
    let own = udp_exchange_from(
        ip("127.0.0.2"),
        s.addr,
        &query("app.ops.test.", RecordType::A),
    );
    assert!(own.metadata.authoritative);
    assert_eq!(upstream.queries.load(Ordering::SeqCst), 1);
}

#[test]
fn forwarding_to_a_dead_upstream_is_servfail_within_the_timeout() {
    // Bound but silent: queries to it are never answered.
    let silent = std::net::UdpSocket::bind("127.0.0.41:0").unwrap();
    let s = forwarding_server(silent.local_addr().unwrap(), "500ms");
    let started = Instant::now();
    let r = udp_exchange_from(
        ip("127.0.0.2"),
        s.addr,
        &query("www.example.org.", RecordType::A),
    );
    let took = started.elapsed();
    assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_millis(1500),
        "{took:?}"
    );
}

#[test]
fn the_forward_cache_survives_a_reload() {
    let upstream = FakeResolver::start(ip("127.0.0.43"), "192.0.2.98".parse().unwrap());
    let s = forwarding_server(upstream.addr, "1s");
    let ask = || {
        let q = query("www.example.org.", RecordType::A);
        addresses(&udp_exchange_from(ip("127.0.0.2"), s.addr, &q))
    };
    assert_eq!(ask(), ["192.0.2.98"]);
    assert_eq!(upstream.queries.load(Ordering::SeqCst), 1);

    replace_file(&s.dir.path().join("zones/ops.yaml"), &zone("192.0.2.7"));
    eventually(Duration::from_secs(5), "the reload", || {
        first(&s, "app.ops.test.").as_deref() == Some("192.0.2.7")
    });
    assert_eq!(ask(), ["192.0.2.98"]);
    assert_eq!(
        upstream.queries.load(Ordering::SeqCst),
        1,
        "answered from the cache kept across the reload"
    );
    let counters = &s.state().counters;
    assert_eq!(counters.forward_cache_hits.load(Ordering::Relaxed), 1);
    // The new table serves before the reload finishes (and is counted).
    eventually(Duration::from_secs(5), "the reload counted", || {
        counters.reloads_ok.load(Ordering::Relaxed) == 1
    });
}

#[test]
fn explain_is_a_dry_run_that_moves_no_counter_or_rotation() {
    let zone = "zone: dry.test\nns: [ns1]\nfqdns:\n  rr:\n    selection: round-robin\n    members: [{ address: 192.0.2.1 }, { address: 192.0.2.2 }, { address: 192.0.2.3 }]\n";
    let (dir, file) = write_config_with("admin: { listen: 127.0.0.1:0 }\n", &[("dry.yaml", zone)]);
    let s = start_with(dir, &file);
    assert_eq!(first(&s, "rr.dry.test.").as_deref(), Some("192.0.2.1"));
    for _ in 0..5 {
        let (code, body) = http(s.admin(), "GET", "/explain?name=rr.dry.test&type=A", None);
        assert_eq!(code, 200, "{body}");
        let e: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            e["answer"][0], "192.0.2.2",
            "explain shows what the next query gets"
        );
        assert_eq!(e["members"][1]["chosen"], true, "{e}");
    }
    assert_eq!(first(&s, "rr.dry.test.").as_deref(), Some("192.0.2.2"));
    let (_, metrics) = http(s.admin(), "GET", "/metrics", None);
    for line in [
        "meridian_queries_total{zone=\"dry.test.\",type=\"A\",rcode=\"NOERROR\"} 2",
        "meridian_answers_total{name=\"rr.dry.test.\",member=\"192.0.2.1\"} 1",
        "meridian_answers_total{name=\"rr.dry.test.\",member=\"192.0.2.2\"} 1",
        "meridian_answers_total{name=\"rr.dry.test.\",member=\"192.0.2.3\"} 0",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing `{line}` in\n{metrics}"
        );
    }
}

#[test]
fn forwarded_answers_carry_no_records_about_other_names() {
    let upstream = FakeResolver::poisoned(ip("127.0.0.44"), "192.0.2.97".parse().unwrap());
    let s = forwarding_server(upstream.addr, "1s");
    for _ in 0..2 {
        // Once from the upstream, once from the cache.
        let r = udp_exchange_from(
            ip("127.0.0.2"),
            s.addr,
            &query("www.example.org.", RecordType::A),
        );
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        assert_eq!(addresses(&r), ["192.0.2.97"]);
        let names: Vec<String> = r
            .answers
            .iter()
            .chain(&r.authorities)
            .chain(&r.additionals)
            .map(|rr| rr.name.to_string())
            .collect();
        assert_eq!(names, ["www.example.org."], "{r:?}");
    }
}

/// A records file changed under an unchanged zone file reloads that zone (its hash counts
/// in the zone's source, and the watcher sees master files in the zone directory).
#[test]
fn a_changed_records_file_is_reloaded() {
    let (dir, config) = write_config(&[(
        "rf.yaml",
        "zone: rf.test\nns: [ns1]\nrecords-file: rf.zone\nrecords:\n  ns1: { A: 192.0.2.53 }\n",
    )]);
    let master = dir.path().join("zones/rf.zone");
    std::fs::write(&master, "www A 192.0.2.1\n").unwrap();
    let served = serve(&config);
    let ask = || {
        addresses(&udp_exchange(
            served.addr,
            &query("www.rf.test.", RecordType::A),
        ))
    };
    assert_eq!(ask(), ["192.0.2.1"]);
    replace_file(&master, "www A 192.0.2.2\n");
    eventually(std::time::Duration::from_secs(10), "the new record", || {
        ask() == ["192.0.2.2"]
    });
}

/// Explain says when a wildcard answers and when a name is delegated.
#[test]
fn explain_tells_wildcards_and_referrals() {
    let zone = "zone: ex.test\nns: [ns1]\nrecords:\n  ns1: { A: 192.0.2.53 }\n  \"*.w\": { A: 192.0.2.7 }\n  sub: { NS: ns1.sub }\n  ns1.sub: { A: 192.0.2.98 }\n";
    let (dir, file) = write_config_with("admin: { listen: 127.0.0.1:0 }\n", &[("ex.yaml", zone)]);
    let s = start_with(dir, &file);
    let why = |name: &str, rtype: &str| {
        let (code, body) = http(
            s.admin(),
            "GET",
            &format!("/explain?name={name}&type={rtype}"),
            None,
        );
        assert_eq!(code, 200, "{body}");
        let e: serde_json::Value = serde_json::from_str(&body).unwrap();
        e["why"].as_str().unwrap().to_string()
    };
    assert_eq!(
        why("a.w.ex.test", "A"),
        "a.w.ex.test. does not exist in zone ex.test., but the wildcard *.w.ex.test. answers for it. Its static A records are answered under the asked name, with no selection."
    );
    assert!(
        why("a.w.ex.test", "TXT").contains(
            "but the wildcard *.w.ex.test. answers for it. It has no TXT records: NODATA"
        )
    );
    assert_eq!(
        why("www.sub.ex.test", "A"),
        "www.sub.ex.test. is delegated: it is at or below sub.ex.test., which has NS records in zone ex.test., so the answer is a referral to the child zone's name servers (ns1.sub.ex.test.): NOERROR without AA, the NS records in the authority section and their addresses (glue) in the additional section."
    );
}
