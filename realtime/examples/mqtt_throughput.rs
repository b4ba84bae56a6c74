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

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use kreki_platform::Problem;
use kreki_realtime::BoxFuture;
use kreki_realtime::mqtt::{
    Consumer, LocationSink, MqttConfig, PanicSink, TransportEvent, TransportOptions,
    connect_rumqttc,
};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// Longest a round may go without a message before it is called finished (with losses).
const IDLE: Duration = Duration::from_secs(5);

struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        drop(self.0.kill());
        drop(self.0.wait());
    }
}

/// Counts arrivals and says when the expected number is reached.
struct Counter {
    seen: AtomicUsize,
    expected: usize,
    done: Notify,
}

impl Counter {
    fn new(expected: usize) -> Arc<Self> {
        Arc::new(Self {
            seen: AtomicUsize::new(0),
            expected,
            done: Notify::new(),
        })
    }

    fn hit(&self) {
        if self.seen.fetch_add(1, Ordering::Relaxed) + 1 == self.expected {
            self.done.notify_one();
        }
    }

    /// Waits for every message, or until none arrived for [`IDLE`]; answers how many arrived.
    async fn wait(&self) -> usize {
        let mut last = 0;
        loop {
            if tokio::time::timeout(IDLE, self.done.notified())
                .await
                .is_ok()
            {
                return self.expected;
            }
            let now = self.seen.load(Ordering::Relaxed);
            if now == last || now >= self.expected {
                return now;
            }
            last = now;
        }
    }
}

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

fn start_broker(port: u16) -> Result<Broker, Failure> {
    let shipped = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/mosquitto/mosquitto.conf"),
    )?;
    let mut config =
        format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nuser root\n");
    for line in shipped.lines() {
        if line.starts_with("max_") || line.starts_with("message_size_limit") {
            config.push_str(line);
            config.push('\n');
        }
    }
    let path = std::env::temp_dir().join(format!("mqtt_throughput-{port}.conf"));
    std::fs::write(&path, config)?;
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    Ok(Broker(child))
}

async fn wait_listening(port: u16) -> Result<(), Failure> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if Instant::now() > deadline {
            return Err("mosquitto did not start".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Publishes `messages` in all from `publishers` clients; returns when every publish is queued
/// and (QoS 1) acknowledged by the broker or the clients stop.
async fn publish(
    port: u16,
    messages: usize,
    publishers: usize,
    qos: QoS,
    users: &Arc<Vec<Uuid>>,
) -> Result<(), Failure> {
    let mut tasks = Vec::new();
    for p in 0..publishers {
        let share = messages / publishers + usize::from(p < messages % publishers);
        let users = users.clone();
        let mut options =
            MqttOptions::new(format!("bench-pub-{}", Uuid::now_v7()), "127.0.0.1", port);
        options.set_keep_alive(Duration::from_secs(30));
        let (client, mut eventloop) = AsyncClient::new(options, 1024);
        tasks.push(tokio::spawn(async move {
            let driver = tokio::spawn(async move {
                let mut acked = 0;
                while let Ok(event) = eventloop.poll().await {
                    if matches!(event, Event::Incoming(Packet::PubAck(_))) {
                        acked += 1;
                        if acked == share {
                            break;
                        }
                    }
                }
            });
            for i in 0..share {
                let user = users[(p * 7919 + i) % users.len()];
                let lat = -6.40 + 0.35 * ((i % 1000) as f64 / 1000.0);
                let lng = 106.65 + 0.40 * ((i % 997) as f64 / 997.0);
                let payload = format!(r#"{{"lat":{lat:.6},"lng":{lng:.6},"accuracy_m":8}}"#);
                if client
                    .publish(format!("kreki/v1/location/{user}"), qos, false, payload)
                    .await
                    .is_err()
                {
                    break;
                }
            }
            if qos == QoS::AtMostOnce {
                // Nothing to wait for but the socket: give the loop time to flush.
                tokio::time::sleep(Duration::from_millis(200)).await;
                driver.abort();
            } else {
                drop(driver.await);
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    Ok(())
}

/// The bare subscriber: counts every message.
async fn subscribe_bare(port: u16, counter: Arc<Counter>) -> Result<AsyncClient, Failure> {
    let mut options = MqttOptions::new(format!("bench-sub-{}", Uuid::now_v7()), "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(options, 1024);
    client
        .subscribe("kreki/v1/location/+", QoS::AtLeastOnce)
        .await?;
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut ready = Some(ready_tx);
        while let Ok(event) = eventloop.poll().await {
            match event {
                Event::Incoming(Packet::SubAck(_)) => {
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(());
                    }
                }
                Event::Incoming(Packet::Publish(publish)) => {
                    std::hint::black_box(&publish.payload);
                    counter.hit();
                }
                _ => {}
            }
        }
    });
    ready_rx.await?;
    Ok(client)
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

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        values[n / 2]
    } else {
        f64::midpoint(values[n / 2 - 1], values[n / 2])
    }
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
    let _broker = start_broker(port)?;
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

#[expect(clippy::print_stdout, reason = "the example's result")]
fn say(line: &str) {
    println!("{line}");
}
