//! The dispatcher's work: every wave after the first, and first waves the ingest left to it.
//!
//! A batch is three round trips, however many alerts it holds: catch up on other instances'
//! volunteer changes (shared with concurrent batches), claim due work with the snapshots of its
//! alerts (`store::claim`), and write every plan (`store::write_plans`, one commit). In between,
//! each alert's wave is decided by [`crate::wave::plan`] with the matcher, in memory. Under load a
//! batch simply holds more alerts: throughput grows with the backlog instead of queueing behind
//! one transaction per wave.

use std::collections::HashSet;

use chrono::Utc;
use sqlx::Postgres;
use sqlx::pool::PoolConnection;
use tracing::Instrument;
use uuid::Uuid;

use super::effects::Effect;
use super::{DispatchService, Wake};
use crate::domain::{AlertId, OfferStatus, WithdrawReason};
use crate::error::DispatchResult;
use crate::geo::LatLng;
use crate::matcher::Candidate;
use crate::store::{self, Claimed, PlanRows, Work, WorkWanted};
use crate::views::{Offer, OfferAlert};
use crate::wave::{self, CandidateQuery, Changes, Plan, Snapshot, Trigger};

/// Most rows of each kind (outbox, timers) one batch claims.
pub const BATCH_LIMIT: u32 = 128;

/// What one batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Work rows claimed.
    pub claimed: usize,
    /// Alerts whose plan changed something and landed.
    pub applied: usize,
    /// Alerts whose plan was stale (the alert changed meanwhile): their work stays, and the
    /// dispatcher was woken to read them again.
    pub stale: usize,
}

/// A plan made in this batch, kept until its write says whether it landed.
struct Planned {
    claimed: Claimed,
    changes: Changes,
    offer_ids: Vec<crate::domain::OfferId>,
    /// The alert's `dispatch.wave` span: its messages go out inside it.
    span: tracing::Span,
}

impl DispatchService {
    /// Runs one batch of the dispatcher's work (see the module documentation).
    ///
    /// # Errors
    /// Database failures: nothing was written, the claims were released, and the work stays for
    /// the next attempt.
    pub async fn run_batch(&self, wanted: &WorkWanted) -> DispatchResult<BatchOutcome> {
        self.catch_up_before_wave().await;
        let mut conn = self.pool.acquire().await?;
        let defaults = |kind| self.config.kind_settings(kind);
        let claimed = match store::claim(&mut conn, wanted, &defaults).await {
            Ok(claimed) => claimed,
            Err(error) => {
                release(conn).await;
                return Err(error.into());
            }
        };
        if claimed.is_empty() {
            return Ok(BatchOutcome::default());
        }
        let now = Utc::now();
        let mut rows = PlanRows::default();
        let mut planned = Vec::new();
        let mut outcome = BatchOutcome::default();
        for item in claimed {
            outcome.claimed += item.work.len();
            // Each alert's wave is a span in the trace of the panic that raised it.
            let span = tracing::info_span!("dispatch.wave", alert_id = %item.facts.id.0);
            kreki_platform::telemetry::traces::continue_trace(
                &span,
                item.facts.traceparent.as_deref(),
            );
            let trigger = strongest_trigger(&item.work, item.snapshot.alert.wave);
            let decided = span.in_scope(|| {
                wave::plan(&item.snapshot, trigger, now, |query| {
                    self.candidates(item.facts.at, &item.snapshot, query)
                })
            });
            match decided {
                Plan::Nothing(skip) => {
                    tracing::debug!(alert_id = %item.facts.id, ?skip, "no wave");
                    for work in &item.work {
                        rows.finish(item.facts.id, *work, false);
                    }
                }
                Plan::Write(changes) => {
                    let offer_ids = rows.add_changes(item.facts.id, item.version, &changes);
                    let rearmed = changes.timer.map(|timer| timer.wave);
                    for work in &item.work {
                        // A deadline the plan moves on (the same wave's timer, later) stays
                        // armed: the write moves it instead of firing it.
                        if matches!(work, Work::Deadline { wave, .. } if Some(*wave) == rearmed) {
                            continue;
                        }
                        rows.finish(item.facts.id, *work, true);
                    }
                    planned.push(Planned {
                        claimed: item,
                        changes,
                        offer_ids,
                        span,
                    });
                }
            }
        }
        let written = match store::write_plans(&mut conn, &rows).await {
            Ok(written) => written,
            Err(error) => {
                release(conn).await;
                return Err(error.into());
            }
        };
        drop(conn);
        let applied: HashSet<AlertId> = written.applied.iter().copied().collect();
        let expired: HashSet<_> = written.expired.iter().copied().collect();
        for plan in planned {
            let id = plan.claimed.facts.id;
            if !applied.contains(&id) {
                outcome.stale += 1;
                for work in &plan.claimed.work {
                    self.wake_dispatcher(match work {
                        Work::Outbox { .. } => Wake::Alert(id),
                        Work::Deadline { .. } => Wake::Timers,
                    });
                }
                continue;
            }
            outcome.applied += 1;
            let effects = wave_effects(&plan, &expired, written.at);
            self.apply(effects).instrument(plan.span).await;
        }
        Ok(outcome)
    }

    /// Runs one batch of outbox rows (of `alert` when given, else the oldest); answers whether
    /// there were any. The dispatcher calls [`Self::run_batch`] directly; this is for tests and
    /// tools that drive dispatch by hand.
    ///
    /// # Errors
    /// Database failures (the rows stay for the poller).
    pub async fn process_outbox(&self, alert: Option<AlertId>) -> DispatchResult<bool> {
        let outcome = self
            .run_batch(&WorkWanted {
                outbox: Some(alert.map(|id| vec![id])),
                timers: false,
                limit: BATCH_LIMIT,
            })
            .await?;
        Ok(outcome.claimed > 0)
    }

    /// Runs one batch of due timers; answers whether any was due.
    ///
    /// # Errors
    /// Database failures (the timers stay for the next poll).
    pub async fn process_due_timers(&self) -> DispatchResult<bool> {
        let outcome = self
            .run_batch(&WorkWanted {
                outbox: None,
                timers: true,
                limit: BATCH_LIMIT,
            })
            .await?;
        Ok(outcome.claimed > 0)
    }

    /// The matcher's answer to `query` for an alert at `at` (see
    /// [`Snapshot::candidate_query`]).
    pub(crate) fn candidates(
        &self,
        at: LatLng,
        snapshot: &Snapshot,
        query: CandidateQuery,
    ) -> Vec<Candidate> {
        let excluded: HashSet<Uuid> = snapshot.offered.iter().copied().collect();
        self.index.nearest(
            at,
            f64::from(query.radius_m),
            query.count as usize,
            &snapshot.settings.required_certifications,
            snapshot.settings.requires_verified_practitioner,
            &excluded,
        )
    }

    /// Volunteers may have changed on another instance: the matcher sees every change committed
    /// before a wave is planned. Done before the wave takes its connection, so it never holds a
    /// claim, a lock or a connection while it waits; concurrent waves share one read.
    pub(crate) async fn catch_up_before_wave(&self) {
        if let Err(error) = self.catch_up_volunteers().await {
            tracing::warn!(%error, "volunteer catch-up before a wave failed; matching with what this instance knows");
        }
    }
}

/// The trigger an alert's claimed work amounts to: the deadline of its current wave if one fell
/// due (it covers everything else), else a replacement if one was asked, else "may need a wave"
/// if an outbox row asks, else a stale deadline (which changes nothing).
fn strongest_trigger(work: &[Work], current: u32) -> Trigger {
    let rank = |trigger: Trigger| match trigger {
        Trigger::Deadline { wave } if wave == current => 3,
        Trigger::Replace => 2,
        Trigger::NeedsWave => 1,
        Trigger::Deadline { .. } => 0,
    };
    work.iter()
        .map(|item| item.trigger())
        .max_by_key(|trigger| rank(*trigger))
        .unwrap_or(Trigger::NeedsWave)
}

/// The messages of a wave that landed: expired offers withdrawn (only those that really were
/// still pending), the new offers, and an unmatched alert announced.
fn wave_effects(
    plan: &Planned,
    expired: &HashSet<crate::domain::OfferId>,
    offered_at: chrono::DateTime<Utc>,
) -> Vec<Effect> {
    let facts = &plan.claimed.facts;
    let mut effects = Vec::new();
    for offer in &plan.changes.expire {
        if expired.contains(&offer.id) {
            effects.push(Effect::Withdrawn {
                volunteer: offer.volunteer,
                offer_id: offer.id,
                alert_id: facts.id,
                reason: WithdrawReason::Expired,
            });
        }
    }
    for (offer, id) in plan.changes.offers.iter().zip(&plan.offer_ids) {
        effects.push(Effect::Offer(
            offer.volunteer,
            Offer {
                id: *id,
                alert: OfferAlert {
                    id: facts.id,
                    kind: facts.kind,
                    location: super::alerts::location(facts.at, facts.accuracy_m),
                    note: facts.note.clone(),
                    drill: facts.drill,
                },
                distance_m: offer.distance_m,
                status: OfferStatus::Pending,
                offered_at,
                expires_at: offer.expires_at,
            },
        ));
    }
    metrics::counter!("kreki_dispatch_offers_total").increment(plan.changes.offers.len() as u64);
    if plan.changes.unmatched() {
        effects.push(Effect::Unmatched(facts.id));
        effects.push(Effect::AlertChanged(facts.id));
    } else if plan.changes.status == Some(crate::domain::AlertStatus::Dispatching) {
        // Released from triage by its timer.
        effects.push(Effect::AlertChanged(facts.id));
    }
    effects
}

/// Releases the claims a failed batch holds on `conn`, or closes the connection (which releases
/// them too) when even that fails.
async fn release(mut conn: PoolConnection<Postgres>) {
    if let Err(error) = store::release_claims(&mut conn).await {
        tracing::warn!(%error, "claims not released; closing the connection instead");
        if let Err(error) = conn.close().await {
            tracing::debug!(%error, "closing a failed connection");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_current_deadline_wins_over_an_outbox_row_and_stale_deadlines() {
        let outbox = Work::Outbox {
            id: 1,
            replace: false,
        };
        let stale = Work::Deadline { id: 2, wave: 1 };
        let current = Work::Deadline { id: 3, wave: 2 };
        assert_eq!(
            strongest_trigger(&[outbox, stale, current], 2),
            Trigger::Deadline { wave: 2 }
        );
        assert_eq!(strongest_trigger(&[stale, outbox], 2), Trigger::NeedsWave);
        let replace = Work::Outbox {
            id: 4,
            replace: true,
        };
        assert_eq!(strongest_trigger(&[outbox, replace], 2), Trigger::Replace);
        assert_eq!(
            strongest_trigger(&[stale], 2),
            Trigger::Deadline { wave: 1 }
        );
    }
}
