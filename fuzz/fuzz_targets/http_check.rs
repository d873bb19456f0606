//! Any bytes as the response of a server an HTTP check probes: the probe ends with a
//! result in time and never panics, and says up only for a status in range and a body that
//! holds the expected text; as a `vault` check, up only in a healthy role.
#![no_main]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use meridian::model::{Check, CheckSpec, HttpCheck, ProbeKey, Quorum, Roles, Timing};

struct Backend {
    addr: SocketAddr,
    response: Arc<Mutex<Vec<u8>>>,
    rt: tokio::runtime::Runtime,
}

/// A server on loopback that answers every connection with the current input, then closes.
fn backend() -> &'static Backend {
    static BACKEND: OnceLock<Backend> = OnceLock::new();
    BACKEND.get_or_init(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let response = Arc::new(Mutex::new(Vec::new()));
        let serving = response.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
                let _ = stream.read(&mut [0u8; 2048]);
                let bytes = serving.lock().unwrap().clone();
                let _ = stream.write_all(&bytes);
            }
        });
        meridian::health::install_tls_provider();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Backend { addr, response, rt }
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let b = backend();
    *b.response.lock().unwrap() = data.to_vec();
    let key = ProbeKey {
        address: b.addr.ip(),
        check: Check {
            spec: CheckSpec::Http(Box::new(HttpCheck {
                tls: false,
                port: b.addr.port(),
                method: "GET".into(),
                path: "/v1/sys/health".into(),
                host: None,
                expect: vec![(200, 200), (429, 429)],
                body_contains: Some("initialized".into()),
                tls_verify: true,
                ca: None,
                client_cert: None,
                roles: None,
            })),
            timing: Timing {
                interval: Duration::from_secs(1),
                timeout: Duration::from_millis(100),
                rise: 1,
                fall: 1,
                failure_delay: Duration::ZERO,
            },
            address: None,
        },
        quorum: Quorum::Local,
    };
    let outcome = b.rt.block_on(meridian::health::probe_now(&key));
    assert!(outcome.latency < Duration::from_secs(1), "{outcome:?}");
    if outcome.ok {
        let text = String::from_utf8_lossy(data);
        assert!(
            text.contains("initialized"),
            "up without the body: {outcome:?}"
        );
        assert!(
            outcome.reason == "status 200" || outcome.reason == "status 429",
            "{outcome:?}"
        );
    }

    // The same response to a `vault` check: up only in one of Vault's healthy roles, with
    // the role its status code belongs to, and a leader only from a node that is up.
    let roles = Arc::new(Roles::vault());
    let mut vault = key.clone();
    if let CheckSpec::Http(h) = &mut vault.check.spec {
        h.expect.clear();
        h.body_contains = None;
        h.roles = Some(roles.clone());
    }
    let outcome = b.rt.block_on(meridian::health::probe_now(&vault));
    assert!(outcome.latency < Duration::from_secs(1), "{outcome:?}");
    if outcome.ok {
        assert!(roles.is_healthy(outcome.role), "{outcome:?}");
        let code = roles.rules[usize::from(outcome.role)].status[0].0;
        assert!(
            outcome.reason.starts_with(&format!("status {code}, ")),
            "{outcome:?}"
        );
    } else {
        assert!(outcome.leader.is_none(), "{outcome:?}");
    }
});
