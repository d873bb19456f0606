//! Online signing (DNSSEC): each zone's key, the RRSIG of an RRset made on demand, and the
//! NSEC of a compact denial (RFC 9824).
//!
//! A GSLB cannot sign its zone ahead: which members an answer holds changes with health
//! and with the client. So every RRset is signed when first sent, and its signature kept
//! in a cache ([`SignatureCache`]) keyed by the RRset's content ([`ContentKey`]): each
//! distinct answer is signed once per refresh period, whichever client gets it and in
//! whichever order its records rotate. The signing itself is hickory-proto's (the
//! to-be-signed form, RFC 4034 6) over ring.

mod cache;

pub use cache::{CacheStats, SignatureCache};

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use hickory_proto::dnssec::rdata::{CDNSKEY, CDS, DNSKEY, DNSSECRData, DS, NSEC, RRSIG, SigInput};
use hickory_proto::dnssec::{Algorithm, DigestType, PublicKey, SigningKey, TBS};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType, SerialNumber};
use siphasher::sip128::{Hasher128, SipHasher13};

use crate::config::{DnssecConfig, ZoneKey};
use crate::model::StoredRecord;

/// The meta-type in the NSEC of a compact answer for a name that does not exist
/// (RFC 9824 3.1): it tells such an answer from NODATA.
pub const NXNAME: RecordType = RecordType::Unknown(128);

/// DNSKEY flags of the zone's one key: a zone key with the SEP bit, a combined signing key
/// (it signs the DNSKEY RRset and everything else).
const CSK_FLAGS: u16 = 257;

/// A zone's key and how long its signatures last.
pub struct ZoneSigner {
    key: Arc<dyn SigningKey>,
    pub dnskey: DNSKEY,
    /// Keys published beside it that do not sign (before or after a rollover).
    pub published: Vec<DNSKEY>,
    pub key_tag: u16,
    /// The zone's origin: the signer's name in every RRSIG.
    signer_name: Name,
    validity: u32,
    refresh: u32,
    inception_offset: u32,
    dnskey_ttl: u32,
    cds: bool,
    /// Tells this key (and timing) apart in the cache, which outlives reloads.
    pub id: u64,
}

impl std::fmt::Debug for ZoneSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZoneSigner")
            .field("signer", &self.signer_name)
            .field("key_tag", &self.key_tag)
            .finish()
    }
}

/// An RRSIG, made for an RRset and kept for the answers that carry the same RRset; for a
/// denial, with the NSEC it covers.
#[derive(Debug)]
pub struct Signed {
    key: u128,
    /// Made again from this time on (seconds since the epoch).
    refresh_at: u32,
    pub rrsig: StoredRecord,
    /// The NSEC this RRSIG covers, for a denial.
    pub nsec: Option<StoredRecord>,
}

impl Signed {
    /// Bytes held, for the cache's accounting.
    fn size(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.rrsig.wire().written_len(false)
            + self
                .nsec
                .as_ref()
                .map_or(0, |n| n.wire().written_len(false))
    }
}

/// Seconds since the epoch, as RRSIG times count them (RFC 4034 3.1.5).
pub fn now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32)
}

impl ZoneSigner {
    pub fn new(origin: &Name, config: &DnssecConfig, key: &ZoneKey) -> Result<Self, String> {
        let dnskey = DNSKEY::with_flags(CSK_FLAGS, key.public.clone());
        let key_tag = dnskey
            .calculate_key_tag()
            .map_err(|e| format!("cannot compute the key tag: {e}"))?;
        let secs = |d: std::time::Duration| d.as_secs().min(u64::from(u32::MAX)) as u32;
        let mut id = SipHasher13::new_with_keys(0, 0);
        std::hash::Hasher::write(&mut id, key.public.public_bytes());
        std::hash::Hasher::write_u16(&mut id, key_tag);
        for t in [config.validity, config.refresh, config.inception_offset] {
            std::hash::Hasher::write_u32(&mut id, secs(t));
        }
        std::hash::Hasher::write(&mut id, origin.to_lowercase().to_string().as_bytes());
        let published = config
            .publish
            .iter()
            .filter_map(|(_, k)| k.as_ref())
            .map(|k| DNSKEY::with_flags(CSK_FLAGS, k.public.clone()))
            .collect();
        Ok(ZoneSigner {
            key: Arc::clone(&key.signing),
            dnskey,
            published,
            key_tag,
            signer_name: origin.to_lowercase(),
            validity: secs(config.validity),
            refresh: secs(config.refresh),
            inception_offset: secs(config.inception_offset),
            dnskey_ttl: config.dnskey_ttl,
            cds: config.cds,
            id: std::hash::Hasher::finish(&id),
        })
    }

    pub fn algorithm(&self) -> Algorithm {
        self.dnskey.public_key().algorithm()
    }

    /// The signing key, then the published ones.
    pub fn keys(&self) -> impl Iterator<Item = &DNSKEY> {
        std::iter::once(&self.dnskey).chain(&self.published)
    }

    /// The DS record of `key` for the parent zone (SHA-256, RFC 4509).
    pub fn ds(&self, key: &DNSKEY) -> Result<DS, String> {
        let digest = key
            .to_digest(&self.signer_name, DigestType::SHA256)
            .map_err(|e| format!("cannot digest the DNSKEY: {e}"))?;
        let tag = key
            .calculate_key_tag()
            .map_err(|e| format!("cannot compute the key tag: {e}"))?;
        Ok(DS::new(
            tag,
            key.public_key().algorithm(),
            DigestType::SHA256,
            digest.as_ref().to_vec(),
        ))
    }

    /// The DS record of `key`, as it goes in the parent's zone file.
    pub fn ds_record(&self, key: &DNSKEY) -> Result<Record, String> {
        let ds = RData::DNSSEC(DNSSECRData::DS(self.ds(key)?));
        Ok(Record::from_rdata(
            self.signer_name.clone(),
            self.dnskey_ttl,
            ds,
        ))
    }

    /// The RRsets the apex publishes, every key in each: DNSKEY, and CDS and CDNSKEY
    /// unless `cds: false` (the DS set the parent should hold, RFC 7344).
    pub fn apex_records(&self) -> Result<Vec<(RecordType, Vec<Record>)>, String> {
        let origin = &self.signer_name;
        let record = |data| Record::from_rdata(origin.clone(), self.dnskey_ttl, data);
        let mut out = vec![(
            RecordType::DNSKEY,
            self.keys()
                .map(|k| record(RData::DNSSEC(DNSSECRData::DNSKEY(k.clone()))))
                .collect(),
        )];
        if self.cds {
            let mut cds = Vec::new();
            let mut cdnskey = Vec::new();
            for key in self.keys() {
                let ds = self.ds(key)?;
                cds.push(record(RData::DNSSEC(DNSSECRData::CDS(CDS::new(
                    ds.key_tag(),
                    Some(ds.algorithm()),
                    ds.digest_type(),
                    ds.digest().to_vec(),
                )))));
                cdnskey.push(record(RData::DNSSEC(DNSSECRData::CDNSKEY(
                    CDNSKEY::with_flags(
                        key.flags(),
                        Some(key.public_key().algorithm()),
                        key.public_key().public_bytes().to_vec(),
                    ),
                ))));
            }
            out.push((RecordType::CDS, cds));
            out.push((RecordType::CDNSKEY, cdnskey));
        }
        Ok(out)
    }

    /// Signs the RRset of `records` (one owner, one type, class IN) whose TTL in the zone
    /// is `original_ttl`, for the cache under `key`. `None` if the key fails to sign,
    /// which the caller answers without the signature (a validator then fails it, as it
    /// should).
    pub fn sign(
        &self,
        key: u128,
        owner: &Name,
        rtype: RecordType,
        original_ttl: u32,
        records: &[Record],
        now: u32,
    ) -> Option<Signed> {
        let rrsig = self.rrsig(owner, rtype, original_ttl, records, now)?;
        Some(Signed {
            key,
            refresh_at: self.refresh_at(now),
            rrsig,
            nsec: None,
        })
    }

    /// The NSEC of a compact denial at `owner`, with `types` in its bitmap, and its RRSIG.
    /// Its next name is the owner's immediate successor (`\000.owner`), so it covers no
    /// other name: nothing of the zone can be walked from it.
    pub fn deny(
        &self,
        key: u128,
        owner: &Name,
        types: &[RecordType],
        ttl: u32,
        now: u32,
    ) -> Option<Signed> {
        let next = Name::from_labels([&[0u8][..]])
            .ok()?
            .append_domain(owner)
            .ok()?;
        let nsec = Record::from_rdata(
            owner.clone(),
            ttl,
            RData::DNSSEC(DNSSECRData::NSEC(NSEC::new(next, types.iter().copied()))),
        );
        let rrsig = self.rrsig(
            owner,
            RecordType::NSEC,
            ttl,
            std::slice::from_ref(&nsec),
            now,
        )?;
        Some(Signed {
            key,
            refresh_at: self.refresh_at(now),
            rrsig,
            nsec: Some(StoredRecord::new(&nsec)),
        })
    }

    fn refresh_at(&self, now: u32) -> u32 {
        now.saturating_add(self.validity - self.refresh)
    }

    fn rrsig(
        &self,
        owner: &Name,
        rtype: RecordType,
        original_ttl: u32,
        records: &[Record],
        now: u32,
    ) -> Option<StoredRecord> {
        let input = SigInput {
            type_covered: rtype,
            algorithm: self.algorithm(),
            num_labels: owner.num_labels(),
            original_ttl,
            sig_expiration: SerialNumber::new(now.wrapping_add(self.validity)),
            sig_inception: SerialNumber::new(now.wrapping_sub(self.inception_offset)),
            key_tag: self.key_tag,
            signer_name: self.signer_name.clone(),
        };
        let tbs = TBS::from_input(owner, DNSClass::IN, &input, records.iter()).ok()?;
        let signature = self.key.sign(&tbs).ok()?;
        let rrsig = RRSIG::from_sig(input, signature);
        Some(StoredRecord::new(&Record::from_rdata(
            owner.to_lowercase(),
            original_ttl,
            RData::DNSSEC(DNSSECRData::RRSIG(rrsig)),
        )))
    }
}

/// The cache key of an RRset: its signer, owner, type and zone TTL, and its records' data
/// in any order (rotation reorders an answer, not what it says). SipHash-1-3 with a key
/// drawn at start, 128 bits: no two RRsets meet under one key in practice, and no one
/// outside can aim for it.
pub struct ContentKey {
    head: SipHasher13,
    records: u128,
}

fn process_keys() -> (u64, u64) {
    static KEYS: std::sync::OnceLock<(u64, u64)> = std::sync::OnceLock::new();
    *KEYS.get_or_init(|| {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).expect("the system's random source");
        let (a, b) = bytes.split_at(8);
        (
            u64::from_le_bytes(a.try_into().expect("8 bytes")),
            u64::from_le_bytes(b.try_into().expect("8 bytes")),
        )
    })
}

impl ContentKey {
    /// `owner` is the name's key (lower-cased wire form).
    pub fn new(signer: &ZoneSigner, owner: &[u8], rtype: RecordType, ttl: u32) -> Self {
        let (k0, k1) = process_keys();
        let mut head = SipHasher13::new_with_keys(k0, k1);
        std::hash::Hasher::write_u64(&mut head, signer.id);
        std::hash::Hasher::write(&mut head, owner);
        std::hash::Hasher::write_u16(&mut head, u16::from(rtype));
        std::hash::Hasher::write_u32(&mut head, ttl);
        ContentKey { head, records: 0 }
    }

    /// Adds one record's data (or, for a denial, one type of its bitmap).
    #[inline]
    pub fn add(&mut self, data: &[u8]) {
        let (k0, k1) = process_keys();
        let mut h = SipHasher13::new_with_keys(k1, k0);
        std::hash::Hasher::write(&mut h, data);
        self.records = self.records.wrapping_add(h.finish128().as_u128());
    }

    pub fn finish(mut self) -> u128 {
        std::hash::Hasher::write_u128(&mut self.head, self.records);
        self.head.finish128().as_u128()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::dnssec::Verifier;
    use hickory_proto::rr::RecordSet;

    fn signer(alg: Algorithm) -> (ZoneSigner, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        let key = crate::config::create_key(&path, alg).unwrap();
        let config = DnssecConfig {
            algorithm: alg,
            key_file: path,
            key: Some(key.clone()),
            publish: Vec::new(),
            dnskey_ttl: 3600,
            validity: std::time::Duration::from_secs(14 * 86400),
            refresh: std::time::Duration::from_secs(7 * 86400),
            inception_offset: std::time::Duration::from_secs(3600),
            cds: true,
        };
        let origin = Name::from_ascii("Example.Test.").unwrap();
        (ZoneSigner::new(&origin, &config, &key).unwrap(), dir)
    }

    #[test]
    fn signatures_verify_with_the_published_key() {
        for alg in [Algorithm::ECDSAP256SHA256, Algorithm::ED25519] {
            let (signer, _dir) = signer(alg);
            let owner = Name::from_ascii("WWW.example.test.").unwrap();
            let records: Vec<Record> = ["192.0.2.2", "192.0.2.1"]
                .iter()
                .map(|a| {
                    Record::from_rdata(
                        owner.clone(),
                        60,
                        RData::A(a.parse::<std::net::Ipv4Addr>().unwrap().into()),
                    )
                })
                .collect();
            let now = now();
            let signed = signer
                .sign(1, &owner.to_lowercase(), RecordType::A, 60, &records, now)
                .unwrap();
            let rrsig = signed.rrsig.wire().record();
            let RData::DNSSEC(DNSSECRData::RRSIG(sig)) = &rrsig.data else {
                panic!("{rrsig:?}")
            };
            assert_eq!(sig.input().key_tag, signer.key_tag);
            assert!(
                sig.input().sig_inception.get() < now && now < sig.input().sig_expiration.get()
            );
            let mut set = RecordSet::new(owner.clone(), RecordType::A, 0);
            for r in &records {
                set.insert(r.clone(), 0);
            }
            signer
                .dnskey
                .verify_rrsig(&owner, DNSClass::IN, sig, set.records_without_rrsigs())
                .unwrap();
            // Another RRset under the same signature fails.
            let other = Record::from_rdata(
                owner.clone(),
                60,
                RData::A("192.0.2.9".parse::<std::net::Ipv4Addr>().unwrap().into()),
            );
            assert!(
                signer
                    .dnskey
                    .verify_rrsig(&owner, DNSClass::IN, sig, [&other].into_iter())
                    .is_err()
            );
        }
    }

    #[test]
    fn content_keys_ignore_record_order_and_nothing_else() {
        let (signer, _dir) = signer(Algorithm::ED25519);
        let key = |owner: &[u8], ttl: u32, data: &[&[u8]]| {
            let mut k = ContentKey::new(&signer, owner, RecordType::A, ttl);
            for d in data {
                k.add(d);
            }
            k.finish()
        };
        let base = key(b"\x03www", 60, &[b"\x01\x02\x03\x04", b"\x05\x06\x07\x08"]);
        assert_eq!(
            base,
            key(b"\x03www", 60, &[b"\x05\x06\x07\x08", b"\x01\x02\x03\x04"])
        );
        assert_ne!(
            base,
            key(b"\x03www", 61, &[b"\x01\x02\x03\x04", b"\x05\x06\x07\x08"])
        );
        assert_ne!(
            base,
            key(b"\x03wwx", 60, &[b"\x01\x02\x03\x04", b"\x05\x06\x07\x08"])
        );
        assert_ne!(base, key(b"\x03www", 60, &[b"\x01\x02\x03\x04"]));
    }
}
