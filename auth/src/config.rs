//! KREKI ID settings, part of the one `kreki` config (`[auth]` in the file, `KREKI_AUTH__*` in the
//! environment).

use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;

/// Settings of KREKI ID.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// `iss` of issued tokens, checked on every verification.
    pub issuer: String,
    /// Lifetime of access tokens, in seconds (900 = 15 minutes).
    pub access_token_ttl_s: u64,
    /// Lifetime of refresh tokens, in seconds (30 days).
    pub refresh_token_ttl_s: u64,
    /// File holding the Ed25519 private key (PKCS#8 PEM) that signs access tokens.
    pub signing_key_file: Option<PathBuf>,
    /// The same key inline (for secret stores that inject environment variables).
    pub signing_key_pem: Option<SecretString>,
    /// Keys that no longer sign but still verify (private or public PEM files): the previous key
    /// during a rotation.
    pub previous_key_files: Vec<PathBuf>,
    /// For services that run without KREKI ID in the same process: the JWKS URL to learn keys from.
    pub jwks_url: Option<String>,
    /// Failed logins from one IP address, within `throttle_window_s`, before that address must wait.
    pub ip_max_failures: u32,
    /// Failed logins for one account before it must wait (from addresses it never signed in from).
    pub account_max_failures: u32,
    /// Counting window for failures, in seconds (1 to 86400).
    pub throttle_window_s: u64,
    /// First wait after an account reaches its limit, in seconds; doubles with each further failure.
    pub account_lock_base_s: u64,
    /// Longest an account ever waits, in seconds: bounds how long an attacker can keep a person out.
    pub account_lock_max_s: u64,
    /// Trust the last `X-Forwarded-For` address as the client's (only behind a proxy you run).
    pub trust_forwarded_for: bool,
    /// Password hashes computed at once at most; further sign-ins wait, so a flood of logins
    /// cannot take every core.
    pub max_concurrent_hashes: usize,
    /// How long a phone verification code is valid, in seconds (10 minutes).
    pub phone_code_ttl_s: u64,
    /// Wrong codes before verification is locked.
    pub phone_code_max_tries: u32,
    /// How long a locked verification stays locked, in seconds.
    pub phone_code_lock_s: u64,
    /// Least time between two codes texted to one account, in seconds.
    pub phone_code_resend_s: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            issuer: "kreki".to_owned(),
            access_token_ttl_s: 900,
            refresh_token_ttl_s: 30 * 24 * 3600,
            signing_key_file: None,
            signing_key_pem: None,
            previous_key_files: Vec::new(),
            jwks_url: None,
            ip_max_failures: 50,
            account_max_failures: 5,
            throttle_window_s: 900,
            account_lock_base_s: 30,
            account_lock_max_s: 900,
            trust_forwarded_for: false,
            max_concurrent_hashes: 4,
            phone_code_ttl_s: 600,
            phone_code_max_tries: 5,
            phone_code_lock_s: 900,
            phone_code_resend_s: 60,
        }
    }
}

impl AuthConfig {
    /// Checks ranges; each message names the key and what is expected.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut check = |ok: bool, message: &str| {
            if !ok {
                problems.push(message.to_owned());
            }
        };
        check(
            !self.issuer.trim().is_empty(),
            "auth.issuer: must not be empty",
        );
        check(
            (60..=3600).contains(&self.access_token_ttl_s),
            "auth.access_token_ttl_s: must be 60 to 3600 seconds",
        );
        check(
            self.refresh_token_ttl_s >= self.access_token_ttl_s,
            "auth.refresh_token_ttl_s: must be at least auth.access_token_ttl_s",
        );
        check(
            self.ip_max_failures >= 1,
            "auth.ip_max_failures: must be at least 1",
        );
        check(
            self.account_max_failures >= 1,
            "auth.account_max_failures: must be at least 1",
        );
        // Bounded so window arithmetic on timestamps cannot overflow (and a day is plenty).
        check(
            (1..=86_400).contains(&self.throttle_window_s),
            "auth.throttle_window_s: must be 1 to 86400 seconds",
        );
        check(
            (1..=3600).contains(&self.account_lock_max_s)
                && self.account_lock_base_s <= self.account_lock_max_s,
            "auth.account_lock_max_s: must be 1 to 3600 seconds and at least auth.account_lock_base_s",
        );
        check(
            self.max_concurrent_hashes >= 1,
            "auth.max_concurrent_hashes: must be at least 1",
        );
        check(
            (60..=3600).contains(&self.phone_code_ttl_s),
            "auth.phone_code_ttl_s: must be 60 to 3600 seconds",
        );
        check(
            (1..=20).contains(&self.phone_code_max_tries),
            "auth.phone_code_max_tries: must be 1 to 20",
        );
        check(
            (1..=86_400).contains(&self.phone_code_lock_s),
            "auth.phone_code_lock_s: must be 1 to 86400 seconds",
        );
        check(
            self.phone_code_resend_s <= 3600,
            "auth.phone_code_resend_s: must be at most 3600 seconds",
        );
        check(
            !(self.signing_key_file.is_some() && self.signing_key_pem.is_some()),
            "auth.signing_key_file and auth.signing_key_pem: set one, not both",
        );
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::AuthConfig;

    #[test]
    fn defaults_are_valid_and_the_throttle_window_is_bounded() {
        assert_eq!(AuthConfig::default().validate(), Vec::<String>::new());
        for window_s in [0, 86_401, u64::MAX] {
            let config = AuthConfig {
                throttle_window_s: window_s,
                ..AuthConfig::default()
            };
            assert_eq!(
                config.validate(),
                ["auth.throttle_window_s: must be 1 to 86400 seconds"],
                "{window_s}"
            );
        }
    }
}
