//! The HTTP edge of warnings and broadcasts (docs/API.md, "Warnings and broadcasts"):
//! coordinators read warnings and send broadcasts; anyone reads the outgoing CAP feed. Handlers
//! parse, call [`CapService`], shape; every error goes through [`CapError`].

use std::sync::Arc;

use axum::extract::{FromRef, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use kreki_auth::{CurrentUser, Role, TokenVerifier};
use kreki_platform::Problem;
use kreki_platform::extract::{Json, Path};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::broadcast::BroadcastRequest;
use crate::error::{CapError, CapResult};
use crate::service::CapService;
use crate::store;
use crate::views::{Broadcast, Warning};

/// Most broadcasts in the Atom feed and the list.
const FEED_ENTRIES: i64 = 50;

/// State of the CAP routes.
#[derive(Clone)]
pub struct CapState {
    /// The service.
    pub service: Arc<CapService>,
    /// Verifies access tokens.
    pub verifier: TokenVerifier,
}

impl FromRef<CapState> for TokenVerifier {
    fn from_ref(state: &CapState) -> Self {
        state.verifier.clone()
    }
}

/// The routes with their OpenAPI description, ready to merge into the app.
pub fn router(state: CapState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(list_warnings))
        .routes(routes!(get_warning))
        .routes(routes!(send_broadcast, list_broadcasts))
        .routes(routes!(cap_feed))
        .routes(routes!(cap_document))
        .with_state(state)
}

/// The warnings on the map now (CAP 1.2 read from the configured feeds): most severe first.
#[utoipa::path(get, path = "/v1/warnings", tag = "warnings", security(("bearer" = [])),
    responses(
        (status = 200, description = "Active warnings with their areas", body = [Warning]),
        (status = 401, description = "No or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a coordinator", body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_warnings(
    State(state): State<CapState>,
    caller: CurrentUser,
) -> CapResult<Json<Vec<Warning>>> {
    caller.require(Role::Coordinator)?;
    Ok(Json(state.service.warnings().await?))
}

/// One warning (also one no longer active: replaced, cancelled or expired).
#[utoipa::path(get, path = "/v1/warnings/{id}", tag = "warnings", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Warning id")),
    responses(
        (status = 200, description = "The warning", body = Warning),
        (status = 403, description = "Not a coordinator", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such warning", body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_warning(
    State(state): State<CapState>,
    caller: CurrentUser,
    Path(id): Path<Uuid>,
) -> CapResult<Json<Warning>> {
    caller.require(Role::Coordinator)?;
    let warning = state
        .service
        .warning(id)
        .await?
        .ok_or(CapError::NotFound("warning"))?;
    Ok(Json(warning))
}

/// Sends a short message in Bahasa Indonesia and English to everyone, volunteers or citizens
/// inside an area (a drawn polygon, a region or a warning's area). Answers how many it reached,
/// never who; it is also published as CAP 1.2 at `cap_url` and in `/cap/alerts.atom`.
#[utoipa::path(post, path = "/v1/broadcasts", tag = "warnings", request_body = BroadcastRequest, security(("bearer" = [])),
    responses(
        (status = 201, description = "Sent; recipients counted", body = Broadcast),
        (status = 403, description = "Not a coordinator", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such region or warning (or it has no area)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field breaks the rules (named)", body = Problem, content_type = "application/problem+json"),
    ))]
async fn send_broadcast(
    State(state): State<CapState>,
    caller: CurrentUser,
    Json(body): Json<BroadcastRequest>,
) -> CapResult<impl IntoResponse> {
    caller.require(Role::Coordinator)?;
    let checked = body.check(
        state.service.config().max_polygon_points,
        chrono::Utc::now(),
    )?;
    let sent = state.service.broadcast(Some(caller.id.0), checked).await?;
    tracing::info!(broadcast = %sent.id, by = %caller.id.0, "coordinator broadcast");
    Ok((StatusCode::CREATED, Json(sent)))
}

/// The newest broadcasts (50), with how many each reached.
#[utoipa::path(get, path = "/v1/broadcasts", tag = "warnings", security(("bearer" = [])),
    responses(
        (status = 200, description = "Newest first", body = [Broadcast]),
        (status = 403, description = "Not a coordinator", body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_broadcasts(
    State(state): State<CapState>,
    caller: CurrentUser,
) -> CapResult<Json<Vec<Broadcast>>> {
    caller.require(Role::Coordinator)?;
    let base = &state.service.config().public_base_url;
    Ok(Json(
        store::recent_broadcasts(&state.service.pool, FEED_ENTRIES)
            .await?
            .into_iter()
            .map(|row| Broadcast::from_row(row, base))
            .collect(),
    ))
}

/// The public Atom feed of KREKI's broadcasts, each entry linking its CAP 1.2 document.
#[utoipa::path(get, path = "/cap/alerts.atom", tag = "warnings",
    responses((status = 200, description = "Atom feed (`application/atom+xml`)", body = String, content_type = "application/atom+xml")))]
async fn cap_feed(State(state): State<CapState>) -> CapResult<impl IntoResponse> {
    let rows = store::recent_broadcasts(&state.service.pool, FEED_ENTRIES).await?;
    let xml = crate::out::atom(&rows, &state.service.config().public_base_url);
    Ok((
        [
            (header::CONTENT_TYPE, "application/atom+xml; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=30"),
        ],
        xml,
    ))
}

/// One broadcast as a CAP 1.2 document; `file` is `{id}.xml`.
#[utoipa::path(get, path = "/cap/alerts/{file}", tag = "warnings",
    params(("file" = String, Path, description = "`{id}.xml`: the broadcast's id and `.xml`")),
    responses(
        (status = 200, description = "CAP 1.2 alert (`application/cap+xml`)", body = String, content_type = "application/cap+xml"),
        (status = 404, description = "No such broadcast", body = Problem, content_type = "application/problem+json"),
    ))]
async fn cap_document(
    State(state): State<CapState>,
    Path(file): Path<String>,
) -> CapResult<impl IntoResponse> {
    let id = file
        .strip_suffix(".xml")
        .and_then(|id| Uuid::parse_str(id).ok())
        .ok_or(CapError::NotFound("CAP document"))?;
    let row = store::broadcast(&state.service.pool, id)
        .await?
        .ok_or(CapError::NotFound("CAP document"))?;
    let config = state.service.config();
    let xml = crate::out::document(&row, &config.sender, &config.public_base_url);
    Ok((
        [
            (header::CONTENT_TYPE, "application/cap+xml; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        xml,
    ))
}
