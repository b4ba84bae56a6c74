//! Aftercare check-ins: some time after a volunteer's assignment ends (`dispatch.checkin_after_s`),
//! they are asked how they are. Scheduling happens inside the transaction that ends the assignment
//! ([`crate::store::schedule_checkins`]); delivery is [`DispatchService::deliver_due_checkins`],
//! run by the aftercare loop ([`crate::aftercare`]); the answer goes to coordinators, flagged when
//! it asks for support.

use kreki_auth::{CurrentUser, Role};
use uuid::Uuid;

use super::DispatchService;
use crate::domain::CheckinId;
use crate::domain::checkins::CheckinAnswer;
use crate::error::{DispatchError, DispatchResult};
use crate::messages::Message;
use crate::notify::Audience;
use crate::store;
use crate::views::{AnsweredCheckin, Checkin};

/// Most check-ins a volunteer's list shows.
const OWN_LIMIT: i64 = 100;

/// Most answers the coordinators' list shows.
const ANSWERS_LIMIT: i64 = 500;

impl DispatchService {
    /// The volunteer's check-ins that are due, answered or not, newest first.
    ///
    /// # Errors
    /// Database failures.
    pub async fn due_checkins(&self, volunteer: Uuid) -> DispatchResult<Vec<Checkin>> {
        Ok(store::due_checkins_of(&self.pool, volunteer, OWN_LIMIT)
            .await?
            .iter()
            .map(Checkin::from)
            .collect())
    }

    /// Answers the volunteer's own check-in, once; coordinators get `checkin.answered` (with
    /// `support_requested` when they asked for contact or feel bad).
    ///
    /// # Errors
    /// 404 unknown; 403 someone else's; 409 `checkin-answered` when answered already.
    pub async fn answer_checkin(
        &self,
        volunteer: &CurrentUser,
        id: CheckinId,
        answer: &CheckinAnswer,
    ) -> DispatchResult<Checkin> {
        let mut tx = self.pool.begin().await?;
        let row = store::lock_checkin(&mut tx, id)
            .await?
            .ok_or(DispatchError::NotFound("check-in"))?;
        if row.volunteer_id != volunteer.id.0 {
            return Err(DispatchError::Forbidden(
                "this check-in was sent to someone else",
            ));
        }
        if row.answered_at.is_some() {
            return Err(DispatchError::CheckinAnswered);
        }
        let row = store::answer_checkin(&mut tx, id, answer).await?;
        tx.commit().await?;
        if let Some(answered) = AnsweredCheckin::from_row(&row) {
            if answered.support_requested {
                tracing::info!(checkin_id = %id, alert_id = %row.alert_id, "a volunteer asked for support");
            }
            self.notifier.publish(
                &[Audience::Role(Role::Coordinator)],
                &Message::CheckinAnswered {
                    checkin: Box::new(answered),
                },
            );
        }
        Ok(Checkin::from(&row))
    }

    /// Answered check-ins for coordinators, newest first; `support_only` keeps those that asked
    /// for support.
    ///
    /// # Errors
    /// Database failures.
    pub async fn answered_checkins(
        &self,
        support_only: bool,
    ) -> DispatchResult<Vec<AnsweredCheckin>> {
        Ok(
            store::answered_checkins(&self.pool, support_only, ANSWERS_LIMIT)
                .await?
                .iter()
                .filter_map(AnsweredCheckin::from_row)
                .collect(),
        )
    }

    /// Claims at most `limit` due check-ins (rows other instances are claiming are skipped) and
    /// tells each volunteer (`checkin`). Answers how many were claimed: the batch was full when it
    /// equals `limit`.
    ///
    /// # Errors
    /// Database failures (nothing was claimed then).
    pub async fn deliver_due_checkins(&self, limit: u32) -> DispatchResult<usize> {
        let due = store::claim_due_checkins(&self.pool, i64::from(limit)).await?;
        for row in &due {
            self.notifier.publish(
                &[Audience::User(row.volunteer_id)],
                &Message::CheckinDue {
                    checkin: Box::new(Checkin::from(row)),
                },
            );
        }
        if !due.is_empty() {
            metrics::counter!("kreki_dispatch_checkins_sent_total").increment(due.len() as u64);
        }
        Ok(due.len())
    }
}
