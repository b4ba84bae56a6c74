//! The expiry sweep: acts on certificate expiries when they happen and sends the 30/7/1-day
//! reminders.
//!
//! It sleeps until the next known expiry (or `lms.sweep_max_interval_s`, at most a minute, for
//! reminders and for certificates issued by other instances), and wakes at once when this instance
//! issues a certificate. Each pass claims due expiries with `FOR UPDATE SKIP LOCKED`, so several
//! instances sweep side by side without acting twice. Stops when the shutdown token is cancelled.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use kreki_platform::shutdown::CancellationToken;

use crate::service::LmsService;

/// Shortest sleep between passes: when an expiry is due but claimed by another instance, this
/// keeps the loop from spinning while still acting well within a second.
const MIN_SLEEP: Duration = Duration::from_millis(100);
/// Sleep after a failed pass (the database is probably down).
const RETRY_SLEEP: Duration = Duration::from_secs(5);

/// Runs the sweep until `shutdown`.
pub async fn run(service: Arc<LmsService>, shutdown: CancellationToken) {
    let max_sleep = Duration::from_secs(service.config().sweep_max_interval_s.max(1));
    loop {
        let sleep = match service.sweep_once().await {
            Ok(sweep) => {
                if sweep.expired > 0 || sweep.reminders > 0 {
                    tracing::info!(
                        expired = sweep.expired,
                        reminders = sweep.reminders,
                        "certificate sweep"
                    );
                }
                sweep
                    .next_expiry
                    .map_or(max_sleep, |at| {
                        (at - Utc::now())
                            .to_std()
                            .unwrap_or(Duration::ZERO)
                            .min(max_sleep)
                    })
                    .max(MIN_SLEEP)
            }
            Err(error) => {
                tracing::warn!(error = %error, "certificate sweep failed; will retry");
                RETRY_SLEEP.min(max_sleep)
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(sleep) => {}
            () = service.sweep_wake().notified() => {}
        }
    }
}
