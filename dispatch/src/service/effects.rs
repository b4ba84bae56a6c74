//! What happens after a commit: the messages people get, the matcher's view of busy and resting
//! volunteers, wake-ups for the dispatcher, and the follow-up of a volunteer taking an alert
//! (their other offers go). Collected as [`Effect`]s while a change is made and applied once it
//! committed, so nobody hears about a change that did not happen.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};
use kreki_auth::Role;
use uuid::Uuid;

use super::{DispatchService, Wake};
use crate::domain::{AlertId, OfferId, WithdrawReason};
use crate::messages::Message;
use crate::notify::Audience;
use crate::store;
use crate::views::{Alert, Assignment, Offer};

/// Something to do once a transaction committed.
#[derive(Debug)]
pub(crate) enum Effect {
    /// Send this offer to its volunteer.
    Offer(Uuid, Offer),
    /// Tell a volunteer their offer was taken back.
    Withdrawn {
        volunteer: Uuid,
        offer_id: OfferId,
        alert_id: AlertId,
        reason: WithdrawReason,
    },
    /// The alert changed: read it once and tell everyone concerned (`alert.updated`).
    AlertChanged(AlertId),
    /// The alert changed and this is how it is now: tell everyone concerned without reading it.
    AlertIs(Box<Alert>),
    /// Every wave went out and nobody took the alert.
    Unmatched(AlertId),
    /// The alert's status raised an escalation (unmatched, triage): tell the coordinators.
    Escalated(AlertId),
    /// Escalations a coordinator's action acknowledged (a release, a redispatch, a close): their
    /// screens drop them.
    EscalationsAcknowledged(Vec<crate::store::escalations::EscalationRow>),
    /// An assignment changed: tell its volunteer and coordinators.
    AssignmentChanged(Assignment),
    /// The volunteer became busy or free (the matcher skips busy volunteers).
    Busy(Uuid, bool),
    /// The volunteer rests until then (no offers meanwhile).
    Rest(Uuid, DateTime<Utc>),
    /// Work for the dispatcher.
    Wake(Wake),
    /// The volunteer took an assignment: their other pending offers go, and alerts left without a
    /// live offer move to their next wave now.
    WithdrawOtherOffers(Uuid),
}

impl DispatchService {
    /// Applies `effects` in order (a follow-up's own effects after them).
    pub(crate) async fn apply(&self, effects: Vec<Effect>) {
        let mut alerts_changed = Vec::new();
        let mut queue: VecDeque<Effect> = effects.into();
        while let Some(effect) = queue.pop_front() {
            match effect {
                Effect::Offer(volunteer, offer) => self.notifier.publish(
                    &[Audience::User(volunteer)],
                    &Message::Offer {
                        offer: Box::new(offer),
                    },
                ),
                Effect::Withdrawn {
                    volunteer,
                    offer_id,
                    alert_id,
                    reason,
                } => self.notifier.publish(
                    &[Audience::User(volunteer)],
                    &Message::OfferWithdrawn {
                        offer_id,
                        alert_id,
                        reason,
                    },
                ),
                Effect::AlertChanged(id) => {
                    if !alerts_changed.contains(&id) {
                        alerts_changed.push(id);
                    }
                }
                Effect::AlertIs(alert) => self.publish_alert(*alert),
                Effect::Unmatched(id) => {
                    metrics::counter!("kreki_dispatch_unmatched_total").increment(1);
                    tracing::warn!(alert_id = %id, "alert unmatched after every wave");
                    queue.push_back(Effect::Escalated(id));
                }
                Effect::Escalated(id) => {
                    match store::escalations::open_of_alert(&self.pool, id).await {
                        Ok(rows) => {
                            for row in rows {
                                self.announce_escalation(row.into());
                            }
                        }
                        Err(error) => {
                            // The escalation is stored; dashboards list it when they next read.
                            tracing::warn!(alert_id = %id, %error, "escalation not announced");
                        }
                    }
                }
                Effect::EscalationsAcknowledged(rows) => {
                    for row in rows {
                        self.announce_escalation(row.into());
                    }
                }
                Effect::AssignmentChanged(assignment) => {
                    let to = [
                        Audience::User(assignment.volunteer.id),
                        Audience::Role(Role::Coordinator),
                    ];
                    self.notifier.publish(
                        &to,
                        &Message::AssignmentUpdated {
                            assignment: Box::new(assignment),
                        },
                    );
                }
                Effect::Busy(volunteer, busy) => {
                    self.index.set_busy(volunteer, busy);
                    self.sync.changed();
                }
                Effect::Rest(volunteer, until) => {
                    self.index.set_rest_until(volunteer, until);
                    self.sync.changed();
                }
                Effect::Wake(wake) => self.wake_dispatcher(wake),
                Effect::WithdrawOtherOffers(volunteer) => {
                    match self.withdraw_other_offers(volunteer).await {
                        Ok(more) => queue.extend(more),
                        // Best effort: the offers still expire at their deadline.
                        Err(error) => {
                            tracing::warn!(%volunteer, %error, "other offers not withdrawn")
                        }
                    }
                }
            }
        }
        for id in alerts_changed {
            match self.alert(id).await {
                Ok(alert) => self.publish_alert(alert),
                Err(error) => tracing::warn!(alert_id = %id, %error, "alert.updated not sent"),
            }
        }
    }

    /// Hands `wake` to the dispatcher; when its queue is full (or it is not running), the poller
    /// finds the work within a poll interval.
    pub(crate) fn wake_dispatcher(&self, wake: Wake) {
        if self.wake.try_send(wake).is_err() {
            tracing::debug!("dispatcher wake queue full; the poller takes over");
        }
    }

    /// Withdraws a newly busy volunteer's other pending offers and, for each alert left with no
    /// live offer, moves its wave deadline to now (one statement; see
    /// [`store::withdraw_offers_of_volunteer`]).
    async fn withdraw_other_offers(
        &self,
        volunteer: Uuid,
    ) -> crate::error::DispatchResult<Vec<Effect>> {
        let withdrawn = store::withdraw_offers_of_volunteer(&self.pool, volunteer).await?;
        let mut effects: Vec<Effect> = withdrawn
            .offers
            .into_iter()
            .map(|(offer_id, alert_id)| Effect::Withdrawn {
                volunteer,
                offer_id,
                alert_id,
                reason: WithdrawReason::Busy,
            })
            .collect();
        if withdrawn.deadlines_moved {
            effects.push(Effect::Wake(Wake::Timers));
        }
        effects.extend(
            withdrawn
                .replacing
                .into_iter()
                .map(|alert| Effect::Wake(Wake::Alert(alert))),
        );
        Ok(effects)
    }

    /// `alert.updated` to the alert's citizen, its responders, the coordinators answering for its
    /// region and its topic
    /// (encoded once by the transport for all of them).
    pub(crate) fn publish_alert(&self, alert: Alert) {
        let mut to = vec![Audience::User(alert.citizen.id)];
        let volunteers: Vec<Uuid> = alert
            .assignments
            .iter()
            .map(|assignment| assignment.volunteer.id)
            .collect();
        if !volunteers.is_empty() {
            to.push(Audience::Users(volunteers));
        }
        to.push(self.coordinators_of(alert.region_id));
        to.push(Audience::Topic(format!("alert:{}", alert.id)));
        self.notifier.publish(
            &to,
            &Message::AlertUpdated {
                alert: Box::new(alert),
            },
        );
    }
}
