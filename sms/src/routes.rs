//! The provider's webhooks: `POST /v1/sms/inbound` (a text to our number) and `POST
//! /v1/sms/status` (a delivery status). Both are form posts signed with `X-Twilio-Signature`; an
//! unsigned or wrongly signed request is 403 and changes nothing.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};
use secrecy::ExposeSecret;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::E164;
use crate::error::SmsError;
use crate::service::{Inbound, SmsService};
use crate::signature::{SIGNATURE_HEADER, form_fields, verify};

/// State of the SMS routes.
#[derive(Clone)]
pub struct SmsState {
    /// The service.
    pub service: Arc<SmsService>,
}

/// The webhook routes with their OpenAPI description.
pub fn router(state: SmsState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(inbound))
        .routes(routes!(status))
        .with_state(state)
}

/// The form fields of a correctly signed request to `url`, or [`SmsError::BadSignature`].
fn signed_fields(
    service: &SmsService,
    url: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Vec<(String, String)>, SmsError> {
    let token = service.config().auth_token.expose_secret();
    let signature = headers
        .get(SIGNATURE_HEADER)
        .and_then(|value| value.to_str().ok());
    let fields = form_fields(body);
    match signature {
        Some(signature) if !token.is_empty() && verify(token, url, &fields, signature) => {
            Ok(fields)
        }
        _ => {
            metrics::counter!("sms_webhooks_refused_total").increment(1);
            tracing::warn!(url, "SMS webhook refused: missing or wrong signature");
            Err(SmsError::BadSignature)
        }
    }
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// A text reached our number (Twilio's "A message comes in" webhook). STOP opts the number out;
/// "1 CODE" / "2 CODE" answer an offer. Answers an empty TwiML document: replies go out through the
/// API, counted like every text.
#[utoipa::path(post, path = "/v1/sms/inbound", tag = "sms",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "Twilio's inbound message fields (From, To, Body, MessageSid, …)"),
    params(("X-Twilio-Signature" = String, Header, description = "Base64 HMAC-SHA1 of the URL and sorted form fields, keyed with the auth token")),
    responses(
        (status = 200, description = "Handled (empty TwiML)", content_type = "text/xml"),
        (status = 403, description = "Unsigned or wrongly signed", body = kreki_platform::Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn inbound(
    State(state): State<SmsState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, SmsError> {
    let url = state.service.config().inbound_url();
    let fields = signed_fields(&state.service, &url, &headers, &body)?;
    let from = field(&fields, "From").and_then(E164::parse);
    if let Some(from) = from {
        let body = field(&fields, "Body").unwrap_or_default().to_owned();
        state.service.receive(Inbound { from, body }).await?;
    }
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/xml")],
        r#"<?xml version="1.0" encoding="UTF-8"?><Response></Response>"#,
    )
        .into_response())
}

/// A delivery status of a text we sent (`queued`, `sent`, `delivered`, `undelivered`, `failed`).
#[utoipa::path(post, path = "/v1/sms/status", tag = "sms",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "Twilio's status callback fields (MessageSid, MessageStatus, ErrorCode, …)"),
    params(("X-Twilio-Signature" = String, Header, description = "Base64 HMAC-SHA1 of the URL and sorted form fields, keyed with the auth token")),
    responses(
        (status = 204, description = "Recorded"),
        (status = 403, description = "Unsigned or wrongly signed", body = kreki_platform::Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn status(
    State(state): State<SmsState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, SmsError> {
    let url = state.service.config().status_callback_url();
    let fields = signed_fields(&state.service, &url, &headers, &body)?;
    let sid = field(&fields, "MessageSid");
    let status = field(&fields, "MessageStatus").or_else(|| field(&fields, "SmsStatus"));
    if let (Some(sid), Some(status)) = (sid, status) {
        state
            .service
            .record_status(sid, status, field(&fields, "ErrorCode"))
            .await?;
    }
    Ok(StatusCode::NO_CONTENT)
}
