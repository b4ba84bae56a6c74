//! What the hot path costs in round trips to PostgreSQL, counted on the wire.
//!
//! A small proxy sits between dispatch's pool and the server and counts the statements the client
//! sends: each `Execute` of the extended query protocol (sqlx runs each statement as one
//! Bind-Execute-Sync round trip once it is prepared on the connection) and each simple `Query`
//! (`BEGIN`, `COMMIT`). On a busy machine every round trip waits for a CPU slice on both sides, so
//! their number, not the SQL, is what a panic's latency is made of. Besides these, sqlx checks a
//! connection with a bare `Sync` when it goes back to the pool, in a task of its own after the
//! work is done: not on the path a panic waits on.
//!
//! Budgets (a single statement commits by itself, so there is no separate `COMMIT`):
//! - a panic, with its first wave: the catch-up on other instances' volunteer changes and the
//!   ingest statement (2);
//! - a later wave (a deadline): the catch-up, the claim with its snapshot, the plan's write (3).

pub mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{MONAS, Person, TestApp, alert_body, offset};
use http::StatusCode;
use kreki_dispatch::config::DispatchConfig;
use serde_json::Value;
use sqlx::PgPool;
use sqlx::postgres::PgSslMode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const WAIT: Duration = Duration::from_secs(10);

/// `SSLRequest` and `GSSENCRequest`: untyped messages after which another untyped one follows.
const NEGOTIATION_CODES: [u32; 2] = [80_877_103, 80_877_104];

/// Counts the client's round trips to PostgreSQL through it.
struct WireCounter {
    port: u16,
    round_trips: Arc<AtomicU64>,
}

impl WireCounter {
    /// A proxy on a free loopback port in front of `host:port`.
    async fn start(host: String, port: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let local = listener.local_addr().expect("an address").port();
        let round_trips = Arc::new(AtomicU64::new(0));
        let counted = round_trips.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect((host.as_str(), port)).await else {
                    continue;
                };
                tokio::spawn(relay(client, server, counted.clone()));
            }
        });
        Self {
            port: local,
            round_trips,
        }
    }

    /// Round trips since the last call.
    fn take(&self) -> u64 {
        self.round_trips.swap(0, Ordering::SeqCst)
    }
}

/// Copies both ways, reading the client's messages as they pass: the first ones carry no type
/// byte (negotiation, startup), every later one is a type byte and a length.
async fn relay(client: TcpStream, server: TcpStream, round_trips: Arc<AtomicU64>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    tokio::spawn(async move {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
    });
    let mut pending: Vec<u8> = Vec::new();
    let mut startup = true;
    let mut chunk = vec![0_u8; 64 * 1024];
    loop {
        let Ok(read) = client_read.read(&mut chunk).await else {
            return;
        };
        if read == 0 || server_write.write_all(&chunk[..read]).await.is_err() {
            return;
        }
        pending.extend_from_slice(&chunk[..read]);
        loop {
            let header = if startup { 4 } else { 5 };
            if pending.len() < header {
                break;
            }
            let length_at = usize::from(!startup);
            let length = u32::from_be_bytes(
                pending[length_at..length_at + 4]
                    .try_into()
                    .expect("four bytes"),
            ) as usize;
            let total = length + length_at;
            if pending.len() < total {
                break;
            }
            if startup {
                let code = pending
                    .get(4..8)
                    .map(|bytes| u32::from_be_bytes(bytes.try_into().expect("four bytes")));
                startup = code.is_some_and(|code| NEGOTIATION_CODES.contains(&code));
            } else if matches!(pending[0], b'E' | b'Q') {
                round_trips.fetch_add(1, Ordering::SeqCst);
            }
            pending.drain(..total);
        }
    }
}

async fn volunteer_north(app: &TestApp, name: &str, metres: f64) -> Person {
    let (lat, lng) = offset(MONAS.0, MONAS.1, metres, 0.0);
    app.volunteer_at(name, lat, lng, &[]).await
}

async fn offer_for(app: &TestApp, volunteer: &Person, alert: &Value) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let offers = app.notifier.to_user(volunteer.id, "offer");
        if let Some(offer) = offers
            .iter()
            .find(|message| message["offer"]["alert"]["id"] == alert["id"])
        {
            return offer["offer"].clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} got no offer for {}",
            volunteer.name,
            alert["id"]
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Brings the deadline of every open wave forward to now.
async fn lapse(pool: &PgPool) {
    sqlx::query("UPDATE dispatch.offers SET expires_at = now() - interval '1 second' WHERE status = 'pending'")
        .execute(pool)
        .await
        .expect("expired");
    sqlx::query(
        "UPDATE dispatch.timers SET due_at = now() - interval '1 second' WHERE fired_at IS NULL",
    )
    .execute(pool)
    .await
    .expect("due");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_panic_and_a_wave_stay_within_their_round_trip_budgets(pool: PgPool) {
    let options = pool.connect_options();
    let proxy = WireCounter::start(options.get_host().to_owned(), options.get_port()).await;
    let through_proxy = (*options)
        .clone()
        .host("127.0.0.1")
        .port(proxy.port)
        .ssl_mode(PgSslMode::Disable);
    // Configured as production configures it, with two connections: one stays with the listener
    // for other instances' announcements, the other does all the work, so every statement is
    // prepared once in the warm-up and the figures below are the steady state.
    let proxied = kreki_platform::db::pool(through_proxy, 2, Duration::from_secs(10));
    let config = DispatchConfig {
        // No poll while counting: only the work under test touches the database.
        poll_interval_ms: 600_000,
        ..DispatchConfig::default()
    };
    let mut app = TestApp::with_config(proxied, config).await;
    app.start_workers();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !app.service.is_dispatching() {
        assert!(tokio::time::Instant::now() < deadline, "never dispatching");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let near = volunteer_north(&app, "near", 100.0).await;
    let second = volunteer_north(&app, "second", 1500.0).await;
    let third = volunteer_north(&app, "third", 3000.0).await;

    // Warm-up: the same path once, so each statement is prepared on the connection.
    let citizen = app.citizen("Sari");
    let (status, warm) = app
        .panic(&citizen, "warm", alert_body("other", MONAS))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{warm}");
    offer_for(&app, &near, &warm).await;
    lapse(&pool).await;
    assert!(app.service.process_due_timers().await.expect("a wave"));
    offer_for(&app, &second, &warm).await;
    // Background announcements of the volunteers' changes settle.
    tokio::time::sleep(Duration::from_millis(600)).await;

    // A panic with its first wave.
    let other = app.citizen("Budi");
    let elsewhere = offset(MONAS.0, MONAS.1, 0.0, 50.0);
    proxy.take();
    let (status, alert) = app
        .panic(&other, "counted", alert_body("other", elsewhere))
        .await;
    let panic_round_trips = proxy.take();
    assert_eq!(status, StatusCode::CREATED, "{alert}");
    assert_eq!(
        alert["status"], "dispatching",
        "the first wave went out with it"
    );
    offer_for(&app, &near, &alert).await;
    assert!(
        panic_round_trips <= 2,
        "a panic with its first wave took {panic_round_trips} round trips"
    );

    // A later wave, when the first one's deadline passes (the warm-up alert's second deadline
    // falls due with it: both go in one batch, at the same cost).
    lapse(&pool).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.take();
    assert!(app.service.process_due_timers().await.expect("a wave"));
    let wave_round_trips = proxy.take();
    offer_for(&app, &second, &alert).await;
    offer_for(&app, &third, &warm).await;
    assert!(
        wave_round_trips <= 3,
        "a wave took {wave_round_trips} round trips"
    );
}
