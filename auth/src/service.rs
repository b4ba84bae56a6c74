//! What KREKI ID does, independent of HTTP: register, sign in, rotate and revoke refresh tokens,
//! manage roles and OAuth2 clients. Handlers parse input and call these; the CLI calls them too.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use crate::config::AuthConfig;
use crate::domain::{Email, NewPassword, PersonName, Phone, Roles, UserId};
use crate::error::{AuthError, AuthResult};
use crate::extract::scope_covers;
use crate::keys::KeyRing;
use crate::password::SecretHasher;
use crate::store::{self, RolesChange, UserRow};
use crate::throttle::{self, Attempt};
use crate::token::{Issuer, TokenVerifier};

/// Scopes an OAuth2 client may be granted: read access to the FHIR facade.
pub const KNOWN_SCOPES: &[&str] = &[
    "system/*.read",
    "system/Encounter.read",
    "system/Location.read",
    "system/Task.read",
];

/// Longest client id looked up, in bytes; ours are 19.
const MAX_CLIENT_ID_BYTES: usize = 128;

/// A new account, validated.
#[derive(Debug, Clone)]
pub struct NewAccount {
    /// Login and contact number.
    pub phone: Phone,
    /// Clear-text password (hashed before it is stored).
    pub password: NewPassword,
    /// Display name.
    pub name: PersonName,
    /// Optional second login.
    pub email: Option<Email>,
    /// Roles beyond `citizen` (only the CLI and admins grant any).
    pub roles: Roles,
}

/// An access token with the refresh token that renews it.
#[derive(Debug, Clone)]
pub struct TokenPair {
    /// EdDSA JWT.
    pub access_token: String,
    /// Opaque, single use.
    pub refresh_token: String,
    /// Seconds the access token is valid.
    pub expires_in_s: u64,
}

/// A client's credentials, returned once at creation.
#[derive(Debug, Clone)]
pub struct NewClient {
    /// Public id.
    pub client_id: String,
    /// Secret, shown once; only its hash is kept.
    pub client_secret: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
}

/// An access token issued to a client.
#[derive(Debug, Clone)]
pub struct ClientToken {
    /// EdDSA JWT.
    pub access_token: String,
    /// Seconds it is valid.
    pub expires_in_s: u64,
    /// Scopes granted, space-separated.
    pub scope: String,
}

/// KREKI ID's logic, shared by the HTTP handlers and the CLI.
pub struct AuthService {
    pool: PgPool,
    config: AuthConfig,
    keys: Arc<KeyRing>,
    issuer: Issuer,
    verifier: TokenVerifier,
    hasher: SecretHasher,
    /// Texts the phone verification codes; unset until `kreki` wires the SMS service in.
    sms: std::sync::OnceLock<Arc<kreki_sms::SmsService>>,
}

impl AuthService {
    /// The service over `pool`, signing with `keys`.
    pub fn new(
        pool: PgPool,
        config: AuthConfig,
        keys: Arc<KeyRing>,
        verifier: TokenVerifier,
    ) -> Self {
        let issuer = Issuer::new(
            keys.clone(),
            config.issuer.clone(),
            Duration::from_secs(config.access_token_ttl_s),
        );
        let hasher = SecretHasher::new(config.max_concurrent_hashes);
        Self {
            pool,
            config,
            keys,
            issuer,
            verifier,
            hasher,
            sms: std::sync::OnceLock::new(),
        }
    }

    /// Sends phone verification codes through `sms` (once; later calls are ignored).
    pub fn set_sms(&self, sms: Arc<kreki_sms::SmsService>) {
        let _ = self.sms.set(sms);
    }

    /// The SMS service, when one is wired in.
    pub(crate) fn sms(&self) -> Option<&Arc<kreki_sms::SmsService>> {
        self.sms.get()
    }

    /// Verifies access tokens.
    pub fn verifier(&self) -> &TokenVerifier {
        &self.verifier
    }

    /// The keys, for JWKS.
    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// Settings in force.
    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    /// Hashes secrets (client secrets, passwords) with Argon2id, bounded in concurrency.
    pub(crate) fn hasher(&self) -> &SecretHasher {
        &self.hasher
    }

    /// The database (the admin queries of [`crate::admin`], the audit log, erasure, phone
    /// verification).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Whether `password` matches the Argon2id `hash` (off the async runtime, bounded).
    ///
    /// # Errors
    /// 500 when the hashing task fails.
    pub async fn verify_password(&self, password: String, hash: String) -> AuthResult<bool> {
        self.hasher.verify(password, Some(hash)).await
    }

    /// Creates an account.
    ///
    /// # Errors
    /// [`AuthError::PhoneTaken`] / [`AuthError::EmailTaken`] (409) when either is in use.
    pub async fn register(&self, account: NewAccount) -> AuthResult<UserRow> {
        let hash = self
            .hasher
            .hash(account.password.expose().to_owned())
            .await?;
        let inserted = store::insert_user(
            &self.pool,
            UserId::new(),
            account.phone.as_str(),
            account.email.as_ref().map(Email::as_str),
            account.name.as_str(),
            &hash,
            &account.roles,
        )
        .await;
        inserted.map_err(|error| match kreki_platform::db::unique_violation(&error) {
            Some("users_phone_key") => AuthError::PhoneTaken,
            Some("users_email_key") => AuthError::EmailTaken,
            _ => AuthError::Database(error),
        })
    }

    /// Signs in with a phone number (any spelling) or e-mail, throttled per address and account.
    ///
    /// # Errors
    /// 401 for a wrong login or password, 429 when throttled.
    pub async fn login(&self, login: &str, password: &str, ip: IpAddr) -> AuthResult<TokenPair> {
        let login = login.trim();
        let (normalised, user) = if login.contains('@') {
            match Email::parse(login) {
                Ok(email) => (
                    email.as_str().to_owned(),
                    store::user_by_email(&self.pool, email.as_str()).await?,
                ),
                Err(_) => (login.to_lowercase(), None),
            }
        } else {
            match Phone::parse(login) {
                Ok(phone) => (
                    phone.as_str().to_owned(),
                    store::user_by_phone(&self.pool, phone.as_str()).await?,
                ),
                Err(_) => (login.to_owned(), None),
            }
        };
        let attempt = Attempt::new(ip, user.as_ref().map(|row| UserId(row.id)), &normalised);
        throttle::admit(&self.pool, &self.config, &attempt).await?;
        let hash = user.as_ref().map(|row| row.password_hash.clone());
        if !self.hasher.verify(password.to_owned(), hash).await? {
            throttle::record_failure(&self.pool, &self.config, &attempt).await?;
            metrics::counter!("auth_logins_total", "outcome" => "failed").increment(1);
            return Err(AuthError::InvalidCredentials);
        }
        let Some(user) = user else {
            return Err(AuthError::InvalidCredentials);
        };
        throttle::record_success(&self.pool, &attempt).await?;
        metrics::counter!("auth_logins_total", "outcome" => "ok").increment(1);
        let mut tx = self.pool.begin().await?;
        let refresh_token = self
            .new_refresh_token(&mut tx, Uuid::now_v7(), UserId(user.id))
            .await?;
        tx.commit().await?;
        self.pair(&user, refresh_token)
    }

    /// Exchanges a refresh token for a new pair. The old token is spent; presenting a spent token
    /// again revokes its whole family (it was copied), and the caller must sign in again.
    ///
    /// # Errors
    /// 401 for unknown, expired, revoked or re-used tokens.
    pub async fn refresh(&self, refresh_token: &str) -> AuthResult<TokenPair> {
        let mut tx = self.pool.begin().await?;
        let Some(row) = store::lock_refresh_token(&mut tx, &hash_token(refresh_token)).await?
        else {
            return Err(AuthError::RefreshTokenInvalid);
        };
        if row.revoked_at.is_some() || row.expires_at <= Utc::now() {
            return Err(AuthError::RefreshTokenInvalid);
        }
        if row.used_at.is_some() {
            let revoked = store::revoke_family(&mut tx, row.family_id).await?;
            tx.commit().await?;
            tracing::warn!(user = %row.user_id, family = %row.family_id, revoked, "refresh token re-used; family revoked");
            metrics::counter!("auth_refresh_reuse_total").increment(1);
            return Err(AuthError::RefreshTokenReused);
        }
        store::mark_refresh_token_used(&mut tx, row.id).await?;
        // Through the transaction: a second pool connection, taken while this one holds the row
        // lock that concurrent refreshes of the same token wait on, deadlocks a busy pool.
        let user = store::user_by_id(&mut *tx, UserId(row.user_id))
            .await?
            .ok_or(AuthError::RefreshTokenInvalid)?;
        let refresh_token = self
            .new_refresh_token(&mut tx, row.family_id, UserId(row.user_id))
            .await?;
        tx.commit().await?;
        self.pair(&user, refresh_token)
    }

    /// Ends the sign-in the refresh token belongs to (every token of its family). Unknown tokens,
    /// or tokens of someone else, change nothing.
    ///
    /// # Errors
    /// Only database failures.
    pub async fn logout(&self, user: UserId, refresh_token: &str) -> AuthResult<()> {
        let mut tx = self.pool.begin().await?;
        if let Some(row) = store::lock_refresh_token(&mut tx, &hash_token(refresh_token)).await?
            && row.user_id == user.0
        {
            store::revoke_family(&mut tx, row.family_id).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The account with `id`.
    ///
    /// # Errors
    /// 404 when it does not exist (any more).
    pub async fn user(&self, id: UserId) -> AuthResult<UserRow> {
        store::user_by_id(&self.pool, id)
            .await?
            .ok_or(AuthError::NotFound("user"))
    }

    /// Sets an account's trust level.
    ///
    /// # Errors
    /// 404 for an unknown account.
    pub async fn set_trust(&self, id: UserId, trust: crate::trust::Trust) -> AuthResult<UserRow> {
        store::set_trust(&self.pool, id, trust)
            .await?
            .ok_or(AuthError::NotFound("user"))
    }

    /// Replaces an account's roles (`citizen` is always kept).
    ///
    /// # Errors
    /// 404 for an unknown account, 409 when it would remove the last admin.
    pub async fn set_roles(&self, id: UserId, roles: &Roles) -> AuthResult<UserRow> {
        match store::set_roles(&self.pool, id, roles).await? {
            RolesChange::Changed(row) => {
                tracing::info!(user = %id, roles = ?roles.names(), "roles changed");
                Ok(*row)
            }
            RolesChange::NoSuchUser => Err(AuthError::NotFound("user")),
            RolesChange::WouldRemoveLastAdmin => Err(AuthError::LastAdmin),
        }
    }

    /// Creates an OAuth2 client with `scopes` (each must be one of [`KNOWN_SCOPES`]).
    ///
    /// # Errors
    /// 422 naming an unknown scope or an empty name.
    pub async fn create_client(
        &self,
        name: &str,
        scopes: &[String],
        created_by: Option<UserId>,
    ) -> AuthResult<NewClient> {
        let mut errors = Vec::new();
        if PersonName::parse(name).is_err() {
            errors.push(kreki_platform::FieldError::new(
                "name",
                "must be 1 to 100 characters",
            ));
        }
        if scopes.is_empty() {
            errors.push(kreki_platform::FieldError::new(
                "scopes",
                "must list at least one scope",
            ));
        }
        for (index, scope) in scopes.iter().enumerate() {
            if !KNOWN_SCOPES.contains(&scope.as_str()) {
                errors.push(kreki_platform::FieldError::new(
                    format!("scopes[{index}]"),
                    format!("must be one of {}", KNOWN_SCOPES.join(", ")),
                ));
            }
        }
        if !errors.is_empty() {
            return Err(AuthError::Validation(errors));
        }
        let client_id = format!("kc_{}", URL_SAFE_NO_PAD.encode(rand::random::<[u8; 12]>()));
        let client_secret = format!("kcs_{}", URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>()));
        let secret_hash = self.hasher.hash(client_secret.clone()).await?;
        let mut scopes = scopes.to_vec();
        scopes.sort();
        scopes.dedup();
        store::insert_client(
            &self.pool,
            &client_id,
            &secret_hash,
            name.trim(),
            &scopes,
            created_by,
        )
        .await?;
        tracing::info!(%client_id, ?scopes, "OAuth2 client created");
        Ok(NewClient {
            client_id,
            client_secret,
            scopes,
        })
    }

    /// The client-credentials grant: checks the secret and narrows the scope to what was asked
    /// (all granted scopes when none was).
    ///
    /// # Errors
    /// 401 `invalid_client`, 400 `invalid_scope`.
    pub async fn client_token(
        &self,
        client_id: &str,
        client_secret: &str,
        scope: Option<&str>,
    ) -> AuthResult<ClientToken> {
        // Client ids are short ASCII (`kc_…`); anything else is unknown without asking the
        // database, which would refuse a NUL byte with an error rather than an empty answer.
        let plausible = client_id.len() <= MAX_CLIENT_ID_BYTES && !client_id.contains('\0');
        let client = if plausible {
            store::active_client(&self.pool, client_id).await?
        } else {
            None
        };
        let hash = client.as_ref().map(|row| row.secret_hash.clone());
        if !self.hasher.verify(client_secret.to_owned(), hash).await? {
            return Err(AuthError::InvalidClient);
        }
        let Some(client) = client else {
            return Err(AuthError::InvalidClient);
        };
        let granted = match scope.map(str::trim).filter(|scope| !scope.is_empty()) {
            None => client.scopes.join(" "),
            Some(requested) => {
                for wanted in requested.split_whitespace() {
                    if !client
                        .scopes
                        .iter()
                        .any(|granted| scope_covers(granted, wanted))
                    {
                        return Err(AuthError::InvalidScope(wanted.to_owned()));
                    }
                }
                requested.split_whitespace().collect::<Vec<_>>().join(" ")
            }
        };
        let access_token = self.issuer.for_client(&client.client_id, &granted)?;
        Ok(ClientToken {
            access_token,
            expires_in_s: self.issuer.ttl().as_secs(),
            scope: granted,
        })
    }

    async fn new_refresh_token(
        &self,
        conn: &mut sqlx::PgConnection,
        family_id: Uuid,
        user: UserId,
    ) -> AuthResult<String> {
        let token = format!("krt_{}", URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>()));
        let ttl = chrono::Duration::seconds(
            i64::try_from(self.config.refresh_token_ttl_s).unwrap_or(i64::MAX),
        );
        store::insert_refresh_token(conn, family_id, user, &hash_token(&token), Utc::now() + ttl)
            .await?;
        Ok(token)
    }

    /// A new token pair for `user`; a blocked account gets none (its tokens run out within
    /// their lifetime, and it cannot sign in again).
    fn pair(&self, user: &UserRow, refresh_token: String) -> AuthResult<TokenPair> {
        if user.trust() == crate::trust::Trust::Blocked {
            return Err(AuthError::Forbidden(
                "this account is blocked; contact the emergency service".into(),
            ));
        }
        let access_token =
            self.issuer
                .for_person(UserId(user.id), &user.roles(), &user.name, user.trust())?;
        Ok(TokenPair {
            access_token,
            refresh_token,
            expires_in_s: self.issuer.ttl().as_secs(),
        })
    }
}

fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}
