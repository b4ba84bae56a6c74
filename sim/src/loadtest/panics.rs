//! Citizens' panics, open loop: each is sent at its scheduled instant whatever the server answers
//! (a closed loop would slow down with the server and hide its queueing). Each press carries its
//! own `Idempotency-Key`, and a failed attempt (transport error, 5xx) is retried with the same key,
//! as the app does.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use uuid::Uuid;

use super::seed::Person;
use crate::client::Api;

/// Panic requests in flight at once; beyond it a panic is not sent and is counted (the client
/// would then be the bottleneck, and the run says so).
const MAX_IN_FLIGHT: usize = 4096;
/// Attempts per panic (the first and retries with the same key).
const ATTEMPTS: u32 = 3;
/// Pause before a retry.
const RETRY_AFTER: Duration = Duration::from_millis(200);

/// What became of one panic.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// When its first attempt was sent.
    pub sent_at: Instant,
    /// When the answer that acknowledged it (200 or 201) came.
    pub acked_at: Option<Instant>,
    /// The last status received (None: no answer at all).
    pub status: Option<u16>,
    /// The alert it made or joined.
    pub alert: Option<Uuid>,
    /// Attempts made.
    pub attempts: u32,
    /// False when the client's in-flight limit kept it from being sent.
    pub sent: bool,
}

/// The panics of a run and how late the client was in sending them.
#[derive(Debug)]
pub struct Sent {
    /// One per panic, in schedule order.
    pub outcomes: Vec<Outcome>,
    /// Latest a panic left after its scheduled instant (the client's own lag).
    pub max_lag: Duration,
    /// When the first panic was scheduled.
    pub started: Instant,
}

impl Sent {
    /// The answers, counted.
    pub fn acks(&self) -> Acks {
        let mut acks = Acks::default();
        let mut seen = HashSet::new();
        for outcome in &self.outcomes {
            acks.retries += outcome.attempts.saturating_sub(1) as usize;
            if !outcome.sent {
                acks.not_sent += 1;
                continue;
            }
            match (outcome.status, outcome.alert, outcome.acked_at) {
                (Some(status @ (200 | 201)), Some(alert), Some(acked)) => {
                    if status == 201 {
                        acks.created += 1;
                    } else {
                        acks.replayed += 1;
                    }
                    acks.latencies.push(acked - outcome.sent_at);
                    if seen.insert(alert) {
                        acks.alerts.push(alert);
                    }
                }
                (status, _, _) => {
                    let key = status.map_or("none".to_owned(), |status| status.to_string());
                    *acks.failed.entry(key).or_default() += 1;
                }
            }
        }
        acks
    }

    /// Panic sent -> first `offer` frame for its alert, for each panic whose alert was offered
    /// (`offered`: first frame per alert), in schedule order with the panic's send time.
    pub fn offer_latencies(&self, offered: &HashMap<Uuid, Instant>) -> Vec<(Instant, Duration)> {
        self.outcomes
            .iter()
            .filter_map(|outcome| {
                let first = offered.get(&outcome.alert?)?;
                Some((
                    outcome.sent_at,
                    first.saturating_duration_since(outcome.sent_at),
                ))
            })
            .collect()
    }

    /// Seconds from the first panic's schedule to the last panic sent.
    pub fn window_s(&self) -> f64 {
        self.outcomes
            .iter()
            .filter(|outcome| outcome.sent)
            .map(|outcome| outcome.sent_at.saturating_duration_since(self.started))
            .max()
            .unwrap_or_default()
            .as_secs_f64()
    }
}

/// The answers to a batch of panics, counted.
#[derive(Debug, Default)]
pub struct Acks {
    /// Distinct alerts acknowledged, in schedule order.
    pub alerts: Vec<Uuid>,
    /// Answered 201.
    pub created: usize,
    /// Answered 200 (a retry that found its alert, or a press attached to an open alert).
    pub replayed: usize,
    /// Not sent because of the client's in-flight limit.
    pub not_sent: usize,
    /// Attempts beyond the first.
    pub retries: usize,
    /// Not acknowledged, by last status (`none` = no answer).
    pub failed: BTreeMap<String, usize>,
    /// Panic sent -> 200/201 received.
    pub latencies: Vec<Duration>,
}

/// Sends a panic of `kind` for each point at `start + i / rate_per_s`, from `citizens[i]`.
pub async fn send(
    api: &Api,
    citizens: &[Person],
    points: &[(f64, f64)],
    kind: &str,
    rate_per_s: f64,
) -> Sent {
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let started = Instant::now();
    let mut max_lag = Duration::ZERO;
    let mut tasks = tokio::task::JoinSet::new();
    let mut outcomes: Vec<Option<Outcome>> = vec![None; points.len()];
    for (index, (citizen, (lat, lng))) in citizens.iter().zip(points).enumerate() {
        #[expect(clippy::cast_precision_loss, reason = "indices far below 2^52")]
        let due = started + Duration::from_secs_f64(index as f64 / rate_per_s);
        tokio::time::sleep_until(due).await;
        let now = Instant::now();
        max_lag = max_lag.max(now.saturating_duration_since(due));
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            outcomes[index] = Some(Outcome {
                sent_at: now,
                acked_at: None,
                status: None,
                alert: None,
                attempts: 0,
                sent: false,
            });
            continue;
        };
        let body = json!({"kind": kind, "location": {"lat": lat, "lng": lng, "accuracy_m": 15}, "note": "uji beban"});
        let (api, token) = (api.clone(), citizen.token.clone());
        tasks.spawn(async move {
            let outcome = press(&api, &token, &body, now).await;
            drop(permit);
            (index, outcome)
        });
    }
    while let Some(done) = tasks.join_next().await {
        if let Ok((index, outcome)) = done {
            outcomes[index] = Some(outcome);
        }
    }
    Sent {
        outcomes: outcomes
            .into_iter()
            .map(|outcome| {
                outcome.unwrap_or(Outcome {
                    sent_at: started,
                    acked_at: None,
                    status: None,
                    alert: None,
                    attempts: 0,
                    sent: true,
                })
            })
            .collect(),
        max_lag,
        started,
    }
}

/// One press: the first attempt and retries with the same `Idempotency-Key`, as the app does.
async fn press(api: &Api, token: &str, body: &Value, sent_at: Instant) -> Outcome {
    let key = Uuid::new_v4().to_string();
    let mut outcome = Outcome {
        sent_at,
        acked_at: None,
        status: None,
        alert: None,
        attempts: 0,
        sent: true,
    };
    while outcome.attempts < ATTEMPTS {
        outcome.attempts += 1;
        match api
            .call(
                Method::POST,
                "/v1/alerts",
                Some(token),
                Some(body),
                Some(&key),
            )
            .await
        {
            Ok(answer) => {
                outcome.status = Some(answer.status.as_u16());
                if answer.status.is_success() {
                    outcome.acked_at = Some(Instant::now());
                    outcome.alert = answer.body["id"].as_str().and_then(|id| id.parse().ok());
                    return outcome;
                }
                if answer.status.is_client_error() {
                    return outcome;
                }
            }
            Err(_) => outcome.status = None,
        }
        tokio::time::sleep(RETRY_AFTER).await;
    }
    outcome
}
