//! `[lms]` settings, part of the one `kreki` config (`KREKI_LMS__*` in the environment).

use serde::Deserialize;

/// Settings of the LMS.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LmsConfig {
    /// Base URL people reach KREKI at, used for the verify link printed on certificates
    /// (`https://kreki.example.id`, no trailing slash).
    pub public_base_url: String,
    /// How long a started quiz attempt may be answered, in seconds.
    pub attempt_ttl_s: u64,
    /// Longest the expiry sweep sleeps when nothing is due sooner, in seconds.
    pub sweep_max_interval_s: u64,
}

impl Default for LmsConfig {
    fn default() -> Self {
        Self {
            public_base_url: "http://127.0.0.1:8080".to_owned(),
            attempt_ttl_s: 3600,
            sweep_max_interval_s: 60,
        }
    }
}

impl LmsConfig {
    /// Checks ranges; each message names the key and what is expected.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let base = self.public_base_url.trim();
        if !(base.starts_with("http://") || base.starts_with("https://")) || base.ends_with('/') {
            problems.push(
                "lms.public_base_url: must be an http(s) URL without a trailing slash".to_owned(),
            );
        }
        if !(60..=86_400).contains(&self.attempt_ttl_s) {
            problems.push("lms.attempt_ttl_s: must be 60 to 86400 seconds".to_owned());
        }
        if !(1..=60).contains(&self.sweep_max_interval_s) {
            problems.push("lms.sweep_max_interval_s: must be 1 to 60 seconds".to_owned());
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::LmsConfig;

    #[test]
    fn defaults_are_valid_and_bad_values_name_their_key() {
        assert!(LmsConfig::default().validate().is_empty());
        let config = LmsConfig {
            public_base_url: "ftp://x/".into(),
            attempt_ttl_s: 1,
            sweep_max_interval_s: 0,
        };
        let problems = config.validate().join("\n");
        assert!(problems.contains("lms.public_base_url"), "{problems}");
        assert!(problems.contains("lms.attempt_ttl_s"), "{problems}");
        assert!(problems.contains("lms.sweep_max_interval_s"), "{problems}");
    }
}
