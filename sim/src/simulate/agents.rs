//! The simulated people as async tasks: each volunteer signs in, goes on duty, reports its
//! position, listens on `/v1/ws` for offers and acts through the HTTP API as the volunteer app
//! does; the citizens press panic at random moments. Every task stops when the shared token is
//! cancelled, volunteers going off duty on their way out.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use rand::Rng;
use rand::rngs::StdRng;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::geo::{Area, LatLng};
use super::volunteer::{Action, Choice, Volunteer};
use crate::client::{Live, Session};

/// How often each volunteer's clock ticks (movement, decisions).
const TICK: Duration = Duration::from_secs(1);
/// Wait before opening `/v1/ws` again after it closed.
const RECONNECT_AFTER: Duration = Duration::from_secs(3);
/// Longest a volunteer waits for its off-duty call at shutdown.
const GOODBYE_WITHIN: Duration = Duration::from_secs(3);

/// What happened, counted over all simulated people (printed at the end; read by tests).
#[derive(Debug, Default)]
pub struct Stats {
    /// Volunteers signed in and on duty.
    pub on_duty: AtomicU64,
    /// Alerts created (`201`).
    pub alerts: AtomicU64,
    /// Offers received over `/v1/ws`.
    pub offers: AtomicU64,
    /// Accepts the platform took.
    pub accepted: AtomicU64,
    /// Accepts refused (`409`: covered, cancelled or expired).
    pub accept_refused: AtomicU64,
    /// Offers declined.
    pub declined: AtomicU64,
    /// Offers left to expire.
    pub ignored: AtomicU64,
    /// Offers of real (not simulated) alerts, declined at once.
    pub declined_real: AtomicU64,
    /// Assignments completed.
    pub completed: AtomicU64,
    /// Stale unmatched alerts the citizen cancelled.
    pub cancelled: AtomicU64,
    /// Calls that failed (network or unexpected status).
    pub errors: AtomicU64,
}

impl Stats {
    fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A one-line summary.
    pub fn summary(&self) -> String {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "{} volunteers on duty; {} alerts, {} offers: {} accepted ({} too late), {} declined, {} left to expire, {} of real alerts declined; {} completed; {} stale alerts cancelled; {} errors",
            n(&self.on_duty),
            n(&self.alerts),
            n(&self.offers),
            n(&self.accepted),
            n(&self.accept_refused),
            n(&self.declined),
            n(&self.ignored),
            n(&self.declined_real),
            n(&self.completed),
            n(&self.cancelled),
            n(&self.errors),
        )
    }
}

/// Whether an alert (an Alert, or the `alert` of an Offer) is a drill: its `drill` flag, never
/// anything a citizen typed. Simulated volunteers answer only drills: an offer of a real alert is
/// declined at once (so dispatch moves on to real volunteers without waiting), and a real alert a
/// coordinator assigns to one is handed back (`withdrawn`). No flag means real.
pub fn is_drill(alert: &Value) -> bool {
    alert["drill"].as_bool() == Some(true)
}

/// Parses `{lat, lng}`.
fn lat_lng(value: &Value) -> Option<LatLng> {
    Some(LatLng {
        lat: value["lat"].as_f64()?,
        lng: value["lng"].as_f64()?,
    })
}

fn id(value: &Value) -> Option<Uuid> {
    value.as_str()?.parse().ok()
}

/// Runs one volunteer until `stop`: on duty, moving, answering offers.
pub async fn volunteer(
    mut session: Session,
    mut mind: Volunteer,
    position_every: Duration,
    stats: Arc<Stats>,
    stop: CancellationToken,
) {
    let label = session.user_id;
    match session
        .call(
            Method::PUT,
            "/v1/volunteers/me/duty",
            Some(&json!({"on_duty": true})),
            None,
        )
        .await
        .and_then(|answer| answer.ok("going on duty"))
    {
        Ok(duty) => {
            tracing::debug!(volunteer = %label, kinds = %duty["eligible_kinds"], "on duty");
            Stats::add(&stats.on_duty);
        }
        Err(error) => {
            tracing::warn!(volunteer = %label, error = format!("{error:#}"), "simulated volunteer cannot go on duty");
            Stats::add(&stats.errors);
            return;
        }
    }
    let started = Instant::now();
    let mut clock = tokio::time::interval(TICK);
    clock.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_tick_s = 0.0;
    let mut last_report: Option<Instant> = None;
    let mut live: Option<Live> = None;
    let mut reconnect_at = Instant::now();
    loop {
        let message = async {
            match live.as_mut() {
                Some(socket) => socket.next().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = stop.cancelled() => break,
            _ = clock.tick() => {
                let now_s = started.elapsed().as_secs_f64();
                let action = mind.tick(now_s, now_s - last_tick_s);
                last_tick_s = now_s;
                if let Some(action) = action {
                    act(&mut session, &mut mind, action, now_s, &stats).await;
                }
                if last_report.is_none_or(|at| at.elapsed() >= position_every) {
                    report_position(&mut session, mind.position(), &stats).await;
                    last_report = Some(Instant::now());
                }
                if live.is_none() && Instant::now() >= reconnect_at {
                    match session.live().await {
                        Ok(socket) => {
                            live = Some(socket);
                            // Offers made while the socket was closed are still pending.
                            pending_offers(&mut session, &mut mind, started, &stats).await;
                        }
                        Err(error) => {
                            tracing::debug!(volunteer = %label, error = format!("{error:#}"), "no live channel yet");
                            reconnect_at = Instant::now() + RECONNECT_AFTER;
                        }
                    }
                }
            }
            message = message => match message {
                Some(Ok(Message::Text(text))) => {
                    if let Ok(message) = serde_json::from_str::<Value>(text.as_str()) {
                        let now_s = started.elapsed().as_secs_f64();
                        on_message(&mut session, &mut mind, &message, now_s, &stats).await;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    live = None;
                    reconnect_at = Instant::now() + RECONNECT_AFTER;
                }
            },
        }
    }
    if let Some(mut socket) = live {
        drop(tokio::time::timeout(GOODBYE_WITHIN, socket.close(None)).await);
    }
    let off_duty = json!({"on_duty": false});
    let off = session.call(Method::PUT, "/v1/volunteers/me/duty", Some(&off_duty), None);
    if !matches!(tokio::time::timeout(GOODBYE_WITHIN, off).await, Ok(Ok(answer)) if answer.status.is_success())
    {
        tracing::debug!(volunteer = %label, "off duty not confirmed at shutdown");
    }
}

async fn report_position(session: &mut Session, at: LatLng, stats: &Stats) {
    let sent = session
        .call(
            Method::POST,
            "/v1/volunteers/me/location",
            Some(&json!({"lat": at.lat, "lng": at.lng, "accuracy_m": 10})),
            None,
        )
        .await
        .and_then(|answer| answer.ok("reporting the position"));
    if let Err(error) = sent {
        tracing::debug!(error = format!("{error:#}"), "position not reported");
        Stats::add(&stats.errors);
    }
}

async fn pending_offers(
    session: &mut Session,
    mind: &mut Volunteer,
    started: Instant,
    stats: &Stats,
) {
    let offers = session
        .call(Method::GET, "/v1/volunteers/me/offers", None, None)
        .await
        .and_then(|answer| answer.ok("listing offers"));
    if let Ok(Value::Array(offers)) = offers {
        for offer in offers {
            consider(
                session,
                mind,
                &offer,
                started.elapsed().as_secs_f64(),
                stats,
            )
            .await;
        }
    }
}

/// An offer (`Offer` of docs/API.md) arrived: a drill's goes to the volunteer's mind, a real one is
/// declined at once.
async fn consider(
    session: &mut Session,
    mind: &mut Volunteer,
    offer: &Value,
    now_s: f64,
    stats: &Stats,
) {
    let Some(offer_id) = id(&offer["id"]) else {
        return;
    };
    if !is_drill(&offer["alert"]) {
        let declined = session
            .call(
                Method::POST,
                &format!("/v1/offers/{offer_id}/decline"),
                Some(
                    &json!({"reason": "simulated volunteer: real alerts are for real volunteers"}),
                ),
                None,
            )
            .await;
        match declined {
            Ok(answer) if answer.status.is_success() || answer.status == StatusCode::CONFLICT => {
                Stats::add(&stats.declined_real);
            }
            _ => Stats::add(&stats.errors),
        }
        return;
    }
    let offer = offer_id;
    Stats::add(&stats.offers);
    if matches!(mind.offered(offer, now_s), Some(Choice::Ignore) | None) {
        Stats::add(&stats.ignored);
    }
}

async fn on_message(
    session: &mut Session,
    mind: &mut Volunteer,
    message: &Value,
    now_s: f64,
    stats: &Stats,
) {
    match message["type"].as_str() {
        Some("offer") => consider(session, mind, &message["offer"], now_s, stats).await,
        Some("offer.withdrawn") => {
            if let Some(offer) = id(&message["offer_id"]) {
                mind.withdrawn(offer);
            }
        }
        Some("assignment.updated") => {
            let assignment = &message["assignment"];
            let Some(assignment_id) = id(&assignment["id"]) else {
                return;
            };
            let status = assignment["status"].as_str().unwrap_or("");
            if mind.assignment() == Some(assignment_id) {
                if status == "withdrawn" {
                    mind.dropped();
                }
            } else if mind.assignment().is_none()
                && status == "accepted"
                && id(&assignment["volunteer"]["id"]) == Some(session.user_id)
            {
                // A coordinator assigned this volunteer: fetch where to go, then go.
                let Some(alert_id) = id(&assignment["alert_id"]) else {
                    return;
                };
                let alert = session
                    .call(Method::GET, &format!("/v1/alerts/{alert_id}"), None, None)
                    .await
                    .and_then(|answer| answer.ok("reading the assigned alert"));
                let Ok(alert) = alert else {
                    Stats::add(&stats.errors);
                    return;
                };
                match lat_lng(&alert["location"]) {
                    Some(scene) if is_drill(&alert) => {
                        mind.assigned(assignment_id, scene, now_s);
                    }
                    _ => {
                        // Not a drill: a simulated volunteer must not hold a real emergency.
                        let handed_back = session
                            .call(
                                Method::POST,
                                &format!("/v1/assignments/{assignment_id}/status"),
                                Some(&json!({"status": "withdrawn"})),
                                None,
                            )
                            .await
                            .and_then(|answer| answer.ok("handing back a real alert"));
                        if handed_back.is_err() {
                            Stats::add(&stats.errors);
                        }
                    }
                }
            }
        }
        Some("alert.updated") => {
            // The alert it works on was cancelled: the assignment is over.
            let alert = &message["alert"];
            if alert["status"] == "cancelled"
                && let Some(current) = mind.assignment()
                && alert["assignments"]
                    .as_array()
                    .is_some_and(|list| list.iter().any(|a| id(&a["id"]) == Some(current)))
            {
                mind.dropped();
            }
        }
        _ => {}
    }
}

async fn act(
    session: &mut Session,
    mind: &mut Volunteer,
    action: Action,
    now_s: f64,
    stats: &Stats,
) {
    match action {
        Action::Accept(offer) => {
            let answer = session
                .call(
                    Method::POST,
                    &format!("/v1/offers/{offer}/accept"),
                    None,
                    None,
                )
                .await;
            match answer {
                Ok(answer) if answer.status.is_success() => {
                    let assignment = id(&answer.body["id"]);
                    let alert_id = id(&answer.body["alert_id"]);
                    Stats::add(&stats.accepted);
                    let scene = match alert_id {
                        Some(alert_id) => session
                            .call(Method::GET, &format!("/v1/alerts/{alert_id}"), None, None)
                            .await
                            .ok()
                            .and_then(|answer| lat_lng(&answer.body["location"])),
                        None => None,
                    };
                    match (assignment, scene) {
                        (Some(assignment), Some(scene)) => mind.assigned(assignment, scene, now_s),
                        _ => {
                            Stats::add(&stats.errors);
                            mind.dropped();
                        }
                    }
                }
                Ok(answer) if answer.status == StatusCode::CONFLICT => {
                    Stats::add(&stats.accept_refused);
                    mind.dropped();
                }
                Ok(answer) => {
                    tracing::debug!(status = %answer.status, "accept failed");
                    Stats::add(&stats.errors);
                    mind.dropped();
                }
                Err(error) => {
                    tracing::debug!(error = format!("{error:#}"), "accept failed");
                    Stats::add(&stats.errors);
                    mind.dropped();
                }
            }
        }
        Action::Decline(offer) => {
            let answer = session
                .call(
                    Method::POST,
                    &format!("/v1/offers/{offer}/decline"),
                    Some(&json!({"reason": "simulasi: sedang tidak bisa"})),
                    None,
                )
                .await;
            match answer {
                Ok(answer)
                    if answer.status.is_success() || answer.status == StatusCode::CONFLICT =>
                {
                    Stats::add(&stats.declined);
                }
                _ => Stats::add(&stats.errors),
            }
        }
        Action::Report(assignment, status) => {
            let answer = session
                .call(
                    Method::POST,
                    &format!("/v1/assignments/{assignment}/status"),
                    Some(&json!({"status": status.as_str()})),
                    None,
                )
                .await
                .and_then(|answer| answer.ok("reporting a status"));
            match answer {
                Ok(_) if status == super::volunteer::Status::Completed => {
                    Stats::add(&stats.completed)
                }
                Ok(_) => {}
                Err(error) => {
                    // Withdrawn or cancelled meanwhile: the job is over.
                    tracing::debug!(error = format!("{error:#}"), "status not taken");
                    mind.dropped();
                }
            }
        }
    }
}

/// The alert kinds citizens press, with how often each comes (out of 100).
pub const KIND_MIX: &[(&str, u32)] = &[
    ("medical", 30),
    ("accident", 25),
    ("cardiac_arrest", 10),
    ("fire", 10),
    ("security", 12),
    ("disaster", 5),
    ("other", 8),
];

/// A kind drawn from [`KIND_MIX`].
pub fn random_kind(rng: &mut impl Rng) -> &'static str {
    let total: u32 = KIND_MIX.iter().map(|(_, weight)| weight).sum();
    let mut roll = rng.random_range(0..total);
    for (kind, weight) in KIND_MIX {
        if roll < *weight {
            return kind;
        }
        roll -= weight;
    }
    "other"
}

/// Seconds until the next press when presses come at `per_minute` on average (a Poisson process).
pub fn next_press_in_s(per_minute: f64, rng: &mut impl Rng) -> f64 {
    let uniform: f64 = rng.random_range(f64::EPSILON..1.0);
    -uniform.ln() * 60.0 / per_minute
}

/// An alert a citizen made, to tidy up if nobody ever came.
struct Pressed {
    citizen: usize,
    alert: Uuid,
    at: Instant,
}

/// What a simulated citizen's panic says (for people reading it; the `drill` flag is what marks it).
fn drill_note(kind: &str) -> String {
    format!("Latihan simulasi, bukan keadaan darurat nyata ({kind})")
}

/// Presses panic as one of `citizens` at `per_minute` on average inside `area`, until `stop`.
/// Alerts still `dispatching` or `unmatched` after `cancel_after` are cancelled by their citizen,
/// so a long demo does not pile up.
pub async fn citizens(
    mut citizens: Vec<Session>,
    mut rng: StdRng,
    per_minute: f64,
    area: Area,
    cancel_after: Duration,
    stats: Arc<Stats>,
    stop: CancellationToken,
) {
    if citizens.is_empty() || per_minute <= 0.0 {
        stop.cancelled().await;
        return;
    }
    let mut pressed: std::collections::VecDeque<Pressed> = std::collections::VecDeque::new();
    // The first press comes soon, so a demo shows something at once.
    let mut next =
        Instant::now() + Duration::from_secs_f64(next_press_in_s(per_minute, &mut rng).min(3.0));
    loop {
        let tidy = tokio::time::sleep(Duration::from_secs(5));
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep_until(next) => {
                let who = rng.random_range(0..citizens.len());
                let kind = random_kind(&mut rng);
                let at = area.random_point(&mut rng);
                if let Some(alert) = press(&mut citizens[who], kind, at, &stats).await {
                    pressed.push_back(Pressed { citizen: who, alert, at: Instant::now() });
                }
                next = Instant::now() + Duration::from_secs_f64(next_press_in_s(per_minute, &mut rng));
            }
            () = tidy => {
                while pressed.front().is_some_and(|p| p.at.elapsed() >= cancel_after) {
                    if let Some(old) = pressed.pop_front() {
                        cancel_if_stale(&mut citizens[old.citizen], old.alert, &stats).await;
                    }
                }
            }
        }
    }
}

/// One panic press, retried with the same `Idempotency-Key` (as the app does) a few times.
async fn press(citizen: &mut Session, kind: &str, at: LatLng, stats: &Stats) -> Option<Uuid> {
    let key = Uuid::new_v4().to_string();
    let body = json!({
        "kind": kind,
        "location": {"lat": at.lat, "lng": at.lng, "accuracy_m": 15},
        "note": drill_note(kind),
        "drill": true,
    });
    for attempt in 1..=3_u32 {
        match citizen
            .call(Method::POST, "/v1/alerts", Some(&body), Some(&key))
            .await
        {
            Ok(answer) if answer.status.is_success() => {
                Stats::add(&stats.alerts);
                tracing::info!(kind, alert = %answer.body["id"], "simulated panic");
                return id(&answer.body["id"]);
            }
            Ok(answer) if answer.status.is_client_error() => {
                tracing::warn!(status = %answer.status, detail = %answer.body["detail"], "simulated panic refused");
                Stats::add(&stats.errors);
                return None;
            }
            Ok(_) | Err(_) => {
                tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
            }
        }
    }
    Stats::add(&stats.errors);
    None
}

async fn cancel_if_stale(citizen: &mut Session, alert: Uuid, stats: &Stats) {
    let Ok(answer) = citizen
        .call(Method::GET, &format!("/v1/alerts/{alert}"), None, None)
        .await
    else {
        return;
    };
    if matches!(
        answer.body["status"].as_str(),
        Some("dispatching" | "unmatched")
    ) {
        let cancelled = citizen
            .call(
                Method::POST,
                &format!("/v1/alerts/{alert}/cancel"),
                Some(&json!({"reason": "simulasi: tidak ada relawan, dibatalkan"})),
                None,
            )
            .await
            .and_then(|answer| answer.ok("cancelling"));
        if cancelled.is_ok() {
            Stats::add(&stats.cancelled);
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn kinds_come_in_the_mix_and_presses_at_the_rate() {
        let mut rng = StdRng::seed_from_u64(11);
        let mut medical = 0;
        let mut total_s = 0.0;
        for _ in 0..10_000 {
            if random_kind(&mut rng) == "medical" {
                medical += 1;
            }
            total_s += next_press_in_s(6.0, &mut rng);
        }
        assert!((2700..3300).contains(&medical), "{medical}");
        let mean_s = total_s / 10_000.0;
        assert!(
            (9.5..10.5).contains(&mean_s),
            "6 a minute is one every 10 s: {mean_s}"
        );
        assert!(is_drill(&json!({"kind": "fire", "drill": true})));
        assert!(
            !is_drill(&json!({"drill": false, "note": drill_note("fire")})),
            "the note does not make a drill"
        );
        assert!(
            !is_drill(&json!({"note": "[SIMULASI] Pingsan di pasar"})),
            "nor does a prefix a citizen typed"
        );
        assert!(!is_drill(&Value::Null), "an alert without the flag is real");
    }
}
