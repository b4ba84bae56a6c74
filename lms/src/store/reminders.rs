//! Reminders before expiry and the stored notifications.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

/// A stored notification.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NotificationRow {
    /// Notification id.
    pub id: Uuid,
    /// Recipient.
    pub user_id: Uuid,
    /// The certificate it is about.
    pub certificate_id: Option<Uuid>,
    /// `expiry_30d`, `expiry_7d` or `expiry_1d`.
    pub kind: String,
    /// The message (`type`, `text`, and details).
    pub message: serde_json::Value,
    /// When it was made.
    pub created_at: DateTime<Utc>,
}

/// Stores the expiry reminders that are due and not stored yet, and returns those it stored (so
/// each is delivered once, even with several sweepers). A certificate within 30, 7 or 1 days of
/// expiry gets the reminder of the tightest threshold it is in; none when the holder already holds
/// another certificate of the same certification valid beyond the 30 days.
pub async fn insert_due_reminders(pool: &PgPool) -> Result<Vec<NotificationRow>, sqlx::Error> {
    sqlx::query_as(
        "INSERT INTO lms.notifications (id, user_id, certificate_id, kind, message)
         SELECT gen_random_uuid(), d.user_id, d.id, 'expiry_' || d.days || 'd',
                jsonb_build_object(
                    'type', 'certificate.expiring',
                    'certificate_id', d.id,
                    'certification', d.certification,
                    'expires_at', to_char(d.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                    'days_before', d.days,
                    'text', format('Sertifikat %s Anda berakhir pada %s WIB. Ikuti kursus penyegaran agar tetap menerima panggilan darurat. (Your %s certificate expires on %s UTC.)',
                                   d.name, to_char(d.expires_at AT TIME ZONE 'Asia/Jakarta', 'DD-MM-YYYY HH24:MI'),
                                   d.certification, to_char(d.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI')))
         FROM (
             SELECT c.id, c.user_id, c.certification, c.expires_at, k.name,
                    CASE WHEN c.expires_at <= now() + interval '1 day' THEN 1
                         WHEN c.expires_at <= now() + interval '7 days' THEN 7
                         ELSE 30 END AS days
             FROM lms.certificates c JOIN lms.certifications k ON k.code = c.certification
             WHERE c.revoked_at IS NULL AND c.expiry_processed_at IS NULL AND c.issued_at <= now()
               AND c.expires_at > now() AND c.expires_at <= now() + interval '30 days'
               AND NOT EXISTS (
                   SELECT 1 FROM lms.certificates r
                   WHERE r.user_id = c.user_id AND r.certification = c.certification
                     AND r.revoked_at IS NULL AND r.issued_at <= now()
                     AND r.expires_at > now() + interval '30 days')
         ) d
         ON CONFLICT ON CONSTRAINT notifications_once DO NOTHING
         RETURNING id, user_id, certificate_id, kind, message, created_at",
    )
    .fetch_all(pool)
    .await
}

/// A user's notifications, newest first (at most 100).
pub async fn notifications_of(
    pool: &PgPool,
    user: Uuid,
) -> Result<Vec<NotificationRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, user_id, certificate_id, kind, message, created_at FROM lms.notifications
         WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT 100",
    )
    .bind(user)
    .fetch_all(pool)
    .await
}
