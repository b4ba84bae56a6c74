//! SQL of KREKI ID. Every function is one statement (or one transaction, said so), covered by the
//! integration tests against PostgreSQL.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::{Roles, UserId};

/// An account as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    /// Account id.
    pub id: Uuid,
    /// E.164 phone.
    pub phone: String,
    /// Lower-cased e-mail.
    pub email: Option<String>,
    /// Display name.
    pub name: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Role names.
    pub roles: Vec<String>,
    /// When the account was made.
    pub created_at: DateTime<Utc>,
    /// Trust level (`new`, `verified`, `trusted`, `blocked`).
    pub trust: String,
    /// When the phone was verified with a one-time code.
    pub phone_verified_at: Option<DateTime<Utc>>,
}

impl UserRow {
    /// The trust level, parsed (the column is checked, so an unknown spelling is `new`).
    pub fn trust(&self) -> crate::trust::Trust {
        crate::trust::Trust::parse(&self.trust).unwrap_or(crate::trust::Trust::New)
    }

    /// The roles, parsed.
    pub fn roles(&self) -> Roles {
        Roles::from_names(self.roles.iter().map(String::as_str))
    }
}

/// The columns of [`UserRow`], as a literal so queries stay static strings.
macro_rules! user_columns {
    () => {
        "id, phone, email, name, password_hash, roles, created_at, trust, phone_verified_at"
    };
}
/// Other modules of the crate (the admins' search) read accounts with the same columns.
pub(crate) use user_columns;

/// Inserts an account. Unique violations come back as database errors naming
/// `users_phone_key` or `users_email_key`.
pub async fn insert_user(
    pool: &PgPool,
    id: UserId,
    phone: &str,
    email: Option<&str>,
    name: &str,
    password_hash: &str,
    roles: &Roles,
) -> Result<UserRow, sqlx::Error> {
    sqlx::query_as(concat!(
        "INSERT INTO auth.users (id, phone, email, name, password_hash, roles)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING ",
        user_columns!()
    ))
    .bind(id.0)
    .bind(phone)
    .bind(email)
    .bind(name)
    .bind(password_hash)
    .bind(roles.names())
    .fetch_one(pool)
    .await
}

/// The account with this id, read through `executor` (a pool, or the connection of a transaction
/// that must not wait for a second connection while it holds locks).
pub async fn user_by_id(
    executor: impl sqlx::PgExecutor<'_>,
    id: UserId,
) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        user_columns!(),
        " FROM auth.users WHERE id = $1"
    ))
    .bind(id.0)
    .fetch_optional(executor)
    .await
}

/// The phone numbers of these accounts: for texts other services send them (area broadcasts,
/// escalations to a region's coordinators) and for a coordinator's audited call-back. Only ids come in and only `(id, phone)` go out: the
/// caller sends the text and shows the number nowhere.
pub async fn phones_of(
    executor: impl sqlx::PgExecutor<'_>,
    users: &[Uuid],
) -> Result<Vec<(Uuid, String)>, sqlx::Error> {
    sqlx::query_as("SELECT id, phone FROM auth.users WHERE id = ANY ($1)")
        .bind(users)
        .fetch_all(executor)
        .await
}

/// The account with this E.164 phone.
pub async fn user_by_phone(pool: &PgPool, phone: &str) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        user_columns!(),
        " FROM auth.users WHERE phone = $1"
    ))
    .bind(phone)
    .fetch_optional(pool)
    .await
}

/// The account with this (lower-cased) e-mail.
pub async fn user_by_email(pool: &PgPool, email: &str) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        user_columns!(),
        " FROM auth.users WHERE email = $1"
    ))
    .bind(email)
    .fetch_optional(pool)
    .await
}

/// Replaces an account's roles, in one transaction that refuses to remove the last admin.
pub async fn set_roles(
    pool: &PgPool,
    id: UserId,
    roles: &Roles,
) -> Result<RolesChange, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // Serialise role changes so two admins demoting each other cannot both succeed.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('auth.users.roles'))")
        .execute(&mut *tx)
        .await?;
    let current: Option<Vec<String>> =
        sqlx::query_scalar("SELECT roles FROM auth.users WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await?;
    let Some(current) = current else {
        return Ok(RolesChange::NoSuchUser);
    };
    let was_admin = current.iter().any(|role| role == "admin");
    if was_admin && !roles.contains(crate::domain::Role::Admin) {
        let admins: i64 =
            sqlx::query_scalar("SELECT count(*) FROM auth.users WHERE 'admin' = ANY (roles)")
                .fetch_one(&mut *tx)
                .await?;
        if admins <= 1 {
            return Ok(RolesChange::WouldRemoveLastAdmin);
        }
    }
    let row: UserRow = sqlx::query_as(concat!(
        "UPDATE auth.users SET roles = $2, updated_at = now() WHERE id = $1 RETURNING ",
        user_columns!()
    ))
    .bind(id.0)
    .bind(roles.names())
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(RolesChange::Changed(Box::new(row)))
}

/// Outcome of [`set_roles`].
#[derive(Debug)]
pub enum RolesChange {
    /// Done; the account as it is now.
    Changed(Box<UserRow>),
    /// No account with that id.
    NoSuchUser,
    /// Refused: it is the last admin.
    WouldRemoveLastAdmin,
}

/// A stored refresh token, locked for update.
#[derive(Debug, sqlx::FromRow)]
pub struct RefreshTokenRow {
    /// Row id.
    pub id: Uuid,
    /// Rotation family.
    pub family_id: Uuid,
    /// Owner.
    pub user_id: Uuid,
    /// End of validity.
    pub expires_at: DateTime<Utc>,
    /// Set once it was exchanged.
    pub used_at: Option<DateTime<Utc>>,
    /// Set when its family was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Stores a new refresh token of `family_id`.
pub async fn insert_refresh_token(
    conn: &mut PgConnection,
    family_id: Uuid,
    user_id: UserId,
    token_hash: &[u8],
    expires_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO auth.refresh_tokens (id, family_id, user_id, token_hash, expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(Uuid::now_v7())
    .bind(family_id)
    .bind(user_id.0)
    .bind(token_hash)
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Finds a refresh token by hash and locks it until the transaction ends, so two concurrent
/// exchanges of one token cannot both succeed.
pub async fn lock_refresh_token(
    conn: &mut PgConnection,
    token_hash: &[u8],
) -> Result<Option<RefreshTokenRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, family_id, user_id, expires_at, used_at, revoked_at
         FROM auth.refresh_tokens WHERE token_hash = $1 FOR UPDATE",
    )
    .bind(token_hash)
    .fetch_optional(conn)
    .await
}

/// Marks a refresh token exchanged.
pub async fn mark_refresh_token_used(conn: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE auth.refresh_tokens SET used_at = now() WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Revokes every live token of a family (logout, or detected re-use).
pub async fn revoke_family(conn: &mut PgConnection, family_id: Uuid) -> Result<u64, sqlx::Error> {
    let result = sqlx::query("UPDATE auth.refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL")
        .bind(family_id)
        .execute(conn)
        .await?;
    Ok(result.rows_affected())
}

/// An OAuth2 client as stored.
#[derive(Debug, sqlx::FromRow)]
pub struct ClientRow {
    /// Public id.
    pub client_id: String,
    /// Argon2id of the secret.
    pub secret_hash: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
}

/// Stores a new client.
pub async fn insert_client(
    pool: &PgPool,
    client_id: &str,
    secret_hash: &str,
    name: &str,
    scopes: &[String],
    created_by: Option<UserId>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO auth.clients (id, client_id, secret_hash, name, scopes, created_by) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(Uuid::now_v7())
    .bind(client_id)
    .bind(secret_hash)
    .bind(name)
    .bind(scopes)
    .bind(created_by.map(|id| id.0))
    .execute(pool)
    .await?;
    Ok(())
}

/// A client that is not revoked.
pub async fn active_client(
    pool: &PgPool,
    client_id: &str,
) -> Result<Option<ClientRow>, sqlx::Error> {
    sqlx::query_as("SELECT client_id, secret_hash, scopes FROM auth.clients WHERE client_id = $1 AND revoked_at IS NULL")
        .bind(client_id)
        .fetch_optional(pool)
        .await
}

/// Deletes refresh tokens a week past expiry and throttle counters whose window and block are
/// over. Returns rows removed.
pub async fn prune(pool: &PgPool, window_s: i64) -> Result<u64, sqlx::Error> {
    let tokens =
        sqlx::query("DELETE FROM auth.refresh_tokens WHERE expires_at < now() - interval '7 days'")
            .execute(pool)
            .await?
            .rows_affected();
    let counters = sqlx::query(
        "DELETE FROM auth.login_throttle
         WHERE window_started_at < now() - make_interval(secs => $1::double precision)
           AND (blocked_until IS NULL OR blocked_until < now())",
    )
    .bind(window_s)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(tokens + counters)
}

/// Sets an account's trust level; `None` when there is no such account.
pub async fn set_trust(
    pool: &PgPool,
    id: UserId,
    trust: crate::trust::Trust,
) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "UPDATE auth.users SET trust = $2, updated_at = now() WHERE id = $1 RETURNING ",
        user_columns!()
    ))
    .bind(id.0)
    .bind(trust.as_str())
    .fetch_optional(pool)
    .await
}
