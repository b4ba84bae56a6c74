//! Panic, reading and listing alerts, timelines, cancelling, and a coordinator's direct
//! assignment.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use kreki_auth::{CurrentUser, Role};
use kreki_platform::extract::{Json, Path, PeerAddr, Query};
use kreki_platform::pii::Nik;
use kreki_platform::{FieldError, Problem};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    DispatchState, ListQuery, ReasonRequest, TAG, parse_bbox, problem_to_error, reason_of,
};
use crate::domain::{AlertId, AlertKind, AlertStatus, IdempotencyKey, Position};
use crate::error::{DispatchError, DispatchResult};
use crate::service::alerts::Origin;
use crate::service::{AlertRequest, Ingest};
use crate::views::{Alert, TimelineEvent};

/// Where the citizen is.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AlertLocation {
    /// Latitude, degrees (-90 to 90).
    pub lat: f64,
    /// Longitude, degrees (-180 to 180).
    pub lng: f64,
    /// Accuracy radius, metres.
    pub accuracy_m: Option<f64>,
}

/// Who needs help, when it is not the citizen.
#[derive(Deserialize, ToSchema)]
pub struct Patient {
    /// NIK, 16 digits (spaces, dots and dashes between groups are ignored). Stored encrypted, never
    /// answered back except masked.
    // Any JSON is taken here and checked by `Nik::from_json`, so a wrong type (a NIK sent as a
    // number) is never quoted back in the problem.
    #[schema(value_type = Option<String>)]
    pub nik: Option<serde_json::Value>,
}

/// The NIK never reaches a log through a debug print of the body.
impl std::fmt::Debug for Patient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Patient")
            .field("nik", &self.nik.as_ref().map(|_| "[REDACTED]"))
            .finish()
    }
}

/// Body of `POST /v1/alerts`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateAlertRequest {
    /// What happened.
    pub kind: AlertKind,
    /// Where.
    pub location: AlertLocation,
    /// Anything responders should know (at most 1000 characters).
    pub note: Option<String>,
    /// The patient.
    pub patient: Option<Patient>,
    /// `true` for a drill (practice, not a real emergency); default `false`.
    #[serde(default)]
    pub drill: bool,
}

fn validate_alert(body: CreateAlertRequest) -> DispatchResult<AlertRequest> {
    let mut errors: Vec<FieldError> = Vec::new();
    let position = Position::parse(
        body.location.lat,
        body.location.lng,
        body.location.accuracy_m,
        "location.",
    );
    let note = body
        .note
        .map(|note| note.trim().to_owned())
        .filter(|note| !note.is_empty());
    if note
        .as_ref()
        .is_some_and(|note| note.chars().count() > 1000)
    {
        errors.push(FieldError::new("note", "must be at most 1000 characters"));
    }
    let nik = match body.patient.and_then(|patient| patient.nik) {
        None => None,
        Some(raw) => Nik::from_json(&raw)
            .map_err(|rule| errors.push(FieldError::new("patient.nik", rule)))
            .ok(),
    };
    match position {
        Ok(position) if errors.is_empty() => Ok(AlertRequest {
            kind: body.kind,
            at: position.at,
            accuracy_m: position.accuracy_m,
            note,
            patient_nik: nik,
            drill: body.drill,
        }),
        Ok(_) => Err(DispatchError::Validation(errors)),
        Err(mut bad) => {
            bad.append(&mut errors);
            Err(DispatchError::Validation(bad))
        }
    }
}

/// The `Idempotency-Key` header, checked.
pub(crate) fn idempotency_key(headers: &HeaderMap) -> DispatchResult<IdempotencyKey> {
    match headers.get(IdempotencyKey::HEADER) {
        None => Err(DispatchError::MissingIdempotencyKey),
        Some(value) => value
            .to_str()
            .map_err(|_| "must be visible ASCII characters")
            .and_then(IdempotencyKey::parse)
            .map_err(|why| DispatchError::field(IdempotencyKey::HEADER, why)),
    }
}

/// Presses panic. Send a fresh `Idempotency-Key` per press and the same one on every retry: the
/// alert is committed before the answer, and a retry never makes a second alert.
#[utoipa::path(post, path = "/v1/alerts", tag = TAG, request_body = CreateAlertRequest, security(("bearer" = [])),
    params(("Idempotency-Key" = String, Header, description = "Unique per press (a UUID); repeat it on retries")),
    responses(
        (status = 201, description = "Alert stored; dispatch started", body = Alert),
        (status = 200, description = "A retry (same key) or a second press near the citizen's open alert: that alert", body = Alert),
        (status = 400, description = "Missing Idempotency-Key or broken JSON", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The account is blocked", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The key was used for another request", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown kind, coordinates out of range (the field is named)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many alerts from this account: retry after `Retry-After` seconds (coordinators are told)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable; retry with the same key", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn create_alert(
    State(state): State<DispatchState>,
    user: CurrentUser,
    PeerAddr(peer): PeerAddr,
    headers: HeaderMap,
    body: Result<Json<CreateAlertRequest>, Problem>,
) -> DispatchResult<impl IntoResponse> {
    user.require(Role::Citizen)?;
    let key = idempotency_key(&headers)?;
    let Json(body) = body.map_err(problem_to_error)?;
    let request = validate_alert(body)?;
    let origin = Origin {
        address: peer.map(|addr| addr.ip()),
        ..Origin::default()
    };
    let (alert, ingest) = state.service.raise(&user, &key, request, origin).await?;
    let status = if ingest == Ingest::Created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(alert)))
}

/// Alerts for the coordinators' map, newest first (at most 500): a regional coordinator's
/// regions' alerts, a national coordinator's (assigned to no region) every one.
#[utoipa::path(get, path = "/v1/alerts", tag = TAG, params(ListQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "Alerts", body = [Alert]),
        (status = 403, description = "Not a coordinator", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad status or bbox", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_alerts(
    State(state): State<DispatchState>,
    user: CurrentUser,
    Query(query): Query<ListQuery>,
) -> DispatchResult<Json<Vec<Alert>>> {
    user.require(Role::Coordinator)?;
    let status = match query.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(text) => Some(AlertStatus::parse(text).ok_or_else(|| {
            DispatchError::field(
                "status",
                "must be triage, dispatching, assigned, on_scene, resolved, cancelled or unmatched",
            )
        })?),
    };
    let bbox = parse_bbox(query.bbox.as_deref())?;
    let scope = state.service.scope_of(&user);
    Ok(Json(state.service.list_alerts(&scope, status, bbox).await?))
}

/// One alert (its citizen, volunteers offered or assigned it, coordinators).
#[utoipa::path(get, path = "/v1/alerts/{id}", tag = TAG, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Alert id")),
    responses(
        (status = 200, description = "The alert", body = Alert),
        (status = 403, description = "Not yours", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such alert", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get_alert(
    State(state): State<DispatchState>,
    user: CurrentUser,
    Path(id): Path<AlertId>,
) -> DispatchResult<Json<Alert>> {
    Ok(Json(state.service.check_can_see(&user, id).await?))
}

/// The alert's timeline, oldest first.
#[utoipa::path(get, path = "/v1/alerts/{id}/timeline", tag = TAG, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Alert id")),
    responses(
        (status = 200, description = "Events", body = [TimelineEvent]),
        (status = 403, description = "Not yours", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such alert", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn timeline(
    State(state): State<DispatchState>,
    user: CurrentUser,
    Path(id): Path<AlertId>,
) -> DispatchResult<Json<Vec<TimelineEvent>>> {
    Ok(Json(state.service.timeline(&user, id).await?))
}

/// Cancels an alert (its citizen or a coordinator).
#[utoipa::path(post, path = "/v1/alerts/{id}/cancel", tag = TAG, request_body = ReasonRequest, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Alert id")),
    responses(
        (status = 200, description = "Cancelled", body = Alert),
        (status = 403, description = "Not yours", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already cancelled or resolved", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn cancel(
    State(state): State<DispatchState>,
    user: CurrentUser,
    Path(id): Path<AlertId>,
    body: Bytes,
) -> DispatchResult<Json<Alert>> {
    let reason = reason_of(&body)?;
    Ok(Json(state.service.cancel(&user, id, reason).await?))
}

/// Body of `POST /v1/alerts/{id}/assign`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AssignRequest {
    /// The on-duty volunteer to send.
    pub volunteer_id: Uuid,
}

/// A coordinator sends a volunteer directly.
#[utoipa::path(post, path = "/v1/alerts/{id}/assign", tag = TAG, request_body = AssignRequest, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Alert id")),
    responses(
        (status = 200, description = "Assigned", body = Alert),
        (status = 403, description = "Not a coordinator", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Alert closed or covered, volunteer off duty or busy", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn assign(
    State(state): State<DispatchState>,
    user: CurrentUser,
    Path(id): Path<AlertId>,
    Json(body): Json<AssignRequest>,
) -> DispatchResult<Json<Alert>> {
    user.require(Role::Coordinator)?;
    Ok(Json(
        state.service.assign(&user, id, body.volunteer_id).await?,
    ))
}
