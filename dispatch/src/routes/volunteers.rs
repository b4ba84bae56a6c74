//! Volunteers: duty, positions, the coordinators' map of volunteers, and a volunteer's pending
//! offers.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use kreki_auth::{CurrentUser, Role};
use kreki_platform::Problem;
use kreki_platform::extract::{Json, Query};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{DispatchState, ListQuery, TAG, parse_bbox};
use crate::domain::{AlertKind, Position};
use crate::error::{DispatchError, DispatchResult};
use crate::views::{Offer, Volunteer};

/// Body of `PUT /v1/volunteers/me/duty`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DutyRequest {
    /// True to start receiving offers.
    pub on_duty: bool,
}

/// Answer of `PUT /v1/volunteers/me/duty`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DutyResponse {
    /// As set.
    pub on_duty: bool,
    /// Alert kinds this volunteer's certifications qualify them for.
    pub eligible_kinds: Vec<AlertKind>,
}

/// Goes on or off duty.
#[utoipa::path(put, path = "/v1/volunteers/me/duty", tag = TAG, request_body = DutyRequest, security(("bearer" = [])),
    responses(
        (status = 200, description = "Duty set", body = DutyResponse),
        (status = 403, description = "Not a volunteer, or (with `dispatch.require_verified_phone`) the phone is not verified", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn set_duty(
    State(state): State<DispatchState>,
    user: CurrentUser,
    Json(body): Json<DutyRequest>,
) -> DispatchResult<Json<DutyResponse>> {
    user.require(Role::Volunteer)?;
    if body.on_duty
        && state.service.config().require_verified_phone
        && !matches!(
            user.trust,
            kreki_auth::Trust::Verified | kreki_auth::Trust::Trusted
        )
    {
        return Err(DispatchError::Forbidden(
            "verify your phone (POST /v1/auth/phone/code) before going on duty",
        ));
    }
    let eligible_kinds = state.service.set_duty(&user, body.on_duty).await?;
    Ok(Json(DutyResponse {
        on_duty: body.on_duty,
        eligible_kinds,
    }))
}

/// Body of `POST /v1/volunteers/me/location`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LocationRequest {
    /// Latitude, degrees (-90 to 90).
    pub lat: f64,
    /// Longitude, degrees (-180 to 180).
    pub lng: f64,
    /// Accuracy radius, metres.
    pub accuracy_m: Option<f64>,
    /// When the device took the fix (UTC); now when absent.
    pub recorded_at: Option<DateTime<Utc>>,
}

/// Reports the volunteer's position.
#[utoipa::path(post, path = "/v1/volunteers/me/location", tag = TAG, request_body = LocationRequest, security(("bearer" = [])),
    responses(
        (status = 202, description = "Position taken"),
        (status = 403, description = "Not a volunteer", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Coordinates out of range (the field is named)", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn post_location(
    State(state): State<DispatchState>,
    user: CurrentUser,
    Json(body): Json<LocationRequest>,
) -> DispatchResult<StatusCode> {
    user.require(Role::Volunteer)?;
    let position = Position::parse(body.lat, body.lng, body.accuracy_m, "")
        .map_err(DispatchError::Validation)?;
    state
        .service
        .update_location(
            user.id.0,
            &user.name,
            position.at,
            position.accuracy_m,
            body.recorded_at,
        )
        .await?;
    Ok(StatusCode::ACCEPTED)
}

/// Volunteers with a known position inside `bbox` (coordinators).
#[utoipa::path(get, path = "/v1/volunteers", tag = TAG, params(ListQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "Volunteers, most recently updated first (at most 2000)", body = [Volunteer]),
        (status = 403, description = "Not a coordinator", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad bbox", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_volunteers(
    State(state): State<DispatchState>,
    user: CurrentUser,
    Query(query): Query<ListQuery>,
) -> DispatchResult<Json<Vec<Volunteer>>> {
    user.require(Role::Coordinator)?;
    let bbox = parse_bbox(query.bbox.as_deref())?;
    Ok(Json(state.service.list_volunteers(bbox).await?))
}

/// The volunteer's pending offers.
#[utoipa::path(get, path = "/v1/volunteers/me/offers", tag = TAG, security(("bearer" = [])),
    responses(
        (status = 200, description = "Pending offers, newest first", body = [Offer]),
        (status = 403, description = "Not a volunteer", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn my_offers(
    State(state): State<DispatchState>,
    user: CurrentUser,
) -> DispatchResult<Json<Vec<Offer>>> {
    user.require(Role::Volunteer)?;
    Ok(Json(state.service.pending_offers(user.id.0).await?))
}
