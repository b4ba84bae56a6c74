//! Expiry and reminders: the sweep marks expired certificates (telling dispatch's listener) and
//! stores and delivers the reminders before expiry; the learner's stored notifications.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::LmsResult;
use crate::store::{self};

use super::LmsService;

/// Certificates the sweep claims per statement.
const SWEEP_BATCH: i64 = 500;

/// A stored notification.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Notification {
    /// Notification id.
    pub id: Uuid,
    /// `expiry_30d`, `expiry_7d` or `expiry_1d`.
    pub kind: String,
    /// The certificate it is about.
    pub certificate_id: Option<Uuid>,
    /// The message as delivered live: `type`, `text` (Bahasa Indonesia, then English) and details.
    #[schema(value_type = Object)]
    pub message: serde_json::Value,
    /// When it was made (UTC).
    pub created_at: DateTime<Utc>,
}

impl From<store::NotificationRow> for Notification {
    fn from(row: store::NotificationRow) -> Self {
        Self {
            id: row.id,
            kind: row.kind,
            certificate_id: row.certificate_id,
            message: row.message,
            created_at: row.created_at,
        }
    }
}

/// What one sweep did.
#[derive(Debug, Clone, Default)]
pub struct Sweep {
    /// Certificates found expired (and their holders' listeners called).
    pub expired: usize,
    /// Reminders stored (and delivered live).
    pub reminders: usize,
    /// The next expiry not acted on yet.
    pub next_expiry: Option<DateTime<Utc>>,
}

impl LmsService {
    /// The user's stored notifications, newest first (at most 100).
    ///
    /// # Errors
    /// Database errors.
    pub async fn notifications(&self, user: Uuid) -> LmsResult<Vec<Notification>> {
        Ok(store::notifications_of(&self.pool, user)
            .await?
            .into_iter()
            .map(Notification::from)
            .collect())
    }

    /// One pass of the sweep: acts on every due expiry (marks it processed, then tells the
    /// listener), stores and delivers due reminders, and says when the next expiry is.
    ///
    /// # Errors
    /// Database errors; what was committed before the error stays done.
    pub async fn sweep_once(&self) -> LmsResult<Sweep> {
        let mut sweep = Sweep::default();
        loop {
            let mut tx = self.pool.begin().await?;
            let batch = store::claim_expired(&mut tx, SWEEP_BATCH).await?;
            let mut users = HashSet::new();
            for (certificate, user) in &batch {
                tracing::info!(%certificate, %user, "certificate expired");
                users.insert(*user);
            }
            let announced: Vec<Uuid> = users.iter().copied().collect();
            store::announce(&mut tx, &announced).await?;
            tx.commit().await?;
            for user in users {
                self.listener.changed(user);
            }
            sweep.expired += batch.len();
            metrics::counter!("lms_certificates_expired_total").increment(batch.len() as u64);
            if i64::try_from(batch.len()).unwrap_or(i64::MAX) < SWEEP_BATCH {
                break;
            }
        }
        for reminder in store::insert_due_reminders(&self.pool).await? {
            self.notifier
                .notify_user(reminder.user_id, reminder.message);
            metrics::counter!("lms_reminders_sent_total").increment(1);
            sweep.reminders += 1;
        }
        sweep.next_expiry = store::next_expiry(&self.pool).await?;
        Ok(sweep)
    }
}
