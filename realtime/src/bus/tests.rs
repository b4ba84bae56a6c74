//! The Redis bus against the real Redis (`KREKI_TEST_REDIS_URL`, default the shared
//! `redis://127.0.0.1:6379`, each test under its own key prefix), with two hubs in one process
//! standing for two instances; the Redis-down test starts its own `redis-server` on a free port.
//! Hub-side numbering rules are tested without Redis (`hub/tests.rs`), and the bus's decisions
//! under random interleavings against a model of Redis (`bus/model.rs`); these tests hold the
//! Lua scripts and the Redis plumbing to the same behaviour.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kreki_auth::{Role, Roles};
use redis::AsyncCommands;
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{RedisBus, RedisBusConfig};
use crate::config::RealtimeConfig;
use crate::frame::{Frame, Outgoing};
use crate::hub::{Attachment, Audience, Cursor, Hub};

/// Longest any single expected frame or state change may take.
const PATIENCE: Duration = Duration::from_secs(10);

fn shared_redis_url() -> String {
    std::env::var("KREKI_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

fn unique_prefix() -> String {
    format!("kreki:test:{}:", Uuid::new_v4().simple())
}

/// One hub with its Redis bus: an instance. Shut down on drop.
struct Instance {
    hub: Hub,
    bus: RedisBus,
    shutdown: CancellationToken,
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn instance(url: &str, prefix: &str, name: &str) -> Instance {
    let redis = RedisBusConfig {
        url: SecretString::from(url),
        key_prefix: prefix.to_owned(),
        instance_id: name.to_owned(),
        presence_ttl_s: 3,
        // Long: a timed-out publish is ambiguous (Redis may have run it), and these tests are about
        // Redis being down, which fails at once, not about a slow Redis under a loaded machine.
        response_timeout_ms: 5000,
        read_block_ms: 200,
        ..RedisBusConfig::default()
    };
    assert_eq!(redis.validate(), Vec::<String>::new());
    let shutdown = CancellationToken::new();
    let (hub, bus) = RedisBus::start(RealtimeConfig::default(), redis, shutdown.clone())
        .expect("the bus starts");
    Instance { hub, bus, shutdown }
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn all_connected(instances: &[&Instance]) {
    wait_until("every bus is connected", || {
        instances.iter().all(|instance| instance.bus.is_connected())
    })
    .await;
}

fn json_of(frame: &Outgoing) -> Value {
    serde_json::from_str(frame.encode().as_str()).expect("frames are JSON")
}

async fn next_frame(connection: &mut Attachment) -> Value {
    let frame = tokio::time::timeout(PATIENCE, connection.outbound.recv())
        .await
        .expect("a frame in time")
        .expect("the connection is open");
    json_of(&frame)
}

async fn frames(connection: &mut Attachment, count: usize) -> Vec<Value> {
    let mut frames = Vec::with_capacity(count);
    for _ in 0..count {
        frames.push(next_frame(connection).await);
    }
    frames
}

/// Nothing more arrives within a while (the reader polls every 200 ms at most).
async fn quiet(connection: &mut Attachment) {
    tokio::time::sleep(Duration::from_millis(600)).await;
    if let Ok(frame) = connection.outbound.try_recv() {
        panic!("unexpected frame {frame:?}");
    }
}

fn parse(frames: &[Outgoing]) -> Vec<Value> {
    frames.iter().map(json_of).collect()
}

fn epoch(frame: &Value) -> u64 {
    frame["epoch"].as_u64().expect("an epoch")
}

async fn redis_connection(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("a Redis URL")
        .get_multiplexed_async_connection()
        .await
        .expect("Redis answers")
}

/// Deletes the keys of a test's prefix.
async fn clean(url: &str, prefix: &str) {
    let mut redis = redis_connection(url).await;
    let keys: Vec<String> = redis.keys(format!("{prefix}*")).await.expect("KEYS");
    if !keys.is_empty() {
        let () = redis.del(keys).await.expect("DEL");
    }
}

#[tokio::test]
async fn a_message_published_on_a_reaches_a_socket_on_b_numbered_once_for_both() {
    let (url, prefix) = (shared_redis_url(), unique_prefix());
    let a = instance(&url, &prefix, "a");
    let b = instance(&url, &prefix, "b");
    all_connected(&[&a, &b]).await;
    let user = Uuid::new_v4();
    let mut on_b = b.hub.attach(user, &Roles::default(), None);
    a.hub
        .publish(Audience::User(user), json!({"type": "offer", "n": 1}));
    let frame = next_frame(&mut on_b).await;
    assert_eq!(frame["seq"], 1, "{frame}");
    assert_eq!(frame["n"], 1, "{frame}");
    // A mirrors the session: a socket resuming there from 0 in that epoch gets the same frame.
    wait_until("A has the session", || {
        a.hub.numbering_of(user) == Some((epoch(&frame), 1))
    })
    .await;
    let on_a = a.hub.attach(
        user,
        &Roles::default(),
        Some(Cursor {
            after: 0,
            epoch: Some(epoch(&frame)),
        }),
    );
    assert_eq!(parse(&on_a.backlog), vec![frame]);
    clean(&url, &prefix).await;
}

#[tokio::test]
async fn reconnecting_to_the_other_instance_replays_exactly_the_missed_ones() {
    let (url, prefix) = (shared_redis_url(), unique_prefix());
    let a = instance(&url, &prefix, "a");
    let b = instance(&url, &prefix, "b");
    all_connected(&[&a, &b]).await;
    let user = Uuid::new_v4();
    let mut phone = a.hub.attach(user, &Roles::default(), None);
    for (n, instance) in [&a, &b, &a].into_iter().enumerate() {
        instance
            .hub
            .publish(Audience::User(user), json!({"type": "offer", "n": n}));
        // One at a time, so the order across the two publishers is known.
        assert_eq!(next_frame(&mut phone).await["n"], n);
    }
    let cursor = Cursor {
        after: 3,
        epoch: a.hub.numbering_of(user).map(|(epoch, _)| epoch),
    };
    a.hub.detach(user, phone.id);
    // Published while the phone switches networks, one on each instance.
    a.hub
        .publish(Audience::User(user), json!({"type": "offer", "n": 3}));
    wait_until("A numbered the 4th", || {
        a.hub.numbering_of(user).map(|(_, seq)| seq) == Some(4)
    })
    .await;
    b.hub
        .publish(Audience::User(user), json!({"type": "offer", "n": 4}));
    for instance in [&a, &b] {
        wait_until("both have the 5th", || {
            instance.hub.numbering_of(user).map(|(_, seq)| seq) == Some(5)
        })
        .await;
    }
    let mut on_b = b.hub.attach(user, &Roles::default(), Some(cursor));
    let replayed = parse(&on_b.backlog);
    assert_eq!(
        replayed
            .iter()
            .map(|frame| (frame["seq"].clone(), frame["n"].clone()))
            .collect::<Vec<_>>(),
        vec![(json!(4), json!(3)), (json!(5), json!(4))]
    );
    // The same from A: both instances hold the same frames.
    let on_a = a.hub.attach(user, &Roles::default(), Some(cursor));
    assert_eq!(parse(&on_a.backlog), replayed);
    quiet(&mut on_b).await;
    clean(&url, &prefix).await;
}

#[tokio::test]
async fn a_user_with_sockets_on_both_gets_every_message_once_in_the_same_order() {
    let (url, prefix) = (shared_redis_url(), unique_prefix());
    let a = instance(&url, &prefix, "a");
    let b = instance(&url, &prefix, "b");
    all_connected(&[&a, &b]).await;
    let user = Uuid::new_v4();
    let mut on_a = a.hub.attach(user, &Roles::default(), None);
    let mut on_b = b.hub.attach(user, &Roles::default(), None);
    // Both instances publish at once.
    for n in 0..40 {
        let instance = if n % 2 == 0 { &a } else { &b };
        instance.hub.publish(
            Audience::Users(vec![user, user]),
            json!({"type": "offer", "n": n}),
        );
    }
    let got_a = frames(&mut on_a, 40).await;
    let got_b = frames(&mut on_b, 40).await;
    assert_eq!(got_a, got_b);
    let seqs: Vec<u64> = got_a
        .iter()
        .map(|frame| frame["seq"].as_u64().expect("a seq"))
        .collect();
    assert_eq!(seqs, (1..=40).collect::<Vec<u64>>());
    let mut ns: Vec<u64> = got_a
        .iter()
        .map(|frame| frame["n"].as_u64().expect("n"))
        .collect();
    ns.sort_unstable();
    assert_eq!(ns, (0..40).collect::<Vec<u64>>());
    quiet(&mut on_a).await;
    quiet(&mut on_b).await;
    clean(&url, &prefix).await;
}

#[tokio::test]
async fn roles_and_topics_reach_users_connected_to_the_other_instance() {
    let (url, prefix) = (shared_redis_url(), unique_prefix());
    let a = instance(&url, &prefix, "a");
    let b = instance(&url, &prefix, "b");
    all_connected(&[&a, &b]).await;
    let (coordinator, volunteer) = (Uuid::new_v4(), Uuid::new_v4());
    let mut coordinator_on_b = b
        .hub
        .attach(coordinator, &Roles::new([Role::Coordinator]), None);
    let mut volunteer_on_b = b
        .hub
        .attach(volunteer, &Roles::new([Role::Volunteer]), None);
    let mut redis = redis_connection(&url).await;
    let member = |key: String, user: Uuid| {
        let mut redis = redis.clone();
        async move {
            let score: Option<f64> = redis.zscore(key, user.to_string()).await.expect("ZSCORE");
            score.is_some()
        }
    };
    let deadline = Instant::now() + PATIENCE;
    while !member(format!("{prefix}role:coordinator"), coordinator).await {
        assert!(
            Instant::now() < deadline,
            "the coordinator's role is recorded"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    a.hub.publish(
        Audience::Role(Role::Coordinator),
        json!({"type": "volunteer.position"}),
    );
    let frame = next_frame(&mut coordinator_on_b).await;
    assert_eq!(
        (frame["seq"].clone(), frame["type"].clone()),
        (json!(1), json!("volunteer.position"))
    );
    // Left out of a role's message: not numbered for it, so the next one is seq 2.
    a.hub.publish(
        Audience::RoleExcept(Role::Coordinator, vec![coordinator]),
        json!({"type": "escalation"}),
    );
    a.hub.publish(
        Audience::RoleExcept(Role::Coordinator, vec![Uuid::new_v4()]),
        json!({"type": "alert.updated"}),
    );
    let frame = next_frame(&mut coordinator_on_b).await;
    assert_eq!(
        (frame["seq"].clone(), frame["type"].clone()),
        (json!(2), json!("alert.updated"))
    );
    b.hub
        .subscribe(volunteer, "alert:7")
        .expect("within the limit");
    while !member(format!("{prefix}topic:alert:7"), volunteer).await {
        assert!(Instant::now() < deadline, "the subscription is recorded");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    a.hub.publish(
        Audience::Topic("alert:7".into()),
        json!({"type": "alert.updated"}),
    );
    assert_eq!(
        next_frame(&mut volunteer_on_b).await["type"],
        "alert.updated"
    );
    b.hub.unsubscribe(volunteer, "alert:7");
    while member(format!("{prefix}topic:alert:7"), volunteer).await {
        assert!(Instant::now() < deadline, "the unsubscription is recorded");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    a.hub.publish(
        Audience::Topic("alert:7".into()),
        json!({"type": "alert.updated"}),
    );
    quiet(&mut volunteer_on_b).await;
    quiet(&mut coordinator_on_b).await;
    let () = redis.del(format!("{prefix}nothing")).await.expect("DEL");
    clean(&url, &prefix).await;
}

#[tokio::test]
async fn presence_lists_the_instances_holding_a_user() {
    let (url, prefix) = (shared_redis_url(), unique_prefix());
    let a = instance(&url, &prefix, "a");
    let b = instance(&url, &prefix, "b");
    all_connected(&[&a, &b]).await;
    let user = Uuid::new_v4();
    assert!(
        a.bus
            .instances_of(user)
            .await
            .expect("Redis answers")
            .is_empty()
    );
    let on_a = a.hub.attach(user, &Roles::default(), None);
    let on_b = b.hub.attach(user, &Roles::default(), None);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mut held = a.bus.instances_of(user).await.expect("Redis answers");
        held.sort();
        if held == ["a", "b"] {
            break;
        }
        assert!(Instant::now() < deadline, "presence on both: {held:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    b.hub.detach(user, on_b.id);
    while b.bus.instances_of(user).await.expect("Redis answers") != ["a"] {
        assert!(Instant::now() < deadline, "presence on A only");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // An instance that shuts down removes its records (once its sockets closed, the realtime
    // worker flushes the bus).
    a.shutdown.cancel();
    a.hub.flush_bus().await;
    while !b
        .bus
        .instances_of(user)
        .await
        .expect("Redis answers")
        .is_empty()
    {
        assert!(Instant::now() < deadline, "no presence after A stopped");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(on_a);
    clean(&url, &prefix).await;
}

/// A `redis-server` of this test's own on a free port, killed on drop.
struct OwnRedis {
    port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let mut redis = Self { port, child: None };
        redis.restart();
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (it is installed with Redis)");
        self.child = Some(child);
        let deadline = Instant::now() + PATIENCE;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server listens");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Frames until one with `"n": n` (the resyncs and other frames before it, then it).
async fn frames_until(connection: &mut Attachment, n: &str) -> Vec<Value> {
    let mut frames = Vec::new();
    loop {
        let frame = next_frame(connection).await;
        let done = frame["n"] == n;
        frames.push(frame);
        if done {
            return frames;
        }
    }
}

#[tokio::test]
async fn with_redis_down_each_instance_serves_its_own_sockets_and_none_is_lost_after_it_returns() {
    let mut redis = OwnRedis::start();
    let url = redis.url();
    let prefix = unique_prefix();
    let a = instance(&url, &prefix, "a");
    let b = instance(&url, &prefix, "b");
    all_connected(&[&a, &b]).await;
    let user = Uuid::new_v4();
    let mut on_a = a.hub.attach(user, &Roles::default(), None);
    let mut on_b = b.hub.attach(user, &Roles::default(), None);
    a.hub.publish(
        Audience::User(user),
        json!({"type": "offer", "n": "before"}),
    );
    let before = next_frame(&mut on_a).await;
    assert_eq!(next_frame(&mut on_b).await, before);
    // The readers can have the stream entry before the publisher has read Redis's answer to it;
    // an answer lost with Redis makes the publish count as not done, and it is handed over again
    // (at least once, by design). That repeat is not what this test is about: let the answer land.
    tokio::time::sleep(Duration::from_millis(300)).await;

    redis.stop();
    a.hub.publish(
        Audience::User(user),
        json!({"type": "offer", "n": "down-a"}),
    );
    b.hub.publish(
        Audience::User(user),
        json!({"type": "offer", "n": "down-b"}),
    );
    // Delivered here at once, under a local numbering announced with a resync: never confused
    // with the shared one.
    let local_a = frames_until(&mut on_a, "down-a").await;
    let local_b = frames_until(&mut on_b, "down-b").await;
    for local in [&local_a, &local_b] {
        assert_eq!(local.len(), 2, "{local:?}");
        assert_eq!(local[0]["type"], "resync", "{local:?}");
        assert_eq!(local[0]["seq"], 0, "{local:?}");
        assert_eq!(local[1]["seq"], 1, "{local:?}");
        assert_eq!(local[1]["epoch"], local[0]["epoch"]);
        assert_ne!(epoch(&local[1]), epoch(&before));
    }
    quiet(&mut on_a).await;
    quiet(&mut on_b).await;

    redis.restart();
    all_connected(&[&a, &b]).await;
    // What each instance delivered alone reaches the other one once Redis is back (and not its
    // own sockets a second time: they get a resync past it), in one new shared numbering.
    let handed_to_a = frames_until(&mut on_a, "down-b").await;
    let handed_to_b = frames_until(&mut on_b, "down-a").await;
    for (handed, own) in [(&handed_to_a, "down-a"), (&handed_to_b, "down-b")] {
        assert!(
            handed.iter().all(|frame| frame["n"] != own),
            "an instance's own message came back to its socket: {handed:?}"
        );
        assert!(
            handed[..handed.len() - 1]
                .iter()
                .all(|frame| frame["type"] == "resync"),
            "{handed:?}"
        );
        assert!(
            handed.len() >= 2,
            "the new numbering is announced: {handed:?}"
        );
    }
    let (last_a, last_b) = (
        &handed_to_a[handed_to_a.len() - 1],
        &handed_to_b[handed_to_b.len() - 1],
    );
    assert_eq!(epoch(last_a), epoch(last_b));
    let mut handed_seqs = [last_a["seq"].clone(), last_b["seq"].clone()];
    handed_seqs.sort_by_key(|seq| seq.as_u64());
    assert_eq!(handed_seqs, [json!(1), json!(2)]);
    // Whichever was numbered second, a socket is told about its own (a resync to seq 2) when
    // the other's came first: drain those, then everything is live again.
    let drain_resyncs = |connection: &mut Attachment| {
        let mut extra = Vec::new();
        while let Ok(frame) = connection.outbound.try_recv() {
            extra.push(json_of(&frame));
        }
        extra
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    for extra in [drain_resyncs(&mut on_a), drain_resyncs(&mut on_b)] {
        assert!(
            extra
                .iter()
                .all(|frame| frame["type"] == "resync" && frame["seq"] == 2),
            "{extra:?}"
        );
    }
    for n in 0..10 {
        let instance = if n % 2 == 0 { &a } else { &b };
        instance
            .hub
            .publish(Audience::User(user), json!({"type": "offer", "n": n}));
    }
    let after_a = frames(&mut on_a, 10).await;
    let after_b = frames(&mut on_b, 10).await;
    assert_eq!(after_a, after_b);
    assert_eq!(
        after_a
            .iter()
            .map(|frame| frame["seq"].clone())
            .collect::<Vec<_>>(),
        (3..=12).map(|seq| json!(seq)).collect::<Vec<_>>(),
        "Redis restarted empty: a new shared numbering, after the two handed over"
    );
    assert!(after_a.iter().all(|frame| epoch(frame) == epoch(last_a)));
    quiet(&mut on_a).await;
    quiet(&mut on_b).await;
}

fn instance_with(
    url: &str,
    prefix: &str,
    name: &str,
    config: RealtimeConfig,
    queue: usize,
) -> Instance {
    let redis = RedisBusConfig {
        url: SecretString::from(url),
        key_prefix: prefix.to_owned(),
        instance_id: name.to_owned(),
        queue,
        presence_ttl_s: 3,
        // Long: a timed-out publish is ambiguous (Redis may have run it), and these tests are about
        // Redis being down, which fails at once, not about a slow Redis under a loaded machine.
        response_timeout_ms: 5000,
        read_block_ms: 200,
        ..RedisBusConfig::default()
    };
    let shutdown = CancellationToken::new();
    let (hub, bus) = RedisBus::start(config, redis, shutdown.clone()).expect("the bus starts");
    Instance { hub, bus, shutdown }
}

#[tokio::test]
async fn a_slow_consumer_kicked_on_b_resumes_on_a_without_a_gap() {
    let (url, prefix) = (shared_redis_url(), unique_prefix());
    let small = RealtimeConfig {
        outbound_queue: 2,
        ..RealtimeConfig::default()
    };
    let a = instance_with(&url, &prefix, "a", RealtimeConfig::default(), 4096);
    let b = instance_with(&url, &prefix, "b", small, 4096);
    all_connected(&[&a, &b]).await;
    let user = Uuid::new_v4();
    // Nobody reads this connection: its queue of 2 overflows on the 3rd frame.
    let stalled = b.hub.attach(user, &Roles::default(), None);
    for n in 0..5 {
        a.hub
            .publish(Audience::User(user), json!({"type": "offer", "n": n}));
    }
    wait_until("the stalled connection is kicked (4008)", || {
        stalled.kicked.is_cancelled()
    })
    .await;
    wait_until("A has all five", || {
        a.hub.numbering_of(user).map(|(_, seq)| seq) == Some(5)
    })
    .await;
    let (epoch, _) = a.hub.numbering_of(user).expect("a session");
    let resumed = a.hub.attach(
        user,
        &Roles::default(),
        Some(Cursor {
            after: 0,
            epoch: Some(epoch),
        }),
    );
    let ns: Vec<Value> = parse(&resumed.backlog)
        .into_iter()
        .map(|frame| frame["n"].clone())
        .collect();
    assert_eq!(ns, (0..5).map(|n| json!(n)).collect::<Vec<_>>());
    clean(&url, &prefix).await;
}

#[tokio::test]
async fn a_full_bus_queue_never_blocks_publish_and_its_recipients_are_told_on_every_instance() {
    let (url, prefix) = (shared_redis_url(), unique_prefix());
    let roomy = RealtimeConfig {
        outbound_queue: 4096,
        ..RealtimeConfig::default()
    };
    let a = instance_with(&url, &prefix, "a", roomy.clone(), 16);
    let b = instance_with(&url, &prefix, "b", roomy, 16);
    all_connected(&[&a, &b]).await;
    let user = Uuid::new_v4();
    let mut on_a = a.hub.attach(user, &Roles::default(), None);
    let mut on_b = b.hub.attach(user, &Roles::default(), None);
    // The test runtime has one thread: the bus cannot drain its queue while this loop runs, so
    // all but 16 overflow. None of them is delivered anywhere on its own numbering.
    let started = Instant::now();
    for n in 0..1000 {
        a.hub
            .publish(Audience::User(user), json!({"type": "offer", "n": n}));
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "publish never waits"
    );
    // One numbered resync for the lost ones (first), then the ones that fit in the queue (16
    // commands, less the presence change of the attach), the same on both instances.
    let first = next_frame(&mut on_a).await;
    assert_eq!(first["type"], "resync", "{first}");
    assert_eq!(first["seq"], 1);
    let mut got_a = vec![first];
    while got_a.len() < 17 {
        match tokio::time::timeout(Duration::from_millis(600), on_a.outbound.recv()).await {
            Ok(Some(frame)) => got_a.push(json_of(&frame)),
            _ => break,
        }
    }
    assert!(got_a.len() >= 15, "{got_a:?}");
    let got_b = frames(&mut on_b, got_a.len()).await;
    assert_eq!(got_a, got_b);
    let ns: Vec<Value> = got_a[1..].iter().map(|frame| frame["n"].clone()).collect();
    assert_eq!(
        ns,
        (0..got_a.len() - 1).map(|n| json!(n)).collect::<Vec<_>>()
    );
    let seqs: Vec<Value> = got_a.iter().map(|frame| frame["seq"].clone()).collect();
    assert_eq!(
        seqs,
        (1..=got_a.len()).map(|seq| json!(seq)).collect::<Vec<_>>()
    );
    quiet(&mut on_a).await;
    quiet(&mut on_b).await;
    clean(&url, &prefix).await;
}

#[tokio::test]
async fn audience_sets_expire_with_their_newest_member() {
    let (url, prefix) = (shared_redis_url(), unique_prefix());
    let a = instance(&url, &prefix, "a");
    all_connected(&[&a]).await;
    let user = Uuid::new_v4();
    let _on_a = a.hub.attach(user, &Roles::default(), None);
    a.hub.subscribe(user, "alert:9").expect("within the limit");
    let mut redis = redis_connection(&url).await;
    let key = format!("{prefix}topic:alert:9");
    let deadline = Instant::now() + PATIENCE;
    loop {
        let ttl_ms: i64 = redis.pttl(&key).await.expect("PTTL");
        if ttl_ms > 0 {
            let session_ms =
                i64::try_from(RealtimeConfig::default().session_idle_s * 1000).expect("fits");
            assert!(ttl_ms <= session_ms + 3000, "{ttl_ms}");
            break;
        }
        assert!(Instant::now() < deadline, "the topic set gets a TTL");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    clean(&url, &prefix).await;
}

#[tokio::test]
async fn an_offer_acknowledged_on_b_counts_as_acknowledged_on_a() {
    use crate::push::Acknowledgements;
    let (url, prefix) = (shared_redis_url(), unique_prefix());
    let a = instance(&url, &prefix, "a");
    let b = instance(&url, &prefix, "b");
    all_connected(&[&a, &b]).await;
    let acks_on_a = super::SharedAcknowledgements::new(a.hub.clone(), a.bus.clone());
    let user = Uuid::new_v4();
    let mut on_b = b.hub.attach(user, &Roles::default(), None);
    let first = Frame::new(&json!({"type": "offer", "offer": {"id": 1}})).expect("a frame");
    let second = Frame::new(&json!({"type": "offer", "offer": {"id": 2}})).expect("a frame");
    a.hub.publish_frame(Audience::User(user), &first);
    a.hub.publish_frame(Audience::User(user), &second);
    let got = frames(&mut on_b, 2).await;
    wait_until("A mirrors both frames", || {
        a.hub.numbering_of(user) == Some((epoch(&got[1]), 2))
    })
    .await;
    assert!(
        !acks_on_a.acknowledged(user, &first).await,
        "nobody acked yet"
    );

    // The socket on B acknowledges the first offer only.
    b.hub.ack(user, Some(epoch(&got[0])), 1);
    let deadline = Instant::now() + PATIENCE;
    while !acks_on_a.acknowledged(user, &first).await {
        assert!(Instant::now() < deadline, "A never saw B's ack");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !a.hub.acknowledged(user, &first),
        "A's own sockets acked nothing"
    );
    assert!(
        !acks_on_a.acknowledged(user, &second).await,
        "the second offer was not acknowledged"
    );
    // An ack of another epoch (a local numbering while Redis was away) records nothing.
    b.hub.ack(user, Some(epoch(&got[0]) + 1), 2);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!acks_on_a.acknowledged(user, &second).await);
    b.hub.ack(user, None, 2);
    let deadline = Instant::now() + PATIENCE;
    while !acks_on_a.acknowledged(user, &second).await {
        assert!(Instant::now() < deadline, "A never saw B's second ack");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    clean(&url, &prefix).await;
}
