//! Dispatch's background tasks: the dispatcher (first waves right after commit, next waves when
//! timers fall due, a poller as the safety net), the location-history writer, the volunteer
//! catch-up and the write-behind position flusher.
//!
//! The dispatcher is woken through a bounded queue for speed, but owns no state of its own: every
//! piece of work is a row in `dispatch.outbox` or `dispatch.timers`, claimed with
//! `FOR UPDATE SKIP LOCKED` and finished in the same transaction as the wave it sends. A crash
//! between an alert's commit and its offers, a full wake queue, a restart or a second instance
//! therefore neither loses nor doubles a wave: the poller finds whatever is left.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::service::{DispatchService, Wake, Workers};

/// Most waves being sent at once by one instance (each holds one database connection while it
/// runs). A wave is a dozen short statements and a commit, so it waits on round trips far more
/// than on CPU: at 100 panics/s four at once were a queue (seconds of backlog in the end-to-end
/// benchmark), sixteen are not. In steady state a few are busy. Never more than half the pool,
/// so ingest (the 201) always finds connections: see [`parallel_waves`].
const PARALLEL_WAVES: usize = 16;

/// Waves at once for a pool of `max_connections`: [`PARALLEL_WAVES`], at most half the pool, at
/// least one.
fn parallel_waves(max_connections: u32) -> usize {
    PARALLEL_WAVES.min((max_connections as usize / 2).max(1))
}

/// Most rows one poll handles (the next tick starts another poll once this one is done).
const POLL_BATCH: usize = 256;

/// Starts the dispatcher, the history writer, the catch-up and the position flusher; they stop when `shutdown` is cancelled.
pub fn spawn(
    service: Arc<DispatchService>,
    workers: Workers,
    shutdown: CancellationToken,
) -> Vec<JoinHandle<()>> {
    let history = tokio::spawn(crate::history::run(
        service.pool().clone(),
        workers.history,
        service.config().location_history_batch,
        shutdown.clone(),
    ));
    let sync = tokio::spawn(crate::sync::run(service.clone(), shutdown.clone()));
    let positions = tokio::spawn(crate::positions::run(service.clone(), shutdown.clone()));
    let dispatcher = tokio::spawn(run_dispatcher(service, workers.wake, shutdown));
    vec![dispatcher, history, sync, positions]
}

/// Prepares the service (kind settings, matcher rebuild; retried with backoff until it works),
/// then serves wake-ups and polls.
async fn run_dispatcher(
    service: Arc<DispatchService>,
    mut wake: tokio::sync::mpsc::Receiver<Wake>,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_millis(500);
    loop {
        match service.prepare().await {
            Ok(()) => break,
            Err(error) => {
                tracing::warn!(
                    error = format!("{error:#}"),
                    retry_in_ms = backoff.as_millis() as u64,
                    "dispatch not ready"
                );
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
    let parallel = parallel_waves(service.pool().options().get_max_connections());
    let permits = Arc::new(Semaphore::new(parallel));
    let mut poll: Option<JoinHandle<()>> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(service.config().poll_interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            received = wake.recv() => {
                let Some(wake) = received else { break };
                let Ok(permit) = permits.clone().acquire_owned().await else { break };
                let service = service.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    match wake {
                        Wake::Alert(alert) => {
                            if let Err(error) = service.process_outbox(Some(alert)).await {
                                tracing::warn!(%alert, %error, "first wave failed; the poller retries");
                            }
                        }
                        Wake::Timers => drain_timers(&service).await,
                    }
                });
            }
            _ = tick.tick() => {
                // The safety net runs beside the wake-ups, not in their way: drained inline, a
                // backlog of up to POLL_BATCH rows would stop wake-ups for as long (one wave at a
                // time). One poll at a time, holding one permit like a wave.
                if poll.as_ref().is_none_or(JoinHandle::is_finished) {
                    let service = service.clone();
                    let permits = permits.clone();
                    let shutdown = shutdown.clone();
                    poll = Some(tokio::spawn(async move {
                        let permit = tokio::select! {
                            () = shutdown.cancelled() => return,
                            permit = permits.acquire_owned() => permit,
                        };
                        let Ok(_permit) = permit else { return };
                        drain_outbox(&service).await;
                        drain_timers(&service).await;
                    }));
                }
            }
        }
    }
    // Let waves in flight finish their transactions.
    drop(
        permits
            .acquire_many(u32::try_from(parallel).unwrap_or(u32::MAX))
            .await,
    );
}

async fn drain_outbox(service: &DispatchService) {
    for _ in 0..POLL_BATCH {
        match service.process_outbox(None).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(error) => {
                tracing::warn!(%error, "outbox poll failed");
                return;
            }
        }
    }
}

async fn drain_timers(service: &DispatchService) {
    for _ in 0..POLL_BATCH {
        match service.process_due_timer().await {
            Ok(true) => {}
            Ok(false) => return,
            Err(error) => {
                tracing::warn!(%error, "timer poll failed");
                return;
            }
        }
    }
}

/// `/readyz` check: ready once the dispatcher has seeded kind settings and built the matcher.
pub struct DispatchReadiness(pub Arc<DispatchService>);

impl kreki_platform::health::ReadinessCheck for DispatchReadiness {
    fn name(&self) -> &'static str {
        "dispatch"
    }

    fn check(&self) -> kreki_platform::health::futures_like::BoxFuture<'_, Result<(), String>> {
        let ready = self.0.is_prepared();
        Box::pin(std::future::ready(if ready {
            Ok(())
        } else {
            Err("the matcher is not built yet".to_owned())
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waves_take_at_most_half_the_pool() {
        assert_eq!(parallel_waves(20), 10);
        assert_eq!(parallel_waves(100), PARALLEL_WAVES);
        assert_eq!(parallel_waves(10), 5);
        assert_eq!(parallel_waves(1), 1);
    }
}
