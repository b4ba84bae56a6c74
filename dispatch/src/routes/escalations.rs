//! Escalations: the list a coordinator's dashboard alarms on, and acknowledging one.

use axum::extract::State;
use kreki_auth::CurrentUser;
use kreki_platform::Problem;
use kreki_platform::extract::{Json, Path, Query};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{DispatchState, TAG};
use crate::domain::EscalationId;
use crate::error::{DispatchError, DispatchResult};
use crate::views::Escalation;

/// Query of `GET /v1/escalations`.
#[derive(Debug, Deserialize, IntoParams)]
pub struct EscalationQuery {
    /// `open` for those not acknowledged yet; absent for all (newest first, at most 500).
    pub status: Option<String>,
}

/// The escalations of the coordinator's regions (all for a national coordinator), newest first.
#[utoipa::path(get, path = "/v1/escalations", tag = TAG, params(EscalationQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "Escalations", body = [Escalation]),
        (status = 403, description = "Not a coordinator", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`status` other than `open`", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_escalations(
    State(state): State<DispatchState>,
    user: CurrentUser,
    Query(query): Query<EscalationQuery>,
) -> DispatchResult<Json<Vec<Escalation>>> {
    let open = match query.status.as_deref().map(str::trim) {
        None | Some("") => false,
        Some("open") => true,
        Some(_) => return Err(DispatchError::field("status", "must be open (or absent)")),
    };
    Ok(Json(state.service.escalations(&user, open).await?))
}

/// Acknowledges an escalation (a coordinator of its region): the alarm stops on every dashboard,
/// and the alert's timeline records who.
#[utoipa::path(post, path = "/v1/escalations/{id}/ack", tag = TAG, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Escalation id")),
    responses(
        (status = 200, description = "Acknowledged", body = Escalation),
        (status = 403, description = "Not a coordinator of its region", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such escalation", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Acknowledged already (`escalation-acknowledged`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn acknowledge(
    State(state): State<DispatchState>,
    user: CurrentUser,
    Path(id): Path<EscalationId>,
) -> DispatchResult<Json<Escalation>> {
    Ok(Json(state.service.acknowledge_escalation(&user, id).await?))
}
