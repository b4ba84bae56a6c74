//! MQTT devices end to end: the registry routes over a fresh database, `sync_credentials` writing
//! Mosquitto's files, a real Mosquitto started on a free port with `deploy/mosquitto/`'s settings
//! and those files (never the shared :1883), real rumqttc device clients, and the consumer feeding
//! a recording fake of dispatch (idempotent on the key, as dispatch's ingest is).

#[path = "mqtt_cases/broker.rs"]
mod broker;
#[path = "mqtt_cases/consumer.rs"]
mod consumer;
#[path = "mqtt_cases/devices.rs"]
mod devices;

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use chrono::{DateTime, Utc};
use http::{Request, StatusCode, header};
use kreki_auth::keys::{KeyRing, SigningKey};
use kreki_auth::token::Issuer;
use kreki_auth::{Role, Roles, TokenVerifier, UserId};
use kreki_platform::Problem;
use kreki_realtime::BoxFuture;
use kreki_realtime::mqtt::{
    Consumer, LocationSink, MqttConfig, MqttState, PanicSink, TransportOptions, connect_rumqttc,
};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use uuid::Uuid;

/// Longest any one expected message may take.
const PATIENCE: Duration = Duration::from_secs(10);
const SERVICE_USER: &str = "kreki";
const SERVICE_PASSWORD: &str = "service-secret-for-tests";

// ---------------------------------------------------------------- the registry over HTTP

struct Api {
    router: axum::Router,
    issuer: Issuer,
    pool: PgPool,
}

struct Person {
    id: Uuid,
    token: String,
}

impl Api {
    fn new(pool: PgPool, config: MqttConfig) -> Self {
        let pem = kreki_auth::keys::generate_pem().expect("a test key");
        let key = SigningKey::from_pem(&pem).expect("the test key loads");
        let keys = Arc::new(KeyRing::new(Some(key), Vec::new()));
        let verifier = TokenVerifier::with_keys("kreki".to_owned(), &keys.public_keys());
        let issuer = Issuer::new(keys, "kreki".to_owned(), Duration::from_secs(900));
        let state = MqttState {
            pool: pool.clone(),
            verifier,
            config: Arc::new(config),
        };
        let (router, _) = kreki_realtime::mqtt::router(state).split_for_parts();
        Self {
            router,
            issuer,
            pool,
        }
    }

    fn person(&self, roles: &[Role]) -> Person {
        let id = Uuid::now_v7();
        let token = self
            .issuer
            .for_user(UserId(id), &Roles::new(roles.iter().copied()), "Sari")
            .expect("a token");
        Person { id, token }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        who: Option<&Person>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(person) = who {
            request = request.header(header::AUTHORIZATION, format!("Bearer {}", person.token));
        }
        let request = match body {
            Some(body) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        }
        .expect("a request");
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("an answer");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("a body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Registers a device; answers (id, password).
    async fn register(&self, who: &Person, kind: &str) -> (String, String) {
        let (status, body) = self
            .call(
                "POST",
                "/v1/mqtt/devices",
                Some(who),
                Some(json!({"kind": kind})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let id = body["device"]["id"].as_str().expect("an id").to_owned();
        let password = body["mqtt"]["password"]
            .as_str()
            .expect("a password")
            .to_owned();
        (id, password)
    }
}

fn fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| e["field"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// A Mosquitto of our own on a free port, configured like `deploy/mosquitto/mosquitto.conf`
/// (no anonymous clients, the password and ACL files `sync_credentials` writes).
struct Broker {
    port: u16,
    dir: PathBuf,
    child: Child,
}

impl Broker {
    fn dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kreki-mqtt-test-{}", Uuid::now_v7()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        dir
    }

    fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|addr| addr.port())
            .expect("a free port")
    }

    fn spawn(dir: &Path, port: u16) -> Child {
        // The shipped settings, with this test's port, files and (as root) user.
        let shipped = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/mosquitto/mosquitto.conf"),
        )
        .expect("deploy/mosquitto/mosquitto.conf");
        let mut config = String::new();
        for line in shipped.lines() {
            let line = if line.starts_with("listener ") {
                format!("listener {port} 127.0.0.1")
            } else if line.starts_with("persistence ") {
                "persistence false".to_owned()
            } else {
                line.replace(
                    "/etc/mosquitto/kreki/passwd",
                    &dir.join("passwd").display().to_string(),
                )
                .replace(
                    "/etc/mosquitto/kreki/acl",
                    &dir.join("acl").display().to_string(),
                )
            };
            config.push_str(&line);
            config.push('\n');
        }
        config.push_str("user root\n");
        let path = dir.join("mosquitto.conf");
        std::fs::write(&path, config).expect("the config is written");
        Command::new("mosquitto")
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto starts (deploy/local-services.sh installs it)")
    }

    async fn wait_listening(port: u16) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "mosquitto did not listen"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn start(dir: PathBuf, port: u16) -> Self {
        let child = Self::spawn(&dir, port);
        Self::wait_listening(port).await;
        Self { port, dir, child }
    }

    async fn restart(&mut self) {
        self.stop();
        self.child = Self::spawn(&self.dir, self.port);
        Self::wait_listening(self.port).await;
    }

    async fn sync_and_start(pool: &PgPool) -> Self {
        let dir = Self::dir();
        sync(pool, &dir).await;
        Self::start(dir, Self::free_port()).await
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn sync(pool: &PgPool, dir: &Path) {
    kreki_realtime::mqtt::sync::sync_credentials(
        pool,
        SERVICE_USER,
        SERVICE_PASSWORD,
        &dir.join("passwd"),
        &dir.join("acl"),
    )
    .await
    .expect("the files are written");
}

/// A device (or any plain client): its client, the messages it receives, and whether the broker
/// let it in.
struct Device {
    client: AsyncClient,
    received: mpsc::Receiver<(String, Vec<u8>)>,
}

/// Connects as `username`; `Err` with the broker's reason when refused.
async fn connect(port: u16, username: &str, password: &str) -> Result<Device, String> {
    let mut options = MqttOptions::new(format!("test-{}", Uuid::now_v7()), "127.0.0.1", port);
    options.set_credentials(username, password);
    options.set_keep_alive(Duration::from_secs(10));
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    loop {
        match tokio::time::timeout(PATIENCE, eventloop.poll()).await {
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => break,
            Ok(Ok(_)) => {}
            Ok(Err(error)) => return Err(error.to_string()),
            Err(_) => return Err("no CONNACK".to_owned()),
        }
    }
    let (sender, received) = mpsc::channel(1024);
    tokio::spawn(async move {
        while let Ok(event) = eventloop.poll().await {
            if let Event::Incoming(Packet::Publish(publish)) = event
                && sender
                    .send((publish.topic, publish.payload.to_vec()))
                    .await
                    .is_err()
            {
                break;
            }
        }
    });
    Ok(Device { client, received })
}

impl Device {
    async fn subscribe(&mut self, filter: &str) {
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .expect("subscribe is queued");
        // The SUBACK is not surfaced; a publish round trip through our own topic would need an
        // ACL for it, so give the broker a moment instead.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    async fn publish(&self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .expect("publish is queued");
    }

    async fn next(&mut self) -> (String, Vec<u8>) {
        tokio::time::timeout(PATIENCE, self.received.recv())
            .await
            .expect("a message in time")
            .expect("the client runs")
    }
}
