//! Settings of the real-time hub, part of the one `kreki` config (`[realtime]` in the file,
//! `KREKI_REALTIME__*` in the environment).
//!
//! Every buffer and queue the hub keeps per connection or per user is sized here, so the memory a
//! connection costs is a setting an operator can read, not a library default (tungstenite's 128 KiB
//! read buffer would make 50k idle sockets cost gigabytes: see STACK.md).

use serde::Deserialize;

/// Settings of the WebSocket hub at `/v1/ws`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RealtimeConfig {
    /// Most WebSocket connections this instance holds at once; further upgrades get 503 with
    /// `Retry-After`.
    pub max_connections: usize,
    /// Most connections one user may hold at once (phone, tablet, dashboard tabs); further upgrades
    /// get 429. Checked before the upgrade, so concurrent upgrades may overshoot by a few.
    pub max_connections_per_user: usize,
    /// Messages waiting to be written to one connection; when a publish finds this queue full the
    /// consumer is too slow and is disconnected with close code 4008 (it resumes from the replay
    /// ring with `resume_after`).
    pub outbound_queue: usize,
    /// Messages kept per user for `resume_after` replay (the newest ones).
    pub replay_messages: usize,
    /// Age after which a message leaves the replay ring, in seconds.
    pub replay_window_s: u64,
    /// Memory all replay rings of this instance may hold together, in bytes (each message's
    /// share of its body plus about 48 bytes of bookkeeping per ring entry). Over it the oldest
    /// kept messages are forgotten first, whoever they belong to; a client resuming from before
    /// one of them gets `resync`. Without it, rings multiply: 2,000 users times
    /// `replay_messages` offers of a kilobyte is a gigabyte.
    pub replay_budget_bytes: usize,
    /// How long a user's session (sequence counter, replay ring, topic subscriptions) is kept after
    /// their last connection closed, in seconds. A message to a user without a session creates one,
    /// so an offer to a volunteer who is reconnecting waits for them this long.
    pub session_idle_s: u64,
    /// Most sessions this instance keeps. When reached, messages to users who have no session yet
    /// are dropped (and logged) rather than letting memory grow without bound; users who connect
    /// always get a session.
    pub max_sessions: usize,
    /// Most topics one user may be subscribed to at once.
    pub max_topics_per_session: usize,
    /// Read buffer of each connection, in bytes (tungstenite's default is 128 KiB). Clients send
    /// small frames (pings, positions); a larger message grows the buffer as needed, up to
    /// `max_message_bytes`. The buffer is allocated for every connection, so it dominates the cost
    /// of an idle socket (measured with `examples/ws_hold.rs`: about 6.8 KB per idle connection at
    /// 1 KiB, 9.9 KB at 4 KiB).
    pub read_buffer_bytes: usize,
    /// Bytes the write buffer collects before writing to the socket; every message the hub sends is
    /// flushed at once, so this only bounds the buffer's steady size.
    pub write_buffer_bytes: usize,
    /// Most bytes the write buffer may hold while the socket does not accept them; beyond, the
    /// write fails and the connection is closed. It also bounds what may be published: a message
    /// whose frame is longer than `max_write_buffer_bytes - write_buffer_bytes` could never be
    /// written, so `publish` refuses it (logged, counted).
    pub max_write_buffer_bytes: usize,
    /// Largest message a client may send, in bytes; a larger one closes the socket with 1009.
    pub max_message_bytes: usize,
    /// Largest single frame a client may send, in bytes (at most `max_message_bytes`).
    pub max_frame_bytes: usize,
    /// Interval between the server's WebSocket pings, in milliseconds.
    pub ping_interval_ms: u64,
    /// A peer that has sent nothing (not even a pong) for this long is dead and is dropped, in
    /// milliseconds (more than `ping_interval_ms`).
    pub idle_timeout_ms: u64,
    /// Longest one write to a client may take before the client counts as too slow, in
    /// milliseconds.
    pub write_timeout_ms: u64,
    /// Longest the inbound handler (for example a location update) or the topic authorizer may
    /// take before the client gets a 503 error frame, in milliseconds (less than
    /// `idle_timeout_ms`: the socket is not read meanwhile).
    pub inbound_timeout_ms: u64,
    /// `[realtime.redis]`: the Redis bus that makes several instances one hub (see
    /// [`crate::bus`]). Absent: this instance delivers what it publishes to its own sockets only.
    pub redis: Option<crate::bus::RedisBusConfig>,
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            max_connections_per_user: 8,
            outbound_queue: 64,
            replay_messages: 512,
            replay_window_s: 600,
            replay_budget_bytes: 64 * 1024 * 1024,
            session_idle_s: 600,
            max_sessions: 200_000,
            max_topics_per_session: 64,
            read_buffer_bytes: 1024,
            write_buffer_bytes: 4 * 1024,
            max_write_buffer_bytes: 256 * 1024,
            max_message_bytes: 16 * 1024,
            max_frame_bytes: 16 * 1024,
            ping_interval_ms: 20_000,
            idle_timeout_ms: 45_000,
            write_timeout_ms: 10_000,
            inbound_timeout_ms: 5_000,
            redis: None,
        }
    }
}

impl RealtimeConfig {
    /// Longest frame the hub will send, in bytes (see `max_write_buffer_bytes`).
    pub fn max_outbound_frame_bytes(&self) -> usize {
        self.max_write_buffer_bytes
            .saturating_sub(self.write_buffer_bytes)
    }

    /// Checks ranges; each message names the key and what is expected.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut check = |ok: bool, message: &str| {
            if !ok {
                problems.push(message.to_owned());
            }
        };
        check(
            self.max_connections >= 1,
            "realtime.max_connections: must be at least 1",
        );
        check(
            (1..=1_000).contains(&self.max_connections_per_user),
            "realtime.max_connections_per_user: must be 1 to 1000",
        );
        check(
            (1..=65_536).contains(&self.outbound_queue),
            "realtime.outbound_queue: must be 1 to 65536 messages",
        );
        check(
            (1..=100_000).contains(&self.replay_messages),
            "realtime.replay_messages: must be 1 to 100000 messages",
        );
        check(
            (1..=86_400).contains(&self.replay_window_s),
            "realtime.replay_window_s: must be 1 to 86400 seconds",
        );
        check(
            (1024 * 1024..=64 * 1024 * 1024 * 1024).contains(&self.replay_budget_bytes),
            "realtime.replay_budget_bytes: must be 1048576 (1 MiB) to 68719476736 (64 GiB) bytes",
        );
        check(
            self.session_idle_s <= 86_400,
            "realtime.session_idle_s: must be at most 86400 seconds",
        );
        check(
            self.max_sessions >= 1,
            "realtime.max_sessions: must be at least 1",
        );
        check(
            (1..=10_000).contains(&self.max_topics_per_session),
            "realtime.max_topics_per_session: must be 1 to 10000",
        );
        check(
            (256..=1024 * 1024).contains(&self.read_buffer_bytes),
            "realtime.read_buffer_bytes: must be 256 to 1048576 bytes",
        );
        check(
            self.write_buffer_bytes <= 1024 * 1024,
            "realtime.write_buffer_bytes: must be at most 1048576 bytes",
        );
        check(
            self.max_write_buffer_bytes > self.write_buffer_bytes
                && self.max_write_buffer_bytes >= 16 * 1024,
            "realtime.max_write_buffer_bytes: must be at least 16384 bytes and more than realtime.write_buffer_bytes",
        );
        check(
            (128..=16 * 1024 * 1024).contains(&self.max_message_bytes),
            "realtime.max_message_bytes: must be 128 to 16777216 bytes",
        );
        check(
            self.max_frame_bytes >= 128 && self.max_frame_bytes <= self.max_message_bytes,
            "realtime.max_frame_bytes: must be at least 128 bytes and at most realtime.max_message_bytes",
        );
        check(
            (10..=600_000).contains(&self.ping_interval_ms),
            "realtime.ping_interval_ms: must be 10 to 600000 milliseconds",
        );
        check(
            self.idle_timeout_ms > self.ping_interval_ms && self.idle_timeout_ms <= 3_600_000,
            "realtime.idle_timeout_ms: must be more than realtime.ping_interval_ms and at most 3600000",
        );
        check(
            (10..=600_000).contains(&self.write_timeout_ms),
            "realtime.write_timeout_ms: must be 10 to 600000 milliseconds",
        );
        check(
            self.inbound_timeout_ms >= 10 && self.inbound_timeout_ms < self.idle_timeout_ms,
            "realtime.inbound_timeout_ms: must be at least 10 milliseconds and less than realtime.idle_timeout_ms",
        );
        if let Some(redis) = &self.redis {
            problems.extend(redis.validate());
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(RealtimeConfig::default().validate(), Vec::<String>::new());
    }

    #[test]
    fn wrong_values_name_their_key() {
        let config = RealtimeConfig {
            outbound_queue: 0,
            max_frame_bytes: 32 * 1024,
            idle_timeout_ms: 10_000,
            ..RealtimeConfig::default()
        };
        let problems = config.validate().join("\n");
        assert!(problems.contains("realtime.outbound_queue"), "{problems}");
        assert!(problems.contains("realtime.max_frame_bytes"), "{problems}");
        assert!(problems.contains("realtime.idle_timeout_ms"), "{problems}");
        assert_eq!(config.validate().len(), 3, "{problems}");
    }
}
