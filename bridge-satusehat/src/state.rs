//! The shared state of the bridge's endpoints and workers.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use kreki_auth::TokenVerifier;
use sqlx::PgPool;

use crate::client::SatusehatClient;
use crate::config::{SatusehatConfig, backoff};
use crate::domain::PractitionerStatusSink;
use crate::fake::FakeSatusehat;

/// Settings the workers and the FHIR API use.
#[derive(Debug, Clone)]
pub struct BridgeSettings {
    /// Our organization's Location in SATUSEHAT, referred to by every Encounter sent.
    pub location_id: String,
    /// First retry delay.
    pub retry_base: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// Attempts of one Encounter change (and of one verification) before giving up.
    pub max_attempts: u32,
    /// Idle poll interval of the workers.
    pub poll: Duration,
    /// Longest one SATUSEHAT request may take (work leases outlast several of them).
    pub request_timeout: Duration,
    /// Public base URL of the FHIR API (`https://kreki.example/fhir/r4`) for `fullUrl` and paging
    /// links; when unset it is derived from the request's `Host`.
    pub fhir_base_url: Option<String>,
}

impl BridgeSettings {
    /// From `[satusehat]`.
    pub fn from_config(config: &SatusehatConfig) -> Self {
        Self {
            location_id: config.location_id.clone(),
            retry_base: Duration::from_secs(config.retry_base_s),
            retry_max: Duration::from_secs(config.retry_max_s),
            max_attempts: config.sync_max_attempts,
            poll: Duration::from_millis(config.poll_ms),
            request_timeout: config.request_timeout(),
            fhir_base_url: config
                .fhir_base_url
                .as_deref()
                .map(|url| url.trim_end_matches('/').to_owned()),
        }
    }

    /// Delay before retry number `attempt` (1-based).
    pub fn retry_delay(&self, attempt: u32) -> Duration {
        backoff(self.retry_base, self.retry_max, attempt)
    }
}

/// State of the bridge: the database, the SATUSEHAT client (absent when not configured), where
/// verification results go, and how tokens are checked.
#[derive(Clone)]
pub struct BridgeState {
    /// The database (schema `bridge`).
    pub pool: PgPool,
    /// The SATUSEHAT client; `None` when SATUSEHAT is disabled (nothing is sent, verification answers
    /// `unavailable`).
    pub client: Option<Arc<SatusehatClient>>,
    /// Where verification results go.
    pub sink: Arc<dyn PractitionerStatusSink>,
    /// Verifies access tokens.
    pub verifier: TokenVerifier,
    /// Worker settings.
    pub settings: Arc<BridgeSettings>,
    /// The in-process fake SATUSEHAT, when `environment = "fake"` (kept alive with the state).
    pub fake: Option<Arc<FakeSatusehat>>,
    /// Keys that seal NIKs at rest; opened only to ask or tell SATUSEHAT.
    pub pii: kreki_platform::pii::Pii,
}

impl FromRef<BridgeState> for TokenVerifier {
    fn from_ref(state: &BridgeState) -> Self {
        state.verifier.clone()
    }
}
