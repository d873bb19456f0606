//! Records encoded once at load time, for the UDP fast path.

use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

/// A record in wire format: the owner name (uncompressed), then type, class, TTL, length
/// and data (names in the data uncompressed too). The fast path copies it with the owner
/// replaced by a pointer to the question where it is the asked name, and patches the TTL.
///
/// Written by hand because hickory encodes whole messages: encoding each record once, at
/// load time, is what lets the fast path answer without building a message.
#[derive(Debug)]
pub struct Wire {
    bytes: Box<[u8]>,
    owner_len: usize,
}

impl Wire {
    pub fn new(record: &Record) -> Wire {
        let mut bytes = Vec::new();
        let mut enc = BinEncoder::new(&mut bytes);
        enc.set_name_encoding(NameEncoding::Uncompressed);
        record.name.emit(&mut enc).expect("a valid name encodes");
        let owner_len = enc.len();
        drop(enc);
        bytes.clear();
        let mut enc = BinEncoder::new(&mut bytes);
        enc.set_name_encoding(NameEncoding::Uncompressed);
        record.emit(&mut enc).expect("a valid record encodes");
        Wire {
            bytes: bytes.into_boxed_slice(),
            owner_len,
        }
    }

    /// Appends the record with this TTL; `pointer` replaces the owner with a compression
    /// pointer to that offset.
    pub fn write(&self, out: &mut Vec<u8>, ttl: u32, pointer: Option<u16>) {
        match pointer {
            Some(offset) => out.extend_from_slice(&(0xc000 | offset).to_be_bytes()),
            None => out.extend_from_slice(&self.bytes[..self.owner_len]),
        }
        let tail = &self.bytes[self.owner_len..];
        out.extend_from_slice(&tail[..4]);
        out.extend_from_slice(&ttl.to_be_bytes());
        out.extend_from_slice(&tail[8..]);
    }

    /// How many bytes `write` appends.
    pub fn written_len(&self, pointer: bool) -> usize {
        let owner = if pointer { 2 } else { self.owner_len };
        owner + self.bytes.len() - self.owner_len
    }
}

/// A record in both forms the answer paths use, side by side: hickory's for the general
/// path, and wire format for the fast path.
#[derive(Debug)]
pub struct StoredRecord {
    pub record: Record,
    pub wire: Wire,
}

impl StoredRecord {
    pub fn new(record: Record) -> Self {
        StoredRecord {
            wire: Wire::new(&record),
            record,
        }
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
        for pointer in [None, Some(12)] {
            let mut out = Vec::new();
            wire.write(&mut out, 7, pointer);
            assert_eq!(out.len(), wire.written_len(pointer.is_some()));
            assert_eq!(&out[out.len() - 10..out.len() - 6], &7u32.to_be_bytes());
        }
    }
}
