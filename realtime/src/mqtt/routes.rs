//! `/v1/mqtt/devices`: a signed-in user registers, lists and revokes their MQTT devices. The
//! password is in the registration answer only; the broker learns it from the hash at the next
//! `kreki mqtt sync-credentials`.

use std::sync::Arc;

use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use kreki_auth::{CurrentUser, Role, TokenVerifier};
use kreki_platform::extract::{Json, Path};
use kreki_platform::{FieldError, Problem};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::config::{MqttConfig, read_certificate};
use super::credentials::{self, DeviceId, DeviceKind};
use super::error::MqttError;
use super::store::{self, DeviceRow};
use super::topics;

/// State of the registry routes.
#[derive(Clone)]
pub struct MqttState {
    /// The database holding `realtime.mqtt_devices`.
    pub pool: PgPool,
    /// Verifies access tokens.
    pub verifier: TokenVerifier,
    /// `[mqtt]` (limits, and the broker address devices are told).
    pub config: Arc<MqttConfig>,
}

impl FromRef<MqttState> for TokenVerifier {
    fn from_ref(state: &MqttState) -> Self {
        state.verifier.clone()
    }
}

/// The routes with their OpenAPI description, ready to merge into the app.
pub fn router(state: MqttState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(register_device, list_devices))
        .routes(routes!(revoke_device))
        .with_state(state)
}

/// Body of `POST /v1/mqtt/devices`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterMqttDevice {
    /// `panic` (any signed-in user) or `tracker` (volunteers).
    pub kind: DeviceKind,
    /// The owner's name for it, up to 100 characters.
    #[serde(default)]
    #[schema(example = "Tombol di dapur")]
    pub label: Option<String>,
}

/// A registered device.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MqttDevice {
    /// Device id; also its MQTT username.
    pub id: DeviceId,
    /// `panic` or `tracker`.
    pub kind: DeviceKind,
    /// The owner's name for it.
    pub label: String,
    /// The one topic it may publish to.
    #[schema(example = "kreki/v1/panic/pb-k3v9x2m4q8w1e7r5t6y0")]
    pub publish_topic: String,
    /// Where its panics are acknowledged (`{"status":"accepted","alert_id":..}`); panic buttons only.
    pub ack_topic: Option<String>,
    /// Registration time (UTC).
    pub created_at: DateTime<Utc>,
    /// When it was revoked (UTC); `null` while live.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// What to configure on the device: shown once, at registration.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MqttCredentials {
    /// MQTT username (the device id).
    pub username: String,
    /// MQTT password: 32 characters, shown only now; KREKI keeps only a hash.
    pub password: String,
    /// The broker the device connects to.
    pub host: String,
    /// Its port (8883 for TLS).
    pub port: u16,
    /// Connect over TLS (MQTTS).
    pub tls: bool,
    /// PEM certificate of the authority to trust for the broker, when the fleet has its own CA
    /// (`mqtt.device_ca_file`); absent for a publicly trusted certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_certificate: Option<String>,
}

/// Answer of `POST /v1/mqtt/devices`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RegisteredMqttDevice {
    /// The device.
    pub device: MqttDevice,
    /// Its credentials (the password is never shown again).
    pub mqtt: MqttCredentials,
}

impl MqttDevice {
    fn from_row(row: DeviceRow) -> Result<Self, MqttError> {
        let (Ok(id), Some(kind)) = (DeviceId::parse(&row.id), DeviceKind::parse(&row.kind)) else {
            return Err(MqttError::Database(sqlx::Error::Protocol(format!(
                "realtime.mqtt_devices row {} breaks its own checks",
                row.id
            ))));
        };
        let (publish_topic, ack_topic) = match kind {
            DeviceKind::Panic => (topics::panic(&id), Some(topics::ack(&id))),
            DeviceKind::Tracker => (topics::location(row.owner_id), None),
        };
        Ok(Self {
            id,
            kind,
            label: row.label,
            publish_topic,
            ack_topic,
            created_at: row.created_at,
            revoked_at: row.revoked_at,
        })
    }
}

/// Registers a panic button or a tracker for the signed-in user and returns its MQTT credentials
/// once. The broker accepts them after the next `kreki mqtt sync-credentials`.
#[utoipa::path(post, path = "/v1/mqtt/devices", tag = "mqtt", request_body = RegisterMqttDevice,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Registered; the password is shown only now", body = RegisteredMqttDevice),
        (status = 401, description = "No or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A tracker for someone without the volunteer role (names `kind`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Too many live devices", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field breaks the rules (named)", body = Problem, content_type = "application/problem+json"),
    ))]
async fn register_device(
    State(state): State<MqttState>,
    user: CurrentUser,
    Json(body): Json<RegisterMqttDevice>,
) -> Result<impl IntoResponse, MqttError> {
    let label = body.label.unwrap_or_default().trim().to_owned();
    if label.chars().count() > 100 || label.chars().any(char::is_control) {
        return Err(MqttError::Validation(vec![FieldError::new(
            "label",
            "must be at most 100 characters, without control characters",
        )]));
    }
    if body.kind == DeviceKind::Tracker && user.require(Role::Volunteer).is_err() {
        return Err(MqttError::TrackerNeedsVolunteer);
    }
    let owner: Uuid = user.id.0;
    let live = store::count_live(&state.pool, owner).await?;
    if live >= i64::from(state.config.max_devices_per_user) {
        return Err(MqttError::TooManyDevices(state.config.max_devices_per_user));
    }
    let id = DeviceId::generate(body.kind);
    let password = credentials::generate_password();
    // PBKDF2 with 101 rounds: about a millisecond, fine on the request path.
    let hash = credentials::mosquitto_hash(password.expose_secret());
    let row = store::insert(&state.pool, &id, owner, body.kind, &label, &hash).await?;
    tracing::info!(device = %id, kind = body.kind.as_str(), "MQTT device registered");
    let config = &state.config;
    let answer = RegisteredMqttDevice {
        device: MqttDevice::from_row(row)?,
        mqtt: MqttCredentials {
            username: id.to_string(),
            password: password.expose_secret().to_owned(),
            host: config
                .device_host
                .clone()
                .unwrap_or_else(|| config.host.clone()),
            port: config.device_port.unwrap_or(config.port),
            tls: config.device_tls,
            ca_certificate: config
                .device_ca_file
                .as_deref()
                .and_then(|path| read_certificate(path).ok()),
        },
    };
    Ok((StatusCode::CREATED, axum::Json(answer)))
}

/// The signed-in user's devices, revoked ones included, oldest first.
#[utoipa::path(get, path = "/v1/mqtt/devices", tag = "mqtt",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's devices", body = [MqttDevice]),
        (status = 401, description = "No or bad token", body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_devices(
    State(state): State<MqttState>,
    user: CurrentUser,
) -> Result<axum::Json<Vec<MqttDevice>>, MqttError> {
    let rows = store::list(&state.pool, user.id.0).await?;
    let devices = rows
        .into_iter()
        .map(MqttDevice::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(axum::Json(devices))
}

/// Revokes one of the caller's devices: the consumer refuses its panics at once, and the broker
/// refuses its login after the next `kreki mqtt sync-credentials`. Revoking twice is fine.
#[utoipa::path(delete, path = "/v1/mqtt/devices/{id}", tag = "mqtt",
    params(("id" = String, Path, description = "Device id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "No or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such device of yours", body = Problem, content_type = "application/problem+json"),
    ))]
async fn revoke_device(
    State(state): State<MqttState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<StatusCode, MqttError> {
    if DeviceId::parse(&id).is_err() {
        return Err(MqttError::NotFound);
    }
    match store::revoke(&state.pool, user.id.0, &id).await? {
        Some(_) => {
            tracing::info!(device = %id, "MQTT device revoked");
            Ok(StatusCode::NO_CONTENT)
        }
        None => Err(MqttError::NotFound),
    }
}
