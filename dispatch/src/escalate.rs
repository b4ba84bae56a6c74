//! The escalation sweep: every `escalation_sweep_s`, each instance raises the escalations no
//! status change raises (a responder who accepted and has not moved, an alert open too long; see
//! [`crate::service::DispatchService::sweep_escalations`]). Instances may sweep at once: the
//! statement raises at most one open escalation per alert and reason.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::service::DispatchService;

/// Runs the sweep until `shutdown` is cancelled.
pub async fn run(service: Arc<DispatchService>, shutdown: CancellationToken) {
    let every = Duration::from_secs(u64::from(service.config().escalation_sweep_s));
    {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            match service.sweep_escalations().await {
                Ok(0) => {}
                Ok(raised) => tracing::info!(raised, "escalations raised"),
                Err(error) => tracing::warn!(%error, "escalation sweep failed; retrying"),
            }
        }
    }
}
