//! Ed25519 signing keys, their ids, and the JWKS that publishes their public halves.
//!
//! The `kid` of a key is its RFC 7638 JWK thumbprint, so every instance that loads the same key file
//! derives the same id with no coordination. The key ring holds the current key (which signs) and
//! previous public keys (which still verify), so rotating is: make the new key current, keep the old
//! one as previous until its last access token expired (15 minutes), then drop it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, spki::der::pem::LineEnding,
};
use jsonwebtoken::{DecodingKey, EncodingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

/// Why a key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Neither a PKCS#8 Ed25519 private key nor an SPKI Ed25519 public key.
    #[error("not an Ed25519 key in PEM form (expected `BEGIN PRIVATE KEY` or `BEGIN PUBLIC KEY`)")]
    NotEd25519,
    /// The private key could not be used for signing.
    #[error("the private key cannot sign: {0}")]
    Unusable(String),
}

/// The public half of a key, with its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    /// RFC 7638 thumbprint, base64url.
    pub kid: String,
    /// The raw 32-byte Ed25519 public key.
    pub bytes: [u8; 32],
}

impl PublicKey {
    /// Wraps raw key bytes, deriving the `kid`.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self {
            kid: thumbprint(&bytes),
            bytes,
        }
    }

    /// The key as a JWK.
    pub fn to_jwk(&self) -> Jwk {
        Jwk {
            kty: "OKP".to_owned(),
            crv: "Ed25519".to_owned(),
            x: URL_SAFE_NO_PAD.encode(self.bytes),
            kid: self.kid.clone(),
            alg: "EdDSA".to_owned(),
            key_use: "sig".to_owned(),
        }
    }

    /// The key in the form `jsonwebtoken` verifies with.
    pub fn decoding_key(&self) -> DecodingKey {
        DecodingKey::from_ed_der(&self.bytes)
    }
}

/// The key that signs new access tokens.
pub struct SigningKey {
    public: PublicKey,
    encoding: EncodingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.public.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Loads a PKCS#8 PEM private key (`openssl genpkey -algorithm ed25519` or `kreki keys generate`).
    ///
    /// # Errors
    /// When `pem` is not an Ed25519 private key.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let key =
            ed25519_dalek::SigningKey::from_pkcs8_pem(pem).map_err(|_| KeyError::NotEd25519)?;
        let encoding = EncodingKey::from_ed_pem(pem.as_bytes())
            .map_err(|error| KeyError::Unusable(error.to_string()))?;
        Ok(Self {
            public: PublicKey::from_bytes(key.verifying_key().to_bytes()),
            encoding,
        })
    }

    /// The public half.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// For `jsonwebtoken::encode`.
    pub fn encoding_key(&self) -> &EncodingKey {
        &self.encoding
    }
}

/// A new random Ed25519 private key as PKCS#8 PEM.
///
/// # Errors
/// Only if PEM encoding fails, which it does not for a valid key.
pub fn generate_pem() -> Result<String, KeyError> {
    let secret: [u8; 32] = rand::random();
    let key = ed25519_dalek::SigningKey::from_bytes(&secret);
    key.to_pkcs8_pem(LineEnding::LF)
        .map(|pem| pem.to_string())
        .map_err(|error| KeyError::Unusable(error.to_string()))
}

/// Reads the public key out of a PEM that holds either a private or a public Ed25519 key, so
/// operators may hand a verifying-only service just the public half.
///
/// # Errors
/// When it is neither.
pub fn public_from_pem(pem: &str) -> Result<PublicKey, KeyError> {
    if let Ok(key) = ed25519_dalek::SigningKey::from_pkcs8_pem(pem) {
        return Ok(PublicKey::from_bytes(key.verifying_key().to_bytes()));
    }
    ed25519_dalek::VerifyingKey::from_public_key_pem(pem)
        .map(|key| PublicKey::from_bytes(key.to_bytes()))
        .map_err(|_| KeyError::NotEd25519)
}

/// RFC 7638 thumbprint of an Ed25519 public key: SHA-256 over the required members in
/// lexicographic order, base64url without padding.
fn thumbprint(public: &[u8; 32]) -> String {
    let canonical = format!(
        r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(public)
    );
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// One JSON Web Key (RFC 8037 OKP form).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Jwk {
    /// Always `OKP`.
    pub kty: String,
    /// Always `Ed25519`.
    pub crv: String,
    /// The public key, base64url.
    pub x: String,
    /// Key id, matched against the `kid` header of a token.
    pub kid: String,
    /// Always `EdDSA`.
    pub alg: String,
    /// Always `sig`.
    #[serde(rename = "use")]
    pub key_use: String,
}

/// A JWK Set, as served at `/.well-known/jwks.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Jwks {
    /// Current key first, then previous ones.
    pub keys: Vec<Jwk>,
}

/// The signing key of this instance (when it issues tokens) and every key it accepts.
#[derive(Debug)]
pub struct KeyRing {
    current: Option<SigningKey>,
    previous: Vec<PublicKey>,
}

impl KeyRing {
    /// A ring that signs with `current` and also accepts `previous`.
    pub fn new(current: Option<SigningKey>, previous: Vec<PublicKey>) -> Self {
        Self { current, previous }
    }

    /// The key that signs, if this instance issues tokens.
    pub fn current(&self) -> Option<&SigningKey> {
        self.current.as_ref()
    }

    /// Every public key accepted, current first.
    pub fn public_keys(&self) -> Vec<PublicKey> {
        self.current
            .iter()
            .map(|key| key.public().clone())
            .chain(self.previous.iter().cloned())
            .collect()
    }

    /// The JWKS of every accepted key.
    pub fn jwks(&self) -> Jwks {
        Jwks {
            keys: self.public_keys().iter().map(PublicKey::to_jwk).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_round_trips_and_kid_is_stable() {
        let pem = generate_pem().expect("a key is generated");
        let signing = SigningKey::from_pem(&pem).expect("its PEM loads");
        let public = public_from_pem(&pem).expect("its public half is read");
        assert_eq!(signing.public(), &public);
        assert_eq!(public.kid, PublicKey::from_bytes(public.bytes).kid);
        assert_eq!(public.kid.len(), 43, "a SHA-256 in base64url");
    }

    #[test]
    fn rfc8037_example_thumbprint() {
        // RFC 8037 appendix A.3: the thumbprint of its example public key.
        let x = URL_SAFE_NO_PAD
            .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
            .expect("base64");
        let bytes: [u8; 32] = x.try_into().expect("32 bytes");
        assert_eq!(
            PublicKey::from_bytes(bytes).kid,
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn garbage_is_not_a_key() {
        assert!(
            SigningKey::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----")
                .is_err()
        );
        assert!(public_from_pem("hello").is_err());
    }
}
