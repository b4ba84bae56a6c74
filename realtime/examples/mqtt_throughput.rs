//! MQTT location updates per second, end to end into the [`LocationSink`], side by side with what
//! Mosquitto itself delivers to a bare subscriber, in one run on one machine.
//!
//! ```sh
//! cargo run --release -p kreki-realtime --example mqtt_throughput -- [MESSAGES] [PUBLISHERS] [ROUNDS] [QOS]
//! # defaults: 200000 4 5 1
//! ```
//!
//! It starts its own Mosquitto on a free port (anonymous, no persistence, and the `max_*` and
//! `message_size_limit` lines of `deploy/mosquitto/mosquitto.conf`), never the shared :1883. Each
//! round runs both subscribers against the same load: PUBLISHERS rumqttc clients publish MESSAGES
//! location payloads in all (`{"lat":..,"lng":..,"accuracy_m":..}`, 1,000 users, QoS QOS) to
//! `kreki/v1/location/{user}`, and the time from the first publish to the last message received is
//! measured:
//!
//! - `mosquitto`: a bare rumqttc subscriber (QoS 1, automatic acks) that only counts messages;
//! - `kreki`: `connect_rumqttc` + [`Consumer`] with the default `[mqtt]` bounds (QoS 1
//!   subscription, manual acks after handling, topic routing, JSON validation, bounded in-flight
//!   tasks) into a `LocationSink` that counts.
//!
//! Prints each round and the medians. A round that loses messages (the broker drops QoS 1 messages
//! beyond `max_queued_messages` per client) says how many.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use kreki_platform::Problem;
use kreki_realtime::BoxFuture;
use kreki_realtime::mqtt::{
    Consumer, LocationSink, MqttConfig, PanicSink, TransportEvent, TransportOptions,
    connect_rumqttc,
};
use rumqttc::QoS;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[path = "support/mqtt_bench.rs"]
mod mqtt_bench;
use mqtt_bench::{
    Counter, Failure, IDLE, median, publish, say, start_broker, subscribe_bare, wait_listening,
};

impl LocationSink for Counter {
    fn location(
        &self,
        _user: Uuid,
        lat: f64,
        lng: f64,
        _accuracy_m: Option<f64>,
        _recorded_at: DateTime<Utc>,
    ) -> BoxFuture<'_, Result<(), Problem>> {
        std::hint::black_box((lat, lng));
        self.hit();
        Box::pin(std::future::ready(Ok(())))
    }
}

impl PanicSink for Counter {
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

/// KREKI's consumer into a counting sink.
async fn subscribe_kreki(
    port: u16,
    counter: Arc<Counter>,
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
    // A session kept after the round would queue the next rounds' messages in the broker.
    options.clean_session = true;
    let (transport, mut events, _driver) = connect_rumqttc(options, shutdown.clone());
    match events.recv().await {
        Some(TransportEvent::Connected) => {}
        other => return Err(format!("the consumer did not connect: {other:?}").into()),
    }
    // `Connected` comes after the broker's SUBACK, as the bare subscriber waits for its own.
    // Locations never touch the database; the pool is only for panics.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .connect_lazy("postgres://postgres@127.0.0.1:5432/postgres")?;
    let consumer = Consumer::new(&config, transport, pool, counter.clone(), counter);
    tokio::spawn(consumer.run(events, shutdown));
    Ok(())
}

struct Round {
    rate_per_s: f64,
    delivered: usize,
}

async fn round(
    port: u16,
    which: &str,
    messages: usize,
    publishers: usize,
    qos: QoS,
    users: &Arc<Vec<Uuid>>,
) -> Result<Round, Failure> {
    let counter = Counter::new(messages);
    let shutdown = CancellationToken::new();
    let bare = if which == "mosquitto" {
        Some(subscribe_bare(port, counter.clone()).await?)
    } else {
        subscribe_kreki(port, counter.clone(), shutdown.clone()).await?;
        None
    };
    let started = Instant::now();
    let publishing = tokio::spawn({
        let users = users.clone();
        async move { publish(port, messages, publishers, qos, &users).await }
    });
    let delivered = counter.wait().await;
    let elapsed = started.elapsed();
    drop(publishing.await?);
    shutdown.cancel();
    if let Some(client) = bare {
        drop(client.disconnect().await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rate_per_s = if delivered == messages {
        delivered as f64 / elapsed.as_secs_f64()
    } else {
        // Timed out: the idle wait is not work.
        delivered as f64 / (elapsed.saturating_sub(IDLE)).as_secs_f64().max(1e-3)
    };
    Ok(Round {
        rate_per_s,
        delivered,
    })
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: usize| -> Result<usize, Failure> {
        Ok(match args.get(i) {
            Some(value) => value.parse()?,
            None => default,
        })
    };
    let (messages, publishers, rounds) = (arg(0, 200_000)?, arg(1, 4)?.max(1), arg(2, 5)?.max(1));
    let qos = match arg(3, 1)? {
        0 => QoS::AtMostOnce,
        _ => QoS::AtLeastOnce,
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let _broker = start_broker(
        port,
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../deploy/mosquitto/mosquitto.conf"),
    )?;
    wait_listening(port).await?;
    let users: Arc<Vec<Uuid>> = Arc::new((0..1000).map(|_| Uuid::now_v7()).collect());
    say(&format!(
        "{messages} location updates per round from {publishers} publishers, QoS {} publish / QoS 1 subscribe, {rounds} rounds, Mosquitto on 127.0.0.1:{port}",
        qos as u8
    ));
    let (mut bare, mut ours) = (Vec::new(), Vec::new());
    for r in 1..=rounds {
        for which in ["mosquitto", "kreki"] {
            let result = round(port, which, messages, publishers, qos, &users).await?;
            let lost = messages - result.delivered.min(messages);
            say(&format!(
                "round {r} {which:>9}: {:>9.0} msg/s{}",
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
        "median: mosquitto -> bare subscriber {bare:.0} msg/s; mosquitto -> kreki consumer -> sink {ours:.0} msg/s ({:.0} % of the broker's own); goal >= 50000 msg/s",
        100.0 * ours / bare.max(1.0)
    ));
    Ok(())
}
