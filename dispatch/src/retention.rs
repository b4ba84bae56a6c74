//! Retention of personal data in dispatch (UU PDP, Law 27/2022: kept no longer than needed).
//! A background job, in every dispatch process (safe with several: each batch skips rows another
//! holds), wakes every `interval_s` and works in small batches until nothing is due:
//!
//! - raw volunteer positions: location history older than `positions_days` (default 30) is
//!   deleted, and the last known position of volunteers off duty that long is forgotten;
//! - drill alerts (simulations, exercises) finished more than `drill_alerts_days` ago (default 90)
//!   are deleted with their offers, assignments and timeline;
//! - closed alerts older than `coarsen_closed_alerts_after_days` (default 365) keep the incident
//!   (statistics, SATUSEHAT) but their exact position is snapped to a `coarse_grid_deg` grid
//!   (default 0.01°, about 1.1 km).
//!
//! Each batch is one short statement (or transaction) over at most `batch_rows` rows found through
//! an index on their age, with a pause between batches, so the hot path never waits on it.
//! Metrics: `dispatch_retention_rows_total{kind}` (rows pruned or coarsened) and
//! `dispatch_retention_errors_total`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::geo::LatLng;
use crate::store::retention as store;

/// `[dispatch.retention]`: how long each kind of data is kept.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Run the job at all (default true).
    pub enabled: bool,
    /// Days raw volunteer positions (location history, a stale last position) are kept.
    pub positions_days: u32,
    /// Days finished drill alerts are kept.
    pub drill_alerts_days: u32,
    /// Days after which a closed alert's exact position is coarsened.
    pub coarsen_closed_alerts_after_days: u32,
    /// The coarse grid, in degrees.
    pub coarse_grid_deg: f64,
    /// Seconds between runs.
    pub interval_s: u64,
    /// Rows per batch.
    pub batch_rows: u32,
    /// Pause between batches, in milliseconds.
    pub batch_pause_ms: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            positions_days: 30,
            drill_alerts_days: 90,
            coarsen_closed_alerts_after_days: 365,
            coarse_grid_deg: 0.01,
            interval_s: 3600,
            batch_rows: 1000,
            batch_pause_ms: 50,
        }
    }
}

impl RetentionConfig {
    /// Problems with these settings, as `(key, why)`.
    pub fn problems(&self) -> Vec<(&'static str, &'static str)> {
        let mut problems = Vec::new();
        if self.positions_days == 0 {
            problems.push(("dispatch.retention.positions_days", "must be at least 1"));
        }
        if self.drill_alerts_days == 0 {
            problems.push(("dispatch.retention.drill_alerts_days", "must be at least 1"));
        }
        if self.coarsen_closed_alerts_after_days == 0 {
            problems.push((
                "dispatch.retention.coarsen_closed_alerts_after_days",
                "must be at least 1",
            ));
        }
        if !(self.coarse_grid_deg.is_finite() && (0.0001..=1.0).contains(&self.coarse_grid_deg)) {
            problems.push((
                "dispatch.retention.coarse_grid_deg",
                "must be between 0.0001 and 1",
            ));
        }
        if self.batch_rows == 0 || self.interval_s == 0 {
            problems.push((
                "dispatch.retention.batch_rows",
                "batch_rows and interval_s must be at least 1",
            ));
        }
        problems
    }
}

/// `lat, lng` snapped to the nearest point of a `grid_deg` grid.
///
/// # Errors
/// When the point is not a position (stored positions always are).
pub fn coarsen(lat: f64, lng: f64, grid_deg: f64) -> Result<LatLng, crate::geo::GeoError> {
    let snap = |value: f64| (value / grid_deg).round() * grid_deg;
    LatLng::new(snap(lat).clamp(-90.0, 90.0), snap(lng).clamp(-180.0, 180.0))
}

/// The instant `days` before `now`.
pub fn cutoff(now: DateTime<Utc>, days: u32) -> DateTime<Utc> {
    now - chrono::Duration::days(i64::from(days))
}

/// What one pass did, per kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Location-history rows deleted.
    pub location_history: u64,
    /// Stale last positions forgotten.
    pub stale_positions: u64,
    /// Drill alerts deleted.
    pub drill_alerts: u64,
    /// Closed alerts coarsened.
    pub coarsened_alerts: u64,
}

/// Runs `step` until it returns less than a full batch, pausing between batches; counts rows in
/// the metric labelled `kind`.
async fn drain<F, Fut>(
    kind: &'static str,
    config: &RetentionConfig,
    shutdown: &CancellationToken,
    mut step: F,
) -> Result<u64, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<u64, sqlx::Error>>,
{
    let mut total = 0;
    loop {
        let rows = step().await?;
        total += rows;
        metrics::counter!("dispatch_retention_rows_total", "kind" => kind).increment(rows);
        if rows < u64::from(config.batch_rows) || shutdown.is_cancelled() {
            return Ok(total);
        }
        tokio::time::sleep(Duration::from_millis(config.batch_pause_ms)).await;
    }
}

/// One pass over every kind of data, as of `now`.
///
/// # Errors
/// The first database error (the next pass picks up where this one stopped).
pub async fn run_once(
    pool: &PgPool,
    config: &RetentionConfig,
    now: DateTime<Utc>,
    shutdown: &CancellationToken,
) -> Result<Pruned, sqlx::Error> {
    let batch = i64::from(config.batch_rows);
    let positions = cutoff(now, config.positions_days);
    let drills = cutoff(now, config.drill_alerts_days);
    let coarsen_before = cutoff(now, config.coarsen_closed_alerts_after_days);
    Ok(Pruned {
        location_history: drain("location_history", config, shutdown, || {
            store::prune_location_history(pool, positions, batch)
        })
        .await?,
        stale_positions: drain("stale_position", config, shutdown, || {
            store::forget_stale_positions(pool, positions, batch)
        })
        .await?,
        drill_alerts: drain("drill_alert", config, shutdown, || {
            store::prune_drills(pool, drills, batch)
        })
        .await?,
        coarsened_alerts: drain("coarsened_alert", config, shutdown, || {
            store::coarsen_closed_alerts(pool, coarsen_before, config.coarse_grid_deg, batch)
        })
        .await?,
    })
}

/// The job: a pass every `interval_s` (the first one a minute after start) until `shutdown`.
pub async fn run(pool: PgPool, config: RetentionConfig, shutdown: CancellationToken) {
    if !config.enabled {
        return;
    }
    let mut wait = Duration::from_secs(60.min(config.interval_s));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        wait = Duration::from_secs(config.interval_s);
        match run_once(&pool, &config, Utc::now(), &shutdown).await {
            Ok(pruned) => tracing::info!(?pruned, "retention pass done"),
            Err(error) => {
                metrics::counter!("dispatch_retention_errors_total").increment(1);
                tracing::warn!(%error, "retention pass failed; retrying at the next one");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_snap_to_the_grid() {
        let coarse = coarsen(-6.175392, 106.827153, 0.01).expect("a position");
        assert!((coarse.lat() - -6.18).abs() < 1e-9, "{coarse}");
        assert!((coarse.lng() - 106.83).abs() < 1e-9, "{coarse}");
        let edge = coarsen(89.999, 179.999, 0.01).expect("a position");
        assert!(edge.lat() <= 90.0 && edge.lng() <= 180.0);
    }

    #[test]
    fn cutoffs_are_whole_days_back() {
        let now = Utc::now();
        assert_eq!(now - cutoff(now, 30), chrono::Duration::days(30));
    }

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        assert!(RetentionConfig::default().problems().is_empty());
        let bad = RetentionConfig {
            positions_days: 0,
            coarse_grid_deg: 5.0,
            ..RetentionConfig::default()
        };
        let keys: Vec<_> = bad.problems().into_iter().map(|(key, _)| key).collect();
        assert!(keys.contains(&"dispatch.retention.positions_days"));
        assert!(keys.contains(&"dispatch.retention.coarse_grid_deg"));
    }
}
