//! The certification catalogue and the learners' names (as their access tokens give them).

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// A certification of the catalogue.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CertificationRow {
    /// Its code (`bls`).
    pub code: String,
    /// Display name.
    pub name: String,
    /// How long a certificate of it is valid, in days.
    pub validity_days: i32,
}

/// The catalogue, by code.
pub async fn certifications(pool: &PgPool) -> Result<Vec<CertificationRow>, sqlx::Error> {
    sqlx::query_as("SELECT code, name, validity_days FROM lms.certifications ORDER BY code")
        .fetch_all(pool)
        .await
}

/// One certification.
pub async fn certification(
    conn: &mut PgConnection,
    code: &str,
) -> Result<Option<CertificationRow>, sqlx::Error> {
    sqlx::query_as("SELECT code, name, validity_days FROM lms.certifications WHERE code = $1")
        .bind(code)
        .fetch_optional(conn)
        .await
}

/// Adds a certification. A taken code is a unique violation of `certifications_pkey`.
pub async fn insert_certification(
    pool: &PgPool,
    code: &str,
    name: &str,
    validity_days: i32,
) -> Result<CertificationRow, sqlx::Error> {
    sqlx::query_as(
        "INSERT INTO lms.certifications (code, name, validity_days) VALUES ($1, $2, $3)
         RETURNING code, name, validity_days",
    )
    .bind(code)
    .bind(name)
    .bind(validity_days)
    .fetch_one(pool)
    .await
}

/// Remembers the name `user` goes by (from their access token).
pub async fn upsert_learner(
    conn: &mut PgConnection,
    user: Uuid,
    name: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO lms.learners (user_id, name) VALUES ($1, $2)
         ON CONFLICT (user_id) DO UPDATE SET name = EXCLUDED.name, updated_at = now()
         WHERE lms.learners.name IS DISTINCT FROM EXCLUDED.name",
    )
    .bind(user)
    .bind(name)
    .execute(conn)
    .await?;
    Ok(())
}

/// The name `user` last used in the LMS.
pub async fn learner_name(
    conn: &mut PgConnection,
    user: Uuid,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT name FROM lms.learners WHERE user_id = $1")
        .bind(user)
        .fetch_optional(conn)
        .await
}
