//! Triage and the coordinator's tools on one alert.
//!
//! A panic from an account its region does not trust yet (see
//! [`crate::domain::regions::TriagePolicy`]) is stored in `triage` with a `triage_waiting`
//! escalation, the caller's details for a call-back, and a timer: a coordinator of the region
//! releases it to volunteers with one tap ([`DispatchService::release`]) or closes it as a false
//! alarm (`resolve` with `false_alarm`); if nobody does within `triage_auto_release_s`, the wave
//! policy releases it by itself. Coordinators also write notes on the timeline, raise alerts for
//! emergencies phoned in to them (the same dispatch as a panic), send an alert out again to a
//! wider radius, and record a hand-off to 112 or PSC 119 with its reference.

use chrono::{DateTime, Duration, Utc};
use kreki_auth::{CurrentUser, Role, Trust};

use super::alerts::{FirstWave, Origin};
use super::effects::Effect;
use super::{DispatchService, Ingest, Wake};
use crate::domain::{AlertId, AlertStatus, EscalationReason, IdempotencyKey};
use crate::error::{DispatchError, DispatchResult};
use crate::messages::Message;
use crate::notify::Audience;
use crate::service::AlertRequest;
use crate::store;
use crate::timeline::{Event, Person};
use crate::views::{Alert, PersonRef, TimelineEvent};
use crate::wave::{Changes, WaveDeadline};

/// Longest note, in characters.
pub const MAX_NOTE_CHARS: usize = 2000;

impl DispatchService {
    /// The rows a triaged alert is stored with: its `triaged` entry and the auto-release timer
    /// (the deadline of wave 0, which [`crate::wave::plan`] turns into a release).
    pub(crate) fn triage_first(
        &self,
        id: AlertId,
        trust: Trust,
        now: DateTime<Utc>,
        before: Vec<Event>,
    ) -> FirstWave {
        let auto_release_at = now + Duration::seconds(i64::from(self.config.triage_auto_release_s));
        let mut events = before;
        events.push(Event::Triaged {
            trust,
            auto_release_at,
        });
        FirstWave::new(
            id,
            Changes {
                expire: Vec::new(),
                offers: Vec::new(),
                wave: 0,
                wave_ends_at: None,
                status: Some(AlertStatus::Triage),
                timer: Some(WaveDeadline {
                    wave: 0,
                    due_at: auto_release_at,
                }),
                events,
            },
        )
    }

    /// Counts a press against its account's and address's panic limits; past them, coordinators
    /// are told who and the press is refused.
    ///
    /// # Errors
    /// [`DispatchError::RateLimited`] with the seconds to wait.
    pub(crate) fn check_panic_limit(
        &self,
        citizen: &CurrentUser,
        address: Option<std::net::IpAddr>,
        now: DateTime<Utc>,
    ) -> DispatchResult<()> {
        let Err(retry_after_s) = self.panic_limits.check(citizen.id.0, address, now) else {
            return Ok(());
        };
        metrics::counter!("kreki_dispatch_panics_limited_total").increment(1);
        tracing::warn!(citizen_id = %citizen.id, retry_after_s, "panic past the limit refused");
        self.notifier.publish(
            &[Audience::Role(Role::Coordinator)],
            &Message::PanicLimited {
                citizen: PersonRef {
                    id: citizen.id.0,
                    name: citizen.name.clone(),
                },
                retry_after_s,
            },
        );
        Err(DispatchError::RateLimited(retry_after_s))
    }

    /// Releases a triaged alert to volunteers (a coordinator of its region): it becomes
    /// `dispatching`, its `triage_waiting` escalation is acknowledged, and its first wave goes out
    /// before the answer when this instance dispatches.
    ///
    /// # Errors
    /// 404 unknown; 403 another region's; 409 `not-in-triage`.
    pub async fn release(&self, user: &CurrentUser, id: AlertId) -> DispatchResult<Alert> {
        let mut tx = self.pool.begin().await?;
        let alert = self.lock_for_coordinator(&mut tx, user, id).await?;
        if alert.status != AlertStatus::Triage {
            return Err(DispatchError::NotInTriage(alert.status));
        }
        store::set_alert_status(&mut tx, id, AlertStatus::Dispatching).await?;
        store::insert_event(
            &mut tx,
            id,
            Some(user.id.0),
            &Event::Released {
                by: Some(person(user)),
            },
        )
        .await?;
        let acknowledged = store::escalations::acknowledge_reason(
            &mut tx,
            id,
            EscalationReason::TriageWaiting,
            user.id.0,
        )
        .await?;
        store::enqueue_wave(&mut tx, id).await?;
        tx.commit().await?;
        self.send_wave_now(id).await;
        self.apply(vec![
            Effect::EscalationsAcknowledged(acknowledged),
            Effect::AlertChanged(id),
        ])
        .await;
        self.alert(id).await
    }

    /// Sends an open alert out again to a wider radius than its kind's waves (a coordinator of its
    /// region): one more wave within `radius_m` to volunteers never asked; an `unmatched` alert is
    /// dispatching again and its `unmatched` escalation acknowledged. The wave goes out before the
    /// answer when this instance dispatches.
    ///
    /// # Errors
    /// 422 `radius_m` out of range or not wider than the alert's waves; 404; 403 another region's;
    /// 409 for a closed alert.
    pub async fn redispatch(
        &self,
        user: &CurrentUser,
        id: AlertId,
        radius_m: u32,
    ) -> DispatchResult<Alert> {
        if !(10..=100_000).contains(&radius_m) {
            return Err(DispatchError::field(
                "radius_m",
                "must be 10 to 100000 metres",
            ));
        }
        let mut tx = self.pool.begin().await?;
        let alert = self.lock_for_coordinator(&mut tx, user, id).await?;
        if !matches!(
            alert.status,
            AlertStatus::Dispatching
                | AlertStatus::Assigned
                | AlertStatus::OnScene
                | AlertStatus::Unmatched
        ) {
            return Err(DispatchError::AlertClosed(alert.status));
        }
        let widest = store::widest_radius_m(&mut tx, id, &self.kind_settings(alert.kind)).await?;
        if radius_m <= widest {
            return Err(DispatchError::field(
                "radius_m",
                format!("must be wider than the alert's widest wave ({widest} m)"),
            ));
        }
        store::add_extra_radius(&mut tx, id, radius_m).await?;
        let mut acknowledged = Vec::new();
        if alert.status == AlertStatus::Unmatched {
            store::set_alert_status(&mut tx, id, AlertStatus::Dispatching).await?;
            acknowledged = store::escalations::acknowledge_reason(
                &mut tx,
                id,
                EscalationReason::Unmatched,
                user.id.0,
            )
            .await?;
        }
        store::insert_event(
            &mut tx,
            id,
            Some(user.id.0),
            &Event::Redispatched {
                radius_m,
                by: person(user),
            },
        )
        .await?;
        store::enqueue_wave(&mut tx, id).await?;
        tx.commit().await?;
        self.send_wave_now(id).await;
        self.apply(vec![
            Effect::EscalationsAcknowledged(acknowledged),
            Effect::AlertChanged(id),
        ])
        .await;
        self.alert(id).await
    }

    /// Records that a coordinator handed the alert to another service (112, PSC 119) and the
    /// reference it gave.
    ///
    /// # Errors
    /// 422 bad `to` or `reference`; 404; 403 another region's.
    pub async fn hand_off(
        &self,
        user: &CurrentUser,
        id: AlertId,
        to: &str,
        reference: &str,
    ) -> DispatchResult<TimelineEvent> {
        let to = to.trim();
        let reference = reference.trim();
        let mut errors = Vec::new();
        if !matches!(to, "112" | "psc119" | "other") {
            errors.push(kreki_platform::FieldError::new(
                "to",
                "must be 112, psc119 or other",
            ));
        }
        if reference.is_empty() || reference.chars().count() > 100 {
            errors.push(kreki_platform::FieldError::new(
                "reference",
                "must be 1 to 100 characters",
            ));
        }
        if !errors.is_empty() {
            return Err(DispatchError::Validation(errors));
        }
        let alert = store::alert_view(&mut *self.pool.acquire().await?, id)
            .await?
            .ok_or(DispatchError::NotFound("alert"))?;
        self.require_covers(user, alert.alert.region_id)?;
        let event = Event::HandedOff {
            to: to.to_owned(),
            reference: reference.to_owned(),
            by: person(user),
        };
        let row = store::insert_event_returning(&self.pool, id, Some(user.id.0), &event).await?;
        self.apply(vec![Effect::AlertChanged(id)]).await;
        Ok(row.into())
    }

    /// Runs the alert's outbox row now when this instance dispatches (else wakes the dispatcher
    /// that will).
    async fn send_wave_now(&self, id: AlertId) {
        if self.is_dispatching() {
            if let Err(error) = self.process_outbox(Some(id)).await {
                // The outbox row stays: the poller sends the wave.
                tracing::warn!(alert_id = %id, %error, "wave deferred to the poller");
            }
        } else {
            self.wake_dispatcher(Wake::Alert(id));
        }
    }

    /// Adds a coordinator's note to the alert's timeline.
    ///
    /// # Errors
    /// 422 empty or too long; 404 unknown; 403 another region's.
    pub async fn add_note(
        &self,
        user: &CurrentUser,
        id: AlertId,
        text: &str,
    ) -> DispatchResult<TimelineEvent> {
        let text = text.trim();
        if text.is_empty() || text.chars().count() > MAX_NOTE_CHARS {
            return Err(DispatchError::field("text", "must be 1 to 2000 characters"));
        }
        let alert = store::alert_view(&mut *self.pool.acquire().await?, id)
            .await?
            .ok_or(DispatchError::NotFound("alert"))?;
        self.require_covers(user, alert.alert.region_id)?;
        let event = Event::Note {
            text: text.to_owned(),
            by: person(user),
        };
        let row = store::insert_event_returning(&self.pool, id, Some(user.id.0), &event).await?;
        self.apply(vec![Effect::AlertChanged(id)]).await;
        Ok(row.into())
    }

    /// Raises an alert for an emergency phoned in to a coordinator: the same dispatch as a panic,
    /// never triaged or limited, with the caller's phone kept for a call-back and a `phoned_in`
    /// entry naming the coordinator.
    ///
    /// # Errors
    /// As [`Self::raise`].
    pub async fn phone_in(
        &self,
        coordinator: &CurrentUser,
        key: &IdempotencyKey,
        request: AlertRequest,
        caller_phone: Option<String>,
    ) -> DispatchResult<(Alert, Ingest)> {
        coordinator.require(Role::Coordinator)?;
        let origin = Origin {
            address: None,
            phoned_in_by: Some(person(coordinator)),
            caller_phone,
        };
        self.raise(coordinator, key, request, origin).await
    }
}

fn person(user: &CurrentUser) -> Person {
    Person {
        id: user.id.0,
        name: user.name.clone(),
    }
}
