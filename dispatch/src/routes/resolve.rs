//! A coordinator resolves an alert and records its outcome.

use axum::extract::State;
use kreki_auth::{CurrentUser, Role};
use kreki_platform::Problem;
use kreki_platform::extract::{Json, Path};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{DispatchState, TAG, problem_to_error};
use crate::domain::{AlertId, Outcome};
use crate::error::{DispatchError, DispatchResult};
use crate::service::resolve::MAX_OUTCOME_NOTE_CHARS;
use crate::views::Alert;

/// Body of `POST /v1/alerts/{id}/resolve`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    /// How it ended: `treated_on_scene`, `to_hospital`, `false_alarm`, `not_found` or `other`.
    pub outcome: Outcome,
    /// What the coordinator wants on record (at most 1000 characters).
    pub note: Option<String>,
}

/// Resolves an alert with its outcome (coordinators). An open alert closes (pending offers
/// withdrawn, active responders completed); one already resolved gets the outcome recorded (again).
/// The volunteers who responded see the outcome on the alert, and get their aftercare check-in.
#[utoipa::path(post, path = "/v1/alerts/{id}/resolve", tag = TAG, request_body = ResolveRequest, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Alert id")),
    responses(
        (status = 200, description = "Resolved, with its outcome", body = Alert),
        (status = 403, description = "Not a coordinator", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such alert", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The alert was cancelled (`alert-cancelled`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown `outcome` or a `note` too long", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn resolve(
    State(state): State<DispatchState>,
    user: CurrentUser,
    Path(id): Path<AlertId>,
    body: Result<Json<ResolveRequest>, Problem>,
) -> DispatchResult<Json<Alert>> {
    user.require(Role::Coordinator)?;
    let Json(body) = body.map_err(problem_to_error)?;
    let note = body
        .note
        .map(|note| note.trim().to_owned())
        .filter(|note| !note.is_empty());
    if note
        .as_ref()
        .is_some_and(|note| note.chars().count() > MAX_OUTCOME_NOTE_CHARS)
    {
        return Err(DispatchError::field(
            "note",
            format!("must be at most {MAX_OUTCOME_NOTE_CHARS} characters"),
        ));
    }
    Ok(Json(
        state.service.resolve(&user, id, body.outcome, note).await?,
    ))
}
