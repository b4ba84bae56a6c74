//! The LMS's HTTP endpoints (the "Training (LMS)" table of API.md, plus attempts/start, progress,
//! lessons, printing and notifications). Handlers check the role, parse, call [`LmsService`], and
//! shape the answer; every error goes through [`LmsError`].

use std::sync::Arc;

use axum::extract::{FromRef, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kreki_auth::{CurrentUser, Role, TokenVerifier};
use kreki_platform::Problem;
use kreki_platform::extract::{Json, Path};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::course::{Course, CourseDefinition};
use crate::domain::CertificationCode;
use crate::error::{LmsError, LmsResult};
use crate::results::{LearnerResult, MyEnrollment};
use crate::service::{
    Answer, AttemptResult, Certificate, Certification, Enrollment, ExternalCertificate, LmsService,
    Notification, Progress, QuizStanding, StartedAttempt, Verification,
};
use crate::versions::CourseVersion;

/// State of the LMS routes.
#[derive(Clone)]
pub struct LmsState {
    /// The service.
    pub service: Arc<LmsService>,
    /// Verifies access tokens.
    pub verifier: TokenVerifier,
}

impl FromRef<LmsState> for TokenVerifier {
    fn from_ref(state: &LmsState) -> Self {
        state.verifier.clone()
    }
}

/// The routes, with their OpenAPI description, ready to merge into the app.
pub fn router(state: LmsState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(list_certifications, add_certification))
        .routes(routes!(list_courses, create_course))
        .routes(routes!(get_course))
        .routes(routes!(enroll))
        .routes(routes!(progress))
        .routes(routes!(complete_lesson))
        .routes(routes!(start_attempt))
        .routes(routes!(submit_attempt))
        .routes(routes!(quiz_standing))
        .routes(routes!(my_certificates))
        .routes(routes!(user_certificates))
        .routes(routes!(record_certificate))
        .routes(routes!(revoke_certificate))
        .routes(routes!(print_certificate))
        .routes(routes!(verify_certificate))
        .routes(routes!(verify_qr))
        .routes(routes!(publish_version, course_versions))
        .routes(routes!(course_definition))
        .routes(routes!(course_learners))
        .routes(routes!(my_enrollments))
        .routes(routes!(my_notifications))
        .with_state(state)
}

/// The certification catalogue.
#[utoipa::path(get, path = "/v1/lms/certifications", tag = "lms",
    responses((status = 200, description = "Every certification", body = [Certification])))]
async fn list_certifications(State(state): State<LmsState>) -> LmsResult<Json<Vec<Certification>>> {
    Ok(Json(state.service.certifications().await?))
}

/// Body of `POST /v1/lms/certifications`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewCertification {
    /// 2 to 40 lower-case letters, digits or `_`, starting with a letter.
    #[schema(example = "water_rescue")]
    pub code: String,
    /// Display name, 1 to 200 characters.
    #[schema(example = "Penyelamatan Air (Water Rescue)")]
    pub name: String,
    /// Validity of its certificates, 1 to 3650 days.
    #[schema(example = 730)]
    pub validity_days: i32,
}

/// Adds a certification to the catalogue (admins).
#[utoipa::path(post, path = "/v1/lms/certifications", tag = "lms", request_body = NewCertification, security(("bearer" = [])),
    responses(
        (status = 201, description = "Added", body = Certification),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The code is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field breaks the rules", body = Problem, content_type = "application/problem+json"),
    ))]
async fn add_certification(
    State(state): State<LmsState>,
    caller: CurrentUser,
    Json(body): Json<NewCertification>,
) -> LmsResult<impl IntoResponse> {
    caller.require(Role::Admin)?;
    let code = CertificationCode::parse(&body.code).map_err(|why| LmsError::field("code", why))?;
    let added = state
        .service
        .add_certification(&code, &body.name, body.validity_days)
        .await?;
    Ok((StatusCode::CREATED, Json(added)))
}

/// Every course (newest 100), with modules, lessons and quizzes; answers hidden.
#[utoipa::path(get, path = "/v1/lms/courses", tag = "lms", security(("bearer" = [])),
    responses(
        (status = 200, description = "Courses", body = [Course]),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_courses(
    State(state): State<LmsState>,
    _caller: CurrentUser,
) -> LmsResult<Json<Vec<Course>>> {
    Ok(Json(state.service.courses().await?))
}

/// Creates a course with its modules, lessons and quizzes (trainers).
#[utoipa::path(post, path = "/v1/lms/courses", tag = "lms", request_body = CourseDefinition, security(("bearer" = [])),
    responses(
        (status = 201, description = "Created (answers hidden)", body = Course),
        (status = 403, description = "Not a trainer", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Fields that break the rules, by path", body = Problem, content_type = "application/problem+json"),
    ))]
async fn create_course(
    State(state): State<LmsState>,
    caller: CurrentUser,
    Json(body): Json<CourseDefinition>,
) -> LmsResult<impl IntoResponse> {
    caller.require(Role::Trainer)?;
    let course = state
        .service
        .create_course(&body, Some(caller.id.0))
        .await?;
    Ok((StatusCode::CREATED, Json(course)))
}

/// One course; answers hidden.
#[utoipa::path(get, path = "/v1/lms/courses/{id}", tag = "lms", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Course id")),
    responses(
        (status = 200, description = "The course", body = Course),
        (status = 404, description = "No such course", body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_course(
    State(state): State<LmsState>,
    _caller: CurrentUser,
    Path(id): Path<Uuid>,
) -> LmsResult<Json<Course>> {
    Ok(Json(state.service.course(id).await?))
}

/// Enrolls the caller in a course (201 when new, 200 when already enrolled).
#[utoipa::path(post, path = "/v1/lms/courses/{id}/enroll", tag = "lms", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Course id")),
    responses(
        (status = 201, description = "Enrolled", body = Enrollment),
        (status = 200, description = "Was enrolled already", body = Enrollment),
        (status = 404, description = "No such course", body = Problem, content_type = "application/problem+json"),
    ))]
async fn enroll(
    State(state): State<LmsState>,
    caller: CurrentUser,
    Path(id): Path<Uuid>,
) -> LmsResult<impl IntoResponse> {
    let (enrollment, created) = state.service.enroll(caller.id.0, &caller.name, id).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(enrollment)))
}

/// The caller's progress in a course.
#[utoipa::path(get, path = "/v1/lms/courses/{id}/progress", tag = "lms", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Course id")),
    responses(
        (status = 200, description = "Progress", body = Progress),
        (status = 403, description = "Not enrolled", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such course", body = Problem, content_type = "application/problem+json"),
    ))]
async fn progress(
    State(state): State<LmsState>,
    caller: CurrentUser,
    Path(id): Path<Uuid>,
) -> LmsResult<Json<Progress>> {
    Ok(Json(state.service.progress(caller.id.0, id).await?))
}

/// Marks a lesson read (repeating changes nothing); answers the progress in its course.
#[utoipa::path(post, path = "/v1/lms/lessons/{id}/complete", tag = "lms", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Lesson id")),
    responses(
        (status = 200, description = "Progress in the lesson's course", body = Progress),
        (status = 403, description = "Not enrolled", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such lesson", body = Problem, content_type = "application/problem+json"),
    ))]
async fn complete_lesson(
    State(state): State<LmsState>,
    caller: CurrentUser,
    Path(id): Path<Uuid>,
) -> LmsResult<Json<Progress>> {
    Ok(Json(state.service.complete_lesson(caller.id.0, id).await?))
}

/// Starts an attempt: its id and the questions in a fresh random order, without answers. While an
/// attempt is open the same one is returned.
#[utoipa::path(post, path = "/v1/lms/quizzes/{id}/attempts/start", tag = "lms", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Quiz id")),
    responses(
        (status = 200, description = "The attempt", body = StartedAttempt),
        (status = 403, description = "Not enrolled in the quiz's course", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such quiz", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Attempts used up; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ))]
async fn start_attempt(
    State(state): State<LmsState>,
    caller: CurrentUser,
    Path(id): Path<Uuid>,
) -> LmsResult<Json<StartedAttempt>> {
    Ok(Json(state.service.start_attempt(caller.id.0, id).await?))
}

/// Body of `POST /v1/lms/quizzes/{id}/attempts`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SubmitAttempt {
    /// The attempt from `attempts/start`. Without it a new attempt is started and scored at once,
    /// under the same limit and cool-down.
    pub attempt_id: Option<Uuid>,
    /// One answer per question; a question left out earns nothing.
    pub answers: Vec<Answer>,
}

/// Scores an attempt, once. Multiple choice earns partial credit per option: each correct option
/// chosen adds 1/(number of correct options), each wrong option chosen takes as much away, never
/// below zero. Passing every quiz of a certifying course issues its certificate.
#[utoipa::path(post, path = "/v1/lms/quizzes/{id}/attempts", tag = "lms", request_body = SubmitAttempt, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Quiz id")),
    responses(
        (status = 200, description = "Scored", body = AttemptResult),
        (status = 403, description = "Not enrolled in the quiz's course", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such quiz, or the attempt is not yours for this quiz", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The attempt was scored already or has expired", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Answers that do not fit the quiz, by path", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Attempts used up; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ))]
async fn submit_attempt(
    State(state): State<LmsState>,
    caller: CurrentUser,
    Path(id): Path<Uuid>,
    Json(body): Json<SubmitAttempt>,
) -> LmsResult<Json<AttemptResult>> {
    Ok(Json(
        state
            .service
            .submit_attempt(
                caller.id.0,
                &caller.name,
                id,
                body.attempt_id,
                &body.answers,
            )
            .await?,
    ))
}

/// The caller's attempts at a quiz, attempts left and any lock.
#[utoipa::path(get, path = "/v1/lms/quizzes/{id}/attempts/me", tag = "lms", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Quiz id")),
    responses(
        (status = 200, description = "Standing in the quiz", body = QuizStanding),
        (status = 403, description = "Not enrolled in the quiz's course", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such quiz", body = Problem, content_type = "application/problem+json"),
    ))]
async fn quiz_standing(
    State(state): State<LmsState>,
    caller: CurrentUser,
    Path(id): Path<Uuid>,
) -> LmsResult<Json<QuizStanding>> {
    Ok(Json(state.service.quiz_standing(caller.id.0, id).await?))
}

/// The caller's certificates, each with its status.
#[utoipa::path(get, path = "/v1/lms/certificates/me", tag = "lms", security(("bearer" = [])),
    responses(
        (status = 200, description = "Certificates, newest first", body = [Certificate]),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
    ))]
async fn my_certificates(
    State(state): State<LmsState>,
    caller: CurrentUser,
) -> LmsResult<Json<Vec<Certificate>>> {
    Ok(Json(state.service.certificates_of(caller.id.0).await?))
}

/// A person's certificates (trainers and coordinators), to find the one to revoke or check a
/// volunteer's standing.
#[utoipa::path(get, path = "/v1/lms/users/{id}/certificates", tag = "lms", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Account id")),
    responses(
        (status = 200, description = "Certificates, newest first", body = [Certificate]),
        (status = 403, description = "Neither trainer nor coordinator", body = Problem, content_type = "application/problem+json"),
    ))]
async fn user_certificates(
    State(state): State<LmsState>,
    caller: CurrentUser,
    Path(id): Path<Uuid>,
) -> LmsResult<Json<Vec<Certificate>>> {
    caller.require_any(&[Role::Trainer, Role::Coordinator])?;
    Ok(Json(state.service.certificates_of(id).await?))
}

/// Records a certificate earned elsewhere, with evidence (trainers).
#[utoipa::path(post, path = "/v1/lms/certificates", tag = "lms", request_body = ExternalCertificate, security(("bearer" = [])),
    responses(
        (status = 201, description = "Recorded", body = Certificate),
        (status = 403, description = "Not a trainer", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field breaks the rules", body = Problem, content_type = "application/problem+json"),
    ))]
async fn record_certificate(
    State(state): State<LmsState>,
    caller: CurrentUser,
    Json(body): Json<ExternalCertificate>,
) -> LmsResult<impl IntoResponse> {
    caller.require(Role::Trainer)?;
    let certificate = state.service.record_external(caller.id.0, &body).await?;
    Ok((StatusCode::CREATED, Json(certificate)))
}

/// Body of `POST /v1/lms/certificates/{id}/revoke`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RevokeRequest {
    /// Why, 1 to 500 characters (shown to the holder, never on the public verify answer).
    pub reason: String,
}

/// Revokes a certificate (trainers); the holder leaves dispatch for the kinds that need it at once.
#[utoipa::path(post, path = "/v1/lms/certificates/{id}/revoke", tag = "lms", request_body = RevokeRequest, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Certificate id")),
    responses(
        (status = 200, description = "Revoked", body = Certificate),
        (status = 403, description = "Not a trainer", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such certificate", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Revoked already", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No reason given", body = Problem, content_type = "application/problem+json"),
    ))]
async fn revoke_certificate(
    State(state): State<LmsState>,
    caller: CurrentUser,
    Path(id): Path<Uuid>,
    Json(body): Json<RevokeRequest>,
) -> LmsResult<Json<Certificate>> {
    caller.require(Role::Trainer)?;
    Ok(Json(
        state.service.revoke(id, caller.id.0, &body.reason).await?,
    ))
}

/// The printable certificate (HTML, with the verify link), for its holder and trainers.
#[utoipa::path(get, path = "/v1/lms/certificates/{id}/print", tag = "lms", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Certificate id")),
    responses(
        (status = 200, description = "An HTML page to print", content_type = "text/html"),
        (status = 404, description = "No such certificate (or not yours)", body = Problem, content_type = "application/problem+json"),
    ))]
async fn print_certificate(
    State(state): State<LmsState>,
    caller: CurrentUser,
    Path(id): Path<Uuid>,
) -> LmsResult<impl IntoResponse> {
    let (certificate, certification) = state.service.certificate(id).await?;
    if certificate.user_id != caller.id.0 && !caller.roles.grants(Role::Trainer) {
        return Err(LmsError::NotFound("certificate"));
    }
    let html = crate::print::render(
        &certificate,
        &certification,
        &state.service.config().public_base_url,
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "private, no-store"),
        ],
        html,
    ))
}

/// Checks a verification code (anyone). Answers only what is printed on the certificate; an
/// unknown code is a 404. A browser (`Accept: text/html`, as when the printed link is opened) gets
/// the same answer as a small HTML page.
#[utoipa::path(get, path = "/v1/lms/certificates/verify/{code}", tag = "lms",
    params(("code" = String, Path, description = "Verification code as printed (case and spaces do not matter)")),
    responses(
        (status = 200, description = "What the code stands for; `valid` is true only when valid now", body = Verification),
        (status = 404, description = "Nobody was given this code", body = Problem, content_type = "application/problem+json"),
    ))]
async fn verify_certificate(
    State(state): State<LmsState>,
    headers: HeaderMap,
    Path(code): Path<String>,
) -> LmsResult<Response> {
    let result = state.service.verify(&code).await;
    if wants_html(&headers) {
        let (status, verification) = match result {
            Ok(verification) => (StatusCode::OK, Some(verification)),
            Err(LmsError::NotFound(_)) => (StatusCode::NOT_FOUND, None),
            Err(error) => return Err(error),
        };
        let page = crate::print::verification_page(&code, verification.as_ref());
        return Ok((
            status,
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            page,
        )
            .into_response());
    }
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(result?)).into_response())
}

/// True when the client prefers HTML (a browser opening the printed link) over JSON.
fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| {
            accept.contains("text/html") && !accept.starts_with("application/json")
        })
}

/// The caller's stored notifications (expiry reminders), newest first.
#[utoipa::path(get, path = "/v1/lms/notifications/me", tag = "lms", security(("bearer" = [])),
    responses(
        (status = 200, description = "Notifications", body = [Notification]),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
    ))]
async fn my_notifications(
    State(state): State<LmsState>,
    caller: CurrentUser,
) -> LmsResult<Json<Vec<Notification>>> {
    Ok(Json(state.service.notifications(caller.id.0).await?))
}

/// The QR code of a verification code (anyone): an SVG of the public verify link, which opens the
/// verify page in a browser. The code need not exist (the page says so).
#[utoipa::path(get, path = "/v1/lms/certificates/verify/{code}/qr.svg", tag = "lms",
    params(("code" = String, Path, description = "Verification code as printed")),
    responses(
        (status = 200, description = "An SVG image", content_type = "image/svg+xml"),
        (status = 404, description = "Not a possible code", body = Problem, content_type = "application/problem+json"),
    ))]
async fn verify_qr(State(state): State<LmsState>, Path(code): Path<String>) -> LmsResult<Response> {
    let code = crate::domain::normalise_code(&code);
    if code.is_empty()
        || code.len() > 64
        || !code.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(LmsError::NotFound("certificate"));
    }
    let url = crate::print::verify_url(&state.service.config().public_base_url, &code);
    let svg = crate::print::qr_svg(&url).ok_or(LmsError::NotFound("certificate"))?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        svg,
    )
        .into_response())
}

/// Publishes a new version of a course (trainers): the definition of the whole course as it
/// should be now. Learners enrolled in earlier versions keep theirs to the end; the catalogue
/// offers this one from now on.
#[utoipa::path(post, path = "/v1/lms/courses/{id}/versions", tag = "lms", request_body = CourseDefinition, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Any version's course id")),
    responses(
        (status = 201, description = "The new version (answers hidden)", body = Course),
        (status = 403, description = "Not a trainer", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such course", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Another version was published at the same moment", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Fields that break the rules, by path", body = Problem, content_type = "application/problem+json"),
    ))]
async fn publish_version(
    State(state): State<LmsState>,
    caller: CurrentUser,
    Path(id): Path<Uuid>,
    Json(body): Json<CourseDefinition>,
) -> LmsResult<impl IntoResponse> {
    caller.require(Role::Trainer)?;
    let course = state
        .service
        .publish_version(id, &body, caller.id.0)
        .await?;
    Ok((StatusCode::CREATED, Json(course)))
}

/// Every version of a course, newest first, with how many learners each has.
#[utoipa::path(get, path = "/v1/lms/courses/{id}/versions", tag = "lms", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Any version's course id")),
    responses(
        (status = 200, description = "Versions", body = [CourseVersion]),
        (status = 404, description = "No such course", body = Problem, content_type = "application/problem+json"),
    ))]
async fn course_versions(
    State(state): State<LmsState>,
    _caller: CurrentUser,
    Path(id): Path<Uuid>,
) -> LmsResult<Json<Vec<CourseVersion>>> {
    Ok(Json(state.service.versions(id).await?))
}

/// A course version's full definition with correct options and explanations (trainers), to edit
/// into the next version.
#[utoipa::path(get, path = "/v1/lms/courses/{id}/definition", tag = "lms", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Course id")),
    responses(
        (status = 200, description = "The definition", body = CourseDefinition),
        (status = 403, description = "Not a trainer", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such course", body = Problem, content_type = "application/problem+json"),
    ))]
async fn course_definition(
    State(state): State<LmsState>,
    caller: CurrentUser,
    Path(id): Path<Uuid>,
) -> LmsResult<Json<CourseDefinition>> {
    caller.require(Role::Trainer)?;
    Ok(Json(state.service.definition(id).await?))
}

/// Everyone enrolled in a course version with their progress and quiz results (trainers).
#[utoipa::path(get, path = "/v1/lms/courses/{id}/enrollments", tag = "lms", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Course id")),
    responses(
        (status = 200, description = "Learners, by enrollment time", body = [LearnerResult]),
        (status = 403, description = "Not a trainer", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such course", body = Problem, content_type = "application/problem+json"),
    ))]
async fn course_learners(
    State(state): State<LmsState>,
    caller: CurrentUser,
    Path(id): Path<Uuid>,
) -> LmsResult<Json<Vec<LearnerResult>>> {
    caller.require(Role::Trainer)?;
    Ok(Json(state.service.learners(id).await?))
}

/// The caller's enrollments, newest first, each with the version they are on and the newest.
#[utoipa::path(get, path = "/v1/lms/enrollments/me", tag = "lms", security(("bearer" = [])),
    responses(
        (status = 200, description = "Enrollments", body = [MyEnrollment]),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
    ))]
async fn my_enrollments(
    State(state): State<LmsState>,
    caller: CurrentUser,
) -> LmsResult<Json<Vec<MyEnrollment>>> {
    Ok(Json(state.service.my_enrollments(caller.id.0).await?))
}
