//! The one typed configuration of `kreki`: defaults, then a TOML file, then `KREKI_*` environment
//! variables (nested keys joined by `__`: `KREKI_SERVER__LISTEN`, `KREKI_AUTH__SIGNING_KEY_FILE`).
//!
//! It is validated before anything starts; a wrong value stops `kreki` with a message naming the
//! key, where it came from, and what is expected. Secrets are `SecretString` and print as
//! `[REDACTED]`.

use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use kreki_auth::AuthConfig;
use kreki_bridge_satusehat::SatusehatConfig;
use kreki_dispatch::DispatchConfig;
use kreki_lms::LmsConfig;
use kreki_platform::telemetry::LogFormat;
use kreki_realtime::RealtimeConfig;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sqlx::postgres::PgConnectOptions;

use crate::web::WebConfig;

/// Everything `kreki` can be told.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[server]`: the HTTP listener.
    pub server: ServerConfig,
    /// `[database]`: PostgreSQL.
    pub database: DatabaseConfig,
    /// `[log]`: logging.
    pub log: LogConfig,
    /// `[telemetry]`: OpenTelemetry traces over OTLP (off unless `otlp_endpoint` is set).
    pub telemetry: kreki_platform::telemetry::TelemetryConfig,
    /// `[auth]`: KREKI ID.
    pub auth: AuthConfig,
    /// `[web]`: the dashboard and the web apps.
    pub web: WebConfig,
    /// `[realtime]`: the WebSocket hub.
    pub realtime: RealtimeConfig,
    /// `[lms]`: training and certification.
    pub lms: LmsConfig,
    /// `[satusehat]`: the SATUSEHAT bridge and the FHIR API for health systems.
    pub satusehat: SatusehatConfig,
    /// `[dispatch]`: per-kind defaults, freshness, rest period, queues.
    pub dispatch: DispatchConfig,
    /// `[push]`: device registration, FCM and Web Push of offers (with the realtime service).
    pub push: kreki_realtime::push::PushConfig,
    /// `[mqtt]`: MQTT devices (broker, consumer bounds, device registry limits).
    pub mqtt: kreki_realtime::mqtt::MqttConfig,
    /// `[sms]`: text messages (phone codes, offers without data, escalations) and their webhooks.
    pub sms: kreki_sms::SmsConfig,
    /// `[pii]`: keys that seal NIKs at rest and key their search hash.
    pub pii: kreki_platform::pii::PiiConfig,
    /// `[cap]`: CAP 1.2 warnings read from feeds (off without feeds), broadcasts, CAP out.
    pub cap: kreki_cap::CapConfig,
}

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address and port to listen on.
    pub listen: SocketAddr,
    /// Longest a request may take before it is answered 503, in seconds.
    pub request_timeout_s: u64,
    /// Largest request body accepted, in bytes.
    pub body_limit_bytes: usize,
    /// How long SIGTERM waits for in-flight requests before exiting anyway, in seconds.
    pub shutdown_grace_s: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            request_timeout_s: 30,
            body_limit_bytes: 64 * 1024,
            shutdown_grace_s: 20,
        }
    }
}

/// `[database]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://user:password@host:port/database` (a secret: it may hold a password).
    pub url: SecretString,
    /// Most connections this process opens.
    pub max_connections: u32,
    /// How long a request waits for a free connection before it gets 503, in milliseconds.
    pub acquire_timeout_ms: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: SecretString::from("postgres://postgres@127.0.0.1:5432/kreki"),
            max_connections: 20,
            acquire_timeout_ms: 3000,
        }
    }
}

impl DatabaseConfig {
    /// Connection options parsed from the URL.
    ///
    /// # Errors
    /// A message naming `database.url` (without echoing it: it may hold a password).
    pub fn connect_options(&self) -> Result<PgConnectOptions, String> {
        let url = self.url.expose_secret();
        let is_postgres = url.starts_with("postgres://") || url.starts_with("postgresql://");
        let options = if is_postgres {
            PgConnectOptions::from_str(url).ok()
        } else {
            None
        };
        options.ok_or_else(|| {
            "database.url: must be a PostgreSQL URL such as postgres://user@host:5432/kreki"
                .to_owned()
        })
    }

    /// A lazily connecting pool.
    ///
    /// # Errors
    /// When the URL does not parse.
    pub fn pool(&self) -> Result<sqlx::PgPool, String> {
        Ok(kreki_platform::db::pool(
            self.connect_options()?,
            self.max_connections,
            Duration::from_millis(self.acquire_timeout_ms),
        ))
    }
}

/// `[log]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `json` (one object per line) or `pretty`.
    pub format: LogFormat,
    /// Which events to keep, `RUST_LOG` syntax.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Json,
            filter: "info,sqlx=warn,tower_http=warn".to_owned(),
        }
    }
}

/// Environment variables that start with `KREKI_` but are not configuration: `--config`'s, and the
/// settings of this repository's scripts (local services, tests, benchmarks, deployment checks),
/// which a developer's shell exports while running `kreki`.
const NOT_CONFIG: &[&str] = &[
    "config",
    "test_database_url",
    "pg_port",
    "db_name",
    "wait_secs",
    "browser_pg",
    "bin",
    "bench_database_url",
    "fhir_samples_dir",
    "two_a_port",
    "two_b_port",
    "two_mqtt_port",
    "venv",
    "tools",
    "pitr_source_port",
    "pitr_restore_port",
];

impl Config {
    /// Reads defaults, then `file` (if given), then the environment, and validates the result.
    ///
    /// # Errors
    /// Every problem found, one per line, each naming its key.
    pub fn load(file: Option<&Path>) -> Result<Self, String> {
        let mut figment = Figment::new();
        if let Some(path) = file {
            if !path.exists() {
                return Err(format!("config file {} does not exist", path.display()));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        figment = figment.merge(Env::prefixed("KREKI_").split("__").ignore(NOT_CONFIG));
        let config: Self = figment.extract().map_err(|error| {
            error
                .into_iter()
                .map(|error| format!("configuration: {error}"))
                .collect::<Vec<_>>()
                .join("\n")
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Range and consistency checks serde cannot express.
    ///
    /// # Errors
    /// Every problem found, one per line.
    pub fn validate(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        if self.server.request_timeout_s == 0 || self.server.request_timeout_s > 600 {
            problems.push("server.request_timeout_s: must be 1 to 600 seconds".to_owned());
        }
        if !(1024..=16 * 1024 * 1024).contains(&self.server.body_limit_bytes) {
            problems.push("server.body_limit_bytes: must be 1024 to 16777216 bytes".to_owned());
        }
        if self.server.shutdown_grace_s > 300 {
            problems.push("server.shutdown_grace_s: must be at most 300 seconds".to_owned());
        }
        if self.database.max_connections == 0 {
            problems.push("database.max_connections: must be at least 1".to_owned());
        }
        if self.database.acquire_timeout_ms == 0 {
            problems.push("database.acquire_timeout_ms: must be at least 1".to_owned());
        }
        if let Err(problem) = self.database.connect_options() {
            problems.push(problem);
        }
        if tracing_subscriber_filter_is_bad(&self.log.filter) {
            problems.push(format!(
                "log.filter: `{}` is not a valid filter (example: info,sqlx=warn)",
                self.log.filter
            ));
        }
        problems.extend(self.telemetry.validate());
        problems.extend(self.auth.validate());
        problems.extend(self.web.validate());
        problems.extend(self.realtime.validate());
        problems.extend(self.lms.validate());
        problems.extend(self.satusehat.validate());
        problems.extend(self.dispatch.validate());
        problems.extend(self.push.validate());
        problems.extend(self.mqtt.validate());
        problems.extend(self.cap.validate());
        problems.extend(self.sms.validate());
        problems.extend(self.pii.validate());
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("\n"))
        }
    }
}

fn tracing_subscriber_filter_is_bad(filter: &str) -> bool {
    filter.split(',').any(|directive| {
        let directive = directive.trim();
        directive.is_empty()
            || directive.chars().any(|c| c.is_whitespace())
            || directive.rsplit_once('=').is_some_and(|(_, level)| {
                !["trace", "debug", "info", "warn", "error", "off"].contains(&level)
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert!(Config::default().validate().is_ok());
    }

    #[test]
    fn wrong_values_name_their_key() {
        let mut config = Config::default();
        config.server.request_timeout_s = 0;
        config.auth.access_token_ttl_s = 5;
        config.database.url = SecretString::from("mysql://nope");
        config.realtime.outbound_queue = 0;
        config.dispatch.poll_interval_ms = 0;
        config.telemetry.otlp_endpoint = Some("collector:4318".to_owned());
        let message = config.validate().expect_err("invalid");
        assert!(message.contains("realtime.outbound_queue"), "{message}");
        assert!(message.contains("telemetry.otlp_endpoint"), "{message}");
        assert!(message.contains("dispatch.poll_interval_ms"), "{message}");
        assert!(message.contains("server.request_timeout_s"), "{message}");
        assert!(message.contains("auth.access_token_ttl_s"), "{message}");
        assert!(
            message.contains("database.url") && !message.contains("mysql://nope"),
            "{message}"
        );
    }

    #[test]
    fn secrets_do_not_print() {
        let mut config = Config::default();
        config.database.url = SecretString::from("postgres://kreki:hunter2@db/kreki");
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
