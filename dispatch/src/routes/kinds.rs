//! Per-kind dispatch settings: coordinators read them, admins change them.

use axum::extract::State;
use kreki_auth::{CurrentUser, Role};
use kreki_platform::Problem;
use kreki_platform::extract::{Json, Path};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{DispatchState, TAG};
use crate::domain::{AlertKind, KindSettings};
use crate::error::{DispatchError, DispatchResult};

/// One kind's dispatch settings.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct KindEntry {
    /// The kind.
    pub kind: AlertKind,
    /// Its settings.
    #[serde(flatten)]
    pub settings: KindSettings,
}

/// Dispatch settings of every alert kind (coordinators and admins).
#[utoipa::path(get, path = "/v1/dispatch/kinds", tag = TAG, security(("bearer" = [])),
    responses(
        (status = 200, description = "Settings per kind", body = [KindEntry]),
        (status = 403, description = "Not a coordinator or admin", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_kinds(
    State(state): State<DispatchState>,
    user: CurrentUser,
) -> DispatchResult<Json<Vec<KindEntry>>> {
    user.require(Role::Coordinator)?;
    Ok(Json(
        state
            .service
            .kinds()
            .await?
            .into_iter()
            .map(|(kind, settings)| KindEntry { kind, settings })
            .collect(),
    ))
}

/// Replaces one kind's settings (admins); the next wave of every alert uses them.
#[utoipa::path(put, path = "/v1/dispatch/kinds/{kind}", tag = TAG, request_body = KindSettings, security(("bearer" = [])),
    params(("kind" = AlertKind, Path, description = "Alert kind")),
    responses(
        (status = 200, description = "Stored", body = KindEntry),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A value out of range (the field is named)", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn put_kind(
    State(state): State<DispatchState>,
    user: CurrentUser,
    Path(kind): Path<String>,
    Json(settings): Json<KindSettings>,
) -> DispatchResult<Json<KindEntry>> {
    user.require(Role::Admin)?;
    let kind = AlertKind::parse(&kind).ok_or_else(|| {
        DispatchError::field(
            "kind",
            "must be medical, cardiac_arrest, accident, fire, disaster, security or other",
        )
    })?;
    state.service.put_kind(kind, &settings).await?;
    Ok(Json(KindEntry { kind, settings }))
}
