//! The push tests' harness: a real server (127.0.0.1:0) with the device routes and `/v1/ws`
//! against the real PostgreSQL, the real FCM and Web Push clients pointed at the fake FCM, and
//! helpers to register devices, open sockets and wait for pushes. Shared by `push.rs` and
//! `push_broadcasts.rs`; each uses a part of it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use kreki_auth::keys::{KeyRing, SigningKey};
use kreki_auth::token::Issuer;
use kreki_auth::{Roles, TokenVerifier, UserId};
use kreki_realtime::push::{
    Acknowledgements, DevicesState, FakeFcm, FcmClient, PushConfig, PushWhen, Pusher, VapidKey,
    WebPushClient, WebPushConfig,
};
use kreki_realtime::{Hub, RealtimeConfig, RealtimeState};
use serde_json::Value;
use sqlx::PgPool;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Longest any expected push may take to show up at the fake.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A client's WebSocket.
pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct App {
    pub addr: SocketAddr,
    pub pusher: Pusher,
    pub fake: FakeFcm,
    pub issuer: Issuer,
    pub http: reqwest::Client,
    pub shutdown: CancellationToken,
}

pub struct Person {
    pub id: Uuid,
    pub token: String,
}

impl Drop for App {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub async fn start(pool: PgPool, config: PushConfig) -> App {
    start_with(pool, config, None).await
}

pub async fn start_with(
    pool: PgPool,
    config: PushConfig,
    acks: Option<Arc<dyn Acknowledgements>>,
) -> App {
    // gcp_auth, reqwest and sqlx may bring different rustls providers: choose one
    // (docs/DESIGN.md, "Stack choices").
    drop(rustls::crypto::aws_lc_rs::default_provider().install_default());
    assert_eq!(config.validate(), Vec::<String>::new());
    let fake = FakeFcm::start("kreki-test", "127.0.0.1:0".parse().expect("an address"))
        .await
        .expect("the fake starts");
    let pem = kreki_auth::keys::generate_pem().expect("a test key");
    let keys = Arc::new(KeyRing::new(
        Some(SigningKey::from_pem(&pem).expect("loads")),
        Vec::new(),
    ));
    let verifier = TokenVerifier::with_keys("kreki".to_owned(), &keys.public_keys());
    let issuer = Issuer::new(
        Arc::clone(&keys),
        "kreki".to_owned(),
        Duration::from_secs(900),
    );
    let shutdown = CancellationToken::new();
    let hub = Hub::new(RealtimeConfig::default(), shutdown.clone());
    let timeout = Duration::from_millis(config.request_timeout_ms);
    let mut fcm_config = config.fcm.clone();
    fcm_config.base_url = fake.base_url();
    fcm_config.token_url = Some(fake.token_url());
    let fcm =
        FcmClient::from_service_account_json(&fake.service_account_json(), &fcm_config, timeout)
            .expect("the fake's service account is usable");
    let web = WebPushClient::new(
        VapidKey::generate().expect("a VAPID key"),
        config.web_push.subject.clone(),
        timeout,
    )
    .expect("a client");
    let config = PushConfig {
        web_push: WebPushConfig {
            allow_insecure_endpoints: true,
            ..config.web_push.clone()
        },
        ..config
    };
    let pusher = Pusher::new(
        config.clone(),
        pool.clone(),
        hub.clone(),
        Some(fcm),
        Some(web),
        shutdown.clone(),
    );
    let pusher = match acks {
        Some(acks) => pusher.with_acknowledgements(acks),
        None => pusher,
    };
    let devices = DevicesState {
        pool,
        verifier: verifier.clone(),
        config: Arc::new(config),
        vapid_public_key: pusher.vapid_public_key(),
    };
    let (router, _) = kreki_realtime::router(RealtimeState::new(hub.clone(), verifier))
        .merge(kreki_realtime::push::router(devices))
        .split_for_parts();
    let router = kreki_platform::http::finish(router, kreki_platform::http::Limits::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let addr = listener.local_addr().expect("bound");
    let stop = shutdown.clone();
    tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
            .expect("serves");
    });
    App {
        addr,
        pusher,
        fake,
        issuer,
        http: reqwest::Client::new(),
        shutdown,
    }
}

impl App {
    pub fn person(&self) -> Person {
        let id = UserId::new();
        let token = self
            .issuer
            .for_user(id, &Roles::default(), "Budi")
            .expect("signs");
        Person { id: id.0, token }
    }

    pub async fn register(&self, person: &Person, body: Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("http://{}/v1/devices", self.addr))
            .bearer_auth(&person.token)
            .json(&body)
            .send()
            .await
            .expect("answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn devices(&self, person: &Person) -> Vec<Value> {
        self.http
            .get(format!("http://{}/v1/devices", self.addr))
            .bearer_auth(&person.token)
            .send()
            .await
            .expect("answers")
            .json()
            .await
            .expect("JSON")
    }

    /// Waits until the fake has `count` requests of `channel`.
    pub async fn pushes(
        &self,
        channel: &str,
        count: usize,
    ) -> Vec<kreki_realtime::push::fake_fcm::Recorded> {
        let started = tokio::time::Instant::now();
        loop {
            let seen: Vec<_> = self
                .fake
                .requests()
                .into_iter()
                .filter(|request| request.channel == channel)
                .collect();
            if seen.len() >= count {
                return seen;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "{count} {channel} pushes expected, got {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

pub fn quick(push_when: PushWhen) -> PushConfig {
    PushConfig {
        push_when,
        push_grace_ms: 300,
        retry_base_ms: 50,
        ..PushConfig::default()
    }
}

pub async fn connect(
    app: &App,
    person: &Person,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let mut request = format!("ws://{}/v1/ws", app.addr)
        .into_client_request()
        .expect("a URL");
    request.headers_mut().insert(
        http::header::AUTHORIZATION,
        format!("Bearer {}", person.token)
            .parse()
            .expect("a header"),
    );
    let (mut client, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("upgrade");
    // A ping answered: the connection is attached.
    client
        .send(Message::text(r#"{"type":"ping"}"#))
        .await
        .expect("sends");
    next_json(&mut client).await;
    client
}

pub async fn next_json(
    client: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Value {
    loop {
        let message = tokio::time::timeout(PATIENCE, client.next())
            .await
            .expect("a frame in time")
            .expect("open")
            .expect("a frame");
        if let Message::Text(text) = message {
            return serde_json::from_str(text.as_str()).expect("JSON");
        }
    }
}
