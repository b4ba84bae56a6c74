//! Regions (admins define them; coordinators and admins list them) and their coordinators.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use kreki_auth::{CurrentUser, Role};
use kreki_platform::Problem;
use kreki_platform::extract::{Json, Path};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{DispatchState, TAG, problem_to_error};
use crate::domain::RegionId;
use crate::domain::regions::TriagePolicy;
use crate::error::{DispatchError, DispatchResult};
use crate::views::Region;

/// Most coordinators one region lists.
pub const MAX_COORDINATORS: usize = 500;

/// Body of `POST /v1/regions`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRegionRequest {
    /// Its name (a kabupaten/kota, usually).
    pub name: String,
    /// A GeoJSON Polygon or MultiPolygon (or a Feature of one), degrees, WGS84.
    #[schema(value_type = Object)]
    pub area: serde_json::Value,
    /// Which trust levels' panics wait for a coordinator; default `{"default": ["new"]}`.
    pub triage: Option<TriagePolicy>,
}

/// Adds a region (admins). Alerts raised from now on inside it (or nearest to it) belong to it.
#[utoipa::path(post, path = "/v1/regions", tag = TAG, request_body = CreateRegionRequest, security(("bearer" = [])),
    responses(
        (status = 201, description = "The region", body = Region),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A region with this name exists (`region-name-taken`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad name, area (the position is named) or triage policy", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn create_region(
    State(state): State<DispatchState>,
    user: CurrentUser,
    body: Result<Json<CreateRegionRequest>, Problem>,
) -> DispatchResult<impl IntoResponse> {
    user.require(Role::Admin)?;
    let Json(body) = body.map_err(problem_to_error)?;
    let region = state
        .service
        .create_region(&body.name, &body.area, body.triage)
        .await?;
    Ok((StatusCode::CREATED, Json(region)))
}

/// Every region, by name (coordinators and admins).
#[utoipa::path(get, path = "/v1/regions", tag = TAG, security(("bearer" = [])),
    responses(
        (status = 200, description = "Regions", body = [Region]),
        (status = 403, description = "Not a coordinator", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_regions(
    State(state): State<DispatchState>,
    user: CurrentUser,
) -> DispatchResult<Json<Vec<Region>>> {
    user.require(Role::Coordinator)?;
    Ok(Json(state.service.regions().await?))
}

/// Body of `PUT /v1/regions/{id}/coordinators`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetCoordinatorsRequest {
    /// The region's coordinators (account ids), replacing those it had.
    pub user_ids: Vec<Uuid>,
}

/// Replaces a region's coordinators (admins). A coordinator assigned to a region sees and acts on
/// its alerts only; one assigned to none is national.
#[utoipa::path(put, path = "/v1/regions/{id}/coordinators", tag = TAG, request_body = SetCoordinatorsRequest, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Region id")),
    responses(
        (status = 200, description = "The region with its coordinators", body = Region),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such region", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a list of ids (`user_ids`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn set_coordinators(
    State(state): State<DispatchState>,
    user: CurrentUser,
    Path(id): Path<RegionId>,
    body: Result<Json<SetCoordinatorsRequest>, Problem>,
) -> DispatchResult<Json<Region>> {
    user.require(Role::Admin)?;
    let Json(body) = body.map_err(problem_to_error)?;
    if body.user_ids.len() > MAX_COORDINATORS {
        return Err(DispatchError::field(
            "user_ids",
            "must list at most 500 accounts",
        ));
    }
    Ok(Json(
        state
            .service
            .set_region_coordinators(id, &body.user_ids)
            .await?,
    ))
}
