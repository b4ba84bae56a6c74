//! The hub's background task: sweeps idle sessions and stale replay frames, and at shutdown waits
//! for the sockets to finish their close handshakes (they close with 1001 on the same token), then
//! lets the bus carry what is left.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::hub::Hub;

/// Most time shutdown waits for sockets to close; each close handshake is bounded well below it.
const CLOSE_WAIT: Duration = Duration::from_secs(4);

/// How often idle sessions are swept.
fn sweep_interval(hub: &Hub) -> Duration {
    let config = hub.config();
    let shortest_s = config.session_idle_s.min(config.replay_window_s);
    Duration::from_secs(shortest_s.clamp(1, 10))
}

/// Runs until `shutdown` is cancelled, then waits (up to 4 s) for every socket to close and for
/// the bus to carry what is left (up to 1.5 s).
pub async fn run(hub: Hub, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(sweep_interval(&hub));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = ticks.tick() => {
                let dropped = hub.sweep();
                if dropped > 0 {
                    tracing::debug!(dropped, "idle realtime sessions dropped");
                }
            }
        }
    }
    let tracker = hub.tracker();
    tracker.close();
    if tokio::time::timeout(CLOSE_WAIT, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = tracker.len(),
            "WebSockets still open 4 s after shutdown; dropping them"
        );
    }
    hub.flush_bus().await;
}
