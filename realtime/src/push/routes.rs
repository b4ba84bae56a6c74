//! Device registration for the signed-in person: `POST /v1/devices`, `GET /v1/devices`,
//! `DELETE /v1/devices/{id}`, and `GET /v1/devices/vapid` (the key a PWA subscribes with).
//! Handlers are thin: validate ([`Target::parse`]), call [`store`], shape the answer.

use std::sync::Arc;

use axum::extract::{FromRef, State};
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use http::{StatusCode, header};
use kreki_auth::{CurrentUser, TokenVerifier};
use kreki_platform::Problem;
use kreki_platform::extract::{Json, Path};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::push::config::PushConfig;
use crate::push::device::{Platform, Target};
use crate::push::error::PushError;
use crate::push::store::{self, DeviceRow};

/// State of the device routes.
#[derive(Clone)]
pub struct DevicesState {
    /// Where `realtime.devices` lives.
    pub pool: PgPool,
    /// Verifies access tokens.
    pub verifier: TokenVerifier,
    /// `max_devices_per_user`, `web_push.allow_insecure_endpoints`.
    pub config: Arc<PushConfig>,
    /// The VAPID public key PWAs subscribe with (unpadded base64url), when Web Push is on.
    pub vapid_public_key: Option<String>,
}

impl FromRef<DevicesState> for TokenVerifier {
    fn from_ref(state: &DevicesState) -> Self {
        state.verifier.clone()
    }
}

/// The routes, with their OpenAPI description, ready to merge into the app.
pub fn router(state: DevicesState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(register, list))
        .routes(routes!(remove))
        .routes(routes!(vapid))
        .with_state(state)
}

/// Body of `POST /v1/devices`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterDevice {
    /// `android`, `ios` or `web`.
    #[schema(value_type = Platform)]
    pub platform: Option<String>,
    /// For `android`/`ios`, the FCM registration token (a string). For `web`, the browser's
    /// `PushSubscription.toJSON()`: `{"endpoint": "https://…", "keys": {"p256dh": "…", "auth":
    /// "…"}}` (or that JSON as a string).
    #[schema(value_type = Object, example = "cXyz:APA91bH…")]
    pub token: Option<serde_json::Value>,
}

/// A registered device, as the API shows it (never the token: it is a credential).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Device {
    /// Device id, for `DELETE /v1/devices/{id}`.
    pub id: Uuid,
    /// Where its pushes go.
    pub platform: Platform,
    /// First registration (UTC).
    pub created_at: DateTime<Utc>,
    /// Newest registration of the same token (UTC).
    pub last_seen_at: DateTime<Utc>,
}

impl Device {
    fn from_row(row: &DeviceRow) -> Option<Self> {
        Some(Self {
            id: row.id,
            platform: Platform::parse(&row.platform)?,
            created_at: row.created_at,
            last_seen_at: row.last_seen_at,
        })
    }
}

/// The VAPID public key a PWA passes to `pushManager.subscribe({applicationServerKey})`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VapidKey {
    /// Uncompressed P-256 point, unpadded base64url.
    pub public_key: String,
}

/// Registers this phone or browser for push (offers reach it when the app is in the background).
///
/// Idempotent: the same token again answers 200 with the same device (refreshed); a token another
/// account had moves to this one. An account keeps its newest `push.max_devices_per_user`
/// devices; registering one more forgets the least recently registered.
#[utoipa::path(post, path = "/v1/devices", operation_id = "register_push_device", tag = "push", request_body = RegisterDevice,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Registered", body = Device),
        (status = 200, description = "Known already: refreshed", body = Device),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`web` while this server has no VAPID key", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is wrong (`platform`, `token`, `token.endpoint`, `token.keys.p256dh`, `token.keys.auth`)", body = Problem, content_type = "application/problem+json"),
    ))]
async fn register(
    State(state): State<DevicesState>,
    user: CurrentUser,
    Json(body): Json<RegisterDevice>,
) -> Result<impl IntoResponse, PushError> {
    let target = Target::parse(
        body.platform.as_deref(),
        body.token.as_ref(),
        state.config.web_push.allow_insecure_endpoints,
    )
    .map_err(PushError::Validation)?;
    if matches!(target, Target::Web(_)) && state.vapid_public_key.is_none() {
        return Err(PushError::WebPushOff);
    }
    let (row, inserted) = store::register(
        &state.pool,
        user.id.0,
        &target,
        state.config.max_devices_per_user,
    )
    .await?;
    let device = Device::from_row(&row).ok_or(PushError::Setup(format!(
        "stored device {} has an unknown platform",
        row.id
    )))?;
    let status = if inserted {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let location = format!("/v1/devices/{}", device.id);
    Ok((status, [(header::LOCATION, location)], axum::Json(device)))
}

/// The signed-in person's devices, newest first.
#[utoipa::path(get, path = "/v1/devices", tag = "push", security(("bearer" = [])),
    responses(
        (status = 200, description = "Devices", body = [Device]),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
    ))]
async fn list(
    State(state): State<DevicesState>,
    user: CurrentUser,
) -> Result<axum::Json<Vec<Device>>, PushError> {
    let rows = store::list(&state.pool, user.id.0).await?;
    Ok(axum::Json(
        rows.iter().filter_map(Device::from_row).collect(),
    ))
}

/// Stops pushes to one of the signed-in person's devices (for example at sign-out).
#[utoipa::path(delete, path = "/v1/devices/{id}", tag = "push", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Device id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such device of yours", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`id` is not a UUID", body = Problem, content_type = "application/problem+json"),
    ))]
async fn remove(
    State(state): State<DevicesState>,
    user: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, PushError> {
    if store::delete_own(&state.pool, user.id.0, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(PushError::DeviceNotFound)
    }
}

/// The VAPID public key for Web Push subscriptions (public; 404 when this server sends none).
#[utoipa::path(get, path = "/v1/devices/vapid", tag = "push",
    responses(
        (status = 200, description = "The key", body = VapidKey),
        (status = 404, description = "Web Push is not configured", body = Problem, content_type = "application/problem+json"),
    ))]
async fn vapid(State(state): State<DevicesState>) -> Result<axum::Json<VapidKey>, PushError> {
    let public_key = state.vapid_public_key.ok_or(PushError::WebPushOff)?;
    Ok(axum::Json(VapidKey { public_key }))
}
