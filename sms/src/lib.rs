//! KREKI's text messages. In much of Indonesia a phone has signal but no data, or the volunteer's
//! app was killed in the background; then push never arrives, and a text still does. Phone
//! numbers are also the identity most citizens have, verified here with a one-time code.
//!
//! - [`provider`]: the [`SmsProvider`] trait.
//! - [`twilio`]: a client of Twilio's Programmable Messaging REST API, with retries.
//! - [`signature`]: `X-Twilio-Signature` (HMAC-SHA1) for the webhooks.
//! - [`service`]: sending through the outbound log (caps, at most once per key, metrics),
//!   delivery statuses, opt-outs, inbound replies.
//! - [`routes`]: `POST /v1/sms/inbound` and `POST /v1/sms/status`.
//! - [`fake`]: a fake Twilio for tests and `kreki demo`.
//! - [`config`]: `[sms]`; [`error`]: [`SmsError`].

pub mod config;
pub mod domain;
pub mod erasure;
pub mod error;
pub mod fake;
pub mod provider;
pub mod routes;
pub mod service;
pub mod signature;
pub mod twilio;

use std::sync::Arc;

pub use config::{ProviderKind, SmsConfig};
pub use domain::{E164, OutboundSms, Purpose, SentSms};
pub use error::SmsError;
pub use provider::SmsProvider;
pub use routes::SmsState;
pub use service::{CapWarning, Inbound, InboundHandler, SmsService, Text};

/// Builds the service from `[sms]`: the Twilio client for `twilio` and `fake` (the fake speaks the
/// same API), none for `off`.
///
/// # Errors
/// When the HTTP client cannot be built.
pub fn build(pool: sqlx::PgPool, config: SmsConfig) -> Result<SmsState, reqwest::Error> {
    let provider: Option<Arc<dyn SmsProvider>> = match config.provider {
        ProviderKind::Off => None,
        ProviderKind::Twilio | ProviderKind::Fake => {
            Some(Arc::new(twilio::TwilioClient::new(&config)?))
        }
    };
    Ok(SmsState {
        service: Arc::new(SmsService::new(pool, config, provider)),
    })
}
