//! `/healthz` says the process answers (liveness); `/readyz` says its dependencies answer and its
//! schema is current (readiness), so a load balancer sends traffic only where it can be served.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::StatusCode;
use serde_json::json;
use sqlx::PgPool;
use sqlx::migrate::Migrator;

use crate::problem::Problem;

/// How long one readiness check may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// One dependency `/readyz` asks about.
pub trait ReadinessCheck: Send + Sync {
    /// Short name shown in the `/readyz` answer (`database`, `migrations`).
    fn name(&self) -> &'static str;
    /// `Ok` when ready, else why not (shown to operators; must not contain secrets).
    fn check(&self) -> futures_like::BoxFuture<'_, Result<(), String>>;
}

/// Minimal boxed-future alias so this crate needs no `futures` dependency.
pub mod futures_like {
    /// A pinned, boxed, sendable future.
    pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
}

/// The database answers a trivial query.
pub struct DatabaseCheck(pub PgPool);

impl ReadinessCheck for DatabaseCheck {
    fn name(&self) -> &'static str {
        "database"
    }
    fn check(&self) -> futures_like::BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            sqlx::query("SELECT 1")
                .execute(&self.0)
                .await
                .map(|_| ())
                .map_err(|error| error.to_string())
        })
    }
}

/// Every migration this binary knows is applied.
pub struct MigrationsCheck {
    /// Where to look.
    pub pool: PgPool,
    /// The migrations compiled into this binary.
    pub migrator: &'static Migrator,
}

impl ReadinessCheck for MigrationsCheck {
    fn name(&self) -> &'static str {
        "migrations"
    }
    fn check(&self) -> futures_like::BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            match crate::db::pending_migrations(&self.pool, self.migrator).await {
                Ok(pending) if pending.is_empty() => Ok(()),
                Ok(pending) => Err(format!(
                    "{} migration(s) not applied; run `kreki migrate`",
                    pending.len()
                )),
                Err(error) => Err(error.to_string()),
            }
        })
    }
}

type Checks = Arc<Vec<Box<dyn ReadinessCheck>>>;

/// `/healthz` and `/readyz`, asking `checks` on each readiness probe.
pub fn router(checks: Vec<Box<dyn ReadinessCheck>>) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { axum::Json(json!({"status": "ok"})) }),
        )
        .route("/readyz", get(readyz))
        .with_state(Arc::new(checks))
}

async fn readyz(State(checks): State<Checks>) -> Response {
    let mut report = serde_json::Map::new();
    let mut failures = Vec::new();
    for check in checks.iter() {
        let outcome = match tokio::time::timeout(CHECK_TIMEOUT, check.check()).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("no answer within {} s", CHECK_TIMEOUT.as_secs())),
        };
        match outcome {
            Ok(()) => {
                report.insert(check.name().to_owned(), json!("ok"));
            }
            Err(reason) => {
                report.insert(check.name().to_owned(), json!(reason));
                failures.push(format!("{}: {reason}", check.name()));
            }
        }
    }
    if failures.is_empty() {
        (
            StatusCode::OK,
            axum::Json(json!({"status": "ready", "checks": report})),
        )
            .into_response()
    } else {
        Problem::unavailable(failures.join("; "))
            .with_extension("checks", report)
            .into_response()
    }
}
