//! The one error type of KREKI ID, and its mapping to HTTP problems (done here, once).

use http::StatusCode;
use kreki_platform::{FieldError, Problem};

use crate::token::TokenError;

/// Everything that can go wrong in KREKI ID. Each variant documents the status it answers with.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// 422: one or more fields break the rules.
    #[error("invalid input")]
    Validation(Vec<FieldError>),
    /// 409 naming `phone`: another account has this phone number.
    #[error("phone number already registered")]
    PhoneTaken,
    /// 409 naming `email`: another account has this e-mail address.
    #[error("e-mail already registered")]
    EmailTaken,
    /// 401: unknown login or wrong password (deliberately not saying which).
    #[error("wrong login or password")]
    InvalidCredentials,
    /// 429 with `Retry-After`: too many failed logins from this address or for this account.
    #[error("too many failed logins")]
    Throttled {
        /// Seconds until a new attempt is accepted.
        retry_after_s: u64,
    },
    /// 401: no `Authorization: Bearer` header.
    #[error("no access token")]
    MissingToken,
    /// 401: the access token is expired or invalid.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// 401: the refresh token is unknown, expired or revoked.
    #[error("refresh token not valid")]
    RefreshTokenInvalid,
    /// 401: a refresh token that was already used came back: it was probably stolen, so its whole
    /// family is revoked and everyone holding one must sign in again.
    #[error("refresh token reused")]
    RefreshTokenReused,
    /// 403: signed in, but without the role or scope needed.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// 404: no such account or client.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// 409: the change would leave KREKI without any admin.
    #[error("the last admin cannot lose the admin role")]
    LastAdmin,
    /// 401 (`invalid_client`): unknown client or wrong secret on the token endpoint.
    #[error("client authentication failed")]
    InvalidClient,
    /// 400 (`invalid_scope`): a requested scope is not granted to the client.
    #[error("scope not allowed: {0}")]
    InvalidScope(String),
    /// 400 (`unsupported_grant_type`): only `client_credentials` is served here.
    #[error("unsupported grant type")]
    UnsupportedGrantType,
    /// 400 (`invalid_request`): the token request lacks a required parameter.
    #[error("invalid token request: {0}")]
    InvalidTokenRequest(String),
    /// 429 with `Retry-After`: a code was texted moments ago, or too many wrong codes locked
    /// verification for a while.
    #[error("phone verification throttled: {why}")]
    PhoneCodeThrottled {
        /// Why (`resend` or `locked`).
        why: &'static str,
        /// Seconds until a new attempt is accepted.
        retry_after_s: u64,
    },
    /// 503: no SMS provider is configured, or the text could not be sent.
    #[error("text messages unavailable: {0}")]
    SmsUnavailable(String),
    /// 503 when the database is unreachable (retry), 500 otherwise.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// 500: a failure of ours (hashing, signing, a task that died).
    #[error("internal error: {0}")]
    Internal(String),
}

impl AuthError {
    /// A 422 for one field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    /// The problem this error is answered with.
    pub fn to_problem(&self) -> Problem {
        match self {
            Self::Validation(errors) => Problem::validation(errors.clone()),
            Self::PhoneTaken => Problem::conflict("phone-taken", "An account with this phone number exists already.")
                .with_field("phone", "is already registered"),
            Self::EmailTaken => Problem::conflict("email-taken", "An account with this e-mail address exists already.")
                .with_field("email", "is already registered"),
            Self::InvalidCredentials => Problem::new(StatusCode::UNAUTHORIZED, "invalid-credentials", "Unauthorized")
                .with_detail("Wrong login or password."),
            Self::Throttled { retry_after_s } => {
                Problem::new(StatusCode::TOO_MANY_REQUESTS, "too-many-logins", "Too many failed logins")
                    .with_detail(format!("Too many failed sign-in attempts; try again in {retry_after_s} s."))
                    .with_retry_after_s(*retry_after_s)
            }
            Self::MissingToken => Problem::unauthorized("Sign in and send `Authorization: Bearer <access token>`."),
            Self::Token(TokenError::Expired) => Problem::unauthorized("The access token has expired; refresh it.")
                .with_www_authenticate(r#"Bearer error="invalid_token", error_description="expired""#),
            Self::Token(error @ TokenError::Invalid(_)) => Problem::unauthorized(error.to_string())
                .with_www_authenticate(r#"Bearer error="invalid_token""#),
            Self::Token(TokenError::CannotSign) => Problem::internal(self),
            Self::RefreshTokenInvalid => Problem::new(StatusCode::UNAUTHORIZED, "invalid-refresh-token", "Unauthorized")
                .with_detail("The refresh token is not valid; sign in again."),
            Self::RefreshTokenReused => Problem::new(StatusCode::UNAUTHORIZED, "refresh-token-reused", "Unauthorized")
                .with_detail("This refresh token was already used. For safety every session of this sign-in was ended; sign in again."),
            Self::Forbidden(why) => Problem::forbidden(why.clone()),
            Self::NotFound(what) => Problem::not_found(what),
            Self::LastAdmin => Problem::conflict("last-admin", "KREKI must keep at least one admin.")
                .with_field("roles", "must include admin: this is the last admin account"),
            Self::InvalidClient => Problem::new(StatusCode::UNAUTHORIZED, "invalid-client", "Unauthorized")
                .with_detail("Unknown client or wrong client secret.")
                .with_extension("error", "invalid_client")
                .with_www_authenticate(r#"Basic realm="kreki""#),
            Self::InvalidScope(scope) => Problem::new(StatusCode::BAD_REQUEST, "invalid-scope", "Bad request")
                .with_detail(format!("Scope `{scope}` is not granted to this client."))
                .with_field("scope", format!("`{scope}` is not granted to this client"))
                .with_extension("error", "invalid_scope"),
            Self::UnsupportedGrantType => Problem::new(StatusCode::BAD_REQUEST, "unsupported-grant-type", "Bad request")
                .with_detail("Only grant_type=client_credentials is supported here.")
                .with_field("grant_type", "must be client_credentials")
                .with_extension("error", "unsupported_grant_type"),
            Self::InvalidTokenRequest(why) => Problem::bad_request(why.clone()).with_extension("error", "invalid_request"),
            Self::PhoneCodeThrottled { why, retry_after_s } => {
                let detail = if *why == "locked" {
                    format!("Too many wrong codes; verification is locked. Try again in {retry_after_s} s.")
                } else {
                    format!("A code was sent moments ago; ask for another in {retry_after_s} s.")
                };
                Problem::new(StatusCode::TOO_MANY_REQUESTS, "phone-code-throttled", "Too many requests")
                    .with_detail(detail)
                    .with_retry_after_s(*retry_after_s)
            }
            Self::SmsUnavailable(why) => Problem::unavailable(format!("The code could not be texted: {why}.")),
            Self::Database(error) => kreki_platform::problem::from_sqlx(error),
            Self::Internal(_) => Problem::internal(self),
        }
    }
}

impl axum::response::IntoResponse for AuthError {
    fn into_response(self) -> axum::response::Response {
        self.to_problem().into_response()
    }
}

/// Result alias of this crate.
pub type AuthResult<T> = Result<T, AuthError>;
