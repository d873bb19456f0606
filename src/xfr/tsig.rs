//! TSIG (RFC 8945) on the server side: a request's MAC checked, and the response
//! messages signed in a chain, each MAC covering the one before it (5.3.1). The MACs are
//! hickory-proto's (HMAC over ring); hickory signs requests and checks responses, so the
//! server's half (checking a request, chaining the responses) is here.

use hickory_proto::op::Message;
use hickory_proto::rr::Name;
use hickory_proto::rr::TSigner;
use hickory_proto::rr::rdata::tsig::{TSIG, TsigError, make_tsig_record};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};

use crate::config::TsigKeyConfig;

/// How far a request's time may be from ours (RFC 8945 10: 300 s recommended).
pub const FUDGE: u16 = 300;

/// Signs the messages of one response, in order.
pub struct Signing {
    signer: TSigner,
    /// The request's MAC, then each message's.
    prior: Vec<u8>,
    first: bool,
    /// Our time, in seconds.
    now: u64,
}

/// Why a request's signature was not accepted; the response is NOTAUTH with this error in
/// its TSIG (signed for BADTIME, unsigned otherwise: 5.2).
pub struct Rejected {
    pub error: TsigError,
    pub key_name: Name,
    /// For BADTIME, whose response is signed.
    pub signing: Option<Box<Signing>>,
}

/// A signer for `key`.
pub fn signer(key: &TsigKeyConfig) -> TSigner {
    TSigner::new(
        key.secret.clone(),
        key.algorithm.clone(),
        key.name.clone(),
        FUDGE,
    )
    .expect("validated keys have supported algorithms")
}

/// Checks the TSIG of `request` (as received; `message` is it parsed) against `key`:
/// `Ok(None)` when it has none, `Ok(Some(signing))` when it is good, for the response.
pub fn check(
    request: &[u8],
    message: &Message,
    key: Option<&TsigKeyConfig>,
    now: u64,
) -> Result<Option<Signing>, Box<Rejected>> {
    let Some(tsig) = message.signature() else {
        return Ok(None);
    };
    let key_name = tsig.name.clone();
    let reject = |error| {
        Box::new(Rejected {
            error,
            key_name: key_name.clone(),
            signing: None,
        })
    };
    let Some(key) = key.filter(|k| k.name == key_name && k.algorithm == tsig.data.algorithm) else {
        return Err(reject(TsigError::BadKey));
    };
    let signer = signer(key);
    let Ok((mac, _, window)) = signer.verify_message_byte(request, None, true) else {
        return Err(reject(TsigError::BadSig));
    };
    let signing = Signing {
        signer,
        prior: mac,
        first: true,
        now,
    };
    if !(window.start..=window.end).contains(&now) {
        return Err(Box::new(Rejected {
            error: TsigError::BadTime,
            key_name,
            signing: Some(Box::new(signing)),
        }));
    }
    Ok(Some(signing))
}

impl Signing {
    /// Signs `message` (a whole response, without a TSIG), appending its TSIG record;
    /// `error` and `other` go in it (BADTIME carries our time).
    pub fn sign(&mut self, message: &mut Vec<u8>, error: Option<TsigError>) {
        let id = u16::from_be_bytes([message[0], message[1]]);
        let other = match error {
            Some(TsigError::BadTime) => self.now.to_be_bytes()[2..].to_vec(),
            _ => Vec::new(),
        };
        let stub = TSIG::new(
            self.signer.algorithm().clone(),
            self.now,
            FUDGE,
            Vec::new(),
            id,
            error,
            other,
        );
        let mut tbs = Vec::with_capacity(self.prior.len() + message.len() + 64);
        tbs.extend_from_slice(&(self.prior.len() as u16).to_be_bytes());
        tbs.extend_from_slice(&self.prior);
        tbs.extend_from_slice(message);
        if self.first {
            let mut vars = Vec::new();
            stub.emit_tsig_for_mac(&mut BinEncoder::new(&mut vars), self.signer.signer_name())
                .expect("TSIG variables encode");
            tbs.extend_from_slice(&vars);
        } else {
            // Later messages: the timers alone (5.3.1).
            tbs.extend_from_slice(&self.now.to_be_bytes()[2..]);
            tbs.extend_from_slice(&FUDGE.to_be_bytes());
        }
        let mac = self
            .signer
            .sign(&tbs)
            .expect("an HMAC of a supported algorithm");
        let record = make_tsig_record(self.signer.signer_name().clone(), stub.set_mac(mac.clone()));
        append_record(message, &record);
        self.prior = mac;
        self.first = false;
    }
}

/// Appends the TSIG of a rejected request to `message` (unsigned: an empty MAC).
pub fn append_unsigned(message: &mut Vec<u8>, key_name: &Name, error: TsigError, now: u64) {
    let id = u16::from_be_bytes([message[0], message[1]]);
    let tsig = TSIG::new(
        hickory_proto::rr::rdata::tsig::TsigAlgorithm::HmacSha256,
        now,
        FUDGE,
        Vec::new(),
        id,
        Some(error),
        Vec::new(),
    );
    append_record(message, &make_tsig_record(key_name.clone(), tsig));
}

fn append_record(message: &mut Vec<u8>, record: &hickory_proto::rr::Record<TSIG>) {
    let mut bytes = Vec::new();
    let mut enc = BinEncoder::new(&mut bytes);
    record.emit(&mut enc).expect("a TSIG record encodes");
    message.extend_from_slice(&bytes);
    let count = u16::from_be_bytes([message[10], message[11]]) + 1;
    message[10..12].copy_from_slice(&count.to_be_bytes());
}
