//! An admin opening an account (`GET /v1/admin/users/{id}`): the phone, e-mail and name are
//! personal data, so each view is written to the audit log with its reason before it is answered.

use kreki_platform::Problem;
use kreki_platform::extract::{Json, Path, Query};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::audit::{self, Action};
use crate::domain::{Role, UserId};
use crate::error::AuthResult;
use crate::extract::CurrentUser;
use crate::routes::{AuthState, User};

/// Query of `GET /v1/admin/users/{id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ViewQuery {
    /// Why the account is opened (recorded in the audit log).
    pub reason: Option<String>,
}

/// One account (admins). Recorded in the audit log (`user.view`) with the reason given.
#[utoipa::path(get, path = "/v1/admin/users/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = UserId, Path, description = "Account id"), ViewQuery),
    responses(
        (status = 200, description = "The account", body = User),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such account", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn view_user(
    state: axum::extract::State<AuthState>,
    caller: CurrentUser,
    Path(id): Path<Uuid>,
    Query(query): Query<ViewQuery>,
) -> AuthResult<Json<User>> {
    caller.require(Role::Admin)?;
    let row = state.service.user(UserId(id)).await?;
    let reason = query.reason.as_deref().map_or("", str::trim);
    audit::record(
        state.service.pool(),
        Some(caller.id),
        Action::UserView,
        Some(UserId(id)),
        reason,
    )
    .await?;
    Ok(Json(row.into()))
}
