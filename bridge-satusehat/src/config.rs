//! `[satusehat]` settings, part of the one `kreki` config (`KREKI_SATUSEHAT__*` in the environment).
//! Credentials are secrets; every range check names its key.

use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

/// Base URL of the SATUSEHAT sandbox (staging).
pub const SANDBOX_BASE_URL: &str = "https://api-satusehat-stg.dto.kemkes.go.id";
/// Base URL of SATUSEHAT production.
pub const PRODUCTION_BASE_URL: &str = "https://api-satusehat.kemkes.go.id";

/// Which SATUSEHAT to talk to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Environment {
    /// The public sandbox ([`SANDBOX_BASE_URL`]).
    Sandbox,
    /// Production ([`PRODUCTION_BASE_URL`]).
    Production,
    /// The fake SATUSEHAT of this crate, started inside the process (demo mode and tests).
    Fake,
}

/// Settings of the SATUSEHAT bridge.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SatusehatConfig {
    /// Talk to SATUSEHAT at all. Off: verification answers `unavailable`, no Encounters are sent; the
    /// FHIR API for health systems still serves.
    pub enabled: bool,
    /// Sandbox, production, or the in-process fake.
    pub environment: Environment,
    /// Overrides the base URL of `environment` (a proxy, or a fake on another port).
    pub base_url: Option<String>,
    /// The organization id SATUSEHAT gave us; Encounters carry our ids under
    /// `http://sys-ids.kemkes.go.id/encounter/{org_id}`. It must be the credentials' organization.
    #[serde(deserialize_with = "text")]
    pub org_id: String,
    /// OAuth2 client id (one per organization).
    #[serde(deserialize_with = "optional_secret")]
    pub client_id: Option<SecretString>,
    /// OAuth2 client secret.
    #[serde(deserialize_with = "optional_secret")]
    pub client_secret: Option<SecretString>,
    /// The organization's Location in SATUSEHAT that Encounters refer to (its ambulance post).
    #[serde(deserialize_with = "text")]
    pub location_id: String,
    /// `User-Agent` of every request (SATUSEHAT's gateway has been seen to reject requests without one).
    pub user_agent: String,
    /// Longest one request may take, in milliseconds.
    pub request_timeout_ms: u64,
    /// Renew the access token this many seconds before it expires.
    pub token_renew_before_s: u64,
    /// After a 429 without `Retry-After`, send nothing for this many seconds (at least 60).
    pub rate_limit_backoff_s: u64,
    /// Attempts of one Encounter change before it is recorded as failed.
    pub sync_max_attempts: u32,
    /// First retry delay of the Encounter sync and of verification, in seconds; doubles per attempt.
    pub retry_base_s: u64,
    /// Longest retry delay, in seconds.
    pub retry_max_s: u64,
    /// How often the workers look for work when idle, in milliseconds.
    pub poll_ms: u64,
    /// Public base URL of KREKI's FHIR API (`https://kreki.example/fhir/r4`), used in `fullUrl` and
    /// paging links; derived from the request's `Host` when unset.
    pub fhir_base_url: Option<String>,
}

impl Default for SatusehatConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            environment: Environment::Sandbox,
            base_url: None,
            org_id: String::new(),
            client_id: None,
            client_secret: None,
            location_id: String::new(),
            user_agent: concat!("kreki/", env!("CARGO_PKG_VERSION"), " (+https://kreki.id)")
                .to_owned(),
            request_timeout_ms: 10_000,
            token_renew_before_s: 60,
            rate_limit_backoff_s: 60,
            sync_max_attempts: 8,
            retry_base_s: 5,
            retry_max_s: 3600,
            poll_ms: 1000,
            fhir_base_url: None,
        }
    }
}

/// SATUSEHAT's ids are often all digits (`org_id = 10000004`), and values from the environment
/// (`KREKI_SATUSEHAT__ORG_ID=10000004`) arrive as numbers: they read as the same text.
#[derive(Deserialize)]
#[serde(untagged)]
enum TextOrNumber {
    Text(String),
    Unsigned(u64),
    Signed(i64),
}

impl From<TextOrNumber> for String {
    fn from(value: TextOrNumber) -> Self {
        match value {
            TextOrNumber::Text(text) => text,
            TextOrNumber::Unsigned(number) => number.to_string(),
            TextOrNumber::Signed(number) => number.to_string(),
        }
    }
}

fn text<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    TextOrNumber::deserialize(deserializer).map(String::from)
}

fn optional_secret<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<SecretString>, D::Error> {
    Ok(Option::<TextOrNumber>::deserialize(deserializer)?
        .map(|value| SecretString::from(String::from(value))))
}

impl SatusehatConfig {
    /// The base URL in use (without a trailing slash); `None` for the fake, whose address is known
    /// only once it listens.
    pub fn base_url(&self) -> Option<String> {
        if let Some(url) = &self.base_url {
            return Some(url.trim_end_matches('/').to_owned());
        }
        match self.environment {
            Environment::Sandbox => Some(SANDBOX_BASE_URL.to_owned()),
            Environment::Production => Some(PRODUCTION_BASE_URL.to_owned()),
            Environment::Fake => None,
        }
    }

    /// Per-request timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// Checks ranges and completeness; each message names the key and what is expected.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(url) = &self.fhir_base_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            problems.push("satusehat.fhir_base_url: must be an http(s) URL".to_owned());
        }
        if !self.enabled {
            return problems;
        }
        if self.environment != Environment::Fake {
            if self.client_id.is_none() {
                problems.push("satusehat.client_id: required when satusehat.enabled".to_owned());
            }
            if self.client_secret.is_none() {
                problems
                    .push("satusehat.client_secret: required when satusehat.enabled".to_owned());
            }
            if self.org_id.trim().is_empty() {
                problems.push("satusehat.org_id: required when satusehat.enabled (the organization id SATUSEHAT gave you)".to_owned());
            }
            if self.location_id.trim().is_empty() {
                problems.push("satusehat.location_id: required when satusehat.enabled (your Location id in SATUSEHAT)".to_owned());
            }
        }
        if let Some(url) = &self.base_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            problems.push("satusehat.base_url: must be an http(s) URL".to_owned());
        }
        if self.user_agent.trim().is_empty() {
            problems.push(
                "satusehat.user_agent: must not be empty (SATUSEHAT rejects requests without one)"
                    .to_owned(),
            );
        }
        if !(100..=120_000).contains(&self.request_timeout_ms) {
            problems.push("satusehat.request_timeout_ms: must be 100 to 120000".to_owned());
        }
        if self.token_renew_before_s > 600 {
            problems.push("satusehat.token_renew_before_s: must be at most 600".to_owned());
        }
        if self.rate_limit_backoff_s < 60 {
            problems.push("satusehat.rate_limit_backoff_s: must be at least 60 (SATUSEHAT locks out clients that retry sooner)".to_owned());
        }
        if !(1..=50).contains(&self.sync_max_attempts) {
            problems.push("satusehat.sync_max_attempts: must be 1 to 50".to_owned());
        }
        if self.retry_base_s == 0 || self.retry_base_s > self.retry_max_s {
            problems.push(
                "satusehat.retry_base_s: must be at least 1 and at most satusehat.retry_max_s"
                    .to_owned(),
            );
        }
        if !(10..=60_000).contains(&self.poll_ms) {
            problems.push("satusehat.poll_ms: must be 10 to 60000".to_owned());
        }
        problems
    }
}

/// Delay before retry number `attempt` (1-based): `base * 2^(attempt-1)`, at most `max`.
pub fn backoff(base: Duration, max: Duration, attempt: u32) -> Duration {
    let factor = 1u32
        .checked_shl(attempt.saturating_sub(1).min(30))
        .unwrap_or(u32::MAX);
    base.saturating_mul(factor).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_enabled_needs_credentials() {
        assert!(SatusehatConfig::default().validate().is_empty());
        let config = SatusehatConfig {
            enabled: true,
            rate_limit_backoff_s: 10,
            ..SatusehatConfig::default()
        };
        let problems = config.validate().join("\n");
        assert!(problems.contains("satusehat.client_id"), "{problems}");
        assert!(problems.contains("satusehat.org_id"), "{problems}");
        assert!(
            problems.contains("satusehat.rate_limit_backoff_s"),
            "{problems}"
        );
    }

    #[test]
    fn numeric_ids_read_as_text() {
        let config: SatusehatConfig = serde_json::from_value(serde_json::json!({
            "org_id": 10000004, "location_id": "ef011065-38c9-46f8-9c35-d1fe68966a3e",
            "client_id": 12345, "client_secret": "rahasia"
        }))
        .expect("parses");
        assert_eq!(config.org_id, "10000004");
        assert_eq!(config.location_id, "ef011065-38c9-46f8-9c35-d1fe68966a3e");
        assert_eq!(
            config
                .client_id
                .as_ref()
                .map(secrecy::ExposeSecret::expose_secret),
            Some("12345")
        );
        let absent: SatusehatConfig =
            serde_json::from_value(serde_json::json!({})).expect("parses");
        assert!(absent.client_id.is_none());
        assert!(
            serde_json::from_value::<SatusehatConfig>(serde_json::json!({"org_id": [1]})).is_err()
        );
    }

    #[test]
    fn secrets_do_not_print() {
        let config = SatusehatConfig {
            client_secret: Some(SecretString::from("hunter2")),
            ..SatusehatConfig::default()
        };
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let base = Duration::from_secs(5);
        let max = Duration::from_secs(60);
        assert_eq!(backoff(base, max, 1), Duration::from_secs(5));
        assert_eq!(backoff(base, max, 2), Duration::from_secs(10));
        assert_eq!(backoff(base, max, 4), Duration::from_secs(40));
        assert_eq!(backoff(base, max, 5), Duration::from_secs(60));
        assert_eq!(backoff(base, max, 40), Duration::from_secs(60));
    }
}
