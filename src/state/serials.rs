//! The SOA serial each zone is served with.
//!
//! A zone's content gives its serial: `soa.serial` in its file, or one derived from the
//! text of its files, so that servers given the same files serve the same serial.
//! Secondaries take a zone again only when its serial grows (RFC 1982 arithmetic), and
//! a derived serial is a hash, which a change may make smaller; a set one may be left
//! as it was by an edit. So when a zone's content changes and its serial is not above
//! the one served before, it is served with the one before plus one. Zone transfers add
//! one for each change of a transferred zone's health-checked answers. What was served
//! is kept in the state file, so that it keeps growing across restarts.

use std::collections::HashMap;
use std::sync::Mutex;

use hickory_proto::rr::Name;
use serde::{Deserialize, Serialize};
use tracing::warn;

/// One zone's serials, as the state file keeps them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(super) struct SavedSerial {
    pub(super) zone: String,
    /// The serial the content gave.
    pub(super) content: u32,
    /// The serial served for it.
    pub(super) served: u32,
    /// A hash of what secondaries were last given (transferred zones only).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(super) transferred: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A zone's entry: the content's serial, the one served, and the hash of the
/// transferred content (0 until a transfer refresh takes it).
#[derive(Clone, Copy, Debug)]
struct Entry {
    content: u32,
    served: u32,
    transferred: u64,
}

/// The serials served, by zone (lower-cased origin).
#[derive(Debug, Default)]
pub struct Serials(Mutex<HashMap<String, Entry>>);

use crate::model::serial_above as above;

fn key(origin: &Name) -> String {
    origin.to_lowercase().to_string()
}

impl Serials {
    pub(super) fn restore(&self, saved: &[SavedSerial]) {
        let mut book = self.0.lock().expect("serials lock");
        for s in saved {
            let entry = Entry {
                content: s.content,
                served: s.served,
                transferred: s.transferred,
            };
            book.insert(s.zone.to_ascii_lowercase(), entry);
        }
    }

    pub(super) fn saved(&self) -> Vec<SavedSerial> {
        let book = self.0.lock().expect("serials lock");
        let mut out: Vec<SavedSerial> = book
            .iter()
            .map(|(zone, e)| SavedSerial {
                zone: zone.clone(),
                content: e.content,
                served: e.served,
                transferred: e.transferred,
            })
            .collect();
        out.sort_by(|a, b| a.zone.cmp(&b.zone));
        out
    }

    /// The serial to serve `origin` with, now that its content's serial is `content`.
    pub fn serve(&self, origin: &Name, content: u32) -> u32 {
        let mut book = self.0.lock().expect("serials lock");
        let entry = match book.get(&key(origin)) {
            // The same content as before (a restart): served as it was.
            Some(e) if e.content == content => *e,
            Some(e) if !above(content, e.served) => {
                let next = e.served.wrapping_add(1).max(1);
                warn!(
                    zone = %origin,
                    content_serial = content,
                    served_before = e.served,
                    serving = next,
                    "the zone changed but its serial is not above the one served before: serving the one before plus one, so that secondaries take the change"
                );
                Entry {
                    content,
                    served: next,
                    transferred: 0,
                }
            }
            _ => Entry {
                content,
                served: content,
                transferred: 0,
            },
        };
        book.insert(key(origin), entry);
        entry.served
    }

    /// The serial to serve a transferred zone with, now serving `served`, whose
    /// transferred content hashes to `hash`: `served` while secondaries would get what
    /// they were given last with it (or when its serial is new), the next one when the
    /// content moved with health under the same serial.
    pub fn transferred(&self, origin: &Name, served: u32, hash: u64) -> u32 {
        let mut book = self.0.lock().expect("serials lock");
        let entry = book.entry(key(origin)).or_insert(Entry {
            content: served,
            served,
            transferred: 0,
        });
        if entry.served == served && entry.transferred != 0 && entry.transferred != hash {
            entry.served = served.wrapping_add(1).max(1);
        } else {
            entry.served = served;
        }
        entry.transferred = hash;
        entry.served
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_grow_whatever_the_content_gives() {
        let serials = Serials::default();
        let zone = Name::from_ascii("kemp.local.").unwrap();
        assert_eq!(serials.serve(&zone, 2_000_000_000), 2_000_000_000);
        // The same content again (a restart): the same serial.
        assert_eq!(serials.serve(&zone, 2_000_000_000), 2_000_000_000);
        // A change whose serial is smaller: one above the last served.
        assert_eq!(serials.serve(&zone, 17), 2_000_000_001);
        // One above it in serial arithmetic, though smaller as a number (wrapped).
        assert_eq!(
            serials.serve(&zone, 2_000_000_001u32.wrapping_add(1 << 30)),
            2_000_000_001u32.wrapping_add(1 << 30)
        );
        // A transferred zone: the first content keeps the serial, a change moves it on,
        // the same content again does not.
        let served = serials.serve(&zone, 7);
        assert_eq!(serials.transferred(&zone, served, 11), served);
        assert_eq!(serials.transferred(&zone, served, 12), served + 1);
        assert_eq!(serials.transferred(&zone, served + 1, 12), served + 1);
        // New content resets what was transferred: its serial is new already.
        let next = serials.serve(&zone, served + 10);
        assert_eq!(serials.transferred(&zone, next, 13), next);
        assert!(above(1, u32::MAX));
        assert!(!above(u32::MAX, 1));
    }
}
