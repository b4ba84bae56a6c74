//! The one error type of dispatch, and its mapping to HTTP problems (done here, once).

use http::StatusCode;
use kreki_auth::AuthError;
use kreki_platform::{FieldError, Problem};

use crate::domain::{AlertStatus, AssignmentStatus, IdempotencyKey, OfferStatus};

/// Everything that can go wrong in dispatch. Each variant documents the status it answers with.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// 422: one or more fields break the rules.
    #[error("invalid input")]
    Validation(Vec<FieldError>),
    /// 400 naming `Idempotency-Key`: `POST /v1/alerts` needs one, so a retry cannot make a second
    /// alert.
    #[error("Idempotency-Key header missing")]
    MissingIdempotencyKey,
    /// 409 naming `Idempotency-Key`: the key was used before for a different request.
    #[error("Idempotency-Key reused with another body")]
    IdempotencyKeyReused,
    /// 401/403 from authentication or a missing role.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// 403: signed in with the right role, but this alert, offer or assignment is someone else's.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// 404: no such alert, offer, assignment or volunteer (or not visible to the caller).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// 409 `offer-expired`: the offer's deadline passed (the next wave may already be out).
    #[error("the offer expired")]
    OfferExpired,
    /// 409 `offer-<status>`: the offer was already answered or withdrawn.
    #[error("the offer is {0}")]
    OfferNotPending(OfferStatus),
    /// 409 `alert-covered`: enough volunteers accepted already.
    #[error("the alert already has its responders")]
    AlertCovered,
    /// 409 `alert-<status>`: the alert is cancelled or resolved.
    #[error("the alert is {0}")]
    AlertClosed(AlertStatus),
    /// 409 `volunteer-busy`: the volunteer holds an active assignment already.
    #[error("the volunteer has an active assignment")]
    VolunteerBusy,
    /// 409 `volunteer-off-duty`: a coordinator assigned someone not on duty or unknown to dispatch.
    #[error("the volunteer is not on duty")]
    VolunteerOffDuty,
    /// 409 `checkin-answered`: a check-in is answered once.
    #[error("the check-in was answered already")]
    CheckinAnswered,
    /// 409 `invalid-transition`: the assignment cannot go from its status to the one asked.
    #[error("cannot change an assignment from {from} to {to}")]
    InvalidTransition {
        /// Current status.
        from: AssignmentStatus,
        /// Requested status.
        to: AssignmentStatus,
    },
    /// 409 with its own slug and detail (a region name taken, an escalation acknowledged).
    #[error("{1}")]
    Conflict(&'static str, &'static str),
    /// 409 `not-in-triage`: only an alert waiting in triage can be released.
    #[error("the alert is {0}, not in triage")]
    NotInTriage(AlertStatus),
    /// 429: too many panics from one account, device or address; retry after this many seconds.
    #[error("too many alerts; retry after {0} s")]
    RateLimited(u64),
    /// The request body could not be read (400 broken JSON, 413 too large, 415 not JSON): the
    /// extractor's problem, as it is.
    #[error("{0}")]
    Rejected(Problem),
    /// 503: too many positions wait to be written to PostgreSQL (it is down or far behind); the
    /// matcher has this one already.
    #[error("positions are not being stored")]
    PositionsBacklog(#[from] crate::positions::Full),
    /// 503 when the database is unreachable (retry), 500 otherwise.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// 500: a failure of ours (a certification source that failed, a corrupt row).
    #[error("internal error: {0}")]
    Internal(String),
}

impl DispatchError {
    /// A 422 for one field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    /// The problem this error is answered with.
    pub fn to_problem(&self) -> Problem {
        match self {
            Self::Validation(errors) => Problem::validation(errors.clone()),
            Self::MissingIdempotencyKey => Problem::bad_request(
                "Send an `Idempotency-Key` header (a UUID made once per panic press) so a retry never makes a second alert.",
            )
            .with_field(IdempotencyKey::HEADER, "is required"),
            Self::IdempotencyKeyReused => Problem::conflict(
                "idempotency-key-reused",
                "This Idempotency-Key was used before for a different request; make a new key for a new alert.",
            )
            .with_field(IdempotencyKey::HEADER, "was used for a different request"),
            Self::Auth(error) => error.to_problem(),
            Self::Forbidden(why) => Problem::forbidden(*why),
            Self::NotFound(what) => Problem::not_found(what),
            Self::OfferExpired => Problem::conflict("offer-expired", "This offer expired before it was accepted."),
            Self::OfferNotPending(status) => Problem::conflict(
                &format!("offer-{status}"),
                format!("This offer is {status} and can no longer be answered."),
            ),
            Self::AlertCovered => Problem::conflict(
                "alert-covered",
                "Enough volunteers have accepted this alert already; thank you.",
            ),
            Self::AlertClosed(status) => Problem::conflict(
                &format!("alert-{status}"),
                format!("The alert is {status}."),
            ),
            Self::VolunteerBusy => Problem::conflict(
                "volunteer-busy",
                "The volunteer already has an active assignment; finish or withdraw it first.",
            ),
            Self::VolunteerOffDuty => Problem::conflict(
                "volunteer-off-duty",
                "The volunteer is not on duty.",
            )
            .with_field("volunteer_id", "is not an on-duty volunteer"),
            Self::CheckinAnswered => Problem::conflict(
                "checkin-answered",
                "This check-in was answered already; thank you.",
            ),
            Self::InvalidTransition { from, to } => Problem::new(StatusCode::CONFLICT, "invalid-transition", "Conflict")
                .with_detail(format!("An assignment that is {from} cannot become {to}."))
                .with_field("status", format!("cannot go from {from} to {to}")),
            Self::Conflict(slug, detail) => Problem::conflict(slug, *detail),
            Self::NotInTriage(status) => Problem::conflict(
                "not-in-triage",
                format!("The alert is {status}; only an alert in triage can be released."),
            ),
            Self::RateLimited(retry_after_s) => Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-alerts",
                "Too Many Requests",
            )
            .with_detail(format!(
                "Too many alerts in a short time. If this is an emergency, call 112 or 119. Retry after {retry_after_s} s."
            ))
            .with_retry_after_s(*retry_after_s),
            Self::Rejected(problem) => problem.clone(),
            Self::PositionsBacklog(_) => Problem::unavailable(
                "Positions cannot be stored right now; send the next one shortly.",
            ),
            Self::Database(error) => kreki_platform::problem::from_sqlx(error),
            Self::Internal(_) => Problem::internal(self),
        }
    }
}

impl axum::response::IntoResponse for DispatchError {
    fn into_response(self) -> axum::response::Response {
        self.to_problem().into_response()
    }
}

/// Result alias of this crate.
pub type DispatchResult<T> = Result<T, DispatchError>;
