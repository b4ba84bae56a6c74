//! The bridge's KREKI endpoints: practitioner verification for volunteers and the list of Encounter
//! sync failures for coordinators. Handlers parse, call [`crate::verify`] or [`crate::store`], shape.

use chrono::{DateTime, Utc};
use kreki_auth::{CurrentUser, Role};
use kreki_platform::Problem;
use kreki_platform::extract::{Json, Path, Query};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::domain::Nik;
use crate::error::{BridgeError, BridgeResult};
use crate::state::BridgeState;
use crate::verify::{self, Verification};

/// The `/v1` routes of the bridge, with their OpenAPI description.
pub fn router(state: BridgeState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(practitioner_verification, verification_standing))
        .routes(routes!(sync_failures))
        .routes(routes!(retry_sync_failure))
        .with_state(state)
}

/// Shortest time between two verifications of one volunteer, in seconds.
pub const VERIFICATION_COOLDOWN_S: f64 = 10.0;

/// Body of `POST /v1/volunteers/me/practitioner-verification`.
#[derive(Deserialize, ToSchema)]
pub struct VerificationRequest {
    /// The volunteer's NIK: 16 digits (spaces, dots and dashes between groups are ignored).
    #[schema(example = "3171012345678901", value_type = String)]
    pub nik: serde_json::Value,
}

/// The NIK never reaches a log through a debug print of the body.
impl std::fmt::Debug for VerificationRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerificationRequest")
            .field("nik", &"[REDACTED]")
            .finish()
    }
}

/// Checks the signed-in volunteer against SATUSEHAT's health-worker registry by NIK. `verified`
/// volunteers count for alert kinds that require a health worker.
#[utoipa::path(post, path = "/v1/volunteers/me/practitioner-verification", tag = "volunteers",
    request_body = VerificationRequest, security(("bearer" = [])),
    responses(
        (status = 200, description = "`verified` (with the IHS number), `not_found`, `ambiguous`, or `unavailable` (SATUSEHAT could not be asked; KREKI retries in the background)", body = Verification),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a volunteer", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Another account is already verified with this NIK", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`nik` is not 16 digits", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Asked again within 10 s; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ))]
async fn practitioner_verification(
    state: axum::extract::State<BridgeState>,
    user: CurrentUser,
    Json(body): Json<VerificationRequest>,
) -> BridgeResult<Json<Verification>> {
    user.require(Role::Volunteer)?;
    // Any JSON is taken, so a wrong type is never quoted back (it may be a whole NIK as a number).
    let nik = Nik::from_json(&body.nik).map_err(|why| BridgeError::field("nik", why))?;
    // One NIK, one health worker: found through the keyed hash, never the digits.
    if crate::store::verified_practitioner_by_nik(
        &state.pool,
        &state.pii.lookup_hashes(&nik),
        user.id.0,
    )
    .await?
    .is_some()
    {
        return Err(BridgeError::NikTaken);
    }
    // Every request is a search at SATUSEHAT on the organization's one credential: a volunteer
    // hammering this endpoint must not get the whole organization rate-limited.
    if let Some(elapsed_s) = crate::store::seconds_since_check(&state.pool, user.id.0).await?
        && elapsed_s < VERIFICATION_COOLDOWN_S
    {
        return Err(BridgeError::TooSoon {
            retry_after_s: (VERIFICATION_COOLDOWN_S - elapsed_s).ceil().max(1.0) as u64,
        });
    }
    Ok(Json(verify::verify(&state, user.id.0, &nik).await?))
}

/// Where the caller's practitioner verification stands (what the volunteer app shows while
/// SATUSEHAT is retried in the background).
#[derive(Debug, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct VerificationStanding {
    /// `verified`, `not_found`, `ambiguous` or `unavailable`.
    pub status: String,
    /// The IHS number, when verified.
    pub ihs_number: Option<String>,
    /// Lookups made so far.
    pub attempts: i32,
    /// While `unavailable`: when KREKI asks SATUSEHAT again (UTC); none when it gave up.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When it was last asked or answered (UTC).
    pub checked_at: DateTime<Utc>,
}

/// The signed-in volunteer's verification, as it stands (never the NIK); 404 before they asked.
#[utoipa::path(get, path = "/v1/volunteers/me/practitioner-verification", tag = "volunteers",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The standing", body = VerificationStanding),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Never asked", body = Problem, content_type = "application/problem+json"),
    ))]
async fn verification_standing(
    state: axum::extract::State<BridgeState>,
    user: CurrentUser,
) -> BridgeResult<Json<VerificationStanding>> {
    let standing: Option<VerificationStanding> = sqlx::query_as(
        "SELECT status, ihs_number, attempts, next_attempt_at, checked_at
         FROM bridge.practitioners WHERE user_id = $1",
    )
    .bind(user.id.0)
    .fetch_optional(&state.pool)
    .await?;
    standing
        .map(Json)
        .ok_or(BridgeError::NotFound("practitioner verification"))
}

/// Query of `GET /v1/fhir-sync/failures`.
#[derive(Debug, Deserialize, IntoParams)]
pub struct FailuresQuery {
    /// Most failures to list, newest first (1 to 500, default 100).
    pub limit: Option<i64>,
}

/// An Encounter change that SATUSEHAT never accepted.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SyncFailure {
    /// Id of the failed change (for `POST /v1/fhir-sync/failures/{id}/retry`).
    pub id: i64,
    /// The alert.
    pub alert_id: Uuid,
    /// `create` or `update`.
    pub action: String,
    /// Attempts made.
    pub attempts: i32,
    /// The last error.
    pub last_error: Option<String>,
    /// When KREKI gave up (UTC).
    pub failed_at: DateTime<Utc>,
}

/// Encounter changes that exhausted their retries (coordinators), newest first.
#[utoipa::path(get, path = "/v1/fhir-sync/failures", tag = "fhir", params(FailuresQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "The failures", body = Vec<SyncFailure>),
        (status = 403, description = "Not a coordinator", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`limit` out of range", body = Problem, content_type = "application/problem+json"),
    ))]
async fn sync_failures(
    state: axum::extract::State<BridgeState>,
    user: CurrentUser,
    Query(query): Query<FailuresQuery>,
) -> BridgeResult<Json<Vec<SyncFailure>>> {
    user.require(Role::Coordinator)?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(BridgeError::field("limit", "must be 1 to 500"));
    }
    let rows = crate::store::failures(&state.pool, limit).await?;
    Ok(Json(
        rows.into_iter()
            .map(|row| SyncFailure {
                id: row.id,
                alert_id: row.alert_id,
                action: row.action,
                attempts: row.attempts,
                last_error: row.last_error,
                failed_at: row.failed_at,
            })
            .collect(),
    ))
}

/// A failed change queued again.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RetriedChange {
    /// Id of the change.
    pub id: i64,
    /// The alert.
    pub alert_id: Uuid,
    /// `create` or `update`.
    pub action: String,
}

/// Queues a failed Encounter change again with fresh attempts (coordinators), for example once
/// SATUSEHAT credentials or the practitioner's registration were fixed.
#[utoipa::path(post, path = "/v1/fhir-sync/failures/{id}/retry", tag = "fhir", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Id of the failed change")),
    responses(
        (status = 202, description = "Queued again", body = RetriedChange),
        (status = 403, description = "Not a coordinator", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No failed change with this id", body = Problem, content_type = "application/problem+json"),
    ))]
async fn retry_sync_failure(
    state: axum::extract::State<BridgeState>,
    user: CurrentUser,
    Path(id): Path<i64>,
) -> BridgeResult<(http::StatusCode, Json<RetriedChange>)> {
    user.require(Role::Coordinator)?;
    let row = crate::store::retry_failed(&state.pool, id)
        .await?
        .ok_or(BridgeError::NotFound("failed change"))?;
    tracing::info!(coordinator = %user.id, change = id, alert_id = %row.alert_id, "failed Encounter change queued again");
    Ok((
        http::StatusCode::ACCEPTED,
        Json(RetriedChange {
            id: row.id,
            alert_id: row.alert_id,
            action: row.action,
        }),
    ))
}
