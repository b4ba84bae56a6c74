//! Real time under overload: two `kreki serve` processes on one database and one Redis, as a
//! city runs them, pushed into every corner where a frame used to get lost quietly.
//!
//! Instance A runs the waves (panics are sent to it in bursts); the volunteers' sockets are on B.
//! The bus queue is forced small (`realtime.redis.queue = 16`) and Redis stalls for a moment
//! (SIGSTOP) during some bursts, so the offers overflow it; B's per-socket queue is small (`realtime.outbound_queue = 4`) and one volunteer's socket
//! has a tiny receive buffer and stops reading for seconds at a time, so it is dropped as too slow
//! (4008) and resumes with its cursor; some volunteers accept offers, so the others' offers are
//! withdrawn; and A is killed with SIGKILL halfway, with whatever its outbox held, and started
//! again.
//!
//! Every volunteer's client behaves as `web/shared/live.js` does (cursor of `seq` and `epoch`,
//! resume with both, `resync` means refetch). Checked, for every volunteer, against the database:
//! each offer made to them arrived as an `offer` frame, or the client was sent `resync` after the
//! offer was made; each withdrawal likewise; and no numbered frame ever followed another without
//! the next `seq` of the same epoch unless a `resync` came in between. Zero silent gaps.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use kreki_dispatch::domain::AlertKind;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::fanout::OwnRedis;
use crate::support::{MONAS, Server, TempDir, database_url, signing_key};

const VOLUNTEERS: usize = 12;
/// Panics in all, sent in bursts of `BURST` at once.
const PANICS: usize = 48;
const BURST: usize = 8;
/// Volunteers that accept every offer they get (and complete at once).
const ACCEPTORS: usize = 4;

/// A point `north_m` north and `east_m` east of Monas.
fn near(north_m: f64, east_m: f64) -> (f64, f64) {
    (
        MONAS.0 + north_m / 110_574.0,
        MONAS.1 + east_m / (111_320.0 * MONAS.0.to_radians().cos()),
    )
}

/// An offer as the database holds it: id, volunteer, offered at, status, responded at.
type OfferRow = (Uuid, Uuid, DateTime<Utc>, String, Option<DateTime<Utc>>);

/// What one volunteer's client saw, in order.
#[derive(Default)]
struct Seen {
    /// Every numbered frame and every `resync`, with when it arrived.
    frames: Vec<(DateTime<Utc>, Value)>,
    /// Numbered frames that did not follow the one before without a `resync` in between.
    gaps: Vec<String>,
    /// The cursor: `(epoch, seq)` of the newest frame processed.
    cursor: Option<(u64, u64)>,
    /// Whether a `resync` came since the last numbered frame.
    resynced: bool,
    too_slow: usize,
    connections: usize,
}

impl Seen {
    fn process(&mut self, frame: Value) {
        let (Some(seq), Some(epoch)) = (frame["seq"].as_u64(), frame["epoch"].as_u64()) else {
            return;
        };
        let resync = frame["type"] == "resync";
        if !resync
            && !self.resynced
            && let Some((last_epoch, last_seq)) = self.cursor
            && last_seq != 0
            && !(last_epoch == epoch && seq == last_seq + 1)
            && !(last_epoch == epoch && seq <= last_seq)
        {
            self.gaps.push(format!(
                "{epoch}/{seq} after {last_epoch}/{last_seq}: {frame}"
            ));
        }
        if !resync && self.cursor.is_some_and(|(e, s)| e == epoch && seq <= s) {
            // Already seen (a replay overlapping what arrived live): as live.js, skip it.
            return;
        }
        self.resynced = resync;
        self.cursor = Some((epoch, seq));
        self.frames.push((Utc::now(), frame));
    }

    fn resyncs(&self) -> Vec<DateTime<Utc>> {
        self.frames
            .iter()
            .filter(|(_, frame)| frame["type"] == "resync")
            .map(|(at, _)| *at)
            .collect()
    }

    fn ids_of(&self, kind: &str, field: &str) -> HashSet<Uuid> {
        self.frames
            .iter()
            .filter(|(_, frame)| frame["type"] == kind)
            .filter_map(|(_, frame)| {
                let id = if kind == "offer" {
                    &frame["offer"]["id"]
                } else {
                    &frame[field]
                };
                id.as_str().and_then(|id| Uuid::parse_str(id).ok())
            })
            .collect()
    }
}

/// A volunteer's client on B: connects (resuming with its cursor after any close), records
/// what arrives, accepts offers when it is an acceptor, reads slowly when it is the slow one.
async fn client(
    b: String,
    token: String,
    accepts: bool,
    slow: bool,
    seen: Arc<Mutex<Seen>>,
    stop: CancellationToken,
) {
    let http = reqwest::Client::new();
    while !stop.is_cancelled() {
        let cursor = seen.lock().expect("not poisoned").cursor;
        let mut url = format!(
            "{}/v1/ws?access_token={token}",
            b.replacen("http://", "ws://", 1)
        );
        if let Some((epoch, seq)) = cursor {
            url.push_str(&format!("&resume_after={seq}&epoch={epoch}"));
        }
        let Ok(request) = url.as_str().into_client_request() else {
            return;
        };
        let address = b
            .trim_start_matches("http://")
            .parse::<std::net::SocketAddr>()
            .expect("B's address");
        let socket = TcpSocket::new_v4().expect("a socket");
        if slow {
            // A phone on a poor network: the server's writes back up after a few kilobytes.
            socket.set_recv_buffer_size(2048).expect("a small buffer");
        }
        let Ok(stream) = socket.connect(address).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Ok((mut socket, _)) = tokio_tungstenite::client_async(request, stream).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        seen.lock().expect("not poisoned").connections += 1;
        let mut last_pause = Instant::now();
        loop {
            if slow && last_pause.elapsed() > Duration::from_secs(2) {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(3)) => {}
                }
                last_pause = Instant::now();
            }
            let message = tokio::select! {
                () = stop.cancelled() => return,
                message = socket.next() => message,
            };
            match message {
                Some(Ok(Message::Text(text))) => {
                    let frame: Value = serde_json::from_str(text.as_str()).expect("JSON");
                    if accepts && frame["type"] == "offer" {
                        let offer = frame["offer"]["id"].as_str().unwrap_or_default().to_owned();
                        tokio::spawn(accept(http.clone(), b.clone(), token.clone(), offer));
                    }
                    seen.lock().expect("not poisoned").process(frame);
                }
                Some(Ok(Message::Close(close))) => {
                    if close.is_some_and(|close| u16::from(close.code) == 4008) {
                        seen.lock().expect("not poisoned").too_slow += 1;
                    }
                    break;
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break,
            }
        }
    }
}

/// Accepts an offer and completes the assignment at once (the volunteer is free again).
async fn accept(http: reqwest::Client, b: String, token: String, offer: String) {
    let Ok(response) = http
        .post(format!("{b}/v1/offers/{offer}/accept"))
        .bearer_auth(&token)
        .send()
        .await
    else {
        return;
    };
    if response.status() != StatusCode::OK {
        return;
    }
    let Ok(assignment) = response.json::<Value>().await else {
        return;
    };
    let Some(id) = assignment["id"].as_str() else {
        return;
    };
    drop(
        http.post(format!("{b}/v1/assignments/{id}/status"))
            .bearer_auth(&token)
            .json(&json!({"status": "completed"}))
            .send()
            .await,
    );
}

/// Sends a panic to whichever A is up, until one answers 201 or 200 (same idempotency key).
async fn panic(a: Arc<Mutex<String>>, citizen: String, at: (f64, f64)) {
    let http = reqwest::Client::new();
    let key = Uuid::new_v4().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let base = a.lock().expect("not poisoned").clone();
        let sent = http
            .post(format!("{base}/v1/alerts"))
            .bearer_auth(&citizen)
            .header("Idempotency-Key", &key)
            .json(&json!({"kind": "security", "location": {"lat": at.0, "lng": at.1}}))
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        if let Ok(response) = sent
            && response.status().is_success()
        {
            return;
        }
        assert!(Instant::now() < deadline, "a panic was never acknowledged");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `realtime_bus_gaps_total{reason="queue_full"}` of an instance.
async fn queue_full_gaps(base: &str) -> u64 {
    let Ok(response) = reqwest::get(format!("{base}/metrics")).await else {
        return 0;
    };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .filter(|line| line.starts_with("realtime_bus_gaps_total") && line.contains("queue_full"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|value| value as u64)
        .sum()
}

#[sqlx::test(migrations = false)]
async fn under_overload_with_an_instance_killed_no_frame_is_lost_silently(pool: PgPool) {
    let dir = TempDir::new();
    let key = signing_key(&dir.0);
    let redis = OwnRedis::start();
    let env = vec![
        ("KREKI_DATABASE__URL", database_url(&pool)),
        ("KREKI_AUTH__SIGNING_KEY_FILE", key.display().to_string()),
        ("KREKI_REALTIME__REDIS__URL", redis.url()),
        ("KREKI_REALTIME__REDIS__QUEUE", "16".to_owned()),
        ("KREKI_REALTIME__REDIS__PRESENCE_TTL_S", "3".to_owned()),
        ("KREKI_DISPATCH__REST_PERIOD_S", "0".to_owned()),
    ];
    let mut env_b = env.clone();
    env_b.push(("KREKI_DISPATCH__POLL_INTERVAL_MS", "60000".to_owned()));
    env_b.push(("KREKI_REALTIME__OUTBOUND_QUEUE", "4".to_owned()));
    env_b.push(("KREKI_REALTIME__WRITE_TIMEOUT_MS", "500".to_owned()));
    let b = Server::start(&env_b).await;
    let mut a = Server::start(&env).await;

    let mut config = kreki::config::Config::default();
    config.auth.signing_key_file = Some(key.clone());
    let instance = kreki_sim::loadtest::Instance {
        pool: pool.clone(),
        auth: config.auth.clone(),
        dispatch: config.dispatch.clone(),
    };
    let seeded = kreki_sim::loadtest::seed::seed(
        &instance,
        AlertKind::Security,
        VOLUNTEERS,
        PANICS,
        20_261_205,
    )
    .await
    .expect("seeded");
    // Everyone within a few hundred metres of Monas, through B; the slow one nearest, so it gets
    // an offer for every panic.
    let http = reqwest::Client::new();
    for (index, volunteer) in seeded.volunteers.iter().enumerate() {
        let metres = 30.0 + 40.0 * index as f64;
        let at = near(metres * (index as f64).cos(), metres * (index as f64).sin());
        let response = http
            .post(format!("{}/v1/volunteers/me/location", b.base))
            .bearer_auth(&volunteer.token)
            .json(&json!({"lat": at.0, "lng": at.1, "accuracy_m": 5}))
            .send()
            .await
            .expect("answered");
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }

    let stop = CancellationToken::new();
    let mut seen = Vec::new();
    let mut clients = Vec::new();
    for (index, volunteer) in seeded.volunteers.iter().enumerate() {
        let log = Arc::new(Mutex::new(Seen::default()));
        seen.push((volunteer.id, index == 0, Arc::clone(&log)));
        clients.push(tokio::spawn(client(
            b.base.clone(),
            volunteer.token.clone(),
            (1..=ACCEPTORS).contains(&index),
            index == 0,
            log,
            stop.clone(),
        )));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let a_base = Arc::new(Mutex::new(a.base.clone()));
    let mut gaps_before_kill = 0;
    let mut killed_at = Instant::now();
    for (burst, citizens) in seeded.citizens.chunks(BURST).enumerate() {
        if burst == PANICS / BURST / 2 {
            // Halfway: A dies with whatever its outbox holds, and starts again.
            gaps_before_kill = queue_full_gaps(&a.base).await;
            drop(a);
            killed_at = Instant::now();
            a = Server::start(&env).await;
            *a_base.lock().expect("not poisoned") = a.base.clone();
        }
        let sends: Vec<_> = citizens
            .iter()
            .enumerate()
            .map(|(index, citizen)| {
                let at = near(20.0 * index as f64, -15.0 * burst as f64);
                panic(Arc::clone(&a_base), citizen.token.clone(), at)
            })
            .collect();
        // Every other burst, Redis stalls while the waves publish (shorter than the bus's
        // response timeout: a slow Redis, not a dead one), so their offers pile up in A's queue.
        let stall = burst % 2 == 1;
        if stall {
            redis.freeze(true);
        }
        futures_util::future::join_all(sends).await;
        if stall {
            tokio::time::sleep(Duration::from_millis(300)).await;
            redis.freeze(false);
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    // A's death is noticed once its liveness expires (3 s) at B's next refresh; let every
    // client get what is still on its way.
    let since_kill = killed_at.elapsed();
    if since_kill < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_secs(10) - since_kill).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.cancel();
    for client in clients {
        client.await.expect("the client ran");
    }
    // Each client resumes once more from its cursor and reads what it is given.
    let stop = CancellationToken::new();
    let finals: Vec<_> = seeded
        .volunteers
        .iter()
        .zip(&seen)
        .map(|(volunteer, (_, _, log))| {
            tokio::spawn(client(
                b.base.clone(),
                volunteer.token.clone(),
                false,
                false,
                Arc::clone(log),
                stop.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.cancel();
    for client in finals {
        client.await.expect("the client ran");
    }

    // The database's word on what each volunteer should have been told.
    let offers: Vec<OfferRow> = sqlx::query_as(
        "SELECT id, volunteer_id, offered_at, status, responded_at FROM dispatch.offers",
    )
    .fetch_all(&pool)
    .await
    .expect("offers");
    let mut silent = Vec::new();
    let mut totals: HashMap<&str, usize> = HashMap::new();
    for (volunteer, _, log) in &seen {
        let log = log.lock().expect("not poisoned");
        for gap in &log.gaps {
            silent.push(format!("{volunteer}: frame gap {gap}"));
        }
        let resyncs = log.resyncs();
        let told_after = |at: DateTime<Utc>| resyncs.iter().any(|resync| *resync >= at);
        let offered = log.ids_of("offer", "offer_id");
        let withdrawn = log.ids_of("offer.withdrawn", "offer_id");
        for (id, _, offered_at, status, responded_at) in
            offers.iter().filter(|offer| offer.1 == *volunteer)
        {
            *totals.entry("offers").or_default() += 1;
            if offered.contains(id) {
                *totals.entry("offer frames").or_default() += 1;
            } else if told_after(*offered_at) {
                *totals.entry("offers covered by a resync").or_default() += 1;
            } else {
                silent.push(format!(
                    "{volunteer}: offer {id} made at {offered_at} never told"
                ));
            }
            if status == "withdrawn" {
                let at = responded_at.expect("a withdrawal has its time");
                *totals.entry("withdrawals").or_default() += 1;
                if withdrawn.contains(id) {
                    *totals.entry("withdrawal frames").or_default() += 1;
                } else if told_after(at) {
                    *totals.entry("withdrawals covered by a resync").or_default() += 1;
                } else {
                    silent.push(format!(
                        "{volunteer}: withdrawal of {id} at {at} never told"
                    ));
                }
            }
        }
        *totals.entry("resyncs").or_default() += resyncs.len();
        *totals.entry("4008 closes").or_default() += log.too_slow;
        *totals.entry("connections").or_default() += log.connections;
    }
    let gaps = gaps_before_kill + queue_full_gaps(&a.base).await + queue_full_gaps(&b.base).await;
    eprintln!("overload: {totals:?}, bus queue overflows: {gaps}");
    assert!(silent.is_empty(), "silent gaps:\n{}", silent.join("\n"));
    // The run did what it says: offers and withdrawals flowed, the queue overflowed, a socket
    // was too slow.
    assert!(
        totals.get("offers").copied().unwrap_or(0) >= PANICS,
        "{totals:?}"
    );
    assert!(
        totals.get("withdrawals").copied().unwrap_or(0) > 0,
        "{totals:?}"
    );
    assert!(gaps > 0, "the bus queue never overflowed: {totals:?}");
    // The slow socket is dropped while its receive buffer is full, so the 4008 close frame
    // often never reaches it (the server gives up the close handshake and closes the
    // connection): that it had to reconnect is the evidence, and some socket saw 4008.
    let slow_connections = seen
        .iter()
        .find(|(_, slow, _)| *slow)
        .map(|(_, _, log)| log.lock().expect("not poisoned").connections)
        .unwrap_or(0);
    assert!(
        slow_connections > 1,
        "the slow socket was never dropped: {totals:?}"
    );
    assert!(
        totals.get("4008 closes").copied().unwrap_or(0) > 0,
        "no socket was closed as too slow: {totals:?}"
    );
    a.terminate();
    b.terminate();
    assert!(a.wait().await.success());
    assert!(b.wait().await.success());
}
