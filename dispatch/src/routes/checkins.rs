//! Aftercare check-ins: a volunteer's due check-ins and their answer, and the coordinators' list
//! of answers (support requests flagged).
//!
//! A check-in is the volunteer's own whatever roles they hold now: someone who stepped back from
//! volunteering after a hard alert can still see and answer theirs, so the two volunteer endpoints
//! check ownership rather than the `volunteer` role.

use axum::extract::State;
use kreki_auth::{CurrentUser, Role};
use kreki_platform::Problem;
use kreki_platform::extract::{Json, Path, Query};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::{DispatchState, TAG, problem_to_error};
use crate::domain::CheckinId;
use crate::domain::checkins::CheckinAnswer;
use crate::error::{DispatchError, DispatchResult};
use crate::views::{AnsweredCheckin, Checkin};

/// The signed-in volunteer's check-ins that are due (answered ones have `answered_at`), newest
/// first.
#[utoipa::path(get, path = "/v1/volunteers/me/checkins", tag = TAG, security(("bearer" = [])),
    responses(
        (status = 200, description = "Due check-ins, newest first (at most 100)", body = [Checkin]),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn my_checkins(
    State(state): State<DispatchState>,
    user: CurrentUser,
) -> DispatchResult<Json<Vec<Checkin>>> {
    Ok(Json(state.service.due_checkins(user.id.0).await?))
}

/// Body of `POST /v1/checkins/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerRequest {
    /// How you are, 1 (very bad) to 5 (fine).
    #[schema(minimum = 1, maximum = 5)]
    pub wellbeing: i64,
    /// You want someone to contact you.
    pub wants_contact: bool,
    /// What happened, or anything you want to say (at most 1000 characters).
    pub note: Option<String>,
}

/// Answers your check-in, once. Coordinators get it; asking for contact, or a wellbeing of 2 or
/// lower, flags it as a support request.
#[utoipa::path(post, path = "/v1/checkins/{id}", tag = TAG, request_body = AnswerRequest, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Check-in id")),
    responses(
        (status = 200, description = "Answered", body = Checkin),
        (status = 403, description = "Someone else's check-in", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such check-in", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Answered already (`checkin-answered`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad field, named (`wellbeing` not 1 to 5, `note` too long)", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn answer_checkin(
    State(state): State<DispatchState>,
    user: CurrentUser,
    Path(id): Path<CheckinId>,
    body: Result<Json<AnswerRequest>, Problem>,
) -> DispatchResult<Json<Checkin>> {
    let Json(body) = body.map_err(problem_to_error)?;
    let answer = CheckinAnswer::parse(body.wellbeing, body.wants_contact, body.note.as_deref())
        .map_err(DispatchError::Validation)?;
    Ok(Json(
        state.service.answer_checkin(&user, id, &answer).await?,
    ))
}

/// Query of `GET /v1/checkins`.
#[derive(Debug, Deserialize, IntoParams)]
pub struct AnswersQuery {
    /// `true`: only answers that asked for support.
    pub support: Option<String>,
}

/// Volunteers' answers to their check-ins, newest first (coordinators); `support=true` keeps the
/// ones that asked for support.
#[utoipa::path(get, path = "/v1/checkins", tag = TAG, params(AnswersQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "Answers, newest first (at most 500)", body = [AnsweredCheckin]),
        (status = 403, description = "Not a coordinator", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`support` is not true or false", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_answers(
    State(state): State<DispatchState>,
    user: CurrentUser,
    Query(query): Query<AnswersQuery>,
) -> DispatchResult<Json<Vec<AnsweredCheckin>>> {
    user.require(Role::Coordinator)?;
    let support_only = match query.support.as_deref() {
        None | Some("" | "false") => false,
        Some("true") => true,
        Some(_) => return Err(DispatchError::field("support", "must be true or false")),
    };
    Ok(Json(state.service.answered_checkins(support_only).await?))
}
