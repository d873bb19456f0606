//! Every datagram between the servers of a cluster is sealed with ChaCha20-Poly1305
//! under a key derived from `cluster.key`: peers without the key can neither read the
//! gossip nor forge it. Nonces are random (96 bits), which is safe for far more messages
//! than a cluster sends under one key.

use ring::aead::{self, Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

/// The format's version, first byte of every datagram and bound into its tag.
const VERSION: u8 = 1;
const NONCE: usize = aead::NONCE_LEN;
/// What sealing adds to a message.
pub const OVERHEAD: usize = 1 + NONCE + 16;

pub struct Seal {
    key: LessSafeKey,
    random: SystemRandom,
}

impl Seal {
    pub fn new(shared: &[u8]) -> Self {
        // A fixed label keeps this key apart from any other use of the same secret.
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(b"meridian cluster v1\0");
        ctx.update(shared);
        let digest = ctx.finish();
        let key = UnboundKey::new(&CHACHA20_POLY1305, digest.as_ref()).expect("a 32-byte key");
        Seal {
            key: LessSafeKey::new(key),
            random: SystemRandom::new(),
        }
    }

    /// `message`, sealed: version, nonce, ciphertext and tag.
    pub fn seal(&self, message: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE];
        self.random
            .fill(&mut nonce)
            .expect("the system's random source");
        let mut out = Vec::with_capacity(message.len() + OVERHEAD);
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        let mut body = message.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from([VERSION]),
                &mut body,
            )
            .expect("a message within the cipher's limits");
        out.extend_from_slice(&body);
        out
    }

    /// The message inside `datagram`, if it was sealed with this key.
    pub fn open<'a>(&self, datagram: &'a mut [u8]) -> Option<&'a [u8]> {
        if datagram.len() < OVERHEAD || datagram[0] != VERSION {
            return None;
        }
        let (head, body) = datagram.split_at_mut(1 + NONCE);
        let nonce = Nonce::try_assume_unique_for_key(&head[1..]).ok()?;
        let opened = self
            .key
            .open_in_place(nonce, Aad::from([VERSION]), body)
            .ok()?;
        Some(opened)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_key_opens_and_any_change_is_refused() {
        let a = Seal::new(b"the shared key of this cluster, 32+ chars");
        let b = Seal::new(b"another cluster's key, also long enough!!");
        let sealed = a.seal(b"observations");
        let ciphertext = &sealed[1 + NONCE..sealed.len() - 16];
        assert_ne!(ciphertext, b"observations", "not sent in the clear");
        assert_eq!(a.open(&mut sealed.clone()), Some(&b"observations"[..]));
        assert_eq!(b.open(&mut sealed.clone()), None);
        for i in 0..sealed.len() {
            let mut bent = sealed.clone();
            bent[i] ^= 1;
            assert_eq!(a.open(&mut bent), None, "byte {i} changed");
        }
        assert_eq!(a.open(&mut sealed[..OVERHEAD - 1].to_vec()), None);
    }
}
