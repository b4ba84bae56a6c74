//! The `kreki` binary serves `/v1/ws` as the `realtime` service: alone (`--services realtime`,
//! verifying tokens with configured keys) and with everything else (`kreki serve`).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use kreki::app::{self, Services};
use kreki::config::Config;
use kreki_auth::keys::{KeyRing, SigningKey};
use kreki_auth::token::Issuer;
use kreki_auth::{Role, Roles, UserId};
use kreki_platform::shutdown::CancellationToken;
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

struct Running {
    base: String,
    issuer: Issuer,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn serve(services: &str) -> Running {
    let pem = kreki_auth::keys::generate_pem().expect("a key");
    let mut config = Config::default();
    config.auth.signing_key_pem = Some(SecretString::from(pem.clone()));
    let keys = KeyRing::new(Some(SigningKey::from_pem(&pem).expect("loads")), Vec::new());
    let issuer = Issuer::new(
        std::sync::Arc::new(keys),
        config.auth.issuer.clone(),
        Duration::from_secs(900),
    );
    // The pool connects lazily; nothing here needs the database.
    let pool = config.database.pool().expect("a pool");
    let services = Services::parse(services.split(',')).expect("known services");
    let shutdown = CancellationToken::new();
    let built = app::build(&config, &pool, &services, &shutdown).expect("builds");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let base = format!("127.0.0.1:{}", listener.local_addr().expect("bound").port());
    let stop = shutdown.clone();
    let server = tokio::spawn(app::run(
        listener,
        built,
        shutdown.clone(),
        async move { stop.cancelled().await },
        Duration::from_secs(2),
    ));
    Running {
        base,
        issuer,
        shutdown,
        server,
    }
}

impl Running {
    async fn ping_over_websocket(&self) {
        let token = self
            .issuer
            .for_user(UserId::new(), &Roles::new([Role::Volunteer]), "Relawan")
            .expect("signs");
        let url = format!("ws://{}/v1/ws?access_token={token}", self.base);
        let (mut socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("upgraded");
        socket
            .send(Message::text(r#"{"type":"ping"}"#))
            .await
            .expect("sent");
        let answer = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("in time")
            .expect("open")
            .expect("a frame");
        let answer: Value = serde_json::from_str(answer.to_text().expect("text")).expect("JSON");
        assert_eq!(answer, json!({"type": "pong"}));
        self.shutdown.cancel();
        let closing = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("closed in time")
            .expect("a close frame")
            .expect("valid");
        assert!(
            matches!(&closing, Message::Close(Some(frame)) if u16::from(frame.code) == 1001),
            "{closing:?}"
        );
    }

    async fn paths(&self) -> Value {
        let spec: Value = reqwest::get(format!("http://{}/openapi.json", self.base))
            .await
            .expect("answers")
            .json()
            .await
            .expect("JSON");
        spec["paths"].clone()
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.server)
            .await
            .expect("stops in time")
            .expect("did not panic")
            .expect("ran cleanly");
    }
}

#[tokio::test]
async fn realtime_runs_alone() {
    let running = serve("realtime").await;
    let paths = running.paths().await;
    assert!(paths.get("/v1/ws").is_some(), "{paths}");
    assert!(paths.get("/v1/auth/login").is_none(), "{paths}");
    let ws = &paths["/v1/ws"]["get"];
    assert!(ws["responses"].get("101").is_some(), "{ws}");
    assert!(ws["responses"].get("401").is_some(), "{ws}");
    running.ping_over_websocket().await;
    running.stop().await;
}

#[tokio::test]
async fn serve_all_includes_realtime() {
    let running = serve("all").await;
    let paths = running.paths().await;
    assert!(paths.get("/v1/ws").is_some(), "{paths}");
    assert!(paths.get("/v1/auth/login").is_some(), "{paths}");
    running.ping_over_websocket().await;
    running.stop().await;
}

#[test]
fn the_service_is_named_realtime() {
    assert!(Services::parse(["realtime"]).is_ok());
    let error = Services::parse(["realtim"]).expect_err("unknown");
    assert!(error.contains("realtime"), "{error}");
}

#[test]
fn the_realtime_section_is_read_and_checked() {
    let dir = std::env::temp_dir().join(format!("kreki-realtime-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let good = dir.join("good.toml");
    std::fs::write(
        &good,
        "[realtime]\nmax_connections = 5\nreplay_messages = 64\n",
    )
    .expect("written");
    let config = Config::load(Some(&good)).expect("valid");
    assert_eq!(config.realtime.max_connections, 5);
    assert_eq!(config.realtime.replay_messages, 64);
    assert_eq!(
        config.realtime.outbound_queue, 64,
        "unset keys keep their defaults"
    );

    let unknown = dir.join("unknown.toml");
    std::fs::write(&unknown, "[realtime]\nmax_conections = 5\n").expect("written");
    let error = Config::load(Some(&unknown)).expect_err("a misspelt key");
    assert!(error.contains("max_conections"), "{error}");

    let wrong = dir.join("wrong.toml");
    std::fs::write(&wrong, "[realtime]\nmax_frame_bytes = 1000000\n").expect("written");
    let error = Config::load(Some(&wrong)).expect_err("out of range");
    assert!(error.contains("realtime.max_frame_bytes"), "{error}");
    std::fs::remove_dir_all(&dir).expect("cleaned up");
}

#[test]
fn the_redis_bus_section_is_optional_read_and_checked() {
    let dir = std::env::temp_dir().join(format!("kreki-redis-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let none = dir.join("none.toml");
    std::fs::write(&none, "[realtime]\nmax_connections = 5\n").expect("written");
    assert!(
        Config::load(Some(&none))
            .expect("valid")
            .realtime
            .redis
            .is_none(),
        "without [realtime.redis] the hub stays in-process"
    );
    let good = dir.join("good.toml");
    std::fs::write(
        &good,
        "[realtime.redis]\nurl = \"redis://10.0.0.5:6379\"\nkey_prefix = \"city:\"\n",
    )
    .expect("written");
    let redis = Config::load(Some(&good))
        .expect("valid")
        .realtime
        .redis
        .expect("the bus is configured");
    assert_eq!(redis.key_prefix, "city:");
    assert_eq!(redis.queue, 4096, "unset keys keep their defaults");
    let wrong = dir.join("wrong.toml");
    std::fs::write(&wrong, "[realtime.redis]\nurl = \"http://10.0.0.5\"\n").expect("written");
    let error = Config::load(Some(&wrong)).expect_err("not a Redis URL");
    assert!(error.contains("realtime.redis.url"), "{error}");
    std::fs::remove_dir_all(&dir).expect("cleaned up");
}
