//! MQTT devices end to end: the registry routes over a fresh database, `sync_credentials` writing
//! Mosquitto's files, a real Mosquitto started on a free port with `deploy/mosquitto/`'s settings
//! and those files (never the shared :1883), real rumqttc device clients, and the consumer feeding
//! a recording fake of dispatch (idempotent on the key, as dispatch's ingest is).

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

#[sqlx::test(migrations = "../migrations")]
async fn users_register_list_and_revoke_their_own_devices(pool: PgPool) {
    let api = Api::new(
        pool,
        MqttConfig {
            max_devices_per_user: 2,
            ..MqttConfig::default()
        },
    );
    let citizen = api.person(&[Role::Citizen]);
    let volunteer = api.person(&[Role::Citizen, Role::Volunteer]);

    let (status, _) = api.call("GET", "/v1/mqtt/devices", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, body) = api
        .call(
            "POST",
            "/v1/mqtt/devices",
            Some(&citizen),
            Some(json!({"kind": "panic", "label": "Tombol di dapur"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["device"]["id"].as_str().expect("an id").to_owned();
    assert!(id.starts_with("pb-"), "{id}");
    assert_eq!(body["mqtt"]["username"], id.as_str());
    assert_eq!(body["mqtt"]["password"].as_str().map(str::len), Some(32));
    assert_eq!(
        body["device"]["publish_topic"],
        format!("kreki/v1/panic/{id}")
    );
    assert_eq!(
        body["device"]["ack_topic"],
        format!("kreki/v1/panic/{id}/ack")
    );

    // Only a hash is kept, and it is Mosquitto's format for exactly that password.
    let hash: String =
        sqlx::query_scalar("SELECT credentials_hash FROM realtime.mqtt_devices WHERE id = $1")
            .bind(&id)
            .fetch_one(&api.pool)
            .await
            .expect("the row");
    let password = body["mqtt"]["password"].as_str().expect("a password");
    assert!(!hash.contains(password));
    assert!(kreki_realtime::mqtt::credentials::verify_mosquitto_hash(
        password, &hash
    ));

    // Trackers are for volunteers.
    let (status, problem) = api
        .call(
            "POST",
            "/v1/mqtt/devices",
            Some(&citizen),
            Some(json!({"kind": "tracker"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    assert_eq!(fields(&problem), ["kind"]);
    let (status, body) = api
        .call(
            "POST",
            "/v1/mqtt/devices",
            Some(&volunteer),
            Some(json!({"kind": "tracker"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        body["device"]["publish_topic"],
        format!("kreki/v1/location/{}", volunteer.id)
    );
    assert_eq!(body["device"]["ack_topic"], Value::Null);

    // Bad input names the field.
    let (status, problem) = api
        .call(
            "POST",
            "/v1/mqtt/devices",
            Some(&citizen),
            Some(json!({"kind": "toaster"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(fields(&problem), ["kind"]);
    let (status, problem) = api
        .call(
            "POST",
            "/v1/mqtt/devices",
            Some(&citizen),
            Some(json!({"kind": "panic", "label": "x".repeat(101)})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(fields(&problem), ["label"]);

    // The limit counts live devices only.
    api.register(&citizen, "panic").await;
    let (status, problem) = api
        .call(
            "POST",
            "/v1/mqtt/devices",
            Some(&citizen),
            Some(json!({"kind": "panic"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");

    // Nobody revokes someone else's device; revoking is idempotent and frees a place.
    let path = format!("/v1/mqtt/devices/{id}");
    let (status, _) = api.call("DELETE", &path, Some(&volunteer), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = api
        .call("DELETE", "/v1/mqtt/devices/nonsense", Some(&citizen), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for _ in 0..2 {
        let (status, body) = api.call("DELETE", &path, Some(&citizen), None).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    }
    let (status, list) = api
        .call("GET", "/v1/mqtt/devices", Some(&citizen), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let list = list.as_array().expect("a list");
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["id"], id.as_str());
    assert!(list[0]["revoked_at"].is_string());
    assert!(list[1]["revoked_at"].is_null());
    assert!(list.iter().all(|device| device.get("password").is_none()));
    api.register(&citizen, "panic").await;
}

// ---------------------------------------------------------------- a real Mosquitto

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

#[sqlx::test(migrations = "../migrations")]
async fn the_broker_lets_each_device_publish_only_its_own_topic(pool: PgPool) {
    let api = Api::new(pool.clone(), MqttConfig::default());
    let citizen = api.person(&[Role::Citizen]);
    let volunteer = api.person(&[Role::Citizen, Role::Volunteer]);
    let (button, button_password) = api.register(&citizen, "panic").await;
    let (other_button, _) = api.register(&citizen, "panic").await;
    let (tracker, tracker_password) = api.register(&volunteer, "tracker").await;
    let (revoked, revoked_password) = api.register(&citizen, "panic").await;
    let (status, _) = api
        .call(
            "DELETE",
            &format!("/v1/mqtt/devices/{revoked}"),
            Some(&citizen),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let broker = Broker::sync_and_start(&pool).await;

    // Wrong passwords, revoked devices and anonymous clients are refused.
    assert!(connect(broker.port, &button, "wrong").await.is_err());
    assert!(
        connect(broker.port, &revoked, &revoked_password)
            .await
            .is_err()
    );
    assert!(connect(broker.port, "", "").await.is_err());

    let mut service = connect(broker.port, SERVICE_USER, SERVICE_PASSWORD)
        .await
        .expect("the service account connects");
    service.subscribe("kreki/v1/panic/+").await;
    service.subscribe("kreki/v1/location/+").await;

    // A button writes its own topic, not another's (the refused publish is sent first, so had it
    // passed, it would arrive first).
    let mut device = connect(broker.port, &button, &button_password)
        .await
        .expect("the button connects");
    device
        .publish(&format!("kreki/v1/panic/{other_button}"), "forged")
        .await;
    device
        .publish(&format!("kreki/v1/location/{}", volunteer.id), "forged")
        .await;
    device
        .publish(&format!("kreki/v1/panic/{button}"), "mine")
        .await;
    assert_eq!(
        service.next().await,
        (format!("kreki/v1/panic/{button}"), b"mine".to_vec())
    );

    // A tracker writes its owner's location topic only.
    let tracker_client = connect(broker.port, &tracker, &tracker_password)
        .await
        .expect("the tracker connects");
    tracker_client
        .publish(&format!("kreki/v1/location/{}", citizen.id), "forged")
        .await;
    tracker_client
        .publish(&format!("kreki/v1/location/{}", volunteer.id), "here")
        .await;
    assert_eq!(
        service.next().await,
        (
            format!("kreki/v1/location/{}", volunteer.id),
            b"here".to_vec()
        )
    );

    // The button reads its own acks and nobody else's.
    device
        .subscribe(&format!("kreki/v1/panic/{other_button}/ack"))
        .await;
    device
        .subscribe(&format!("kreki/v1/panic/{button}/ack"))
        .await;
    service
        .publish(&format!("kreki/v1/panic/{other_button}/ack"), "theirs")
        .await;
    service
        .publish(&format!("kreki/v1/panic/{button}/ack"), "yours")
        .await;
    assert_eq!(
        device.next().await,
        (format!("kreki/v1/panic/{button}/ack"), b"yours".to_vec())
    );
}

// ---------------------------------------------------------------- the consumer

/// (citizen, device, lat, lng, kind) of one panic call.
type PanicCall = (Uuid, String, f64, f64, Option<String>);
/// (user, lat, lng, accuracy_m, recorded_at) of one location call.
type LocationCall = (Uuid, f64, f64, Option<f64>, DateTime<Utc>);

/// A fake of dispatch: idempotent on the key like its ingest, recording every call.
#[derive(Default)]
struct Dispatch {
    alerts: Mutex<HashMap<String, Uuid>>,
    panic_calls: Mutex<Vec<PanicCall>>,
    locations: Mutex<Vec<LocationCall>>,
    /// Answer this many panic calls with a 503 first.
    fail_first: AtomicUsize,
    /// Hold each location call this long.
    location_delay: Mutex<Duration>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

impl PanicSink for Dispatch {
    fn panic(
        &self,
        citizen: Uuid,
        device_id: &str,
        idempotency_key: String,
        lat: f64,
        lng: f64,
        _accuracy_m: Option<f64>,
        kind: Option<String>,
    ) -> BoxFuture<'_, Result<Uuid, Problem>> {
        let device = device_id.to_owned();
        Box::pin(async move {
            if self
                .fail_first
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                return Err(Problem::unavailable("the database is restarting"));
            }
            if let Ok(mut calls) = self.panic_calls.lock() {
                calls.push((citizen, device, lat, lng, kind));
            }
            let mut alerts = self.alerts.lock().expect("not poisoned");
            Ok(*alerts.entry(idempotency_key).or_insert_with(Uuid::now_v7))
        })
    }
}

impl LocationSink for Dispatch {
    fn location(
        &self,
        user: Uuid,
        lat: f64,
        lng: f64,
        accuracy_m: Option<f64>,
        recorded_at: DateTime<Utc>,
    ) -> BoxFuture<'_, Result<(), Problem>> {
        Box::pin(async move {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_in_flight.fetch_max(now, Ordering::SeqCst);
            let delay = *self.location_delay.lock().expect("not poisoned");
            tokio::time::sleep(delay).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            if let Ok(mut locations) = self.locations.lock() {
                locations.push((user, lat, lng, accuracy_m, recorded_at));
            }
            if lat == 66.6 {
                // A sink that fails must not stop the consumer.
                return Err(Problem::unavailable("matcher busy"));
            }
            Ok(())
        })
    }
}

impl Dispatch {
    fn alert_count(&self) -> usize {
        self.alerts.lock().map(|a| a.len()).unwrap_or(0)
    }

    fn location_count(&self) -> usize {
        self.locations.lock().map(|l| l.len()).unwrap_or(0)
    }

    async fn wait_for_locations(&self, n: usize) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while self.location_count() < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} of {n} locations arrived",
                self.location_count()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

struct Running {
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("the consumer stops")
            .expect("the consumer did not panic");
    }
}

fn consumer_config(port: u16) -> MqttConfig {
    MqttConfig {
        enabled: true,
        port,
        client_id: format!("kreki-test-{}", Uuid::now_v7()),
        username: SERVICE_USER.to_owned(),
        password: SERVICE_PASSWORD.to_owned().into(),
        reconnect_max_ms: 200,
        ..MqttConfig::default()
    }
}

async fn start_consumer(pool: &PgPool, config: &MqttConfig, dispatch: Arc<Dispatch>) -> Running {
    let shutdown = CancellationToken::new();
    let (transport, mut events, _driver) =
        connect_rumqttc(TransportOptions::from_config(config), shutdown.clone());
    // Wait for the first connect (and its subscriptions) before handing the events over.
    let first = tokio::time::timeout(PATIENCE, events.recv())
        .await
        .expect("an event in time");
    assert!(
        matches!(first, Some(kreki_realtime::mqtt::TransportEvent::Connected)),
        "{first:?}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let consumer = Consumer::new(
        config,
        transport,
        pool.clone(),
        dispatch.clone(),
        dispatch.clone(),
    );
    let task = tokio::spawn(consumer.run(events, shutdown.clone()));
    Running { shutdown, task }
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("an ack is JSON")
}

#[sqlx::test(migrations = "../migrations")]
async fn a_panic_over_mqtt_becomes_one_alert_and_is_acknowledged(pool: PgPool) {
    let api = Api::new(pool.clone(), MqttConfig::default());
    let citizen = api.person(&[Role::Citizen]);
    let (button, password) = api.register(&citizen, "panic").await;
    let broker = Broker::sync_and_start(&pool).await;
    let dispatch = Arc::new(Dispatch::default());
    let running = start_consumer(&pool, &consumer_config(broker.port), dispatch.clone()).await;

    let mut device = connect(broker.port, &button, &password)
        .await
        .expect("the button connects");
    let ack_topic = format!("kreki/v1/panic/{button}/ack");
    device.subscribe(&ack_topic).await;
    let topic = format!("kreki/v1/panic/{button}");

    // The same press delivered twice (a device retry, or the broker's redelivery) is one alert,
    // and both copies are acknowledged with its id.
    let press = r#"{"lat":-6.2001,"lng":106.8167,"accuracy_m":8,"kind":"medical"}"#;
    device.publish(&topic, press).await;
    device.publish(&topic, press).await;
    let (first_topic, first) = device.next().await;
    let (_, second) = device.next().await;
    assert_eq!(first_topic, ack_topic);
    let (first, second) = (json_of(&first), json_of(&second));
    assert_eq!(first["status"], "accepted", "{first}");
    assert_eq!(first["alert_id"], second["alert_id"]);
    assert_eq!(dispatch.alert_count(), 1);
    {
        let calls = dispatch.panic_calls.lock().expect("not poisoned");
        assert_eq!(calls[0].0, citizen.id, "the alert is the owner's");
        assert_eq!(calls[0].1, button);
        assert_eq!((calls[0].2, calls[0].3), (-6.2001, 106.8167));
        assert_eq!(calls[0].4.as_deref(), Some("medical"));
    }

    // Malformed payloads are refused with the field named, and the consumer carries on.
    device.publish(&topic, r#"{"lat":123,"lng":106.8}"#).await;
    let (_, refused) = device.next().await;
    let refused = json_of(&refused);
    assert_eq!(refused["status"], "rejected", "{refused}");
    assert_eq!(refused["problem"]["errors"][0]["field"], "lat");
    device.publish(&topic, b"\xff\xfe not json".to_vec()).await;
    let (_, garbage) = device.next().await;
    assert_eq!(json_of(&garbage)["problem"]["status"], 400);

    // A device numbering its presses gets exactly one alert per number; dispatch down for a moment
    // is retried, not lost.
    dispatch.fail_first.store(2, Ordering::SeqCst);
    let numbered = r#"{"lat":-6.3,"lng":106.9,"msg_id":"press-7"}"#;
    device.publish(&topic, numbered).await;
    let (_, ack) = device.next().await;
    let ack = json_of(&ack);
    assert_eq!(ack["status"], "accepted", "{ack}");
    assert_eq!(ack["msg_id"], "press-7");
    device
        .publish(
            &topic,
            r#"{"lat":-6.3,"lng":106.9,"accuracy_m":50,"msg_id":"press-7"}"#,
        )
        .await;
    let (_, again) = device.next().await;
    assert_eq!(json_of(&again)["alert_id"], ack["alert_id"]);
    assert_eq!(dispatch.alert_count(), 2);
    assert_ne!(ack["alert_id"], first["alert_id"]);

    running.stop().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn revoked_devices_and_garbage_are_dropped_without_stopping_the_consumer(pool: PgPool) {
    let api = Api::new(pool.clone(), MqttConfig::default());
    let citizen = api.person(&[Role::Citizen]);
    let volunteer = api.person(&[Role::Citizen, Role::Volunteer]);
    let (button, password) = api.register(&citizen, "panic").await;
    let (tracker, tracker_password) = api.register(&volunteer, "tracker").await;
    let broker = Broker::sync_and_start(&pool).await;
    let dispatch = Arc::new(Dispatch::default());
    let running = start_consumer(&pool, &consumer_config(broker.port), dispatch.clone()).await;

    let device = connect(broker.port, &button, &password)
        .await
        .expect("connects");
    let tracker_client = connect(broker.port, &tracker, &tracker_password)
        .await
        .expect("connects");
    // Revoked in the registry, not yet synced to the broker: the consumer refuses it anyway.
    let (status, _) = api
        .call(
            "DELETE",
            &format!("/v1/mqtt/devices/{button}"),
            Some(&citizen),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    device
        .publish(&format!("kreki/v1/panic/{button}"), r#"{"lat":1,"lng":1}"#)
        .await;

    let topic = format!("kreki/v1/location/{}", volunteer.id);
    for bad in [
        &b"{"[..],
        b"[]",
        br#"{"lat":-6.2}"#,
        br#"{"lat":-6.2,"lng":700}"#,
        &[0xff; 5000][..],
    ] {
        tracker_client.publish(&topic, bad.to_vec()).await;
    }
    tracker_client
        .publish(&topic, r#"{"lat":66.6,"lng":1}"#)
        .await;
    tracker_client
        .publish(
            &topic,
            r#"{"lat":-6.2,"lng":106.8,"accuracy_m":5,"recorded_at":"2026-11-21T06:00:00Z"}"#,
        )
        .await;
    dispatch.wait_for_locations(2).await;
    {
        let locations = dispatch.locations.lock().expect("not poisoned");
        let last = locations
            .iter()
            .find(|l| l.1 == -6.2)
            .expect("the good position");
        assert_eq!(last.0, volunteer.id);
        assert_eq!(last.3, Some(5.0));
        assert_eq!(last.4.to_rfc3339(), "2026-11-21T06:00:00+00:00");
    }
    assert_eq!(
        dispatch.alert_count(),
        0,
        "the revoked button made no alert"
    );
    assert_eq!(dispatch.location_count(), 2, "garbage reached no sink");
    running.stop().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn in_flight_work_is_bounded(pool: PgPool) {
    let api = Api::new(pool.clone(), MqttConfig::default());
    let volunteer = api.person(&[Role::Citizen, Role::Volunteer]);
    let (tracker, password) = api.register(&volunteer, "tracker").await;
    let broker = Broker::sync_and_start(&pool).await;
    let dispatch = Arc::new(Dispatch::default());
    *dispatch.location_delay.lock().expect("not poisoned") = Duration::from_millis(30);
    let config = MqttConfig {
        max_in_flight: 3,
        queue: 4,
        ..consumer_config(broker.port)
    };
    let running = start_consumer(&pool, &config, dispatch.clone()).await;
    let client = connect(broker.port, &tracker, &password)
        .await
        .expect("connects");
    let topic = format!("kreki/v1/location/{}", volunteer.id);
    for i in 0..40 {
        client
            .publish(&topic, format!(r#"{{"lat":-6.{i},"lng":106.8}}"#))
            .await;
    }
    dispatch.wait_for_locations(40).await;
    let max = dispatch.max_in_flight.load(Ordering::SeqCst);
    assert!(
        (2..=3).contains(&max),
        "at most 3 at once, and concurrently: {max}"
    );
    running.stop().await;
}

/// A slow sink must slow the consumer down, never stop it: with QoS 1 the broker keeps at most its
/// `max_inflight_messages` window unacknowledged, so the PUBACKs of handled messages have to reach
/// it while the consumer's queue is full, or the window stays full and nothing more arrives.
#[sqlx::test(migrations = "../migrations")]
async fn a_slow_sink_under_qos_1_load_never_stalls_the_consumer(pool: PgPool) {
    const MESSAGES: usize = 3_000;
    let api = Api::new(pool.clone(), MqttConfig::default());
    let volunteer = api.person(&[Role::Citizen, Role::Volunteer]);
    let (tracker, password) = api.register(&volunteer, "tracker").await;
    let broker = Broker::sync_and_start(&pool).await;
    let dispatch = Arc::new(Dispatch::default());
    *dispatch.location_delay.lock().expect("not poisoned") = Duration::from_millis(3);
    let config = MqttConfig {
        max_in_flight: 4,
        queue: 8,
        ..consumer_config(broker.port)
    };
    let running = start_consumer(&pool, &config, dispatch.clone()).await;
    let client = connect(broker.port, &tracker, &password)
        .await
        .expect("connects");
    let topic = format!("kreki/v1/location/{}", volunteer.id);
    let publisher = {
        let client = client.client.clone();
        tokio::spawn(async move {
            for i in 0..MESSAGES {
                client
                    .publish(
                        topic.as_str(),
                        QoS::AtLeastOnce,
                        false,
                        format!(r#"{{"lat":-6.{i},"lng":106.8}}"#),
                    )
                    .await
                    .expect("publish is queued");
            }
        })
    };
    // Progress, not just completion: a stall is a stretch with no new message at all.
    let stall = Duration::from_secs(3);
    let mut seen = 0;
    let mut last_progress = tokio::time::Instant::now();
    while seen < MESSAGES {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = dispatch.location_count();
        if now > seen {
            seen = now;
            last_progress = tokio::time::Instant::now();
        }
        assert!(
            last_progress.elapsed() < stall,
            "stalled: {seen} of {MESSAGES} locations arrived, then none for {stall:?} \
             (handlers running: {})",
            dispatch.in_flight.load(Ordering::SeqCst)
        );
    }
    publisher.await.expect("the publisher finished");
    assert_eq!(dispatch.location_count(), MESSAGES, "none lost");
    let max = dispatch.max_in_flight.load(Ordering::SeqCst);
    assert!(max <= 4, "at most 4 at once: {max}");
    running.stop().await;
}

/// A panic (QoS 1) that arrives while the consumer is full of QoS 0 positions must reach dispatch
/// as soon as the consumer has room, not when the connection next has traffic (the keep-alive
/// ping, 30 s here): QoS 0 positions send no PUBACK that would wake the transport.
#[sqlx::test(migrations = "../migrations")]
async fn a_panic_behind_qos_0_positions_is_not_held_until_the_next_ping(pool: PgPool) {
    let api = Api::new(pool.clone(), MqttConfig::default());
    let citizen = api.person(&[Role::Citizen, Role::Volunteer]);
    let (button, button_password) = api.register(&citizen, "panic").await;
    let (tracker, tracker_password) = api.register(&citizen, "tracker").await;
    let broker = Broker::sync_and_start(&pool).await;
    let dispatch = Arc::new(Dispatch::default());
    *dispatch.location_delay.lock().expect("not poisoned") = Duration::from_millis(200);
    let config = MqttConfig {
        max_in_flight: 1,
        queue: 2,
        keep_alive_s: 30,
        ..consumer_config(broker.port)
    };
    let running = start_consumer(&pool, &config, dispatch.clone()).await;
    let positions = connect(broker.port, &tracker, &tracker_password)
        .await
        .expect("the tracker connects");
    let button_client = connect(broker.port, &button, &button_password)
        .await
        .expect("the button connects");
    let topic = format!("kreki/v1/location/{}", citizen.id);
    for i in 0..4 {
        positions
            .client
            .publish(
                topic.as_str(),
                QoS::AtMostOnce,
                false,
                format!(r#"{{"lat":-6.{i},"lng":106.8}}"#),
            )
            .await
            .expect("publish is queued");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let pressed = tokio::time::Instant::now();
    button_client
        .publish(
            &format!("kreki/v1/panic/{button}"),
            r#"{"lat":-6.2001,"lng":106.8167}"#,
        )
        .await;
    // Four positions at 200 ms one at a time are about 0.8 s of work ahead of it.
    while dispatch.alert_count() == 0 {
        assert!(
            pressed.elapsed() < Duration::from_secs(5),
            "the panic waited more than 5 s behind {} handled positions",
            dispatch.location_count()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    running.stop().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn the_consumer_resubscribes_after_the_broker_restarts(pool: PgPool) {
    let api = Api::new(pool.clone(), MqttConfig::default());
    let volunteer = api.person(&[Role::Citizen, Role::Volunteer]);
    let (tracker, password) = api.register(&volunteer, "tracker").await;
    let mut broker = Broker::sync_and_start(&pool).await;
    let dispatch = Arc::new(Dispatch::default());
    let running = start_consumer(&pool, &consumer_config(broker.port), dispatch.clone()).await;
    let topic = format!("kreki/v1/location/{}", volunteer.id);
    let client = connect(broker.port, &tracker, &password)
        .await
        .expect("connects");
    client.publish(&topic, r#"{"lat":-6.1,"lng":106.8}"#).await;
    dispatch.wait_for_locations(1).await;

    // A restart without persistence forgets every session and subscription.
    broker.restart().await;

    // Once the consumer is back and subscribed again, positions flow again.
    let client = connect(broker.port, &tracker, &password)
        .await
        .expect("connects again");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while dispatch.location_count() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no position after the restart"
        );
        client.publish(&topic, r#"{"lat":-6.2,"lng":106.8}"#).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    running.stop().await;
}
