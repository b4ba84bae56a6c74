//! `GET /v1/ws`: authenticates before the upgrade (401/403 problems are plain HTTP answers), takes a
//! connection slot (503 when full), sets every per-connection buffer explicitly, and hands the
//! socket to [`crate::connection`].

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{FromRef, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, header};
use kreki_auth::{AuthError, Caller, TokenVerifier};
use kreki_platform::extract::Query;
use kreki_platform::{FieldError, Problem};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::connection::{self, Connection};
use crate::error::RealtimeError;
use crate::hub::{Cursor, Hub};
use crate::ports::{InboundHandler, NoInbound, OwnTopicOnly, TopicAuthorizer};

/// State of the real-time routes: the hub, how tokens are verified, and the two ports.
#[derive(Clone)]
pub struct RealtimeState {
    /// The hub sockets attach to (the same one the rest of the process publishes to).
    pub hub: Hub,
    /// Verifies access tokens (public keys only).
    pub verifier: TokenVerifier,
    /// Decides `subscribe` frames.
    pub authorizer: Arc<dyn TopicAuthorizer>,
    /// Gets client messages of every type the hub does not handle itself.
    pub inbound: Arc<dyn InboundHandler>,
}

impl RealtimeState {
    /// State with the safe defaults: users may follow only `user:{own id}`, and every other client
    /// message is answered with a 422 naming `type`.
    pub fn new(hub: Hub, verifier: TokenVerifier) -> Self {
        Self {
            hub,
            verifier,
            authorizer: Arc::new(OwnTopicOnly),
            inbound: Arc::new(NoInbound),
        }
    }

    /// Replaces the topic authorizer.
    #[must_use]
    pub fn with_authorizer(mut self, authorizer: Arc<dyn TopicAuthorizer>) -> Self {
        self.authorizer = authorizer;
        self
    }

    /// Replaces the inbound handler.
    #[must_use]
    pub fn with_inbound(mut self, inbound: Arc<dyn InboundHandler>) -> Self {
        self.inbound = inbound;
        self
    }
}

impl FromRef<RealtimeState> for TokenVerifier {
    fn from_ref(state: &RealtimeState) -> Self {
        state.verifier.clone()
    }
}

/// The route, with its OpenAPI description, ready to merge into the app.
pub fn router(state: RealtimeState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(connect))
        .with_state(state)
}

/// Query parameters of `GET /v1/ws`. Not `Debug`: it holds a token.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConnectParams {
    /// The access token, for browsers, which cannot set `Authorization` on a WebSocket; ignored
    /// when the header is present. Never logged.
    pub access_token: Option<String>,
    /// The newest `seq` this client has processed: the messages after it still kept are replayed
    /// before live ones, or a `resync` message comes first when some are no longer kept.
    // Read as text and parsed here: the shared query extractor cannot name the parameter when a
    // number does not parse.
    #[param(value_type = Option<u64>, minimum = 0)]
    pub resume_after: Option<String>,
    /// The `epoch` of that `seq` (every message carries one). When the server no longer has that
    /// numbering (it restarted, or the user's session expired), the answer is `resync` rather than
    /// a replay that would skip messages. Strongly recommended with `resume_after`.
    #[param(value_type = Option<u64>, minimum = 0)]
    pub epoch: Option<String>,
}

/// Opens the live channel (WebSocket).
///
/// Every message the server publishes is a JSON text frame `{"seq": n, "epoch": e, "type": ...,
/// ...}`, `seq` increasing by one per message to this user (all connections of one user get the
/// same messages with the same `seq`), `epoch` naming the numbering `seq` belongs to (it changes
/// when the server forgot the user's session; `seq` starts again at 1 then). Reconnect with
/// `?resume_after=<seq>&epoch=<epoch>` of the last message processed.
///
/// Types: `offer`, `offer.withdrawn`, `alert.updated`, `assignment.updated`,
/// `responder.position` (the other responders of an alert), `volunteer.position`,
/// `checkin.answered`, `escalation` and `panic.limited` (coordinators), `checkin` (the volunteer
/// asked), `certificate.expiring`, and
/// `resync` (`{"type":"resync", "seq": n, "epoch": e}`,
/// numbered or not: some message this client should have got cannot be given to it one by one,
/// because it is no longer kept, was of another epoch, or was lost on its way (the bus overflowed,
/// an instance died); refetch state over HTTP and take `n` and `e` as the new cursor). It can come
/// first after a resume or at any time; within one epoch every numbered message follows the one
/// before (`seq` + 1) unless a `resync` came in between. A volunteer gets its own offers, a
/// citizen its own alerts, a coordinator everything, without subscribing.
///
/// Client messages (JSON text): `{"type":"ping"}` -> `{"type":"pong"}`;
/// `{"type":"subscribe","topic":"alert:{id}"}` -> `{"type":"subscribed","topic":..}`;
/// `{"type":"unsubscribe","topic":..}` -> `{"type":"unsubscribed","topic":..}`;
/// `{"type":"location","lat":..,"lng":..,"accuracy_m":..}` (volunteers). A frame that cannot be
/// used (not JSON, no or unknown `type`, binary, refused topic) is answered with
/// `{"type":"error","problem":{..problem+json..}}` and the connection stays open. These answers
/// carry no `seq` and are not replayed.
///
/// Close codes: 1001 server shutting down and 4008 too slow (reconnect with `resume_after`),
/// 4001 access token expired (reconnect with a fresh token and `resume_after`), 1009 message
/// over the size limit. The server pings; a peer silent past the idle timeout is
/// dropped.
#[utoipa::path(get, path = "/v1/ws", tag = "realtime", params(ConnectParams),
    security(("bearer" = [])),
    responses(
        (status = 101, description = "Switching protocols: the WebSocket is open"),
        (status = 401, description = "No access token, or an expired or invalid one", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token belongs to an OAuth2 client, not a person", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "This account holds as many connections as it may (see `Retry-After`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`resume_after` or `epoch` is not a whole number", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "This instance holds as many connections as it may (see `Retry-After`)", body = Problem, content_type = "application/problem+json"),
    ))]
async fn connect(
    State(state): State<RealtimeState>,
    Query(params): Query<ConnectParams>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, RealtimeError> {
    // Authenticate first, so a request without a token learns that, whatever else is wrong.
    let token = bearer_token(&headers)
        .or(params.access_token.as_deref())
        .ok_or(AuthError::MissingToken)?;
    // Read once for its expiry (the socket closes with 4001 then), once more for the caller.
    let claims = state
        .verifier
        .verify(token)
        .await
        .map_err(AuthError::from)?;
    let user = match Caller::from_token(&state.verifier, token).await? {
        Caller::User(user) => user,
        Caller::Client(_) => {
            return Err(AuthError::Forbidden(
                "the live channel is for people, not OAuth2 clients".into(),
            )
            .into());
        }
    };
    // The verifier allows some clock skew past `exp`; a socket would close at once, so say 401.
    let token_expires_at = token_deadline(claims.exp)
        .ok_or(AuthError::Token(kreki_auth::token::TokenError::Expired))?;
    let resume_after = whole_number(params.resume_after.as_deref(), "resume_after")?;
    let epoch = whole_number(params.epoch.as_deref(), "epoch")?;
    let resume = resume_after.map(|after| Cursor { after, epoch });
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return Ok(rejection.into_response()),
    };
    let config = state.hub.config();
    if state.hub.connections_of(user.id.0) >= config.max_connections_per_user {
        return Err(RealtimeError::TooManyForUser(
            config.max_connections_per_user,
        ));
    }
    let slot = state
        .hub
        .try_connection_slot()
        .ok_or(RealtimeError::TooManyConnections)?;
    // Explicit sizes: tungstenite's defaults (128 KiB buffers, 64 MiB messages) would make idle
    // sockets expensive and let one client make the server allocate megabytes.
    let upgrade = upgrade
        .read_buffer_size(config.read_buffer_bytes)
        .write_buffer_size(config.write_buffer_bytes)
        .max_write_buffer_size(config.max_write_buffer_bytes)
        .max_message_size(config.max_message_bytes)
        .max_frame_size(config.max_frame_bytes);
    let tracker = state.hub.tracker().clone();
    let connection = Connection {
        hub: state.hub,
        user,
        resume,
        token_expires_at,
        authorizer: state.authorizer,
        inbound: state.inbound,
        slot,
    };
    Ok(upgrade
        .on_failed_upgrade(|error| tracing::debug!(%error, "WebSocket upgrade failed"))
        .on_upgrade(move |socket| tracker.track_future(connection::serve(socket, connection))))
}

/// Parses an optional whole-number query parameter, naming it when it is not one.
fn whole_number(text: Option<&str>, field: &'static str) -> Result<Option<u64>, RealtimeError> {
    text.map(|text| {
        text.trim()
            .parse::<u64>()
            .map_err(|_| RealtimeError::Query(FieldError::new(field, "must be a whole number")))
    })
    .transpose()
}

/// When a token expiring at `exp` (seconds since the epoch) runs out, on the runtime's clock;
/// `None` when it has already.
fn token_deadline(exp: i64) -> Option<tokio::time::Instant> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis());
    let exp_ms = u128::try_from(exp).ok()?.checked_mul(1000)?;
    let left_ms = exp_ms.checked_sub(now_ms).filter(|left_ms| *left_ms > 0)?;
    let left_ms = u64::try_from(left_ms).unwrap_or(u64::MAX);
    Some(tokio::time::Instant::now() + Duration::from_millis(left_ms))
}

/// The token of an `Authorization: Bearer …` header, if there is one.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}
