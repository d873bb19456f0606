//! Loading: the server file, then every zone file in its directory, with the rules that
//! span files.

use std::path::{Path, PathBuf};

use super::dnssec::key_file_hash;
use super::error::{ConfigError, ConfigErrors};
use super::server::load_server;
use super::types::{Config, Known, KnownZone, UnchangedZone, ZoneConfig};
use super::yaml::{ZoneRaw, parse_yaml, read_file, source_hash};
use super::zone::validate_zone;

/// Loads and validates the server file and every zone file it points at.
pub fn load(server_file: &Path) -> Result<Config, ConfigErrors> {
    load_reusing(server_file, &Known::default()).map(|(config, _)| config)
}

/// Like [`load`], but a zone file whose text hashes as `known` says (with the server file
/// unchanged too) is not parsed again: it comes back as unchanged, for the caller to keep
/// what it compiled from it. So a reload costs what the changed files cost.
pub fn load_reusing(
    server_file: &Path,
    known: &Known,
) -> Result<(Config, Vec<UnchangedZone>), ConfigErrors> {
    let server = load_server(server_file).map_err(|e| ConfigErrors(vec![e]))?;
    if let Err(e) = std::fs::read_dir(&server.zones_dir) {
        return Err(ConfigErrors(vec![missing_zones_dir(
            server_file,
            &server.zones_dir,
            &e,
        )]));
    }
    let known_zones = if known.server == server.source {
        &known.zones
    } else {
        &std::collections::HashMap::new()
    };
    let (zones, unchanged) = load_zones(&server.zones_dir, known_zones)?;
    Ok((Config { server, zones }, unchanged))
}

/// The zones directory cannot be read: said at the server file's `zones:` line (or as the
/// default it is), with the full path and what to do.
fn missing_zones_dir(server_file: &Path, dir: &Path, e: &std::io::Error) -> ConfigError {
    let full = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let what = if e.kind() == std::io::ErrorKind::NotFound {
        format!("the zones directory {} does not exist", full.display())
    } else {
        format!("cannot read the zones directory {}: {e}", full.display())
    };
    let text = std::fs::read_to_string(server_file).unwrap_or_default();
    let set_at = text.lines().enumerate().find_map(|(i, l)| {
        let rest = l.strip_prefix("zones")?.trim_start().strip_prefix(':')?;
        Some((i as u64 + 1, (l.len() - rest.trim_start().len()) as u64 + 1))
    });
    match set_at {
        Some((line, column)) => ConfigError {
            file: server_file.to_path_buf(),
            line,
            column,
            field: "zones".into(),
            message: format!(
                "{what}: create it and put the zone files in it, or point `zones:` at the directory that holds them"
            ),
        },
        None => ConfigError::whole_file(
            server_file,
            format!(
                "{what} (the default, `zones` beside the server file): create it, or set `zones:` to the directory that holds your zone files"
            ),
        ),
    }
}

/// Every `*.yaml`/`*.yml` entry in the directory but subdirectories, in name order; hidden
/// and editor backup files are skipped. A FIFO or device by such a name is listed, so that
/// reading it reports what it is.
pub fn zone_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let yaml = name.ends_with(".yaml") || name.ends_with(".yml");
        if yaml && !name.starts_with('.') && !path.is_dir() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Most errors reported for a whole configuration; the rest are counted in a last line.
const MAX_ERRORS: usize = 1000;

fn load_zones(
    dir: &Path,
    known: &std::collections::HashMap<PathBuf, KnownZone>,
) -> Result<(Vec<ZoneConfig>, Vec<UnchangedZone>), ConfigErrors> {
    let files = zone_files(dir).map_err(|e| {
        ConfigErrors(vec![ConfigError::whole_file(
            dir,
            format!("cannot read the zones directory: {e}"),
        )])
    })?;
    let mut errors = Vec::new();
    let mut zones: Vec<ZoneConfig> = Vec::new();
    let mut unchanged: Vec<UnchangedZone> = Vec::new();
    for file in &files {
        let text = match read_file(file) {
            Ok(text) => text,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let source = source_hash(&text);
        let known_zone = known
            .get(file)
            .filter(|k| k.source == with_dependencies(source, dependencies_hash(&k.dependencies)));
        if let Some(k) = known_zone {
            unchanged.push(UnchangedZone {
                file: file.clone(),
                origin: k.origin.clone(),
            });
            continue;
        }
        match parse_yaml::<ZoneRaw>(file, &text) {
            Ok(raw) => match validate_zone(file, raw) {
                Ok(mut zone) => {
                    zone.source = source;
                    zone.derive_serial();
                    zones.push(zone);
                }
                Err(mut e) => errors.append(&mut e),
            },
            Err(e) => errors.push(e),
        }
    }
    // Cross-file rules: one file per zone, and no zone inside another (unchanged files
    // included: a changed one may now clash with them).
    let mut kept: Vec<ZoneConfig> = Vec::new();
    let mut origins: Vec<(PathBuf, hickory_proto::rr::Name)> = unchanged
        .iter()
        .map(|u| (u.file.clone(), u.origin.clone()))
        .collect();
    for zone in zones {
        let clash = origins
            .iter()
            .find(|(_, k)| *k == zone.origin || k.zone_of(&zone.origin) || zone.origin.zone_of(k));
        match clash {
            Some((file, k)) => {
                let what = if *k == zone.origin {
                    "is already defined"
                } else {
                    "overlaps (nested zones are not supported)"
                };
                errors.push(ConfigError {
                    file: zone.file.clone(),
                    line: 1,
                    column: 1,
                    field: "zone".into(),
                    message: format!(
                        "zone {} {what}: see {} ({})",
                        zone.origin,
                        file.display(),
                        k
                    ),
                });
            }
            None => {
                origins.push((zone.file.clone(), zone.origin.clone()));
                kept.push(zone);
            }
        }
    }
    if files.is_empty() {
        errors.push(ConfigError::whole_file(
            dir,
            "no zone files (*.yaml) in the zones directory",
        ));
    }
    if errors.len() > MAX_ERRORS {
        let more = errors.len() - MAX_ERRORS;
        errors.truncate(MAX_ERRORS);
        errors.push(ConfigError::whole_file(
            dir,
            format!("{more} more errors in other files not shown; fix the ones above first"),
        ));
    }
    if errors.is_empty() {
        Ok((kept, unchanged))
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Validates one zone file's text; used by `load` and by tests.
pub fn parse_zone(file: &Path, text: &str) -> Result<ZoneConfig, ConfigErrors> {
    let raw: ZoneRaw = parse_yaml(file, text).map_err(|e| ConfigErrors(vec![e]))?;
    let mut zone = validate_zone(file, raw).map_err(ConfigErrors)?;
    zone.source = source_hash(text);
    zone.derive_serial();
    Ok(zone)
}

/// What a compiled zone is known by: its file's text hash, and the hash of the other files
/// it is read from (a key or records file changed under an unchanged zone file is
/// compiled again).
pub fn with_dependencies(text: u64, others: Option<u64>) -> u64 {
    others.map_or(text, |h| text ^ h.rotate_left(17) ^ 0x5a5a)
}

/// The hash `with_dependencies` takes of a zone's other files (key files, records file), read as
/// they are now; `None` for a zone without any.
fn dependencies_hash(files: &[PathBuf]) -> Option<u64> {
    (!files.is_empty()).then(|| super::dnssec::combine(files.iter().map(|f| key_file_hash(f))))
}
