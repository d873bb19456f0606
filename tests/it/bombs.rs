//! Configuration bombs and files that are not files: each ends in a clear error, in bounded
//! time and memory, and a running server keeps serving its last good table.

use std::path::Path;
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;

use crate::common::*;

const ZONE: &str = "zone: bomb.test\nns: [ns1]\nrecords:\n  www: { A: 192.0.2.1 }\n";

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo reads the NUL-terminated path only.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

/// `meridian check` on `server`: (exit code, stderr, seconds, peak RSS of the check in MiB).
fn check_bounded(server: &Path) -> (Option<i32>, String, f64, f64) {
    let started = Instant::now();
    let (code, _, stderr) = run_meridian(&["check".as_ref(), "--config".as_ref(), server.as_ref()]);
    let seconds = started.elapsed().as_secs_f64();
    // SAFETY: getrusage fills the struct passed to it.
    let peak_kib = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage.ru_maxrss
    };
    (code, stderr, seconds, peak_kib as f64 / 1024.0)
}

/// A configuration with one zone file of the given text.
fn config_with_zone(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    write_config(&[("bomb.yaml", text)])
}

#[test]
fn a_fifo_or_a_device_in_place_of_a_file_fails_the_reload_and_the_old_table_serves() {
    let (dir, file) = write_config_with("watch: false\n", &[("bomb.yaml", ZONE)]);
    let s = start_with(dir, &file);
    let zone = s.dir.path().join("zones/bomb.yaml");
    let reload = |what: &str| {
        let started = Instant::now();
        let result = s.block_on(async {
            tokio::time::timeout(Duration::from_secs(5), s.state().reload()).await
        });
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{what}: reload hung"
        );
        result.expect("the reload returned")
    };
    let still_serving = || {
        assert_eq!(
            addresses(&s.ask("www.bomb.test.", RecordType::A)),
            ["192.0.2.1"]
        );
    };
    // The server file, then a zone file, as FIFOs nobody writes to.
    for target in [&file, &zone] {
        let saved = std::fs::read(target).unwrap();
        std::fs::remove_file(target).unwrap();
        mkfifo(target);
        let errors = reload("a FIFO").expect_err("a FIFO is refused");
        let text = errors.to_string();
        assert!(
            text.contains(&format!(
                "{}: not a regular file (it is a FIFO)",
                target.display()
            )),
            "{text}"
        );
        still_serving();
        std::fs::remove_file(target).unwrap();
        std::fs::write(target, saved).unwrap();
        reload("restored").expect("the restored file loads");
    }
    // A zone file that is a link to /dev/zero.
    std::fs::remove_file(&zone).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &zone).unwrap();
    let text = reload("/dev/zero").unwrap_err().to_string();
    assert!(
        text.contains("not a regular file (it is a character device)"),
        "{text}"
    );
    still_serving();
}

#[test]
fn check_names_fifos_devices_and_oversized_files() {
    // A zone file that is a FIFO is reported, not skipped.
    let (dir, server) = config_with_zone(ZONE);
    mkfifo(&dir.path().join("zones/other.yaml"));
    let (code, stderr, seconds, _) = check_bounded(&server);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("other.yaml: not a regular file (it is a FIFO)"),
        "{stderr}"
    );
    assert!(seconds < 5.0);

    // /dev/zero as the GeoIP database.
    let (dir, _) = config_with_zone(ZONE);
    let zero = dir.path().join("zero.mmdb");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let server = dir.path().join("geo.yaml");
    std::fs::write(
        &server,
        format!("zones: zones\ngeoip: {}\n", zero.display()),
    )
    .unwrap();
    let (code, stderr, seconds, rss) = check_bounded(&server);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("not a regular file (it is a character device)"),
        "{stderr}"
    );
    assert!(seconds < 5.0 && rss < 200.0, "{seconds} s, {rss} MiB");

    // A zone file larger than the limit (sparse: it takes no room).
    let (dir, server) = config_with_zone(ZONE);
    let huge = std::fs::File::create(dir.path().join("zones/huge.yaml")).unwrap();
    huge.set_len(300 << 20).unwrap();
    let (code, stderr, seconds, rss) = check_bounded(&server);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("huge.yaml: is 300 MiB, more than the 256 MiB a file may have"),
        "{stderr}"
    );
    assert!(seconds < 5.0 && rss < 200.0, "{seconds} s, {rss} MiB");
}

#[test]
fn thousands_of_errors_are_capped_and_counted() {
    let dups = vec!["192.0.2.1"; 100].join(", ");
    let mut text = String::from("zone: bomb.test\nns: [ns1]\nrecords:\n");
    for i in 0..60 {
        text.push_str(&format!("  n{i}: {{ A: [{dups}] }}\n"));
    }
    let (_dir, server) = config_with_zone(&text);
    let (code, stderr, _, _) = check_bounded(&server);
    assert_eq!(code, Some(1));
    let lines: Vec<&str> = stderr.lines().collect();
    // 60 names x 99 duplicates: the first 100 errors, then a count of the others.
    assert_eq!(lines.len(), 102, "{stderr}");
    assert!(
        lines[100].ends_with("5840 more errors in this file not shown; fix the ones above first"),
        "{}",
        lines[100]
    );
    assert_eq!(lines[101], "101 error(s)");
}

#[test]
fn yaml_bombs_and_huge_sets_end_in_a_clear_error_in_bounded_time_and_memory() {
    // Billion laughs: each alias level ten times the one before.
    let mut laughs = String::from(
        "zone: bomb.test\nns: [ns1]\nrecords:\n  l0: { TXT: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol] }\n",
    );
    for i in 1..10 {
        let refs = vec![format!("*l{}", i - 1); 10].join(", ");
        laughs.push_str(&format!("  l{i}: {{ TXT: &l{i} [{refs}] }}\n"));
    }
    // Nesting 100,000 deep.
    let deep = format!(
        "zone: bomb.test\nns: [ns1]\nrecords:\n  x: {{ TXT: {}{} }}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    // A million records at one name.
    let million = format!(
        "zone: bomb.test\nns: [ns1]\nrecords:\n  big: {{ TXT: [{}] }}\n",
        vec!["x"; 1_000_000].join(", ")
    );
    for (what, text, expect) in [
        ("aliases", laughs, "records.l1.TXT"),
        ("nesting", deep, "bomb.yaml"),
        (
            "a million records",
            million,
            "records.big.TXT: 1000000 records; a name has at most 100 of one type",
        ),
    ] {
        let (_dir, server) = config_with_zone(&text);
        let (code, stderr, seconds, rss) = check_bounded(&server);
        assert_eq!(code, Some(1), "{what}: {stderr}");
        assert!(stderr.contains(expect), "{what}: {stderr}");
        // A debug build parses a million entries in some 17 s here; release in under 2.
        assert!(
            seconds < 60.0 && rss < 1024.0,
            "{what}: {seconds:.1} s, {rss:.0} MiB"
        );
    }
}
