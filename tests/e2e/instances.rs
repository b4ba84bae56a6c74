//! Two full `kreki serve` processes sharing PostgreSQL, Redis and a Mosquitto of their own, with
//! dispatch (issue 7's tests): instance A runs the MQTT consumer, volunteers talk to instance B.
//!
//! - a panic button's press over MQTT, handled by A, reaches a volunteer's WebSocket on B as an
//!   `offer`, and the button gets its ack with the alert id; the volunteer's duty and position went
//!   through B only, so A's matcher had to catch up;
//! - the socket on B acknowledges the offer, so A (whose wave made it) does not push it;
//! - a volunteer without a socket gets an FCM push from the fake (kind and distance only, TTL to
//!   the deadline), and their token the fake calls unregistered is pruned;
//! - the same press delivered twice makes one alert;
//! - with a private Redis stopped while a panic is dispatched and started again, no offer is lost:
//!   it is pushed and listed at once, and reaches the socket on B once Redis is back.
//!
//! B polls its outbox only every 60 s, so the waves of these tests run on A, where the panics are
//! ingested (A's dispatcher is woken at once), and B's acks have to cross instances.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::fanout::OwnRedis;
use crate::mqtt::{Mosquitto, start_mosquitto};
use crate::support::{
    JsonApi, MONAS, Server, TempDir, database_url, free_port, kreki, signing_key,
};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

const PATIENCE: Duration = Duration::from_secs(15);
const MQTT_PASSWORD: &str = "layanan-rahasia";

fn north(metres: f64) -> (f64, f64) {
    (MONAS.0 + metres / 110_574.0, MONAS.1)
}

fn shared_redis_url() -> String {
    std::env::var("KREKI_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// HTTP to one instance.
struct Api(JsonApi);

impl std::ops::Deref for Api {
    type Target = JsonApi;
    fn deref(&self) -> &JsonApi {
        &self.0
    }
}

impl Api {
    fn of(server: &Server) -> Self {
        Self(JsonApi::new(&server.base))
    }

    async fn login(&self, phone: &str) -> String {
        let (status, body) = self
            .send(
                Method::POST,
                "/v1/auth/login",
                None,
                Some(json!({"login": phone, "password": "kata-sandi-aman"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["access_token"].as_str().expect("a token").to_owned()
    }

    /// Puts a volunteer on duty at `at`.
    async fn on_duty_at(&self, token: &str, at: (f64, f64)) {
        let (status, body) = self
            .send(
                Method::PUT,
                "/v1/volunteers/me/duty",
                Some(token),
                Some(json!({"on_duty": true})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, body) = self
            .send(
                Method::POST,
                "/v1/volunteers/me/location",
                Some(token),
                Some(json!({"lat": at.0, "lng": at.1, "accuracy_m": 5})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }

    async fn register_phone(&self, token: &str, fcm_token: &str) {
        let (status, body) = self
            .send(
                Method::POST,
                "/v1/devices",
                Some(token),
                Some(json!({"platform": "android", "token": fcm_token})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    async fn devices(&self, token: &str) -> Vec<Value> {
        let (status, body) = self
            .send(Method::GET, "/v1/devices", Some(token), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body.as_array().expect("a list").clone()
    }

    async fn offers(&self, token: &str) -> Vec<Value> {
        let (status, body) = self
            .send(Method::GET, "/v1/volunteers/me/offers", Some(token), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body.as_array().expect("a list").clone()
    }
}

/// Creates an account with the CLI (extra `roles` beyond citizen); password `kata-sandi-aman`.
fn account(url: &str, phone: &str, name: &str, roles: &[&str]) {
    let mut command = kreki();
    command
        .args([
            "user",
            "create",
            "--phone",
            phone,
            "--password",
            "kata-sandi-aman",
        ])
        .args(["--name", name])
        .env("KREKI_DATABASE__URL", url);
    for role in roles {
        command.args(["--role", role]);
    }
    let created = command.output().expect("runs");
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
}

async fn connect(server: &Server, token: &str) -> Socket {
    let url = format!(
        "{}/v1/ws?access_token={token}",
        server.base.replacen("http://", "ws://", 1)
    );
    let (socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("upgraded");
    socket
}

/// The next frame of `kind`, skipping others (alert updates, positions).
async fn next_of(socket: &mut Socket, kind: &str) -> Value {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let message = tokio::time::timeout_at(deadline, socket.next())
            .await
            .unwrap_or_else(|_| panic!("no {kind} frame in time"))
            .expect("open")
            .expect("a valid frame");
        if let Message::Text(text) = message {
            let frame: Value = serde_json::from_str(text.as_str()).expect("JSON");
            if frame["type"] == kind {
                return frame;
            }
        }
    }
}

/// A device's MQTT session listening to its ack topic (`mosquitto_sub`), ready once subscribed.
struct AckListener {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl AckListener {
    fn start(port: u16, device: &str, password: &str) -> Self {
        // Line-buffered, so the debug line saying it subscribed arrives at once.
        let mut child = Command::new("stdbuf")
            .args([
                "-oL",
                "mosquitto_sub",
                "-d",
                "-q",
                "1",
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .args([
                "-u",
                device,
                "-P",
                password,
                "-i",
                &format!("{device}-acks"),
            ])
            .args(["-t", &format!("kreki/v1/panic/{device}/ack")])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto_sub runs");
        let stdout = child.stdout.take().expect("piped");
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let listener = Self { child, lines };
        let deadline = Instant::now() + PATIENCE;
        let mut seen = Vec::new();
        loop {
            match listener
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) if line.contains("SUBACK") => return listener,
                Ok(line) => seen.push(line),
                Err(error) => panic!("mosquitto_sub did not subscribe ({error}): {seen:?}"),
            }
        }
    }

    /// The next ack (a JSON line), waiting at most `within`.
    fn next(&self, within: Duration) -> Option<Value> {
        let deadline = Instant::now() + within;
        loop {
            let line = self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .ok()?;
            if line.starts_with('{') {
                return Some(serde_json::from_str(&line).expect("acks are JSON"));
            }
        }
    }
}

impl Drop for AckListener {
    fn drop(&mut self) {
        drop(self.child.kill());
        drop(self.child.wait());
    }
}

/// Publishes `payload` as the panic button `device` (QoS 1).
fn press(port: u16, device: &str, password: &str, payload: &Value) {
    let status = Command::new("mosquitto_pub")
        .args(["-q", "1", "-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-u", device, "-P", password])
        .args(["-t", &format!("kreki/v1/panic/{device}")])
        .args(["-m", &payload.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("mosquitto_pub runs");
    assert!(status.success(), "the broker took the press");
}

/// Presses until the button is acknowledged (A's consumer may still be subscribing: a device
/// retries the same press, which the `msg_id` makes one alert); answers the ack.
fn press_until_acked(
    acks: &AckListener,
    port: u16,
    device: &str,
    password: &str,
    payload: &Value,
) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        press(port, device, password, payload);
        if let Some(ack) = acks.next(Duration::from_secs(2)) {
            return ack;
        }
        assert!(
            Instant::now() < deadline,
            "the press was never acknowledged"
        );
    }
}

/// The cluster: a broker, A (MQTT consumer) and B, a fake FCM, and the accounts.
struct Cluster {
    _dir: TempDir,
    _broker: Mosquitto,
    a: Server,
    b: Server,
    mqtt_port: u16,
    fake: kreki_realtime::push::FakeFcm,
    /// The citizen's panic button: MQTT username (= device id) and password.
    button: (String, String),
}

impl Cluster {
    async fn start(pool: &PgPool, redis_url: String, prefix: &str) -> Self {
        drop(rustls::crypto::aws_lc_rs::default_provider().install_default());
        let dir = TempDir::new();
        let key = signing_key(&dir.0);
        let url = database_url(pool);
        let fake = kreki_realtime::push::FakeFcm::start(
            "kreki-e2e",
            "127.0.0.1:0".parse().expect("an address"),
        )
        .await
        .expect("the fake FCM starts");
        let account_file = dir.0.join("fcm-service-account.json");
        std::fs::write(&account_file, fake.service_account_json()).expect("written");
        let mqtt_port = free_port();
        let env = vec![
            ("KREKI_DATABASE__URL", url.clone()),
            ("KREKI_AUTH__SIGNING_KEY_FILE", key.display().to_string()),
            ("KREKI_REALTIME__REDIS__URL", redis_url),
            ("KREKI_REALTIME__REDIS__KEY_PREFIX", prefix.to_owned()),
            ("KREKI_REALTIME__REDIS__PRESENCE_TTL_S", "3".to_owned()),
            (
                "KREKI_PUSH__FCM__SERVICE_ACCOUNT_FILE",
                account_file.display().to_string(),
            ),
            ("KREKI_PUSH__FCM__BASE_URL", fake.base_url()),
            ("KREKI_PUSH__FCM__TOKEN_URL", fake.token_url()),
            ("KREKI_PUSH__PUSH_GRACE_MS", "2000".to_owned()),
            ("KREKI_MQTT__HOST", "127.0.0.1".to_owned()),
            ("KREKI_MQTT__PORT", mqtt_port.to_string()),
            ("KREKI_MQTT__PASSWORD", MQTT_PASSWORD.to_owned()),
        ];
        let mut env_b = env.clone();
        env_b.push(("KREKI_DISPATCH__POLL_INTERVAL_MS", "60000".to_owned()));
        let b = Server::start(&env_b).await;

        account(&url, "081300000001", "Sari", &[]);
        account(&url, "081300000002", "Budi", &["volunteer"]);
        account(&url, "081300000003", "Rina", &["volunteer"]);
        let api = Api::of(&b);
        let citizen = api.login("081300000001").await;
        let (status, device) = api
            .send(
                Method::POST,
                "/v1/mqtt/devices",
                Some(&citizen),
                Some(json!({"kind": "panic", "label": "dapur"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{device}");
        let button = (
            device["mqtt"]["username"]
                .as_str()
                .expect("a username")
                .to_owned(),
            device["mqtt"]["password"]
                .as_str()
                .expect("a password")
                .to_owned(),
        );

        // The operator's sync, then the broker with those files.
        let files = dir.0.join("mosquitto");
        std::fs::create_dir_all(&files).expect("a directory");
        let synced = kreki()
            .args(["mqtt", "sync-credentials", "--password-file"])
            .arg(files.join("passwd"))
            .arg("--acl-file")
            .arg(files.join("acl"))
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .expect("runs");
        assert!(
            synced.status.success(),
            "{}",
            String::from_utf8_lossy(&synced.stderr)
        );
        let broker = start_mosquitto(&files, mqtt_port);
        let deadline = Instant::now() + PATIENCE;
        while std::net::TcpStream::connect(("127.0.0.1", mqtt_port)).is_err() {
            assert!(Instant::now() < deadline, "mosquitto listens");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        let mut env_a = env;
        env_a.push(("KREKI_MQTT__ENABLED", "true".to_owned()));
        env_a.push(("KREKI_MQTT__CLIENT_ID", "kreki-a".to_owned()));
        env_a.push(("KREKI_MQTT__RECONNECT_MAX_MS", "500".to_owned()));
        let a = Server::start(&env_a).await;
        Self {
            _dir: dir,
            _broker: broker,
            a,
            b,
            mqtt_port,
            fake,
            button,
        }
    }

    fn acks(&self) -> AckListener {
        AckListener::start(self.mqtt_port, &self.button.0, &self.button.1)
    }

    fn press_until_acked(&self, acks: &AckListener, payload: &Value) -> Value {
        press_until_acked(
            acks,
            self.mqtt_port,
            &self.button.0,
            &self.button.1,
            payload,
        )
    }

    /// The fake's FCM sends to `token`.
    fn pushes_to(&self, token: &str) -> Vec<kreki_realtime::push::fake_fcm::Recorded> {
        self.fake
            .requests()
            .into_iter()
            .filter(|request| request.channel == "fcm" && request.body["message"]["token"] == token)
            .collect()
    }

    async fn wait_for_push(&self, token: &str) -> kreki_realtime::push::fake_fcm::Recorded {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(push) = self.pushes_to(token).into_iter().next() {
                return push;
            }
            assert!(Instant::now() < deadline, "no push to {token}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn stop(self) {
        self.a.terminate();
        self.b.terminate();
        assert!(self.a.wait().await.success());
        assert!(self.b.wait().await.success());
    }
}

#[sqlx::test(migrations = false)]
async fn a_panic_over_mqtt_on_a_is_offered_on_b_pushed_to_the_socketless_and_made_once(
    pool: PgPool,
) {
    let prefix = format!("kreki:e2e:{}:", uuid::Uuid::new_v4().simple());
    let cluster = Cluster::start(&pool, shared_redis_url(), &prefix).await;
    let on_b = Api::of(&cluster.b);
    let budi = on_b.login("081300000002").await;
    let rina = on_b.login("081300000003").await;
    // Both volunteers go on duty through B only; Budi keeps a socket there, Rina has none.
    on_b.on_duty_at(&budi, north(300.0)).await;
    on_b.on_duty_at(&rina, north(-200.0)).await;
    on_b.register_phone(&budi, "budi-phone").await;
    on_b.register_phone(&rina, "rina-phone").await;
    on_b.register_phone(&rina, "rina-old-phone").await;
    cluster.fake.unregister("rina-old-phone");
    let mut budi_socket = connect(&cluster.b, &budi).await;

    let acks = cluster.acks();
    let payload = json!({"lat": MONAS.0, "lng": MONAS.1, "accuracy_m": 10, "kind": "security",
                         "msg_id": "press-1"});
    let ack = cluster.press_until_acked(&acks, &payload);
    assert_eq!(ack["status"], "accepted", "{ack}");
    assert_eq!(ack["msg_id"], "press-1", "{ack}");
    let alert_id = ack["alert_id"].as_str().expect("an alert id").to_owned();

    // Handled by A, offered on B's socket; the socket acknowledges it.
    let offer = next_of(&mut budi_socket, "offer").await;
    assert_eq!(offer["offer"]["alert"]["id"], alert_id.as_str(), "{offer}");
    assert_eq!(offer["offer"]["alert"]["kind"], "security", "{offer}");
    budi_socket
        .send(Message::text(
            json!({"type": "ack", "seq": offer["seq"], "epoch": offer["epoch"]}).to_string(),
        ))
        .await
        .expect("sent");

    // Rina has no socket: her phone gets the push after the grace, kind and distance only, TTL
    // to the deadline; the token FCM calls unregistered is gone afterwards.
    let push = cluster.wait_for_push("rina-phone").await;
    let message = &push.body["message"];
    assert_eq!(message["data"]["kind"], "security", "{message}");
    assert_eq!(message["data"]["alert_id"], alert_id.as_str(), "{message}");
    assert_eq!(message["data"]["drill"], "false", "a real alert: {message}");
    let distance_m: f64 = message["data"]["distance_m"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .expect("a distance");
    assert!((190.0..=210.0).contains(&distance_m), "{distance_m}");
    assert_eq!(message["android"]["priority"], "HIGH");
    let ttl_s: u64 = message["android"]["ttl"]
        .as_str()
        .and_then(|ttl| ttl.strip_suffix('s'))
        .and_then(|ttl| ttl.parse().ok())
        .expect("a TTL in seconds");
    assert!(
        (20..=30).contains(&ttl_s),
        "the TTL ends at the deadline: {ttl_s}"
    );
    let raw = String::from_utf8_lossy(&push.raw).to_string();
    for secret in ["Sari", "-6.17", "106.82"] {
        assert!(!raw.contains(secret), "the push leaks {secret}: {raw}");
    }
    let deadline = Instant::now() + PATIENCE;
    loop {
        let devices = on_b.devices(&rina).await;
        if devices.len() == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the dead token stays: {devices:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !cluster.pushes_to("rina-old-phone").is_empty(),
        "it was tried"
    );

    // Budi acknowledged on B within the grace: A, whose wave made the offer, did not push it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        cluster.pushes_to("budi-phone").is_empty(),
        "an offer acknowledged on B was pushed by A"
    );

    // The same press delivered again (a QoS 1 re-delivery): the same alert, and nothing new.
    let again = cluster.press_until_acked(&acks, &payload);
    assert_eq!(again["alert_id"], alert_id.as_str(), "{again}");
    let alerts: i64 = sqlx::query_scalar("SELECT count(*) FROM dispatch.alerts")
        .fetch_one(&pool)
        .await
        .expect("counted");
    let repeat_presses: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM dispatch.alert_events WHERE type = 'repeat_press'",
    )
    .fetch_one(&pool)
    .await
    .expect("counted");
    assert_eq!(
        (alerts, repeat_presses),
        (1, 0),
        "a re-delivery is the same press, not a second one"
    );

    drop(budi_socket);
    cluster.stop().await;
}

#[sqlx::test(migrations = false)]
async fn redis_stopped_while_a_panic_is_dispatched_and_restarted_loses_no_offer(pool: PgPool) {
    let mut redis = OwnRedis::start();
    let cluster = Cluster::start(&pool, redis.url(), "kreki:e2e:").await;
    let on_a = Api::of(&cluster.a);
    let on_b = Api::of(&cluster.b);
    let budi = on_b.login("081300000002").await;
    on_b.on_duty_at(&budi, north(300.0)).await;
    on_b.register_phone(&budi, "budi-phone").await;
    let mut budi_socket = connect(&cluster.b, &budi).await;
    let citizen = on_a.login("081300000001").await;
    let panic = |key: &'static str, at: (f64, f64)| {
        let client = reqwest::Client::new();
        let base = cluster.a.base.clone();
        let citizen = citizen.clone();
        async move {
            let response = client
                .post(format!("{base}/v1/alerts"))
                .bearer_auth(citizen)
                .header("Idempotency-Key", key)
                .json(&json!({"kind": "security", "location": {"lat": at.0, "lng": at.1}}))
                .send()
                .await
                .expect("answered");
            assert_eq!(response.status(), StatusCode::CREATED);
            let alert: Value = response.json().await.expect("JSON");
            alert["id"].as_str().expect("an id").to_owned()
        }
    };

    // Redis goes away; a panic on A is still dispatched (PostgreSQL only).
    redis.stop();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let during = panic("while-redis-is-down", MONAS).await;
    // The offer exists and reaches Budi: by push (his socket on B cannot acknowledge a frame it
    // never got) and in his pending offers.
    let push = cluster.wait_for_push("budi-phone").await;
    assert_eq!(push.body["message"]["data"]["alert_id"], during.as_str());
    let offers = on_b.offers(&budi).await;
    assert!(
        offers
            .iter()
            .any(|offer| offer["alert"]["id"] == during.as_str()),
        "{offers:?}"
    );

    // Redis is back (empty): A hands the offer it could deliver only locally to B, whose socket
    // gets it now; and the next offer crosses over as usual.
    redis.restart();
    let offer = next_of(&mut budi_socket, "offer").await;
    assert_eq!(offer["offer"]["alert"]["id"], during.as_str(), "{offer}");
    let after = panic("after-redis-returned", north(2000.0)).await;
    let offer = next_of(&mut budi_socket, "offer").await;
    assert_eq!(offer["offer"]["alert"]["id"], after.as_str(), "{offer}");
    drop(budi_socket);
    cluster.stop().await;
}
