//! The audit log of access to personal data (UU PDP, Law 27/2022: who looked at or erased whose
//! data, when and why). Rows are only inserted: the table refuses UPDATE, DELETE and TRUNCATE by
//! trigger (migration `20261205000700_auth_audit.sql`), so not even a bug here can rewrite history.
//! Admins read it with `GET /v1/admin/audit?subject=&actor=`.

use chrono::{DateTime, Utc};
use kreki_platform::Problem;
use kreki_platform::extract::{Json, Query};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::domain::{Role, UserId};
use crate::error::{AuthError, AuthResult};
use crate::extract::CurrentUser;
use crate::routes::AuthState;

/// What was done to someone's personal data. The wire spelling is dotted (`user.view`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// An admin opened an account (phone, e-mail, name).
    UserView,
    /// An admin's account search showed this account.
    UserSearch,
    /// An admin erased an account.
    UserDelete,
    /// The person erased their own account.
    UserSelfDelete,
    /// A coordinator saw a caller's phone number.
    CallerPhoneView,
    /// A coordinator saw a responder's phone number (a call-back to the scene).
    ResponderPhoneView,
    /// Personal data left KREKI in an export.
    Export,
}

impl Action {
    /// The spelling stored and returned.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::UserView => "user.view",
            Action::UserSearch => "user.search",
            Action::UserDelete => "user.delete",
            Action::UserSelfDelete => "user.self_delete",
            Action::CallerPhoneView => "alert.caller_phone.view",
            Action::ResponderPhoneView => "alert.responder_phone.view",
            Action::Export => "export",
        }
    }
}

/// One line of the audit log as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct AuditEntry {
    /// When (UTC).
    pub at: DateTime<Utc>,
    /// The account that acted; null when KREKI itself did.
    pub actor: Option<Uuid>,
    /// What was done: `user.view`, `user.search`, `user.delete`, `user.self_delete`, `alert.caller_phone.view`,
    /// `alert.responder_phone.view`, `export`.
    #[schema(example = "user.view")]
    pub action: String,
    /// Whose data (an account id; after an erasure it names nobody any more).
    pub subject: Option<Uuid>,
    /// Why, as given.
    pub reason: String,
}

/// Appends one line. Call it in the same transaction as the access when there is one, so an access
/// is never without its record.
///
/// # Errors
/// The database error.
pub async fn record(
    executor: impl sqlx::PgExecutor<'_>,
    actor: Option<UserId>,
    action: Action,
    subject: Option<UserId>,
    reason: &str,
) -> Result<(), sqlx::Error> {
    let reason: String = reason.chars().take(500).collect();
    sqlx::query(
        "INSERT INTO auth.audit_log (actor, action, subject, reason) VALUES ($1, $2, $3, $4)",
    )
    .bind(actor.map(|id| id.0))
    .bind(action.as_str())
    .bind(subject.map(|id| id.0))
    .bind(reason)
    .execute(executor)
    .await?;
    Ok(())
}

/// Appends one line per subject in `subjects` (an account search's results), in one statement.
///
/// # Errors
/// The database error.
pub async fn record_many(
    executor: impl sqlx::PgExecutor<'_>,
    actor: Option<UserId>,
    action: Action,
    subjects: &[Uuid],
    reason: &str,
) -> Result<(), sqlx::Error> {
    if subjects.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO auth.audit_log (actor, action, subject, reason)
         SELECT $1, $2, s, $4 FROM unnest($3::uuid[]) AS s",
    )
    .bind(actor.map(|id| id.0))
    .bind(action.as_str())
    .bind(subjects)
    .bind(reason)
    .execute(executor)
    .await?;
    Ok(())
}

/// The newest `limit` lines, optionally only about `subject` and/or by `actor`.
///
/// # Errors
/// The database error.
pub async fn list(
    pool: &sqlx::PgPool,
    subject: Option<Uuid>,
    actor: Option<Uuid>,
    limit: i64,
) -> Result<Vec<AuditEntry>, sqlx::Error> {
    sqlx::query_as(
        "SELECT at, actor, action, subject, reason FROM auth.audit_log
         WHERE ($1::uuid IS NULL OR subject = $1) AND ($2::uuid IS NULL OR actor = $2)
         ORDER BY at DESC, id DESC LIMIT $3",
    )
    .bind(subject)
    .bind(actor)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Query of `GET /v1/admin/audit`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only lines about this account.
    pub subject: Option<String>,
    /// Only lines by this account.
    pub actor: Option<String>,
}

/// At most this many lines per answer, newest first.
pub const MAX_LINES: i64 = 1000;

fn parse_id(field: &str, value: Option<&str>) -> AuthResult<Option<Uuid>> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => Uuid::parse_str(text)
            .map(Some)
            .map_err(|_| AuthError::field(field, "must be an account id (UUID)")),
    }
}

/// The audit log of access to personal data (admins): who viewed or erased whose account, and why;
/// newest first, at most 1000 lines.
#[utoipa::path(get, path = "/v1/admin/audit", tag = "admin", params(AuditQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "Audit lines, newest first", body = [AuditEntry]),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`subject` or `actor` is not a UUID", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn read_audit(
    state: axum::extract::State<AuthState>,
    caller: CurrentUser,
    Query(query): Query<AuditQuery>,
) -> AuthResult<Json<Vec<AuditEntry>>> {
    caller.require(Role::Admin)?;
    let subject = parse_id("subject", query.subject.as_deref())?;
    let actor = parse_id("actor", query.actor.as_deref())?;
    Ok(Json(
        list(state.service.pool(), subject, actor, MAX_LINES).await?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_are_dotted_lower_case() {
        for action in [
            Action::UserView,
            Action::UserSearch,
            Action::UserDelete,
            Action::UserSelfDelete,
            Action::CallerPhoneView,
            Action::Export,
        ] {
            let text = action.as_str();
            assert!(
                text.split('.').all(|part| !part.is_empty()
                    && part.chars().all(|c| c.is_ascii_lowercase() || c == '_')),
                "{text}"
            );
        }
    }

    #[test]
    fn ids_in_the_query_are_checked() {
        assert_eq!(parse_id("subject", None).expect("absent is fine"), None);
        assert_eq!(
            parse_id("subject", Some(" ")).expect("blank is absent"),
            None
        );
        let id = Uuid::now_v7();
        assert_eq!(
            parse_id("actor", Some(&id.to_string())).expect("a UUID"),
            Some(id)
        );
        assert!(matches!(
            parse_id("actor", Some("me")),
            Err(AuthError::Validation(errors)) if errors[0].field == "actor"
        ));
    }
}
