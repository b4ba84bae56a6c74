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
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::seed::Person;
use crate::client::{Api, Live};

/// Sockets opened at once while connecting.
const CONNECT_BATCH: usize = 200;
/// Accept/complete requests in flight at once.
pub const HTTP_CONCURRENCY: usize = 64;
/// Scheduled accept/complete actions waiting; beyond it they are dropped and counted.
const ACTION_QUEUE: usize = 16_384;
/// Longest wait for the `pong` that follows a volunteer's first position.
const PONG_WITHIN: Duration = Duration::from_secs(30);

type Socket = Live;

/// How volunteers behave.
#[derive(Debug, Clone, Copy)]
pub struct Behaviour {
    /// Whether they accept the offers they get (`throughput` runs keep every volunteer free, so
    /// each step finds the same candidates: they only read their offers).
    pub accepts: bool,
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

/// Opens one socket per volunteer, [`CONNECT_BATCH`] at a time; each reports its position and
/// waits for the `pong` that follows it, so the position is in the matcher before the run starts.
///
/// # Errors
/// The first socket that cannot connect or gets no `pong` within [`PONG_WITHIN`].
pub async fn connect_all(api: &Api, volunteers: &[Person]) -> anyhow::Result<Vec<Socket>> {
    let mut sockets = Vec::with_capacity(volunteers.len());
    for batch in volunteers.chunks(CONNECT_BATCH) {
        let opened = futures_util::future::join_all(batch.iter().map(|v| open(api, v))).await;
        for socket in opened {
            sockets.push(socket?);
        }
    }
    Ok(sockets)
}

async fn open(api: &Api, volunteer: &Person) -> anyhow::Result<Socket> {
    let mut socket = api
        .live(&volunteer.token)
        .await
        .context("a volunteer's live channel")?;
    let (lat, lng) = volunteer.at;
    socket
        .send(Message::text(
            json!({"type": "location", "lat": lat, "lng": lng, "accuracy_m": 10}).to_string(),
        ))
        .await?;
    socket.send(Message::text(r#"{"type":"ping"}"#)).await?;
    let deadline = Instant::now() + PONG_WITHIN;
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
    api: &Api,
    sockets: Vec<Socket>,
    volunteers: Arc<Vec<Person>>,
    behaviour: Behaviour,
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
        api.clone(),
        queue,
        actions,
        volunteers,
        behaviour,
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
                if !behaviour.accepts {
                    continue;
                }
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
async fn schedule(
    api: Api,
    mut queue: mpsc::Receiver<Scheduled>,
    actions: mpsc::Sender<Scheduled>,
    volunteers: Arc<Vec<Person>>,
    behaviour: Behaviour,
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
                        api: api.clone(),
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
    api: Api,
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
        let path = format!("/v1/offers/{offer}/accept");
        let answer = match self
            .api
            .call(Method::POST, &path, Some(&person.token), None, None)
            .await
        {
            Ok(answer) => answer,
            Err(error) => {
                self.tally.refuse(format!("transport: {}", short(&error)));
                return;
            }
        };
        if answer.status.is_success() {
            let Some(assignment) = uuid(&answer.body["id"]) else {
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
            self.tally.refuse(format!(
                "{} {}",
                answer.status.as_u16(),
                answer.problem_slug()
            ));
        }
    }

    async fn complete(&self, volunteer: usize, assignment: Uuid) {
        let Some(person) = self.volunteers.get(volunteer) else {
            return;
        };
        let answer = self
            .api
            .call(
                Method::POST,
                &format!("/v1/assignments/{assignment}/status"),
                Some(&person.token),
                Some(&json!({"status": "completed"})),
                None,
            )
            .await;
        match answer {
            Ok(answer) if answer.status.is_success() => {
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

/// A transport failure in a word, for counting refusals.
fn short(error: &anyhow::Error) -> &'static str {
    match error.downcast_ref::<reqwest::Error>() {
        Some(error) if error.is_timeout() => "timeout",
        Some(error) if error.is_connect() => "connect",
        _ => "other",
    }
}
