//! Zone transfers out, for Meridian as a hidden primary: AXFR (RFC 5936), IXFR
//! (RFC 1995) from a journal of recent changes, NOTIFY (RFC 1996) on every change, and
//! TSIG (RFC 8945) on all three when the zone has a key. Only zones with a `transfer:`
//! section are transferred, and only to the clients it allows.
//!
//! A transferred zone is its static records and, for each health-checked name, the
//! answer of its `transfer-view:` ([`content`]). [`Transfers::refresh`] takes that
//! content after every reload and every health change; when it differs from the last,
//! the zone's serial goes up, the difference is kept for IXFR, and the secondaries are
//! sent NOTIFY. Transfers run over TCP only (UDP gets REFUSED, as before).

mod content;
pub mod notify;
pub mod tsig;

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, Weak};

use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use tracing::info;

use crate::zone::{Table, Zone, ZoneTable};
use content::Records;

/// Changes kept per zone for IXFR; a secondary further behind gets the whole zone.
const CHANGES_KEPT: usize = 100;
/// Records held in those changes, at most, per zone.
const CHANGED_RECORDS_KEPT: usize = 100_000;
/// A transfer message is cut at about this size (of 65,535 that TCP framing allows).
const MESSAGE_SIZE: usize = 16 * 1024;

/// The transferred zones' current content and recent changes.
#[derive(Default)]
pub struct Transfers {
    zones: Mutex<HashMap<Box<[u8]>, Arc<Journal>>>,
    /// NOTIFY being sent, by zone and secondary: a newer change replaces it.
    sending: Mutex<HashMap<(Name, std::net::SocketAddr), tokio::task::AbortHandle>>,
}

/// One zone as last transferred, with the changes that led there.
struct Journal {
    /// The compiled zone the static records were taken from.
    compiled: Weak<ZoneTable>,
    static_records: Arc<Records>,
    health_records: Arc<Records>,
    serial: u32,
    soa: Record,
    /// Oldest first.
    changes: VecDeque<Arc<Change>>,
}

/// One step of the zone: from one serial to the next.
struct Change {
    from: Record,
    to: Record,
    removed: Records,
    added: Records,
}

/// What a refresh found: the zones whose serial moved, to send NOTIFY for.
pub struct Changed {
    pub zone: Name,
    pub soa: Record,
    pub serial: u32,
}

/// The SOA record of `zone` at `serial`, as transferred (zone TTL, not the negative one).
fn soa_of(zt: &ZoneTable, serial: u32) -> Option<Record> {
    let stored = zt.apex()?.rrset(RecordType::SOA)?.records.iter().next()?;
    let mut record = stored.record();
    if let RData::SOA(soa) = &mut record.data {
        soa.serial = serial;
    }
    Some(record)
}

pub(crate) fn serial_of(soa: &Record) -> u32 {
    match &soa.data {
        RData::SOA(s) => s.serial,
        _ => 0,
    }
}

impl Transfers {
    /// Takes the content of every transferred zone in `table` and records what changed.
    /// `serial(zone, served, content_hash)` gives the serial to serve the content with:
    /// the one served when nothing that secondaries hold changed, the next one otherwise.
    pub fn refresh(&self, table: &Table, serial: &dyn Fn(&Name, u32, u64) -> u32) -> Vec<Changed> {
        let mut changed = Vec::new();
        let mut zones = self.zones.lock().expect("transfers lock");
        let mut kept = HashMap::new();
        for zt in table.zone_tables() {
            let zone = &zt.zone;
            let Some(config) = &zone.transfer else {
                continue;
            };
            let key: Box<[u8]> = zone.key().into();
            let before = zones.remove(&key);
            let same_zone = before
                .as_ref()
                .is_some_and(|j| j.compiled.upgrade().is_some_and(|c| Arc::ptr_eq(&c, zt)));
            let static_records = match &before {
                Some(j) if same_zone => j.static_records.clone(),
                _ => Arc::new(content::static_records(zt)),
            };
            let health_records = Arc::new(content::health_records(zt, &config.view));
            if let Some(j) = &before
                && same_zone
                && *j.health_records == *health_records
                && j.serial == zone.serial()
            {
                kept.insert(key, before.expect("checked"));
                continue;
            }
            let hash = content::hash(&[&static_records, &health_records]);
            let now = serial(&zone.origin, zone.serial(), hash);
            zone.set_serial(now);
            let Some(soa) = soa_of(zt, now) else {
                continue;
            };
            let mut changes = before
                .as_ref()
                .map(|j| j.changes.clone())
                .unwrap_or_default();
            if let Some(j) = &before
                && j.serial != now
            {
                let (mut removed, mut added) = content::diff(&j.static_records, &static_records);
                let (r, a) = content::diff(&j.health_records, &health_records);
                removed.extend(r);
                added.extend(a);
                info!(
                    zone = %zone.origin,
                    from = j.serial,
                    to = now,
                    removed = removed.len(),
                    added = added.len(),
                    "zone changed for its secondaries"
                );
                changes.push_back(Arc::new(Change {
                    from: j.soa.clone(),
                    to: soa.clone(),
                    removed,
                    added,
                }));
                let mut held: usize = changes
                    .iter()
                    .map(|c| c.removed.len() + c.added.len())
                    .sum();
                while changes.len() > CHANGES_KEPT || held > CHANGED_RECORDS_KEPT {
                    let Some(old) = changes.pop_front() else {
                        break;
                    };
                    held -= old.removed.len() + old.added.len();
                }
            }
            if before.as_ref().is_none_or(|j| j.serial != now) {
                changed.push(Changed {
                    zone: zone.origin.clone(),
                    soa: soa.clone(),
                    serial: now,
                });
            }
            kept.insert(
                key,
                Arc::new(Journal {
                    compiled: Arc::downgrade(zt),
                    static_records,
                    health_records,
                    serial: now,
                    soa,
                    changes,
                }),
            );
        }
        // Zones no longer transferred are forgotten.
        *zones = kept;
        changed
    }

    /// Sends NOTIFY of `changed` to the zone's secondaries, from `source` (the address
    /// Meridian answers on). Must be called inside the runtime.
    pub fn notify(&self, changed: &Changed, table: &Table, source: IpAddr) {
        let Some(zone) = table.zones().find(|z| z.origin == changed.zone) else {
            return;
        };
        let Some(config) = &zone.transfer else {
            return;
        };
        let mut sending = self.sending.lock().expect("notify lock");
        sending.retain(|_, task| !task.is_finished());
        for &target in &config.notify {
            let notice = notify::Notice {
                zone: changed.zone.clone(),
                soa: changed.soa.clone(),
                target,
                tsig: config.tsig.clone(),
                source,
            };
            let task = tokio::spawn(notify::send(notice)).abort_handle();
            if let Some(before) = sending.insert((changed.zone.clone(), target), task) {
                before.abort();
            }
        }
    }

    fn journal(&self, zone: &Zone) -> Option<Arc<Journal>> {
        self.zones
            .lock()
            .expect("transfers lock")
            .get(zone.key())
            .cloned()
    }

    /// The response messages to `request` when it asks for a transfer (AXFR or IXFR) of
    /// a zone with `transfer:`; `None` for any other message. `now` is the Unix time, for
    /// TSIG.
    pub fn respond(
        &self,
        request: &[u8],
        client: IpAddr,
        table: &Table,
        now: u64,
    ) -> Option<Vec<Vec<u8>>> {
        let message = Message::from_vec(request).ok()?;
        if message.metadata.op_code != OpCode::Query || message.queries.len() != 1 {
            return None;
        }
        let query = &message.queries[0];
        let qtype = query.query_type();
        if !matches!(qtype, RecordType::AXFR | RecordType::IXFR) {
            return None;
        }
        // Zones without `transfer:` (and names outside our zones) are answered as any
        // other query: REFUSED, as they always were.
        let zone = table
            .zones()
            .find(|z| z.origin == *query.name())
            .filter(|_| query.query_class() == DNSClass::IN)?;
        let config = zone.transfer.as_ref()?;
        let mut out = Out::new(request, message.metadata.id);
        match tsig::check(request, &message, config.tsig.as_ref(), now) {
            Ok(signing) => out.signing = signing,
            Err(rejected) => return Some(out.rejected(*rejected, now)),
        }
        let allowed = config.allow.iter().any(|n| n.contains(&client));
        if !allowed || (config.tsig.is_some() && out.signing.is_none()) {
            return Some(out.error(ResponseCode::Refused));
        }
        let Some(journal) = self.journal(zone) else {
            return Some(out.error(ResponseCode::ServFail));
        };
        let have = match qtype {
            RecordType::IXFR => match message.authorities.first().map(|r| &r.data) {
                Some(RData::SOA(soa)) => Some(soa.serial),
                _ => return Some(out.error(ResponseCode::FormErr)),
            },
            _ => None,
        };
        let soa = encode(&journal.soa);
        let steps = have.and_then(|serial| journal.steps_from(serial));
        match (have, steps) {
            // Up to date (or ahead): the SOA alone (RFC 1995 2).
            (Some(serial), _) if !crate::model::serial_above(journal.serial, serial) => {
                out.record(&soa);
            }
            (Some(_), Some(steps)) => {
                out.record(&soa);
                for step in steps {
                    out.record(&encode(&step.from));
                    step.removed.iter().for_each(|r| out.record(r));
                    out.record(&encode(&step.to));
                    step.added.iter().for_each(|r| out.record(r));
                }
                out.record(&soa);
            }
            // AXFR, or IXFR from a serial the journal no longer reaches: the whole zone.
            _ => {
                out.record(&soa);
                journal.static_records.iter().for_each(|r| out.record(r));
                journal.health_records.iter().for_each(|r| out.record(r));
                out.record(&soa);
            }
        }
        Some(out.finish())
    }
}

/// The response to a request whose TSIG was not accepted: NOTAUTH with the TSIG error.
pub fn reject(request: &[u8], rejected: tsig::Rejected, now: u64) -> Vec<u8> {
    let id = u16::from_be_bytes([request[0], request[1]]);
    let mut m = Out::new(request, id).rejected(rejected, now);
    m.pop().expect("one message")
}

/// Whether `msg` asks for a zone transfer (QTYPE AXFR or IXFR), read off the bytes.
pub fn is_transfer_request(msg: &[u8]) -> bool {
    let mut at = 12;
    while let Some(&len) = msg.get(at) {
        if len & 0xc0 != 0 {
            return false;
        }
        at += 1 + usize::from(len);
        if len == 0 {
            break;
        }
    }
    msg.len() >= 12 && msg[2] & 0x80 == 0 && matches!(msg.get(at..at + 2), Some([0, 251 | 252]))
}

impl Journal {
    /// The changes from `serial` to now, if the journal still holds them all.
    fn steps_from(&self, serial: u32) -> Option<impl Iterator<Item = &Arc<Change>>> {
        let first = self
            .changes
            .iter()
            .position(|c| serial_of(&c.from) == serial)?;
        Some(self.changes.iter().skip(first))
    }
}

/// A record in uncompressed wire form.
fn encode(record: &Record) -> Box<[u8]> {
    let mut buf = Vec::new();
    crate::model::StoredRecord::new(record)
        .wire()
        .write(&mut buf, record.ttl, None);
    buf.into()
}

/// The response messages being written.
struct Out {
    id: u16,
    /// RD as asked, then the question as sent.
    rd: u8,
    question: Vec<u8>,
    messages: Vec<Vec<u8>>,
    current: Vec<u8>,
    count: u16,
    signing: Option<tsig::Signing>,
}

impl Out {
    fn new(request: &[u8], id: u16) -> Out {
        // The question as sent: its name's labels, then type and class.
        let mut end = 12;
        while let Some(&len) = request.get(end) {
            end += 1 + usize::from(len);
            if len == 0 {
                break;
            }
        }
        let question = request.get(12..end + 4).unwrap_or_default().to_vec();
        let mut out = Out {
            id,
            rd: request.get(2).map_or(0, |b| b & 0x01),
            question,
            messages: Vec::new(),
            current: Vec::new(),
            count: 0,
            signing: None,
        };
        out.start(true);
        out
    }

    fn start(&mut self, with_question: bool) {
        self.current.clear();
        self.current.extend_from_slice(&self.id.to_be_bytes());
        self.current.push(0x84 | self.rd);
        self.current.push(0);
        self.current
            .extend_from_slice(&[0, u8::from(with_question), 0, 0, 0, 0, 0, 0]);
        if with_question {
            self.current.extend_from_slice(&self.question);
        }
        self.count = 0;
    }

    fn record(&mut self, rr: &[u8]) {
        if self.count > 0 && self.current.len() + rr.len() > MESSAGE_SIZE {
            self.seal();
            self.start(false);
        }
        self.current.extend_from_slice(rr);
        self.count += 1;
    }

    fn seal(&mut self) {
        let mut m = std::mem::take(&mut self.current);
        m[6..8].copy_from_slice(&self.count.to_be_bytes());
        if let Some(s) = &mut self.signing {
            s.sign(&mut m, None);
        }
        self.messages.push(m);
    }

    fn finish(mut self) -> Vec<Vec<u8>> {
        self.seal();
        self.messages
    }

    /// One message with `rcode` and the question alone.
    fn error(mut self, rcode: ResponseCode) -> Vec<Vec<u8>> {
        self.current[2] &= !0x04;
        self.current[3] = u16::from(rcode) as u8;
        self.count = 0;
        self.finish()
    }

    /// NOTAUTH with the TSIG error (RFC 8945 5.2).
    fn rejected(mut self, rejected: tsig::Rejected, now: u64) -> Vec<Vec<u8>> {
        self.current[2] &= !0x04;
        self.current[3] = u16::from(ResponseCode::NotAuth) as u8;
        let mut m = std::mem::take(&mut self.current);
        match rejected.signing {
            Some(mut s) => s.sign(&mut m, Some(rejected.error)),
            None => tsig::append_unsigned(&mut m, &rejected.key_name, rejected.error, now),
        }
        vec![m]
    }
}
