//! Personal data at rest: NIKs (Indonesian national id numbers) encrypted with AES-256-GCM under a
//! named key, and found again only through a keyed hash (HMAC-SHA256 under a key of its own).
//!
//! Why: UU PDP (Law 27/2022) counts national id numbers among the data to protect most, and a
//! database dump or a backup leaves the building more easily than a secret store does.
//!
//! - [`Nik`]: the validated 16 digits; `Debug`/`Display` show `************1234`.
//! - [`SealedNik`]: what the database holds, `v1:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>`.
//!   The key id travels with each value, so a new key can become current while older values stay
//!   readable until a batch re-encrypts them (`kreki pii reseal`).
//! - [`NikHash`]: HMAC-SHA256 of the digits under the search key (wrapped by newer keys after a
//!   rotation, [`search`]), the only thing a lookup by NIK compares.
//! - [`Pii`]: the keys, built once from [`PiiConfig`] (`[pii]` of the `kreki` config).
//!
//! Without configured keys [`Pii::dev`] uses keys written in this file: they protect nothing and
//! exist so `kreki demo` and tests run without setup. `kreki serve` refuses them when
//! `pii.require_keys` is set or a real SATUSEHAT is configured (see the binary's `app.rs`).

mod nik;
pub mod reseal;
pub mod search;

use std::collections::BTreeMap;
use std::sync::Arc;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::{Digest, Sha256};

pub use nik::{NIK_RULE, Nik};
pub use reseal::{ResealCount, ResealTarget, reseal};
pub use search::{FINGERPRINT_BYTES, HASH_BYTES, NikHash};

use self::search::SearchChain;

/// Version tag of the envelope format.
const ENVELOPE_V1: &str = "v1";
/// AES-GCM nonce length, bytes (96 bits, random per value).
const NONCE_BYTES: usize = 12;
/// Key length of AES-256 and of the search HMAC, bytes.
pub const KEY_BYTES: usize = 32;
/// Key id of the built-in development keys.
pub const DEV_KEY_ID: &str = "dev";

/// Why a stored value could not be read. Never carries the value itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PiiError {
    /// Not a `v1:<kid>:<base64>` envelope (for example plaintext a migration has not sealed yet).
    #[error("not a sealed value (expected v1:<key id>:<base64>)")]
    Malformed,
    /// Sealed under a key this process does not have (removed too early, or another deployment's).
    #[error("sealed under key `{kid}`, which is not configured in pii.keys")]
    UnknownKey {
        /// The key id the value names.
        kid: String,
    },
    /// A search hash made under search keys this process does not have.
    #[error("a search hash made under search keys that are not configured")]
    UnknownSearchKey,
    /// The ciphertext, its nonce or its key id was changed: AES-GCM's tag does not verify.
    #[error("sealed value under key `{kid}` failed authentication (tampered or corrupted)")]
    Tampered {
        /// The key id the value names.
        kid: String,
    },
    /// It decrypted, but to something that is not 16 digits.
    #[error("sealed value under key `{kid}` is not a NIK")]
    NotANik {
        /// The key id the value names.
        kid: String,
    },
}

/// A sealed NIK as stored: `v1:<kid>:<base64url(nonce ‖ ciphertext ‖ tag)>`.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedNik(String);

impl SealedNik {
    /// Accepts `text` when it has the envelope's shape (it is not decrypted here).
    ///
    /// # Errors
    /// [`PiiError::Malformed`] otherwise (plaintext digits included).
    pub fn parse(text: &str) -> Result<Self, PiiError> {
        let mut parts = text.splitn(3, ':');
        let (Some(ENVELOPE_V1), Some(kid), Some(body)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(PiiError::Malformed);
        };
        if !valid_kid(kid) || body.is_empty() {
            return Err(PiiError::Malformed);
        }
        Ok(Self(text.to_owned()))
    }

    /// The key id it was sealed under.
    pub fn kid(&self) -> &str {
        self.0.split(':').nth(1).unwrap_or_default()
    }

    /// The stored text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SealedNik {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealedNik(kid={})", self.kid())
    }
}

/// `[pii]` of the `kreki` config (`KREKI_PII__*` in the environment).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PiiConfig {
    /// Key id that seals new values; must be one of `keys`.
    pub current_key: Option<String>,
    /// Encryption keys by id (1 to 32 of `a-z 0-9 _ -`): base64 of 32 random bytes each
    /// (`kreki pii generate-key`). Keep retired keys here until `kreki pii reseal` moved every value.
    pub keys: BTreeMap<String, SecretString>,
    /// Key of the search hash (base64 of 32 random bytes). Never changed: it is rotated by
    /// wrapping (`search_wrap_keys`).
    pub search_key: Option<SecretString>,
    /// Newer search keys wrapping `search_key`, oldest first (base64 of 32 random bytes each). To
    /// rotate, add one at the end and keep the others: `kreki pii reseal` (also run at start)
    /// wraps every stored hash with it, without the NIKs, and lookups find the rows not wrapped
    /// yet meanwhile.
    pub search_wrap_keys: Vec<SecretString>,
    /// Refuse to start without `keys` (production). Also implied by a real SATUSEHAT
    /// (`satusehat.enabled` with `environment` sandbox or production).
    pub require_keys: bool,
    /// Rows re-encrypted per transaction by the reseal batch.
    pub reseal_batch: u32,
}

impl Default for PiiConfig {
    fn default() -> Self {
        Self {
            current_key: None,
            keys: BTreeMap::new(),
            search_key: None,
            search_wrap_keys: Vec::new(),
            require_keys: false,
            reseal_batch: 500,
        }
    }
}

impl PiiConfig {
    /// Whether any key is configured (otherwise the development keys are used).
    pub fn has_keys(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Checks the keys' shapes; each message names its key and never echoes a secret. Whether keys
    /// are required is checked when they are used ([`Pii::from_config`]): in Kubernetes they come
    /// from a Secret that an offline check of the configuration cannot see.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (kid, key) in &self.keys {
            if !valid_kid(kid) {
                problems.push(format!(
                    "pii.keys.{kid}: a key id is 1 to 32 characters of a-z, 0-9, _ and -"
                ));
            }
            if decode_key(key).is_none() {
                problems.push(format!(
                    "pii.keys.{kid}: must be base64 of 32 random bytes (kreki pii generate-key)"
                ));
            }
        }
        if self
            .search_key
            .as_ref()
            .is_some_and(|key| decode_key(key).is_none())
        {
            problems.push(
                "pii.search_key: must be base64 of 32 random bytes (kreki pii generate-key)"
                    .to_owned(),
            );
        }
        for (index, key) in self.search_wrap_keys.iter().enumerate() {
            if decode_key(key).is_none() {
                problems.push(format!(
                    "pii.search_wrap_keys[{index}]: must be base64 of 32 random bytes (kreki pii generate-key)"
                ));
            }
        }
        if !self.search_wrap_keys.is_empty() && self.search_key.is_none() {
            problems.push(
                "pii.search_wrap_keys: they wrap pii.search_key, which is not set".to_owned(),
            );
        }
        if self.has_keys() {
            match &self.current_key {
                Some(current) if self.keys.contains_key(current) => {}
                _ => problems.push("pii.current_key: must name one of pii.keys".to_owned()),
            }
            if self.search_key.is_none() {
                problems.push("pii.search_key: must be set along with pii.keys".to_owned());
            }
        } else if self.current_key.is_some() || self.search_key.is_some() {
            problems.push(
                "pii.keys: pii.current_key and pii.search_key need the keys they go with"
                    .to_owned(),
            );
        }
        if !(1..=10_000).contains(&self.reseal_batch) {
            problems.push("pii.reseal_batch: must be 1 to 10000 rows".to_owned());
        }
        problems
    }
}

/// The keys of this process. Cheap to clone (shared).
#[derive(Clone)]
pub struct Pii(Arc<Keys>);

struct Keys {
    current: String,
    ciphers: BTreeMap<String, Aes256Gcm>,
    search: SearchChain,
    dev: bool,
}

impl std::fmt::Debug for Pii {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pii")
            .field("current_key", &self.0.current)
            .field("dev", &self.0.dev)
            .finish_non_exhaustive()
    }
}

impl Pii {
    /// The keys of `config`, or [`Pii::dev`] when it names none.
    ///
    /// # Errors
    /// The problems of [`PiiConfig::validate`], one per line, and missing keys when
    /// `pii.require_keys` is set.
    pub fn from_config(config: &PiiConfig) -> Result<Self, String> {
        let problems = config.validate();
        if !problems.is_empty() {
            return Err(problems.join("\n"));
        }
        if config.require_keys && !config.has_keys() {
            return Err(
                "pii.keys: pii.require_keys is set; configure pii.current_key, pii.keys.<id> and pii.search_key (kreki pii generate-key)"
                    .to_owned(),
            );
        }
        if !config.has_keys() {
            return Ok(Self::dev());
        }
        let ciphers = config
            .keys
            .iter()
            .filter_map(|(kid, key)| Some((kid.clone(), cipher(&decode_key(key)?))))
            .collect();
        Ok(Self(Arc::new(Keys {
            current: config.current_key.clone().unwrap_or_default(),
            ciphers,
            search: SearchChain::new(
                config
                    .search_key
                    .as_ref()
                    .and_then(decode_key)
                    .unwrap_or_default(),
                &config
                    .search_wrap_keys
                    .iter()
                    .filter_map(decode_key)
                    .collect::<Vec<_>>(),
            ),
            dev: false,
        })))
    }

    /// DEVELOPMENT ONLY: keys derived from public strings in this file, so they protect nothing.
    /// For `kreki demo`, tests, and a `kreki serve` on a laptop; production sets `[pii]`.
    pub fn dev() -> Self {
        let derive = |label: &str| -> [u8; KEY_BYTES] { Sha256::digest(label.as_bytes()).into() };
        Self::with_keys(
            DEV_KEY_ID,
            &[(
                DEV_KEY_ID,
                derive("KREKI DEVELOPMENT ONLY nik key: not a secret"),
            )],
            derive("KREKI DEVELOPMENT ONLY nik search key: not a secret"),
            true,
        )
    }

    /// Keys given directly (tests of rotation; the CLI builds from [`PiiConfig`]).
    pub fn from_raw(
        current: &str,
        keys: &[(&str, [u8; KEY_BYTES])],
        search: [u8; KEY_BYTES],
    ) -> Self {
        Self::with_keys(current, keys, search, false)
    }

    fn with_keys(
        current: &str,
        keys: &[(&str, [u8; KEY_BYTES])],
        search: [u8; KEY_BYTES],
        dev: bool,
    ) -> Self {
        Self(Arc::new(Keys {
            current: current.to_owned(),
            ciphers: keys
                .iter()
                .map(|(kid, key)| ((*kid).to_owned(), cipher(key)))
                .collect(),
            search: SearchChain::new(search, &[]),
            dev,
        }))
    }

    /// Whether these are the public development keys.
    pub fn is_dev(&self) -> bool {
        self.0.dev
    }

    /// The key id new values are sealed under.
    pub fn current_kid(&self) -> &str {
        &self.0.current
    }

    /// Encrypts `nik` under the current key with a fresh random nonce.
    pub fn seal(&self, nik: &Nik) -> SealedNik {
        let kid = self.current_kid();
        let mut nonce = [0_u8; NONCE_BYTES];
        rand::rng().fill_bytes(&mut nonce);
        let Some(cipher) = self.0.ciphers.get(kid) else {
            // `from_config` checked that `current_key` is one of `keys`, and `with_keys` callers
            // name their current key among theirs; reaching this is a programming error.
            unreachable!("the current pii key `{kid}` has no cipher");
        };
        let aad = aad(kid);
        let Ok(ciphertext) = cipher.encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: nik.expose().as_bytes(),
                aad: aad.as_bytes(),
            },
        ) else {
            // AES-GCM encryption fails only for messages over 64 GiB; a NIK is 16 bytes.
            unreachable!("AES-GCM cannot fail on 16 bytes");
        };
        let mut body = Vec::with_capacity(NONCE_BYTES + ciphertext.len());
        body.extend_from_slice(&nonce);
        body.extend_from_slice(&ciphertext);
        SealedNik(format!(
            "{ENVELOPE_V1}:{kid}:{}",
            URL_SAFE_NO_PAD.encode(body)
        ))
    }

    /// Decrypts a sealed value.
    ///
    /// # Errors
    /// [`PiiError::UnknownKey`], [`PiiError::Tampered`] (the tag does not verify: changed
    /// ciphertext, nonce or key id), [`PiiError::NotANik`]; never panics on any input.
    pub fn open(&self, sealed: &SealedNik) -> Result<Nik, PiiError> {
        let kid = sealed.kid().to_owned();
        let cipher = self
            .0
            .ciphers
            .get(&kid)
            .ok_or_else(|| PiiError::UnknownKey { kid: kid.clone() })?;
        let body = sealed.0.splitn(3, ':').nth(2).unwrap_or_default();
        let tampered = || PiiError::Tampered { kid: kid.clone() };
        let bytes = URL_SAFE_NO_PAD.decode(body).map_err(|_| tampered())?;
        if bytes.len() <= NONCE_BYTES {
            return Err(tampered());
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().map_err(|_| tampered())?;
        let aad = aad(&kid);
        let plain = cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| tampered())?;
        std::str::from_utf8(&plain)
            .ok()
            .and_then(|text| Nik::parse(text).ok())
            .ok_or(PiiError::NotANik { kid })
    }

    /// Parses and decrypts stored text.
    ///
    /// # Errors
    /// As [`SealedNik::parse`] and [`Pii::open`].
    pub fn open_str(&self, stored: &str) -> Result<Nik, PiiError> {
        self.open(&SealedNik::parse(stored)?)
    }

    /// The keyed search hash of `nik` (what is stored).
    pub fn hash(&self, nik: &Nik) -> NikHash {
        self.0.search.hash(nik)
    }

    /// Every stored form `nik`'s hash may have now, for `WHERE hash = ANY (...)`: rows the reseal
    /// batch has not wrapped with the newest search key yet are found too.
    pub fn lookup_hashes(&self, nik: &Nik) -> Vec<Vec<u8>> {
        self.0.search.lookup(nik)
    }

    /// The fingerprint current search hashes start with: others are for the reseal batch to wrap.
    pub fn search_fingerprint(&self) -> [u8; FINGERPRINT_BYTES] {
        self.0.search.current_fingerprint()
    }

    /// A stored search hash moved under the newest search key, without the NIK; `Ok(None)` when it
    /// is there already.
    ///
    /// # Errors
    /// [`PiiError::UnknownSearchKey`] when it was made under keys this process does not have.
    pub fn rewrap_hash(&self, stored: &[u8]) -> Result<Option<NikHash>, PiiError> {
        self.0
            .search
            .rewrap(stored)
            .map_err(|()| PiiError::UnknownSearchKey)
    }

    /// These keys with `wraps` wrapping the same search key (tests of search-key rotation).
    #[must_use]
    pub fn with_search_wraps(&self, wraps: &[[u8; KEY_BYTES]]) -> Self {
        Self(Arc::new(Keys {
            current: self.0.current.clone(),
            ciphers: self.0.ciphers.clone(),
            search: self.0.search.with_wraps(wraps),
            dev: self.0.dev,
        }))
    }

    /// Whether stored text is sealed under the current key already (plaintext, malformed and
    /// older keys are not: the reseal batch rewrites them).
    pub fn is_current(&self, stored: &str) -> bool {
        SealedNik::parse(stored).is_ok_and(|sealed| sealed.kid() == self.current_kid())
    }

    /// Brings stored text to the current key: plaintext digits are sealed, older keys re-sealed.
    /// `Ok(None)` when it is current already.
    ///
    /// # Errors
    /// When it is neither a NIK nor a value these keys can open.
    pub fn reseal(&self, stored: &str) -> Result<Option<(SealedNik, Nik)>, PiiError> {
        if self.is_current(stored) {
            return Ok(None);
        }
        let nik = match SealedNik::parse(stored) {
            Ok(sealed) => self.open(&sealed)?,
            Err(malformed) => Nik::parse(stored).map_err(|_| malformed)?,
        };
        Ok(Some((self.seal(&nik), nik)))
    }
}

/// A new random key, base64, for `pii.keys.<id>` or `pii.search_key`.
pub fn generate_key() -> String {
    let mut key = [0_u8; KEY_BYTES];
    rand::rng().fill_bytes(&mut key);
    STANDARD.encode(key)
}

/// Associated data: the format and the key id, so a value moved under another key id fails.
fn aad(kid: &str) -> String {
    format!("kreki/nik/{ENVELOPE_V1}/{kid}")
}

fn cipher(key: &[u8; KEY_BYTES]) -> Aes256Gcm {
    Aes256Gcm::new(key.into())
}

fn valid_kid(kid: &str) -> bool {
    (1..=32).contains(&kid.len())
        && kid
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn decode_key(key: &SecretString) -> Option<[u8; KEY_BYTES]> {
    STANDARD
        .decode(key.expose_secret().trim())
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
}

#[cfg(test)]
mod tests;
