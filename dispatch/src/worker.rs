//! Dispatch's background tasks: the dispatcher (first waves right after commit, next waves when
//! timers fall due, a poller as the safety net), the location-history writer, the volunteer
//! catch-up and the write-behind position flusher.
//!
//! The dispatcher is woken through a bounded queue for speed, but owns no state of its own: every
//! piece of work is a row in `dispatch.outbox` or `dispatch.timers`, claimed (skipping rows
//! another dispatcher holds) and finished by the same statement that writes the wave it sends. A
//! crash between an alert's commit and its offers, a full wake queue, a restart or a second
//! instance therefore neither loses nor doubles a wave: the poller finds whatever is left. Work
//! is done in batches (`crate::service::waves`): one claim and one write for every alert due.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::service::waves::BATCH_LIMIT;
use crate::service::{DispatchService, Wake, Workers};
use crate::store::WorkWanted;

/// Most batches of waves one instance runs at once (each holds one database connection for its
/// two statements). A batch takes whatever work is waiting when it starts, so a few at once are
/// enough to keep the database busy: more would only split the same work into more commits.
/// Never more than half the pool, so ingest (the 201) always finds connections: see
/// [`parallel_batches`].
const PARALLEL_BATCHES: usize = 4;

/// Batches at once for a pool of `max_connections`: [`PARALLEL_BATCHES`], at most half the pool,
/// at least one.
fn parallel_batches(max_connections: u32) -> usize {
    PARALLEL_BATCHES.min((max_connections as usize / 2).max(1))
}

/// Starts the dispatcher, the history writer, the catch-up, the position flusher, the aftercare
/// loop and the escalation sweep; they stop when `shutdown` is cancelled.
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
    let aftercare = tokio::spawn(crate::aftercare::run(service.clone(), shutdown.clone()));
    let escalate = tokio::spawn(crate::escalate::run(service.clone(), shutdown.clone()));
    let dispatcher = tokio::spawn(run_dispatcher(service, workers.wake, shutdown));
    vec![dispatcher, history, sync, positions, aftercare, escalate]
}

/// Prepares the service (kind settings, matcher rebuild; retried with backoff until it works),
/// then serves wake-ups and polls, each as a batch of waves.
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
    let parallel = parallel_batches(service.pool().options().get_max_connections());
    let permits = Arc::new(Semaphore::new(parallel));
    service.set_dispatching(true);
    let mut poll: Option<JoinHandle<()>> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(service.config().poll_interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            received = wake.recv() => {
                let Some(first) = received else { break };
                let Ok(permit) = permits.clone().acquire_owned().await else { break };
                // Whatever was woken while this waited for a slot joins the batch: under load
                // batches grow instead of queueing.
                let mut wanted = Batch::default();
                wanted.add(first);
                while wanted.alerts.len() < BATCH_LIMIT as usize {
                    match wake.try_recv() {
                        Ok(more) => wanted.add(more),
                        Err(_) => break,
                    }
                }
                let service = service.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    drain(&service, &wanted.work()).await;
                });
            }
            _ = tick.tick() => {
                // The safety net runs beside the wake-ups, not in their way: it takes a slot per
                // batch, so a backlog never holds up the next panic's wake-up for long.
                if poll.as_ref().is_none_or(JoinHandle::is_finished) {
                    let service = service.clone();
                    let permits = permits.clone();
                    let shutdown = shutdown.clone();
                    poll = Some(tokio::spawn(async move {
                        let all = WorkWanted {
                            outbox: Some(None),
                            timers: true,
                            limit: BATCH_LIMIT,
                        };
                        loop {
                            let permit = tokio::select! {
                                () = shutdown.cancelled() => return,
                                permit = permits.clone().acquire_owned() => permit,
                            };
                            let Ok(_permit) = permit else { return };
                            if !batch(&service, &all).await {
                                return;
                            }
                        }
                    }));
                }
            }
        }
    }
    // New alerts from now on wait in the outbox for the next dispatcher.
    service.set_dispatching(false);
    // Let batches in flight finish their statements.
    drop(
        permits
            .acquire_many(u32::try_from(parallel).unwrap_or(u32::MAX))
            .await,
    );
}

/// What a woken batch is for.
#[derive(Debug, Default)]
struct Batch {
    alerts: Vec<crate::domain::AlertId>,
    timers: bool,
}

impl Batch {
    fn add(&mut self, wake: Wake) {
        match wake {
            Wake::Alert(id) if !self.alerts.contains(&id) => self.alerts.push(id),
            Wake::Alert(_) => {}
            Wake::Timers => self.timers = true,
        }
    }

    fn work(&self) -> WorkWanted {
        WorkWanted {
            outbox: (!self.alerts.is_empty()).then(|| Some(self.alerts.clone())),
            timers: self.timers,
            limit: BATCH_LIMIT,
        }
    }
}

/// Runs batches of `wanted` while they come back full.
async fn drain(service: &DispatchService, wanted: &WorkWanted) {
    while batch(service, wanted).await {}
}

/// Runs one batch; true when it was full (more work is likely waiting).
async fn batch(service: &DispatchService, wanted: &WorkWanted) -> bool {
    match service.run_batch(wanted).await {
        Ok(outcome) => {
            metrics::histogram!("kreki_dispatch_batch_alerts").record(outcome.applied as f64);
            outcome.claimed >= BATCH_LIMIT as usize
        }
        Err(error) => {
            tracing::warn!(%error, "a batch of waves failed; its work stays for the next poll");
            false
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
    fn batches_take_at_most_half_the_pool() {
        assert_eq!(parallel_batches(20), PARALLEL_BATCHES);
        assert_eq!(parallel_batches(6), 3);
        assert_eq!(parallel_batches(2), 1);
        assert_eq!(parallel_batches(1), 1);
    }
}
