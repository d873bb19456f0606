//! Where is the client? Site networks first, then the GeoIP database; and how far apart
//! two places are.
//!
//! Runs only for names whose policy needs it (proximity, location). Nothing here
//! allocates: countries and continents are two-byte codes, and the GeoIP record is decoded
//! into a struct that borrows from the database.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;

/// A two-letter code (ISO 3166 country or continent), upper case.
pub type Code = [u8; 2];

pub fn code(s: &str) -> Option<Code> {
    let b = s.as_bytes();
    (b.len() == 2).then(|| [b[0].to_ascii_uppercase(), b[1].to_ascii_uppercase()])
}

pub fn code_str(c: &Code) -> &str {
    std::str::from_utf8(c).unwrap_or("??")
}

/// An open MaxMind DB (City or Country layout).
pub struct GeoDb {
    pub path: PathBuf,
    reader: maxminddb::Reader<Vec<u8>>,
    /// Distinguishes this open database from any other in the per-thread cache.
    id: u64,
}

/// Largest GeoIP database opened (a full GeoIP2 City database is about 130 MiB).
const MAX_DATABASE_BYTES: u64 = 1 << 30;

/// Most decoded records a thread keeps; a database has far fewer distinct records than
/// networks (a City database: some hundred thousand), and clients cluster.
const CACHE_ENTRIES: usize = 16_384;

/// A decoded record without its network prefix.
#[derive(Clone, Copy)]
struct Decoded {
    lat_lon: Option<(f64, f64)>,
    country: Option<Code>,
    continent: Option<Code>,
}

thread_local! {
    // Per thread (the UDP workers are dedicated threads), so the query path takes no lock:
    // (database id, record offset -> decoded record).
    static DECODED: std::cell::RefCell<(u64, std::collections::HashMap<usize, Decoded>)> =
        std::cell::RefCell::new((0, std::collections::HashMap::new()));
}

impl std::fmt::Debug for GeoDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoDb").field("path", &self.path).finish()
    }
}

/// The slice of a GeoIP2 City/Country record that selection uses.
#[derive(Deserialize)]
struct Record<'a> {
    #[serde(borrow)]
    country: Option<Named<'a>>,
    #[serde(borrow)]
    continent: Option<Continent<'a>>,
    location: Option<Position>,
}

#[derive(Deserialize)]
struct Named<'a> {
    iso_code: Option<&'a str>,
}

#[derive(Deserialize)]
struct Continent<'a> {
    code: Option<&'a str>,
}

#[derive(Deserialize)]
struct Position {
    latitude: Option<f64>,
    longitude: Option<f64>,
}

/// What the GeoIP database says of one address.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GeoIpEntry {
    pub lat_lon: Option<(f64, f64)>,
    pub country: Option<Code>,
    pub continent: Option<Code>,
    /// Prefix length of the database network the address fell in (IPv4 lengths for
    /// IPv4 addresses), whether or not it had data.
    pub prefix: u8,
    pub found: bool,
}

impl GeoDb {
    /// Opens and fully verifies the database, so that a broken file is an error at load
    /// time rather than on some query.
    pub fn open(path: &Path) -> Result<GeoDb, String> {
        // Checked first: the reader reads the whole file, and would read /dev/zero forever.
        crate::model::file::check_regular(path, MAX_DATABASE_BYTES)
            .map_err(|e| format!("cannot open GeoIP database: {e}"))?;
        let reader = maxminddb::Reader::open_readfile(path)
            .map_err(|e| format!("cannot open GeoIP database: {e}"))?;
        reader
            .verify()
            .map_err(|e| format!("GeoIP database is corrupt: {e}"))?;
        let kind = reader.metadata().database_type.clone();
        if !(kind.contains("City") || kind.contains("Country")) {
            return Err(format!(
                "GeoIP database type is `{kind}`; a City or Country database (GeoIP2/GeoLite2 layout) is needed"
            ));
        }
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Ok(GeoDb {
            path: path.to_path_buf(),
            reader,
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        })
    }

    pub fn database_type(&self) -> &str {
        &self.reader.metadata().database_type
    }

    pub fn lookup(&self, addr: IpAddr) -> GeoIpEntry {
        let Ok(result) = self.reader.lookup(addr) else {
            // An IPv6 address in an IPv4-only database: nothing known.
            return GeoIpEntry::default();
        };
        let mut prefix = result.network().map_or(0, |n| n.prefix());
        // An IPv4 address found in an IPv6 tree reports an IPv6 network.
        if addr.is_ipv4() && result.network().is_ok_and(|n| n.is_ipv6()) {
            prefix = prefix.saturating_sub(96);
        }
        let Some(offset) = result.offset() else {
            return GeoIpEntry {
                prefix,
                ..GeoIpEntry::default()
            };
        };
        let cached = DECODED.with(|c| {
            let mut c = c.borrow_mut();
            if c.0 != self.id {
                *c = (self.id, std::collections::HashMap::new());
            }
            c.1.get(&offset).copied()
        });
        let place = match cached {
            Some(place) => place,
            None => {
                let record: Option<Record> = result.decode().ok().flatten();
                let place = match record {
                    None => None,
                    Some(r) => Some(Decoded {
                        lat_lon: r.location.and_then(|l| Some((l.latitude?, l.longitude?))),
                        country: r.country.and_then(|c| c.iso_code).and_then(code),
                        continent: r.continent.and_then(|c| c.code).and_then(code),
                    }),
                };
                let Some(place) = place else {
                    return GeoIpEntry {
                        prefix,
                        ..GeoIpEntry::default()
                    };
                };
                DECODED.with(|c| {
                    let mut c = c.borrow_mut();
                    if c.1.len() >= CACHE_ENTRIES {
                        c.1.clear();
                    }
                    c.1.insert(offset, place);
                });
                place
            }
        };
        GeoIpEntry {
            lat_lon: place.lat_lon,
            country: place.country,
            continent: place.continent,
            prefix,
            found: true,
        }
    }
}

/// A data centre as selection sees it.
#[derive(Clone, Debug, Default)]
pub struct Site {
    pub name: String,
    pub lat_lon: Option<(f64, f64)>,
    /// `lat_lon` on the unit sphere ([`position`]), made once at load.
    pub position: Option<[f64; 3]>,
    pub countries: Vec<Code>,
    pub continents: Vec<Code>,
    pub default: bool,
}

/// How the client was located.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocatedBy {
    /// Inside one of a site's `networks`.
    SiteNetwork,
    GeoIp,
    Unknown,
}

impl LocatedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            LocatedBy::SiteNetwork => "site-network",
            LocatedBy::GeoIp => "geoip",
            LocatedBy::Unknown => "unknown",
        }
    }
}

/// Where the client is, as far as it is known: the one answer to "where is the client",
/// which the geo policies choose by and explain shows.
#[derive(Clone, Copy, Debug)]
pub struct ClientLocation {
    pub found_by: LocatedBy,
    /// The site whose network holds the client.
    pub site: Option<usize>,
    pub lat_lon: Option<(f64, f64)>,
    /// `lat_lon` on the unit sphere ([`position`]): made when the client is placed, and
    /// kept with the placement in the per-thread cache.
    pub position: Option<[f64; 3]>,
    pub country: Option<Code>,
    pub continent: Option<Code>,
    /// The ECS scope: how many leading bits of the client address decided this.
    pub scope: u8,
}

/// A zone's sites with their client networks, most specific first.
#[derive(Debug, Default)]
pub struct SiteMap {
    pub sites: Vec<Site>,
    networks: Vec<(IpNet, usize)>,
    /// Tells this map's placements from another's in the per-thread cache (never reused,
    /// unlike an address).
    id: u64,
}

/// Placements remembered per answering thread: direct-mapped, so bounded and without a
/// lock. Resolvers send the same client subnets again and again; a hit costs a hash and
/// a compare instead of the site-network scans and the GeoIP tree walk.
const PLACEMENT_SLOTS: usize = 2048;

/// What a placement depends on: the site map, the database, the address and its prefix.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct PlacementKey {
    sites: u64,
    geoip: u64,
    addr: IpAddr,
    source_prefix: u8,
}

thread_local! {
    static PLACED: std::cell::RefCell<Vec<Option<(PlacementKey, ClientLocation)>>> =
        std::cell::RefCell::new(vec![None; PLACEMENT_SLOTS]);
}

impl SiteMap {
    pub fn new(sites: Vec<Site>, networks: Vec<(IpNet, usize)>) -> Self {
        let mut networks = networks;
        networks.sort_by_key(|(n, _)| std::cmp::Reverse(n.prefix_len()));
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        SiteMap {
            sites,
            networks,
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// Locates `addr`: the most specific site network holding it, else GeoIP, else unknown.
    /// `source_prefix` caps the scope (the ECS source prefix; the full length otherwise).
    /// Remembered per thread (see [`PLACEMENT_SLOTS`]).
    pub fn locate(&self, addr: IpAddr, source_prefix: u8, geoip: Option<&GeoDb>) -> ClientLocation {
        let key = PlacementKey {
            sites: self.id,
            geoip: geoip.map_or(0, |db| db.id),
            addr,
            source_prefix,
        };
        let slot = {
            use std::hash::BuildHasher;
            rustc_hash::FxBuildHasher.hash_one(key) as usize % PLACEMENT_SLOTS
        };
        let cached = PLACED.with_borrow(|placed| match placed[slot] {
            Some((k, located)) if k == key => Some(located),
            _ => None,
        });
        if let Some(located) = cached {
            return located;
        }
        let located = self.place(addr, source_prefix, geoip);
        PLACED.with_borrow_mut(|placed| placed[slot] = Some((key, located)));
        located
    }

    fn place(&self, addr: IpAddr, source_prefix: u8, geoip: Option<&GeoDb>) -> ClientLocation {
        let mut located = match self.networks.iter().find(|(net, _)| net.contains(&addr)) {
            Some((net, site)) => {
                let s = &self.sites[*site];
                ClientLocation {
                    found_by: LocatedBy::SiteNetwork,
                    site: Some(*site),
                    lat_lon: s.lat_lon,
                    position: s.position,
                    country: s.countries.first().copied(),
                    continent: s.continents.first().copied(),
                    scope: net.prefix_len(),
                }
            }
            None => match geoip.map(|db| db.lookup(addr)) {
                Some(entry) => ClientLocation {
                    found_by: if entry.found {
                        LocatedBy::GeoIp
                    } else {
                        LocatedBy::Unknown
                    },
                    site: None,
                    lat_lon: entry.lat_lon,
                    position: entry.lat_lon.map(position),
                    country: entry.country,
                    continent: entry.continent,
                    scope: entry.prefix,
                },
                None => ClientLocation {
                    found_by: LocatedBy::Unknown,
                    site: None,
                    lat_lon: None,
                    position: None,
                    country: None,
                    continent: None,
                    scope: 0,
                },
            },
        };
        located.scope = self.narrow_scope(addr, located.scope).min(source_prefix);
        located
    }

    /// A scope must not cover a more specific site network that does not hold the
    /// client (it would be answered differently): lengthen it until it excludes them.
    fn narrow_scope(&self, addr: IpAddr, mut scope: u8) -> u8 {
        for (net, _) in &self.networks {
            if net.contains(&addr) || net.prefix_len() <= scope {
                continue;
            }
            let common = common_prefix(addr, net.network());
            if common >= scope && common < net.prefix_len() {
                scope = scope.max(common + 1);
            }
        }
        scope
    }
}

/// Leading bits that two addresses of the same family share (0 across families).
fn common_prefix(a: IpAddr, b: IpAddr) -> u8 {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(a) ^ u32::from(b)).leading_zeros() as u8,
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a) ^ u128::from(b)).leading_zeros() as u8,
        _ => 0,
    }
}

/// Great-circle distance in kilometres (haversine).
/// A latitude and longitude (degrees) as a point on the unit sphere. The great-circle
/// distance between two places falls as the dot product of their points rises
/// ([`nearness`]), so the nearest site is found by comparing products, with no
/// trigonometry per query: the sites' points are made at load and a client's when it is
/// placed.
pub fn position((lat, lon): (f64, f64)) -> [f64; 3] {
    let (lat, lon) = (lat.to_radians(), lon.to_radians());
    [lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()]
}

/// The cosine of the angle between two [`position`]s: 1 at the same place, -1 at the
/// antipode.
#[inline]
pub fn nearness(a: &[f64; 3], b: &[f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

pub fn distance_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (lat1, lon1) = (a.0.to_radians(), a.1.to_radians());
    let (lat2, lon2) = (b.0.to_radians(), b.1.to_radians());
    let h = ((lat2 - lat1) / 2.0).sin().powi(2)
        + lat1.cos() * lat2.cos() * ((lon2 - lon1) / 2.0).sin().powi(2);
    2.0 * 6371.0 * h.sqrt().asin()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearness_orders_places_as_distance_does() {
        // London, New York, Sydney, Tokyo, Sao Paulo, Reykjavik, Nairobi, the two poles.
        let places = [
            (51.51, -0.13),
            (40.71, -74.01),
            (-33.87, 151.21),
            (35.68, 139.69),
            (-23.55, -46.63),
            (64.15, -21.94),
            (-1.29, 36.82),
            (90.0, 0.0),
            (-90.0, 0.0),
        ];
        for &here in &places {
            let mut by_distance: Vec<usize> = (0..places.len()).collect();
            by_distance.sort_by(|&a, &b| {
                distance_km(here, places[a]).total_cmp(&distance_km(here, places[b]))
            });
            let mut by_nearness: Vec<usize> = (0..places.len()).collect();
            let p = position(here);
            by_nearness.sort_by(|&a, &b| {
                nearness(&p, &position(places[b])).total_cmp(&nearness(&p, &position(places[a])))
            });
            assert_eq!(by_distance, by_nearness, "from {here:?}");
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cached_lookups_equal_first_lookups_and_do_not_cross_databases() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("geoip");
        let city = GeoDb::open(&dir.join("maxmind-test-data/GeoIP2-City-Test.mmdb")).unwrap();
        let sites = GeoDb::open(&dir.join("test-sites.mmdb")).unwrap();
        for a in [
            "81.2.69.142",
            "89.160.20.112",
            "216.160.83.56",
            "2001:218::1",
            "1.1.1.1",
        ] {
            let first = city.lookup(ip(a));
            assert_eq!(city.lookup(ip(a)), first, "{a}");
        }
        assert_eq!(city.lookup(ip("81.2.69.142")).country, code("GB"));
        assert_eq!(city.lookup(ip("81.2.69.142")).prefix, 31);
        // The other database, same thread: its own records, not the cache's.
        assert_eq!(sites.lookup(ip("127.0.4.1")).country, code("US"));
        assert!(!sites.lookup(ip("81.2.69.142")).found);
        assert_eq!(city.lookup(ip("81.2.69.142")).country, code("GB"));
    }

    #[test]
    fn remembered_placements_stay_with_their_site_map_and_database() {
        let site = |name: &str| Site {
            name: name.into(),
            ..Site::default()
        };
        let a = SiteMap::new(vec![site("a")], vec![("10.0.0.0/8".parse().unwrap(), 0)]);
        let b = SiteMap::new(
            vec![site("b0"), site("b1")],
            vec![("10.1.0.0/16".parse().unwrap(), 1)],
        );
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("geoip");
        let city = GeoDb::open(&dir.join("maxmind-test-data/GeoIP2-City-Test.mmdb")).unwrap();
        for _ in 0..3 {
            assert_eq!(a.locate(ip("10.1.2.3"), 32, None).site, Some(0));
            assert_eq!(b.locate(ip("10.1.2.3"), 32, None).site, Some(1));
            assert_eq!(a.locate(ip("10.1.2.3"), 24, None).scope, 8);
            assert_eq!(b.locate(ip("10.1.2.3"), 24, None).scope, 16);
            // With and without a database, the same address is placed apart.
            assert_eq!(
                a.locate(ip("81.2.69.142"), 32, None).found_by,
                LocatedBy::Unknown
            );
            let gb = a.locate(ip("81.2.69.142"), 32, Some(&city));
            assert_eq!((gb.found_by, gb.country), (LocatedBy::GeoIp, code("GB")));
        }
    }

    #[test]
    fn london_to_new_york_is_about_5570_km() {
        let d = distance_km((51.5142, -0.0931), (40.7128, -74.0060));
        assert!((5560.0..5580.0).contains(&d), "{d}");
    }

    #[test]
    fn most_specific_network_wins_and_scope_excludes_nested_networks() {
        let site = |name: &str| Site {
            name: name.into(),
            ..Site::default()
        };
        let map = SiteMap::new(
            vec![site("wide"), site("narrow")],
            vec![
                ("10.0.0.0/8".parse().unwrap(), 0),
                ("10.1.0.0/16".parse().unwrap(), 1),
            ],
        );
        let inner = map.locate(ip("10.1.2.3"), 32, None);
        assert_eq!((inner.site, inner.scope), (Some(1), 16));
        // 10.2.3.4 is in the /8 only; a /8 scope would also cover 10.1/16, so the scope
        // grows to the first bit that separates it from 10.1.0.0: 10.2.0.0/15.
        let outer = map.locate(ip("10.2.3.4"), 32, None);
        assert_eq!((outer.site, outer.scope), (Some(0), 15));
        // 10.200/8 still shares its first bit after 10. with 10.1/16: 9 bits.
        let far = map.locate(ip("10.200.0.1"), 24, None);
        assert_eq!((far.site, far.scope), (Some(0), 9));
        assert_eq!(
            map.locate(ip("10.2.3.4"), 12, None).scope,
            12,
            "capped at the source prefix"
        );
        // Unknown, but scope 0 would claim 10/8 too, which answers differently: 1 bit.
        let none = map.locate(ip("192.0.2.1"), 24, None);
        assert_eq!((none.found_by, none.scope), (LocatedBy::Unknown, 1));
    }
}
