//! Certificates: issued, listed, verified by code, revoked, and the changes of who holds what,
//! announced to dispatch on [`CHANGES_CHANNEL`]; the expiry sweep's claims.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// A certificate as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CertificateRow {
    /// Certificate id.
    pub id: Uuid,
    /// Holder.
    pub user_id: Uuid,
    /// Certification code.
    pub certification: String,
    /// Holder's name at issue.
    pub holder_name: String,
    /// Start of validity.
    pub issued_at: DateTime<Utc>,
    /// End of validity.
    pub expires_at: DateTime<Utc>,
    /// Public verification code.
    pub code: String,
    /// `course` or `external`.
    pub source: String,
    /// The course that issued it.
    pub course_id: Option<Uuid>,
    /// Trainer who recorded it (external).
    pub recorded_by: Option<Uuid>,
    /// Evidence seen (external).
    pub evidence: Option<String>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Why.
    pub revoked_reason: Option<String>,
}

macro_rules! certificate_columns {
    () => {
        "id, user_id, certification, holder_name, issued_at, expires_at, code, source, course_id,
         recorded_by, evidence, revoked_at, revoked_reason"
    };
}

/// What a new certificate is made of.
#[derive(Debug, Clone)]
pub struct NewCertificate<'a> {
    /// Holder.
    pub user_id: Uuid,
    /// Certification code.
    pub certification: &'a str,
    /// Holder's name.
    pub holder_name: &'a str,
    /// Start of validity; `None` = now (database time).
    pub issued_at: Option<DateTime<Utc>>,
    /// End of validity; `None` = start + the certification's validity days.
    pub expires_at: Option<DateTime<Utc>>,
    /// `course` or `external`.
    pub source: &'a str,
    /// Issuing course.
    pub course_id: Option<Uuid>,
    /// Recording trainer.
    pub recorded_by: Option<Uuid>,
    /// Evidence.
    pub evidence: Option<&'a str>,
}

/// Inserts a certificate with a fresh verification code; the default expiry comes from the
/// certification's validity days.
pub async fn insert_certificate(
    conn: &mut PgConnection,
    new: &NewCertificate<'_>,
) -> Result<CertificateRow, sqlx::Error> {
    sqlx::query_as(concat!(
        "INSERT INTO lms.certificates (id, user_id, certification, holder_name, issued_at, expires_at,
             code, source, course_id, recorded_by, evidence)
         SELECT $1, $2, k.code, $4, coalesce($5, now()),
             coalesce($6, coalesce($5, now()) + make_interval(days => k.validity_days)),
             $7, $8, $9, $10, $11
         FROM lms.certifications k WHERE k.code = $3
         RETURNING ",
        certificate_columns!()
    ))
    .bind(Uuid::now_v7())
    .bind(new.user_id)
    .bind(new.certification)
    .bind(new.holder_name)
    .bind(new.issued_at)
    .bind(new.expires_at)
    .bind(crate::domain::new_verification_code())
    .bind(new.source)
    .bind(new.course_id)
    .bind(new.recorded_by)
    .bind(new.evidence)
    .fetch_one(conn)
    .await
}

/// A user's certificates, newest first (at most 200).
pub async fn certificates_of(
    pool: &PgPool,
    user: Uuid,
) -> Result<Vec<CertificateRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        certificate_columns!(),
        " FROM lms.certificates WHERE user_id = $1 ORDER BY issued_at DESC, id DESC LIMIT 200"
    ))
    .bind(user)
    .fetch_all(pool)
    .await
}

/// One certificate.
pub async fn certificate(pool: &PgPool, id: Uuid) -> Result<Option<CertificateRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        certificate_columns!(),
        " FROM lms.certificates WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// The certificate with this verification code.
pub async fn certificate_by_code(
    pool: &PgPool,
    code: &str,
) -> Result<Option<CertificateRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        certificate_columns!(),
        " FROM lms.certificates WHERE code = $1"
    ))
    .bind(code)
    .fetch_optional(pool)
    .await
}

/// Revokes a certificate that is not revoked yet; `None` when it is unknown or revoked already.
pub async fn revoke(
    conn: &mut PgConnection,
    id: Uuid,
    by: Uuid,
    reason: &str,
) -> Result<Option<CertificateRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "UPDATE lms.certificates SET revoked_at = now(), revoked_by = $2, revoked_reason = $3
         WHERE id = $1 AND revoked_at IS NULL RETURNING ",
        certificate_columns!()
    ))
    .bind(id)
    .bind(by)
    .bind(reason)
    .fetch_optional(conn)
    .await
}

/// The PostgreSQL channel on which every change of a user's valid certifications is announced,
/// with the user id as payload. Sent inside the changing transaction, so it goes out on commit and
/// never for a change that was rolled back.
pub const CHANGES_CHANNEL: &str = "kreki_lms_certifications";

/// Announces on [`CHANGES_CHANNEL`] that these users' valid certifications may have changed.
pub async fn announce(conn: &mut PgConnection, users: &[Uuid]) -> Result<(), sqlx::Error> {
    sqlx::query(
        "SELECT pg_notify('kreki_lms_certifications', u::text) FROM unnest($1::uuid[]) AS u",
    )
    .bind(users)
    .execute(conn)
    .await?;
    Ok(())
}

/// Codes of the certifications `user` holds a valid certificate of now (issued, not expired, not
/// revoked), sorted. Uses `certificates_user_idx`; a person holds a handful of certificates.
pub async fn valid_codes(pool: &PgPool, user: Uuid) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT DISTINCT certification FROM lms.certificates
         WHERE user_id = $1 AND revoked_at IS NULL AND issued_at <= now() AND expires_at > now()
         ORDER BY certification",
    )
    .bind(user)
    .fetch_all(pool)
    .await
}

/// Every (user, code) pair with a valid certificate now.
pub async fn all_valid_codes(pool: &PgPool) -> Result<Vec<(Uuid, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT DISTINCT user_id, certification FROM lms.certificates
         WHERE revoked_at IS NULL AND issued_at <= now() AND expires_at > now()
         ORDER BY user_id, certification",
    )
    .fetch_all(pool)
    .await
}

/// Claims up to `limit` certificates whose expiry is due and not acted on yet, marks them processed
/// and returns their holders. One statement; `SKIP LOCKED` lets several instances sweep at once
/// without acting twice. Uses `certificates_expiry_due_idx`.
pub async fn claim_expired(
    conn: &mut PgConnection,
    limit: i64,
) -> Result<Vec<(Uuid, Uuid)>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE lms.certificates SET expiry_processed_at = now()
         WHERE id IN (
             SELECT id FROM lms.certificates
             WHERE expiry_processed_at IS NULL AND revoked_at IS NULL AND expires_at <= now()
             ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED)
         RETURNING id, user_id",
    )
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// The earliest expiry not acted on yet, if any.
pub async fn next_expiry(pool: &PgPool) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT min(expires_at) FROM lms.certificates WHERE expiry_processed_at IS NULL AND revoked_at IS NULL",
    )
    .fetch_one(pool)
    .await
}
