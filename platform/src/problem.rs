//! `application/problem+json` (RFC 9457): the single error body of every 4xx and 5xx KREKI answers.
//!
//! Each service crate has its own error enum and maps it to a [`Problem`] at its HTTP edge; this type
//! is the only place that knows how the body looks. Internal failures are logged here with their whole
//! cause chain and answered with a generic body, so nothing private leaks to a caller.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Base of the `type` URIs; each problem kind gets a stable, documented slug under it.
const TYPE_BASE: &str = "https://kreki.id/problems/";

/// One invalid input field: `field` is a dotted path into the request (`location.lat`, `roles[1]`,
/// or a header or query name such as `Idempotency-Key`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    /// Where the bad value is, as a dotted path into the body, or the header/query parameter name.
    pub field: String,
    /// What is wrong with it and what is expected instead, in plain words.
    pub message: String,
}

impl FieldError {
    /// A field error for `field` saying `message`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// An RFC 9457 problem. Build one with the constructors, then return it (it is an `IntoResponse`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem; stable, so clients can switch on it.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// Short summary of the kind of problem; the same for every occurrence of a `type`.
    pub title: String,
    /// The HTTP status code, repeated for clients that only keep the body.
    pub status: u16,
    /// What went wrong this time, for a human.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// For validation problems: every field that is wrong.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub errors: Vec<FieldError>,
    /// Extra members some problems carry (for example the OAuth2 `error` code on the token endpoint).
    #[serde(flatten, skip_serializing_if = "serde_json::Map::is_empty", default)]
    #[schema(value_type = Object)]
    pub extensions: serde_json::Map<String, serde_json::Value>,
    /// Seconds after which retrying may succeed; sent as the `Retry-After` header, not in the body.
    #[serde(skip)]
    pub retry_after_s: Option<u64>,
    /// Sent as `WWW-Authenticate` on 401s so clients know which scheme is expected.
    #[serde(skip)]
    pub www_authenticate: Option<String>,
}

impl Problem {
    /// A problem of kind `slug` (appended to the KREKI problem base URI) with a title and status.
    pub fn new(status: StatusCode, slug: &str, title: impl Into<String>) -> Self {
        Self {
            type_uri: format!("{TYPE_BASE}{slug}"),
            title: title.into(),
            status: status.as_u16(),
            detail: None,
            errors: Vec::new(),
            extensions: serde_json::Map::new(),
            retry_after_s: None,
            www_authenticate: None,
        }
    }

    /// Adds the human explanation of this occurrence.
    #[must_use]
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Adds one invalid field.
    #[must_use]
    pub fn with_field(mut self, field: impl Into<String>, message: impl Into<String>) -> Self {
        self.errors.push(FieldError::new(field, message));
        self
    }

    /// Adds an extension member to the body.
    #[must_use]
    pub fn with_extension(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.extensions.insert(key.to_owned(), value.into());
        self
    }

    /// Sets the `Retry-After` header, in whole seconds (at least 1).
    #[must_use]
    pub fn with_retry_after_s(mut self, seconds: u64) -> Self {
        self.retry_after_s = Some(seconds.max(1));
        self
    }

    /// Sets the `WWW-Authenticate` header.
    #[must_use]
    pub fn with_www_authenticate(mut self, value: impl Into<String>) -> Self {
        self.www_authenticate = Some(value.into());
        self
    }

    /// 422: the request was well-formed but these fields break the rules.
    ///
    /// ```
    /// use kreki_platform::{FieldError, Problem};
    ///
    /// let problem = Problem::validation(vec![FieldError::new("location.lat", "must be -90 to 90")]);
    /// assert_eq!(problem.status, 422);
    /// assert_eq!(problem.detail.as_deref(), Some("location.lat: must be -90 to 90"));
    /// ```
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail = match errors.as_slice() {
            [one] => format!("{}: {}", one.field, one.message),
            many => format!("{} fields are invalid", many.len()),
        };
        let mut problem = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
            "Invalid request",
        )
        .with_detail(detail);
        problem.errors = errors;
        problem
    }

    /// 400: the request could not be read at all (broken JSON, wrong content type, missing header).
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad-request", "Bad request").with_detail(detail)
    }

    /// 404 for a resource that does not exist (or that the caller may not know exists).
    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found")
            .with_detail(format!("{what} not found"))
    }

    /// 409: the request conflicts with the current state.
    pub fn conflict(slug: &str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, slug, "Conflict").with_detail(detail)
    }

    /// 401: no valid credentials.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized")
            .with_detail(detail)
            .with_www_authenticate("Bearer")
    }

    /// 403: the caller is known but may not do this.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden").with_detail(detail)
    }

    /// 503: a dependency (usually the database) is unavailable; the request is safe to retry.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service unavailable",
        )
        .with_detail(detail)
        .with_retry_after_s(1)
    }

    /// 500 for a failure that is ours. Logs `error` with its whole cause chain; the body says nothing
    /// about it beyond the fact, so no internals leak.
    pub fn internal(error: &(dyn std::error::Error + 'static)) -> Self {
        let mut chain = error.to_string();
        let mut source = error.source();
        let mut last = chain.clone();
        while let Some(cause) = source {
            let message = cause.to_string();
            // Some errors repeat their source's message; say each thing once.
            if !last.ends_with(&message) {
                chain.push_str(": ");
                chain.push_str(&message);
            }
            last = message;
            source = cause.source();
        }
        tracing::error!(error = %chain, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal server error",
        )
        .with_detail("Something went wrong on our side; it has been logged.")
    }

    /// The HTTP status of this problem.
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.title)?;
        if let Some(detail) = &self.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problem {}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let retry_after = self.retry_after_s;
        let www_authenticate = self.www_authenticate.clone();
        let mut response = (status, Json(self)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(seconds) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(value) = www_authenticate.and_then(|v| HeaderValue::from_str(&v).ok()) {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

/// Maps a database error that is not the caller's fault: an unreachable or restarting database is a
/// retryable 503, anything else a logged 500.
pub fn from_sqlx(error: &sqlx::Error) -> Problem {
    if crate::db::is_unavailable(error) {
        tracing::warn!(error = %error, "database unavailable");
        Problem::unavailable(
            "The database is unavailable; retry shortly (requests with the same Idempotency-Key are safe to repeat).",
        )
    } else {
        Problem::internal(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_problem_names_every_field_and_summarises_one() {
        let problem = Problem::validation(vec![FieldError::new("phone", "must be a phone number")]);
        assert_eq!(problem.status, 422);
        assert_eq!(
            problem.detail.as_deref(),
            Some("phone: must be a phone number")
        );
        let body = serde_json::to_value(&problem).expect("a problem serialises");
        assert_eq!(body["errors"][0]["field"], "phone");
        assert_eq!(body["type"], "https://kreki.id/problems/validation");
        assert!(body.get("retry_after_s").is_none());
    }

    #[test]
    fn response_carries_problem_media_type_and_retry_after() {
        let response = Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            "Too many requests",
        )
        .with_retry_after_s(30)
        .into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(response.headers()[header::RETRY_AFTER], "30");
    }
}
