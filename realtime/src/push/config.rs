//! Settings of mobile and browser push: the `[push]` section of the one `kreki` config
//! (`KREKI_PUSH__*` in the environment).
//!
//! Every queue, concurrency limit and retry budget of the pusher is a setting here, and every
//! secret (the VAPID private key; the service-account file holds FCM's) is a `SecretString` or a
//! file path, never a plain string in the config.

use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;

/// When an offer also goes out by push.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushWhen {
    /// Push only when no WebSocket of the user acknowledged the offer (`{"type":"ack","seq":n}`)
    /// within `push_grace_ms`: a volunteer with the app open is not buzzed twice.
    #[default]
    NoAck,
    /// Push every offer at once, whatever the WebSocket did (belt and braces).
    Always,
}

/// FCM HTTP v1 (Android and iOS apps).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FcmConfig {
    /// The Google service-account JSON file (with `project_id`, `client_email`, `private_key`,
    /// `token_uri`). Without it, FCM is off and Android/iOS devices get no push (logged at start).
    pub service_account_file: Option<PathBuf>,
    /// The Firebase project; defaults to the `project_id` of the service-account file.
    pub project_id: Option<String>,
    /// Where `messages:send` lives: `https://fcm.googleapis.com`, or a fake FCM's address.
    pub base_url: String,
    /// Replaces the `token_uri` of the service-account file (the OAuth2 token endpoint), for a
    /// fake FCM or a proxy.
    pub token_url: Option<String>,
}

impl Default for FcmConfig {
    fn default() -> Self {
        Self {
            service_account_file: None,
            project_id: None,
            base_url: "https://fcm.googleapis.com".to_owned(),
            token_url: None,
        }
    }
}

/// Web Push with VAPID (the PWAs).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebPushConfig {
    /// The VAPID private key: a P-256 scalar, 32 bytes in unpadded base64url (what `web-push
    /// generate-vapid-keys` prints). Without it, Web Push is off. The PWA subscribes with the
    /// matching public key (`GET /v1/devices/vapid`).
    pub vapid_private_key: Option<SecretString>,
    /// Contact for push services, in the VAPID token's `sub`: `mailto:` or `https:`.
    pub subject: String,
    /// Accept subscription endpoints over plain `http` or at an IP address (tests and the demo's
    /// fake push service). Off in production: an endpoint is a URL the server posts to.
    pub allow_insecure_endpoints: bool,
}

impl Default for WebPushConfig {
    fn default() -> Self {
        Self {
            vapid_private_key: None,
            subject: "mailto:ops@kreki.id".to_owned(),
            allow_insecure_endpoints: false,
        }
    }
}

/// Settings of device registration and the pusher.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PushConfig {
    /// `no_ack` (default) or `always`: see [`PushWhen`].
    pub push_when: PushWhen,
    /// How long a WebSocket has to acknowledge an offer before it is pushed, in milliseconds
    /// (`push_when = "no_ack"` only).
    pub push_grace_ms: u64,
    /// Devices one account may register; registering one more forgets the least recently
    /// registered.
    pub max_devices_per_user: usize,
    /// Offers waiting for their grace or their turn to be pushed; beyond, new ones are not pushed
    /// (logged, `push_dropped_total`).
    pub queue: usize,
    /// Push requests in flight at once (FCM and Web Push together).
    pub concurrency: usize,
    /// Attempts per device for one offer (the first included) on 429, 5xx and network errors.
    pub max_attempts: u32,
    /// First back-off, doubled on each retry, in milliseconds; a `Retry-After` replaces it.
    pub retry_base_ms: u64,
    /// Longest wait before a retry, in seconds, whatever `Retry-After` asks.
    pub max_retry_after_s: u64,
    /// Longest one push request may take, in milliseconds.
    pub request_timeout_ms: u64,
    /// FCM HTTP v1.
    pub fcm: FcmConfig,
    /// Web Push.
    pub web_push: WebPushConfig,
}

impl Default for PushConfig {
    fn default() -> Self {
        Self {
            push_when: PushWhen::NoAck,
            push_grace_ms: 2_000,
            max_devices_per_user: 10,
            queue: 10_000,
            concurrency: 32,
            max_attempts: 4,
            retry_base_ms: 500,
            max_retry_after_s: 60,
            request_timeout_ms: 10_000,
            fcm: FcmConfig::default(),
            web_push: WebPushConfig::default(),
        }
    }
}

impl PushConfig {
    /// Checks ranges; each message names the key and what is expected.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut check = |ok: bool, message: &str| {
            if !ok {
                problems.push(message.to_owned());
            }
        };
        check(
            self.push_grace_ms <= 60_000,
            "push.push_grace_ms: must be at most 60000 milliseconds",
        );
        check(
            (1..=100).contains(&self.max_devices_per_user),
            "push.max_devices_per_user: must be 1 to 100",
        );
        check(
            (1..=1_000_000).contains(&self.queue),
            "push.queue: must be 1 to 1000000",
        );
        check(
            (1..=1_000).contains(&self.concurrency),
            "push.concurrency: must be 1 to 1000",
        );
        check(
            (1..=10).contains(&self.max_attempts),
            "push.max_attempts: must be 1 to 10",
        );
        check(
            (1..=60_000).contains(&self.retry_base_ms),
            "push.retry_base_ms: must be 1 to 60000 milliseconds",
        );
        check(
            (1..=3_600).contains(&self.max_retry_after_s),
            "push.max_retry_after_s: must be 1 to 3600 seconds",
        );
        check(
            (100..=120_000).contains(&self.request_timeout_ms),
            "push.request_timeout_ms: must be 100 to 120000 milliseconds",
        );
        check(
            self.fcm.base_url.starts_with("https://") || self.fcm.base_url.starts_with("http://"),
            "push.fcm.base_url: must be an http(s) URL such as https://fcm.googleapis.com",
        );
        check(
            self.fcm
                .token_url
                .as_deref()
                .is_none_or(|url| url.starts_with("https://") || url.starts_with("http://")),
            "push.fcm.token_url: must be an http(s) URL",
        );
        check(
            self.web_push.subject.starts_with("mailto:")
                || self.web_push.subject.starts_with("https://"),
            "push.web_push.subject: must be a mailto: or https: contact",
        );
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_wrong_values_name_their_key() {
        assert_eq!(PushConfig::default().validate(), Vec::<String>::new());
        let config = PushConfig {
            concurrency: 0,
            max_attempts: 0,
            web_push: WebPushConfig {
                subject: "ops@kreki.id".into(),
                ..WebPushConfig::default()
            },
            ..PushConfig::default()
        };
        let problems = config.validate().join("\n");
        assert!(problems.contains("push.concurrency"), "{problems}");
        assert!(problems.contains("push.max_attempts"), "{problems}");
        assert!(problems.contains("push.web_push.subject"), "{problems}");
        assert_eq!(config.validate().len(), 3, "{problems}");
    }

    #[test]
    fn push_when_reads_its_two_spellings() {
        let read = |text: &str| serde_json::from_str::<PushWhen>(text).ok();
        assert_eq!(read("\"no_ack\""), Some(PushWhen::NoAck));
        assert_eq!(read("\"always\""), Some(PushWhen::Always));
        assert_eq!(read("\"sometimes\""), None);
    }
}
