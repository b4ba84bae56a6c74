//! PostgreSQL: the pool, and helpers to classify errors the same way in every service.
//!
//! The pool connects lazily, so a service starts (and answers `/readyz` with 503) while the database
//! is still coming up, instead of crash-looping.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, migrate::Migrator};

/// How long a pooled connection may sit idle before it is checked with a round trip on its next
/// use.
pub const PING_AFTER_IDLE: Duration = Duration::from_secs(10);

/// Builds a pool without connecting yet. `acquire_timeout` bounds how long a request waits for a
/// connection before it is answered 503 (retryable) rather than hanging.
///
/// Every connection runs with `synchronous_commit = on`, whatever the server's default: KREKI
/// answers a panic only once its commit is on disk (and on the synchronous replicas), and the
/// panic is a single statement (see `kreki_dispatch::store::ingest`), so the setting must hold for
/// the session, not only inside an explicit transaction.
///
/// A connection is checked with a round trip (`ping`) before use only when it sat idle for
/// [`PING_AFTER_IDLE`]: checking every acquire (sqlx's default) adds a round trip to every request
/// and every wave. A connection that broke meanwhile fails its statement with an I/O error, which
/// is answered 503 (retryable) like any outage.
pub fn pool(options: PgConnectOptions, max_connections: u32, acquire_timeout: Duration) -> PgPool {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(acquire_timeout)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_AFTER_IDLE {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
        .connect_lazy_with(
            options
                .application_name("kreki")
                .options([("synchronous_commit", "on")]),
        )
}

/// True when the error means the database is unreachable, restarting or overloaded: the request
/// did not take effect and may be retried.
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // 08: connection exception; 57P01-03: admin shutdown, crash shutdown, cannot connect now;
            // 53300: too many connections; 40001/40P01: serialisation failure, deadlock (retry).
            code.starts_with("08")
                || matches!(
                    code.as_ref(),
                    "57P01" | "57P02" | "57P03" | "53300" | "40001" | "40P01"
                )
        }),
        _ => false,
    }
}

/// The name of the unique constraint `error` violated, if that is what it is.
pub fn unique_violation(error: &sqlx::Error) -> Option<&str> {
    match error {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("23505") => db.constraint(),
        _ => None,
    }
}

/// Versions of `migrator`'s migrations that are not applied (successfully) to the database yet.
///
/// # Errors
/// When the database cannot be queried.
pub async fn pending_migrations(
    pool: &PgPool,
    migrator: &Migrator,
) -> Result<Vec<i64>, sqlx::Error> {
    let table_exists: bool =
        sqlx::query_scalar("SELECT to_regclass('public._sqlx_migrations') IS NOT NULL")
            .fetch_one(pool)
            .await?;
    let applied: Vec<i64> = if table_exists {
        sqlx::query_scalar("SELECT version FROM public._sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await?
    } else {
        Vec::new()
    };
    Ok(migrator
        .iter()
        .filter(|migration| !migration.migration_type.is_down_migration())
        .map(|migration| migration.version)
        .filter(|version| !applied.contains(version))
        .collect())
}
