//! A zone's `dnssec:` section: the algorithm, the key and the signatures' timing,
//! validated; and the key file itself, read or created.
//!
//! A key file is PEM (PKCS#8, as `openssl genpkey` and Meridian write it) or BIND's
//! private key format (`K<zone>+013+<tag>.private`, with its `.key` file beside it). The
//! cryptography is hickory-proto's over ring: this module only finds the key bytes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::yaml::Spanned;
use hickory_proto::dnssec::crypto::{EcdsaSigningKey, Ed25519SigningKey};
use hickory_proto::dnssec::{Algorithm, PublicKey, PublicKeyBuf, SigningKey};
use hickory_proto::rr::Name;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use super::error::Report;
use super::yaml::DnssecRaw;

/// How a zone is signed (see the README's DNSSEC section for each default).
#[derive(Clone, Debug)]
pub struct DnssecConfig {
    pub algorithm: Algorithm,
    /// The key file, as `key:` gives it resolved against the zone file's directory.
    pub key_file: PathBuf,
    /// The key, or `None` when the file does not exist yet: `meridian serve` creates it.
    pub key: Option<ZoneKey>,
    /// Keys published in the DNSKEY RRset (and CDS, CDNSKEY) that do not sign: the next
    /// key before a rollover, the previous one after it. Same algorithm as `key`.
    pub publish: Vec<(PathBuf, Option<ZoneKey>)>,
    /// TTL of the DNSKEY, CDS and CDNSKEY records.
    pub dnskey_ttl: u32,
    /// How long a signature is valid from when it is made.
    pub validity: Duration,
    /// A signature is made again once less than this is left of its validity.
    pub refresh: Duration,
    /// Inception is set this far in the past, for validators whose clocks are behind.
    pub inception_offset: Duration,
    /// Publish CDS and CDNSKEY (RFC 7344) for parents that poll for the key.
    pub cds: bool,
}

/// A signing key, read from its file.
#[derive(Clone)]
pub struct ZoneKey {
    pub signing: Arc<dyn SigningKey>,
    pub public: PublicKeyBuf,
    /// A hash of the file's bytes: a reload that finds it changed compiles the zone again.
    pub hash: u64,
}

impl std::fmt::Debug for ZoneKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZoneKey")
            .field("algorithm", &self.public.algorithm())
            .field("hash", &self.hash)
            .finish()
    }
}

const DEFAULT_VALIDITY: Duration = Duration::from_secs(14 * 86400);
const DEFAULT_REFRESH: Duration = Duration::from_secs(7 * 86400);
const DEFAULT_INCEPTION_OFFSET: Duration = Duration::from_secs(3600);
/// Largest key file read: a private key is a few hundred bytes.
const MAX_KEY_BYTES: u64 = 64 << 10;

/// The algorithm named in `dnssec.algorithm`.
pub fn algorithm_named(text: &str) -> Option<Algorithm> {
    match text.trim().to_ascii_lowercase().as_str() {
        "ecdsa-p256-sha256" | "ecdsap256sha256" | "13" => Some(Algorithm::ECDSAP256SHA256),
        "ed25519" | "15" => Some(Algorithm::ED25519),
        _ => None,
    }
}

/// The name `dnssec.algorithm` takes for `algorithm`.
pub fn algorithm_name(algorithm: Algorithm) -> &'static str {
    match algorithm {
        Algorithm::ED25519 => "ed25519",
        _ => "ecdsa-p256-sha256",
    }
}

pub(super) fn validate_dnssec(
    r: &mut Report,
    raw: &Spanned<DnssecRaw>,
    zone_file: &Path,
    origin: &Name,
) -> Option<DnssecConfig> {
    let raw_ = &raw.value;
    let algorithm = match &raw_.algorithm {
        None => Algorithm::ECDSAP256SHA256,
        Some(a) => match algorithm_named(&a.value) {
            Some(alg) => alg,
            None => {
                r.at(
                    a.referenced,
                    "dnssec.algorithm",
                    format!(
                        "unknown algorithm `{}` (known: ecdsa-p256-sha256, the default, and ed25519)",
                        a.value
                    ),
                );
                return None;
            }
        },
    };
    let dir = zone_file.parent().unwrap_or(Path::new("."));
    let origin_text = origin.to_string();
    let key_file = match &raw_.key {
        Some(k) if k.value.trim().is_empty() => {
            r.at(
                k.referenced,
                "dnssec.key",
                "empty path: give the key file, or leave `key:` out",
            );
            return None;
        }
        Some(k) => dir.join(k.value.trim()),
        None => dir.join(format!("{}dnssec.pem", origin_text)),
    };
    let key_at = raw_.key.as_ref().map_or(raw.referenced, |k| k.referenced);
    let key = match read_key(&key_file, algorithm) {
        Ok(key) => key,
        Err(e) => {
            r.at(key_at, "dnssec.key", e);
            return None;
        }
    };
    let mut publish: Vec<(PathBuf, Option<ZoneKey>)> = Vec::new();
    for (i, (loc, text)) in raw_.publish.iter().flat_map(super::yaml::items).enumerate() {
        let field = format!("dnssec.publish[{i}]");
        let path = dir.join(text.trim());
        if path == key_file || publish.iter().any(|(p, _)| *p == path) {
            r.at(loc, field, "this key is already in `key` or `publish`");
            continue;
        }
        match read_key(&path, algorithm) {
            Ok(key) => publish.push((path, key)),
            Err(e) => r.at(
                loc,
                field,
                format!("{e} (published keys have the zone's algorithm: an algorithm rollover needs signatures by both, which Meridian does not make)"),
            ),
        }
    }
    let mut duration = |v: &Option<Spanned<String>>, field: &str, default: Duration| {
        let Some(v) = v else { return default };
        match humantime::parse_duration(v.value.trim()) {
            Ok(d) if !d.is_zero() => d,
            _ => {
                r.at(
                    v.referenced,
                    format!("dnssec.{field}"),
                    "not a duration (write 14d, 36h or 90m)",
                );
                default
            }
        }
    };
    let validity = duration(
        &raw_.signature_validity,
        "signature-validity",
        DEFAULT_VALIDITY,
    );
    let refresh = duration(
        &raw_.signature_refresh,
        "signature-refresh",
        DEFAULT_REFRESH,
    );
    let inception_offset = duration(
        &raw_.inception_offset,
        "inception-offset",
        DEFAULT_INCEPTION_OFFSET,
    );
    if refresh >= validity {
        let at = raw_
            .signature_refresh
            .as_ref()
            .or(raw_.signature_validity.as_ref())
            .map_or(raw.referenced, |v| v.referenced);
        r.at(
            at,
            "dnssec.signature-refresh",
            format!(
                "must be shorter than signature-validity ({}): a signature is made again once less than signature-refresh is left of it",
                humantime::format_duration(validity)
            ),
        );
    }
    if validity > Duration::from_secs(68 * 365 * 86400) {
        r.at(
            raw.referenced,
            "dnssec.signature-validity",
            "must be under 68 years (RFC 4034 serial number arithmetic)",
        );
    }
    let dnskey_ttl = raw_.dnskey_ttl.as_ref().map_or(3600, |t| t.value);
    Some(DnssecConfig {
        algorithm,
        key_file,
        key,
        publish,
        dnskey_ttl,
        validity,
        refresh,
        inception_offset,
        cds: raw_.cds.as_ref().is_none_or(|c| c.value),
    })
}

/// Reads the key in `path` for `algorithm`; `Ok(None)` when there is no such file.
pub fn read_key(path: &Path, algorithm: Algorithm) -> Result<Option<ZoneKey>, String> {
    let shown = path.display();
    let bytes = match crate::model::file::read_regular(path, MAX_KEY_BYTES) {
        Ok(bytes) => bytes,
        Err(_) if !path.exists() => return Ok(None),
        Err(e) => return Err(format!("cannot read the key file {shown}: {e}")),
    };
    let text = String::from_utf8_lossy(&bytes);
    let signing: Arc<dyn SigningKey> = if text.contains("-----BEGIN") {
        pem_key(&bytes, algorithm, path)?
    } else if text.contains("Private-key-format:") {
        bind_key(&text, algorithm, path)?
    } else {
        return Err(format!(
            "{shown} is neither a PEM private key nor a BIND private key file: give a PKCS#8 PEM key (`openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`), a BIND `K*.private` file, or remove the file and `meridian serve` creates one"
        ));
    };
    let public = signing
        .to_public_key()
        .map_err(|e| format!("{shown}: cannot derive the public key: {e}"))?;
    Ok(Some(ZoneKey {
        signing,
        public,
        hash: key_file_hash(path),
    }))
}

impl DnssecConfig {
    /// The key files that do not exist yet (`meridian serve` creates them).
    pub fn missing_keys(&self) -> impl Iterator<Item = &Path> {
        std::iter::once((&self.key_file, &self.key))
            .chain(self.publish.iter().map(|(p, k)| (p, k)))
            .filter(|(_, k)| k.is_none())
            .map(|(p, _)| p.as_path())
    }

    /// Every key file: the signing key's, then the published ones.
    pub fn key_files(&self) -> Vec<PathBuf> {
        std::iter::once(self.key_file.clone())
            .chain(self.publish.iter().map(|(p, _)| p.clone()))
            .collect()
    }

    /// The hash of every key file, as [`combine`] makes it (0 for a file not made yet).
    pub fn keys_hash(&self) -> u64 {
        combine(
            std::iter::once(&self.key)
                .chain(self.publish.iter().map(|(_, k)| k))
                .map(|k| k.as_ref().map_or(0, |k| k.hash)),
        )
    }
}

/// Key file hashes, in order, as one.
pub(super) fn combine(hashes: impl Iterator<Item = u64>) -> u64 {
    hashes.fold(0, |acc, h| acc.rotate_left(5) ^ h)
}

/// A hash of the key file at `path` (with the `.key` file beside a BIND private key), 0
/// when it cannot be read: a reload that finds it changed compiles the zone again.
pub(super) fn key_file_hash(path: &Path) -> u64 {
    let Ok(text) = crate::model::file::read_regular(path, MAX_KEY_BYTES) else {
        return 0;
    };
    let text = String::from_utf8_lossy(&text);
    let mut hash = super::yaml::source_hash(&text);
    if text.contains("Private-key-format:")
        && let Ok(public) = std::fs::read_to_string(path.with_extension("key"))
    {
        hash ^= super::yaml::source_hash(&public).rotate_left(1);
    }
    hash
}

fn pem_key(bytes: &[u8], algorithm: Algorithm, path: &Path) -> Result<Arc<dyn SigningKey>, String> {
    let shown = path.display();
    let der = PrivateKeyDer::from_pem_slice(bytes)
        .map_err(|e| format!("{shown}: not a PEM private key ({e})"))?;
    let PrivateKeyDer::Pkcs8(pkcs8) = der else {
        return Err(format!(
            "{shown} is not PKCS#8 (`BEGIN PRIVATE KEY`): convert it with `openssl pkcs8 -topk8 -nocrypt -in {shown} -out new.pem`"
        ));
    };
    let as_ecdsa = |k: &PrivatePkcs8KeyDer| {
        EcdsaSigningKey::from_pkcs8(k, Algorithm::ECDSAP256SHA256)
            .map(|k| Arc::new(k) as Arc<dyn SigningKey>)
    };
    let as_ed25519 =
        |k: &PrivatePkcs8KeyDer| Ed25519SigningKey::from_pkcs8(k).map(|k| Arc::new(k) as _);
    let (wanted, other, other_name) = match algorithm {
        Algorithm::ED25519 => (
            as_ed25519(&pkcs8),
            as_ecdsa(&pkcs8).is_ok(),
            "an ECDSA P-256",
        ),
        _ => (as_ecdsa(&pkcs8), as_ed25519(&pkcs8).is_ok(), "an Ed25519"),
    };
    match wanted {
        Ok(key) => Ok(key),
        Err(_) if other => Err(format!(
            "{shown} holds {other_name} key, but dnssec.algorithm is {}: set the algorithm to match the key",
            algorithm_name(algorithm)
        )),
        Err(e) => Err(format!(
            "{shown}: not an {} private key ({e})",
            algorithm_name(algorithm)
        )),
    }
}

/// A BIND private key file (`Private-key-format: v1.3`). ECDSA needs the public key too
/// (ring takes the pair), from the `.key` file beside it, which BIND always writes.
fn bind_key(text: &str, algorithm: Algorithm, path: &Path) -> Result<Arc<dyn SigningKey>, String> {
    let shown = path.display();
    let field = |name: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == name).then(|| v.trim().to_string())
        })
    };
    let number: u8 = field("Algorithm")
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("{shown}: no `Algorithm:` line"))?;
    if Algorithm::from_u8(number) != algorithm {
        return Err(format!(
            "{shown} is an algorithm {number} key, but dnssec.algorithm is {} ({}): set the algorithm to match the key",
            algorithm_name(algorithm),
            u8::from(algorithm)
        ));
    }
    let private = field("PrivateKey")
        .and_then(|v| data_encoding::BASE64.decode(v.as_bytes()).ok())
        .ok_or_else(|| format!("{shown}: no valid `PrivateKey:` line"))?;
    let rng = ring::rand::SystemRandom::new();
    match algorithm {
        Algorithm::ED25519 => {
            let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(&private)
                .map_err(|_| format!("{shown}: not an Ed25519 private key"))?;
            Ok(Arc::new(Ed25519SigningKey::from_ed25519(pair)))
        }
        _ => {
            let public_file = path.with_extension("key");
            let public_text = std::fs::read_to_string(&public_file).map_err(|e| {
                format!(
                    "{shown} is a BIND ECDSA key, whose public half is read from {}: {e}",
                    public_file.display()
                )
            })?;
            let public = bind_public_key(&public_text).ok_or_else(|| {
                format!(
                    "{}: no DNSKEY record with a public key",
                    public_file.display()
                )
            })?;
            let mut point = vec![4u8];
            point.extend_from_slice(&public);
            let pair = ring::signature::EcdsaKeyPair::from_private_key_and_public_key(
                &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                &private,
                &point,
                &rng,
            )
            .map_err(|_| {
                format!(
                    "{shown} and {} are not the two halves of one ECDSA P-256 key",
                    public_file.display()
                )
            })?;
            let key = EcdsaSigningKey::from_ecdsa(pair, Algorithm::ECDSAP256SHA256);
            Ok(Arc::new(key))
        }
    }
}

/// The public key of the DNSKEY record in a BIND `.key` file: the base64 after
/// `DNSKEY <flags> <protocol> <algorithm>`.
fn bind_public_key(text: &str) -> Option<Vec<u8>> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with(';'))
        .find_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let at = words
                .iter()
                .position(|w| w.eq_ignore_ascii_case("DNSKEY"))?;
            let key: String = words.get(at + 4..)?.concat();
            data_encoding::BASE64.decode(key.as_bytes()).ok()
        })
}

/// A key file created by [`create_missing_keys`].
pub struct CreatedKey {
    pub origin: Name,
    pub path: PathBuf,
}

/// Creates the key of every signed zone whose key file does not exist yet (what `meridian
/// serve` does at start and on reload, and `meridian dnssec --create-keys`). The zones
/// take the new keys, and their source hashes the keys' hashes.
pub fn create_missing_keys(
    config: &mut super::Config,
) -> Result<Vec<CreatedKey>, super::ConfigErrors> {
    let mut created = Vec::new();
    let mut errors = Vec::new();
    for zone in &mut config.zones {
        let Some(d) = zone.dnssec.as_mut() else {
            continue;
        };
        let algorithm = d.algorithm;
        let slots = std::iter::once((&d.key_file, &mut d.key))
            .chain(d.publish.iter_mut().map(|(p, k)| (&*p, k)));
        for (path, key) in slots.filter(|(_, k)| k.is_none()) {
            match create_key(path, algorithm) {
                Ok(new) => {
                    *key = Some(new);
                    created.push(CreatedKey {
                        origin: zone.origin.clone(),
                        path: path.clone(),
                    });
                }
                Err(e) => errors.push(super::ConfigError::whole_file(
                    &zone.file,
                    format!("dnssec: {e}: create the directory, or make the key elsewhere and point the zone at it"),
                )),
            }
        }
    }
    if errors.is_empty() {
        Ok(created)
    } else {
        Err(super::ConfigErrors(errors))
    }
}

/// Creates a new key for `algorithm` in `path`, readable by its owner only. Never
/// replaces a file: a key that changes breaks the chain of trust until the parent's DS
/// follows it.
pub fn create_key(path: &Path, algorithm: Algorithm) -> Result<ZoneKey, String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let shown = path.display();
    let pkcs8 = match algorithm {
        Algorithm::ED25519 => Ed25519SigningKey::generate_pkcs8(),
        _ => EcdsaSigningKey::generate_pkcs8(algorithm),
    }
    .map_err(|e| format!("cannot generate a key: {e}"))?;
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    let body = data_encoding::BASE64.encode(pkcs8.secret_pkcs8_der());
    for line in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot create the key file {shown}: {e}"))?;
    file.write_all(pem.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write the key file {shown}: {e}"))?;
    read_key(path, algorithm)?.ok_or_else(|| format!("{shown} vanished as it was written"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_created_key_reads_back_and_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        for alg in [Algorithm::ECDSAP256SHA256, Algorithm::ED25519] {
            let path = dir.path().join(format!("{}.pem", algorithm_name(alg)));
            assert!(read_key(&path, alg).unwrap().is_none());
            let made = create_key(&path, alg).unwrap();
            let read = read_key(&path, alg).unwrap().unwrap();
            assert_eq!(made.public, read.public);
            assert_eq!(read.public.algorithm(), alg);
            let err = create_key(&path, alg).unwrap_err();
            assert!(err.contains("File exists"), "{err}");
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // The wrong algorithm for the key says what to change.
        let err =
            read_key(&dir.path().join("ed25519.pem"), Algorithm::ECDSAP256SHA256).unwrap_err();
        assert!(err.contains("holds an Ed25519 key"), "{err}");
    }

    #[test]
    fn bind_key_files_are_read() {
        // Written by BIND 9.18's `dnssec-keygen -a ECDSAP256SHA256 -f KSK example.test`
        // (key tag 60882) and `-a ED25519` (24203).
        let dir = tempfile::tempdir().unwrap();
        let ecdsa = dir.path().join("Kexample.test.+013+60882.private");
        std::fs::write(
            &ecdsa,
            "Private-key-format: v1.3\nAlgorithm: 13 (ECDSAP256SHA256)\nPrivateKey: 3rSaLYd6hUve7y9RgKm93afuLf6bwApbHhxrZMIHwME=\nCreated: 20261205172751\n",
        )
        .unwrap();
        std::fs::write(
            ecdsa.with_extension("key"),
            "; This is a key-signing key, keyid 60882, for example.test.\nexample.test. IN DNSKEY 257 3 13 q3v5EIa8VsdGfJ5dCMIkUUEgaWaBiRegBs9eV94oZ7qwQtxk8pIBDNTT 45KKfIUWUP90Fl2d082O0SkLCh5mUQ==\n",
        )
        .unwrap();
        let key = read_key(&ecdsa, Algorithm::ECDSAP256SHA256)
            .unwrap()
            .unwrap();
        let public = "q3v5EIa8VsdGfJ5dCMIkUUEgaWaBiRegBs9eV94oZ7qwQtxk8pIBDNTT45KKfIUWUP90Fl2d082O0SkLCh5mUQ==";
        assert_eq!(
            key.public.public_bytes(),
            data_encoding::BASE64.decode(public.as_bytes()).unwrap()
        );
        let err = read_key(&ecdsa, Algorithm::ED25519).unwrap_err();
        assert!(err.contains("algorithm 13 key"), "{err}");
        // A public half that is not this key's is refused.
        std::fs::write(
            ecdsa.with_extension("key"),
            "example.test. IN DNSKEY 257 3 13 y3y1igzHU2rc5jfp63q1iy6qVOA8EqfCK4mf+ZliH/8Sef8rRvteXRCz6ENDXngL1ZXDJDgYzhFr+c1/SAfhBQ==\n",
        )
        .unwrap();
        let err = read_key(&ecdsa, Algorithm::ECDSAP256SHA256).unwrap_err();
        assert!(err.contains("not the two halves"), "{err}");

        let ed = dir.path().join("Kexample.test.+015+24203.private");
        std::fs::write(
            &ed,
            "Private-key-format: v1.3\nAlgorithm: 15 (ED25519)\nPrivateKey: LqtNHtyizsEaqj5uY1bYWzMNfER0BQLyIIFNrGrs4Nc=\n",
        )
        .unwrap();
        let key = read_key(&ed, Algorithm::ED25519).unwrap().unwrap();
        let public = "gXglLEeuiiVbO9bp8mHoGSl8RRvVV0p2NGxhLcTZ7Ig=";
        assert_eq!(
            key.public.public_bytes(),
            data_encoding::BASE64.decode(public.as_bytes()).unwrap()
        );
    }
}
