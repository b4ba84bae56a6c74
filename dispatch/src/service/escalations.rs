//! Escalations: what a region's coordinators must see and acknowledge. An alert becoming
//! `unmatched` or entering `triage` raises one in the same statement (a database trigger); the
//! sweep ([`crate::escalate`]) raises those no status change does: a responder who accepted and
//! has not moved, an alert open longer than allowed. Each is announced on the coordinators'
//! sockets (`escalation`) and stays open, an alarm on the dashboard, until a coordinator of its
//! region acknowledges it; the acknowledgement goes on the alert's timeline.

use kreki_auth::{CurrentUser, Role};

use super::DispatchService;
use crate::domain::EscalationId;
use crate::error::{DispatchError, DispatchResult};
use crate::messages::Message;
use crate::store::escalations as store;
use crate::timeline::{Event, Person};
use crate::views::Escalation;

/// Most escalations one list answers.
pub const LIST_LIMIT: i64 = 500;

impl DispatchService {
    /// Escalations the coordinator answers for (their regions', or all for a national one),
    /// newest first; only open ones when `open`.
    ///
    /// # Errors
    /// 403 for a non-coordinator; database failures.
    pub async fn escalations(
        &self,
        user: &CurrentUser,
        open: bool,
    ) -> DispatchResult<Vec<Escalation>> {
        user.require(Role::Coordinator)?;
        let scope = self.scope_of(user);
        Ok(store::list(&self.pool, open, scope.regions(), LIST_LIMIT)
            .await?
            .into_iter()
            .map(Escalation::from)
            .collect())
    }

    /// Acknowledges an escalation (a coordinator of its region): the alarm stops on every
    /// dashboard and the timeline records who.
    ///
    /// # Errors
    /// 404 unknown; 403 another region's; 409 `escalation-acknowledged` when it was already.
    pub async fn acknowledge_escalation(
        &self,
        user: &CurrentUser,
        id: EscalationId,
    ) -> DispatchResult<Escalation> {
        let row = store::get(&self.pool, id)
            .await?
            .ok_or(DispatchError::NotFound("escalation"))?;
        self.require_covers(user, row.region_id)?;
        let (_, data) = Event::EscalationAcknowledged {
            escalation_id: id,
            reason: row.reason,
            by: Person {
                id: user.id.0,
                name: user.name.clone(),
            },
        }
        .columns();
        let acked = store::acknowledge(&self.pool, id, user.id.0, &data)
            .await?
            .ok_or(DispatchError::Conflict(
                "escalation-acknowledged",
                "A coordinator acknowledged this escalation already.",
            ))?;
        let escalation = Escalation::from(acked);
        self.announce_escalation(escalation.clone());
        Ok(escalation)
    }

    /// Raises the escalations of stalled responders and alerts open too long, and announces the
    /// new ones; answers how many were raised.
    ///
    /// # Errors
    /// Database failures (the next sweep tries again).
    pub async fn sweep_escalations(&self) -> DispatchResult<usize> {
        let raised = store::sweep(
            &self.pool,
            f64::from(self.config.responder_stalled_s),
            f64::from(self.config.open_too_long_s),
        )
        .await?;
        let count = raised.len();
        for row in raised {
            self.announce_escalation(row.into());
        }
        Ok(count)
    }

    /// Raises a `severe_warning` escalation for each region a Severe or Extreme CAP warning's
    /// `area` (GeoJSON text) covers (one without region when none does) and announces them;
    /// answers how many were raised (none when they are open already).
    ///
    /// # Errors
    /// Database failures; an area PostGIS cannot read.
    pub async fn escalate_warning(
        &self,
        warning_id: uuid::Uuid,
        area: &str,
    ) -> DispatchResult<usize> {
        let raised = store::raise_for_warning(&self.pool, warning_id, area).await?;
        let count = raised.len();
        for row in raised {
            self.announce_escalation(row.into());
        }
        Ok(count)
    }

    /// `escalation` to the coordinators answering for its region (raised, or acknowledged).
    pub(crate) fn announce_escalation(&self, escalation: Escalation) {
        if escalation.acknowledged_at.is_none() {
            metrics::counter!("kreki_dispatch_escalations_total", "reason" => escalation.reason.as_str())
                .increment(1);
        }
        self.notifier.publish(
            &[self.coordinators_of(escalation.region_id)],
            &Message::Escalation {
                escalation: Box::new(escalation),
            },
        );
    }
}
