//! What the admin console needs beyond API.md's first table: finding accounts by phone or name,
//! and looking after OAuth2 clients (list, rotate a secret, change scopes, revoke). Admins only.
//! The handlers are mounted by [`crate::routes::router`].
//! The queries are here beside their handlers: each is one statement on `auth.users` or
//! `auth.clients`.

use axum::extract::State;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use kreki_platform::extract::{Json, Path, Query};
use kreki_platform::{FieldError, Problem};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::Role;
use crate::error::{AuthError, AuthResult};
use crate::extract::CurrentUser;
use crate::routes::{AuthState, CreatedClient, User};
use crate::service::KNOWN_SCOPES;
use crate::store::UserRow;

/// Most accounts one search answers.
const MAX_FOUND: i64 = 50;

/// Query of `GET /v1/admin/users`.
#[derive(Debug, Deserialize, IntoParams)]
pub struct UserSearch {
    /// Part of a name (any case) or of a phone number in any usual spelling (`0812…`, `+62812…`,
    /// `812-34`); 2 to 100 characters.
    pub q: String,
}

/// The digits of a phone number as stored after `+62` (or the whole number's digits otherwise),
/// so `0812 3456`, `+62812-3456` and `8123456` find the same account.
fn phone_digits(query: &str) -> Option<String> {
    let digits: String = query.chars().filter(char::is_ascii_digit).collect();
    let looks_like_phone = query
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | ' ' | '(' | ')' | '.'));
    if !looks_like_phone || digits.len() < 3 {
        return None;
    }
    let local = digits
        .strip_prefix("62")
        .or_else(|| digits.strip_prefix('0'))
        .unwrap_or(&digits);
    Some(local.to_owned())
}

/// Finds accounts by phone or name (admins), best matches first, at most 50.
#[utoipa::path(get, path = "/v1/admin/users", tag = "admin", params(UserSearch), security(("bearer" = [])),
    responses(
        (status = 200, description = "Matching accounts", body = [User]),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`q` too short or too long", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn search_users(
    State(state): State<AuthState>,
    caller: CurrentUser,
    Query(query): Query<UserSearch>,
) -> AuthResult<Json<Vec<User>>> {
    caller.require(Role::Admin)?;
    let q = query.q.trim();
    if !(2..=100).contains(&q.chars().count()) {
        return Err(AuthError::Validation(vec![FieldError::new(
            "q",
            "must be 2 to 100 characters: part of a name or a phone number",
        )]));
    }
    let rows: Vec<UserRow> = match phone_digits(q) {
        Some(digits) => {
            sqlx::query_as(concat!(
                "SELECT ",
                crate::store::user_columns!(),
                " FROM auth.users WHERE phone LIKE '%' || $1 || '%' ORDER BY phone LIMIT $2",
            ))
            .bind(digits)
            .bind(MAX_FOUND)
            .fetch_all(state.service.pool())
            .await?
        }
        None => {
            let pattern = format!(
                "%{}%",
                q.replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            );
            sqlx::query_as(concat!(
                "SELECT ",
                crate::store::user_columns!(),
                " FROM auth.users WHERE name ILIKE $1 OR email ILIKE $1
                 ORDER BY (lower(name) = lower($2)) DESC, name LIMIT $3",
            ))
            .bind(pattern)
            .bind(q)
            .bind(MAX_FOUND)
            .fetch_all(state.service.pool())
            .await?
        }
    };
    Ok(Json(rows.into_iter().map(User::from).collect()))
}

/// An OAuth2 client, without its secret.
#[derive(Debug, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct Client {
    /// Public id.
    pub client_id: String,
    /// The health system's name.
    pub name: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// When it was created (UTC).
    pub created_at: DateTime<Utc>,
    /// When it was revoked (UTC); `null` while it may get tokens.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Every OAuth2 client, newest first (admins).
#[utoipa::path(get, path = "/v1/admin/clients", tag = "admin", security(("bearer" = [])),
    responses(
        (status = 200, description = "Clients", body = [Client]),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_clients(
    State(state): State<AuthState>,
    caller: CurrentUser,
) -> AuthResult<Json<Vec<Client>>> {
    caller.require(Role::Admin)?;
    Ok(Json(
        sqlx::query_as(
            "SELECT client_id, name, scopes, created_at, revoked_at FROM auth.clients
             ORDER BY created_at DESC LIMIT 500",
        )
        .fetch_all(state.service.pool())
        .await?,
    ))
}

/// Gives a client a new secret (admins); the old one stops working at once. The new secret is in
/// this answer only.
#[utoipa::path(post, path = "/v1/admin/clients/{client_id}/secret", tag = "admin", security(("bearer" = [])),
    params(("client_id" = String, Path, description = "The client's public id")),
    responses(
        (status = 200, description = "The new secret", body = CreatedClient),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such live client", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn rotate_secret(
    State(state): State<AuthState>,
    caller: CurrentUser,
    Path(client_id): Path<String>,
) -> AuthResult<Json<CreatedClient>> {
    caller.require(Role::Admin)?;
    let client_secret = format!("kcs_{}", URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>()));
    let hash = state.service.hasher().hash(client_secret.clone()).await?;
    let scopes: Option<Vec<String>> = sqlx::query_scalar(
        "UPDATE auth.clients SET secret_hash = $2 WHERE client_id = $1 AND revoked_at IS NULL RETURNING scopes",
    )
    .bind(&client_id)
    .bind(hash)
    .fetch_optional(state.service.pool())
    .await?;
    let scopes = scopes.ok_or(AuthError::NotFound("client"))?;
    tracing::info!(%client_id, by = %caller.id.0, "OAuth2 client secret rotated");
    Ok(Json(CreatedClient {
        client_id,
        client_secret,
        scopes,
    }))
}

/// Body of `PUT /v1/admin/clients/{client_id}/scopes`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SetScopes {
    /// The scopes it may be granted from now on (tokens already issued keep theirs until they
    /// expire).
    pub scopes: Vec<String>,
}

/// Changes a client's scopes (admins).
#[utoipa::path(put, path = "/v1/admin/clients/{client_id}/scopes", tag = "admin", request_body = SetScopes, security(("bearer" = [])),
    params(("client_id" = String, Path, description = "The client's public id")),
    responses(
        (status = 200, description = "The client", body = Client),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such live client", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An unknown scope, or none (named)", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn set_scopes(
    State(state): State<AuthState>,
    caller: CurrentUser,
    Path(client_id): Path<String>,
    Json(body): Json<SetScopes>,
) -> AuthResult<Json<Client>> {
    caller.require(Role::Admin)?;
    let mut errors = Vec::new();
    if body.scopes.is_empty() {
        errors.push(FieldError::new("scopes", "must list at least one scope"));
    }
    for (index, scope) in body.scopes.iter().enumerate() {
        if !KNOWN_SCOPES.contains(&scope.as_str()) {
            errors.push(FieldError::new(
                format!("scopes[{index}]"),
                format!("must be one of {}", KNOWN_SCOPES.join(", ")),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(AuthError::Validation(errors));
    }
    let mut scopes = body.scopes;
    scopes.sort();
    scopes.dedup();
    let client: Option<Client> = sqlx::query_as(
        "UPDATE auth.clients SET scopes = $2 WHERE client_id = $1 AND revoked_at IS NULL
         RETURNING client_id, name, scopes, created_at, revoked_at",
    )
    .bind(&client_id)
    .bind(&scopes)
    .fetch_optional(state.service.pool())
    .await?;
    tracing::info!(%client_id, ?scopes, by = %caller.id.0, "OAuth2 client scopes changed");
    client.map(Json).ok_or(AuthError::NotFound("client"))
}

/// Revokes a client (admins): it gets no more tokens.
#[utoipa::path(delete, path = "/v1/admin/clients/{client_id}", tag = "admin", security(("bearer" = [])),
    params(("client_id" = String, Path, description = "The client's public id")),
    responses(
        (status = 204, description = "Revoked (or was already)"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such client", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn revoke_client(
    State(state): State<AuthState>,
    caller: CurrentUser,
    Path(client_id): Path<String>,
) -> AuthResult<http::StatusCode> {
    caller.require(Role::Admin)?;
    let found: Option<String> = sqlx::query_scalar(
        "UPDATE auth.clients SET revoked_at = COALESCE(revoked_at, now()) WHERE client_id = $1 RETURNING client_id",
    )
    .bind(&client_id)
    .fetch_optional(state.service.pool())
    .await?;
    found.ok_or(AuthError::NotFound("client"))?;
    tracing::info!(%client_id, by = %caller.id.0, "OAuth2 client revoked");
    Ok(http::StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::phone_digits;

    #[test]
    fn phone_spellings_meet() {
        for spelling in ["0812-3456", "+62 812 3456", "8123456", "62812 3456"] {
            assert_eq!(
                phone_digits(spelling).as_deref(),
                Some("8123456"),
                "{spelling}"
            );
        }
        assert_eq!(phone_digits("Sari"), None);
        assert_eq!(phone_digits("08"), None);
    }
}
