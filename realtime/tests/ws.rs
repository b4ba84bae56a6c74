//! `/v1/ws` end to end on one instance: a real server on 127.0.0.1:0 behind the platform's
//! middleware, real WebSocket clients (tokio-tungstenite), tokens signed with a fresh test key.

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

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Longest any single expected frame may take to arrive.
const PATIENCE: Duration = Duration::from_secs(5);

struct Server {
    addr: SocketAddr,
    hub: Hub,
    keys: Arc<KeyRing>,
    issuer: Issuer,
    shutdown: CancellationToken,
    server: JoinHandle<()>,
    worker: JoinHandle<()>,
}

struct Person {
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

async fn send(client: &mut Client, message: Value) {
    client
        .send(Message::text(message.to_string()))
        .await
        .expect("sent");
}

/// The next data frame as JSON (pings and pongs skipped), without its `epoch`, which every
/// numbered frame must carry.
async fn next_json(client: &mut Client) -> Value {
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
async fn next_raw(client: &mut Client) -> Value {
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
async fn until_close(client: &mut Client) -> (Vec<Value>, u16, String) {
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

fn seqs(frames: &[Value]) -> Vec<u64> {
    frames
        .iter()
        .map(|frame| frame["seq"].as_u64().expect("a seq"))
        .collect()
}

#[tokio::test]
async fn offers_to_a_user_arrive_numbered_1_2_3() {
    let server = Server::start(RealtimeConfig::default()).await;
    let volunteer = server.person(&[Role::Volunteer]);
    let mut client = server.connect_live(&volunteer).await;
    for n in 1..=3 {
        server.offer(&volunteer, n);
    }
    for n in 1..=3 {
        assert_eq!(
            next_json(&mut client).await,
            json!({"seq": n, "type": "offer", "offer": {"n": n}})
        );
    }
}

#[tokio::test]
async fn every_socket_of_a_user_gets_every_message_with_the_same_seq() {
    let server = Server::start(RealtimeConfig::default()).await;
    let volunteer = server.person(&[Role::Volunteer]);
    let mut phone = server.connect_live(&volunteer).await;
    let mut tablet = server.connect_live(&volunteer).await;
    assert_eq!(server.hub.stats().connections, 2);
    server.offer(&volunteer, 1);
    server.offer(&volunteer, 2);
    for client in [&mut phone, &mut tablet] {
        assert_eq!(
            seqs(&[next_json(client).await, next_json(client).await]),
            [1, 2]
        );
    }
}

#[tokio::test]
async fn the_coordinator_role_reaches_coordinators_and_admins_only() {
    let server = Server::start(RealtimeConfig::default()).await;
    let coordinator = server.person(&[Role::Coordinator]);
    let admin = server.person(&[Role::Admin]);
    let volunteer = server.person(&[Role::Volunteer]);
    let mut c = server.connect_live(&coordinator).await;
    let mut a = server.connect_live(&admin).await;
    let mut v = server.connect_live(&volunteer).await;
    server.hub.publish(
        Audience::Role(Role::Coordinator),
        json!({"type": "volunteer.position", "lat": -6.2, "lng": 106.8}),
    );
    for client in [&mut c, &mut a] {
        let frame = next_json(client).await;
        assert_eq!(frame["type"], "volunteer.position");
        assert_eq!(frame["seq"], 1);
    }
    // Had the volunteer been reached, its first frame would be that position with seq 1.
    server.offer(&volunteer, 9);
    assert_eq!(
        next_json(&mut v).await,
        json!({"seq": 1, "type": "offer", "offer": {"n": 9}})
    );
}

#[tokio::test]
async fn resume_after_replays_exactly_what_was_missed_then_goes_live() {
    let server = Server::start(RealtimeConfig::default()).await;
    let volunteer = server.person(&[Role::Volunteer]);
    let mut client = server.connect_live(&volunteer).await;
    for n in 1..=3 {
        server.offer(&volunteer, n);
    }
    let seen: Vec<Value> = vec![
        next_json(&mut client).await,
        next_json(&mut client).await,
        next_json(&mut client).await,
    ];
    assert_eq!(seqs(&seen), [1, 2, 3]);
    client.close(None).await.expect("closed");
    drop(client);
    // Offline: these wait in the replay ring.
    server.offer(&volunteer, 4);
    server.offer(&volunteer, 5);
    let mut client = server.connect(&volunteer, "?resume_after=3").await;
    assert_eq!(
        next_json(&mut client).await,
        json!({"seq": 4, "type": "offer", "offer": {"n": 4}})
    );
    assert_eq!(next_json(&mut client).await["seq"], 5);
    server.offer(&volunteer, 6);
    assert_eq!(next_json(&mut client).await["seq"], 6);
}

#[tokio::test]
async fn a_cursor_older_than_the_window_gets_resync_first() {
    let server = Server::start(RealtimeConfig {
        replay_messages: 3,
        ..RealtimeConfig::default()
    })
    .await;
    let volunteer = server.person(&[Role::Volunteer]);
    // Never connected: the messages create the session and wait; only the newest 3 are kept.
    for n in 1..=6 {
        server.offer(&volunteer, n);
    }
    let mut client = server.connect(&volunteer, "?resume_after=1").await;
    assert_eq!(
        next_json(&mut client).await,
        json!({"type": "resync", "seq": 6})
    );
    server.offer(&volunteer, 7);
    assert_eq!(next_json(&mut client).await["seq"], 7);

    // Within the window the kept ones are replayed instead.
    let mut other = server.connect(&volunteer, "?resume_after=4").await;
    assert_eq!(
        seqs(&[
            next_json(&mut other).await,
            next_json(&mut other).await,
            next_json(&mut other).await
        ]),
        [5, 6, 7]
    );
}

#[tokio::test]
async fn garbage_frames_get_error_frames_and_the_socket_stays_usable() {
    let server = Server::start(RealtimeConfig::default()).await;
    let volunteer = server.person(&[Role::Volunteer]);
    let mut client = server.connect_live(&volunteer).await;
    let garbage = [
        (Message::text("this is not json"), 400, None),
        (Message::text("{\"type\":"), 400, None),
        (Message::binary(vec![0_u8, 159, 146, 150]), 400, None),
        (Message::text("[1,2,3]"), 422, Some("type")),
        (Message::text(r#"{"kind":"ping"}"#), 422, Some("type")),
        (Message::text(r#"{"type":"teleport"}"#), 422, Some("type")),
        (Message::text(r#"{"type":"subscribe"}"#), 422, Some("topic")),
        (
            Message::text(r#"{"type":"subscribe","topic":"with space"}"#),
            422,
            Some("topic"),
        ),
    ];
    for (frame, status, field) in garbage {
        let shown = format!("{frame:?}");
        client.send(frame).await.expect("sent");
        let answer = next_json(&mut client).await;
        assert_eq!(answer["type"], "error", "{shown}: {answer}");
        assert!(answer.get("seq").is_none(), "{shown}: {answer}");
        let problem: Problem =
            serde_json::from_value(answer["problem"].clone()).expect("a problem");
        assert_eq!(problem.status, status, "{shown}: {answer}");
        if let Some(field) = field {
            assert_eq!(problem.errors[0].field, field, "{shown}: {answer}");
        }
    }
    send(&mut client, json!({"type": "ping"})).await;
    assert_eq!(next_json(&mut client).await, json!({"type": "pong"}));
    server.offer(&volunteer, 1);
    assert_eq!(next_json(&mut client).await["seq"], 1);
}

#[tokio::test]
async fn a_message_over_the_limit_closes_with_1009_and_the_server_carries_on() {
    let server = Server::start(RealtimeConfig {
        max_message_bytes: 1024,
        max_frame_bytes: 1024,
        ..RealtimeConfig::default()
    })
    .await;
    let volunteer = server.person(&[Role::Volunteer]);
    let mut client = server.connect_live(&volunteer).await;
    let huge = json!({"type": "location", "note": "x".repeat(4096)});
    send(&mut client, huge).await;
    let (frames, code, _) = until_close(&mut client).await;
    assert_eq!(code, 1009);
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0]["problem"]["status"], 413);
    // Just under the limit is fine, on a new socket.
    let mut client = server.connect_live(&volunteer).await;
    send(&mut client, json!({"type": "ping", "pad": "x".repeat(900)})).await;
    assert_eq!(next_json(&mut client).await, json!({"type": "pong"}));
}

#[tokio::test]
async fn a_slow_consumer_is_closed_with_4008_and_resumes_from_the_ring() {
    let server = Server::start(RealtimeConfig {
        outbound_queue: 4,
        ..RealtimeConfig::default()
    })
    .await;
    let volunteer = server.person(&[Role::Volunteer]);
    let mut client = server.connect_live(&volunteer).await;
    // Published faster than the socket task can drain its queue of 4 (this runtime runs one task
    // at a time and publish never yields).
    for n in 1..=50 {
        server.offer(&volunteer, n);
    }
    let (before_close, code, reason) = until_close(&mut client).await;
    assert_eq!(code, 4008);
    assert!(reason.contains("resume_after"), "{reason}");
    let last_seen = seqs(&before_close).last().copied().unwrap_or(0);
    assert!(last_seen < 50, "it was disconnected before the end");

    let mut client = server
        .connect(&volunteer, &format!("?resume_after={last_seen}"))
        .await;
    let mut rest = Vec::new();
    for _ in last_seen..50 {
        rest.push(next_json(&mut client).await);
    }
    assert_eq!(seqs(&rest), ((last_seen + 1)..=50).collect::<Vec<_>>());
    assert_eq!(
        rest.last().map(|frame| frame["offer"]["n"].clone()),
        Some(json!(50))
    );
}

/// Coordinators may follow any `alert:` topic; nobody else may follow anything.
struct AlertsForCoordinators;

impl TopicAuthorizer for AlertsForCoordinators {
    fn may_subscribe(&self, user: &CurrentUser, topic: &str) -> BoxFuture<'_, bool> {
        let allowed = topic.starts_with("alert:") && user.roles.grants(Role::Coordinator);
        Box::pin(async move { allowed })
    }
}

#[tokio::test]
async fn subscriptions_go_through_the_authorizer() {
    let server = Server::start(RealtimeConfig::default()).await;
    let citizen = server.person(&[]);
    let mut client = server.connect_live(&citizen).await;
    send(
        &mut client,
        json!({"type": "subscribe", "topic": "alert:42"}),
    )
    .await;
    let refused = next_json(&mut client).await;
    assert_eq!(refused["type"], "error");
    assert_eq!(refused["problem"]["status"], 403);
    assert_eq!(refused["problem"]["errors"][0]["field"], "topic");
    server.hub.publish(
        Audience::Topic("alert:42".into()),
        json!({"type": "alert.updated"}),
    );

    // The default authorizer lets a user follow their own topic.
    let own = format!("user:{}", citizen.id);
    send(&mut client, json!({"type": "subscribe", "topic": own})).await;
    assert_eq!(
        next_json(&mut client).await,
        json!({"type": "subscribed", "topic": own})
    );
    server.hub.publish(
        Audience::Topic(own.clone()),
        json!({"type": "alert.updated"}),
    );
    // Seq 1: the alert:42 message never reached this user.
    assert_eq!(
        next_json(&mut client).await,
        json!({"seq": 1, "type": "alert.updated"})
    );
}

#[tokio::test]
async fn a_wired_authorizer_decides_and_topics_reach_only_subscribers() {
    let server = Server::start_with(RealtimeConfig::default(), |state| {
        state.with_authorizer(Arc::new(AlertsForCoordinators))
    })
    .await;
    let coordinator = server.person(&[Role::Coordinator]);
    let volunteer = server.person(&[Role::Volunteer]);
    let mut c = server.connect_live(&coordinator).await;
    let mut v = server.connect_live(&volunteer).await;
    for client in [&mut c, &mut v] {
        send(client, json!({"type": "subscribe", "topic": "alert:7"})).await;
    }
    assert_eq!(next_json(&mut c).await["type"], "subscribed");
    assert_eq!(next_json(&mut v).await["problem"]["status"], 403);
    server.hub.publish(
        Audience::Topic("alert:7".into()),
        json!({"type": "alert.updated", "id": 7}),
    );
    assert_eq!(
        next_json(&mut c).await,
        json!({"seq": 1, "type": "alert.updated", "id": 7})
    );
    send(&mut c, json!({"type": "unsubscribe", "topic": "alert:7"})).await;
    assert_eq!(next_json(&mut c).await["type"], "unsubscribed");
    server.hub.publish(
        Audience::Topic("alert:7".into()),
        json!({"type": "alert.updated", "id": 7}),
    );
    server
        .hub
        .publish(Audience::User(coordinator.id), json!({"type": "marker"}));
    assert_eq!(next_json(&mut c).await, json!({"seq": 2, "type": "marker"}));
}

/// Hands every message to the test, and refuses those without `lat`.
struct Recorder(mpsc::UnboundedSender<(Uuid, Value)>);

impl InboundHandler for Recorder {
    fn handle(&self, user: &CurrentUser, message: Value) -> BoxFuture<'_, Result<(), Problem>> {
        let user = user.id.0;
        Box::pin(async move {
            if message.get("lat").is_none() {
                return Err(Problem::validation(vec![kreki_platform::FieldError::new(
                    "lat",
                    "is required",
                )]));
            }
            self.0
                .send((user, message))
                .map_err(|_| Problem::bad_request("test over"))
        })
    }
}

#[tokio::test]
async fn other_messages_go_to_the_inbound_handler() {
    let (sender, mut received) = mpsc::unbounded_channel();
    let server = Server::start_with(RealtimeConfig::default(), |state| {
        state.with_inbound(Arc::new(Recorder(sender)))
    })
    .await;
    let volunteer = server.person(&[Role::Volunteer]);
    let mut client = server.connect_live(&volunteer).await;
    let location = json!({"type": "location", "lat": -6.2, "lng": 106.8, "accuracy_m": 12});
    send(&mut client, location.clone()).await;
    let (user, message) = tokio::time::timeout(PATIENCE, received.recv())
        .await
        .expect("in time")
        .expect("a message");
    assert_eq!((user, message), (volunteer.id, location));
    send(&mut client, json!({"type": "location", "lng": 106.8})).await;
    let refused = next_json(&mut client).await;
    assert_eq!(refused["problem"]["errors"][0]["field"], "lat");
}

#[tokio::test]
async fn no_or_bad_token_is_a_401_problem_before_the_upgrade() {
    let server = Server::start(RealtimeConfig::default()).await;
    for url in [server.url(""), server.url("?access_token=not.a.token")] {
        match connect_async(url.as_str()).await {
            Err(tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), http::StatusCode::UNAUTHORIZED, "{url}");
            }
            other => panic!("{url}: expected a 401, got {other:?}"),
        }
    }
    let response = reqwest::get(format!("http://{}/v1/ws", server.addr))
        .await
        .expect("an answer");
    assert_eq!(response.status(), reqwest::StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers()[reqwest::header::CONTENT_TYPE],
        "application/problem+json"
    );
    let problem: Value = response.json().await.expect("JSON");
    assert_eq!(problem["status"], 401);

    // Browsers put the token in the query string.
    let volunteer = server.person(&[Role::Volunteer]);
    let (mut client, _) = connect_async(server.url(&format!("?access_token={}", volunteer.token)))
        .await
        .expect("a token in the query works");
    send(&mut client, json!({"type": "ping"})).await;
    assert_eq!(next_json(&mut client).await, json!({"type": "pong"}));

    // A bad resume_after is named.
    let response = reqwest::get(format!(
        "http://{}/v1/ws?access_token={}&resume_after=soon",
        server.addr, volunteer.token
    ))
    .await
    .expect("an answer");
    assert_eq!(response.status(), reqwest::StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Value = response.json().await.expect("JSON");
    assert_eq!(problem["errors"][0]["field"], "resume_after");
}

#[tokio::test]
async fn connections_beyond_the_limit_get_503() {
    let server = Server::start(RealtimeConfig {
        max_connections: 1,
        ..RealtimeConfig::default()
    })
    .await;
    let volunteer = server.person(&[Role::Volunteer]);
    let first = server.connect_live(&volunteer).await;
    let url = server.url(&format!("?access_token={}", volunteer.token));
    match connect_async(url.as_str()).await {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), http::StatusCode::SERVICE_UNAVAILABLE);
            assert!(response.headers().contains_key(http::header::RETRY_AFTER));
        }
        other => panic!("expected a 503, got {other:?}"),
    }
    drop(first);
    // The slot comes back when the first socket is gone.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Ok((mut client, _)) = connect_async(url.as_str()).await {
            send(&mut client, json!({"type": "ping"})).await;
            assert_eq!(next_json(&mut client).await, json!({"type": "pong"}));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slot was never released"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_server_pings_and_drops_peers_that_stay_silent() {
    let server = Server::start(RealtimeConfig {
        ping_interval_ms: 50,
        idle_timeout_ms: 300,
        inbound_timeout_ms: 100,
        ..RealtimeConfig::default()
    })
    .await;
    let volunteer = server.person(&[Role::Volunteer]);
    let mut listening = server.connect_live(&volunteer).await;
    let _silent = server.connect_live(&volunteer).await;
    // A client that reads answers pings (tungstenite does it) and stays.
    let ping = tokio::time::timeout(PATIENCE, async {
        loop {
            match listening.next().await {
                Some(Ok(Message::Ping(_))) => break,
                Some(Ok(_)) => {}
                other => panic!("expected a ping, got {other:?}"),
            }
        }
    })
    .await;
    assert!(ping.is_ok(), "the server pings");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while server.hub.stats().connections > 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the silent peer was never dropped"
        );
        // Keep the listening client answering pings meanwhile.
        drop(tokio::time::timeout(Duration::from_millis(20), listening.next()).await);
    }
    server.offer(&volunteer, 1);
    assert_eq!(next_json(&mut listening).await["seq"], 1);
}

#[tokio::test]
async fn shutdown_closes_every_socket_with_1001() {
    let server = Server::start(RealtimeConfig::default()).await;
    let volunteer = server.person(&[Role::Volunteer]);
    let coordinator = server.person(&[Role::Coordinator]);
    let mut a = server.connect_live(&volunteer).await;
    let mut b = server.connect_live(&coordinator).await;
    server.shutdown.cancel();
    for client in [&mut a, &mut b] {
        let (_, code, reason) = until_close(client).await;
        assert_eq!(code, 1001);
        assert!(reason.contains("resume_after"), "{reason}");
    }
    drop((a, b));
    tokio::time::timeout(PATIENCE, server.worker)
        .await
        .expect("the worker waits for the sockets, then stops")
        .expect("the worker did not panic");
    tokio::time::timeout(PATIENCE, server.server)
        .await
        .expect("the server stops")
        .expect("the server did not panic");
    assert_eq!(server.hub.stats().connections, 0);
}

#[tokio::test]
async fn one_account_cannot_take_every_connection() {
    let server = Server::start(RealtimeConfig {
        max_connections_per_user: 2,
        ..RealtimeConfig::default()
    })
    .await;
    let volunteer = server.person(&[Role::Volunteer]);
    let _phone = server.connect_live(&volunteer).await;
    let _tablet = server.connect_live(&volunteer).await;
    let url = server.url(&format!("?access_token={}", volunteer.token));
    match connect_async(url.as_str()).await {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), http::StatusCode::TOO_MANY_REQUESTS);
        }
        other => panic!("expected a 429, got {other:?}"),
    }
    // Someone else still gets in.
    let other = server.person(&[Role::Volunteer]);
    server.connect_live(&other).await;
}

#[tokio::test]
async fn a_socket_closes_with_4001_when_its_token_expires() {
    let server = Server::start(RealtimeConfig::default()).await;
    // Tokens count whole seconds: this one has 1 to 2 s left.
    let short = Issuer::new(
        Arc::clone(&server.keys),
        "kreki".to_owned(),
        Duration::from_secs(2),
    );
    let volunteer = server.person_with(&short, &[Role::Volunteer]);
    let mut client = server.connect_live(&volunteer).await;
    let started = tokio::time::Instant::now();
    let (_, code, reason) = until_close(&mut client).await;
    assert_eq!(code, 4001);
    assert!(reason.contains("resume_after"), "{reason}");
    assert!(
        started.elapsed() <= Duration::from_millis(2500),
        "closed at expiry"
    );
}

/// Takes its time over every message.
struct Sluggish(Duration);

impl InboundHandler for Sluggish {
    fn handle(&self, _user: &CurrentUser, _message: Value) -> BoxFuture<'_, Result<(), Problem>> {
        Box::pin(async move {
            tokio::time::sleep(self.0).await;
            Ok(())
        })
    }
}

#[tokio::test]
async fn a_slow_inbound_handler_never_delays_offers() {
    let server = Server::start_with(RealtimeConfig::default(), |state| {
        state.with_inbound(Arc::new(Sluggish(Duration::from_secs(2))))
    })
    .await;
    let volunteer = server.person(&[Role::Volunteer]);
    let mut client = server.connect_live(&volunteer).await;
    send(
        &mut client,
        json!({"type": "location", "lat": -6.2, "lng": 106.8}),
    )
    .await;
    // Let the socket task pick the location up and start on it.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let published = tokio::time::Instant::now();
    server.offer(&volunteer, 1);
    assert_eq!(next_json(&mut client).await["seq"], 1);
    assert!(
        published.elapsed() < Duration::from_secs(1),
        "the offer waited for the handler: {:?}",
        published.elapsed()
    );
}

#[tokio::test]
async fn an_inbound_handler_over_its_time_gets_a_503_error_frame() {
    let server = Server::start_with(
        RealtimeConfig {
            inbound_timeout_ms: 100,
            ..RealtimeConfig::default()
        },
        |state| state.with_inbound(Arc::new(Sluggish(Duration::from_secs(30)))),
    )
    .await;
    let volunteer = server.person(&[Role::Volunteer]);
    let mut client = server.connect_live(&volunteer).await;
    send(
        &mut client,
        json!({"type": "location", "lat": -6.2, "lng": 106.8}),
    )
    .await;
    let answer = next_json(&mut client).await;
    assert_eq!(answer["type"], "error");
    assert_eq!(answer["problem"]["status"], 503);
    send(&mut client, json!({"type": "ping"})).await;
    assert_eq!(next_json(&mut client).await, json!({"type": "pong"}));
}

#[tokio::test]
async fn a_text_frame_that_is_not_utf8_closes_with_1007() {
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

    let server = Server::start(RealtimeConfig::default()).await;
    let volunteer = server.person(&[Role::Volunteer]);
    let mut client = server.connect_live(&volunteer).await;
    let broken = Frame::message(
        vec![0x7b_u8, 0xff, 0xfe, 0x7d],
        OpCode::Data(Data::Text),
        true,
    );
    client.send(Message::Frame(broken)).await.expect("sent");
    let (_, code, _) = until_close(&mut client).await;
    assert_eq!(code, 1007);
    server.connect_live(&volunteer).await;
}

#[tokio::test]
async fn a_cursor_from_a_forgotten_session_gets_resync_not_a_partial_replay() {
    let server = Server::start(RealtimeConfig {
        session_idle_s: 0,
        ..RealtimeConfig::default()
    })
    .await;
    let volunteer = server.person(&[Role::Volunteer]);
    let mut client = server.connect_live(&volunteer).await;
    for n in 1..=3 {
        server.offer(&volunteer, n);
    }
    let mut last = Value::Null;
    for _ in 1..=3 {
        last = next_raw(&mut client).await;
    }
    let old_epoch = last["epoch"].as_u64().expect("an epoch");
    assert_eq!(last["seq"], 3);
    drop(client);
    // The sweeper forgets the idle session (within a second or two).
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while server.hub.stats().sessions > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the session was never swept"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Offers while away start a new numbering: seq 1..5.
    for n in 1..=5 {
        server.offer(&volunteer, n);
    }
    let query = format!("?resume_after=3&epoch={old_epoch}");
    let mut client = server.connect(&volunteer, &query).await;
    let resync = next_raw(&mut client).await;
    assert_eq!(resync["type"], "resync", "{resync}");
    assert_eq!(resync["seq"], 5);
    let new_epoch = resync["epoch"].as_u64().expect("an epoch");
    assert_ne!(new_epoch, old_epoch);
    // With the new cursor nothing is missing.
    let query = format!("?resume_after=4&epoch={new_epoch}");
    let mut client = server.connect(&volunteer, &query).await;
    assert_eq!(
        next_json(&mut client).await,
        json!({"seq": 5, "type": "offer", "offer": {"n": 5}})
    );

    let response = reqwest::get(format!(
        "http://{}/v1/ws?access_token={}&resume_after=4&epoch=yesterday",
        server.addr, volunteer.token
    ))
    .await
    .expect("an answer");
    assert_eq!(response.status(), reqwest::StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Value = response.json().await.expect("JSON");
    assert_eq!(problem["errors"][0]["field"], "epoch");
}

/// Every data frame until the server closes or the connection ends, and the close code if a close
/// frame came.
async fn until_end(client: &mut Client) -> (Vec<Value>, Option<u16>) {
    let mut frames = Vec::new();
    loop {
        match tokio::time::timeout(PATIENCE, client.next())
            .await
            .expect("the end in time")
        {
            Some(Ok(Message::Text(text))) => {
                frames.push(serde_json::from_str(text.as_str()).expect("JSON"));
            }
            Some(Ok(Message::Close(close))) => {
                return (frames, close.map(|close| u16::from(close.code)));
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return (frames, None),
        }
    }
}

#[tokio::test]
async fn a_consumer_whose_writes_stall_is_dropped_and_resumes_from_the_ring() {
    let server = Server::start(RealtimeConfig {
        outbound_queue: 1024,
        write_timeout_ms: 50,
        ..RealtimeConfig::default()
    })
    .await;
    let volunteer = server.person(&[Role::Volunteer]);
    let mut client = server.connect_live(&volunteer).await;
    let padding = "x".repeat(64 * 1024);
    // 12.8 MB: more than the socket buffers hold while the client does not read.
    for n in 1..=200 {
        server.hub.publish(
            Audience::User(volunteer.id),
            json!({"type": "offer", "offer": {"n": n}, "pad": padding}),
        );
    }
    // Not reading meanwhile: the server's writes stall until it gives up on this client.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while server.hub.stats().connections > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stalled socket was never let go"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (received, code) = until_end(&mut client).await;
    assert!(matches!(code, None | Some(4008)), "{code:?}");
    let last_seen = seqs(&received).last().copied().unwrap_or(0);
    assert!(last_seen < 200);
    assert_eq!(seqs(&received), (1..=last_seen).collect::<Vec<_>>());

    let mut client = server
        .connect(&volunteer, &format!("?resume_after={last_seen}"))
        .await;
    let mut rest = Vec::new();
    for _ in last_seen..200 {
        rest.push(next_json(&mut client).await["seq"].as_u64().expect("a seq"));
    }
    assert_eq!(rest, ((last_seen + 1)..=200).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishers_never_reorder_or_skip_a_users_seq() {
    let server = Server::start(RealtimeConfig {
        outbound_queue: 4096,
        ..RealtimeConfig::default()
    })
    .await;
    let server = Arc::new(server);
    let a = server.person(&[Role::Volunteer]);
    let b = server.person(&[Role::Coordinator]);
    let mut clients = vec![
        server.connect_live(&a).await,
        server.connect_live(&a).await,
        server.connect_live(&b).await,
    ];
    let users = vec![a.id, b.id];
    let publishers: Vec<JoinHandle<()>> = (0..4)
        .map(|publisher| {
            let hub = server.hub.clone();
            let users = users.clone();
            tokio::spawn(async move {
                for n in 0..250 {
                    hub.publish(
                        Audience::Users(users.clone()),
                        json!({"type": "alert.updated", "from": publisher, "n": n}),
                    );
                    if n % 50 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    for publisher in publishers {
        publisher.await.expect("published");
    }
    for client in &mut clients {
        let mut frames = Vec::new();
        for _ in 0..1000 {
            frames.push(next_json(client).await);
        }
        assert_eq!(seqs(&frames), (1..=1000).collect::<Vec<_>>());
        // Each publisher's own messages keep their order.
        for publisher in 0..4 {
            let ns: Vec<u64> = frames
                .iter()
                .filter(|frame| frame["from"] == publisher)
                .map(|frame| frame["n"].as_u64().expect("n"))
                .collect();
            assert_eq!(ns, (0..250).collect::<Vec<_>>());
        }
    }
}

#[tokio::test]
async fn machine_clients_are_refused_with_403() {
    let server = Server::start(RealtimeConfig::default()).await;
    let token = server
        .issuer
        .for_client("rs-cipto", "system/*.read")
        .expect("signs");
    let response = reqwest::get(format!("http://{}/v1/ws?access_token={token}", server.addr))
        .await
        .expect("an answer");
    assert_eq!(response.status(), reqwest::StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_token_just_past_its_expiry_is_refused_before_the_upgrade() {
    let server = Server::start(RealtimeConfig::default()).await;
    let short = Issuer::new(
        Arc::clone(&server.keys),
        "kreki".to_owned(),
        Duration::from_secs(1),
    );
    let volunteer = server.person_with(&short, &[Role::Volunteer]);
    // Past `exp`, but within the verifier's allowance for clock skew.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let url = server.url(&format!("?access_token={}", volunteer.token));
    match connect_async(url.as_str()).await {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), http::StatusCode::UNAUTHORIZED);
        }
        other => panic!("expected a 401, got {other:?}"),
    }
}
