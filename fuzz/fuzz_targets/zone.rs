//! Any text as a zone file: a list of errors, or a zone that compiles into a table that
//! answers. Never a panic. And wherever the quick YAML reader reads the text, serde-saphyr
//! reads the same values at the same places.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use hickory_proto::op::OpCode;
use hickory_proto::rr::{DNSClass, RecordType};
use meridian::config::{Config, ServerConfig};
use meridian::health::Registry;
use meridian::model::Counters;
use meridian::model::name::key_of;
use meridian::resolve::{self, Mode, Query, Question};
use meridian::zone::{Inputs, Table};

fn server() -> &'static ServerConfig {
    static SERVER: OnceLock<ServerConfig> = OnceLock::new();
    SERVER.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("meridian-fuzz-zone-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("meridian.yaml"), "listen: [127.0.0.1:0]\n").unwrap();
        meridian::config::load_server(&dir.join("meridian.yaml")).unwrap()
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(difference) = meridian::config::yaml_readers_agree(text) {
        panic!("{difference}");
    }
    let Ok(zone) = meridian::config::parse_zone(Path::new("fuzz.yaml"), text) else {
        return;
    };
    let config = Config {
        server: server().clone(),
        zones: vec![zone],
    };
    let probes = Registry::default().probes_for(config.probe_users());
    let counters = Counters::default();
    let empty = Table::empty();
    let table = Table::compile(
        &config,
        &Inputs {
            serial: &|z| z.soa.serial,
            probes: &probes,
            counters: &counters,
            previous: &empty,
            sticky: &std::sync::OnceLock::new(),
        },
    );
    // A transferred zone's content is taken and diffed without a panic.
    meridian::xfr::Transfers::default().refresh(&table, &|_, served, _| served);
    // Every health-checked name, and the apex, answer without a panic.
    let mut names: Vec<Box<[u8]>> = table
        .health_checked_names()
        .map(|n| key_of(&n.name))
        .collect();
    names.extend(table.zones().map(|z| Box::from(z.key())));
    for name in &names {
        for qtype in [
            RecordType::A,
            RecordType::AAAA,
            RecordType::ANY,
            RecordType::SOA,
        ] {
            let query = Query {
                op_code: OpCode::Query,
                question: Some(Question {
                    name,
                    qtype,
                    qclass: DNSClass::IN,
                }),
                edns: None,
                source: [192, 0, 2, 1].into(),
            };
            let plan = resolve::plan(&table, &query, Mode::Query);
            assert!(plan.wire_len(64) < 65536);
        }
    }
});
