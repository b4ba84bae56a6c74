//! Erasing an account (UU PDP, Law 27/2022: the right to erasure): by the person
//! (`DELETE /v1/auth/me` with their password) or by an admin on request
//! (`DELETE /v1/admin/users/{id}`).
//!
//! KREKI ID owns only its own schema. Every other service's data about the person (devices and
//! push tokens, volunteer positions, LMS progress, certificates...) is erased by that service's own
//! code, reached through the [`AccountErasure`] port: the binary registers one hook per service
//! ([`AuthState::with_erasers`]), so this crate never writes another crate's tables. Hooks run
//! first, each in its own transaction; only when all succeeded is the account itself deleted, so a
//! failure leaves an account that can be erased again (hooks are idempotent), never a half-erased
//! person with no account to retry with.
//!
//! What stays: alerts and assignments the person took part in keep their history (statistics,
//! SATUSEHAT), with the person replaced by an opaque [`ErasedAccount::pseudonym`] and names
//! replaced. The phone number is free again: a new registration is a new person.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::http::StatusCode;
use kreki_platform::Problem;
use kreki_platform::extract::{Json, Path, Query};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::audit::{self, Action};
use crate::domain::{Role, UserId};
use crate::error::{AuthError, AuthResult};
use crate::extract::CurrentUser;
use crate::routes::AuthState;

/// The person being erased, as each hook needs them.
#[derive(Debug, Clone)]
pub struct ErasedAccount {
    /// The account id, which must not survive anywhere.
    pub id: UserId,
    /// The opaque id that replaces [`Self::id`] in the history that is kept (alerts,
    /// assignments): one per erasure, linked to nothing.
    pub pseudonym: Uuid,
    /// The display name, which must not survive either.
    pub name: String,
    /// The E.164 phone.
    pub phone: String,
}

/// What a hook returns: rows it deleted or anonymised.
pub type ErasureFuture<'a> = Pin<Box<dyn Future<Output = Result<u64, sqlx::Error>> + Send + 'a>>;

/// One service's part of an erasure: delete what is the person's, anonymise what must stay.
/// Must be idempotent (a retry after a failure finds less or nothing to do).
pub trait AccountErasure: Send + Sync + 'static {
    /// The service, for logs and metrics (`dispatch`, `realtime`, ...).
    fn service(&self) -> &'static str;
    /// Erases `account`'s data in this service's schema.
    fn erase<'a>(&'a self, account: &'a ErasedAccount) -> ErasureFuture<'a>;
}

/// The hooks the binary registered, run in order.
#[derive(Clone, Default)]
pub struct Erasers(pub(crate) Arc<Vec<Arc<dyn AccountErasure>>>);

impl Erasers {
    /// These hooks.
    pub fn new(hooks: Vec<Arc<dyn AccountErasure>>) -> Self {
        Self(Arc::new(hooks))
    }
}

impl std::fmt::Debug for Erasers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|hook| hook.service()))
            .finish()
    }
}

/// Erases account `id`: every registered hook, then the account, its refresh tokens, sign-in
/// sources and throttle counters, with a line in the audit log (same transaction as the delete).
///
/// # Errors
/// 404 for an unknown account, 409 for the last admin, 500 when a hook failed (nothing of the
/// account itself is deleted then; erasing again is safe).
pub async fn erase(
    state: &AuthState,
    id: UserId,
    actor: UserId,
    action: Action,
    reason: &str,
) -> AuthResult<()> {
    let service = &state.service;
    let row = service.user(id).await?;
    if row.roles().contains(Role::Admin) {
        let admins: i64 =
            sqlx::query_scalar("SELECT count(*) FROM auth.users WHERE 'admin' = ANY (roles)")
                .fetch_one(service.pool())
                .await?;
        if admins <= 1 {
            return Err(AuthError::LastAdmin);
        }
    }
    let account = ErasedAccount {
        id,
        pseudonym: Uuid::new_v4(),
        name: row.name.clone(),
        phone: row.phone.clone(),
    };
    for hook in state.erasers.0.iter() {
        match hook.erase(&account).await {
            Ok(rows) => {
                metrics::counter!("auth_erased_rows_total", "service" => hook.service())
                    .increment(rows);
            }
            Err(error) => {
                tracing::error!(service = hook.service(), %error, "account erasure hook failed; account kept for a retry");
                return Err(AuthError::Internal(format!(
                    "erasing the account's {} data failed",
                    hook.service()
                )));
            }
        }
    }
    let mut tx = service.pool().begin().await?;
    audit::record(&mut *tx, Some(actor), action, Some(id), reason).await?;
    let mut keys = vec![format!("account:{}", id.0), format!("login:{}", row.phone)];
    if let Some(email) = &row.email {
        keys.push(format!("login:{email}"));
    }
    sqlx::query("DELETE FROM auth.login_throttle WHERE key = ANY ($1)")
        .bind(&keys)
        .execute(&mut *tx)
        .await?;
    // Refresh tokens and sign-in sources go with it (ON DELETE CASCADE); clients it created keep
    // working with `created_by` nulled.
    sqlx::query("DELETE FROM auth.users WHERE id = $1")
        .bind(id.0)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    metrics::counter!("auth_accounts_erased_total", "by" => action.as_str()).increment(1);
    tracing::info!(actor = %actor, action = action.as_str(), "account erased");
    Ok(())
}

/// Body of `DELETE /v1/auth/me`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DeleteMeRequest {
    /// The account's password, to be sure it is its owner asking.
    pub password: String,
}

/// Deletes the caller's own account and personal data, for good. Alerts they raised or answered
/// stay, anonymised; certificates are revoked ("account deleted"); the phone number can register
/// again as a new person. Access tokens already issued stop being refreshable at once and expire
/// within their lifetime.
#[utoipa::path(delete, path = "/v1/auth/me", tag = "auth", request_body = DeleteMeRequest, security(("bearer" = [])),
    responses(
        (status = 204, description = "Erased"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The account is gone already", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The last admin cannot be deleted", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Wrong `password`", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn delete_me(
    state: axum::extract::State<AuthState>,
    caller: CurrentUser,
    Json(body): Json<DeleteMeRequest>,
) -> AuthResult<StatusCode> {
    let row = state.service.user(caller.id).await?;
    if !state
        .service
        .verify_password(body.password, row.password_hash)
        .await?
    {
        return Err(AuthError::field(
            "password",
            "is not this account's password",
        ));
    }
    erase(
        &state,
        caller.id,
        caller.id,
        Action::UserSelfDelete,
        "asked by the person",
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Query of `DELETE /v1/admin/users/{id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteUserQuery {
    /// Why (recorded in the audit log), for example the request it answers.
    pub reason: Option<String>,
}

/// Deletes an account and its personal data on request (admins), as `DELETE /v1/auth/me` does,
/// with a line in the audit log.
#[utoipa::path(delete, path = "/v1/admin/users/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = UserId, Path, description = "Account id"), DeleteUserQuery),
    responses(
        (status = 204, description = "Erased"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such account", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The last admin cannot be deleted", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn delete_user(
    state: axum::extract::State<AuthState>,
    caller: CurrentUser,
    Path(id): Path<Uuid>,
    Query(query): Query<DeleteUserQuery>,
) -> AuthResult<StatusCode> {
    caller.require(Role::Admin)?;
    let reason = query.reason.as_deref().map_or("", str::trim);
    erase(&state, UserId(id), caller.id, Action::UserDelete, reason).await?;
    Ok(StatusCode::NO_CONTENT)
}
