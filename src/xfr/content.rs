//! A zone as it is transferred: every record but the SOA, each in uncompressed wire form,
//! sorted and without duplicates, so that two versions compare and diff as lists.
//!
//! The static records come from the compiled zone as they are; a health-checked name
//! carries the answer its `transfer-view:` gets (see `select::Pool::steady`), with the
//! health-aware TTL. A name with nothing to answer (all down, failing closed) is left
//! out, so secondaries answer NXDOMAIN for it.

use hickory_proto::rr::RecordType;

use crate::config::TransferView;
use crate::geo::{ClientLocation, LocatedBy};
use crate::model::wire;
use crate::zone::ZoneTable;

/// Records in wire form, sorted.
pub type Records = Vec<Box<[u8]>>;

/// The zone's static records (the SOA apart).
pub fn static_records(zone: &ZoneTable) -> Records {
    let mut out = Records::new();
    let mut buf = Vec::with_capacity(256);
    for (_, node) in zone.nodes() {
        if let Some((cname, _)) = node.cname() {
            let cname = cname.wire();
            buf.clear();
            cname.write(&mut buf, cname.ttl(), None);
            out.push(buf.as_slice().into());
        }
        for set in node.rrsets() {
            if set.rtype == RecordType::SOA {
                continue;
            }
            for r in set.records.iter() {
                buf.clear();
                r.write(&mut buf, r.ttl(), None);
                out.push(buf.as_slice().into());
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// The health-checked names' records, as `view` sees them now.
pub fn health_records(zone: &ZoneTable, view: &TransferView) -> Records {
    let sites = &zone.zone.sites.sites;
    let location = match *view {
        TransferView::AllUp => None,
        TransferView::Site(i) => sites.get(i).map(|site| ClientLocation {
            found_by: LocatedBy::SiteNetwork,
            site: Some(i),
            lat_lon: site.lat_lon,
            position: site.position,
            country: site.countries.first().copied(),
            continent: site.continents.first().copied(),
            scope: 0,
        }),
    };
    let mut out = Records::new();
    let mut buf = Vec::with_capacity(64);
    for name in zone.health_checked_names() {
        for pool in [&name.v4, &name.v6] {
            let ttl = pool.ttl(name.ttl);
            for m in pool.steady(name.rules, location.as_ref(), sites) {
                buf.clear();
                wire::write_address(&mut buf, &name.name, None, ttl, m.address);
                out.push(buf.as_slice().into());
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// What is in `old` and not in `new`, and what is in `new` and not in `old` (both sorted).
pub fn diff(old: &[Box<[u8]>], new: &[Box<[u8]>]) -> (Records, Records) {
    let (mut removed, mut added) = (Records::new(), Records::new());
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        match (old.get(i), new.get(j)) {
            (Some(a), Some(b)) if a == b => {
                i += 1;
                j += 1;
            }
            (Some(a), Some(b)) if a < b => {
                removed.push(a.clone());
                i += 1;
            }
            (Some(_), Some(b)) => {
                added.push(b.clone());
                j += 1;
            }
            (Some(a), None) => {
                removed.push(a.clone());
                i += 1;
            }
            (None, Some(b)) => {
                added.push(b.clone());
                j += 1;
            }
            (None, None) => break,
        }
    }
    (removed, added)
}

/// A hash of the records, for the state file to tell whether what secondaries hold is
/// still what would be transferred after a restart.
pub fn hash(parts: &[&Records]) -> u64 {
    use std::hash::Hasher;
    let mut h = siphasher::sip::SipHasher13::new();
    for part in parts {
        for r in part.iter() {
            h.write(r);
        }
    }
    h.finish().max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_finds_what_left_and_what_came() {
        let r = |s: &str| -> Box<[u8]> { s.as_bytes().into() };
        let old = vec![r("a"), r("b"), r("d")];
        let new = vec![r("b"), r("c"), r("d"), r("e")];
        let (removed, added) = diff(&old, &new);
        assert_eq!(removed, vec![r("a")]);
        assert_eq!(added, vec![r("c"), r("e")]);
        assert_eq!(diff(&new, &new), (vec![], vec![]));
    }
}
