//! A coordinator resolves an alert and records how it ended (`POST /v1/alerts/{id}/resolve`).
//!
//! An open alert closes: pending offers are withdrawn (reason `resolved`), active assignments
//! complete (their volunteers are free after the rest period), timers stop. An alert that
//! resolved by itself (every responder completed) just gets its outcome; recording it again
//! replaces it, and the timeline keeps each record. Either way a `resolved` entry carries the
//! outcome, everyone concerned gets `alert.updated` with it (the volunteers who responded
//! included), and every assignment that ended gets its aftercare check-in.

use chrono::{Duration, Utc};
use kreki_auth::CurrentUser;

use super::DispatchService;
use super::effects::Effect;
use crate::domain::{AlertId, AlertStatus, AssignmentStatus, OfferStatus, Outcome, WithdrawReason};
use crate::error::{DispatchError, DispatchResult};
use crate::store;
use crate::timeline::Event;
use crate::views::Alert;

/// Longest note of an outcome, in characters.
pub const MAX_OUTCOME_NOTE_CHARS: usize = 1000;

impl DispatchService {
    /// Resolves alert `id` with `outcome` (the route checked the coordinator role).
    ///
    /// # Errors
    /// 404 unknown alert; 409 `alert-cancelled` for a cancelled one.
    pub async fn resolve(
        &self,
        coordinator: &CurrentUser,
        id: AlertId,
        outcome: Outcome,
        note: Option<String>,
    ) -> DispatchResult<Alert> {
        let mut tx = self.pool.begin().await?;
        let alert = self.lock_for_coordinator(&mut tx, coordinator, id).await?;
        if alert.status == AlertStatus::Cancelled {
            return Err(DispatchError::AlertClosed(alert.status));
        }
        let mut effects = Vec::new();
        if alert.status.is_open() {
            for (offer_id, volunteer) in
                store::close_pending_offers(&mut tx, id, OfferStatus::Withdrawn).await?
            {
                effects.push(Effect::Withdrawn {
                    volunteer,
                    offer_id,
                    alert_id: id,
                    reason: WithdrawReason::Resolved,
                });
            }
            let rest_until = Utc::now()
                + Duration::seconds(i64::try_from(self.config.rest_period_s).unwrap_or(300));
            for assignment in store::assignments_of(&mut tx, id).await? {
                if assignment.status.is_active() {
                    let row = store::set_assignment_status(
                        &mut tx,
                        assignment.id,
                        AssignmentStatus::Completed,
                    )
                    .await?;
                    store::set_rest_until(&mut tx, row.volunteer_id, rest_until).await?;
                    effects.push(Effect::Busy(row.volunteer_id, false));
                    effects.push(Effect::Rest(row.volunteer_id, rest_until));
                    effects.push(Effect::AssignmentChanged(row.into()));
                }
            }
            store::cancel_timers(&mut tx, id).await?;
            store::set_alert_status(&mut tx, id, AlertStatus::Resolved).await?;
        }
        // Closed (from triage, usually as a false alarm, or at any point): nothing is left for an
        // alarm to call for.
        let acknowledged =
            store::escalations::close_all_of_alert(&mut tx, id, coordinator.id.0).await?;
        effects.push(Effect::EscalationsAcknowledged(acknowledged));
        store::record_outcome(&mut tx, id, outcome, note.as_deref(), coordinator.id.0).await?;
        store::insert_event(
            &mut tx,
            id,
            Some(coordinator.id.0),
            &Event::ResolvedWithOutcome { outcome, note },
        )
        .await?;
        store::schedule_checkins(&mut tx, id, self.config.checkin_after_s).await?;
        tx.commit().await?;
        effects.push(Effect::AlertChanged(id));
        self.apply(effects).await;
        self.alert(id).await
    }
}
