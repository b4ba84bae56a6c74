//! Background housekeeping of KREKI ID: prunes long-expired refresh tokens and finished throttle
//! counters, so those tables stay small. Stops when the shutdown token is cancelled.

use std::time::Duration;

use kreki_platform::shutdown::CancellationToken;
use sqlx::PgPool;

/// How often the prune runs.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// Runs the prune loop until `shutdown`.
pub async fn run(pool: PgPool, throttle_window_s: u64, shutdown: CancellationToken) {
    let window_s = i64::try_from(throttle_window_s).unwrap_or(i64::MAX);
    let mut tick = tokio::time::interval(PRUNE_EVERY);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = tick.tick() => match crate::store::prune(&pool, window_s).await {
                Ok(0) => {}
                Ok(removed) => tracing::info!(removed, "pruned expired auth rows"),
                Err(error) => tracing::warn!(%error, "auth prune failed; will retry"),
            },
        }
    }
}
