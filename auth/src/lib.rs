//! KREKI ID: the accounts, tokens and roles every citizen, volunteer, coordinator and health
//! system uses.
//!
//! - [`domain`]: validated values (`Phone` in E.164, `Email`, `NewPassword`, `Role`, `Roles`).
//! - [`keys`]: Ed25519 signing keys, their thumbprint ids and the JWKS.
//! - [`token`]: issuing and verifying EdDSA access tokens.
//! - [`extract`]: the extractors other services use: [`CurrentUser`], [`Caller`], [`ClientCaller`].
//! - [`service`]: register, login, refresh rotation, logout, roles, OAuth2 clients.
//! - [`throttle`]: login throttling per address and account.
//! - [`phone`]: phone verification with a one-time code by SMS.
//! - [`password`]: Argon2id, off the async runtime and bounded.
//! - [`store`]: the SQL (schema `auth`).
//! - [`routes`]: the HTTP endpoints and their OpenAPI description.
//! - [`worker`]: pruning of expired rows.
//! - [`audit`]: the append-only audit log of access to personal data; [`account_view`]: an admin
//!   opening an account (audited).
//! - [`erasure`]: deleting an account, with the [`erasure::AccountErasure`] port other services
//!   implement for their own tables.
//! - [`error`]: [`AuthError`] and its mapping to problem+json.

pub mod account_view;
pub mod admin;
pub mod audit;
pub mod config;
pub mod contact_view;
pub mod domain;
pub mod erasure;
pub mod error;
pub mod extract;
pub mod keys;
pub mod password;
pub mod phone;
pub mod routes;
pub mod service;
pub mod store;
pub mod throttle;
pub mod token;
pub mod trust;
pub mod worker;

use std::sync::Arc;

pub use config::AuthConfig;
pub use domain::{Role, Roles, UserId};
pub use error::AuthError;
pub use extract::{Caller, ClientCaller, CurrentUser};
pub use routes::AuthState;
pub use service::AuthService;
pub use token::TokenVerifier;
pub use trust::Trust;

use keys::{KeyRing, SigningKey};
use secrecy::ExposeSecret;

/// Why KREKI ID could not start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A key file could not be read.
    #[error("{key}: cannot read {path}: {source}")]
    Read {
        /// Config key naming the file.
        key: &'static str,
        /// The path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A key is not an Ed25519 key.
    #[error("{key}: {source}")]
    Key {
        /// Config key naming the key.
        key: &'static str,
        /// Why.
        source: keys::KeyError,
    },
}

/// Loads the configured keys: the signing key (if any) and previous keys that still verify.
///
/// # Errors
/// [`SetupError`] naming the config key whose file is unreadable or not an Ed25519 key.
pub fn load_keys(config: &AuthConfig) -> Result<KeyRing, SetupError> {
    let signing_pem = match (&config.signing_key_file, &config.signing_key_pem) {
        (Some(path), _) => {
            Some(
                std::fs::read_to_string(path).map_err(|source| SetupError::Read {
                    key: "auth.signing_key_file",
                    path: path.display().to_string(),
                    source,
                })?,
            )
        }
        (None, Some(pem)) => Some(pem.expose_secret().to_owned()),
        (None, None) => None,
    };
    let current = signing_pem
        .map(|pem| SigningKey::from_pem(&pem))
        .transpose()
        .map_err(|source| SetupError::Key {
            key: "auth.signing_key_file",
            source,
        })?;
    let previous = config
        .previous_key_files
        .iter()
        .map(|path| {
            let pem = std::fs::read_to_string(path).map_err(|source| SetupError::Read {
                key: "auth.previous_key_files",
                path: path.display().to_string(),
                source,
            })?;
            keys::public_from_pem(&pem).map_err(|source| SetupError::Key {
                key: "auth.previous_key_files",
                source,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(KeyRing::new(current, previous))
}

/// The verifier for this process: the configured keys, plus the JWKS URL when one is set (a service
/// running apart from KREKI ID).
pub fn verifier(config: &AuthConfig, keys: &KeyRing) -> TokenVerifier {
    let public = keys.public_keys();
    match &config.jwks_url {
        Some(url) => TokenVerifier::with_jwks_url(config.issuer.clone(), url.clone(), &public),
        None => TokenVerifier::with_keys(config.issuer.clone(), &public),
    }
}

/// Builds the service and its state from configuration.
///
/// # Errors
/// See [`load_keys`].
pub fn build(pool: sqlx::PgPool, config: AuthConfig) -> Result<AuthState, SetupError> {
    let keys = load_keys(&config)?;
    let verifier = verifier(&config, &keys);
    Ok(AuthState {
        service: Arc::new(AuthService::new(pool, config, Arc::new(keys), verifier)),
        erasers: erasure::Erasers::default(),
    })
}
