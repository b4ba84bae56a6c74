//! `[mqtt]` (`KREKI_MQTT__*`): the broker KREKI's consumer connects to, its bounds, and the device
//! registry's limits.

use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;

/// Settings of the MQTT consumer and device registry.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttConfig {
    /// Run the consumer in this process (needs dispatch's sinks wired in by the binary).
    pub enabled: bool,
    /// Broker host (Mosquitto locally, EMQX in production).
    pub host: String,
    /// Broker port (1883 plain, 8883 with `tls_ca_file`).
    pub port: u16,
    /// PEM file of the certificate authority the broker's certificate chains to. Set, the
    /// consumer connects over TLS and checks the broker's certificate and its name (`host`);
    /// unset, plain MQTT (inside a cluster, behind a NetworkPolicy).
    pub tls_ca_file: Option<PathBuf>,
    /// Where devices connect, told in their registration answer: host (default `host`).
    pub device_host: Option<String>,
    /// Devices' port (default `port`; 8883 for TLS).
    pub device_port: Option<u16>,
    /// Devices connect over TLS (the production broker's listener for the internet).
    pub device_tls: bool,
    /// PEM file of the certificate authority devices should trust for the broker (a fleet's own
    /// CA); its certificate is given in the registration answer. Unset: a public CA, nothing given.
    pub device_ca_file: Option<PathBuf>,
    /// MQTT client id; unique per instance (the broker keeps one session per id).
    pub client_id: String,
    /// The consumer's username (the service account in the broker's files).
    pub username: String,
    /// The consumer's password (a secret; `sync-credentials` writes its hash).
    pub password: SecretString,
    /// Subscribe through `$share/<group>/...` so several instances split the messages instead of
    /// each getting all of them; empty for a plain subscription.
    pub shared_group: String,
    /// MQTT keep-alive, in seconds.
    pub keep_alive_s: u64,
    /// Messages being handled at once (the rest wait in the broker's and the socket's buffers).
    pub max_in_flight: usize,
    /// Messages read off the socket but not yet taken by the consumer.
    pub queue: usize,
    /// Longest wait between reconnect attempts, in milliseconds (doubling from 100 ms).
    pub reconnect_max_ms: u64,
    /// Copies of one panic payload from one device this close together are one alert, in seconds.
    pub dedup_window_s: u64,
    /// (device, payload) pairs remembered for de-duplication.
    pub dedup_max_entries: usize,
    /// Attempts at handing a panic to dispatch while it answers 5xx.
    pub sink_attempts: u32,
    /// Live devices one user may register.
    pub max_devices_per_user: u32,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            host: "127.0.0.1".to_owned(),
            port: 1883,
            tls_ca_file: None,
            device_host: None,
            device_port: None,
            device_tls: false,
            device_ca_file: None,
            client_id: "kreki".to_owned(),
            username: "kreki".to_owned(),
            password: SecretString::from(""),
            shared_group: "kreki".to_owned(),
            keep_alive_s: 30,
            max_in_flight: 256,
            queue: 1024,
            reconnect_max_ms: 10_000,
            dedup_window_s: 300,
            dedup_max_entries: 100_000,
            sink_attempts: 4,
            max_devices_per_user: 10,
        }
    }
}

impl MqttConfig {
    /// Range checks, one message per wrong key (`mqtt.<key>: ...`).
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.host.trim().is_empty() {
            problems.push("mqtt.host: must not be empty".to_owned());
        }
        if self.port == 0 {
            problems.push("mqtt.port: must be 1 to 65535".to_owned());
        }
        if self.client_id.is_empty() || self.client_id.len() > 64 {
            problems.push("mqtt.client_id: must be 1 to 64 characters".to_owned());
        }
        if self.username.is_empty() || self.username.contains([':', ' ', '\n']) {
            problems.push("mqtt.username: must be non-empty, without `:` or spaces".to_owned());
        }
        if self.shared_group.contains(['/', '+', '#']) {
            problems.push("mqtt.shared_group: must not contain `/`, `+` or `#`".to_owned());
        }
        if !(5..=3600).contains(&self.keep_alive_s) {
            problems.push("mqtt.keep_alive_s: must be 5 to 3600 seconds".to_owned());
        }
        if !(1..=65_535).contains(&self.max_in_flight) {
            problems.push("mqtt.max_in_flight: must be 1 to 65535".to_owned());
        }
        if !(1..=1_000_000).contains(&self.queue) {
            problems.push("mqtt.queue: must be 1 to 1000000".to_owned());
        }
        if !(100..=600_000).contains(&self.reconnect_max_ms) {
            problems.push("mqtt.reconnect_max_ms: must be 100 to 600000".to_owned());
        }
        if !(1..=86_400).contains(&self.dedup_window_s) {
            problems.push("mqtt.dedup_window_s: must be 1 to 86400 seconds".to_owned());
        }
        if self.dedup_max_entries == 0 {
            problems.push("mqtt.dedup_max_entries: must be at least 1".to_owned());
        }
        if !(1..=20).contains(&self.sink_attempts) {
            problems.push("mqtt.sink_attempts: must be 1 to 20".to_owned());
        }
        if !(1..=1000).contains(&self.max_devices_per_user) {
            problems.push("mqtt.max_devices_per_user: must be 1 to 1000".to_owned());
        }
        for (key, file) in [
            ("mqtt.tls_ca_file", &self.tls_ca_file),
            ("mqtt.device_ca_file", &self.device_ca_file),
        ] {
            if let Some(path) = file
                && let Err(why) = read_certificate(path)
            {
                problems.push(format!("{key}: {why}"));
            }
        }
        if self
            .device_host
            .as_deref()
            .is_some_and(|host| host.trim().is_empty())
        {
            problems.push("mqtt.device_host: must not be empty when set".to_owned());
        }
        if self.device_port == Some(0) {
            problems.push("mqtt.device_port: must be 1 to 65535".to_owned());
        }
        if self.enabled && secrecy::ExposeSecret::expose_secret(&self.password).is_empty() {
            problems.push("mqtt.password: must be set when mqtt.enabled is true".to_owned());
        }
        problems
    }
}

/// The PEM certificate(s) of `path`, checked to hold at least one certificate: what the TLS
/// client trusts, or what devices are given.
///
/// # Errors
/// Why the file is unusable, for a configuration problem.
pub fn read_certificate(path: &std::path::Path) -> Result<String, String> {
    let pem = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    if !pem.contains("-----BEGIN CERTIFICATE-----") || pem.len() > 64 * 1024 {
        return Err(format!(
            "{} is not a PEM certificate (-----BEGIN CERTIFICATE-----, at most 64 KiB)",
            path.display()
        ));
    }
    Ok(pem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_wrong_values_name_their_key() {
        assert!(MqttConfig::default().validate().is_empty());
        let config = MqttConfig {
            enabled: true,
            port: 0,
            max_in_flight: 0,
            shared_group: "a/b".to_owned(),
            ..MqttConfig::default()
        };
        let config = MqttConfig {
            tls_ca_file: Some(PathBuf::from("/nonexistent/ca.pem")),
            device_ca_file: Some(PathBuf::from("Cargo.toml")),
            device_port: Some(0),
            ..config
        };
        let problems = config.validate().join("\n");
        for key in [
            "mqtt.port",
            "mqtt.max_in_flight",
            "mqtt.shared_group",
            "mqtt.password",
            "mqtt.tls_ca_file",
            "mqtt.device_ca_file",
            "mqtt.device_port",
        ] {
            assert!(problems.contains(key), "{problems}");
        }
    }
}
