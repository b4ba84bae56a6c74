//! Which certifications a volunteer holds, read through a port so the LMS can supply its
//! certificates later; until then [`PgCertificationSource`] reads `dispatch.granted_certifications`
//! (written by tests and `kreki volunteer grant-cert`).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use sqlx::PgPool;
use uuid::Uuid;

/// Where valid (unexpired, unrevoked) certification codes of volunteers come from.
pub trait CertificationSource: Send + Sync + 'static {
    /// The codes `user` holds now (`bls`, `first_aid`, ...).
    fn valid_for(&self, user: Uuid) -> BoxFuture<'_, anyhow::Result<Vec<String>>>;
    /// Every user's valid codes (used to rebuild the matcher at start).
    fn all_valid(&self) -> BoxFuture<'_, anyhow::Result<HashMap<Uuid, Vec<String>>>>;
}

/// Certifications granted in dispatch's own table.
#[derive(Debug, Clone)]
pub struct PgCertificationSource {
    pool: PgPool,
}

impl PgCertificationSource {
    /// Reads from `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

impl CertificationSource for PgCertificationSource {
    fn valid_for(&self, user: Uuid) -> BoxFuture<'_, anyhow::Result<Vec<String>>> {
        Box::pin(async move {
            let codes = sqlx::query_scalar(
                "SELECT code FROM dispatch.granted_certifications
                 WHERE user_id = $1 AND (expires_at IS NULL OR expires_at > now()) ORDER BY code",
            )
            .bind(user)
            .fetch_all(&self.pool)
            .await?;
            Ok(codes)
        })
    }

    fn all_valid(&self) -> BoxFuture<'_, anyhow::Result<HashMap<Uuid, Vec<String>>>> {
        Box::pin(async move {
            let rows: Vec<(Uuid, String)> = sqlx::query_as(
                "SELECT user_id, code FROM dispatch.granted_certifications
                 WHERE expires_at IS NULL OR expires_at > now()",
            )
            .fetch_all(&self.pool)
            .await?;
            let mut map: HashMap<Uuid, Vec<String>> = HashMap::new();
            for (user, code) in rows {
                map.entry(user).or_default().push(code);
            }
            Ok(map)
        })
    }
}

/// Grants (or renews) certification `code` to `user` until `expires_at` (never expiring when
/// `None`). Used by tests and the CLI until the LMS issues certificates.
///
/// # Errors
/// Database errors.
pub async fn grant(
    pool: &PgPool,
    user: Uuid,
    code: &str,
    expires_at: Option<DateTime<Utc>>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO dispatch.granted_certifications (user_id, code, expires_at) VALUES ($1, $2, $3)
         ON CONFLICT (user_id, code) DO UPDATE SET expires_at = EXCLUDED.expires_at, granted_at = now()",
    )
    .bind(user)
    .bind(code)
    .bind(expires_at)
    .execute(pool)
    .await?;
    Ok(())
}
