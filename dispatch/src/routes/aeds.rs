//! The AED registry: admins add devices, custodians and admins change them, anyone signed in lists
//! the ones near a point.

use axum::extract::State;
use axum::http::StatusCode;
use kreki_auth::{CurrentUser, Role};
use kreki_platform::Problem;
use kreki_platform::extract::{Json, Path, Query};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{DispatchState, TAG, problem_to_error};
use crate::domain::AedId;
use crate::domain::aeds::{AedChange, HoursWindow, NewAed};
use crate::domain::parse_position;
use crate::error::{DispatchError, DispatchResult};
use crate::views::Aed;

/// Radius of `GET /v1/aeds` when none is given, metres.
pub const DEFAULT_RADIUS_M: u32 = 1000;

/// Largest radius of `GET /v1/aeds`, metres.
pub const MAX_RADIUS_M: u32 = 10_000;

/// Body of `POST /v1/aeds`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAedRequest {
    /// Latitude, degrees, inside Indonesia.
    pub lat: f64,
    /// Longitude, degrees, inside Indonesia.
    pub lng: f64,
    /// The exact place (1 to 500 characters), e.g. "Lobi utama, samping lift".
    pub description: String,
    /// Weekly windows when it can be reached, Asia/Jakarta (`day` 0 = Sunday; `close` after
    /// `open`, up to `"24:00"`; windows of one day never overlap). None: never available.
    pub hours: Vec<HoursWindow>,
    /// Accounts that look after it and may change it (at most 20).
    #[serde(default)]
    pub custodian_ids: Vec<Uuid>,
}

/// Adds an AED (admins). It starts unverified: an admin verifies it with `PATCH`.
#[utoipa::path(post, path = "/v1/aeds", tag = TAG, request_body = CreateAedRequest, security(("bearer" = [])),
    responses(
        (status = 201, description = "Added", body = Aed),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad field, named: a position outside Indonesia, hours that overlap or end before they start (`hours[1].close`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn create_aed(
    State(state): State<DispatchState>,
    user: CurrentUser,
    body: Result<Json<CreateAedRequest>, Problem>,
) -> DispatchResult<(StatusCode, Json<Aed>)> {
    user.require(Role::Admin)?;
    let Json(body) = body.map_err(problem_to_error)?;
    let aed = NewAed::parse(
        body.lat,
        body.lng,
        &body.description,
        &body.hours,
        &body.custodian_ids,
    )
    .map_err(DispatchError::Validation)?;
    Ok((
        StatusCode::CREATED,
        Json(state.service.create_aed(&user, &aed).await?),
    ))
}

/// Query of `GET /v1/aeds`.
#[derive(Debug, Deserialize, IntoParams)]
pub struct NearQuery {
    /// `lat,lng` in degrees (required).
    pub near: Option<String>,
    /// Metres around `near` (1 to 10000; default 1000).
    pub radius_m: Option<String>,
}

/// AEDs near a point, nearest first (at most 200), each saying whether it is available now.
/// Admins see every device; anyone else the verified ones and those they look after.
#[utoipa::path(get, path = "/v1/aeds", tag = TAG, params(NearQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "AEDs, nearest first", body = [Aed]),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`near` missing or bad, `radius_m` out of range", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_aeds(
    State(state): State<DispatchState>,
    user: CurrentUser,
    Query(query): Query<NearQuery>,
) -> DispatchResult<Json<Vec<Aed>>> {
    let near = query
        .near
        .as_deref()
        .filter(|text| !text.trim().is_empty())
        .ok_or_else(|| DispatchError::field("near", "is required: lat,lng in degrees"))?;
    let bad_near = || DispatchError::field("near", "must be lat,lng in degrees");
    let (lat, lng) = near.split_once(',').ok_or_else(bad_near)?;
    let lat: f64 = lat.trim().parse().map_err(|_| bad_near())?;
    let lng: f64 = lng.trim().parse().map_err(|_| bad_near())?;
    let at = parse_position(lat, lng, "").map_err(|_| bad_near())?;
    let radius_m = match query.radius_m.as_deref().filter(|text| !text.is_empty()) {
        None => DEFAULT_RADIUS_M,
        Some(text) => text
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|radius| (1..=MAX_RADIUS_M).contains(radius))
            .ok_or_else(|| {
                DispatchError::field(
                    "radius_m",
                    format!("must be a whole number of metres from 1 to {MAX_RADIUS_M}"),
                )
            })?,
    };
    Ok(Json(state.service.aeds_near(&user, at, radius_m).await?))
}

/// Body of `PATCH /v1/aeds/{id}`: only the fields given change.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeAedRequest {
    /// New latitude (with `lng`), inside Indonesia. Moving a device clears its verification.
    pub lat: Option<f64>,
    /// New longitude (with `lat`), inside Indonesia.
    pub lng: Option<f64>,
    /// New description of the place (clears the verification).
    pub description: Option<String>,
    /// New weekly hours, replacing all windows.
    pub hours: Option<Vec<HoursWindow>>,
    /// New custodians, replacing the list.
    pub custodian_ids: Option<Vec<Uuid>>,
    /// Verified (admins only; records who and when) or not.
    pub verified: Option<bool>,
    /// Out of service, or back in service.
    pub out_of_service: Option<bool>,
}

/// Changes an AED (its custodians and admins; only admins set `verified`).
#[utoipa::path(patch, path = "/v1/aeds/{id}", tag = TAG, request_body = ChangeAedRequest, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "AED id")),
    responses(
        (status = 200, description = "Changed", body = Aed),
        (status = 403, description = "Neither its custodian nor an admin, or a custodian setting `verified`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such AED", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad field, named", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn change_aed(
    State(state): State<DispatchState>,
    user: CurrentUser,
    Path(id): Path<AedId>,
    body: Result<Json<ChangeAedRequest>, Problem>,
) -> DispatchResult<Json<Aed>> {
    let Json(body) = body.map_err(problem_to_error)?;
    let mut change = AedChange::parse(
        body.lat,
        body.lng,
        body.description.as_deref(),
        body.hours.as_deref(),
        body.custodian_ids.as_deref(),
    )
    .map_err(DispatchError::Validation)?;
    change.verified = body.verified;
    change.out_of_service = body.out_of_service;
    Ok(Json(state.service.change_aed(&user, id, change).await?))
}
