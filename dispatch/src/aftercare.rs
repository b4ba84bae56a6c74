//! The aftercare loop: every `poll_interval_ms` it claims the check-ins that fell due (in batches
//! of [`BATCH`], again at once while batches come back full) and tells each volunteer
//! (`checkin`). Claims skip rows another instance holds and mark them sent in the same statement,
//! so two instances never send one twice; a crash after the claim loses at most the message, and
//! the check-in still shows in the volunteer's list. It stops when `shutdown` is cancelled, after
//! the batch in hand.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::service::DispatchService;

/// Most check-ins claimed per statement.
pub const BATCH: u32 = 100;

/// Runs until `shutdown` is cancelled.
pub async fn run(service: Arc<DispatchService>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_millis(service.config().poll_interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        loop {
            match service.deliver_due_checkins(BATCH).await {
                Ok(claimed) if claimed >= BATCH as usize && !shutdown.is_cancelled() => {}
                Ok(_) => break,
                Err(error) => {
                    tracing::warn!(%error, "check-ins not delivered; retrying at the next poll");
                    break;
                }
            }
        }
    }
}
