//! `[realtime.redis]`: where the Redis bus connects and how it sizes its queue, stream and
//! presence records. Absent, the instance keeps the in-process bus (one node).

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// Settings of the Redis fan-out bus (`[realtime.redis]`, `KREKI_REALTIME__REDIS__*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisBusConfig {
    /// `redis://[user:password@]host:port[/db]`; a secret because it may carry a password.
    pub url: SecretString,
    /// Prefix of every key the bus writes, so several deployments (or tests) can share one Redis.
    pub key_prefix: String,
    /// Names this instance in presence records; empty: `<hostname>-<pid>-<random>`.
    pub instance_id: String,
    /// Commands (publishes, presence changes) waiting for Redis; when full, publishes are
    /// delivered on this instance only (logged) rather than waiting.
    pub queue: usize,
    /// How long a presence record outlives the instance's last refresh, in seconds; refreshed
    /// every third of it, so an instance that dies stops being listed within this time.
    pub presence_ttl_s: u64,
    /// Entries the fan-out stream keeps (approximately; older ones are trimmed). An instance
    /// that is away from Redis longer than the stream covers misses messages (its clients get
    /// `resync`).
    pub stream_max_entries: usize,
    /// Longest one Redis command may take before Redis counts as down, in milliseconds.
    pub response_timeout_ms: u64,
    /// How long one blocking stream read waits for new entries, in milliseconds.
    pub read_block_ms: u64,
}

impl Default for RedisBusConfig {
    fn default() -> Self {
        Self {
            url: SecretString::from("redis://127.0.0.1:6379"),
            key_prefix: "kreki:rt:".to_owned(),
            instance_id: String::new(),
            queue: 4096,
            presence_ttl_s: 30,
            stream_max_entries: 100_000,
            response_timeout_ms: 1000,
            read_block_ms: 1000,
        }
    }
}

impl RedisBusConfig {
    /// Checks ranges and the URL's syntax (it does not connect); each message names its key.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if redis::Client::open(self.url.expose_secret()).is_err() {
            problems.push(
                "realtime.redis.url: must be a redis:// or rediss:// URL (redis://host:port)"
                    .to_owned(),
            );
        }
        let mut check = |ok: bool, message: &str| {
            if !ok {
                problems.push(message.to_owned());
            }
        };
        check(
            !self.key_prefix.is_empty() && self.key_prefix.len() <= 64,
            "realtime.redis.key_prefix: must be 1 to 64 characters",
        );
        check(
            self.instance_id.len() <= 128,
            "realtime.redis.instance_id: must be at most 128 characters",
        );
        check(
            (16..=1_000_000).contains(&self.queue),
            "realtime.redis.queue: must be 16 to 1000000 commands",
        );
        check(
            (3..=3600).contains(&self.presence_ttl_s),
            "realtime.redis.presence_ttl_s: must be 3 to 3600 seconds",
        );
        check(
            (1000..=100_000_000).contains(&self.stream_max_entries),
            "realtime.redis.stream_max_entries: must be 1000 to 100000000 entries",
        );
        check(
            (10..=60_000).contains(&self.response_timeout_ms),
            "realtime.redis.response_timeout_ms: must be 10 to 60000 milliseconds",
        );
        check(
            (10..=60_000).contains(&self.read_block_ms),
            "realtime.redis.read_block_ms: must be 10 to 60000 milliseconds",
        );
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_name_their_key() {
        assert_eq!(RedisBusConfig::default().validate(), Vec::<String>::new());
        let config = RedisBusConfig {
            url: SecretString::from("http://example.org"),
            queue: 0,
            ..RedisBusConfig::default()
        };
        let problems = config.validate().join("\n");
        assert!(problems.contains("realtime.redis.url"), "{problems}");
        assert!(problems.contains("realtime.redis.queue"), "{problems}");
        assert_eq!(config.validate().len(), 2, "{problems}");
    }
}
