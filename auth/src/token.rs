//! Access tokens: EdDSA-signed JWTs that any KREKI service verifies with public keys alone.
//!
//! Only `EdDSA` is accepted, whatever the token's header says: this shuts the classic door of a token
//! "signed" with HS256 using the public key as the HMAC secret, and of `alg: none`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::domain::{Roles, UserId};
use crate::keys::{Jwks, KeyRing, PublicKey};

/// The audience every KREKI access token is issued for.
pub const AUDIENCE: &str = "kreki";

/// Whether a token speaks for a person or for a machine client (a hospital system).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubjectKind {
    /// A person's account; `sub` is their [`UserId`].
    User,
    /// An OAuth2 client-credentials client; `sub` is its `client_id`.
    Client,
}

/// The claims of a KREKI access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer (configured, `kreki` by default).
    pub iss: String,
    /// The user id or client id.
    pub sub: String,
    /// Always [`AUDIENCE`].
    pub aud: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Unique token id.
    pub jti: String,
    /// Person or client.
    pub kind: SubjectKind,
    /// Roles of a person (empty for clients).
    #[serde(default)]
    pub roles: Vec<String>,
    /// Display name of a person, so services can show who acted without asking KREKI ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Trust level of a person (absent in tokens issued before trust levels, and for clients).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust: Option<crate::trust::Trust>,
    /// Space-separated OAuth2 scopes of a client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Past its `exp`.
    #[error("the access token has expired; refresh it")]
    Expired,
    /// Bad signature, unknown key, wrong algorithm, wrong issuer or audience, or not a JWT at all.
    #[error("the access token is not valid: {0}")]
    Invalid(String),
    /// This instance has no signing key, so it cannot issue tokens.
    #[error("this instance does not issue tokens (no signing key configured)")]
    CannotSign,
}

/// Signs access tokens with the current key of a [`KeyRing`].
pub struct Issuer {
    keys: Arc<KeyRing>,
    issuer: String,
    ttl: Duration,
}

impl Issuer {
    /// An issuer naming itself `issuer` and issuing tokens valid for `ttl`.
    pub fn new(keys: Arc<KeyRing>, issuer: String, ttl: Duration) -> Self {
        Self { keys, issuer, ttl }
    }

    /// How long issued tokens are valid.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A token for a person.
    ///
    /// # Errors
    /// When this instance has no signing key.
    pub fn for_user(&self, user: UserId, roles: &Roles, name: &str) -> Result<String, TokenError> {
        self.sign(
            user.to_string(),
            SubjectKind::User,
            roles.names(),
            Some(name.to_owned()),
            None,
            None,
        )
    }

    /// A token for a person with their trust level (what KREKI ID issues; a token without one
    /// reads as `new`).
    ///
    /// # Errors
    /// When this instance has no signing key.
    pub fn for_person(
        &self,
        user: UserId,
        roles: &Roles,
        name: &str,
        trust: crate::trust::Trust,
    ) -> Result<String, TokenError> {
        self.sign(
            user.to_string(),
            SubjectKind::User,
            roles.names(),
            Some(name.to_owned()),
            Some(trust),
            None,
        )
    }

    /// A token for a machine client with the granted `scope` (space-separated).
    ///
    /// # Errors
    /// When this instance has no signing key.
    pub fn for_client(&self, client_id: &str, scope: &str) -> Result<String, TokenError> {
        self.sign(
            client_id.to_owned(),
            SubjectKind::Client,
            Vec::new(),
            None,
            None,
            Some(scope.to_owned()),
        )
    }

    fn sign(
        &self,
        sub: String,
        kind: SubjectKind,
        roles: Vec<String>,
        name: Option<String>,
        trust: Option<crate::trust::Trust>,
        scope: Option<String>,
    ) -> Result<String, TokenError> {
        let key = self.keys.current().ok_or(TokenError::CannotSign)?;
        let now = Utc::now().timestamp();
        let ttl_s = i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX);
        let claims = Claims {
            iss: self.issuer.clone(),
            sub,
            aud: AUDIENCE.to_owned(),
            exp: now.saturating_add(ttl_s),
            iat: now,
            jti: uuid::Uuid::now_v7().to_string(),
            kind,
            roles,
            name,
            trust,
            scope,
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(key.public().kid.clone());
        jsonwebtoken::encode(&header, &claims, key.encoding_key())
            .map_err(|error| TokenError::Invalid(error.to_string()))
    }
}

/// Where a verifier gets public keys it does not know yet.
#[derive(Debug, Clone)]
enum KeySource {
    /// Only the keys given at construction (auth runs in this process, or keys are configured).
    Fixed,
    /// A JWKS URL of KREKI ID, fetched when a token names an unknown `kid` (at most every 30 s).
    Remote {
        url: String,
        client: reqwest::Client,
    },
}

/// Least time between two JWKS fetches, so garbage tokens cannot make us hammer KREKI ID.
const JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(30);

/// Verifies access tokens with public keys only. Cheap to clone; shared by every extractor.
#[derive(Clone)]
pub struct TokenVerifier {
    inner: Arc<VerifierInner>,
}

struct VerifierInner {
    issuer: String,
    keys: RwLock<HashMap<String, DecodingKey>>,
    source: KeySource,
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("issuer", &self.inner.issuer)
            .finish_non_exhaustive()
    }
}

impl TokenVerifier {
    /// Accepts tokens from `issuer` signed by one of `keys`.
    pub fn with_keys(issuer: String, keys: &[PublicKey]) -> Self {
        Self::build(issuer, keys, KeySource::Fixed)
    }

    /// Accepts tokens from `issuer`, learning keys from the JWKS at `url` (a service running apart
    /// from KREKI ID). `keys` may pre-seed it.
    pub fn with_jwks_url(issuer: String, url: String, keys: &[PublicKey]) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self::build(issuer, keys, KeySource::Remote { url, client })
    }

    fn build(issuer: String, keys: &[PublicKey], source: KeySource) -> Self {
        let keys = keys
            .iter()
            .map(|key| (key.kid.clone(), key.decoding_key()))
            .collect();
        Self {
            inner: Arc::new(VerifierInner {
                issuer,
                keys: RwLock::new(keys),
                source,
                last_fetch: tokio::sync::Mutex::new(None),
            }),
        }
    }

    /// Checks signature, algorithm, issuer, audience and expiry, and returns the claims.
    ///
    /// # Errors
    /// [`TokenError::Expired`] or [`TokenError::Invalid`] saying why.
    pub async fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| TokenError::Invalid("malformed token".into()))?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Invalid(format!(
                "algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| TokenError::Invalid("the token names no key (kid)".into()))?;
        let key = match self.key(&kid) {
            Some(key) => key,
            None => {
                self.refresh_keys().await;
                self.key(&kid)
                    .ok_or_else(|| TokenError::Invalid("signed by an unknown key".into()))?
            }
        };
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[&self.inner.issuer]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 30;
        jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map(|data| data.claims)
            .map_err(|error| match error.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                kind => TokenError::Invalid(format!("{kind:?}")),
            })
    }

    fn key(&self, kid: &str) -> Option<DecodingKey> {
        self.inner
            .keys
            .read()
            .ok()
            .and_then(|keys| keys.get(kid).cloned())
    }

    async fn refresh_keys(&self) {
        let KeySource::Remote { url, client } = &self.inner.source else {
            return;
        };
        let mut last = self.inner.last_fetch.lock().await;
        if last.is_some_and(|at| at.elapsed() < JWKS_REFETCH_INTERVAL) {
            return;
        }
        *last = Some(Instant::now());
        let fetched = async {
            client
                .get(url)
                .send()
                .await?
                .error_for_status()?
                .json::<Jwks>()
                .await
        }
        .await;
        match fetched {
            Ok(jwks) => {
                let keys: HashMap<_, _> = jwks
                    .keys
                    .iter()
                    .filter(|jwk| jwk.kty == "OKP" && jwk.crv == "Ed25519")
                    .filter_map(|jwk| {
                        Some((
                            jwk.kid.clone(),
                            DecodingKey::from_ed_components(&jwk.x).ok()?,
                        ))
                    })
                    .collect();
                tracing::info!(keys = keys.len(), "refreshed verification keys from JWKS");
                if let Ok(mut current) = self.inner.keys.write() {
                    *current = keys;
                }
            }
            Err(error) => tracing::warn!(%error, %url, "cannot fetch JWKS"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Role;
    use crate::keys::{SigningKey, generate_pem};

    fn ring() -> Arc<KeyRing> {
        let pem = generate_pem().expect("key");
        Arc::new(KeyRing::new(
            Some(SigningKey::from_pem(&pem).expect("pem")),
            Vec::new(),
        ))
    }

    #[tokio::test]
    async fn issued_token_verifies_with_public_key_only() {
        let keys = ring();
        let issuer = Issuer::new(keys.clone(), "kreki".into(), Duration::from_secs(900));
        let user = UserId::new();
        let token = issuer
            .for_user(user, &Roles::new([Role::Volunteer]), "Sari")
            .expect("signed");
        let verifier = TokenVerifier::with_keys("kreki".into(), &keys.public_keys());
        let claims = verifier.verify(&token).await.expect("valid");
        assert_eq!(claims.sub, user.to_string());
        assert_eq!(claims.roles, vec!["citizen", "volunteer"]);
        assert_eq!(claims.exp - claims.iat, 900);
    }

    #[tokio::test]
    async fn other_issuer_or_unknown_key_is_refused() {
        let keys = ring();
        let token = Issuer::new(keys.clone(), "elsewhere".into(), Duration::from_secs(60))
            .for_client("c1", "system/*.read")
            .expect("signed");
        let verifier = TokenVerifier::with_keys("kreki".into(), &keys.public_keys());
        assert!(matches!(
            verifier.verify(&token).await,
            Err(TokenError::Invalid(_))
        ));
        let stranger = TokenVerifier::with_keys("elsewhere".into(), &ring().public_keys());
        assert!(matches!(
            stranger.verify(&token).await,
            Err(TokenError::Invalid(_))
        ));
    }
}
