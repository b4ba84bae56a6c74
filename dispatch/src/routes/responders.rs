//! Responders: accepting and declining offers, and moving an assignment along.

use axum::body::Bytes;
use axum::extract::State;
use kreki_auth::{CurrentUser, Role};
use kreki_platform::Problem;
use kreki_platform::extract::{Json, Path};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{DispatchState, ReasonRequest, TAG, reason_of};
use crate::domain::{AssignmentId, AssignmentStatus, OfferId};
use crate::error::DispatchResult;
use crate::views::{Assignment, Offer};

/// Accepts an offer.
#[utoipa::path(post, path = "/v1/offers/{id}/accept", tag = TAG, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Offer id")),
    responses(
        (status = 200, description = "You are assigned", body = Assignment),
        (status = 403, description = "Not your offer", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such offer", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`alert-covered`, `alert-cancelled`, `offer-expired`, `volunteer-busy`, ... (in `type`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn accept(
    State(state): State<DispatchState>,
    user: CurrentUser,
    Path(id): Path<OfferId>,
) -> DispatchResult<Json<Assignment>> {
    user.require(Role::Volunteer)?;
    Ok(Json(state.service.accept(&user, id).await?))
}

/// Declines an offer.
#[utoipa::path(post, path = "/v1/offers/{id}/decline", tag = TAG, request_body = ReasonRequest, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Offer id")),
    responses(
        (status = 200, description = "Declined", body = Offer),
        (status = 403, description = "Not your offer", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "No longer pending", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn decline(
    State(state): State<DispatchState>,
    user: CurrentUser,
    Path(id): Path<OfferId>,
    body: Bytes,
) -> DispatchResult<Json<Offer>> {
    user.require(Role::Volunteer)?;
    let reason = reason_of(&body)?;
    Ok(Json(state.service.decline(&user, id, reason).await?))
}

/// Body of `POST /v1/assignments/{id}/status`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct StatusRequest {
    /// `en_route`, `on_scene`, `completed` or `withdrawn`.
    pub status: AssignmentStatus,
}

/// The volunteer reports progress on their assignment.
#[utoipa::path(post, path = "/v1/assignments/{id}/status", tag = TAG, request_body = StatusRequest, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Assignment id")),
    responses(
        (status = 200, description = "Updated", body = Assignment),
        (status = 403, description = "Not yours", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Transition not allowed", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn assignment_status(
    State(state): State<DispatchState>,
    user: CurrentUser,
    Path(id): Path<AssignmentId>,
    Json(body): Json<StatusRequest>,
) -> DispatchResult<Json<Assignment>> {
    user.require(Role::Volunteer)?;
    Ok(Json(
        state
            .service
            .set_assignment_status(&user, id, body.status)
            .await?,
    ))
}
