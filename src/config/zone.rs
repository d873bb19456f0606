//! Validation of one zone file: names, static records, sites and health-checked names.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use super::yaml::{Location, Spanned};
use crate::model::name::key_of;
use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::txt::Parser as ZoneFileParser;
use ipnet::IpNet;
use std::time::Duration;

use super::budget::{Budget, worst_case};
use super::check::validate_checks;
use super::error::{ConfigError, Report};
use super::records_yaml::Owner;
use super::roles::validate_tiers;
use super::types::{
    HealthCheckedNameConfig, MemberConfig, RecordSetConfig, SiteConfig, SoaConfig, ZoneConfig,
};
use super::yaml::{FqdnRaw, SiteRaw, SoaRaw, TextList, ZoneRaw, items};
use crate::model::{Policy, Recovery, Roles, WhenAllDown};

/// Records of one type at one name, at most: BIND's `max-records-per-type` default. More
/// would not fit most answers, and each is held twice (as a record and encoded).
pub(super) const MAX_RECORDS_PER_RRSET: usize = 100;
/// Members of one health-checked name, at most.
pub(super) const MAX_MEMBERS: usize = 1000;
/// Sites of one zone, at most (a member keeps its site's index in 16 bits).
pub(super) const MAX_SITES: usize = 1000;

pub(super) fn validate_zone(file: &Path, mut raw: ZoneRaw) -> Result<ZoneConfig, Vec<ConfigError>> {
    let mut r = Report::new(file);
    let origin = match parse_absolute(&raw.zone.value) {
        Ok(n) => n,
        Err(msg) => {
            r.at(raw.zone.referenced, "zone", msg);
            return Err(r.into_errors());
        }
    };
    let ttl = raw.ttl.as_ref().map_or(300, |t| t.value);

    let mut ns = Vec::new();
    for (i, (loc, text)) in items(&raw.ns).enumerate() {
        match parse_target(text, &origin) {
            Ok(n) => {
                if let Some(w) = relative_warning(text, &n, &origin, true) {
                    r.warn(loc, format!("ns[{i}]"), w);
                }
                ns.push(n)
            }
            Err(msg) => r.at(loc, format!("ns[{i}]"), msg),
        }
    }
    if ns.is_empty() && raw.ns.value.0.is_empty() {
        r.at(
            raw.ns.referenced,
            "ns",
            "a zone needs at least one name server",
        );
    }

    let soa = validate_soa(&mut r, raw.soa.as_ref(), &origin, ns.first());

    // Delegations: the names below the apex with NS records. Below one, only glue (A and
    // AAAA of the name servers) may be given: anything else would be hidden by the cut.
    let cuts: Vec<Name> = raw
        .records
        .owners()
        .filter(|owner| owner.types().any(|t| t == RecordType::NS))
        .filter_map(|owner| parse_owner(owner.name(), &origin).ok())
        .filter(|owner| *owner != origin)
        .collect();
    // Room for every record set at once: growing by doubling copies the sets over and
    // over, and holds half as much again at the peak.
    let mut records = Vec::with_capacity(raw.records.sets());
    for set in raw.records.owners() {
        let field = RecordsField::owner(set.name());
        let owner = match parse_owner(set.name(), &origin) {
            Ok(n) => n,
            Err(msg) => {
                r.at(set.at(), field, msg);
                continue;
            }
        };
        let types: Vec<RecordType> = set.types().collect();
        if let Some(message) = occluded(&owner, &types, &cuts) {
            r.at(set.at(), field, message);
            continue;
        }
        validate_rrsets(&mut r, field, &owner, &origin, ttl, set, &mut records);
    }
    // Freed before the rest is read: a large zone is not held twice.
    drop(std::mem::take(&mut raw.records));

    let records_file = raw.records_file.as_ref().and_then(|rf| {
        add_master_file(&mut r, file, rf, &origin, ttl, &cuts, &mut ns, &mut records)
    });

    let mut sites = Vec::new();
    let mut site_index = HashMap::new();
    for (name, site) in &raw.sites {
        let field = format!("sites.{name}");
        if sites.len() == MAX_SITES {
            r.at(
                site.referenced,
                field,
                format!("a zone has at most {MAX_SITES} sites: merge sites, or split the zone"),
            );
            break;
        }
        site_index.insert(name.clone(), sites.len());
        sites.push(validate_site(&mut r, &field, name, site));
    }

    let mut names = Vec::new();
    for (key, fqdn) in &raw.fqdns {
        let field = format!("fqdns.{key}");
        let name = match parse_owner(key, &origin) {
            Ok(n) => n,
            Err(msg) => {
                r.at(fqdn.referenced, field, msg);
                continue;
            }
        };
        if let Some(cut) = cuts.iter().find(|c| c.zone_of(&name)) {
            r.at(
                fqdn.referenced,
                field,
                format!(
                    "{name} is at or below the delegation {cut}: the child zone answers for it"
                ),
            );
            continue;
        }
        let zone = ZoneFacts {
            sites: &sites,
            site_index: &site_index,
            soa_minimum: soa.minimum,
        };
        if let Some(f) = validate_health_checked(&mut r, &field, name, fqdn, &zone) {
            names.push(f);
        }
    }

    check_conflicts(&mut r, &raw, &origin, &records, &names);
    let access =
        super::server::validate_access(&mut r, raw.access.as_ref().map(|a| &a.value), "access");
    let dnssec = raw
        .dnssec
        .as_ref()
        .and_then(|d| super::dnssec::validate_dnssec(&mut r, d, file, &origin));
    let transfer = raw.transfer.as_ref().and_then(|t| {
        super::transfer::validate_transfer(&mut r, t, raw.transfer_view.as_ref(), &sites)
    });
    if let (Some(t), Some(_)) = (&raw.transfer, &raw.dnssec) {
        r.at(
            t.referenced,
            "transfer",
            "a zone signed online (`dnssec:`) cannot be transferred: its denials are made per query, and secondaries need a whole signed zone; let the secondaries sign it (Knot: `dnssec-signing: on`), or serve it from Meridian alone",
        );
    }
    if let (None, Some(v)) = (&raw.transfer, &raw.transfer_view) {
        r.at(
            v.referenced,
            "transfer-view",
            "only means something with a `transfer:` section",
        );
    }

    if !r.failed() {
        Ok(ZoneConfig {
            file: file.to_path_buf(),
            source: 0,
            origin,
            ttl,
            soa,
            ns,
            records,
            sites,
            health_checked: names,
            access,
            dnssec,
            records_file,
            transfer,
            warnings: std::mem::take(&mut r.warnings),
        })
    } else {
        Err(r.into_errors())
    }
}

fn validate_soa(
    r: &mut Report,
    raw: Option<&Spanned<SoaRaw>>,
    origin: &Name,
    first_ns: Option<&Name>,
) -> SoaConfig {
    let name_field =
        |r: &mut Report, f: Option<&Spanned<String>>, field: &str, default: Name| match f {
            None => default,
            Some(s) => match parse_target(&s.value, origin) {
                Ok(n) => {
                    if let Some(w) = relative_warning(&s.value, &n, origin, true) {
                        r.warn(s.referenced, format!("soa.{field}"), w);
                    }
                    n
                }
                Err(msg) => {
                    r.at(s.referenced, format!("soa.{field}"), msg);
                    default
                }
            },
        };
    let hostmaster = Name::from_ascii("hostmaster")
        .and_then(|h| h.append_domain(origin))
        .unwrap_or_else(|_| origin.clone());
    let mname = name_field(
        r,
        raw.and_then(|s| s.value.mname.as_ref()),
        "mname",
        first_ns.cloned().unwrap_or_else(|| origin.clone()),
    );
    let rname = name_field(
        r,
        raw.and_then(|s| s.value.rname.as_ref()),
        "rname",
        hostmaster,
    );
    let soa = raw.map(|s| &s.value);
    SoaConfig {
        mname,
        rname,
        // Without `serial:`, derived from the files once they are all read (`derive_serial`).
        serial: soa.and_then(|s| s.serial).unwrap_or(0),
        serial_given: soa.is_some_and(|s| s.serial.is_some()),
        refresh: soa.and_then(|s| s.refresh).unwrap_or(3600),
        retry: soa.and_then(|s| s.retry).unwrap_or(600),
        expire: soa.and_then(|s| s.expire).unwrap_or(604_800),
        minimum: soa.and_then(|s| s.minimum).unwrap_or(60),
    }
}

/// Where under `records:` a problem is (`records.www.A[1]`): made into text only for an
/// error or a warning, not for every record set of a large zone.
#[derive(Clone, Copy)]
struct RecordsField<'a> {
    owner: &'a str,
    rtype: Option<RecordType>,
    item: Option<usize>,
}

impl<'a> RecordsField<'a> {
    fn owner(owner: &'a str) -> Self {
        RecordsField {
            owner,
            rtype: None,
            item: None,
        }
    }

    fn item(self, i: usize) -> Self {
        RecordsField {
            item: Some(i),
            ..self
        }
    }
}

impl From<RecordsField<'_>> for String {
    fn from(f: RecordsField) -> String {
        let mut s = format!("records.{}", f.owner);
        if let Some(rtype) = f.rtype {
            s += &format!(".{rtype}");
        }
        if let Some(i) = f.item {
            s += &format!("[{i}]");
        }
        s
    }
}

#[allow(clippy::too_many_arguments)]
fn validate_rrsets(
    r: &mut Report,
    field: RecordsField,
    owner: &Name,
    origin: &Name,
    zone_ttl: u32,
    set: Owner,
    out: &mut Vec<RecordSetConfig>,
) {
    let ttl = set.ttl().map_or(zone_ttl, |t| t.value);
    let present: Vec<RecordType> = set.types().collect();
    if present.is_empty() {
        r.at(
            set.at(),
            field,
            "no records (give at least one type, e.g. A: [192.0.2.1])",
        );
    }
    for values in set.sets() {
        let rtype = values.rtype();
        let tfield = RecordsField {
            rtype: Some(rtype),
            ..field
        };
        if values.len() > MAX_RECORDS_PER_RRSET {
            r.at(
                values.at(),
                tfield,
                format!(
                    "{} records; a name has at most {MAX_RECORDS_PER_RRSET} of one type",
                    values.len()
                ),
            );
            continue;
        }
        if rtype == RecordType::CNAME && present.len() > 1 {
            r.at(
                values.at(),
                tfield,
                "a CNAME cannot stand beside other data at the same name (RFC 1034 3.6.2)",
            );
            continue;
        }
        if rtype == RecordType::CNAME && values.len() != 1 {
            r.at(values.at(), tfield, "a name has exactly one CNAME target");
            continue;
        }
        if rtype == RecordType::DS && !present.contains(&RecordType::NS) {
            r.at(
                values.at(),
                tfield,
                "DS records belong at a delegation point: give the name NS records too",
            );
            continue;
        }
        if rtype == RecordType::DS && owner == origin {
            r.at(
                values.at(),
                tfield,
                "the apex's DS records belong in the parent zone (`meridian dnssec` prints them)",
            );
            continue;
        }
        if rtype == RecordType::CNAME && owner == origin {
            r.at(values.at(), tfield, "the zone apex cannot be a CNAME");
            continue;
        }
        // Exactly as many as given: a `Vec` grown by a push keeps room for four, and an
        // `RData` is large (a zone of a million record sets took a gigabyte more).
        let mut rdata = Vec::with_capacity(values.len());
        for (i, (loc, text)) in values.items().enumerate() {
            match parse_rdata(rtype, text, origin) {
                Ok(d) if rdata.contains(&d) => r.at(loc, tfield.item(i), "duplicate record"),
                Ok(d) => {
                    let target = match &d {
                        RData::CNAME(c) => Some(&c.0),
                        RData::NS(n) => Some(&n.0),
                        RData::PTR(p) => Some(&p.0),
                        RData::MX(mx) => Some(&mx.exchange),
                        RData::SRV(srv) => Some(&srv.target),
                        _ => None,
                    };
                    // The target is the record's last word (SRV and MX put it last).
                    let written = text.split_whitespace().last().unwrap_or(text);
                    if let Some(w) =
                        target.and_then(|t| relative_warning(written, t, origin, false))
                    {
                        r.warn(loc, tfield.item(i), w);
                    }
                    rdata.push(d)
                }
                Err(msg) => r.at(loc, tfield.item(i), msg),
            }
        }
        if values.len() == 0 {
            r.at(values.at(), tfield, "empty list");
        }
        if !rdata.is_empty() {
            out.push(RecordSetConfig::new(owner, ttl, rtype, rdata));
        }
    }
}

/// Adds the records of the zone's `records-file:` (its apex NS to `ns`), checked as the
/// YAML's are; returns the file and its hash, for a reload to see it change.
#[allow(clippy::too_many_arguments)]
fn add_master_file(
    r: &mut Report,
    file: &Path,
    given: &Spanned<String>,
    origin: &Name,
    ttl: u32,
    yaml_cuts: &[Name],
    ns: &mut Vec<Name>,
    records: &mut Vec<RecordSetConfig>,
) -> Option<(std::path::PathBuf, u64)> {
    let master = match super::master::read(file, &given.value, origin, ttl) {
        Ok(m) => m,
        Err(e) => {
            r.errors.push(e);
            return None;
        }
    };
    let shown = master.path.display().to_string();
    if master.has_soa {
        r.warn(
            given.referenced,
            "records-file",
            format!("the SOA in {shown} is not used: the zone's SOA comes from `soa:`"),
        );
    }
    for n in master.ns {
        if !ns.contains(&n) {
            ns.push(n);
        }
    }
    let mut cuts: Vec<Name> = yaml_cuts.to_vec();
    cuts.extend(
        master
            .records
            .iter()
            .filter(|s| s.rtype == RecordType::NS)
            .map(|s| s.owner()),
    );
    let mut by_owner: HashMap<Name, Vec<RecordType>> = HashMap::new();
    for set in &master.records {
        by_owner.entry(set.owner()).or_default().push(set.rtype);
    }
    for (owner, types) in &by_owner {
        let problem = occluded(owner, types, &cuts).or_else(|| {
            let cname = types.contains(&RecordType::CNAME);
            (cname && (types.len() > 1 || owner == origin)).then(|| {
                format!("{owner}: a CNAME cannot stand beside other data, nor at the apex (RFC 1034 3.6.2)")
            })
        });
        if let Some(problem) = problem {
            r.at(
                given.referenced,
                "records-file",
                format!("{shown}: {problem}"),
            );
        }
    }
    let in_yaml: HashSet<(Box<[u8]>, RecordType)> = records
        .iter()
        .map(|y| (y.owner_key().as_bytes().into(), y.rtype))
        .collect();
    for set in master.records {
        if in_yaml.contains(&(set.owner_key().as_bytes().into(), set.rtype)) {
            r.at(
                given.referenced,
                "records-file",
                format!(
                    "{} {} is both under records: and in {shown}: keep one",
                    set.owner(),
                    set.rtype
                ),
            );
            continue;
        }
        records.push(set);
    }
    let hash = super::dnssec::key_file_hash(&master.path);
    Some((master.path, hash))
}

/// Why records at `owner` would be hidden by a delegation in `cuts`, if they would: below
/// a cut only glue (A, AAAA) is served, in referrals; at a cut, NS, DS and glue.
fn occluded(owner: &Name, types: &[RecordType], cuts: &[Name]) -> Option<String> {
    let glue = |t: &RecordType| matches!(t, RecordType::A | RecordType::AAAA);
    if let Some(cut) = cuts.iter().find(|c| c.zone_of(owner) && *c != owner) {
        if cuts.contains(owner) {
            return Some(format!(
                "a delegation below the delegation {cut}: delegate it from the child zone"
            ));
        }
        if let Some(t) = types.iter().find(|t| !glue(t)) {
            return Some(format!(
                "{t} records below the delegation {cut} would never be served: only glue (A, AAAA) is given there"
            ));
        }
    }
    if cuts.contains(owner)
        && let Some(t) = types
            .iter()
            .find(|t| !glue(t) && !matches!(t, RecordType::NS | RecordType::DS))
    {
        return Some(format!(
            "{t} records at the delegation point {owner} would never be served: it holds NS, DS and glue only"
        ));
    }
    None
}

fn parse_rdata(rtype: RecordType, text: &str, origin: &Name) -> Result<RData, String> {
    let text = text.trim();
    if text.starts_with("\\#") {
        return super::rdata::generic(rtype, text);
    }
    match rtype {
        super::rdata::LOC => super::rdata::loc(text),
        super::rdata::URI => super::rdata::uri(text),
        RecordType::Unknown(code) => Err(format!(
            "TYPE{code} takes the generic form of RFC 3597: `\\# <length> <hex>`, e.g. \\# 4 0a000001"
        )),
        RecordType::A => text
            .parse()
            .map(|ip: std::net::Ipv4Addr| RData::A(ip.into()))
            .map_err(|_| format!("`{text}` is not an IPv4 address")),
        RecordType::AAAA => text
            .parse()
            .map(|ip: std::net::Ipv6Addr| RData::AAAA(ip.into()))
            .map_err(|_| format!("`{text}` is not an IPv6 address")),
        // Each list entry is one TXT record of text as written, split into the 255-byte
        // character-strings the wire format needs.
        RecordType::TXT => Ok(RData::TXT(TXT::new(
            text.as_bytes()
                .chunks(255)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect(),
        ))),
        // Other types use zone-file syntax, with names relative to the zone as in a zone file.
        _ => {
            let line = format!("@ 0 IN {rtype} {text}\n");
            let parsed = ZoneFileParser::new(line, None, Some(origin.clone()))
                .parse()
                .map_err(|e| format!("bad {rtype} data `{text}`: {e}"))?;
            parsed
                .1
                .into_values()
                .flat_map(|set| set.records_without_rrsigs().cloned().collect::<Vec<_>>())
                .map(|rec| rec.data)
                .next()
                .ok_or_else(|| format!("bad {rtype} data `{text}`"))
        }
    }
}

fn validate_site(r: &mut Report, field: &str, name: &str, site: &Spanned<SiteRaw>) -> SiteConfig {
    let raw = &site.value;
    let mut coord = |v: &Option<Spanned<f64>>, what: &str, limit: f64| {
        v.as_ref().and_then(|s| {
            if s.value.is_finite() && s.value.abs() <= limit {
                Some(s.value)
            } else {
                r.at(
                    s.referenced,
                    format!("{field}.{what}"),
                    format!("must be between -{limit} and {limit}"),
                );
                None
            }
        })
    };
    let lat = coord(&raw.lat, "lat", 90.0);
    let lon = coord(&raw.lon, "lon", 180.0);
    if lat.is_some() != lon.is_some() {
        r.at(site.referenced, field, "give both lat and lon, or neither");
    }
    let codes = |r: &mut Report, list: &Option<Spanned<TextList>>, what: &str, known: &[&str]| {
        let mut out = Vec::new();
        let Some(list) = list else { return out };
        for (i, (loc, text)) in items(list).enumerate() {
            let code = text.trim().to_ascii_uppercase();
            let ok = code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase());
            if !ok || (!known.is_empty() && !known.contains(&code.as_str())) {
                let hint = if known.is_empty() {
                    "an ISO 3166 two-letter country code".to_string()
                } else {
                    format!("one of {}", known.join(", "))
                };
                r.at(
                    loc,
                    format!("{field}.{what}[{i}]"),
                    format!("`{text}` is not {hint}"),
                );
            } else {
                out.push(code);
            }
        }
        out
    };
    let countries = codes(r, &raw.countries, "countries", &[]);
    let continents = codes(
        r,
        &raw.continents,
        "continents",
        &["AF", "AN", "AS", "EU", "NA", "OC", "SA"],
    );
    let mut networks = Vec::new();
    if let Some(list) = &raw.networks {
        for (i, (loc, text)) in items(list).enumerate() {
            match text.trim().parse::<IpNet>() {
                Ok(net) if net.trunc() != net => r.at(
                    loc,
                    format!("{field}.networks[{i}]"),
                    format!("`{text}` has host bits set; did you mean {}?", net.trunc()),
                ),
                Ok(net) => networks.push(net),
                Err(_) => r.at(
                    loc,
                    format!("{field}.networks[{i}]"),
                    format!("`{text}` is not a network (write 10.1.0.0/16)"),
                ),
            }
        }
    }
    let mut checks = validate_checks(r, field, &raw.check, &raw.checks, true).unwrap_or_default();
    if let Some(delay) = &raw.failure_delay {
        match humantime::parse_duration(delay.value.trim()) {
            // A check's own failure-delay wins.
            Ok(d) => checks
                .iter_mut()
                .filter(|c| c.timing.failure_delay.is_zero())
                .for_each(|c| c.timing.failure_delay = d),
            Err(_) => r.at(
                delay.referenced,
                format!("{field}.failure-delay"),
                format!("`{}` is not a duration (write 30s or 2m)", delay.value),
            ),
        }
        if checks.is_empty() {
            r.at(
                delay.referenced,
                format!("{field}.failure-delay"),
                "the site has no check to delay: give it one",
            );
        }
    }
    SiteConfig {
        name: name.to_string(),
        lat,
        lon,
        countries,
        continents,
        networks,
        default: raw.default.unwrap_or(false),
        enabled: raw.enabled.unwrap_or(true),
        checks,
        recovery: validate_recovery(r, field, &raw.recovery),
    }
}

/// What a health-checked name needs to know of its zone.
struct ZoneFacts<'z> {
    sites: &'z [SiteConfig],
    site_index: &'z HashMap<String, usize>,
    soa_minimum: u32,
}

fn validate_health_checked(
    r: &mut Report,
    field: &str,
    name: Name,
    fqdn: &Spanned<FqdnRaw>,
    zone: &ZoneFacts,
) -> Option<HealthCheckedNameConfig> {
    let sites = zone.site_index;
    let raw = &fqdn.value;
    let policy = raw
        .selection
        .as_ref()
        .map_or(Policy::FixedWeight, |s| s.value);
    let ttl = raw.ttl.as_ref().map_or(30, |t| t.value);
    let answers = match &raw.answers {
        Some(a) if a.value == 0 => {
            r.at(
                a.referenced,
                format!("{field}.answers"),
                "must be at least 1",
            );
            1
        }
        Some(a) => a.value,
        None => 1,
    };
    let errors_before = r.count();
    let name_recovery = validate_recovery(r, field, &raw.recovery);
    let default_checks = validate_checks(r, field, &raw.check, &raw.checks, false);
    if raw.members.value.is_empty() {
        r.at(
            raw.members.referenced,
            format!("{field}.members"),
            "needs at least one member",
        );
    }
    if raw.members.value.len() > MAX_MEMBERS {
        r.at(
            raw.members.referenced,
            format!("{field}.members"),
            format!(
                "{} members; a name has at most {MAX_MEMBERS}",
                raw.members.value.len()
            ),
        );
        return None;
    }
    let mut members = Vec::new();
    let mut seen = HashSet::new();
    for (i, m) in raw.members.value.iter().enumerate() {
        let mfield = format!("{field}.members[{i}]");
        let address = match m.value.address.value.trim().parse::<IpAddr>() {
            Ok(a) => a,
            Err(_) => {
                r.at(
                    m.value.address.referenced,
                    format!("{mfield}.address"),
                    format!("`{}` is not an IP address", m.value.address.value),
                );
                continue;
            }
        };
        if !seen.insert(address) {
            r.at(
                m.value.address.referenced,
                format!("{mfield}.address"),
                format!("duplicate member {address}"),
            );
        }
        let weight = match &m.value.weight {
            None => 1,
            Some(w) if w.value <= 0 || w.value > 1_000_000 => {
                r.at(
                    w.referenced,
                    format!("{mfield}.weight"),
                    format!("must be between 1 and 1000000 (got {})", w.value),
                );
                1
            }
            Some(w) => w.value as u32,
        };
        let site = match &m.value.site {
            None => None,
            Some(s) => match sites.get(&s.value) {
                Some(i) => Some(*i),
                None => {
                    let mut known: Vec<&str> = sites.keys().map(String::as_str).collect();
                    known.sort();
                    let hint = if known.is_empty() {
                        "the zone defines no sites".to_string()
                    } else {
                        format!("known sites: {}", known.join(", "))
                    };
                    r.at(
                        s.referenced,
                        format!("{mfield}.site"),
                        format!("unknown site `{}` ({hint})", s.value),
                    );
                    None
                }
            },
        };
        let own = validate_checks(r, &mfield, &m.value.check, &m.value.checks, false);
        let checks = own.or_else(|| default_checks.clone()).unwrap_or_default();
        members.push(MemberConfig {
            address,
            weight,
            site,
            checks,
            enabled: m.value.enabled.unwrap_or(true),
            node: m
                .value
                .node
                .as_ref()
                .map(|n| n.value.trim().to_ascii_lowercase()),
            // The member's own, else its name's, else its site's (Kemp's per-site mode).
            recovery: validate_recovery(r, &mfield, &m.value.recovery)
                .or(name_recovery)
                .or(site.and_then(|s| zone.sites[s].recovery))
                .unwrap_or_default(),
            quorum: raw.quorum.unwrap_or_default(),
        });
    }
    let roles = match &raw.roles {
        None => Vec::new(),
        // A check with an error is left out: a member may lack roles only because of it.
        Some(_) if r.count() > errors_before => Vec::new(),
        Some(tiers) => {
            let member_roles: Vec<(String, Option<Arc<Roles>>)> = members
                .iter()
                .enumerate()
                .map(|(i, m)| (format!("members[{i}]"), m.roles().cloned()))
                .collect();
            validate_tiers(r, field, tiers, &member_roles).unwrap_or_default()
        }
    };
    let when_all_down = raw.when_all_down.unwrap_or_default();
    let (failover_within, budget) =
        validate_budget(r, field, fqdn, ttl, when_all_down, &members, zone);
    Some(HealthCheckedNameConfig {
        name,
        policy,
        ttl,
        answers,
        when_all_down,
        roles,
        members,
        failover_within,
        budget,
        sticky: validate_sticky(r, field, &raw.sticky),
    })
}

/// `sticky: 300s`: from a second to 48 days (the table's clock).
fn validate_sticky(
    r: &mut Report,
    field: &str,
    raw: &Option<Box<Spanned<String>>>,
) -> Option<Duration> {
    let v = raw.as_deref()?;
    match humantime::parse_duration(v.value.trim()) {
        Ok(d) if d >= Duration::from_secs(1) && d.as_secs() <= 1 << 22 => Some(d),
        _ => {
            r.at(
                v.referenced,
                format!("{field}.sticky"),
                format!(
                    "`{}` is not a duration from 1s to 48 days (write 300s or 1h)",
                    v.value
                ),
            );
            None
        }
    }
}

/// `recovery: auto | manual`; `None` when not given (or wrong, reported).
fn validate_recovery(
    r: &mut Report,
    field: &str,
    raw: &Option<Box<Spanned<String>>>,
) -> Option<Recovery> {
    let v = raw.as_deref()?;
    match v.value.trim() {
        "auto" => Some(Recovery::Auto),
        "manual" => Some(Recovery::Manual),
        other => {
            r.at(
                v.referenced,
                format!("{field}.recovery"),
                format!("`{other}` is not auto or manual"),
            );
            None
        }
    }
}

/// The name's failover budget, against `failover-within` when given; and a warning for a
/// fail-closed name whose NODATA a cache may keep for a long negative TTL.
fn validate_budget(
    r: &mut Report,
    field: &str,
    fqdn: &Spanned<FqdnRaw>,
    ttl: u32,
    when_all_down: WhenAllDown,
    members: &[MemberConfig],
    zone: &ZoneFacts,
) -> (Option<Duration>, Option<Budget>) {
    let raw = &fqdn.value;
    let fails_closed = when_all_down == WhenAllDown::FailClosed;
    let checks = members.iter().flat_map(|m| {
        let site = m
            .site
            .map(|s| zone.sites[s].checks.as_slice())
            .unwrap_or_default();
        m.checks.iter().chain(site)
    });
    let budget = worst_case(checks, ttl, fails_closed.then_some(zone.soa_minimum));
    if fails_closed && zone.soa_minimum > ttl.max(60) {
        r.warn(
            fqdn.referenced,
            format!("{field}.when-all-down"),
            format!(
                "while no member is up this name answers NODATA; its SOA carries ttl {ttl}s, but the zone's negative TTL (soa.minimum) is {}s, and caches that take MINIMUM alone (RFC 2308 asks for the smaller of the two) keep the empty answer that long: lower soa.minimum or fail open",
                zone.soa_minimum
            ),
        );
    }
    let Some(target) = &raw.failover_within else {
        return (None, budget);
    };
    let field = format!("{field}.failover-within");
    let Ok(within) = humantime::parse_duration(target.value.trim()) else {
        r.at(
            target.referenced,
            field,
            format!("`{}` is not a duration (write 8s or 1m)", target.value),
        );
        return (None, budget);
    };
    match &budget {
        None => r.at(
            target.referenced,
            field,
            "no check of these members can see a failure: give them a check",
        ),
        Some(b) if b.worst > within => r.at(
            target.referenced,
            field,
            format!(
                "the worst case is {}, over {}: {}; lower ttl, interval or fall, or allow more",
                humantime::format_duration(b.worst),
                humantime::format_duration(within),
                b.why
            ),
        ),
        Some(_) => {}
    }
    (Some(within), budget)
}

/// Names that are both static and health-checked, or CNAMEs beside a health-checked name.
fn check_conflicts(
    r: &mut Report,
    raw: &ZoneRaw,
    origin: &Name,
    records: &[RecordSetConfig],
    names: &[HealthCheckedNameConfig],
) {
    // Each name by its lower-cased form, so that each record set looks up its owner (a scan
    // per name was quadratic in a large zone). Keyed by the names rather than the record
    // sets: a zone of a million static records and no names builds nothing.
    // Keyed by the lower-cased wire form, as the table is: cheaper than a lower-cased `Name`.
    let mut by_name: HashMap<Box<[u8]>, usize> = HashMap::with_capacity(names.len());
    let mut twice = Vec::new();
    for (i, f) in names.iter().enumerate() {
        // Two fqdns keys may spell the same name (`vault` and `vault.kemp.local.`).
        if by_name.insert(key_of(&f.name), i).is_some() {
            twice.push(f);
        }
    }
    let mut clashes: Vec<(usize, &RecordSetConfig)> = Vec::new();
    if !by_name.is_empty() {
        for set in records {
            if let Some(&i) = by_name.get(set.owner_key().as_bytes()) {
                clashes.push((i, set));
            }
        }
    }
    // In the order of the names, and of the records under each.
    clashes.sort_by_key(|&(i, _)| i);
    for (i, set) in clashes {
        let f = &names[i];
        let clash = match set.rtype {
            RecordType::CNAME => Some("a CNAME"),
            RecordType::A if f.members.iter().any(|m| m.address.is_ipv4()) => {
                Some("static A records")
            }
            RecordType::AAAA if f.members.iter().any(|m| m.address.is_ipv6()) => {
                Some("static AAAA records")
            }
            _ => None,
        };
        if let Some(what) = clash {
            let key = relative_key(&f.name, origin);
            let at = raw
                .fqdns
                .get(&key)
                .map_or(Location::UNKNOWN, |s| s.referenced);
            r.at(
                at,
                format!("fqdns.{key}"),
                format!("{} also has {what} under records.{key}", f.name),
            );
        }
    }
    for f in twice {
        r.at(
            Location::UNKNOWN,
            format!("fqdns.{}", relative_key(&f.name, origin)),
            format!("{} is defined twice", f.name),
        );
    }
}

fn relative_key(name: &Name, origin: &Name) -> String {
    if name == origin {
        return "@".into();
    }
    let full = name.to_string();
    let suffix = format!(".{origin}");
    full.strip_suffix(&suffix).unwrap_or(&full).to_string()
}

// ---------------------------------------------------------------------------------------------
// Names

/// Why `text` is not a domain name, in words.
fn name_error(text: &str, e: impl std::fmt::Display) -> String {
    let t = text.trim().trim_end_matches('.');
    if t.starts_with('.') || t.contains("..") {
        return format!(
            "`{text}` has an empty label (two dots in a row, or a leading dot): separate labels with single dots"
        );
    }
    if let Some(long) = t.split('.').find(|l| l.len() > 63) {
        return format!(
            "`{text}`: the label `{long}` is {} characters long; a label holds at most 63",
            long.len()
        );
    }
    if t.len() > 253 {
        return format!("`{text}` is longer than 253 characters, the most a name can be");
    }
    format!("bad name `{text}`: {e}")
}

/// A warning for a name written without its trailing dot where one was almost surely
/// meant: it ends with the zone's own name (`ns1.kemp.local` in kemp.local), or it holds
/// dots in a field that names a host or mailbox elsewhere (`ns`, `mname`, `rname`).
fn relative_warning(text: &str, name: &Name, origin: &Name, host_field: bool) -> Option<String> {
    let text = text.trim();
    if text.ends_with('.') || text == "@" {
        return None;
    }
    let zone = origin.to_string();
    let zone = zone.trim_end_matches('.');
    let doubled = text.eq_ignore_ascii_case(zone)
        || text
            .to_ascii_lowercase()
            .ends_with(&format!(".{}", zone.to_ascii_lowercase()));
    if doubled || (host_field && text.contains('.')) {
        return Some(format!(
            "`{text}` has no trailing dot, so it is relative to the zone and becomes {name}; write `{text}.` if you mean that name"
        ));
    }
    None
}

fn parse_absolute(text: &str) -> Result<Name, String> {
    let mut name = Name::from_ascii(text.trim()).map_err(|e| name_error(text, e))?;
    name.set_fqdn(true);
    Ok(name)
}

/// An owner written relative to the zone (`ns1`, `_vault._tcp`, `@`) or absolute with a
/// trailing dot, which must then lie inside the zone.
fn parse_owner(text: &str, origin: &Name) -> Result<Name, String> {
    let text = text.trim();
    if text == "@" || text.is_empty() {
        return Ok(origin.clone());
    }
    if text.ends_with('.') {
        let name = parse_absolute(text)?;
        if !origin.zone_of(&name) {
            return Err(format!("{name} is outside the zone {origin}"));
        }
        return Ok(name);
    }
    Name::from_ascii(text)
        .and_then(|n| n.append_domain(origin))
        .map_err(|e| name_error(text, e))
}

/// A name in record data: absolute with a trailing dot, otherwise relative to the zone.
fn parse_target(text: &str, origin: &Name) -> Result<Name, String> {
    let text = text.trim();
    if text == "@" {
        return Ok(origin.clone());
    }
    if text.ends_with('.') {
        return parse_absolute(text);
    }
    Name::from_ascii(text)
        .and_then(|n| n.append_domain(origin))
        .map_err(|e| name_error(text, e))
}
