//! DNS Cookies (RFC 7873), with server cookies as RFC 9018 makes them, so that servers
//! of one fleet that share a secret accept each other's.
//!
//! A client sends an 8-byte client cookie, and the server cookie it was last given. The
//! server cookie is 16 bytes: version 1, three reserved bytes, the time it was made (Unix
//! seconds), and SipHash-2-4 over the client cookie, those eight bytes and the client's
//! address, keyed with the server secret. A cookie is valid when that hash matches (with
//! the current secret or the one before it) and it was made within the last hour (and no
//! more than five minutes ahead). Every answer to a query with a cookie carries the client
//! cookie and a fresh server cookie.
//!
//! What a valid cookie earns: exemption from response rate limiting (as in BIND and Knot),
//! and UDP answers up to `edns-udp-size` rather than `nocookie-udp-size`. Queries without
//! a cookie, or with a wrong one, are answered as before: cookies only ever relax limits.

use std::hash::Hasher;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use siphasher::sip::SipHasher24;

use crate::resolve::Cookie;

/// The server cookie version of RFC 9018.
const VERSION: u8 = 1;
/// A server cookie made longer ago than this is no longer valid (RFC 9018 4.3).
const MAX_AGE: u32 = 3600;
/// Nor one made further ahead than this (clocks of a fleet drift).
const MAX_AHEAD: u32 = 300;
/// A valid server cookie younger than this is given back as it is; an older one is
/// replaced by a fresh one (RFC 9018 4.3), so a client never holds one close to expiry.
const REUSE_FOR: u32 = 1800;

/// The secrets server cookies are made with.
struct Secrets {
    current: [u8; 16],
    /// The one before, still accepted for a while after a rotation.
    previous: Option<[u8; 16]>,
}

pub struct Cookies {
    secrets: ArcSwap<Secrets>,
    rotation: std::sync::Mutex<Rotation>,
}

/// How the secret changes: a configured one never does; a random one every `lifetime`.
struct Rotation {
    configured: Option<[u8; 16]>,
    lifetime: Duration,
    made: Instant,
}

impl std::fmt::Debug for Cookies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cookies").finish_non_exhaustive()
    }
}

fn random_secret() -> [u8; 16] {
    let mut secret = [0u8; 16];
    getrandom::fill(&mut secret).expect("the operating system's random source");
    secret
}

fn unix_now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32)
}

fn hash(secret: &[u8; 16], client_cookie: &[u8], head: &[u8; 8], client: IpAddr) -> [u8; 8] {
    // One contiguous input: SipHash over a single write costs half of three.
    let mut input = [0u8; 32];
    input[..8].copy_from_slice(client_cookie);
    input[8..16].copy_from_slice(head);
    let len = match client {
        IpAddr::V4(a) => {
            input[16..20].copy_from_slice(&a.octets());
            20
        }
        IpAddr::V6(a) => {
            input[16..32].copy_from_slice(&a.octets());
            32
        }
    };
    let mut h = SipHasher24::new_with_key(secret);
    h.write(&input[..len]);
    h.finish().to_be_bytes()
}

impl Cookies {
    /// Cookies with `secret` (shared by a fleet; never rotated), or with a random secret
    /// replaced every `lifetime`.
    pub fn new(secret: Option<[u8; 16]>, lifetime: Duration) -> Self {
        Cookies {
            secrets: ArcSwap::from_pointee(Secrets {
                current: secret.unwrap_or_else(random_secret),
                previous: None,
            }),
            rotation: std::sync::Mutex::new(Rotation {
                configured: secret,
                lifetime,
                made: Instant::now(),
            }),
        }
    }

    /// Applies a (re)loaded configuration: a new configured secret takes over at once (the
    /// old one stays accepted until the next change); going back to a random secret makes
    /// one.
    pub fn configure(&self, secret: Option<[u8; 16]>, lifetime: Duration) {
        let mut rotation = self.rotation.lock().expect("cookie lock");
        rotation.lifetime = lifetime;
        if rotation.configured != secret {
            rotation.configured = secret;
            self.replace(secret.unwrap_or_else(random_secret), &mut rotation);
        }
    }

    fn replace(&self, secret: [u8; 16], rotation: &mut Rotation) {
        let old = self.secrets.load().current;
        self.secrets.store(Arc::new(Secrets {
            current: secret,
            previous: Some(old),
        }));
        rotation.made = Instant::now();
    }

    /// Replaces a random secret that has lived its lifetime; the old one stays accepted
    /// until the next rotation. Returns whether it rotated.
    pub fn rotate_if_due(&self) -> bool {
        let mut rotation = self.rotation.lock().expect("cookie lock");
        if rotation.configured.is_some() || rotation.made.elapsed() < rotation.lifetime {
            return false;
        }
        self.replace(random_secret(), &mut rotation);
        true
    }

    /// What the COOKIE option `data` of a query from `client` is worth, and the cookie to
    /// answer with.
    pub fn judge(&self, data: &[u8], client: IpAddr) -> Cookie {
        self.judge_at(data, client, unix_now())
    }

    fn judge_at(&self, data: &[u8], client: IpAddr, now: u32) -> Cookie {
        // RFC 7873 5.2.2: a client cookie alone (8), or with a server cookie of 8 to 32.
        if data.len() != 8 && !(16..=40).contains(&data.len()) {
            return Cookie::Malformed;
        }
        let (client_cookie, server_cookie) = data.split_at(8);
        let secrets = self.secrets.load();
        let mut reusable = false;
        let valid = server_cookie.len() == 16 && server_cookie[0] == VERSION && {
            let head: [u8; 8] = server_cookie[..8].try_into().expect("8 bytes");
            let made = u32::from_be_bytes(head[4..8].try_into().expect("4 bytes"));
            let age = now.wrapping_sub(made);
            let fresh = age <= MAX_AGE || made.wrapping_sub(now) <= MAX_AHEAD;
            let matches = |secret: &[u8; 16]| {
                let expected = hash(secret, client_cookie, &head, client);
                bool::from(subtle::ConstantTimeEq::ct_eq(
                    &expected[..],
                    &server_cookie[8..],
                ))
            };
            let current = fresh && matches(&secrets.current);
            reusable = current && age <= REUSE_FOR;
            current || (fresh && secrets.previous.as_ref().is_some_and(matches))
        };
        let mut echo = [0u8; 24];
        echo[..8].copy_from_slice(client_cookie);
        if reusable {
            echo[8..].copy_from_slice(server_cookie);
            return Cookie::Present { valid, echo };
        }
        let mut head = [0u8; 8];
        head[0] = VERSION;
        head[4..].copy_from_slice(&now.to_be_bytes());
        echo[8..16].copy_from_slice(&head);
        echo[16..].copy_from_slice(&hash(&secrets.current, client_cookie, &head, client));
        Cookie::Present { valid, echo }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn echo(c: Cookie) -> [u8; 24] {
        match c {
            Cookie::Present { echo, .. } => echo,
            Cookie::Malformed => panic!("malformed"),
        }
    }

    fn valid(c: Cookie) -> bool {
        matches!(c, Cookie::Present { valid: true, .. })
    }

    #[test]
    fn a_server_cookie_is_valid_for_its_client_for_an_hour() {
        let cookies = Cookies::new(None, Duration::from_secs(3600));
        let client = ip("192.0.2.1");
        let first = cookies.judge_at(&[7; 8], client, 1_000_000);
        assert!(!valid(first), "a client cookie alone earns nothing yet");
        let back = echo(first);
        assert_eq!(&back[..8], &[7; 8], "the client cookie comes back");
        assert_eq!(back[8], 1, "version 1 (RFC 9018)");
        assert!(valid(cookies.judge_at(&back, client, 1_000_000 + 3599)));
        // Under half an hour old, the same server cookie comes back; older, a fresh one.
        assert_eq!(
            echo(cookies.judge_at(&back, client, 1_000_000 + 1799)),
            back
        );
        let renewed = echo(cookies.judge_at(&back, client, 1_000_000 + 1801));
        assert_ne!(renewed, back);
        assert!(valid(cookies.judge_at(
            &renewed,
            client,
            1_000_000 + 1801 + 3599
        )));
        assert!(
            !valid(cookies.judge_at(&back, client, 1_000_000 + 3601)),
            "too old"
        );
        assert!(
            !valid(cookies.judge_at(&back, ip("192.0.2.2"), 1_000_000)),
            "another client"
        );
        let mut forged = back;
        forged[23] ^= 1;
        assert!(!valid(cookies.judge_at(&forged, client, 1_000_000)));
        assert!(matches!(
            cookies.judge_at(&[1; 7], client, 0),
            Cookie::Malformed
        ));
        assert!(matches!(
            cookies.judge_at(&[1; 41], client, 0),
            Cookie::Malformed
        ));
    }

    #[test]
    fn servers_sharing_a_secret_accept_each_others_cookies_across_a_rotation() {
        let secret = Some([9u8; 16]);
        let (a, b) = (
            Cookies::new(secret, Duration::ZERO),
            Cookies::new(secret, Duration::ZERO),
        );
        let client = ip("2001:db8::1");
        let from_a = echo(a.judge_at(&[3; 8], client, 5000));
        assert!(
            valid(b.judge_at(&from_a, client, 5000)),
            "RFC 9018: interoperable"
        );
        assert!(!a.rotate_if_due(), "a configured secret never rotates");

        let rotating = Cookies::new(None, Duration::ZERO);
        let before = echo(rotating.judge_at(&[3; 8], client, 5000));
        assert!(rotating.rotate_if_due());
        assert!(
            valid(rotating.judge_at(&before, client, 5000)),
            "the previous secret still counts"
        );
        assert!(rotating.rotate_if_due());
        assert!(
            !valid(rotating.judge_at(&before, client, 5000)),
            "but not the one before it"
        );
    }
}
