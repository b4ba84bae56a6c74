//! Responders: a volunteer's pending offers, accepting and declining one, a coordinator assigning a
//! volunteer directly, and a responder moving their assignment along.
//!
//! Accept is one transaction that locks the alert first: at most the responders the alert needs,
//! at most one active assignment per volunteer (a partial unique index backs it). Every change
//! here writes the alert row, so a wave planned before it never lands on top of it.

use chrono::{Duration, Utc};
use kreki_auth::CurrentUser;
use sqlx::PgConnection;
use uuid::Uuid;

use super::effects::Effect;
use super::{DispatchService, Wake};
use crate::domain::{
    AlertId, AlertStatus, AssignmentId, AssignmentStatus, OfferId, OfferStatus, ResponderRole,
    WithdrawReason,
};
use crate::error::{DispatchError, DispatchResult};
use crate::store;
use crate::timeline::{Event, Person};
use crate::views::{Alert, Assignment, Offer};

impl DispatchService {
    /// The volunteer's pending, unexpired offers.
    ///
    /// # Errors
    /// Database failures.
    pub async fn pending_offers(&self, volunteer: Uuid) -> DispatchResult<Vec<Offer>> {
        Ok(store::pending_offers(&self.pool, volunteer)
            .await?
            .into_iter()
            .map(Offer::from)
            .collect())
    }

    /// Accepts an offer, atomically: at most the responders the alert needs, at most one active
    /// assignment per volunteer. When the alert is covered, the other pending offers are withdrawn.
    ///
    /// # Errors
    /// 404 unknown offer; 403 someone else's; 409 `offer-expired`, `offer-<status>`,
    /// `alert-covered`, `alert-cancelled`/`alert-resolved`, `volunteer-busy`.
    pub async fn accept(
        &self,
        volunteer: &CurrentUser,
        offer_id: OfferId,
    ) -> DispatchResult<Assignment> {
        let started = std::time::Instant::now();
        let (alert_id, owner) = store::offer_owner(&self.pool, offer_id)
            .await?
            .ok_or(DispatchError::NotFound("offer"))?;
        if owner != volunteer.id.0 {
            return Err(DispatchError::Forbidden(
                "this offer was made to someone else",
            ));
        }
        let mut tx = self.pool.begin().await?;
        let alert = store::lock_alert(&mut tx, alert_id)
            .await?
            .ok_or(DispatchError::NotFound("alert"))?;
        let offer = store::lock_offer(&mut tx, offer_id)
            .await?
            .ok_or(DispatchError::NotFound("offer"))?;
        if matches!(alert.status, AlertStatus::Cancelled | AlertStatus::Resolved) {
            return Err(DispatchError::AlertClosed(alert.status));
        }
        let taken = store::active_roles(&mut tx, alert_id).await?;
        let active = i32::try_from(taken.len()).unwrap_or(i32::MAX);
        match offer.status {
            OfferStatus::Pending if offer.expires_at <= Utc::now() => {
                return Err(DispatchError::OfferExpired);
            }
            OfferStatus::Pending => {}
            OfferStatus::Expired => return Err(DispatchError::OfferExpired),
            OfferStatus::Withdrawn if active >= alert.responders_needed => {
                return Err(DispatchError::AlertCovered);
            }
            // A retry of an accept that went through (the answer was lost): the same assignment.
            OfferStatus::Accepted => {
                if let Some(row) = store::assignment_of_offer(&mut tx, offer_id).await? {
                    return Ok(row.into());
                }
                return Err(DispatchError::OfferNotPending(OfferStatus::Accepted));
            }
            // Withdrawn because they took another alert meanwhile: say that.
            OfferStatus::Withdrawn
                if store::has_active_assignment(&mut tx, volunteer.id.0).await? =>
            {
                return Err(DispatchError::VolunteerBusy);
            }
            other => return Err(DispatchError::OfferNotPending(other)),
        }
        if active >= alert.responders_needed {
            return Err(DispatchError::AlertCovered);
        }
        let role = self.next_role(alert.kind, &taken);
        let aed = self
            .aed_on_the_way(&mut tx, role, &alert, volunteer.id.0)
            .await?;
        let row = insert_assignment(
            &mut tx,
            &store::NewAssignment {
                alert_id,
                volunteer_id: volunteer.id.0,
                volunteer_name: &volunteer.name,
                offer_id: Some(offer_id),
                distance_m: Some(offer.distance_m),
                role,
                aed,
            },
        )
        .await?;
        store::answer_offer(&mut tx, offer_id, OfferStatus::Accepted, None).await?;
        let mut effects = vec![
            Effect::Busy(volunteer.id.0, true),
            Effect::AssignmentChanged(row.clone().into()),
        ];
        if active + 1 >= alert.responders_needed {
            effects.extend(cover(&mut tx, alert_id).await?);
        }
        // Written even when it stays `on_scene`: every accept moves the alert's version on.
        let status = if alert.status == AlertStatus::OnScene {
            AlertStatus::OnScene
        } else {
            AlertStatus::Assigned
        };
        store::set_alert_status(&mut tx, alert_id, status).await?;
        store::insert_event(
            &mut tx,
            alert_id,
            Some(volunteer.id.0),
            &Event::Accepted {
                assignment_id: row.id,
                offer_id,
                distance_m: offer.distance_m,
                volunteer: Person {
                    id: volunteer.id.0,
                    name: volunteer.name.clone(),
                },
            },
        )
        .await?;
        tx.commit().await?;
        metrics::histogram!("kreki_dispatch_accept_seconds")
            .record(started.elapsed().as_secs_f64());
        self.teams.forget_all();
        effects.push(Effect::AlertChanged(alert_id));
        effects.push(Effect::WithdrawOtherOffers(volunteer.id.0));
        self.apply(effects).await;
        Ok(row.into())
    }

    /// Declines an offer. When no offer of the alert's current wave is still pending, the next
    /// wave goes out now instead of at the deadline.
    ///
    /// # Errors
    /// 404 unknown offer; 403 someone else's; 409 when it is no longer pending.
    pub async fn decline(
        &self,
        volunteer: &CurrentUser,
        offer_id: OfferId,
        reason: Option<String>,
    ) -> DispatchResult<Offer> {
        let (alert_id, owner) = store::offer_owner(&self.pool, offer_id)
            .await?
            .ok_or(DispatchError::NotFound("offer"))?;
        if owner != volunteer.id.0 {
            return Err(DispatchError::Forbidden(
                "this offer was made to someone else",
            ));
        }
        let mut tx = self.pool.begin().await?;
        let alert = store::lock_alert(&mut tx, alert_id)
            .await?
            .ok_or(DispatchError::NotFound("alert"))?;
        let offer = store::lock_offer(&mut tx, offer_id)
            .await?
            .ok_or(DispatchError::NotFound("offer"))?;
        match offer.status {
            OfferStatus::Pending if offer.expires_at <= Utc::now() => {
                return Err(DispatchError::OfferExpired);
            }
            OfferStatus::Pending => {}
            OfferStatus::Expired => return Err(DispatchError::OfferExpired),
            other => return Err(DispatchError::OfferNotPending(other)),
        }
        store::answer_offer(&mut tx, offer_id, OfferStatus::Declined, reason.as_deref()).await?;
        store::insert_event(
            &mut tx,
            alert_id,
            Some(volunteer.id.0),
            &Event::OfferDeclined { offer_id, reason },
        )
        .await?;
        let mut effects = Vec::new();
        // A kind that replaces decliners asks for the replacement now (durably: an outbox row),
        // and this instance sends it before answering; otherwise a wave left without a live offer
        // ends now.
        let replace = self.kind_settings(alert.kind).policy.replace_on_decline;
        if replace {
            store::enqueue_replacement(&mut tx, alert_id).await?;
        } else if offer.wave == alert.wave && !store::has_live_offers(&mut tx, alert_id).await? {
            store::set_timer(&mut tx, alert_id, alert.wave, Utc::now()).await?;
            effects.push(Effect::Wake(Wake::Timers));
        }
        tx.commit().await?;
        if replace {
            if self.is_dispatching() {
                if let Err(error) = self.process_outbox(Some(alert_id)).await {
                    tracing::warn!(%error, alert_id = %alert_id, "replacement not sent now; the poller sends it");
                }
            } else {
                effects.push(Effect::Wake(Wake::Alert(alert_id)));
            }
        }
        self.apply(effects).await;
        let mut offer = Offer::from(offer);
        offer.status = OfferStatus::Declined;
        Ok(offer)
    }

    /// A coordinator assigns a volunteer directly (no offer needed). The volunteer must be on duty
    /// and free.
    ///
    /// # Errors
    /// 409 when the alert is closed or covered, or the volunteer is off duty or busy.
    pub async fn assign(
        &self,
        coordinator: &CurrentUser,
        id: AlertId,
        volunteer_id: Uuid,
    ) -> DispatchResult<Alert> {
        let mut tx = self.pool.begin().await?;
        let alert = self.lock_for_coordinator(&mut tx, coordinator, id).await?;
        if matches!(alert.status, AlertStatus::Cancelled | AlertStatus::Resolved) {
            return Err(DispatchError::AlertClosed(alert.status));
        }
        let volunteer = store::volunteer_in(&mut tx, volunteer_id)
            .await?
            .filter(|row| row.on_duty)
            .ok_or(DispatchError::VolunteerOffDuty)?;
        let taken = store::active_roles(&mut tx, id).await?;
        let active = i32::try_from(taken.len()).unwrap_or(i32::MAX);
        if active >= alert.responders_needed {
            return Err(DispatchError::AlertCovered);
        }
        let role = self.next_role(alert.kind, &taken);
        let aed = self
            .aed_on_the_way(&mut tx, role, &alert, volunteer_id)
            .await?;
        let row = insert_assignment(
            &mut tx,
            &store::NewAssignment {
                alert_id: id,
                volunteer_id,
                volunteer_name: &volunteer.name,
                offer_id: None,
                distance_m: None,
                role,
                aed,
            },
        )
        .await?;
        let mut effects = vec![
            Effect::Busy(volunteer_id, true),
            Effect::AssignmentChanged(row.clone().into()),
        ];
        if active + 1 >= alert.responders_needed {
            effects.extend(cover(&mut tx, id).await?);
        }
        // Written even when unchanged: every assignment moves the alert's version on.
        let status = if matches!(
            alert.status,
            AlertStatus::Dispatching | AlertStatus::Unmatched
        ) {
            AlertStatus::Assigned
        } else {
            alert.status
        };
        store::set_alert_status(&mut tx, id, status).await?;
        store::insert_event(
            &mut tx,
            id,
            Some(coordinator.id.0),
            &Event::Assigned {
                assignment_id: row.id,
                volunteer: Person {
                    id: volunteer_id,
                    name: volunteer.name,
                },
            },
        )
        .await?;
        tx.commit().await?;
        self.teams.forget_all();
        effects.push(Effect::AlertChanged(id));
        effects.push(Effect::WithdrawOtherOffers(volunteer_id));
        self.apply(effects).await;
        self.alert(id).await
    }

    /// Moves the volunteer's own assignment along `accepted -> en_route -> on_scene -> completed`
    /// (or `withdrawn` from any active status). Completing frees the volunteer after the rest
    /// period and resolves the alert when no assignment is active; withdrawing frees them and sends
    /// the alert's next wave when it lacks responders.
    ///
    /// # Errors
    /// 404 unknown; 403 someone else's; 409 for a transition that is not allowed.
    pub async fn set_assignment_status(
        &self,
        volunteer: &CurrentUser,
        assignment_id: AssignmentId,
        to: AssignmentStatus,
    ) -> DispatchResult<Assignment> {
        let current = store::lock_assignment(&mut *self.pool.acquire().await?, assignment_id)
            .await?
            .ok_or(DispatchError::NotFound("assignment"))?;
        if current.volunteer_id != volunteer.id.0 {
            return Err(DispatchError::Forbidden(
                "this assignment belongs to someone else",
            ));
        }
        let mut tx = self.pool.begin().await?;
        let alert = store::lock_alert(&mut tx, current.alert_id)
            .await?
            .ok_or(DispatchError::NotFound("alert"))?;
        let current = store::lock_assignment(&mut tx, assignment_id)
            .await?
            .ok_or(DispatchError::NotFound("assignment"))?;
        let from = current.status;
        if from == to {
            return Ok(current.into());
        }
        if !transition_allowed(from, to) {
            return Err(DispatchError::InvalidTransition { from, to });
        }
        let row = store::set_assignment_status(&mut tx, assignment_id, to).await?;
        let mut effects = vec![Effect::AssignmentChanged(row.clone().into())];
        match to {
            AssignmentStatus::OnScene if alert.status == AlertStatus::Assigned => {
                store::set_alert_status(&mut tx, alert.id, AlertStatus::OnScene).await?;
            }
            AssignmentStatus::Completed => {
                let rest_until = Utc::now()
                    + Duration::seconds(i64::try_from(self.config.rest_period_s).unwrap_or(300));
                store::set_rest_until(&mut tx, volunteer.id.0, rest_until).await?;
                effects.push(Effect::Busy(volunteer.id.0, false));
                effects.push(Effect::Rest(volunteer.id.0, rest_until));
                if store::active_count(&mut tx, alert.id).await? == 0 && alert.status.is_open() {
                    effects.extend(cover(&mut tx, alert.id).await?);
                    store::set_alert_status(&mut tx, alert.id, AlertStatus::Resolved).await?;
                    store::insert_event(&mut tx, alert.id, Some(volunteer.id.0), &Event::Resolved)
                        .await?;
                }
            }
            AssignmentStatus::Withdrawn => {
                effects.push(Effect::Busy(volunteer.id.0, false));
                let active = store::active_count(&mut tx, alert.id).await?;
                if active < alert.responders_needed && alert.status.is_open() {
                    if active == 0 {
                        store::set_alert_status(&mut tx, alert.id, AlertStatus::Dispatching)
                            .await?;
                    }
                    store::enqueue_wave(&mut tx, alert.id).await?;
                    effects.push(Effect::Wake(Wake::Alert(alert.id)));
                }
            }
            _ => {}
        }
        if !to.is_active() {
            store::schedule_checkins(&mut tx, alert.id, self.config.checkin_after_s).await?;
        }
        store::insert_event(
            &mut tx,
            alert.id,
            Some(volunteer.id.0),
            &Event::AssignmentStatus {
                assignment_id,
                from,
                to,
            },
        )
        .await?;
        tx.commit().await?;
        self.teams.forget_all();
        effects.push(Effect::AlertChanged(alert.id));
        self.apply(effects).await;
        Ok(row.into())
    }

    /// For the `aed` role: the available AED that makes the shortest walk from where the
    /// volunteer is (the matcher's position; the alert's when unknown) to the alert, within
    /// `dispatch.aed_radius_m`, and that walk in metres. `None` for other roles, or when no AED
    /// is available now: the responder then goes straight to the alert.
    async fn aed_on_the_way(
        &self,
        conn: &mut PgConnection,
        role: Option<ResponderRole>,
        alert: &store::AlertRow,
        volunteer: Uuid,
    ) -> DispatchResult<Option<(Uuid, f64)>> {
        if role != Some(ResponderRole::Aed) {
            return Ok(None);
        }
        let at = crate::geo::LatLng::new(alert.lat, alert.lng)
            .map_err(|error| DispatchError::Internal(format!("stored alert position: {error}")))?;
        let from = self.index.position(volunteer).unwrap_or(at);
        let route = super::aeds::aed_route(
            conn,
            at,
            from,
            Utc::now(),
            f64::from(self.config.aed_radius_m),
        )
        .await?;
        Ok(route.map(|route| (route.aed.id.0, route.distance_via_m)))
    }

    /// The role the next responder of an alert of `kind` takes: the first of the kind's roles
    /// that no active responder holds (a role freed by a withdrawal goes to the next accept).
    fn next_role(
        &self,
        kind: crate::domain::AlertKind,
        taken: &[Option<ResponderRole>],
    ) -> Option<ResponderRole> {
        self.kind_settings(kind)
            .roles
            .into_iter()
            .find(|role| !taken.contains(&Some(*role)))
    }
}

/// The moves an assignment may make: forward along `accepted -> en_route -> on_scene ->
/// completed`, or to `withdrawn` while active; never out of `completed` or `withdrawn`.
fn transition_allowed(from: AssignmentStatus, to: AssignmentStatus) -> bool {
    match from {
        AssignmentStatus::Accepted => true,
        AssignmentStatus::EnRoute => to != AssignmentStatus::Accepted,
        AssignmentStatus::OnScene => {
            matches!(
                to,
                AssignmentStatus::Completed | AssignmentStatus::Withdrawn
            )
        }
        AssignmentStatus::Completed | AssignmentStatus::Withdrawn => false,
    }
}

/// Withdraws the pending offers of a covered alert and stops its timers.
async fn cover(conn: &mut PgConnection, id: AlertId) -> DispatchResult<Vec<Effect>> {
    store::cancel_timers(conn, id).await?;
    Ok(
        store::close_pending_offers(conn, id, OfferStatus::Withdrawn)
            .await?
            .into_iter()
            .map(|(offer_id, volunteer)| Effect::Withdrawn {
                volunteer,
                offer_id,
                alert_id: id,
                reason: WithdrawReason::Covered,
            })
            .collect(),
    )
}

/// Inserts an assignment; a volunteer who holds one already is [`DispatchError::VolunteerBusy`].
async fn insert_assignment(
    conn: &mut PgConnection,
    new: &store::NewAssignment<'_>,
) -> DispatchResult<store::AssignmentRow> {
    store::insert_assignment(conn, new).await.map_err(|error| {
        if kreki_platform::db::unique_violation(&error)
            == Some("assignments_one_active_per_volunteer")
        {
            DispatchError::VolunteerBusy
        } else {
            DispatchError::Database(error)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments_only_move_forward_or_withdraw() {
        use AssignmentStatus::{Accepted, Completed, EnRoute, OnScene, Withdrawn};
        assert!(transition_allowed(Accepted, OnScene));
        assert!(transition_allowed(EnRoute, Completed));
        assert!(!transition_allowed(EnRoute, Accepted));
        assert!(!transition_allowed(OnScene, EnRoute));
        assert!(transition_allowed(OnScene, Withdrawn));
        assert!(!transition_allowed(Completed, Withdrawn));
        assert!(!transition_allowed(Withdrawn, Accepted));
    }
}
