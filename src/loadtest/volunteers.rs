//! The volunteers' side of a run: one real WebSocket per volunteer, reporting its position when
//! it connects, and a plausible behaviour for offers: every volunteer accepts each offer it gets
//! after a random think time, and completes the assignment it won after a busy time.
//!
//! Socket tasks only read and time-stamp frames; accepting and completing go through one bounded
//! queue to a scheduler that runs at most [`HTTP_CONCURRENCY`] requests at once, so a slow answer
//! never delays the reading (and timing) of another offer.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::seed::Person;

/// Sockets opened at once while connecting.
const CONNECT_BATCH: usize = 200;
/// Accept/complete requests in flight at once.
pub const HTTP_CONCURRENCY: usize = 64;
/// Scheduled accept/complete actions waiting; beyond it they are dropped and counted.
const ACTION_QUEUE: usize = 16_384;
/// The client's read buffer per socket: offers are a few hundred bytes.
const READ_BUFFER_BYTES: usize = 4096;

type Socket = WebSocketStream<TcpStream>;

/// How volunteers behave.
#[derive(Debug, Clone, Copy)]
pub struct Behaviour {
    /// Shortest time between an offer arriving and its accept being sent.
    pub think_min: Duration,
    /// Longest such time (uniform in between).
    pub think_max: Duration,
    /// Time from a won accept to `completed`.
    pub busy: Duration,
}

/// What the volunteers saw and did, shared by every socket task and the scheduler.
#[derive(Debug, Default)]
pub struct Tally {
    /// First `offer` frame per alert, and every offer id received.
    offers: Mutex<OfferLog>,
    /// Assignment each volunteer holds, as the client knows it.
    active: Mutex<HashMap<usize, Uuid>>,
    /// Accept answers other than 200, by problem type slug or status.
    refused: Mutex<BTreeMap<String, u64>>,
    /// `offer` frames.
    pub offer_frames: AtomicU64,
    /// `offer.withdrawn` frames.
    pub withdrawn_frames: AtomicU64,
    /// Sockets closed by the server or failed during the run.
    pub disconnects: AtomicU64,
    /// Accepts answered 200.
    pub accepted: AtomicU64,
    /// Assignments completed.
    pub completed: AtomicU64,
    /// Accepts that succeeded while the client knew the volunteer held another assignment.
    pub double_accepts: AtomicU64,
    /// Actions dropped because the scheduler's queue was full.
    pub actions_dropped: AtomicU64,
    /// Complete requests that failed.
    pub complete_errors: AtomicU64,
}

#[derive(Debug, Default)]
struct OfferLog {
    first: HashMap<Uuid, Instant>,
    /// The same instants on the wall clock, to compare with the database's timestamps.
    first_utc: HashMap<Uuid, chrono::DateTime<chrono::Utc>>,
    ids: HashSet<Uuid>,
}

impl Tally {
    /// When the first offer for `alert` reached a socket.
    pub fn first_offer(&self, alert: Uuid) -> Option<Instant> {
        self.offers
            .lock()
            .map_or(None, |log| log.first.get(&alert).copied())
    }

    /// Alerts with at least one offer frame, and when the first came.
    pub fn first_offers(&self) -> HashMap<Uuid, Instant> {
        self.offers
            .lock()
            .map(|log| log.first.clone())
            .unwrap_or_default()
    }

    /// Alerts with at least one offer frame, and when the first came on the wall clock.
    pub fn first_offers_utc(&self) -> HashMap<Uuid, chrono::DateTime<chrono::Utc>> {
        self.offers
            .lock()
            .map(|log| log.first_utc.clone())
            .unwrap_or_default()
    }

    /// Every offer id received.
    pub fn offer_ids(&self) -> HashSet<Uuid> {
        self.offers
            .lock()
            .map(|log| log.ids.clone())
            .unwrap_or_default()
    }

    /// Refused accepts by reason.
    pub fn refused(&self) -> BTreeMap<String, u64> {
        self.refused
            .lock()
            .map(|map| map.clone())
            .unwrap_or_default()
    }

    fn record_offer(&self, alert: Uuid, offer: Uuid, at: Instant) {
        self.offer_frames.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut log) = self.offers.lock() {
            if let std::collections::hash_map::Entry::Vacant(entry) = log.first.entry(alert) {
                entry.insert(at);
                log.first_utc.insert(alert, chrono::Utc::now());
            }
            log.ids.insert(offer);
        }
    }

    fn refuse(&self, why: String) {
        if let Ok(mut map) = self.refused.lock() {
            *map.entry(why).or_default() += 1;
        }
    }
}

/// The soft limit of open files of this process, from `/proc/self/limits`.
pub fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Opens one socket per volunteer, [`CONNECT_BATCH`] at a time; each reports its position and
/// waits for the `pong` that follows it, so the position is in the matcher before the run starts.
///
/// # Errors
/// The first socket that cannot connect or gets no `pong` within 30 s.
pub async fn connect_all(base: &str, volunteers: &[Person]) -> anyhow::Result<Vec<Socket>> {
    let url = format!("{}/v1/ws", base.replacen("http", "ws", 1));
    let mut sockets = Vec::with_capacity(volunteers.len());
    for batch in volunteers.chunks(CONNECT_BATCH) {
        let opened = futures_util::future::join_all(batch.iter().map(|v| open(&url, v))).await;
        for socket in opened {
            sockets.push(socket?);
        }
    }
    Ok(sockets)
}

async fn open(url: &str, volunteer: &Person) -> anyhow::Result<Socket> {
    let mut request = url.into_client_request()?;
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", volunteer.token).parse()?,
    );
    let host = request
        .uri()
        .host()
        .context("no host in the URL")?
        .to_owned();
    let port = request.uri().port_u16().unwrap_or(80);
    let stream = TcpStream::connect((host.as_str(), port))
        .await
        .with_context(|| format!("connecting to {host}:{port}"))?;
    stream.set_nodelay(true)?;
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(0);
    let (mut socket, _) =
        tokio_tungstenite::client_async_with_config(request, stream, Some(config))
            .await
            .context("WebSocket upgrade of a volunteer")?;
    let (lat, lng) = volunteer.at;
    socket
        .send(Message::text(
            json!({"type": "location", "lat": lat, "lng": lng, "accuracy_m": 10}).to_string(),
        ))
        .await?;
    socket.send(Message::text(r#"{"type":"ping"}"#)).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let frame = tokio::time::timeout_at(deadline, socket.next())
            .await
            .context("no pong within 30 s of a volunteer's location")?
            .context("the server closed a volunteer's socket")??;
        if let Message::Text(text) = frame {
            let value: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
            match value["type"].as_str() {
                Some("pong") => return Ok(socket),
                Some("error") => anyhow::bail!("the location frame was refused: {value}"),
                _ => {}
            }
        }
    }
}

/// One accept or complete to run at `due`.
#[derive(Debug)]
struct Scheduled {
    due: Instant,
    action: Action,
}

#[derive(Debug)]
enum Action {
    Accept { volunteer: usize, offer: Uuid },
    Complete { volunteer: usize, assignment: Uuid },
}

/// Starts a reading task per socket and the scheduler of accepts and completes; everything stops
/// when `stop` is cancelled.
pub fn start(
    base: &str,
    sockets: Vec<Socket>,
    volunteers: Arc<Vec<Person>>,
    behaviour: Behaviour,
    http: reqwest::Client,
    tally: Arc<Tally>,
    stop: &CancellationToken,
) -> tokio::task::JoinSet<()> {
    let (actions, queue) = mpsc::channel(ACTION_QUEUE);
    let mut tasks = tokio::task::JoinSet::new();
    for (index, socket) in sockets.into_iter().enumerate() {
        tasks.spawn(read(
            index,
            socket,
            tally.clone(),
            actions.clone(),
            behaviour,
            stop.clone(),
        ));
    }
    tasks.spawn(schedule(
        base.to_owned(),
        queue,
        actions,
        volunteers,
        behaviour,
        http,
        tally,
        stop.clone(),
    ));
    tasks
}

/// Reads one volunteer's socket: time-stamps offers and schedules their accept.
async fn read(
    index: usize,
    mut socket: Socket,
    tally: Arc<Tally>,
    actions: mpsc::Sender<Scheduled>,
    behaviour: Behaviour,
    stop: CancellationToken,
) {
    loop {
        let frame = tokio::select! {
            () = stop.cancelled() => break,
            frame = socket.next() => frame,
        };
        let text = match frame {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(_)) | Err(_)) | None => {
                tally.disconnects.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Some(Ok(_)) => continue,
        };
        let at = Instant::now();
        let Ok(value) = serde_json::from_str::<Value>(text.as_str()) else {
            continue;
        };
        match value["type"].as_str() {
            Some("offer") => {
                let offer = &value["offer"];
                let (Some(offer), Some(alert)) = (uuid(&offer["id"]), uuid(&offer["alert"]["id"]))
                else {
                    continue;
                };
                tally.record_offer(alert, offer, at);
                let think = random_between(behaviour.think_min, behaviour.think_max);
                let action = Scheduled {
                    due: at + think,
                    action: Action::Accept {
                        volunteer: index,
                        offer,
                    },
                };
                if actions.try_send(action).is_err() {
                    tally.actions_dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            Some("offer.withdrawn") => {
                tally.withdrawn_frames.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }
    drop(socket.close(None).await);
}

fn uuid(value: &Value) -> Option<Uuid> {
    value.as_str().and_then(|text| text.parse().ok())
}

fn random_between(low: Duration, high: Duration) -> Duration {
    if high <= low {
        return low;
    }
    rand::rng().random_range(low..high)
}

/// Runs due actions, at most [`HTTP_CONCURRENCY`] at once.
#[expect(clippy::too_many_arguments, reason = "one private task's inputs")]
async fn schedule(
    base: String,
    mut queue: mpsc::Receiver<Scheduled>,
    actions: mpsc::Sender<Scheduled>,
    volunteers: Arc<Vec<Person>>,
    behaviour: Behaviour,
    http: reqwest::Client,
    tally: Arc<Tally>,
    stop: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(HTTP_CONCURRENCY));
    let mut due: BinaryHeap<Reverse<(Instant, u64)>> = BinaryHeap::new();
    let mut waiting: HashMap<u64, Action> = HashMap::new();
    let mut next_id = 0_u64;
    loop {
        let next_due = due.peek().map(|Reverse((at, _))| *at);
        tokio::select! {
            () = stop.cancelled() => break,
            received = queue.recv() => {
                let Some(Scheduled { due: at, action }) = received else { break };
                if waiting.len() >= ACTION_QUEUE {
                    tally.actions_dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                next_id += 1;
                due.push(Reverse((at, next_id)));
                waiting.insert(next_id, action);
            }
            () = sleep_until(next_due) => {
                while let Some(Reverse((at, id))) = due.peek().copied() {
                    if at > Instant::now() {
                        break;
                    }
                    due.pop();
                    let Some(action) = waiting.remove(&id) else { continue };
                    let Ok(permit) = permits.clone().acquire_owned().await else { return };
                    let run = Run {
                        base: base.clone(),
                        http: http.clone(),
                        volunteers: volunteers.clone(),
                        tally: tally.clone(),
                        actions: actions.clone(),
                        behaviour,
                    };
                    tokio::spawn(async move {
                        run.action(action).await;
                        drop(permit);
                    });
                }
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

struct Run {
    base: String,
    http: reqwest::Client,
    volunteers: Arc<Vec<Person>>,
    tally: Arc<Tally>,
    actions: mpsc::Sender<Scheduled>,
    behaviour: Behaviour,
}

impl Run {
    async fn action(self, action: Action) {
        match action {
            Action::Accept { volunteer, offer } => self.accept(volunteer, offer).await,
            Action::Complete {
                volunteer,
                assignment,
            } => self.complete(volunteer, assignment).await,
        }
    }

    async fn accept(&self, volunteer: usize, offer: Uuid) {
        let Some(person) = self.volunteers.get(volunteer) else {
            return;
        };
        let answer = self
            .http
            .post(format!("{}/v1/offers/{offer}/accept", self.base))
            .bearer_auth(&person.token)
            .send()
            .await;
        let answer = match answer {
            Ok(answer) => answer,
            Err(error) => {
                self.tally.refuse(format!("transport: {}", short(&error)));
                return;
            }
        };
        let status = answer.status();
        let body: Value = answer.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            let Some(assignment) = uuid(&body["id"]) else {
                self.tally.refuse("200 without an assignment id".to_owned());
                return;
            };
            self.tally.accepted.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut active) = self.tally.active.lock()
                && active.insert(volunteer, assignment).is_some()
            {
                self.tally.double_accepts.fetch_add(1, Ordering::Relaxed);
            }
            let complete = Scheduled {
                due: Instant::now() + self.behaviour.busy,
                action: Action::Complete {
                    volunteer,
                    assignment,
                },
            };
            if self.actions.try_send(complete).is_err() {
                self.tally.actions_dropped.fetch_add(1, Ordering::Relaxed);
            }
        } else {
            let slug = body["type"]
                .as_str()
                .and_then(|uri| uri.rsplit('/').next())
                .unwrap_or("no problem type");
            self.tally.refuse(format!("{} {slug}", status.as_u16()));
        }
    }

    async fn complete(&self, volunteer: usize, assignment: Uuid) {
        let Some(person) = self.volunteers.get(volunteer) else {
            return;
        };
        let answer = self
            .http
            .post(format!("{}/v1/assignments/{assignment}/status", self.base))
            .bearer_auth(&person.token)
            .json(&json!({"status": "completed"}))
            .send()
            .await;
        match answer {
            Ok(answer) if answer.status().is_success() => {
                self.tally.completed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut active) = self.tally.active.lock()
                    && active.get(&volunteer) == Some(&assignment)
                {
                    active.remove(&volunteer);
                }
            }
            _ => {
                self.tally.complete_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn short(error: &reqwest::Error) -> &'static str {
    if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connect"
    } else {
        "other"
    }
}
