//! MQTT location updates per second **end to end into the matcher**: trackers -> Mosquitto ->
//! KREKI's MQTT consumer -> `MqttLocations` -> the real `DispatchService` (matcher at once,
//! write-behind flush to PostgreSQL), side by side in one run with what Mosquitto itself delivers
//! to a bare subscriber.
//!
//! ```sh
//! cargo build --release --example mqtt_dispatch
//! target/release/examples/mqtt_dispatch [MESSAGES] [PUBLISHERS] [ROUNDS] [QOS] [VOLUNTEERS]
//! # defaults: 100000 4 5 1 1000
//! ```
//!
//! It starts its own Mosquitto on a free port (anonymous, no persistence, the `max_*` and
//! `message_size_limit` lines of `deploy/mosquitto/mosquitto.conf`), never the shared :1883, and
//! its own scratch database `kreki_bench_mqtt_<pid>` on `postgres://postgres@127.0.0.1:5432`
//! (override with `BENCH_DATABASE_ADMIN_URL`), migrated, with VOLUNTEERS on-duty located
//! volunteers, dropped at the end. Dispatch runs with its background tasks (matcher rebuild, history
//! writer, catch-up, position flusher) and the default `[dispatch]` settings; its notifier counts
//! the coordinators' `volunteer.position` messages instead of fanning them out over WebSockets.
//!
//! Each round, PUBLISHERS rumqttc clients publish MESSAGES `{"lat":..,"lng":..,"accuracy_m":8}`
//! payloads in all (QoS QOS) to `kreki/v1/location/{user}` for the VOLUNTEERS users, and the time
//! from the first publish to the last message arrived is taken:
//!
//! - `mosquitto`: a bare rumqttc subscriber that only counts;
//! - `kreki`: `connect_rumqttc` + `Consumer` (default `[mqtt]` bounds) into `MqttLocations` over
//!   the dispatch service; a position counts as arrived when `update_location` returned, i.e. when
//!   the matcher holds it.
//!
//! After each `kreki` round it also waits until the position flusher has written every volunteer's
//! latest position and checks the table: every volunteer's row must carry a position recorded in
//! this round ("table caught up").

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use kreki::wiring::MqttLocations;
use kreki_dispatch::service::Ports;
use kreki_dispatch::{
    Audience, DispatchConfig, DispatchService, Message, Notifier, PgCertificationSource,
};
use kreki_platform::Problem;
use kreki_realtime::BoxFuture;
use kreki_realtime::mqtt::{
    Consumer, LocationSink, MqttConfig, PanicSink, TransportEvent, TransportOptions,
    connect_rumqttc,
};
use rumqttc::QoS;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[path = "../realtime/examples/support/mqtt_bench.rs"]
mod mqtt_bench;
use mqtt_bench::{
    Counter, Failure, IDLE, median, publish, say, start_broker, subscribe_bare, wait_listening,
};

/// `MqttLocations` into dispatch, counting each position once dispatch took it (the matcher holds
/// it, or a newer one of the same volunteer).
struct IntoDispatch {
    locations: MqttLocations,
    counter: std::sync::Mutex<Arc<Counter>>,
    failed: AtomicU64,
    /// Calls begun (a gap to the arrivals means calls still inside dispatch).
    entered: AtomicU64,
}

impl LocationSink for IntoDispatch {
    fn location(
        &self,
        user: Uuid,
        lat: f64,
        lng: f64,
        accuracy_m: Option<f64>,
        recorded_at: DateTime<Utc>,
    ) -> BoxFuture<'_, Result<(), Problem>> {
        self.entered.fetch_add(1, Ordering::Relaxed);
        Box::pin(async move {
            let result = self
                .locations
                .location(user, lat, lng, accuracy_m, recorded_at)
                .await;
            match &result {
                Ok(()) => self
                    .counter
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .hit(),
                Err(_) => {
                    self.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            result
        })
    }
}

struct NoPanics;

impl PanicSink for NoPanics {
    fn panic(
        &self,
        _citizen: Uuid,
        _device_id: &str,
        _idempotency_key: String,
        _lat: f64,
        _lng: f64,
        _accuracy_m: Option<f64>,
        _kind: Option<String>,
    ) -> BoxFuture<'_, Result<Uuid, Problem>> {
        Box::pin(std::future::ready(Ok(Uuid::nil())))
    }
}

/// Counts what dispatch publishes (the coordinators' `volunteer.position` among it).
#[derive(Default)]
struct CountingNotifier(AtomicU64);

impl Notifier for CountingNotifier {
    fn publish(&self, to: &[Audience], message: &Message) {
        // Encoded as the hub would, so the cost of a message is in the figures.
        std::hint::black_box(message.to_json());
        self.0.fetch_add(to.len() as u64, Ordering::Relaxed);
    }
}

/// KREKI's consumer into dispatch.
async fn subscribe_kreki(
    port: u16,
    sink: Arc<IntoDispatch>,
    pool: PgPool,
    shutdown: CancellationToken,
) -> Result<(), Failure> {
    let config = MqttConfig {
        port,
        client_id: format!("bench-kreki-{}", Uuid::now_v7()),
        shared_group: String::new(),
        ..MqttConfig::default()
    };
    let mut options = TransportOptions::from_config(&config);
    options.credentials = None;
    options.clean_session = true;
    let (transport, mut events, _driver) = connect_rumqttc(options, shutdown.clone());
    match events.recv().await {
        Some(TransportEvent::Connected) => {}
        other => return Err(format!("the consumer did not connect: {other:?}").into()),
    }
    let consumer = Consumer::new(&config, transport, pool, Arc::new(NoPanics), sink);
    tokio::spawn(consumer.run(events, shutdown));
    Ok(())
}

/// Creates the scratch database, migrates it and adds `count` on-duty located volunteers.
async fn scratch_database(
    admin_url: &str,
    name: &str,
    count: usize,
) -> Result<(PgPool, Vec<Uuid>), Failure> {
    let admin = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(admin_url)
        .await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name}"
    )))
    .execute(&admin)
    .await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await?;
    admin.close().await;
    let url = format!(
        "{}/{name}",
        admin_url
            .rsplit_once('/')
            .map_or(admin_url, |(base, _)| base)
    );
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(16)
        .connect(&url)
        .await?;
    kreki::app::migrate(&pool).await?;
    let users: Vec<Uuid> = (0..count).map(|_| Uuid::now_v7()).collect();
    let (mut lats, mut lngs, mut cells) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..count {
        let lat = -6.40 + 0.35 * ((i % 1000) as f64 / 1000.0);
        let lng = 106.65 + 0.40 * ((i % 997) as f64 / 997.0);
        lats.push(lat);
        lngs.push(lng);
        cells.push(kreki_dispatch::domain::h3_cell(
            kreki_dispatch::LatLng::new(lat, lng)?,
        ));
    }
    sqlx::query(
        "INSERT INTO dispatch.volunteers (user_id, name, on_duty, location, h3_cell, accuracy_m, location_at)
         SELECT u, 'bench', true, ST_SetSRID(ST_MakePoint(lng, lat), 4326)::geography, c, 8,
                now() - interval '1 minute'
         FROM UNNEST($1::uuid[], $2::float8[], $3::float8[], $4::bigint[]) AS t(u, lat, lng, c)",
    )
    .bind(&users)
    .bind(&lats)
    .bind(&lngs)
    .bind(&cells)
    .execute(&pool)
    .await?;
    Ok((pool, users))
}

struct Round {
    rate_per_s: f64,
    delivered: usize,
    /// `kreki` rounds: ms from the last arrival until every row carried this round's position.
    table_caught_up_ms: Option<f64>,
}

fn rate(delivered: usize, messages: usize, elapsed: Duration) -> f64 {
    if delivered == messages {
        delivered as f64 / elapsed.as_secs_f64()
    } else {
        delivered as f64 / (elapsed.saturating_sub(IDLE)).as_secs_f64().max(1e-3)
    }
}

struct Bench {
    port: u16,
    messages: usize,
    publishers: usize,
    qos: QoS,
    users: Arc<Vec<Uuid>>,
    pool: PgPool,
    service: Arc<DispatchService>,
    sink: Arc<IntoDispatch>,
}

impl Bench {
    async fn bare(&self) -> Result<Round, Failure> {
        let counter = Counter::new(self.messages);
        let client = subscribe_bare(self.port, counter.clone()).await?;
        let started = Instant::now();
        let publishing = self.spawn_publishers();
        let delivered = counter.wait().await;
        let elapsed = started.elapsed();
        drop(publishing.await?);
        drop(client.disconnect().await);
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(Round {
            rate_per_s: rate(delivered, self.messages, elapsed),
            delivered,
            table_caught_up_ms: None,
        })
    }

    async fn kreki(&self) -> Result<Round, Failure> {
        let counter = Counter::new(self.messages);
        *self
            .sink
            .counter
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = counter.clone();
        let shutdown = CancellationToken::new();
        subscribe_kreki(
            self.port,
            self.sink.clone(),
            self.pool.clone(),
            shutdown.clone(),
        )
        .await?;
        let round_started_at = Utc::now();
        let started = Instant::now();
        let publishing = self.spawn_publishers();
        let delivered = counter.wait().await;
        let elapsed = started.elapsed();
        let arrived = Instant::now();
        if delivered < self.messages {
            say(&format!(
                "  {} calls into dispatch began, {delivered} returned",
                self.sink.entered.swap(0, Ordering::Relaxed)
            ));
        }
        self.sink.entered.store(0, Ordering::Relaxed);
        drop(publishing.await?);
        // The table: every volunteer's row carries a position of this round once the flusher ran.
        let deadline = Instant::now() + Duration::from_secs(30);
        let table_caught_up_ms = loop {
            let behind: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM dispatch.volunteers WHERE location_at < $1",
            )
            .bind(round_started_at)
            .fetch_one(&self.pool)
            .await?;
            if behind == 0 && self.service.position_writer().pending() == 0 {
                break Some(arrived.elapsed().as_secs_f64() * 1000.0);
            }
            if Instant::now() > deadline {
                say(&format!(
                    "  table NOT caught up after 30 s: {behind} rows behind"
                ));
                break None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        shutdown.cancel();
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(Round {
            rate_per_s: rate(delivered, self.messages, elapsed),
            delivered,
            table_caught_up_ms,
        })
    }

    fn spawn_publishers(&self) -> tokio::task::JoinHandle<Result<(), Failure>> {
        let (port, messages, publishers, qos, users) = (
            self.port,
            self.messages,
            self.publishers,
            self.qos,
            self.users.clone(),
        );
        tokio::spawn(async move { publish(port, messages, publishers, qos, &users).await })
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".to_owned())
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    // Warnings (failed flushes, dropped positions) to stderr; `RUST_LOG` for more.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: usize| -> Result<usize, Failure> {
        Ok(match args.get(i) {
            Some(value) => value.parse()?,
            None => default,
        })
    };
    let (messages, publishers, rounds) = (arg(0, 100_000)?, arg(1, 4)?.max(1), arg(2, 5)?.max(1));
    let qos = match arg(3, 1)? {
        0 => QoS::AtMostOnce,
        _ => QoS::AtLeastOnce,
    };
    let volunteers = arg(4, 1000)?.max(1);
    let admin_url = std::env::var("BENCH_DATABASE_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let database = format!("kreki_bench_mqtt_{}", std::process::id());
    let (pool, users) = scratch_database(&admin_url, &database, volunteers).await?;
    let result = run(pool.clone(), users, messages, publishers, rounds, qos).await;
    pool.close().await;
    let admin = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&admin_url)
        .await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {database} WITH (FORCE)"
    )))
    .execute(&admin)
    .await?;
    result
}

async fn run(
    pool: PgPool,
    users: Vec<Uuid>,
    messages: usize,
    publishers: usize,
    rounds: usize,
    qos: QoS,
) -> Result<(), Failure> {
    let notifier = Arc::new(CountingNotifier::default());
    let (service, workers) = DispatchService::new(
        pool.clone(),
        DispatchConfig::default(),
        Ports {
            notifier: notifier.clone(),
            certs: Arc::new(PgCertificationSource::new(pool.clone())),
            pii: kreki_platform::pii::Pii::dev(),
        },
    );
    let shutdown = CancellationToken::new();
    let tasks = kreki_dispatch::worker::spawn(service.clone(), workers, shutdown.clone());
    let ready = Instant::now() + Duration::from_secs(60);
    while !service.is_prepared() {
        if Instant::now() > ready {
            return Err("dispatch did not prepare".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let in_matcher = users
        .iter()
        .filter(|user| service.in_matcher(**user))
        .count();
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let _broker = start_broker(
        port,
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/mosquitto/mosquitto.conf"),
    )?;
    wait_listening(port).await?;
    let sink = Arc::new(IntoDispatch {
        locations: MqttLocations(service.clone()),
        counter: std::sync::Mutex::new(Counter::new(0)),
        failed: AtomicU64::new(0),
        entered: AtomicU64::new(0),
    });
    say(&format!(
        "{messages} location updates per round from {publishers} publishers, QoS {} publish, {rounds} rounds, {} on-duty volunteers ({in_matcher} in the matcher), Mosquitto on 127.0.0.1:{port}, load average {}",
        qos as u8,
        users.len(),
        load_average()
    ));
    let bench = Bench {
        port,
        messages,
        publishers,
        qos,
        users: Arc::new(users),
        pool,
        service: service.clone(),
        sink: sink.clone(),
    };
    let (mut bare, mut ours, mut caught_up) = (Vec::new(), Vec::new(), Vec::new());
    for r in 1..=rounds {
        let rows_before = service.position_writer().rows_written();
        for which in ["mosquitto", "kreki"] {
            let result = if which == "mosquitto" {
                bench.bare().await?
            } else {
                bench.kreki().await?
            };
            let lost = messages - result.delivered.min(messages);
            let table = result.table_caught_up_ms.map_or(String::new(), |ms| {
                caught_up.push(ms);
                format!(
                    "; table caught up {ms:.0} ms after the last arrival ({} row writes for {messages} positions)",
                    service.position_writer().rows_written() - rows_before
                )
            });
            say(&format!(
                "round {r} {which:>9}: {:>9.0} msg/s{}{table}",
                result.rate_per_s,
                if lost > 0 {
                    format!(" ({lost} lost)")
                } else {
                    String::new()
                }
            ));
            if which == "mosquitto" {
                bare.push(result.rate_per_s);
            } else {
                ours.push(result.rate_per_s);
            }
        }
    }
    let (bare, ours) = (median(bare), median(ours));
    say(&format!(
        "median: mosquitto -> bare subscriber {bare:.0} msg/s; mosquitto -> kreki consumer -> dispatch matcher {ours:.0} msg/s ({:.0} % of the broker's own); table caught up {:.0} ms after the last arrival; goal >= 50000 msg/s: {}",
        100.0 * ours / bare.max(1.0),
        median(caught_up),
        if ours >= 50_000.0 { "met" } else { "missed" }
    ));
    say(&format!(
        "dispatch: {} positions failed, {} history samples dropped (queue full), {} flush failures, {} messages published to coordinators; load average {}",
        sink.failed.load(Ordering::Relaxed),
        service.history_dropped(),
        service.position_writer().flush_failures(),
        notifier.0.load(Ordering::Relaxed),
        load_average()
    ));
    shutdown.cancel();
    for task in tasks {
        drop(tokio::time::timeout(Duration::from_secs(5), task).await);
    }
    Ok(())
}
