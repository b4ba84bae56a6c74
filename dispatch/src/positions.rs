//! Write-behind positions: the matcher moves at once, PostgreSQL follows in batches.
//!
//! Trackers send tens of thousands of positions a second, and each is superseded by the next one
//! of the same volunteer. One synchronous `UPDATE` per position would cap the whole fleet at what
//! PostgreSQL commits one row at a time (a few thousand a second here), so a position of a
//! volunteer the matcher knows (on duty, located) takes this path instead:
//!
//! 1. [`crate::service::DispatchService::update_location`] validates it and moves the volunteer in
//!    the matcher at once, unless the matcher holds a newer one (older positions go to the history
//!    only, as before);
//! 2. it lands here, in a map keyed by volunteer where the newest position wins (coalescing: a
//!    volunteer sending 1,000 positions between two flushes costs one row write);
//! 3. [`run`] writes the map every `dispatch.position_flush_interval_ms` in one statement per
//!    [`FLUSH_CHUNK`] volunteers (`UPDATE ... FROM unnest(...)`, guarded in SQL so a row never moves
//!    back to an older position, whichever instance wrote it), then announces the change so other
//!    instances catch up (the statement fires the `change_xid` trigger like any other write).
//!
//! The 2xx answer of `POST /v1/volunteers/me/location` (and the MQTT PUBACK) therefore comes before
//! the row is committed: a position is superseded by the next one within seconds, and what matters
//! for dispatch, the matcher of the instance that took it, has it before the answer. A crash loses
//! at most one flush interval of positions from the table (the next position restores it).
//!
//! Bounded: the map holds at most `dispatch.position_pending_max` volunteers (it cannot hold more
//! than the matcher's on-duty volunteers anyway). When it is full, a position of a volunteer not
//! yet in it asks for an early flush and waits for room (backpressure on the MQTT consumer and the
//! HTTP handler) for at most [`FULL_WAIT`], then fails with 503 (the matcher has it already; the
//! table gets the next one). A failed flush keeps every entry (a newer position of the same
//! volunteer replaces it, still one entry) and is retried at the next interval, so a database
//! outage neither loses the latest positions nor grows the map.
//!
//! Positions of volunteers the matcher does not know (off duty, or the first position after going
//! on duty) stay synchronous: they create or read the row, which decides whether the volunteer
//! enters the matcher.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::geo::LatLng;
use crate::service::DispatchService;

/// Most rows one flush statement writes; a larger map is written in several statements.
pub const FLUSH_CHUNK: usize = 10_000;

/// Longest a position waits for room in a full map before it fails with 503.
pub const FULL_WAIT: Duration = Duration::from_secs(5);

/// How long the flusher lets handlers in flight queue their last positions after shutdown began
/// (or one flush interval, if shorter) before its final flush.
pub const SHUTDOWN_SETTLE: Duration = Duration::from_millis(250);

/// One volunteer's newest unwritten position.
#[derive(Debug, Clone)]
struct Pending {
    at: LatLng,
    accuracy_m: Option<f32>,
    recorded_at: DateTime<Utc>,
    /// The display name to store, empty to keep the stored one.
    name: String,
    /// Distinguishes this entry from a later replacement (a flush removes only what it wrote).
    seq: u64,
}

/// The map of unwritten positions; one per [`DispatchService`].
#[derive(Debug)]
pub struct PositionWriter {
    pending: Mutex<HashMap<Uuid, Pending>>,
    capacity: usize,
    seq: AtomicU64,
    /// Asks [`run`] to flush before its interval (the map is full).
    flush_now: Notify,
    /// Wakes submitters waiting for room after a flush.
    room: Notify,
    /// One flush at a time ([`run`], shutdown and explicit calls).
    flushing: tokio::sync::Mutex<()>,
    rows_written: AtomicU64,
    flush_failures: AtomicU64,
}

/// The map stayed full for [`FULL_WAIT`] (PostgreSQL is down or far behind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many positions are waiting to be written")]
pub struct Full;

impl PositionWriter {
    /// A writer holding at most `capacity` volunteers' positions.
    pub fn new(capacity: usize) -> Self {
        Self {
            pending: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
            seq: AtomicU64::new(0),
            flush_now: Notify::new(),
            room: Notify::new(),
            flushing: tokio::sync::Mutex::new(()),
            rows_written: AtomicU64::new(0),
            flush_failures: AtomicU64::new(0),
        }
    }

    /// Queues `volunteer`'s position; an older one than what is queued already is ignored. Waits
    /// for room (at most [`FULL_WAIT`]) when the map is full and `volunteer` is not in it.
    ///
    /// # Errors
    /// [`Full`] when no room came.
    pub async fn submit(
        &self,
        volunteer: Uuid,
        name: &str,
        at: LatLng,
        accuracy_m: Option<f32>,
        recorded_at: DateTime<Utc>,
    ) -> Result<(), Full> {
        let deadline = tokio::time::Instant::now() + FULL_WAIT;
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            {
                let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
                let len = pending.len();
                match pending.get_mut(&volunteer) {
                    Some(entry) => {
                        if entry.recorded_at <= recorded_at {
                            entry.at = at;
                            entry.accuracy_m = accuracy_m;
                            entry.recorded_at = recorded_at;
                            if !name.is_empty() {
                                name.clone_into(&mut entry.name);
                            }
                            entry.seq = self.seq.fetch_add(1, Ordering::Relaxed);
                        }
                        return Ok(());
                    }
                    None if len < self.capacity => {
                        pending.insert(
                            volunteer,
                            Pending {
                                at,
                                accuracy_m,
                                recorded_at,
                                name: name.to_owned(),
                                seq: self.seq.fetch_add(1, Ordering::Relaxed),
                            },
                        );
                        return Ok(());
                    }
                    None => {}
                }
            }
            metrics::counter!("kreki_dispatch_positions_full_waits_total").increment(1);
            self.flush_now.notify_one();
            if tokio::time::timeout_at(deadline, room).await.is_err() {
                return Err(Full);
            }
        }
    }

    /// Volunteers whose position is not written yet.
    pub fn pending(&self) -> usize {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Every queued position (volunteer, where, when recorded).
    pub fn pending_positions(&self) -> Vec<(Uuid, LatLng, DateTime<Utc>)> {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(id, entry)| (*id, entry.at, entry.recorded_at))
            .collect()
    }

    /// Rows written by flushes so far (a row whose stored position was newer is not counted).
    pub fn rows_written(&self) -> u64 {
        self.rows_written.load(Ordering::Relaxed)
    }

    /// Flushes that failed so far.
    pub fn flush_failures(&self) -> u64 {
        self.flush_failures.load(Ordering::Relaxed)
    }

    /// Writes every queued position (in statements of at most [`FLUSH_CHUNK`] rows) and forgets
    /// those not replaced meanwhile; answers how many volunteers it wrote. On failure every entry
    /// stays for the next flush.
    ///
    /// # Errors
    /// Database failures (the entries not yet written stay queued).
    pub async fn flush(&self, pool: &PgPool) -> Result<usize, sqlx::Error> {
        let _one = self.flushing.lock().await;
        let snapshot: Vec<(Uuid, Pending)> = self
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(id, entry)| (*id, entry.clone()))
            .collect();
        let mut written = 0;
        for chunk in snapshot.chunks(FLUSH_CHUNK) {
            let mut ids = Vec::with_capacity(chunk.len());
            let mut lats = Vec::with_capacity(chunk.len());
            let mut lngs = Vec::with_capacity(chunk.len());
            let mut cells = Vec::with_capacity(chunk.len());
            let mut accuracies = Vec::with_capacity(chunk.len());
            let mut recorded = Vec::with_capacity(chunk.len());
            let mut names = Vec::with_capacity(chunk.len());
            for (id, entry) in chunk {
                ids.push(*id);
                lats.push(entry.at.lat());
                lngs.push(entry.at.lng());
                cells.push(crate::domain::h3_cell(entry.at));
                accuracies.push(entry.accuracy_m);
                recorded.push(entry.recorded_at);
                names.push(entry.name.clone());
            }
            let result = crate::store::write_positions(
                pool,
                &crate::store::PositionBatch {
                    ids: &ids,
                    lats: &lats,
                    lngs: &lngs,
                    cells: &cells,
                    accuracies: &accuracies,
                    recorded: &recorded,
                    names: &names,
                },
            )
            .await;
            match result {
                Ok(rows) => {
                    self.rows_written.fetch_add(rows, Ordering::Relaxed);
                    metrics::counter!("kreki_dispatch_position_rows_written_total").increment(rows);
                    let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
                    for (id, entry) in chunk {
                        if pending.get(id).is_some_and(|now| now.seq == entry.seq) {
                            pending.remove(id);
                        }
                    }
                    drop(pending);
                    self.room.notify_waiters();
                    written += chunk.len();
                }
                Err(error) => {
                    self.flush_failures.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("kreki_dispatch_position_flush_failures_total").increment(1);
                    return Err(error);
                }
            }
        }
        Ok(written)
    }
}

/// Flushes every `dispatch.position_flush_interval_ms` (early when the map is full) until
/// `shutdown`; then lets handlers in flight queue their last positions for [`SHUTDOWN_SETTLE`]
/// and flushes what is left (three attempts).
pub async fn run(service: Arc<DispatchService>, shutdown: CancellationToken) {
    let interval = Duration::from_millis(service.config().position_flush_interval_ms);
    let writer = service.position_writer();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(interval) => {}
            () = writer.flush_now.notified() => {}
        }
        if let Err(error) = service.flush_positions().await {
            tracing::warn!(%error, pending = writer.pending(), "positions not written; retrying at the next interval");
        }
    }
    tokio::time::sleep(interval.min(SHUTDOWN_SETTLE)).await;
    for attempt in 1..=3 {
        match service.flush_positions().await {
            Ok(_) => return,
            Err(error) => {
                tracing::warn!(%error, attempt, pending = writer.pending(), "positions not written at shutdown");
                tokio::time::sleep(interval).await;
            }
        }
    }
    tracing::error!(
        pending = writer.pending(),
        "positions lost at shutdown: the table keeps the previous ones"
    );
}
