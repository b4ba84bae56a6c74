//! Append-only location history, written in batches off the request path.
//!
//! Requests hand positions to a bounded queue with `try_send`; when it is full the position is
//! dropped from the history (never from the live index) and counted in
//! `kreki_dispatch_location_history_dropped_total`, so a slow database never slows a location
//! update. A background task drains the queue into multi-row inserts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::geo::LatLng;

/// One position for the history.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// The volunteer.
    pub volunteer_id: Uuid,
    /// Where.
    pub at: LatLng,
    /// Accuracy, metres.
    pub accuracy_m: Option<f32>,
    /// When the device recorded it.
    pub recorded_at: DateTime<Utc>,
}

/// The sending side: never blocks.
#[derive(Debug)]
pub struct HistoryQueue {
    sender: mpsc::Sender<Sample>,
    dropped: AtomicU64,
}

impl HistoryQueue {
    /// A queue holding at most `capacity` samples, and its receiving end for [`run`].
    pub fn new(capacity: usize) -> (Self, mpsc::Receiver<Sample>) {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        (
            Self {
                sender,
                dropped: AtomicU64::new(0),
            },
            receiver,
        )
    }

    /// Queues `sample`, or drops and counts it when the queue is full or closed.
    pub fn push(&self, sample: Sample) {
        if self.sender.try_send(sample).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("kreki_dispatch_location_history_dropped_total").increment(1);
        }
    }

    /// Samples dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Drains `receiver` into `dispatch.location_history`, at most `batch` rows per insert, until
/// `shutdown` (then writes what is queued and stops). A failed insert is logged and its batch
/// dropped: history is for review, not for dispatch.
pub async fn run(
    pool: PgPool,
    mut receiver: mpsc::Receiver<Sample>,
    batch: usize,
    shutdown: CancellationToken,
) {
    let batch = batch.max(1);
    let mut buffer = Vec::with_capacity(batch);
    loop {
        let received = tokio::select! {
            () = shutdown.cancelled() => {
                receiver.close();
                while let Ok(sample) = receiver.try_recv() {
                    buffer.push(sample);
                    if buffer.len() >= batch {
                        write(&pool, &mut buffer).await;
                    }
                }
                write(&pool, &mut buffer).await;
                return;
            }
            received = receiver.recv_many(&mut buffer, batch) => received,
        };
        if received == 0 {
            return;
        }
        write(&pool, &mut buffer).await;
        // Let a burst accumulate into one insert rather than one per sample.
        if buffer.is_empty() && receiver.len() < batch {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn write(pool: &PgPool, buffer: &mut Vec<Sample>) {
    if buffer.is_empty() {
        return;
    }
    let users: Vec<Uuid> = buffer.iter().map(|s| s.volunteer_id).collect();
    let lats: Vec<f64> = buffer.iter().map(|s| s.at.lat()).collect();
    let lngs: Vec<f64> = buffer.iter().map(|s| s.at.lng()).collect();
    let accuracies: Vec<Option<f32>> = buffer.iter().map(|s| s.accuracy_m).collect();
    let recorded: Vec<DateTime<Utc>> = buffer.iter().map(|s| s.recorded_at).collect();
    if let Err(error) =
        crate::store::insert_history(pool, &users, &lats, &lngs, &accuracies, &recorded).await
    {
        tracing::warn!(%error, rows = buffer.len(), "location history batch not written");
        metrics::counter!("kreki_dispatch_location_history_dropped_total")
            .increment(buffer.len() as u64);
    }
    buffer.clear();
}
