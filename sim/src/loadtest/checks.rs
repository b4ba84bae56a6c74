//! What the database says about a run's alerts: which are `unmatched` and since when, when each
//! first wave went out, and the end-of-run checks (acknowledged alerts missing, alerts neither
//! offered nor unmatched, offers that never reached their socket, unprocessed outbox rows,
//! over-covered alerts, double-booked volunteers).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::time::Instant;
use uuid::Uuid;

use super::report::Latency;
use super::volunteers::Tally;

/// How often the database and the sockets are looked at while waiting.
const POLL: Duration = Duration::from_millis(250);

/// Of `alerts`, those `unmatched` in the database, with when they became so.
///
/// # Errors
/// Database failures.
pub async fn unmatched_at(
    pool: &PgPool,
    alerts: &[Uuid],
) -> anyhow::Result<HashMap<Uuid, DateTime<Utc>>> {
    if alerts.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(Uuid, Option<DateTime<Utc>>)> = sqlx::query_as(
        "SELECT a.id, (SELECT max(e.at) FROM dispatch.alert_events e
                       WHERE e.alert_id = a.id AND e.type = 'unmatched')
         FROM dispatch.alerts a WHERE a.id = ANY($1) AND a.status = 'unmatched'",
    )
    .bind(alerts)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, at)| (id, at.unwrap_or_else(Utc::now)))
        .collect())
}

/// Of `alerts`, those with neither an `offer` frame at a socket nor `unmatched` in the database.
///
/// # Errors
/// Database failures.
pub async fn waiting(pool: &PgPool, tally: &Tally, alerts: &[Uuid]) -> anyhow::Result<Vec<Uuid>> {
    let offered = tally.first_offers();
    let mut waiting: Vec<Uuid> = alerts
        .iter()
        .copied()
        .filter(|alert| !offered.contains_key(alert))
        .collect();
    let unmatched = unmatched_at(pool, &waiting).await?;
    waiting.retain(|alert| !unmatched.contains_key(alert));
    Ok(waiting)
}

/// Waits until every one of `alerts` was offered at a socket or is unmatched, or `deadline`;
/// answers the unmatched ones, with when they became so.
///
/// # Errors
/// Database failures.
pub async fn await_dispatch(
    pool: &PgPool,
    tally: &Tally,
    alerts: &[Uuid],
    deadline: Instant,
) -> anyhow::Result<HashMap<Uuid, DateTime<Utc>>> {
    loop {
        let offered = tally.first_offers();
        let not_offered: Vec<Uuid> = alerts
            .iter()
            .copied()
            .filter(|alert| !offered.contains_key(alert))
            .collect();
        let unmatched = unmatched_at(pool, &not_offered).await?;
        if unmatched.len() == not_offered.len() || Instant::now() >= deadline {
            return Ok(unmatched);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until no outbox row of `alerts` is unprocessed, or `deadline`.
///
/// # Errors
/// Database failures.
pub async fn await_outbox(pool: &PgPool, alerts: &[Uuid], deadline: Instant) -> anyhow::Result<()> {
    loop {
        let (pending,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM dispatch.outbox WHERE alert_id = ANY($1) AND processed_at IS NULL",
        )
        .bind(alerts)
        .fetch_one(pool)
        .await?;
        if pending == 0 || Instant::now() >= deadline {
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// When each of `alerts` got its first offers, on the database's clock (the first wave's
/// transaction start); alerts without offers are left out.
///
/// # Errors
/// Database failures.
pub async fn first_waves(
    pool: &PgPool,
    alerts: &[Uuid],
) -> anyhow::Result<HashMap<Uuid, DateTime<Utc>>> {
    let rows: Vec<(Uuid, DateTime<Utc>)> = sqlx::query_as(
        "SELECT alert_id, min(offered_at) FROM dispatch.offers
         WHERE alert_id = ANY($1) GROUP BY alert_id",
    )
    .bind(alerts)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().collect())
}

/// The database's view of the run's alerts at its end.
#[derive(Debug)]
pub struct Checks {
    /// The alert's ingest transaction start -> its first offer's transaction start.
    pub dispatch_wait: Latency,
    /// The first wave's transaction start -> the first `offer` frame at a socket.
    pub wave_to_frame: Latency,
    /// Acknowledged alerts the database does not hold.
    pub missing: usize,
    /// Alerts neither offered nor unmatched.
    pub undispatched: usize,
    /// Offers the database holds for the run's alerts.
    pub offers: usize,
    /// Of those, the ones whose frame never reached a socket.
    pub undelivered: Vec<Uuid>,
    /// Outbox rows of the run's alerts still unprocessed.
    pub outbox_pending: i64,
    /// Alerts with more non-withdrawn assignments than they need.
    pub over_covered: u64,
    /// Volunteers holding more than one active assignment.
    pub double_booked: u64,
}

/// Runs the end-of-run checks on `alerts`; `received` are the offer ids that reached a socket
/// and `frames_at` when each alert's first offer frame came (wall clock). Unprocessed outbox rows
/// and undelivered offers get `grace` to clear (a wave or a cancellation made just now is still
/// on its way).
///
/// # Errors
/// Database failures.
pub async fn database(
    pool: &PgPool,
    tally: &Tally,
    alerts: &[Uuid],
    grace: Duration,
) -> anyhow::Result<Checks> {
    let deadline = Instant::now() + grace;
    let mut checks = once(pool, alerts, &tally.offer_ids(), &tally.first_offers_utc()).await?;
    while (checks.outbox_pending > 0 || !checks.undelivered.is_empty()) && Instant::now() < deadline
    {
        tokio::time::sleep(POLL).await;
        checks = once(pool, alerts, &tally.offer_ids(), &tally.first_offers_utc()).await?;
    }
    Ok(checks)
}

async fn once(
    pool: &PgPool,
    alerts: &[Uuid],
    received: &HashSet<Uuid>,
    frames_at: &HashMap<Uuid, DateTime<Utc>>,
) -> anyhow::Result<Checks> {
    let (present, undispatched): (i64, i64) = sqlx::query_as(
        "SELECT count(*),
                count(*) FILTER (WHERE a.status <> 'unmatched'
                    AND NOT EXISTS (SELECT 1 FROM dispatch.offers o WHERE o.alert_id = a.id))
         FROM dispatch.alerts a WHERE a.id = ANY($1)",
    )
    .bind(alerts)
    .fetch_one(pool)
    .await?;
    let offers: Vec<(Uuid,)> =
        sqlx::query_as("SELECT id FROM dispatch.offers WHERE alert_id = ANY($1)")
            .bind(alerts)
            .fetch_all(pool)
            .await?;
    let (outbox_pending,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM dispatch.outbox WHERE alert_id = ANY($1) AND processed_at IS NULL",
    )
    .bind(alerts)
    .fetch_one(pool)
    .await?;
    let (over_covered,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM (
           SELECT a.id FROM dispatch.alerts a JOIN dispatch.assignments s ON s.alert_id = a.id
           WHERE a.id = ANY($1) AND s.status <> 'withdrawn'
           GROUP BY a.id, a.responders_needed HAVING count(*) > a.responders_needed) AS x",
    )
    .bind(alerts)
    .fetch_one(pool)
    .await?;
    let (double_booked,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM (
           SELECT volunteer_id FROM dispatch.assignments
           WHERE status IN ('accepted', 'en_route', 'on_scene')
           GROUP BY volunteer_id HAVING count(*) > 1) AS x",
    )
    .fetch_one(pool)
    .await?;
    // Both timestamps are `now()` of their transaction: the alert's ingest and its first wave.
    let waits: Vec<(Uuid, f64, DateTime<Utc>)> = sqlx::query_as(
        "SELECT a.id, extract(epoch FROM min(o.offered_at) - a.created_at)::float8, min(o.offered_at)
         FROM dispatch.alerts a JOIN dispatch.offers o ON o.alert_id = a.id
         WHERE a.id = ANY($1) GROUP BY a.id",
    )
    .bind(alerts)
    .fetch_all(pool)
    .await?;
    let wave_to_frame = waits
        .iter()
        .filter_map(|(id, _, offered_at)| (*frames_at.get(id)? - *offered_at).to_std().ok())
        .collect();
    let present = usize::try_from(present).unwrap_or(0);
    Ok(Checks {
        dispatch_wait: Latency::of(
            waits
                .into_iter()
                .map(|(_, seconds, _)| Duration::from_secs_f64(seconds.max(0.0)))
                .collect(),
        ),
        wave_to_frame: Latency::of(wave_to_frame),
        missing: alerts.len().saturating_sub(present),
        undispatched: usize::try_from(undispatched).unwrap_or(0),
        offers: offers.len(),
        undelivered: offers
            .into_iter()
            .map(|(id,)| id)
            .filter(|id| !received.contains(id))
            .collect(),
        outbox_pending,
        over_covered: u64::try_from(over_covered).unwrap_or(0),
        double_booked: u64::try_from(double_booked).unwrap_or(0),
    })
}
