//! Records encoded once at load time, the only form the table keeps them in.
//!
//! A record in wire format is the owner name (uncompressed), then type, class, TTL,
//! length and data (names in the data uncompressed too), kept with the owner's length in
//! a first byte (a name is at most 255 bytes). The fast path copies it with the owner
//! replaced by a pointer to the question where it is the asked name, and patches the TTL;
//! the general path and explain, which speak hickory's types, decode it when they need it.
//!
//! Written by hand because hickory encodes whole messages: encoding each record once, at
//! load time, is what lets the fast path answer without building a message. Keeping
//! hickory's `Record` beside it cost 272 bytes a record, and an allocation per record
//! another 40: a record set keeps its records back to back in one allocation
//! ([`PackedRecords`]).

use std::net::IpAddr;

use hickory_proto::rr::{DNSClass, Name, RData, Record};
use hickory_proto::serialize::binary::{
    BinDecodable, BinDecoder, BinEncodable, BinEncoder, NameEncoding,
};

/// One encoded record, borrowed from where the table keeps it.
#[derive(Clone, Copy, Debug)]
pub struct WireRef<'a> {
    /// The owner's length, then the record.
    bytes: &'a [u8],
}

/// Encodes `record` as [`WireRef`] reads it, appended to `out`.
fn encode(record: &Record, out: &mut Vec<u8>) {
    let mut encoded = Vec::new();
    let mut enc = BinEncoder::new(&mut encoded);
    enc.set_name_encoding(NameEncoding::Uncompressed);
    record.emit(&mut enc).expect("a valid record encodes");
    // The owner ends at its root label (uncompressed: no pointer to stop at).
    let mut owner_len = 0;
    while encoded[owner_len] != 0 {
        owner_len += 1 + usize::from(encoded[owner_len]);
    }
    owner_len += 1;
    out.push(owner_len as u8);
    out.extend_from_slice(&encoded);
}

impl<'a> WireRef<'a> {
    fn owner_len(&self) -> usize {
        usize::from(self.bytes[0])
    }

    /// The owner name as written (not lower-cased).
    fn owner_bytes(&self) -> &'a [u8] {
        &self.bytes[1..1 + self.owner_len()]
    }

    /// Type, class, TTL, length and data.
    fn tail(&self) -> &'a [u8] {
        &self.bytes[1 + self.owner_len()..]
    }

    /// Appends the record with this TTL; `pointer` replaces the owner with a compression
    /// pointer to that offset.
    #[inline]
    pub fn write(&self, out: &mut Vec<u8>, ttl: u32, pointer: Option<u16>) {
        match pointer {
            Some(offset) => out.extend_from_slice(&(0xc000 | offset).to_be_bytes()),
            None => out.extend_from_slice(self.owner_bytes()),
        }
        let tail = self.tail();
        out.extend_from_slice(&tail[..4]);
        out.extend_from_slice(&ttl.to_be_bytes());
        out.extend_from_slice(&tail[8..]);
    }

    /// Appends the record under another owner, written out from its key (lower-cased wire
    /// form, which is wire form): a wildcard's record synthesized at a CNAME target.
    pub fn write_as(&self, out: &mut Vec<u8>, owner: &[u8], ttl: u32) {
        out.extend_from_slice(owner);
        let tail = self.tail();
        out.extend_from_slice(&tail[..4]);
        out.extend_from_slice(&ttl.to_be_bytes());
        out.extend_from_slice(&tail[8..]);
    }

    /// How many bytes `write_as` appends.
    pub fn written_len_as(&self, owner: &[u8]) -> usize {
        owner.len() + self.tail().len()
    }

    /// How many bytes `write` appends.
    pub fn written_len(&self, pointer: bool) -> usize {
        let owner = if pointer { 2 } else { self.owner_len() };
        owner + self.tail().len()
    }

    /// The record's type, as its number.
    pub fn rtype_code(&self) -> u16 {
        let t = self.tail();
        u16::from_be_bytes([t[0], t[1]])
    }

    /// The record's data (after type, class, TTL and length).
    pub fn rdata(&self) -> &'a [u8] {
        &self.tail()[10..]
    }

    /// The TTL the record was loaded with.
    pub fn ttl(&self) -> u32 {
        let t = self.tail();
        u32::from_be_bytes([t[4], t[5], t[6], t[7]])
    }

    /// The record as hickory's type.
    pub fn record(&self) -> Record {
        Record::read(&mut BinDecoder::new(&self.bytes[1..])).expect("a stored record decodes")
    }

    /// Its owner name.
    pub fn owner(&self) -> Name {
        super::name::name_of(self.owner_bytes())
    }

    /// Whether `other` has the same owner (as the table keys names: labels compared with
    /// ASCII case folded, which leaves a label's length byte, at most 63, as it is).
    pub fn same_owner(&self, other: &WireRef) -> bool {
        self.owner_bytes().eq_ignore_ascii_case(other.owner_bytes())
    }

    /// Its owner's key (lower-cased wire form), as the table looks names up.
    pub fn owner_key(&self) -> super::name::KeyBuf {
        super::name::KeyBuf::read(self.owner_bytes(), 0)
            .expect("a stored owner is a name")
            .0
    }
}

/// A single record (a CNAME, a zone's negative-answer SOA), in one allocation.
#[derive(Clone, Debug)]
pub struct StoredRecord {
    bytes: Box<[u8]>,
}

impl StoredRecord {
    pub fn new(record: &Record) -> Self {
        let mut bytes = Vec::new();
        encode(record, &mut bytes);
        StoredRecord {
            bytes: bytes.into_boxed_slice(),
        }
    }

    /// A record already encoded (one of a [`PackedRecords`]).
    pub fn from_wire(record: WireRef) -> Self {
        StoredRecord {
            bytes: record.bytes.into(),
        }
    }

    pub fn wire(&self) -> WireRef<'_> {
        WireRef { bytes: &self.bytes }
    }

    /// The TTL it was loaded with.
    pub fn ttl(&self) -> u32 {
        self.wire().ttl()
    }
}

/// The records of one record set, back to back in one allocation, each behind its
/// length (two bytes).
#[derive(Clone, Debug, Default)]
pub struct PackedRecords {
    bytes: Box<[u8]>,
}

impl PackedRecords {
    pub fn new<'r>(records: impl IntoIterator<Item = &'r Record>) -> Self {
        let mut bytes = Vec::new();
        for record in records {
            let at = bytes.len();
            bytes.extend_from_slice(&[0, 0]);
            encode(record, &mut bytes);
            let len = (bytes.len() - at - 2) as u16;
            bytes[at..at + 2].copy_from_slice(&len.to_be_bytes());
        }
        PackedRecords {
            bytes: bytes.into_boxed_slice(),
        }
    }

    /// Records of class IN at `owner`: what a zone file gives. The same bytes as [`new`]
    /// from hickory's `Record`s, with the owner and the fixed fields written once here and
    /// only each record's data encoded by hickory: encoding whole records took a tenth of
    /// loading a zone of a million records.
    ///
    /// [`new`]: PackedRecords::new
    pub fn of_rdata(owner: &Name, ttl: u32, rdata: &[RData]) -> Self {
        thread_local! {
            // Encoded here, then copied into an allocation of the exact size: a set's own
            // buffer, grown or shrunk to size, kept some 16 bytes of slack in each of a
            // large zone's millions of sets.
            static BUFFERS: std::cell::RefCell<[Vec<u8>; 3]> = Default::default();
        }
        BUFFERS.with_borrow_mut(|[head, bytes, data]| {
            head.clear();
            head.push(0);
            for label in owner.iter() {
                head.push(label.len() as u8);
                head.extend_from_slice(label);
            }
            head.push(0);
            head[0] = (head.len() - 1) as u8;
            bytes.clear();
            for d in rdata {
                data.clear();
                // Addresses by hand: they are most of a large zone's records, and hickory's
                // encoder costs several times the copy.
                match d {
                    RData::A(a) => data.extend_from_slice(&a.0.octets()),
                    RData::AAAA(a) => data.extend_from_slice(&a.0.octets()),
                    _ => {
                        let mut enc = BinEncoder::new(data);
                        enc.set_name_encoding(NameEncoding::Uncompressed);
                        d.emit(&mut enc).expect("valid data encodes");
                    }
                }
                let len = head.len() + 10 + data.len();
                bytes.extend_from_slice(&(len as u16).to_be_bytes());
                bytes.extend_from_slice(head);
                bytes.extend_from_slice(&u16::from(d.record_type()).to_be_bytes());
                bytes.extend_from_slice(&u16::from(DNSClass::IN).to_be_bytes());
                bytes.extend_from_slice(&ttl.to_be_bytes());
                bytes.extend_from_slice(&(data.len() as u16).to_be_bytes());
                bytes.extend_from_slice(data);
            }
            PackedRecords {
                bytes: bytes[..].into(),
            }
        })
    }

    /// These records followed by `more`'s.
    pub fn join(&self, more: &PackedRecords) -> PackedRecords {
        PackedRecords {
            bytes: [&self.bytes[..], &more.bytes[..]]
                .concat()
                .into_boxed_slice(),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = WireRef<'_>> {
        let mut rest = &self.bytes[..];
        std::iter::from_fn(move || {
            let (len, tail) = rest.split_first_chunk::<2>()?;
            let (bytes, after) = tail.split_at(usize::from(u16::from_be_bytes(*len)));
            rest = after;
            Some(WireRef { bytes })
        })
    }
}

/// Overwrites the serial of the SOA record that ends `out` (the four bytes before its
/// last four fields, RFC 1035 3.3.13).
#[inline]
pub fn set_soa_serial(out: &mut [u8], serial: u32) {
    let end = out.len();
    out[end - 20..end - 16].copy_from_slice(&serial.to_be_bytes());
}

/// An A or AAAA record written from the address alone: a member of a health-checked name
/// keeps no encoded record (300,000 members saved 14 MiB), since everything but the owner
/// is fixed. The owner is a pointer to `pointer`, or else `owner` written out.
#[inline]
pub fn write_address(
    out: &mut Vec<u8>,
    owner: &Name,
    pointer: Option<u16>,
    ttl: u32,
    address: IpAddr,
) {
    match pointer {
        Some(offset) => out.extend_from_slice(&(0xc000 | offset).to_be_bytes()),
        None => {
            for label in owner.iter() {
                out.push(label.len() as u8);
                out.extend_from_slice(label);
            }
            out.push(0);
        }
    }
    write_address_tail(out, ttl, address);
}

/// Type, class, TTL, length and address.
#[inline]
fn write_address_tail(out: &mut Vec<u8>, ttl: u32, address: IpAddr) {
    let (rtype, data): (u16, &[u8]) = match &address {
        IpAddr::V4(a) => (1, &a.octets()[..]),
        IpAddr::V6(a) => (28, &a.octets()[..]),
    };
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
}

/// Like `write_address`, under an owner written out from its key.
pub fn write_address_as(out: &mut Vec<u8>, owner: &[u8], ttl: u32, address: IpAddr) {
    out.extend_from_slice(owner);
    write_address_tail(out, ttl, address);
}

/// How many bytes `write_address_as` appends.
pub fn address_len_as(owner: &[u8], address: IpAddr) -> usize {
    owner.len() + 10 + if address.is_ipv4() { 4 } else { 16 }
}

/// How many bytes `write_address` appends.
pub fn address_len(owner: &Name, pointer: bool, address: IpAddr) -> usize {
    let owner = if pointer {
        2
    } else {
        owner.iter().map(|l| 1 + l.len()).sum::<usize>() + 1
    };
    owner + 10 + if address.is_ipv4() { 4 } else { 16 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::{Name, RData};

    /// Records packed from their data are the bytes packed from hickory's whole records.
    #[test]
    fn records_packed_from_their_data_are_hickorys() {
        use hickory_proto::rr::rdata::NULL;
        use hickory_proto::rr::rdata::{CNAME, MX, SRV, TXT};
        let owner = Name::from_ascii("Www.Example.test.").unwrap();
        let target = Name::from_ascii("mail.example.test.").unwrap();
        let sets: [Vec<RData>; 6] = [
            vec![
                RData::A(std::net::Ipv4Addr::new(192, 0, 2, 1).into()),
                RData::A(std::net::Ipv4Addr::new(192, 0, 2, 2).into()),
            ],
            vec![RData::AAAA(std::net::Ipv6Addr::LOCALHOST.into())],
            vec![RData::CNAME(CNAME(target.clone()))],
            vec![RData::MX(MX::new(10, target.clone()))],
            vec![RData::TXT(TXT::new(vec!["a b".into(), "c".into()]))],
            vec![
                RData::SRV(SRV::new(0, 5, 8200, target)),
                RData::Unknown {
                    code: hickory_proto::rr::RecordType::Unknown(65280),
                    rdata: NULL::with(vec![1, 2, 3]),
                },
            ],
        ];
        for rdata in sets {
            let records: Vec<Record> = rdata
                .iter()
                .map(|d| Record::from_rdata(owner.clone(), 300, d.clone()))
                .collect();
            assert_eq!(
                PackedRecords::of_rdata(&owner, 300, &rdata).bytes,
                PackedRecords::new(&records).bytes,
                "{rdata:?}"
            );
        }
    }

    #[test]
    fn written_len_matches_what_write_appends() {
        let name = Name::from_ascii("www.example.test.").unwrap();
        let record = Record::from_rdata(
            name,
            30,
            RData::A(std::net::Ipv4Addr::new(192, 0, 2, 1).into()),
        );
        let stored = StoredRecord::new(&record);
        let wire = stored.wire();
        assert_eq!(wire.ttl(), 30);
        for pointer in [None, Some(12)] {
            let mut out = Vec::new();
            wire.write(&mut out, 7, pointer);
            assert_eq!(out.len(), wire.written_len(pointer.is_some()));
            assert_eq!(&out[out.len() - 10..out.len() - 6], &7u32.to_be_bytes());
        }
        // An address record written from the address is the same record.
        for pointer in [None, Some(12)] {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            wire.write(&mut a, 7, pointer);
            let address = std::net::Ipv4Addr::new(192, 0, 2, 1).into();
            write_address(&mut b, &record.name, pointer, 7, address);
            assert_eq!(a, b);
            assert_eq!(
                b.len(),
                address_len(&record.name, pointer.is_some(), address)
            );
        }
        assert_eq!(wire.record(), record);
        assert_eq!(wire.owner(), record.name);
    }

    #[test]
    fn packed_records_come_back_in_order() {
        let name = Name::from_ascii("Mail.example.test.").unwrap();
        let records: Vec<Record> = ["10 a.example.test.", "20 b.example.test."]
            .iter()
            .map(|mx| {
                let (pref, host) = mx.split_once(' ').unwrap();
                let mx = hickory_proto::rr::rdata::MX::new(
                    pref.parse().unwrap(),
                    Name::from_ascii(host).unwrap(),
                );
                Record::from_rdata(name.clone(), 60, RData::MX(mx))
            })
            .collect();
        let packed = PackedRecords::new(&records[..1]).join(&PackedRecords::new(&records[1..]));
        let back: Vec<Record> = packed.iter().map(|w| w.record()).collect();
        assert_eq!(back, records);
        assert!(PackedRecords::default().iter().next().is_none());
    }
}
