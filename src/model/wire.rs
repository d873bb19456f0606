//! Records encoded once at load time, for the UDP fast path.

use std::net::IpAddr;

use hickory_proto::rr::{Name, Record};
use hickory_proto::serialize::binary::{
    BinDecodable, BinDecoder, BinEncodable, BinEncoder, NameEncoding,
};

/// A record in wire format: the owner name (uncompressed), then type, class, TTL, length
/// and data (names in the data uncompressed too). The fast path copies it with the owner
/// replaced by a pointer to the question where it is the asked name, and patches the TTL.
///
/// Written by hand because hickory encodes whole messages: encoding each record once, at
/// load time, is what lets the fast path answer without building a message. One
/// allocation holds it all, the owner's length in its first byte (a name is at most 255
/// bytes), so that a record costs its own size and a pointer.
#[derive(Debug)]
pub struct Wire {
    bytes: Box<[u8]>,
}

impl Wire {
    pub fn new(record: &Record) -> Wire {
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
        let mut bytes = Vec::with_capacity(1 + encoded.len());
        bytes.push(owner_len as u8);
        bytes.extend_from_slice(&encoded);
        Wire {
            bytes: bytes.into_boxed_slice(),
        }
    }

    fn owner_len(&self) -> usize {
        usize::from(self.bytes[0])
    }

    /// The owner name as written (not lower-cased).
    fn owner(&self) -> &[u8] {
        &self.bytes[1..1 + self.owner_len()]
    }

    /// Type, class, TTL, length and data.
    fn tail(&self) -> &[u8] {
        &self.bytes[1 + self.owner_len()..]
    }

    /// Appends the record with this TTL; `pointer` replaces the owner with a compression
    /// pointer to that offset.
    #[inline]
    pub fn write(&self, out: &mut Vec<u8>, ttl: u32, pointer: Option<u16>) {
        match pointer {
            Some(offset) => out.extend_from_slice(&(0xc000 | offset).to_be_bytes()),
            None => out.extend_from_slice(self.owner()),
        }
        let tail = self.tail();
        out.extend_from_slice(&tail[..4]);
        out.extend_from_slice(&ttl.to_be_bytes());
        out.extend_from_slice(&tail[8..]);
    }

    /// How many bytes `write` appends.
    pub fn written_len(&self, pointer: bool) -> usize {
        let owner = if pointer { 2 } else { self.owner_len() };
        owner + self.tail().len()
    }

    /// The TTL the record was loaded with.
    pub fn ttl(&self) -> u32 {
        let t = self.tail();
        u32::from_be_bytes([t[4], t[5], t[6], t[7]])
    }
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

/// How many bytes `write_address` appends.
pub fn address_len(owner: &Name, pointer: bool, address: IpAddr) -> usize {
    let owner = if pointer {
        2
    } else {
        owner.iter().map(|l| 1 + l.len()).sum::<usize>() + 1
    };
    owner + 10 + if address.is_ipv4() { 4 } else { 16 }
}

/// A record as the table stores it: in wire format only. The general path and explain,
/// which speak hickory's types, decode it when they need it ([`StoredRecord::record`]):
/// keeping hickory's `Record` beside it cost 272 bytes a record.
#[derive(Debug)]
pub struct StoredRecord {
    pub wire: Wire,
}

impl StoredRecord {
    pub fn new(record: &Record) -> Self {
        StoredRecord {
            wire: Wire::new(record),
        }
    }

    /// The record as hickory's type.
    pub fn record(&self) -> Record {
        let bytes = &self.wire.bytes[1..];
        Record::read(&mut BinDecoder::new(bytes)).expect("a stored record decodes")
    }

    /// The TTL it was loaded with.
    pub fn ttl(&self) -> u32 {
        self.wire.ttl()
    }

    /// Its owner name.
    pub fn owner(&self) -> Name {
        super::name::name_of(self.wire.owner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::{Name, RData};

    #[test]
    fn written_len_matches_what_write_appends() {
        let name = Name::from_ascii("www.example.test.").unwrap();
        let record = Record::from_rdata(
            name,
            30,
            RData::A(std::net::Ipv4Addr::new(192, 0, 2, 1).into()),
        );
        let wire = Wire::new(&record);
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
        let stored = StoredRecord::new(&record);
        assert_eq!(stored.record(), record);
        assert_eq!(stored.ttl(), 30);
        assert_eq!(stored.owner(), record.name);
    }
}
