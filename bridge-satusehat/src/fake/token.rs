//! The fake's OAuth2 endpoint (client credentials, SATUSEHAT's string numbers, the burst lock-out)
//! and the check every FHIR call makes of its token.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Shared, fault, plain, too_many};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::json;
use uuid::Uuid;

pub(super) async fn token(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if headers.get(header::USER_AGENT).is_none() {
        return plain(StatusCode::BAD_REQUEST, "Bad Request");
    }
    if query.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(
                json!({"ErrorCode": "invalid_request", "Error": "Unsupported grant type : "}),
            ),
        )
            .into_response();
    }
    let form: HashMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let now = Instant::now();
    let mut inner = shared.lock();
    if inner.locked_until.is_some_and(|until| now < until) {
        return too_many();
    }
    inner
        .token_times
        .retain(|at| now.duration_since(*at) < Duration::from_secs(60));
    inner.token_times.push(now);
    if inner.token_times.len() > shared.config.token_burst as usize {
        inner.locked_until = Some(now + shared.config.lockout);
        return too_many();
    }
    if form.get("client_id") != Some(&shared.config.client_id)
        || form.get("client_secret") != Some(&shared.config.client_secret)
    {
        return fault(
            "Invalid client identifier {0}",
            "oauth.v2.InvalidClientIdentifier",
        );
    }
    let access_token = format!("fake-{}", Uuid::new_v4().simple());
    inner.tokens.insert(
        access_token.clone(),
        now + Duration::from_secs(shared.config.token_ttl_s),
    );
    let issued_at_ms = Utc::now().timestamp_millis();
    axum::Json(json!({
        "refresh_token_expires_in": "0",
        "api_product_list": "[api-dev]",
        "api_product_list_json": ["api-dev"],
        "organization_name": "ihs-prod-1",
        "developer.email": "kreki@example.id",
        "token_type": "BearerToken",
        "issued_at": issued_at_ms.to_string(),
        "client_id": shared.config.client_id,
        "access_token": access_token,
        "application_name": "kreki-fake",
        "scope": "",
        "expires_in": shared.config.token_ttl_s.to_string(),
        "refresh_count": "0",
        "status": "approved"
    }))
    .into_response()
}

/// Ok when the request carries a live token.
pub(super) fn authorize(shared: &Shared, headers: &HeaderMap) -> Result<(), Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let Some(token) = token else {
        return Err(fault("Invalid access token", "oauth.v2.InvalidAccessToken"));
    };
    let inner = shared.lock();
    match inner.tokens.get(token) {
        Some(expires) if Instant::now() < *expires => Ok(()),
        Some(_) => Err(fault(
            "Access Token expired",
            "keymanagement.service.access_token_expired",
        )),
        None => Err(fault("Invalid access token", "oauth.v2.InvalidAccessToken")),
    }
}
