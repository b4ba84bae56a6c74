//! `[sms]` of the `kreki` config (`KREKI_SMS__*` in the environment).

use secrecy::SecretString;
use serde::Deserialize;

/// Which provider sends texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// No texts: phone codes cannot be sent (503), offers are not texted.
    #[default]
    Off,
    /// Twilio's Programmable Messaging REST API at `base_url` (or any compatible API).
    Twilio,
    /// The in-process fake Twilio (`kreki demo`); `base_url` and the credentials are set for it.
    Fake,
}

/// Settings of the SMS service.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmsConfig {
    /// `off`, `twilio` or `fake`.
    pub provider: ProviderKind,
    /// The API's base URL (`https://api.twilio.com`, or an aggregator's compatible API).
    pub base_url: String,
    /// Account SID (`AC…`).
    pub account_sid: String,
    /// Auth token: authenticates our requests and signs the provider's webhooks.
    pub auth_token: SecretString,
    /// Sender: an E.164 number, an alphanumeric sender id, or a Messaging Service SID (`MG…`).
    #[serde(deserialize_with = "string_or_number")]
    pub from: String,
    /// Where the provider reaches this deployment (`https://kreki.example.id`): status callbacks
    /// go to `{public_base_url}/v1/sms/status`, and webhook signatures are checked against this
    /// URL (Twilio signs the URL it called, not the one `kreki` sees behind a proxy).
    pub public_base_url: String,
    /// Longest one request to the provider may take, in milliseconds.
    pub request_timeout_ms: u64,
    /// Attempts per text on 429, 5xx and network failures (never on other 4xx).
    pub max_attempts: u32,
    /// First back-off, in milliseconds; doubles per attempt, plus up to half of it as jitter.
    pub retry_base_ms: u64,
    /// Longest wait between attempts, in seconds (also caps a `Retry-After`).
    pub max_retry_after_s: u64,
    /// Texts per recipient per day (UTC) at most; further ones are not sent.
    pub daily_cap_per_recipient: u32,
    /// Texts per deployment per day (UTC) at most.
    pub daily_cap_total: u32,
    /// Share of `daily_cap_total` at which coordinators are warned (0 to 1).
    pub cap_warning_ratio: f64,
    /// Seconds an offer may stay unacknowledged on every socket and push before it is texted.
    pub offer_after_s: u64,
    /// Seconds an escalation may stay unacknowledged on every dashboard before its region's
    /// coordinators get it by text.
    pub escalation_after_s: u64,
}

/// `KREKI_SMS__FROM=+62811…` reaches serde as the number 62811… (the environment provider reads
/// `+62811…` as an integer): a number is a phone number, so its `+` is put back.
fn string_or_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Text(String),
        Number(u64),
    }
    Ok(match Either::deserialize(deserializer)? {
        Either::Text(text) => text,
        Either::Number(number) => format!("+{number}"),
    })
}

impl Default for SmsConfig {
    fn default() -> Self {
        Self {
            provider: ProviderKind::Off,
            base_url: "https://api.twilio.com".to_owned(),
            account_sid: String::new(),
            auth_token: SecretString::from(""),
            from: String::new(),
            public_base_url: "http://127.0.0.1:8080".to_owned(),
            request_timeout_ms: 10_000,
            max_attempts: 4,
            retry_base_ms: 500,
            max_retry_after_s: 30,
            daily_cap_per_recipient: 20,
            daily_cap_total: 5_000,
            cap_warning_ratio: 0.8,
            offer_after_s: 15,
            escalation_after_s: 120,
        }
    }
}

impl SmsConfig {
    /// Checks values; each message names the key and what is expected.
    pub fn validate(&self) -> Vec<String> {
        use secrecy::ExposeSecret;
        let mut problems = Vec::new();
        let mut check = |ok: bool, message: &str| {
            if !ok {
                problems.push(message.to_owned());
            }
        };
        if self.provider == ProviderKind::Twilio {
            check(
                self.account_sid.starts_with("AC") && self.account_sid.len() == 34,
                "sms.account_sid: must be a Twilio account SID (AC followed by 32 hex digits)",
            );
            check(
                !self.auth_token.expose_secret().is_empty(),
                "sms.auth_token: must be set when sms.provider = \"twilio\"",
            );
            check(
                !self.from.trim().is_empty(),
                "sms.from: must be set when sms.provider = \"twilio\"",
            );
            check(
                self.base_url.starts_with("https://") || self.base_url.starts_with("http://"),
                "sms.base_url: must be an http(s) URL",
            );
        }
        check(
            self.public_base_url.starts_with("https://")
                || self.public_base_url.starts_with("http://"),
            "sms.public_base_url: must be an http(s) URL",
        );
        check(
            (1..=10).contains(&self.max_attempts),
            "sms.max_attempts: must be 1 to 10",
        );
        check(
            (100..=120_000).contains(&self.request_timeout_ms),
            "sms.request_timeout_ms: must be 100 to 120000",
        );
        check(
            self.daily_cap_per_recipient >= 1 && self.daily_cap_total >= 1,
            "sms.daily_cap_per_recipient and sms.daily_cap_total: must be at least 1",
        );
        check(
            (0.0..=1.0).contains(&self.cap_warning_ratio),
            "sms.cap_warning_ratio: must be 0 to 1",
        );
        check(
            (1..=600).contains(&self.offer_after_s),
            "sms.offer_after_s: must be 1 to 600 seconds",
        );
        check(
            (1..=86_400).contains(&self.escalation_after_s),
            "sms.escalation_after_s: must be 1 to 86400 seconds",
        );
        problems
    }

    /// The status callback URL given to the provider.
    pub fn status_callback_url(&self) -> String {
        format!(
            "{}/v1/sms/status",
            self.public_base_url.trim_end_matches('/')
        )
    }

    /// The inbound webhook URL (set as the number's "A message comes in" webhook).
    pub fn inbound_url(&self) -> String {
        format!(
            "{}/v1/sms/inbound",
            self.public_base_url.trim_end_matches('/')
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_twilio_needs_credentials() {
        assert!(SmsConfig::default().validate().is_empty());
        let twilio = SmsConfig {
            provider: ProviderKind::Twilio,
            ..SmsConfig::default()
        };
        let problems = twilio.validate();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].starts_with("sms.account_sid"));
    }
}
