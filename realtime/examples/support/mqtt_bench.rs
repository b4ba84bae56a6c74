//! What the MQTT benchmarks share (`realtime/examples/mqtt_throughput.rs` and the root crate's
//! `examples/mqtt_dispatch.rs`, which include this file with `#[path]`): a private Mosquitto, the
//! publishing trackers, the bare subscriber they are measured against, and the arrival counter.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::Notify;
use uuid::Uuid;

/// Any error of a benchmark run.
pub type Failure = Box<dyn std::error::Error + Send + Sync>;

/// Longest a round may go without a message before it is called finished (with losses).
pub const IDLE: Duration = Duration::from_secs(5);

/// The private Mosquitto of a run, stopped on drop.
pub struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        drop(self.0.kill());
        drop(self.0.wait());
    }
}

/// Counts arrivals and says when the expected number is reached.
pub struct Counter {
    seen: AtomicUsize,
    expected: usize,
    done: Notify,
}

impl Counter {
    pub fn new(expected: usize) -> Arc<Self> {
        Arc::new(Self {
            seen: AtomicUsize::new(0),
            expected,
            done: Notify::new(),
        })
    }

    pub fn hit(&self) {
        if self.seen.fetch_add(1, Ordering::Relaxed) + 1 == self.expected {
            self.done.notify_one();
        }
    }

    /// Waits for every message, or until none arrived for [`IDLE`]; answers how many arrived.
    pub async fn wait(&self) -> usize {
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

/// Starts Mosquitto on `port` (anonymous, no persistence) with the `max_*` and
/// `message_size_limit` lines of the shipped `mosquitto.conf` at `shipped_config`.
pub fn start_broker(port: u16, shipped_config: &Path) -> Result<Broker, Failure> {
    let shipped = std::fs::read_to_string(shipped_config)?;
    let mut config =
        format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nuser root\n");
    for line in shipped.lines() {
        if line.starts_with("max_") || line.starts_with("message_size_limit") {
            config.push_str(line);
            config.push('\n');
        }
    }
    let path = std::env::temp_dir().join(format!("kreki-mqtt-bench-{port}.conf"));
    std::fs::write(&path, config)?;
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    Ok(Broker(child))
}

pub async fn wait_listening(port: u16) -> Result<(), Failure> {
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
pub async fn publish(
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
pub async fn subscribe_bare(port: u16, counter: Arc<Counter>) -> Result<AsyncClient, Failure> {
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

/// The median of `values` (0 when empty).
pub fn median(mut values: Vec<f64>) -> f64 {
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

/// Prints one line of the result.
#[expect(clippy::print_stdout, reason = "the example's result")]
pub fn say(line: &str) {
    println!("{line}");
}
