//! `/v1/ws` end to end on one instance: a real server on 127.0.0.1:0 behind the platform's
//! middleware, real WebSocket clients (tokio-tungstenite), tokens signed with a fresh test key.

#[path = "ws_cases/access.rs"]
mod access;
#[path = "ws_cases/delivery.rs"]
mod delivery;
#[path = "ws_cases/inbound.rs"]
mod inbound;
#[path = "ws_cases/slow_consumers.rs"]
mod slow_consumers;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use kreki_auth::keys::{KeyRing, SigningKey};
use kreki_auth::token::Issuer;
use kreki_auth::{CurrentUser, Role, Roles, TokenVerifier, UserId};
use kreki_platform::Problem;
use kreki_realtime::{
    Audience, BoxFuture, Hub, InboundHandler, RealtimeConfig, RealtimeState, TopicAuthorizer,
};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub(crate) type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Longest any single expected frame may take to arrive.
pub(crate) const PATIENCE: Duration = Duration::from_secs(5);

pub(crate) struct Server {
    addr: SocketAddr,
    hub: Hub,
    keys: Arc<KeyRing>,
    issuer: Issuer,
    shutdown: CancellationToken,
    server: JoinHandle<()>,
    worker: JoinHandle<()>,
}

pub(crate) struct Person {
    id: Uuid,
    token: String,
}

impl Server {
    async fn start(config: RealtimeConfig) -> Self {
        Self::start_with(config, |state| state).await
    }

    async fn start_with(
        config: RealtimeConfig,
        ports: impl FnOnce(RealtimeState) -> RealtimeState,
    ) -> Self {
        assert_eq!(config.validate(), Vec::<String>::new());
        let pem = kreki_auth::keys::generate_pem().expect("a test key");
        let key = SigningKey::from_pem(&pem).expect("the test key loads");
        let keys = Arc::new(KeyRing::new(Some(key), Vec::new()));
        let verifier = TokenVerifier::with_keys("kreki".to_owned(), &keys.public_keys());
        let issuer = Issuer::new(
            Arc::clone(&keys),
            "kreki".to_owned(),
            Duration::from_secs(900),
        );
        let shutdown = CancellationToken::new();
        let hub = Hub::new(config, shutdown.clone());
        let state = ports(RealtimeState::new(hub.clone(), verifier));
        let (router, _openapi) = kreki_realtime::router(state).split_for_parts();
        let router = kreki_platform::http::finish(router, kreki_platform::http::Limits::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port");
        let addr = listener.local_addr().expect("bound");
        let stop = shutdown.clone();
        let server = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
                .expect("the server runs");
        });
        let worker = tokio::spawn(kreki_realtime::worker::run(hub.clone(), shutdown.clone()));
        Self {
            addr,
            hub,
            keys,
            issuer,
            shutdown,
            server,
            worker,
        }
    }

    fn person(&self, roles: &[Role]) -> Person {
        self.person_with(&self.issuer, roles)
    }

    fn person_with(&self, issuer: &Issuer, roles: &[Role]) -> Person {
        let id = UserId::new();
        let token = issuer
            .for_user(id, &Roles::new(roles.iter().copied()), "Test Person")
            .expect("signs");
        Person { id: id.0, token }
    }

    fn url(&self, query: &str) -> String {
        format!("ws://{}/v1/ws{query}", self.addr)
    }

    /// Connects with the token in `Authorization` and waits until the server has attached the
    /// connection (a ping answered), so what is published next reaches it.
    async fn connect(&self, person: &Person, query: &str) -> Client {
        let mut request = self.url(query).into_client_request().expect("a URL");
        request.headers_mut().insert(
            http::header::AUTHORIZATION,
            format!("Bearer {}", person.token)
                .parse()
                .expect("a header value"),
        );
        let (client, response) = connect_async(request).await.expect("upgrade");
        assert_eq!(response.status(), http::StatusCode::SWITCHING_PROTOCOLS);
        client
    }

    async fn connect_live(&self, person: &Person) -> Client {
        let mut client = self.connect(person, "").await;
        send(&mut client, json!({"type": "ping"})).await;
        assert_eq!(next_json(&mut client).await, json!({"type": "pong"}));
        client
    }

    fn offer(&self, person: &Person, n: u64) {
        self.hub.publish(
            Audience::User(person.id),
            json!({"type": "offer", "offer": {"n": n}}),
        );
    }
}

pub(crate) async fn send(client: &mut Client, message: Value) {
    client
        .send(Message::text(message.to_string()))
        .await
        .expect("sent");
}

/// The next data frame as JSON (pings and pongs skipped), without its `epoch`, which every
/// numbered frame must carry.
pub(crate) async fn next_json(client: &mut Client) -> Value {
    let mut frame = next_raw(client).await;
    if frame.get("seq").is_some() {
        let epoch = frame
            .as_object_mut()
            .and_then(|object| object.remove("epoch"));
        assert!(epoch.is_some_and(|epoch| epoch.is_u64()), "{frame}");
    }
    frame
}

/// The next data frame as JSON (pings and pongs skipped).
pub(crate) async fn next_raw(client: &mut Client) -> Value {
    loop {
        let frame = tokio::time::timeout(PATIENCE, client.next())
            .await
            .expect("a frame in time")
            .expect("the socket is open")
            .expect("a valid frame");
        match frame {
            Message::Text(text) => return serde_json::from_str(text.as_str()).expect("JSON"),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// Reads until the server's close frame and returns its code; data frames before it are returned
/// too.
pub(crate) async fn until_close(client: &mut Client) -> (Vec<Value>, u16, String) {
    let mut frames = Vec::new();
    loop {
        let frame = tokio::time::timeout(PATIENCE, client.next())
            .await
            .expect("a frame in time")
            .expect("a close frame before the end")
            .expect("a valid frame");
        match frame {
            Message::Text(text) => frames.push(serde_json::from_str(text.as_str()).expect("JSON")),
            Message::Close(Some(close)) => {
                return (frames, u16::from(close.code), close.reason.to_string());
            }
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("expected text or close, got {other:?}"),
        }
    }
}

pub(crate) fn seqs(frames: &[Value]) -> Vec<u64> {
    frames
        .iter()
        .map(|frame| frame["seq"].as_u64().expect("a seq"))
        .collect()
}
