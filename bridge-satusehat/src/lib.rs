//! The SATUSEHAT bridge and the FHIR R4 API for health systems.
//!
//! Incidents come in through the [`IncidentFeed`] port (the binary feeds it from dispatch's events;
//! dispatch never calls the bridge) and are projected into the `bridge` schema. From there the FHIR
//! API serves health systems, and an outbox sends Encounters to SATUSEHAT. Practitioner verification
//! results leave through the [`PractitionerStatusSink`] port.
//!
//! - [`domain`]: `Nik`, incident events, the two ports.
//! - [`config`]: `[satusehat]` settings.
//! - [`client`]: the SATUSEHAT client (token cache, FHIR calls, typed errors).
//! - [`fake`]: a fake SATUSEHAT server with fault injection, for tests and demos.
//! - [`verify`]: practitioner verification and its background retries.
//! - [`sync`]: the feed consumer and the Encounter outbox worker.
//! - [`fhir`]: the FHIR resources served and sent.
//! - [`facade`]: the `/fhir/r4` endpoints.
//! - [`routes`]: the bridge's `/v1` endpoints.
//! - [`store`]: the SQL (schema `bridge`).
//! - [`state`]: the shared state.
//! - [`error`]: [`BridgeError`] and its problem+json mapping.

pub mod client;
pub mod config;
pub mod domain;
pub mod erasure;
pub mod error;
pub mod facade;
pub mod fake;
pub mod fhir;
pub mod routes;
pub mod state;
pub mod store;
pub mod sync;
pub mod verify;

use std::sync::Arc;

pub use client::{SatusehatClient, SatusehatError};
pub use config::SatusehatConfig;
pub use domain::{
    IncidentEvent, IncidentFeed, IncidentStatus, Nik, PractitionerStatusSink, Responder,
};
pub use error::BridgeError;
pub use state::{BridgeSettings, BridgeState};

use config::Environment;
use kreki_auth::TokenVerifier;
use kreki_platform::shutdown::CancellationToken;
use secrecy::SecretString;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use utoipa_axum::router::OpenApiRouter;

use crate::client::ClientSettings;
use crate::fake::{FakeConfig, FakeSatusehat};

/// Builds the bridge from `[satusehat]`. With `environment = "fake"` (demo mode) it starts the fake
/// SATUSEHAT on a free loopback port and talks to it. Must run inside the Tokio runtime.
///
/// # Errors
/// When the fake cannot listen or the HTTP client cannot be built.
pub fn build(
    pool: PgPool,
    config: &SatusehatConfig,
    verifier: TokenVerifier,
    sink: Arc<dyn PractitionerStatusSink>,
    pii: kreki_platform::pii::Pii,
) -> anyhow::Result<BridgeState> {
    let mut config = config.clone();
    let mut fake = None;
    if config.enabled && config.environment == Environment::Fake && config.base_url.is_none() {
        let mut fake_config = FakeConfig::default();
        if config.org_id.trim().is_empty() {
            config.org_id.clone_from(&fake_config.org_id);
        } else {
            fake_config.org_id.clone_from(&config.org_id);
        }
        if config.client_id.is_none() || config.client_secret.is_none() {
            config.client_id = Some(SecretString::from(fake_config.client_id.clone()));
            config.client_secret = Some(SecretString::from(fake_config.client_secret.clone()));
        }
        if config.location_id.trim().is_empty() {
            "kreki-demo-post".clone_into(&mut config.location_id);
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let running =
            FakeSatusehat::serve(tokio::net::TcpListener::from_std(listener)?, fake_config)?;
        tracing::info!(base_url = %running.base_url(), "fake SATUSEHAT started (demo mode)");
        config.base_url = Some(running.base_url());
        fake = Some(Arc::new(running));
    }
    let client = match (config.enabled, config.base_url()) {
        (true, Some(base_url)) => ClientSettings::from_config(&config, &base_url)
            .map(SatusehatClient::new)
            .transpose()?
            .map(Arc::new),
        _ => None,
    };
    Ok(BridgeState {
        pool,
        client,
        sink,
        verifier,
        settings: Arc::new(BridgeSettings::from_config(&config)),
        fake,
        pii,
    })
}

/// The bridge's columns of NIKs, for the reseal batch ([`kreki_platform::pii::reseal`]).
pub const NIK_COLUMNS: &[kreki_platform::pii::ResealTarget] = &[
    kreki_platform::pii::ResealTarget {
        table: "bridge.incidents",
        key: "alert_id",
        column: "patient_nik",
        hash_column: None,
    },
    kreki_platform::pii::ResealTarget {
        table: "bridge.practitioners",
        key: "user_id",
        column: "nik",
        hash_column: Some("nik_hash"),
    },
];

/// Every route of the bridge: `/v1/volunteers/me/practitioner-verification`,
/// `/v1/fhir-sync/failures` and `/fhir/r4/...`.
pub fn router(state: BridgeState) -> OpenApiRouter {
    routes::router(state.clone()).merge(facade::router(state))
}

/// Starts the feed consumer, the Encounter outbox worker and the verification retries; they stop
/// when `shutdown` is cancelled.
pub fn spawn_workers(
    state: &BridgeState,
    feed: Arc<dyn IncidentFeed>,
    shutdown: &CancellationToken,
) -> Vec<JoinHandle<()>> {
    vec![
        tokio::spawn(sync::run_feed(state.clone(), feed, shutdown.clone())),
        tokio::spawn(sync::run_outbox(state.clone(), shutdown.clone())),
        tokio::spawn(verify::run_retries(state.clone(), shutdown.clone())),
    ]
}
