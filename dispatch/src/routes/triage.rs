//! The coordinator's tools on an alert: release from triage, notes on the timeline, re-dispatch
//! to a wider radius, a hand-off to 112 / PSC 119, and alerts for emergencies phoned in to a
//! coordinator.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use kreki_auth::{CurrentUser, Role};
use kreki_platform::Problem;
use kreki_platform::extract::{Json, Path};
use serde::Deserialize;
use utoipa::ToSchema;

use super::alerts::{AlertLocation, idempotency_key};
use super::{DispatchState, TAG, problem_to_error};
use crate::domain::{AlertId, AlertKind, Position};
use crate::error::{DispatchError, DispatchResult};
use crate::service::{AlertRequest, Ingest};
use crate::views::{Alert, TimelineEvent};

/// Releases an alert waiting in triage to volunteers (a coordinator of its region): its first
/// wave goes out before the answer.
#[utoipa::path(post, path = "/v1/alerts/{id}/release", tag = TAG, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Alert id")),
    responses(
        (status = 200, description = "Released (triage -> dispatching)", body = Alert),
        (status = 403, description = "Not a coordinator of its region", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such alert", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not in triage (`not-in-triage`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn release(
    State(state): State<DispatchState>,
    user: CurrentUser,
    Path(id): Path<AlertId>,
) -> DispatchResult<Json<Alert>> {
    Ok(Json(state.service.release(&user, id).await?))
}

/// Body of `POST /v1/alerts/{id}/notes`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteRequest {
    /// The note (1 to 2000 characters).
    pub text: String,
}

/// Writes a note on the alert's timeline (a coordinator of its region).
#[utoipa::path(post, path = "/v1/alerts/{id}/notes", tag = TAG, request_body = NoteRequest, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Alert id")),
    responses(
        (status = 201, description = "The timeline entry", body = TimelineEvent),
        (status = 403, description = "Not a coordinator of its region", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such alert", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Empty or too long (`text`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn add_note(
    State(state): State<DispatchState>,
    user: CurrentUser,
    Path(id): Path<AlertId>,
    body: Result<Json<NoteRequest>, Problem>,
) -> DispatchResult<impl IntoResponse> {
    let Json(body) = body.map_err(problem_to_error)?;
    let event = state.service.add_note(&user, id, &body.text).await?;
    Ok((StatusCode::CREATED, Json(event)))
}

/// Body of `POST /v1/alerts/{id}/redispatch`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedispatchRequest {
    /// The new wave's radius, metres: wider than the alert's widest wave (at most 100000).
    pub radius_m: u32,
}

/// Sends an open alert out again to a wider radius (a coordinator of its region): one more wave
/// to volunteers never asked; an unmatched alert dispatches again.
#[utoipa::path(post, path = "/v1/alerts/{id}/redispatch", tag = TAG, request_body = RedispatchRequest, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Alert id")),
    responses(
        (status = 200, description = "Dispatching again; the wider wave went out", body = Alert),
        (status = 403, description = "Not a coordinator of its region", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such alert", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The alert is closed (or in triage: release it)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`radius_m` out of range or not wider than its waves", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn redispatch(
    State(state): State<DispatchState>,
    user: CurrentUser,
    Path(id): Path<AlertId>,
    body: Result<Json<RedispatchRequest>, Problem>,
) -> DispatchResult<Json<Alert>> {
    let Json(body) = body.map_err(problem_to_error)?;
    Ok(Json(
        state.service.redispatch(&user, id, body.radius_m).await?,
    ))
}

/// Body of `POST /v1/alerts/{id}/handoff`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HandoffRequest {
    /// The service that took it: `112`, `psc119` or `other`.
    pub to: String,
    /// The reference that service gave (1 to 100 characters).
    pub reference: String,
}

/// Records that the alert was handed to 112 or PSC 119 (a coordinator of its region), with the
/// reference they gave, on its timeline.
#[utoipa::path(post, path = "/v1/alerts/{id}/handoff", tag = TAG, request_body = HandoffRequest, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Alert id")),
    responses(
        (status = 201, description = "The timeline entry", body = TimelineEvent),
        (status = 403, description = "Not a coordinator of its region", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such alert", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad `to` or `reference`", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn hand_off(
    State(state): State<DispatchState>,
    user: CurrentUser,
    Path(id): Path<AlertId>,
    body: Result<Json<HandoffRequest>, Problem>,
) -> DispatchResult<impl IntoResponse> {
    let Json(body) = body.map_err(problem_to_error)?;
    let event = state
        .service
        .hand_off(&user, id, &body.to, &body.reference)
        .await?;
    Ok((StatusCode::CREATED, Json(event)))
}

/// Body of `POST /v1/coordinator/alerts`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PhonedInRequest {
    /// What happened.
    pub kind: AlertKind,
    /// Where (an address looked up on the map, or a map click).
    pub location: AlertLocation,
    /// What the caller said (at most 1000 characters).
    pub note: Option<String>,
    /// The caller's number, for a call-back (E.164 or a local 0812... number).
    pub caller_phone: Option<String>,
}

/// Raises an alert for an emergency phoned in to a coordinator: the same dispatch as a panic,
/// never triaged. Send a fresh `Idempotency-Key` per call and the same one on retries.
#[utoipa::path(post, path = "/v1/coordinator/alerts", tag = TAG, request_body = PhonedInRequest, security(("bearer" = [])),
    params(("Idempotency-Key" = String, Header, description = "Unique per call (a UUID); repeat it on retries")),
    responses(
        (status = 201, description = "Alert stored; dispatch started", body = Alert),
        (status = 200, description = "A retry (same key): that alert", body = Alert),
        (status = 400, description = "Missing Idempotency-Key or broken JSON", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a coordinator", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The key was used for another request", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown kind, coordinates out of range, a bad phone (the field is named)", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn phone_in(
    State(state): State<DispatchState>,
    user: CurrentUser,
    headers: HeaderMap,
    body: Result<Json<PhonedInRequest>, Problem>,
) -> DispatchResult<impl IntoResponse> {
    user.require(Role::Coordinator)?;
    let key = idempotency_key(&headers)?;
    let Json(body) = body.map_err(problem_to_error)?;
    let mut errors = Vec::new();
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
        errors.push(kreki_platform::FieldError::new(
            "note",
            "must be at most 1000 characters",
        ));
    }
    let caller_phone = match body.caller_phone.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => match normalise_phone(text) {
            Some(phone) => Some(phone),
            None => {
                errors.push(kreki_platform::FieldError::new(
                    "caller_phone",
                    "must be a phone number such as +6281234567890 or 081234567890",
                ));
                None
            }
        },
    };
    let position = match position {
        Ok(position) if errors.is_empty() => position,
        Ok(_) => return Err(DispatchError::Validation(errors)),
        Err(mut bad) => {
            bad.append(&mut errors);
            return Err(DispatchError::Validation(bad));
        }
    };
    let request = AlertRequest {
        kind: body.kind,
        at: position.at,
        accuracy_m: position.accuracy_m,
        note,
        patient_nik: None,
        drill: false,
    };
    let (alert, ingest) = state
        .service
        .phone_in(&user, &key, request, caller_phone)
        .await?;
    let status = if ingest == Ingest::Created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(alert)))
}

/// An Indonesian or international number as E.164 (`0812...` -> `+62812...`); `None` when it is
/// not one.
fn normalise_phone(text: &str) -> Option<String> {
    let digits: String = text
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.'))
        .collect();
    let e164 = if let Some(rest) = digits.strip_prefix('+') {
        format!("+{rest}")
    } else if let Some(rest) = digits.strip_prefix('0') {
        format!("+62{rest}")
    } else {
        return None;
    };
    let body = &e164[1..];
    (body.len() >= 8
        && body.len() <= 15
        && body.bytes().all(|b| b.is_ascii_digit())
        && !body.starts_with('0'))
    .then_some(e164)
}

#[cfg(test)]
mod tests {
    use super::normalise_phone;

    #[test]
    fn phones_are_normalised_to_e164() {
        assert_eq!(
            normalise_phone("0812-3456-7890").as_deref(),
            Some("+6281234567890")
        );
        assert_eq!(
            normalise_phone("+62 812 3456 7890").as_deref(),
            Some("+6281234567890")
        );
        assert_eq!(normalise_phone("12345"), None);
        assert_eq!(normalise_phone("+62abc45678"), None);
        assert_eq!(normalise_phone("+0812345678"), None);
    }
}
