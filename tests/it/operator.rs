//! What an operator reads and keeps: the status summary, recent state changes (`/events`),
//! maintenance that survives a restart, the metrics beside the DNS counters, and explain's
//! sentences for questions that are wrong.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::rr::RecordType;

use crate::common::backend::{TcpBackend, free_port};
use crate::common::{
    addresses, eventually, http, ip, query, run_meridian, serve, udp_exchange, write_config_with,
};

const TOKEN: &str = "operator-test-token-0123";

/// A zone with one health-checked name: 127.0.46.1 answers its TCP check, 127.0.46.2
/// never does. Returns the server file's directory, its path and the admin address.
fn config(backend_port: u16) -> (tempfile::TempDir, std::path::PathBuf, SocketAddr) {
    let admin: SocketAddr = format!("127.0.46.9:{}", free_port(ip("127.0.46.9")))
        .parse()
        .unwrap();
    let zone = format!(
        "zone: op.test\nns: [ns1.op.test.]\nfqdns:\n  app:\n    selection: fixed-weight\n    ttl: 5\n    check: {{ type: tcp, port: {backend_port}, interval: 200ms, timeout: 150ms, rise: 1, fall: 1 }}\n    members:\n      - {{ address: 127.0.46.1, weight: 100 }}\n      - {{ address: 127.0.46.2, weight: 50 }}\n  dead:\n    when-all-down: all\n    check: {{ type: tcp, port: {backend_port} }}\n    members: [{{ address: 127.0.46.3 }}]\n"
    );
    let (dir, file) = write_config_with(
        &format!("watch: false\nadmin: {{ listen: \"{admin}\", token: {TOKEN} }}\n"),
        &[("op.yaml", &zone)],
    );
    (dir, file, admin)
}

fn get_json(admin: SocketAddr, path: &str) -> serde_json::Value {
    let (code, body) = http(admin, "GET", path, None);
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[test]
fn maintenance_survives_a_restart_through_the_state_file() {
    let backend = TcpBackend::start("127.0.46.1:0".parse().unwrap());
    let port = backend.addr.port();
    let _also = TcpBackend::start(format!("127.0.46.2:{port}").parse().unwrap());
    let (dir, file, admin) = config(port);
    let state_file = dir.path().join("meridian.state.json");
    let ask = |s: &crate::common::Served| {
        addresses(&udp_exchange(s.addr, &query("app.op.test.", RecordType::A)))
    };
    {
        let served = serve(&file);
        assert_eq!(ask(&served), ["127.0.46.1"]);
        let (code, body) = http(
            admin,
            "POST",
            "/members/app.op.test/127.0.46.1/disable",
            Some(TOKEN),
        );
        assert_eq!(code, 200, "{body}");
        assert_eq!(ask(&served), ["127.0.46.2"]);
        let saved: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&state_file).unwrap()).unwrap();
        assert_eq!(saved["version"], 1);
        assert_eq!(
            saved["members"],
            serde_json::json!([
                {"name": "app.op.test.", "address": "127.0.46.1", "maintenance": true}
            ])
        );
        // The zone's serial is kept too, so that it keeps growing across restarts.
        assert_eq!(saved["serials"][0]["zone"], "op.test.");
    }
    // A new process, the same state file: still in maintenance, before the first answer.
    let served = serve(&file);
    assert_eq!(ask(&served), ["127.0.46.2"]);
    assert!(served.log_contains("restored from the state file"));
    let (code, _) = http(
        admin,
        "POST",
        "/members/app.op.test/127.0.46.1/enable",
        Some(TOKEN),
    );
    assert_eq!(code, 200);
    assert_eq!(ask(&served), ["127.0.46.1"]);
    drop(served);

    // A broken state file is named and ignored: the server starts as its checks say.
    std::fs::write(&state_file, "{ not json").unwrap();
    let served = serve(&file);
    assert_eq!(ask(&served), ["127.0.46.1"]);
    eventually(Duration::from_secs(5), "the warning", || {
        served.log_contains("state file ignored, no maintenance flags restored")
            && served.log_contains("meridian.state.json:1:")
    });
}

#[test]
fn events_name_what_changed_and_why_and_the_summary_counts_names() {
    let backend = TcpBackend::start("127.0.46.1:0".parse().unwrap());
    let port = backend.addr.port();
    let (_dir, file, admin) = config(port);
    let served = serve(&file);

    // Down at start is an event of its own, and not a state change of the probe.
    let mut events = serde_json::Value::Null;
    eventually(Duration::from_secs(5), "start events", || {
        events = get_json(admin, "/events");
        events.as_array().unwrap().len() >= 2
    });
    let starts: Vec<&serde_json::Value> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["from"] == "start")
        .collect();
    assert_eq!(starts.len(), 2, "{events:#}");
    let app = starts.iter().find(|e| e["member"] == "127.0.46.2").unwrap();
    assert_eq!(app["name"], "app.op.test.");
    assert_eq!(app["to"], "down");
    assert_eq!(
        app["reason"],
        format!("down at start: tcp 127.0.46.2:{port}: refused")
    );
    let metrics = http(admin, "GET", "/metrics", None).1;
    assert!(
        metrics.contains(&format!(
            "meridian_probe_state_changes_total{{probe=\"tcp 127.0.46.2:{port}\"}} 0"
        )),
        "{metrics}"
    );

    let summary = get_json(admin, "/status")["summary"].clone();
    assert_eq!(
        summary,
        serde_json::json!({"names_up": 0, "names_degraded": 1, "names_failing_open": 1,
            "names_failing_closed": 0, "members_up": 1, "members": 3})
    );
    let page = http(admin, "GET", "/", None).1;
    let attention = page
        .find("<h2>Needs attention</h2>")
        .expect("attention first");
    assert!(
        page.find("<span class=\"open\">failing open</span>")
            .unwrap()
            > attention
    );
    assert!(page.contains("<h2>Recent changes</h2>"));
    assert!(page.contains("<form action=\"/explain\""));

    // A member going down: up -> down, with the check's reason.
    backend.stop();
    eventually(Duration::from_secs(5), "the down event", || {
        let events = get_json(admin, "/events");
        events[0]["member"] == "127.0.46.1"
            && events[0]["from"] == "up"
            && events[0]["to"] == "down"
            && events[0]["reason"] == format!("tcp 127.0.46.1:{port}: refused")
    });
    // And maintenance, named as such.
    http(
        admin,
        "POST",
        "/members/app.op.test/127.0.46.2/disable",
        Some(TOKEN),
    );
    eventually(Duration::from_secs(5), "the maintenance event", || {
        let events = get_json(admin, "/events");
        events[0]["member"] == "127.0.46.2"
            && events[0]["to"] == "maintenance"
            && events[0]["reason"] == "in maintenance (set through the admin API)"
    });
    drop(served);
}

#[test]
fn metrics_cover_the_build_the_process_and_query_latency() {
    let backend = TcpBackend::start("127.0.46.1:0".parse().unwrap());
    let (_dir, file, admin) = config(backend.addr.port());
    let served = serve(&file);
    // The fast path times one receive batch in 16 per worker; sequential queries are one
    // batch each.
    for _ in 0..64 {
        udp_exchange(served.addr, &query("app.op.test.", RecordType::A));
    }
    crate::common::tcp_exchange(served.addr, &query("app.op.test.", RecordType::A));
    let metrics = http(admin, "GET", "/metrics", None).1;
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
    };
    assert!(metrics.contains(&format!(
        "meridian_build_info{{version=\"{}\",revision=\"",
        env!("CARGO_PKG_VERSION")
    )));
    assert!(value("process_resident_memory_bytes") > 1e6);
    assert!(value("process_open_fds") >= 5.0);
    // Ticks are 10 ms: a young process may have used none yet.
    assert!(value("process_cpu_seconds_total") >= 0.0);
    assert!(value("process_start_time_seconds") > 1.7e9);
    let udp = value("meridian_query_duration_seconds_count{protocol=\"udp\"}");
    assert!((2.0..=8.0).contains(&udp), "{udp} timed of 64");
    assert_eq!(
        value("meridian_query_duration_seconds_count{protocol=\"tcp\"}"),
        1.0
    );
    assert_eq!(
        value("meridian_query_duration_seconds_bucket{protocol=\"tcp\",le=\"+Inf\"}"),
        1.0
    );
    assert_eq!(value("meridian_forward_cache_entries"), 0.0);
    drop(served);
}

#[test]
fn explain_says_what_is_wrong_with_the_question() {
    let backend = TcpBackend::start("127.0.46.1:0".parse().unwrap());
    let (_dir, file, admin) = config(backend.addr.port());
    let _served = serve(&file);
    let explain = |args: &[&str]| {
        let mut all: Vec<&std::ffi::OsStr> = vec!["explain".as_ref(), "--config".as_ref()];
        all.push(file.as_os_str());
        all.extend(args.iter().map(|a| std::ffi::OsStr::new(*a)));
        run_meridian(&all)
    };
    let (code, _, stderr) = explain(&["app.op.test", "--type", "BOGUS"]);
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr.trim(),
        "`BOGUS` is not a DNS record type: use one such as A, AAAA, CNAME, MX, TXT, SRV, NS or SOA"
    );
    // The page's form gets the same sentence, in HTML.
    let (code, page) = http(
        admin,
        "GET",
        "/explain?format=html&name=app.op.test&type=A&client=nowhere",
        None,
    );
    assert_eq!(code, 400);
    assert!(page.contains("`nowhere` is not an IP address"), "{page}");
    let (code, page) = http(
        admin,
        "GET",
        "/explain?format=html&name=app.op.test&type=A&client=192.0.2.1",
        None,
    );
    assert_eq!(code, 200);
    assert!(
        page.contains("app.op.test. A for client 192.0.2.1"),
        "{page}"
    );
}

#[test]
fn a_check_that_keeps_failing_the_same_way_logs_once() {
    use crate::common::backend::{HttpBackend, TestTls};
    // A certificate of a CA the system does not trust: every handshake fails alike.
    let tls = TestTls::new("untrusted.op.test");
    let port = free_port(ip("127.0.46.5"));
    let _https = HttpBackend::start(
        format!("127.0.46.5:{port}").parse().unwrap(),
        200,
        Some(&tls),
    );
    let zone = format!(
        "zone: tls.test\nns: [ns1.tls.test.]\nfqdns:\n  app:\n    check: {{ type: https, port: {port}, host: untrusted.op.test, interval: 200ms, timeout: 150ms }}\n    members: [{{ address: 127.0.46.5 }}]\n"
    );
    let (_dir, file) = write_config_with("", &[("tls.yaml", &zone)]);
    let served = serve(&file);
    // Ten more probes, all failing.
    std::thread::sleep(Duration::from_secs(2));
    let log = served.log.lock().unwrap().clone();
    let about: Vec<&String> = log
        .iter()
        .filter(|l| l.contains("127.0.46.5") || l.contains("certificate"))
        .collect();
    assert_eq!(about.len(), 1, "{about:#?}");
    assert!(about[0].contains("down at start"), "{}", about[0]);
    assert!(about[0].contains("TLS"), "{}", about[0]);
}

#[test]
fn explain_gives_the_true_reason_for_every_outcome() {
    let zone = "zone: why.test\nsoa: { minimum: 30 }\nns: [ns1.why.test.]\nrecords:\n  ns1: { A: 192.0.2.53 }\n  alias: { CNAME: app.why.test. }\nfqdns:\n  app:\n    members: [{ address: 192.0.2.1 }]\n";
    let s = crate::common::in_process(&[("why.yaml", zone)]);
    let why = |name: &str, qtype: RecordType| {
        let name = hickory_proto::rr::LowerName::from_str(name).unwrap();
        let table = s.state.table.load();
        let e = meridian::admin::explain(&table, &name, qtype, ip("192.0.2.99"));
        (e.rcode, e.why)
    };
    use std::str::FromStr;
    assert_eq!(
        why("app.why.test.", RecordType::TXT),
        ("NOERROR".into(), "app.why.test. is a health-checked name: its members answer A and AAAA queries. It has no TXT records, so a TXT query gets NODATA: NOERROR with no answer and the zone's SOA in the authority section, cached by resolvers for up to 30 s.".into())
    );
    assert_eq!(
        why("nothing.why.test.", RecordType::A),
        ("NXDOMAIN".into(), "nothing.why.test. does not exist in zone why.test.: NXDOMAIN (the zone's SOA in the authority section, cached by resolvers for up to 30 s).".into())
    );
    assert_eq!(
        why("ns1.why.test.", RecordType::MX).1,
        "ns1.why.test. exists in zone why.test. but has no MX records: NODATA: NOERROR with no answer and the zone's SOA in the authority section, cached by resolvers for up to 30 s."
    );
    assert_eq!(
        why("ns1.why.test.", RecordType::A).1,
        "ns1.why.test. has static A records in zone why.test.: answered as written, with no selection."
    );
    assert_eq!(
        why("alias.why.test.", RecordType::TXT).1,
        "alias.why.test. is an alias (CNAME) of app.why.test., which has no TXT records: the answer is the CNAME alone (NOERROR)."
    );
    assert_eq!(
        why("example.com.", RecordType::A),
        ("REFUSED".into(), "example.com. is in none of our zones, and this client may not use forwarding (there is no forward: section, or the client is not in forward.allow): REFUSED.".into())
    );
    assert!(
        why("app.why.test.", RecordType::A)
            .1
            .starts_with("1 of 1 members are up;")
    );
}

#[test]
fn explain_at_shows_what_a_client_network_got_then_and_why() {
    let backend = TcpBackend::start("127.0.46.1:0".parse().unwrap());
    let port = backend.addr.port();
    let (_dir, file, admin) = config(port);
    let served = serve(&file);
    let ask = |n: usize| {
        for _ in 0..n {
            udp_exchange(served.addr, &query("app.op.test.", RecordType::A));
        }
    };
    // One answer in 16 is kept per answering thread (each query comes from a new socket,
    // so the kernel spreads them over the workers; each keeps its first).
    ask(32);
    let report = get_json(admin, "/history?name=app.op.test");
    let answers = report["answers"].as_array().unwrap();
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(
        (2..=2 + workers).contains(&answers.len()),
        "{} kept of 32: {report:#}",
        answers.len()
    );
    assert_eq!(answers[0]["client"], "127.0.0.1");
    assert_eq!(
        answers[0]["why"],
        "1 of 2 members were up; fixed-weight chose 127.0.46.1"
    );
    let then = answers[0]["at"].as_u64().unwrap();

    // Later, every member down: the name fails open.
    std::thread::sleep(Duration::from_millis(1100));
    backend.stop();
    eventually(Duration::from_secs(5), "both down", || {
        get_json(admin, "/status")["summary"]["members_up"] == 0
    });
    ask(32);
    let report = get_json(admin, "/history?name=app.op.test");
    let last = report["answers"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        last["why"],
        "no member was up: failing open, 127.0.46.1 answered as if all were up"
    );

    // The CLI, at the first answers' second: only those, and the changes up to then.
    let (code, stdout, stderr) = run_meridian(&[
        "explain".as_ref(),
        "--config".as_ref(),
        file.as_os_str(),
        "app.op.test".as_ref(),
        "--at".as_ref(),
        humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(then))
            .to_string()
            .as_ref(),
        "--within".as_ref(),
        "0s".as_ref(),
        "--client".as_ref(),
        "127.0.0.9".as_ref(),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with("app.op.test. for 127.0.0.0/24, within 0 s of "),
        "{stdout}"
    );
    assert!(
        lines[0].ends_with("(one answer in 16 is kept):"),
        "{stdout}"
    );
    let kept: Vec<&&str> = lines.iter().filter(|l| l.contains("127.0.0.1 ")).collect();
    assert!(!kept.is_empty(), "{stdout}");
    assert!(
        kept.iter()
            .all(|l| l.ends_with("A    1 of 2 members were up; fixed-weight chose 127.0.46.1")),
        "{stdout}"
    );
    assert!(stdout.contains("start -> down: down at start"), "{stdout}");
    assert!(
        !stdout.contains("up -> down"),
        "a change after then: {stdout}"
    );
    // Another network got nothing kept.
    let (_, stdout, _) = run_meridian(&[
        "explain".as_ref(),
        "--config".as_ref(),
        file.as_os_str(),
        "app.op.test".as_ref(),
        "--at".as_ref(),
        "now".as_ref(),
        "--client".as_ref(),
        "192.0.2.0/24".as_ref(),
    ]);
    assert!(stdout.contains("\n  no answer kept\n"), "{stdout}");
}

#[test]
fn explain_says_when_a_query_is_forwarded() {
    let (dir, file) = write_config_with(
        "forward: { upstreams: [\"127.0.46.8:53\"], allow: [127.0.0.0/8] }\n",
        &[("f.yaml", "zone: f.test\nns: [ns1.f.test.]\n")],
    );
    let s = crate::common::start_with(dir, &file);
    let table = s.state().table.load();
    let name = hickory_proto::rr::LowerName::new(
        &hickory_proto::rr::Name::from_ascii("example.com.").unwrap(),
    );
    let allowed = meridian::admin::explain(&table, &name, RecordType::A, ip("127.0.0.1"));
    assert_eq!(
        allowed.why,
        "example.com. is in none of our zones. This client may use forwarding, so the query goes to the upstream resolvers, and their answer comes back with RA set and AA clear."
    );
    let refused = meridian::admin::explain(&table, &name, RecordType::A, ip("192.0.2.1"));
    assert!(
        refused.why.ends_with("forward.allow): REFUSED."),
        "{}",
        refused.why
    );
}
