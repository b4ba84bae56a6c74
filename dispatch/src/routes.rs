//! Dispatch's HTTP endpoints (API.md "Volunteers and alerts", plus the admin kind settings).
//! Handlers check the role, parse and validate, call [`DispatchService`], and shape the answer;
//! every error goes through [`DispatchError`].

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRef, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use kreki_auth::{CurrentUser, Role, TokenVerifier};
use kreki_platform::extract::{Json, Path, Query};
use kreki_platform::{FieldError, Problem};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::domain::{
    AlertKind, AlertStatus, AssignmentStatus, IdempotencyKey, KindSettings, parse_accuracy,
};
use crate::error::{DispatchError, DispatchResult};
use crate::geo::LatLng;
use crate::service::{AlertRequest, DispatchService, Ingest};
use crate::views::{Alert, Assignment, Offer, TimelineEvent, Volunteer};

/// State of the dispatch routes.
#[derive(Clone)]
pub struct DispatchState {
    /// The service.
    pub service: Arc<DispatchService>,
    /// Verifies access tokens.
    pub verifier: TokenVerifier,
}

impl FromRef<DispatchState> for TokenVerifier {
    fn from_ref(state: &DispatchState) -> Self {
        state.verifier.clone()
    }
}

/// The routes, with their OpenAPI description, ready to merge into the app.
pub fn router(state: DispatchState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(set_duty))
        .routes(routes!(post_location))
        .routes(routes!(list_volunteers))
        .routes(routes!(my_offers))
        .routes(routes!(create_alert, list_alerts))
        .routes(routes!(get_alert))
        .routes(routes!(timeline))
        .routes(routes!(cancel))
        .routes(routes!(assign))
        .routes(routes!(accept))
        .routes(routes!(decline))
        .routes(routes!(assignment_status))
        .routes(routes!(list_kinds))
        .routes(routes!(put_kind))
        .with_state(state)
}

const TAG: &str = "dispatch";

// ------------------------------------------------------------ volunteers

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
        (status = 403, description = "Not a volunteer", body = Problem, content_type = "application/problem+json"),
    ))]
async fn set_duty(
    State(state): State<DispatchState>,
    user: CurrentUser,
    Json(body): Json<DutyRequest>,
) -> DispatchResult<Json<DutyResponse>> {
    user.require(Role::Volunteer)?;
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
async fn post_location(
    State(state): State<DispatchState>,
    user: CurrentUser,
    Json(body): Json<LocationRequest>,
) -> DispatchResult<StatusCode> {
    user.require(Role::Volunteer)?;
    let (at, accuracy_m) = parse_position(body.lat, body.lng, body.accuracy_m, "")?;
    state
        .service
        .update_location(user.id.0, &user.name, at, accuracy_m, body.recorded_at)
        .await?;
    Ok(StatusCode::ACCEPTED)
}

/// Checks a position and its accuracy, naming fields under `prefix`.
///
/// # Errors
/// 422 naming each bad field.
pub fn parse_position(
    lat: f64,
    lng: f64,
    accuracy_m: Option<f64>,
    prefix: &str,
) -> DispatchResult<(LatLng, Option<f32>)> {
    let mut errors = Vec::new();
    let at = crate::domain::parse_position(lat, lng, prefix)
        .map_err(|mut bad| errors.append(&mut bad))
        .ok();
    let accuracy = parse_accuracy(accuracy_m, &format!("{prefix}accuracy_m"))
        .map_err(|bad| errors.push(bad))
        .ok()
        .flatten();
    match at {
        Some(at) if errors.is_empty() => Ok((at, accuracy)),
        _ => Err(DispatchError::Validation(errors)),
    }
}

/// Query of the coordinators' lists.
#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// `minLng,minLat,maxLng,maxLat` in degrees.
    pub bbox: Option<String>,
    /// Only alerts with this status.
    pub status: Option<String>,
}

fn parse_bbox(text: Option<&str>) -> DispatchResult<Option<[f64; 4]>> {
    let Some(text) = text.filter(|text| !text.trim().is_empty()) else {
        return Ok(None);
    };
    let bad = || DispatchError::field("bbox", "must be minLng,minLat,maxLng,maxLat in degrees");
    let values: Vec<f64> = text
        .split(',')
        .map(|part| part.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    let [min_lng, min_lat, max_lng, max_lat] = values[..] else {
        return Err(bad());
    };
    let ok = [min_lng, min_lat, max_lng, max_lat]
        .iter()
        .all(|v| v.is_finite())
        && (-180.0..=180.0).contains(&min_lng)
        && (-180.0..=180.0).contains(&max_lng)
        && (-90.0..=90.0).contains(&min_lat)
        && (-90.0..=90.0).contains(&max_lat)
        && min_lng <= max_lng
        && min_lat <= max_lat;
    if ok {
        Ok(Some([min_lng, min_lat, max_lng, max_lat]))
    } else {
        Err(bad())
    }
}

/// Volunteers with a known position inside `bbox` (coordinators).
#[utoipa::path(get, path = "/v1/volunteers", tag = TAG, params(ListQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "Volunteers, most recently updated first (at most 2000)", body = [Volunteer]),
        (status = 403, description = "Not a coordinator", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad bbox", body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_volunteers(
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
async fn my_offers(
    State(state): State<DispatchState>,
    user: CurrentUser,
) -> DispatchResult<Json<Vec<Offer>>> {
    user.require(Role::Volunteer)?;
    Ok(Json(state.service.pending_offers(user.id.0).await?))
}

// ------------------------------------------------------------ alerts

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
#[derive(Debug, Deserialize, ToSchema)]
pub struct Patient {
    /// NIK, 16 digits.
    pub nik: Option<String>,
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
    let position = parse_position(
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
    let nik = body.patient.and_then(|patient| patient.nik);
    if nik
        .as_ref()
        .is_some_and(|nik| nik.len() != 16 || !nik.bytes().all(|b| b.is_ascii_digit()))
    {
        errors.push(FieldError::new("patient.nik", "must be 16 digits"));
    }
    match position {
        Ok((at, accuracy_m)) if errors.is_empty() => Ok(AlertRequest {
            kind: body.kind,
            at,
            accuracy_m,
            note,
            patient_nik: nik,
            drill: body.drill,
        }),
        Ok(_) => Err(DispatchError::Validation(errors)),
        Err(DispatchError::Validation(mut bad)) => {
            bad.append(&mut errors);
            Err(DispatchError::Validation(bad))
        }
        Err(other) => Err(other),
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
        (status = 409, description = "The key was used for another request", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown kind, coordinates out of range (the field is named)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable; retry with the same key", body = Problem, content_type = "application/problem+json"),
    ))]
async fn create_alert(
    State(state): State<DispatchState>,
    user: CurrentUser,
    headers: HeaderMap,
    body: Result<Json<CreateAlertRequest>, Problem>,
) -> DispatchResult<impl IntoResponse> {
    user.require(Role::Citizen)?;
    let key = match headers.get(IdempotencyKey::HEADER) {
        None => return Err(DispatchError::MissingIdempotencyKey),
        Some(value) => value
            .to_str()
            .map_err(|_| "must be visible ASCII characters")
            .and_then(IdempotencyKey::parse)
            .map_err(|why| DispatchError::field(IdempotencyKey::HEADER, why))?,
    };
    let Json(body) = body.map_err(problem_to_error)?;
    let request = validate_alert(body)?;
    let (alert, ingest) = state.service.create_alert(&user, &key, request).await?;
    let status = if ingest == Ingest::Created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(alert)))
}

/// Keeps a body rejection as the problem it is (400, 413, 415, 422).
fn problem_to_error(problem: Problem) -> DispatchError {
    if problem.status == 422 {
        DispatchError::Validation(problem.errors)
    } else {
        DispatchError::Rejected(problem)
    }
}

/// Alerts for the coordinators' map, newest first (at most 500).
#[utoipa::path(get, path = "/v1/alerts", tag = TAG, params(ListQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "Alerts", body = [Alert]),
        (status = 403, description = "Not a coordinator", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad status or bbox", body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_alerts(
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
                "must be dispatching, assigned, on_scene, resolved, cancelled or unmatched",
            )
        })?),
    };
    let bbox = parse_bbox(query.bbox.as_deref())?;
    Ok(Json(state.service.list_alerts(status, bbox).await?))
}

/// One alert (its citizen, volunteers offered or assigned it, coordinators).
#[utoipa::path(get, path = "/v1/alerts/{id}", tag = TAG, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Alert id")),
    responses(
        (status = 200, description = "The alert", body = Alert),
        (status = 403, description = "Not yours", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such alert", body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_alert(
    State(state): State<DispatchState>,
    user: CurrentUser,
    Path(id): Path<Uuid>,
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
async fn timeline(
    State(state): State<DispatchState>,
    user: CurrentUser,
    Path(id): Path<Uuid>,
) -> DispatchResult<Json<Vec<TimelineEvent>>> {
    Ok(Json(state.service.timeline(&user, id).await?))
}

/// Body of cancel and decline.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ReasonRequest {
    /// Why (free text, at most 500 characters).
    pub reason: Option<String>,
}

/// The optional `{reason?}` body: empty is fine, otherwise it must be that JSON.
fn reason_of(body: &[u8]) -> DispatchResult<Option<String>> {
    let body: Option<ReasonRequest> = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        Some(kreki_platform::extract::parse_json(body).map_err(problem_to_error)?)
    };
    let reason = body
        .and_then(|body| body.reason)
        .map(|reason| reason.trim().to_owned())
        .filter(|reason| !reason.is_empty());
    if reason.as_ref().is_some_and(|r| r.chars().count() > 500) {
        return Err(DispatchError::field(
            "reason",
            "must be at most 500 characters",
        ));
    }
    Ok(reason)
}

/// Cancels an alert (its citizen or a coordinator).
#[utoipa::path(post, path = "/v1/alerts/{id}/cancel", tag = TAG, request_body = ReasonRequest, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Alert id")),
    responses(
        (status = 200, description = "Cancelled", body = Alert),
        (status = 403, description = "Not yours", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already cancelled or resolved", body = Problem, content_type = "application/problem+json"),
    ))]
async fn cancel(
    State(state): State<DispatchState>,
    user: CurrentUser,
    Path(id): Path<Uuid>,
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
async fn assign(
    State(state): State<DispatchState>,
    user: CurrentUser,
    Path(id): Path<Uuid>,
    Json(body): Json<AssignRequest>,
) -> DispatchResult<Json<Alert>> {
    user.require(Role::Coordinator)?;
    Ok(Json(
        state.service.assign(&user, id, body.volunteer_id).await?,
    ))
}

// ------------------------------------------------------------ offers and assignments

/// Accepts an offer.
#[utoipa::path(post, path = "/v1/offers/{id}/accept", tag = TAG, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Offer id")),
    responses(
        (status = 200, description = "You are assigned", body = Assignment),
        (status = 403, description = "Not your offer", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such offer", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`alert-covered`, `alert-cancelled`, `offer-expired`, `volunteer-busy`, ... (in `type`)", body = Problem, content_type = "application/problem+json"),
    ))]
async fn accept(
    State(state): State<DispatchState>,
    user: CurrentUser,
    Path(id): Path<Uuid>,
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
async fn decline(
    State(state): State<DispatchState>,
    user: CurrentUser,
    Path(id): Path<Uuid>,
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
async fn assignment_status(
    State(state): State<DispatchState>,
    user: CurrentUser,
    Path(id): Path<Uuid>,
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

// ------------------------------------------------------------ kind settings

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
async fn list_kinds(
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
async fn put_kind(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bbox_is_checked() {
        assert_eq!(
            parse_bbox(Some("106.7,-6.3,106.9,-6.1")).expect("valid"),
            Some([106.7, -6.3, 106.9, -6.1])
        );
        assert_eq!(parse_bbox(None).expect("absent"), None);
        for bad in ["1,2,3", "a,b,c,d", "10,0,5,1", "0,-91,1,0"] {
            let Err(DispatchError::Validation(errors)) = parse_bbox(Some(bad)) else {
                panic!("{bad} should be refused");
            };
            assert_eq!(errors[0].field, "bbox");
        }
    }
}
