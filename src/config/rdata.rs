//! Record data that hickory-proto's zone-file parser does not read, written by hand: the
//! generic form of RFC 3597 (`\# 4 0a000001`, for any type, known or not), LOC (RFC 1876)
//! and URI (RFC 7553). Each becomes wire bytes; hickory decodes the bytes of a type it
//! knows into its own record data, and keeps the rest as unknown data that it encodes as
//! they are.

use hickory_proto::rr::rdata::NULL;
use hickory_proto::rr::{RData, RecordType};
use hickory_proto::serialize::binary::{BinDecoder, Restrict};

/// LOC (RFC 1876), which hickory-proto does not know.
pub(super) const LOC: RecordType = RecordType::Unknown(29);
/// URI (RFC 7553), which hickory-proto does not know.
pub(super) const URI: RecordType = RecordType::Unknown(256);

/// Record data from wire bytes: hickory's own type where it has one.
fn from_wire(rtype: RecordType, bytes: &[u8]) -> Result<RData, String> {
    let len = u16::try_from(bytes.len()).map_err(|_| "more than 65535 bytes".to_string())?;
    match rtype {
        RecordType::Unknown(code) => Ok(RData::Unknown {
            code: RecordType::Unknown(code),
            rdata: NULL::with(bytes.to_vec()),
        }),
        _ => RData::read(&mut BinDecoder::new(bytes), rtype, Restrict::new(len))
            .map_err(|e| format!("not valid {rtype} data: {e}")),
    }
}

/// The generic form (RFC 3597 5): `\#`, the length in bytes, then the bytes in hex
/// (spaces allowed between them).
pub(super) fn generic(rtype: RecordType, text: &str) -> Result<RData, String> {
    let mut words = text.split_whitespace();
    if words.next() != Some("\\#") {
        return Err("the generic form starts with \\#".into());
    }
    let len: usize = words
        .next()
        .and_then(|w| w.parse().ok())
        .ok_or("the generic form gives the length after \\#, e.g. \\# 4 0a000001")?;
    let hex: String = words.collect();
    let bytes = data_encoding::HEXLOWER_PERMISSIVE
        .decode(hex.as_bytes())
        .map_err(|_| format!("`{hex}` is not hexadecimal"))?;
    if bytes.len() != len {
        return Err(format!(
            "the length says {len} bytes, the hex has {}",
            bytes.len()
        ));
    }
    from_wire(rtype, &bytes)
}

/// URI: `priority weight "target"` (RFC 7553 4.4).
pub(super) fn uri(text: &str) -> Result<RData, String> {
    let usage = "write `priority weight \"target\"`, e.g. 10 1 \"https://vault.kemp.local/\"";
    let mut parts = text.trim().splitn(3, char::is_whitespace);
    let number = |p: Option<&str>| p.and_then(|w| w.parse::<u16>().ok());
    let (Some(priority), Some(weight)) = (number(parts.next()), number(parts.next())) else {
        return Err(usage.into());
    };
    let target = parts.next().map(str::trim).unwrap_or("");
    let target = target
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .filter(|t| !t.is_empty())
        .ok_or(usage)?;
    let mut bytes = Vec::with_capacity(4 + target.len());
    bytes.extend_from_slice(&priority.to_be_bytes());
    bytes.extend_from_slice(&weight.to_be_bytes());
    bytes.extend_from_slice(target.as_bytes());
    from_wire(URI, &bytes)
}

/// LOC: `d1 [m1 [s1]] {N|S} d2 [m2 [s2]] {E|W} alt[m] [siz[m] [hp[m] [vp[m]]]]`
/// (RFC 1876 3), with its defaults: size 1 m, precisions 10,000 m and 10 m.
pub(super) fn loc(text: &str) -> Result<RData, String> {
    let usage = "write `52 22 23.000 N 4 53 32.000 E -2.00m [size [horizontal [vertical]]]`";
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut at = 0;
    // One coordinate: degrees, optional minutes and seconds, then a hemisphere letter.
    let mut coordinate = |hemispheres: [char; 2], max: u32| -> Result<u32, String> {
        let mut parts = Vec::new();
        while let Some(w) = words.get(at) {
            at += 1;
            if let Some(h) = w
                .chars()
                .next()
                .filter(|c| w.len() == 1 && hemispheres.contains(c))
            {
                let [deg, min, sec] = match parts[..] {
                    [d] => [d, 0.0, 0.0],
                    [d, m] => [d, m, 0.0],
                    [d, m, s] => [d, m, s],
                    _ => return Err(usage.to_string()),
                };
                if deg > f64::from(max)
                    || !(0.0..60.0).contains(&min)
                    || !(0.0..60.0).contains(&sec)
                {
                    return Err(format!("{text}: a coordinate out of range"));
                }
                let thousandths = ((deg * 3600.0 + min * 60.0 + sec) * 1000.0).round() as u32;
                return Ok(if h == hemispheres[0] {
                    (1 << 31) + thousandths
                } else {
                    (1 << 31) - thousandths
                });
            }
            parts.push(w.parse::<f64>().map_err(|_| usage.to_string())?);
        }
        Err(usage.to_string())
    };
    let latitude = coordinate(['N', 'S'], 90)?;
    let longitude = coordinate(['E', 'W'], 180)?;
    let meters = |w: Option<&&str>, default: f64| -> Result<f64, String> {
        match w {
            None => Ok(default),
            Some(w) => w
                .trim_end_matches('m')
                .parse::<f64>()
                .map_err(|_| format!("`{w}` is not a length in meters")),
        }
    };
    let altitude = meters(words.get(at), f64::NAN)?;
    if altitude.is_nan() || !(-100_000.0..=42_849_672.95).contains(&altitude) {
        return Err(usage.into());
    }
    let size = precision(meters(words.get(at + 1), 1.0)?)?;
    let horizontal = precision(meters(words.get(at + 2), 10_000.0)?)?;
    let vertical = precision(meters(words.get(at + 3), 10.0)?)?;
    if words.len() > at + 4 {
        return Err(usage.into());
    }
    let mut bytes = vec![0, size, horizontal, vertical];
    bytes.extend_from_slice(&latitude.to_be_bytes());
    bytes.extend_from_slice(&longitude.to_be_bytes());
    // Centimeters above a base 100,000 m below the WGS 84 spheroid.
    let altitude = ((altitude + 100_000.0) * 100.0).round() as u32;
    bytes.extend_from_slice(&altitude.to_be_bytes());
    from_wire(LOC, &bytes)
}

/// A size or precision in meters as LOC keeps it: a digit times a power of ten, in
/// centimeters, each in a half byte.
fn precision(meters: f64) -> Result<u8, String> {
    if !(0.0..=90_000_000.0).contains(&meters) {
        return Err(format!("{meters}m is out of range for LOC"));
    }
    let mut cm = (meters * 100.0).round() as u64;
    let mut exponent = 0u8;
    while cm >= 10 {
        cm /= 10;
        exponent += 1;
    }
    Ok(((cm as u8) << 4) | exponent)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(rdata: &RData) -> Vec<u8> {
        let mut out = Vec::new();
        let mut enc = hickory_proto::serialize::binary::BinEncoder::new(&mut out);
        hickory_proto::serialize::binary::BinEncodable::emit(rdata, &mut enc).unwrap();
        out
    }

    #[test]
    fn the_generic_form_reads_known_and_unknown_types() {
        let a = generic(RecordType::A, "\\# 4 0A000001").unwrap();
        assert_eq!(a.to_string(), "10.0.0.1");
        let unknown = generic(RecordType::Unknown(65534), "\\# 4 0a00 0001").unwrap();
        assert_eq!(wire(&unknown), [10, 0, 0, 1]);
        assert!(
            generic(RecordType::A, "\\# 5 0a000001")
                .unwrap_err()
                .contains("length")
        );
        assert!(generic(RecordType::A, "\\# 4 zz").is_err());
    }

    #[test]
    fn loc_and_uri_encode_as_their_rfcs_say() {
        // RFC 1876's example (cambridge-net.kei.com): 42 21 54 N 71 06 18 W -24m 30m.
        let cambridge = loc("42 21 54 N 71 06 18 W -24m 30m").unwrap();
        assert_eq!(
            wire(&cambridge),
            [
                0x00, 0x33, 0x16, 0x13, // version, size 30 m, 10 km, 10 m
                0x89, 0x17, 0x2d, 0xd0, // 2^31 + 42°21'54" in thousandths
                0x70, 0xbe, 0x15, 0xf0, // 2^31 - 71°06'18"
                0x00, 0x98, 0x8d, 0x20, // 100,000 m - 24 m, in cm
            ]
        );
        assert!(loc("42 N").is_err());
        assert!(loc("91 N 0 E 0m").is_err());
        let ftp = uri("10 1 \"ftp://ftp1.example.com/public\"").unwrap();
        let bytes = wire(&ftp);
        assert_eq!(&bytes[..4], &[0, 10, 0, 1]);
        assert_eq!(&bytes[4..], b"ftp://ftp1.example.com/public");
        assert!(uri("10 1 ftp://unquoted").is_err());
    }
}
