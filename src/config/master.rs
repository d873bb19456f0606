//! `records-file:`: a zone's static records from a standard master file (RFC 1035 5)
//! beside its YAML, read by hickory-proto's zone-file parser, so that operators migrate by
//! pointing at the zone file they have. The parser reports no line; on an error, the
//! first record whose text fails is found by parsing ever longer prefixes of the file, cut
//! only between records, so that the error names the file and line like the YAML's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::txt::Parser;

use super::error::ConfigError;
use super::types::RecordSetConfig;

/// Largest master file read.
const MAX_BYTES: u64 = 256 << 20;

/// What a master file gives a zone.
pub(super) struct MasterRecords {
    pub(super) path: PathBuf,
    /// Its static record sets, apex NS and SOA left out.
    pub(super) records: Vec<RecordSetConfig>,
    /// Its apex NS targets (they add to `ns`).
    pub(super) ns: Vec<Name>,
    /// Its SOA, if it has one (the zone's `soa:` comes from the YAML: told as a warning).
    pub(super) has_soa: bool,
}

/// Reads the master file `given` (relative to the zone file's directory) for `origin`,
/// with `ttl` for records without one and no `$TTL`.
pub(super) fn read(
    zone_file: &Path,
    given: &str,
    origin: &Name,
    ttl: u32,
) -> Result<MasterRecords, ConfigError> {
    let dir = zone_file.parent().unwrap_or(Path::new("."));
    let path = dir.join(given.trim());
    let bytes = crate::model::file::read_regular(&path, MAX_BYTES)
        .map_err(|e| ConfigError::whole_file(&path, e))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        ConfigError::whole_file(
            &path,
            format!("is not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
        )
    })?;
    // A default TTL for records without one, as `$TTL` would give (a later `$TTL` wins).
    let with_ttl = format!("$TTL {ttl}\n{text}");
    let parsed = Parser::new(with_ttl.as_str(), Some(path.clone()), Some(origin.clone())).parse();
    let (_, sets) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => {
            let line = failing_line(&text, origin, ttl);
            return Err(ConfigError {
                file: path,
                line,
                column: 1,
                field: "records-file".into(),
                message: format!("{e} (a master file as RFC 1035 5 writes it)"),
            });
        }
    };
    let mut out = MasterRecords {
        path: path.clone(),
        records: Vec::new(),
        ns: Vec::new(),
        has_soa: false,
    };
    let mut by_owner: BTreeMap<(Name, RecordType), (u32, Vec<RData>)> = BTreeMap::new();
    for set in sets.into_values() {
        let owner = set.name().clone();
        if !origin.zone_of(&owner) {
            return Err(ConfigError::whole_file(
                &path,
                format!(
                    "records-file: {owner} is outside the zone {origin}: remove it, or fix $ORIGIN"
                ),
            ));
        }
        let rtype = set.record_type();
        let records: Vec<_> = set.records_without_rrsigs().collect();
        match rtype {
            RecordType::SOA if owner == *origin => out.has_soa = true,
            RecordType::NS if owner == *origin => {
                out.ns.extend(records.iter().filter_map(|r| match &r.data {
                    RData::NS(ns) => Some(ns.0.clone()),
                    _ => None,
                }));
            }
            // DNSSEC records are made by the server, for zones with `dnssec:`.
            RecordType::RRSIG
            | RecordType::NSEC
            | RecordType::NSEC3
            | RecordType::NSEC3PARAM
            | RecordType::DNSKEY
            | RecordType::CDS
            | RecordType::CDNSKEY => {}
            _ => {
                let ttl = records.first().map_or(ttl, |r| r.ttl);
                by_owner
                    .entry((owner, rtype))
                    .or_insert_with(|| (ttl, Vec::new()))
                    .1
                    .extend(records.iter().map(|r| r.data.clone()));
            }
        }
    }
    out.records = by_owner
        .into_iter()
        .map(|((owner, rtype), (ttl, rdata))| RecordSetConfig::new(&owner, ttl, rtype, rdata))
        .collect();
    Ok(out)
}

/// The line where the first record that does not parse starts (1 if none is found).
fn failing_line(text: &str, origin: &Name, ttl: u32) -> u64 {
    // Where records end: the line ends outside quotes and parentheses.
    let mut boundaries = Vec::new();
    let (mut depth, mut quoted) = (0i32, false);
    let mut start = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let mut escaped = false;
        for c in line.chars() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => quoted = !quoted,
                ';' if !quoted => break,
                '(' if !quoted => depth += 1,
                ')' if !quoted => depth -= 1,
                _ => {}
            }
        }
        start += line.len();
        if depth <= 0 && !quoted {
            boundaries.push((i + 1, start));
        }
    }
    let parses = |end: usize| {
        let prefix = format!("$TTL {ttl}\n{}", &text[..end]);
        Parser::new(prefix.as_str(), None, Some(origin.clone()))
            .parse()
            .is_ok()
    };
    // The first record boundary whose prefix fails; the record starts after the one
    // before it.
    let (mut lo, mut hi) = (0, boundaries.len());
    while lo < hi {
        let mid = (lo + hi) / 2;
        if parses(boundaries[mid].1) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    match lo {
        0 => 1,
        n if n < boundaries.len() => boundaries[n - 1].0 as u64 + 1,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_record_is_found_by_its_line() {
        let origin = Name::from_ascii("example.test.").unwrap();
        let text = "www A 192.0.2.1\nmail MX ( 10\n  mail2 )\nbad A 999.1.1.1\nok A 192.0.2.2\n";
        assert_eq!(failing_line(text, &origin, 300), 4);
        let text = "www A 192.0.2.1\nsoa SOA ns1 host ( 1 2\n 3 4 5 )\nx TXT \"a ; b\"\nbad MX x\n";
        assert_eq!(failing_line(text, &origin, 300), 5);
    }
}
