//! `meridian dnssec`: what the parent zone needs for each signed zone.

use std::path::Path;
use std::process::ExitCode;

use crate::config;
use crate::sign::ZoneSigner;

pub(super) fn dnssec(path: &Path, only: &[String], create_keys: bool) -> ExitCode {
    let mut config = match config::load(path) {
        Ok(c) => c,
        Err(errors) => {
            super::print_errors(&errors);
            return ExitCode::FAILURE;
        }
    };
    let wanted = |origin: &hickory_proto::rr::Name| {
        only.is_empty()
            || only.iter().any(|z| {
                hickory_proto::rr::Name::from_ascii(z).is_ok_and(|n| n.eq_ignore_root(origin))
            })
    };
    config
        .zones
        .retain(|z| z.dnssec.is_some() && wanted(&z.origin));
    if config.zones.is_empty() {
        eprintln!(
            "no signed zone: give a zone a `dnssec:` section (see the README's DNSSEC section)"
        );
        return ExitCode::FAILURE;
    }
    if create_keys {
        match config::create_missing_keys(&mut config) {
            Ok(created) => {
                for c in created {
                    eprintln!("created {} for {}", c.path.display(), c.origin);
                }
            }
            Err(errors) => {
                super::print_errors(&errors);
                return ExitCode::FAILURE;
            }
        }
    }
    let mut missing = false;
    for zone in &config.zones {
        let d = zone.dnssec.as_ref().expect("kept only signed zones");
        let not_made: Vec<&Path> = d.missing_keys().collect();
        for file in &not_made {
            eprintln!("{}", super::missing_key(&zone.origin, file));
        }
        missing |= !not_made.is_empty();
        let (Some(key), true) = (&d.key, not_made.is_empty()) else {
            continue;
        };
        let signer = match ZoneSigner::new(&zone.origin, d, key) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("{}: {e}", zone.origin);
                return ExitCode::FAILURE;
            }
        };
        println!(
            "; {} ({})",
            zone.origin,
            config::algorithm_name(d.algorithm)
        );
        for (i, (key, file)) in signer.keys().zip(d.key_files()).enumerate() {
            let role = if i == 0 { "signs" } else { "published" };
            match signer.ds_record(key) {
                Ok(ds) => println!(
                    "; key {} ({role}): DS for the parent zone\n{ds}",
                    file.display()
                ),
                Err(e) => {
                    eprintln!("{}: {e}", zone.origin);
                    return ExitCode::FAILURE;
                }
            }
        }
        println!("; published at the apex:");
        for (_, records) in signer.apex_records().unwrap_or_default() {
            for record in records {
                println!("{record}");
            }
        }
    }
    if missing {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
