//! Names as the table keys them: lower-cased wire form (length-prefixed labels ending in
//! the root's zero byte, RFC 1035 3.1).
//!
//! Written by hand rather than through hickory's `Name`/`LowerName` because the query path
//! reads the asked name straight out of the packet: lower-casing the labels into a stack
//! buffer and hashing those bytes costs a fraction of building a `Name`, and a key of the
//! name's own length (in one allocation) takes a fifth of a `LowerName`'s 80 bytes inline.

use hickory_proto::rr::Name;

/// The longest name in wire form (RFC 1035 2.3.4).
pub const MAX_WIRE_LEN: usize = 255;

/// The key of `name`: its wire form, lower-cased.
pub fn key_of(name: &Name) -> Box<[u8]> {
    let mut bytes = Vec::with_capacity(name.len() + 2);
    for label in name.iter() {
        bytes.push(label.len() as u8);
        bytes.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    bytes.push(0);
    bytes.into_boxed_slice()
}

/// A name's key on the stack, for names met on the query path.
#[derive(Clone)]
pub struct KeyBuf {
    len: u8,
    bytes: [u8; MAX_WIRE_LEN],
}

impl KeyBuf {
    /// The key of `name` (from hickory's parsers: the general path, explain).
    pub fn of(name: &Name) -> KeyBuf {
        let mut buf = KeyBuf {
            len: 0,
            bytes: [0; MAX_WIRE_LEN],
        };
        let mut n = 0;
        for label in name.iter() {
            buf.bytes[n] = label.len() as u8;
            for (to, from) in buf.bytes[n + 1..n + 1 + label.len()].iter_mut().zip(label) {
                *to = from.to_ascii_lowercase();
            }
            n += 1 + label.len();
        }
        buf.len = (n + 1) as u8;
        buf
    }

    /// Reads the uncompressed name at `msg[at..]`, lower-cased: the key, and where the
    /// name ends. `None` for a compression pointer, a label type other than a plain label,
    /// a name longer than 255 bytes, or a message that ends inside the name.
    #[inline]
    pub fn read(msg: &[u8], at: usize) -> Option<(KeyBuf, usize)> {
        let mut buf = KeyBuf {
            len: 0,
            bytes: [0; MAX_WIRE_LEN],
        };
        let mut i = at;
        let mut n = 0usize;
        loop {
            let len = usize::from(*msg.get(i)?);
            if len & 0xc0 != 0 || n + 1 + len > MAX_WIRE_LEN {
                return None;
            }
            let label = msg.get(i + 1..i + 1 + len)?;
            buf.bytes[n] = len as u8;
            for (to, from) in buf.bytes[n + 1..n + 1 + len].iter_mut().zip(label) {
                *to = from.to_ascii_lowercase();
            }
            n += 1 + len;
            i += 1 + len;
            if len == 0 {
                buf.len = n as u8;
                return Some((buf, i));
            }
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// Whether `name` is `origin` or below it (both keys).
pub fn is_within(name: &[u8], origin: &[u8]) -> bool {
    if origin.len() > name.len() {
        return false;
    }
    let mut i = 0;
    loop {
        if name.len() - i == origin.len() {
            return name[i..] == *origin;
        }
        match name.get(i) {
            Some(&0) | None => return false,
            Some(&len) => i += 1 + usize::from(len),
        }
        if i > name.len() - origin.len() {
            return false;
        }
    }
}

/// How many labels `key` has (the root has none).
pub fn label_count(key: &[u8]) -> usize {
    let mut i = 0;
    let mut count = 0;
    while let Some(&len) = key.get(i) {
        if len == 0 {
            break;
        }
        count += 1;
        i += 1 + usize::from(len);
    }
    count
}

/// The name a key stands for, for display and for hickory's types.
pub fn name_of(key: &[u8]) -> Name {
    use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
    Name::read(&mut BinDecoder::new(key)).expect("a key is a valid name")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> Box<[u8]> {
        key_of(&Name::from_ascii(text).unwrap())
    }

    #[test]
    fn a_key_is_the_lower_cased_wire_form() {
        assert_eq!(
            &*key("WwW.Example.TEST."),
            b"\x03www\x07example\x04test\x00"
        );
        assert_eq!(&*key("."), b"\x00");
        assert_eq!(
            name_of(&key("WwW.Example.TEST.")).to_string(),
            "www.example.test."
        );
    }

    #[test]
    fn reading_from_a_message_lower_cases_and_stops_at_the_root() {
        let msg = b"\x00\x00\x03WwW\x07Example\x04TEST\x00\x00\x01";
        let (buf, end) = KeyBuf::read(msg, 2).unwrap();
        assert_eq!(buf.as_bytes(), &*key("www.example.test."));
        assert_eq!(end, msg.len() - 2);
        assert_eq!(
            KeyBuf::of(&Name::from_ascii("WWW.example.test.").unwrap()).as_bytes(),
            buf.as_bytes()
        );
        // A pointer, a truncated name, an over-long name.
        assert!(KeyBuf::read(b"\x03www\xc0\x0c", 0).is_none());
        assert!(KeyBuf::read(b"\x03www\x07exam", 0).is_none());
        let long: Vec<u8> = (0..5)
            .flat_map(|_| std::iter::once(63).chain([b'a'; 63]))
            .chain([0])
            .collect();
        assert!(KeyBuf::read(&long, 0).is_none());
    }

    #[test]
    fn within_holds_only_at_label_boundaries() {
        let zone = key("example.test.");
        assert!(is_within(&key("example.test."), &zone));
        assert!(is_within(&key("a.b.example.test."), &zone));
        assert!(!is_within(&key("anexample.test."), &zone));
        assert!(!is_within(&key("test."), &zone));
        assert!(!is_within(&key("example.test.org."), &zone));
        assert!(is_within(&key("example.test."), &key(".")));
        // A label whose bytes look like the origin's tail is not a boundary.
        assert!(!is_within(b"\x09x\x07example\x04test\x00", &zone));
        assert_eq!(label_count(&key("a.b.example.test.")), 4);
        assert_eq!(label_count(&key(".")), 0);
    }
}
