//! Raising an alert, reading alerts and timelines, cancelling, and dispatch's change feed.
//!
//! Ingest is one statement (`store::ingest`): the idempotency key, the alert, its `created`
//! event and, while this instance's dispatcher runs, its first wave (offers, timer, events),
//! planned just before from the matcher. One commit makes all of it durable, and only then does
//! the citizen get 201 and the volunteers their offers. Without a running dispatcher the alert
//! gets an outbox row instead and the first dispatcher to claim it sends the wave.

use std::collections::HashMap;

use kreki_auth::CurrentUser;
use kreki_platform::pii::{Nik, Pii, PiiError, SealedNik};
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use tracing::Instrument;

use super::DispatchService;
use super::effects::Effect;
use crate::domain::regions::Admission;
use crate::domain::{AlertId, AlertKind, AlertStatus, IdempotencyKey, OfferStatus, WithdrawReason};
use crate::error::{DispatchError, DispatchResult};
use crate::geo::LatLng;
use crate::store::{self, Ingested, NewAlert, PlanRows};
use crate::timeline::{Event, Fix, Point};
use crate::views::{Alert, Location, Offer, OfferAlert, TimelineEvent};
use crate::wave::{self, Changes, Plan, Snapshot, Trigger};

/// A validated `POST /v1/alerts` body.
#[derive(Debug, Clone)]
pub struct AlertRequest {
    /// What happened.
    pub kind: AlertKind,
    /// Where.
    pub at: LatLng,
    /// Accuracy of `at`, metres.
    pub accuracy_m: Option<f32>,
    /// Free text from the citizen (at most 1000 characters).
    pub note: Option<String>,
    /// The patient's NIK, if given (sealed before it is stored).
    pub patient_nik: Option<Nik>,
    /// Raised to practise (`"drill": true`), not a real emergency.
    pub drill: bool,
}

impl AlertRequest {
    /// SHA-256 over the normalised request: a retry with the same key must carry the same body.
    /// The NIK enters as its keyed hash, so the stored digest cannot be tried against NIKs.
    fn hash(&self, pii: &Pii) -> Vec<u8> {
        let mut canonical = json!({
            "kind": self.kind.as_str(),
            "lat": self.at.lat(),
            "lng": self.at.lng(),
            "accuracy_m": self.accuracy_m,
            "note": self.note,
            "nik": self.patient_nik.as_ref().map(|nik| hex_of(pii.hash(nik).mac())),
        });
        // Only drills add the flag, so keys stored before drills existed still match their retries.
        if self.drill {
            canonical["drill"] = json!(true);
        }
        Sha256::digest(canonical.to_string().as_bytes()).to_vec()
    }
}

/// What `create_alert` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingest {
    /// A new alert was committed (201).
    Created,
    /// The same key came again: the alert its first use made (200).
    Replayed,
    /// A second press near the citizen's open alert of that kind: attached to it (200).
    Attached,
}

/// How long dispatch's events settle before [`changes_after`] hands them out, in seconds: longer
/// than any dispatch transaction takes between insert and commit.
pub const CHANGE_SETTLE_S: f64 = 2.0;

/// One changed alert in dispatch's event stream.
#[derive(Debug, Clone)]
pub struct AlertChange {
    /// Id of the newest event of this alert in the batch: the cursor for the next call.
    pub seq: i64,
    /// The alert as it is now.
    pub alert: Alert,
    /// The patient's NIK, when the citizen gave one (kept out of the public Alert), decrypted for
    /// the SATUSEHAT bridge. A stored value these keys cannot open is logged (never its content)
    /// and left out.
    pub patient_nik: Option<Nik>,
}

/// Dispatch's change feed read straight from PostgreSQL: alerts that changed after event `after`
/// (at most `limit` events' worth), each as its full current state, oldest change first. It needs
/// no running [`DispatchService`], so a process without dispatch (`kreki serve --services bridge`)
/// follows the alerts that dispatch instances elsewhere write to the shared database. The cursor to
/// pass next time is the last change's `seq`; events settle for [`CHANGE_SETTLE_S`] first, so a
/// transaction still committing is never skipped.
///
/// # Errors
/// Database failures.
pub async fn changes_after(
    pool: &PgPool,
    pii: &Pii,
    after: i64,
    limit: u32,
) -> DispatchResult<Vec<AlertChange>> {
    let changed = store::changed_alerts(pool, after, i64::from(limit), CHANGE_SETTLE_S).await?;
    let ids: Vec<AlertId> = changed.iter().map(|(_, id, _)| *id).collect();
    let mut alerts: HashMap<AlertId, Alert> = store::alerts_by_ids(pool, &ids)
        .await?
        .into_iter()
        .map(|row| {
            let (alert, assignments) = row.into_parts();
            (alert.id, Alert::from_rows(alert, assignments))
        })
        .collect();
    Ok(changed
        .into_iter()
        .filter_map(|(seq, id, patient_nik)| {
            let patient_nik = patient_nik.and_then(|stored| match pii.open_str(&stored) {
                Ok(nik) => Some(nik),
                // Written before NIKs were sealed and not yet reached by the reseal batch.
                Err(PiiError::Malformed) => Nik::parse(&stored).ok(),
                Err(error) => {
                    tracing::error!(alert_id = %id, %error, "the patient's NIK of this alert cannot be read; the bridge gets none");
                    None
                }
            });
            Some(AlertChange {
                seq,
                alert: alerts.remove(&id)?,
                patient_nik,
            })
        })
        .collect())
}

/// A new alert's first wave, planned before its ingest statement (or, for a triaged alert, its
/// auto-release timer).
pub(crate) struct FirstWave {
    pub(crate) changes: Changes,
    rows: PlanRows,
    offer_ids: Vec<crate::domain::OfferId>,
}

impl FirstWave {
    /// The rows of `changes` for alert `id`.
    pub(crate) fn new(id: AlertId, changes: Changes) -> Self {
        let mut rows = PlanRows::default();
        let offer_ids = rows.add_rows(id, &changes);
        Self {
            changes,
            rows,
            offer_ids,
        }
    }

    /// Timeline entries only: no wave (the dispatcher sends it).
    fn events_only(id: AlertId, events: Vec<Event>) -> Self {
        Self::new(
            id,
            Changes {
                expire: Vec::new(),
                offers: Vec::new(),
                wave: 0,
                wave_ends_at: None,
                status: None,
                timer: None,
                events,
            },
        )
    }
}

/// Where a press came from, beyond the account.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// The client's network address (counted against the address's panic limit).
    pub address: Option<std::net::IpAddr>,
    /// The coordinator who raised it for an emergency phoned in to them (no limit, no triage).
    pub phoned_in_by: Option<crate::timeline::Person>,
    /// The caller's phone number, for a call-back.
    pub caller_phone: Option<String>,
}

impl DispatchService {
    /// Stores an alert durably and, while this instance dispatches, its first wave with it (one
    /// statement, one commit); then tells the volunteers and the citizen. The same key returns the
    /// same alert; the same key with another body is [`DispatchError::IdempotencyKeyReused`]; a
    /// second press near an open alert of the same kind attaches to it. The same as
    /// [`Self::raise`] with no known origin.
    ///
    /// # Errors
    /// Database failures (503 when unavailable; safe to retry with the same key).
    pub async fn create_alert(
        &self,
        citizen: &CurrentUser,
        key: &IdempotencyKey,
        request: AlertRequest,
    ) -> DispatchResult<(Alert, Ingest)> {
        self.raise(citizen, key, request, Origin::default()).await
    }

    /// Raises an alert (see [`Self::create_alert`]) from `origin`: the press is counted against
    /// the account's and the address's panic limits, the alert gets its region, and the region's
    /// triage policy decides whether volunteers are alerted at once or a coordinator looks first
    /// (a triaged alert is stored with its auto-release timer instead of a first wave).
    ///
    /// # Errors
    /// 429 past the panic limit, 403 for a blocked account, database failures (503 when
    /// unavailable; safe to retry with the same key).
    pub async fn raise(
        &self,
        citizen: &CurrentUser,
        key: &IdempotencyKey,
        request: AlertRequest,
        origin: Origin,
    ) -> DispatchResult<(Alert, Ingest)> {
        let started = std::time::Instant::now();
        let now = chrono::Utc::now();
        let traceparent =
            kreki_platform::telemetry::traces::traceparent_of(&tracing::Span::current());
        if origin.phoned_in_by.is_none() {
            self.check_panic_limit(citizen, origin.address, now)?;
        }
        let hash = request.hash(&self.pii);
        let alert_id = AlertId::new();
        let citizen_id = citizen.id.0;
        let settings = self.kind_settings(request.kind);
        let responders_needed = settings.responders_needed;
        let (region_id, admission) = self.with_regions(|map| {
            let region = map.locate(request.at);
            let admission = if origin.phoned_in_by.is_some() {
                Admission::Dispatch
            } else {
                map.admission(region, request.kind, citizen.trust)
            };
            (region, admission)
        });
        let mut before = Vec::new();
        if let Some(by) = &origin.phoned_in_by {
            before.push(Event::PhonedIn {
                by: by.clone(),
                caller_phone: origin
                    .caller_phone
                    .as_deref()
                    .map(super::contacts::mask_phone),
            });
        }
        let first = match admission {
            Admission::Refused => {
                return Err(DispatchError::Forbidden(
                    "this account is blocked; call 112 or 119 in an emergency",
                ));
            }
            Admission::Triage => Some(self.triage_first(alert_id, citizen.trust, now, before)),
            Admission::Dispatch if self.is_dispatching() => Some(
                self.plan_first_wave(alert_id, &request, responders_needed, settings, before)
                    .instrument(tracing::info_span!("dispatch.first_wave", alert_id = %alert_id.0))
                    .await,
            ),
            Admission::Dispatch => {
                (!before.is_empty()).then(|| FirstWave::events_only(alert_id, before))
            }
        };
        let (wave, status) = first
            .as_ref()
            .map_or((0, AlertStatus::Dispatching), |first| {
                (
                    first.changes.wave,
                    first.changes.status.unwrap_or(AlertStatus::Dispatching),
                )
            });
        let sealed_nik = request.patient_nik.as_ref().map(|nik| self.pii.seal(nik));
        let new = NewAlert {
            id: alert_id,
            citizen_id,
            citizen_name: &citizen.name,
            kind: request.kind,
            at: request.at,
            accuracy_m: request.accuracy_m,
            note: request.note.as_deref(),
            patient_nik: sealed_nik.as_ref().map(SealedNik::as_str),
            drill: request.drill,
            responders_needed: i32::try_from(responders_needed).unwrap_or(1),
            wave: i32::try_from(wave).unwrap_or(i32::MAX),
            wave_ends_at: first.as_ref().and_then(|first| first.changes.wave_ends_at),
            status,
            region_id,
            caller_phone: origin.caller_phone.as_deref(),
            traceparent: traceparent.as_deref(),
        };
        let created = Event::Created {
            kind: request.kind,
            drill: request.drill,
            location: Fix {
                lat: request.at.lat(),
                lng: request.at.lng(),
                accuracy_m: request.accuracy_m,
            },
        };
        let repeat = Event::RepeatPress {
            location: Point {
                lat: request.at.lat(),
                lng: request.at.lng(),
            },
            note: request.note.clone(),
        };
        // Without a plan (no dispatcher here, or only events), a dispatcher takes the alert from
        // its outbox row.
        let dispatcher_needed = status == AlertStatus::Dispatching
            && first
                .as_ref()
                .is_none_or(|first| first.offer_ids.is_empty() && first.changes.timer.is_none());
        let empty = PlanRows::default();
        let outcome = store::ingest(
            &mut *self.pool.acquire().await?,
            &new,
            &store::Press {
                key: key.as_str(),
                request_hash: &hash,
                repeat_radius_m: self.config.repeat_press_radius_m,
                created: &created,
                repeat: &repeat,
            },
            first.as_ref().map_or(&empty, |first| &first.rows),
            dispatcher_needed,
        )
        .instrument(tracing::info_span!("dispatch.ingest", alert_id = %alert_id.0))
        .await?;
        match outcome {
            Ingested::Created(created_at) => {
                metrics::histogram!("kreki_dispatch_alert_commit_seconds")
                    .record(started.elapsed().as_secs_f64());
                let alert = Alert::raised(&new, created_at);
                let mut effects = Vec::new();
                if let Some(first) = &first {
                    effects = first_wave_effects(&alert, first, created_at);
                }
                if dispatcher_needed {
                    effects.push(Effect::Wake(super::Wake::Alert(alert_id)));
                }
                if status == AlertStatus::Triage {
                    effects.push(Effect::Escalated(alert_id));
                }
                effects.push(Effect::AlertIs(Box::new(alert.clone())));
                self.apply(effects).await;
                Ok((alert, Ingest::Created))
            }
            Ingested::Attached(existing) => Ok((self.alert(existing).await?, Ingest::Attached)),
            Ingested::KeyTaken => {
                let (existing, stored_hash) =
                    store::idempotency_key(&self.pool, citizen_id, key.as_str())
                        .await?
                        .ok_or_else(|| {
                            DispatchError::Internal("idempotency key vanished".into())
                        })?;
                if stored_hash != hash {
                    return Err(DispatchError::IdempotencyKeyReused);
                }
                Ok((self.alert(existing).await?, Ingest::Replayed))
            }
        }
    }

    /// Plans the first wave of an alert about to be stored, as [`crate::wave::plan`] would for it
    /// once stored, after catching up on other instances' volunteer changes.
    async fn plan_first_wave(
        &self,
        id: AlertId,
        request: &AlertRequest,
        responders_needed: u32,
        settings: crate::domain::KindSettings,
        before: Vec<Event>,
    ) -> FirstWave {
        self.catch_up_before_wave().await;
        let snapshot = Snapshot::new_alert(id, responders_needed, settings);
        let changes = match wave::plan(&snapshot, Trigger::NeedsWave, chrono::Utc::now(), |query| {
            self.candidates(request.at, &snapshot, query)
        }) {
            Plan::Write(changes) => changes,
            // A new alert needs at least one responder (settings are validated), so it always
            // plans; should it not, it stays dispatching with no wave and the timer-less alert is
            // the coordinators' to assign.
            Plan::Nothing(skip) => {
                tracing::error!(?skip, alert_id = %id, "a new alert planned no wave");
                Changes {
                    expire: Vec::new(),
                    offers: Vec::new(),
                    wave: 0,
                    wave_ends_at: None,
                    status: None,
                    timer: None,
                    events: Vec::new(),
                }
            }
        };
        let mut changes = changes;
        changes.events.splice(0..0, before);
        FirstWave::new(id, changes)
    }

    /// One alert with its assignments (no access check).
    ///
    /// # Errors
    /// [`DispatchError::NotFound`] or database failures.
    pub async fn alert(&self, id: AlertId) -> DispatchResult<Alert> {
        let row = store::alert_view(&mut *self.pool.acquire().await?, id)
            .await?
            .ok_or(DispatchError::NotFound("alert"))?;
        let (alert, assignments) = row.into_parts();
        Ok(Alert::from_rows(alert, assignments))
    }

    /// Checks that `user` may see alert `id`: its citizen, a volunteer offered or assigned it, or a
    /// coordinator of its region (national coordinators and admins: every alert).
    ///
    /// # Errors
    /// 404 for an unknown alert, 403 for someone else's.
    pub async fn check_can_see(&self, user: &CurrentUser, id: AlertId) -> DispatchResult<Alert> {
        let alert = self.alert(id).await?;
        if alert.citizen.id == user.id.0
            || self.covers(user, alert.region_id)
            || store::was_offered(&self.pool, id, user.id.0).await?
        {
            Ok(alert)
        } else {
            Err(DispatchError::Forbidden("this is not your alert"))
        }
    }

    /// May `user` receive messages of alert `id` (the realtime topic `alert:{id}`)?
    ///
    /// # Errors
    /// Database failures.
    pub async fn may_see_alert(&self, user: &CurrentUser, id: AlertId) -> DispatchResult<bool> {
        match self.check_can_see(user, id).await {
            Ok(_) => Ok(true),
            Err(DispatchError::Forbidden(_) | DispatchError::NotFound(_)) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// The alert's timeline, oldest first (after [`Self::check_can_see`]).
    ///
    /// # Errors
    /// As [`Self::check_can_see`].
    pub async fn timeline(
        &self,
        user: &CurrentUser,
        id: AlertId,
    ) -> DispatchResult<Vec<TimelineEvent>> {
        self.check_can_see(user, id).await?;
        Ok(store::events(&self.pool, id)
            .await?
            .into_iter()
            .map(TimelineEvent::from)
            .collect())
    }

    /// Alerts for the coordinators' map, newest first (at most 500): those of `scope`'s regions
    /// (and alerts without a region), or every one for a national scope.
    ///
    /// # Errors
    /// Database failures.
    pub async fn list_alerts(
        &self,
        scope: &super::regions::Scope,
        status: Option<AlertStatus>,
        bbox: Option<[f64; 4]>,
    ) -> DispatchResult<Vec<Alert>> {
        Ok(
            store::list_alerts(&self.pool, scope.regions(), status, bbox, 500)
                .await?
                .into_iter()
                .map(|row| {
                    let (alert, assignments) = row.into_parts();
                    Alert::from_rows(alert, assignments)
                })
                .collect(),
        )
    }

    /// Alerts that changed after event `after` (at most `limit` events' worth), each as its full
    /// current state, for consumers of dispatch's event stream such as the SATUSEHAT bridge. The
    /// same as [`changes_after`] over this service's pool.
    ///
    /// # Errors
    /// Database failures.
    pub async fn changes_after(&self, after: i64, limit: u32) -> DispatchResult<Vec<AlertChange>> {
        changes_after(&self.pool, &self.pii, after, limit).await
    }

    /// Cancels an alert (its citizen or a coordinator): pending offers are withdrawn, active
    /// assignments end as `withdrawn`, timers stop.
    ///
    /// # Errors
    /// 403 for someone else's alert, 409 when already cancelled or resolved.
    pub async fn cancel(
        &self,
        user: &CurrentUser,
        id: AlertId,
        reason: Option<String>,
    ) -> DispatchResult<Alert> {
        let mut tx = self.pool.begin().await?;
        let alert = store::lock_alert(&mut tx, id)
            .await?
            .ok_or(DispatchError::NotFound("alert"))?;
        if alert.citizen_id != user.id.0 && !self.covers(user, alert.region_id) {
            return Err(DispatchError::Forbidden(
                "only its citizen or a coordinator of its region may cancel an alert",
            ));
        }
        if matches!(alert.status, AlertStatus::Cancelled | AlertStatus::Resolved) {
            return Err(DispatchError::AlertClosed(alert.status));
        }
        let mut effects = Vec::new();
        for (offer_id, volunteer) in
            store::close_pending_offers(&mut tx, id, OfferStatus::Withdrawn).await?
        {
            effects.push(Effect::Withdrawn {
                volunteer,
                offer_id,
                alert_id: id,
                reason: WithdrawReason::Cancelled,
            });
        }
        for assignment in store::assignments_of(&mut tx, id).await? {
            if assignment.status.is_active() {
                let row = store::set_assignment_status(
                    &mut tx,
                    assignment.id,
                    crate::domain::AssignmentStatus::Withdrawn,
                )
                .await?;
                effects.push(Effect::Busy(row.volunteer_id, false));
                effects.push(Effect::AssignmentChanged(row.into()));
            }
        }
        store::schedule_checkins(&mut tx, id, self.config.checkin_after_s).await?;
        store::cancel_timers(&mut tx, id).await?;
        let acknowledged = store::escalations::close_all_of_alert(&mut tx, id, user.id.0).await?;
        effects.push(Effect::EscalationsAcknowledged(acknowledged));
        store::set_alert_status(&mut tx, id, AlertStatus::Cancelled).await?;
        store::insert_event(&mut tx, id, Some(user.id.0), &Event::Cancelled { reason }).await?;
        tx.commit().await?;
        self.teams.forget_all();
        effects.push(Effect::AlertChanged(id));
        self.apply(effects).await;
        self.alert(id).await
    }
}

/// The messages of a first wave that committed with its alert: the offers, and the expiry of
/// nothing (a new alert has no offers yet).
fn first_wave_effects(
    alert: &Alert,
    first: &FirstWave,
    offered_at: chrono::DateTime<chrono::Utc>,
) -> Vec<Effect> {
    let mut effects = Vec::new();
    for (offer, id) in first.changes.offers.iter().zip(&first.offer_ids) {
        effects.push(Effect::Offer(
            offer.volunteer,
            Offer {
                id: *id,
                alert: OfferAlert {
                    id: alert.id,
                    kind: alert.kind,
                    location: alert.location.clone(),
                    note: alert.note.clone(),
                    drill: alert.drill,
                },
                distance_m: offer.distance_m,
                status: OfferStatus::Pending,
                offered_at,
                expires_at: offer.expires_at,
            },
        ));
    }
    metrics::counter!("kreki_dispatch_offers_total").increment(first.changes.offers.len() as u64);
    if first.changes.unmatched() {
        effects.push(Effect::Unmatched(alert.id));
    }
    effects
}

/// An alert's location as the views show it.
pub(crate) fn location(at: LatLng, accuracy_m: Option<f32>) -> Location {
    Location {
        lat: at.lat(),
        lng: at.lng(),
        accuracy_m,
    }
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
