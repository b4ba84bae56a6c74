//! The dispatch domain: alerts (durable, idempotent ingest), volunteers' duty and positions, waves of
//! offers driven by the outbox and PostgreSQL timers, atomic accept/decline, cancel, coordinator
//! assignment and assignment status.
//!
//! Every state change is one transaction that locks the alert row first (so accepts, waves,
//! cancels and assignments of one alert serialise, and locks are always taken alert-first). What
//! follows a commit (messages, matcher updates) is collected as effects and applied after it, so
//! nobody hears about a change that did not happen.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use kreki_auth::{CurrentUser, Role};
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::config::DispatchConfig;
use crate::domain::{
    AlertKind, AlertStatus, AssignmentStatus, IdempotencyKey, KindSettings, OfferStatus,
};
use crate::eligibility::CertificationSource;
use crate::error::{DispatchError, DispatchResult};
use crate::geo::LatLng;
use crate::history::{HistoryQueue, Sample};
use crate::index::Advance;
use crate::index::{Index, VolunteerFacts};
use crate::notify::{Audience, Notifier};
use crate::positions::PositionWriter;
use crate::store;
use crate::views::{Alert, Assignment, Offer, TimelineEvent, Volunteer};

/// Capacity of the dispatcher's wake-up queue; when full, the poller picks the work up instead.
const WAKE_QUEUE: usize = 4096;

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
    /// The patient's NIK (16 digits), if given.
    pub patient_nik: Option<String>,
    /// Raised to practise (`"drill": true`), not a real emergency.
    pub drill: bool,
}

impl AlertRequest {
    /// SHA-256 over the normalised request: a retry with the same key must carry the same body.
    fn hash(&self) -> Vec<u8> {
        let mut canonical = json!({
            "kind": self.kind.as_str(),
            "lat": self.at.lat(),
            "lng": self.at.lng(),
            "accuracy_m": self.accuracy_m,
            "note": self.note,
            "nik": self.patient_nik,
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

/// Work for the dispatcher task.
#[derive(Debug, Clone, Copy)]
pub enum Wake {
    /// An alert has an outbox row to process.
    Alert(Uuid),
    /// A timer was moved to now (a decline emptied a wave).
    Timers,
}

/// Something to do once a transaction committed.
#[derive(Debug)]
enum Effect {
    Offer(Uuid, Offer),
    Withdrawn {
        volunteer: Uuid,
        offer_id: Uuid,
        alert_id: Uuid,
        reason: &'static str,
    },
    AlertChanged(Uuid),
    Unmatched(Uuid),
    AssignmentChanged(Assignment),
    Busy(Uuid, bool),
    Rest(Uuid, DateTime<Utc>),
    Wake(Wake),
    /// The volunteer took an assignment: their other pending offers go, and alerts left without a
    /// live offer move to their next wave now.
    WithdrawOtherOffers(Uuid),
}

/// The receiving ends of dispatch's queues, for [`crate::worker::spawn`].
#[derive(Debug)]
pub struct Workers {
    /// Wake-ups for the dispatcher.
    pub wake: mpsc::Receiver<Wake>,
    /// Positions for the history writer.
    pub history: mpsc::Receiver<Sample>,
}

/// How long dispatch's events settle before [`DispatchService::changes_after`] hands them out, in
/// seconds: longer than any dispatch transaction takes between insert and commit.
pub const CHANGE_SETTLE_S: f64 = 2.0;

/// One changed alert in dispatch's event stream.
#[derive(Debug, Clone)]
pub struct AlertChange {
    /// Id of the newest event of this alert in the batch: the cursor for the next call.
    pub seq: i64,
    /// The alert as it is now.
    pub alert: Alert,
    /// The patient's NIK, when the citizen gave one (kept out of the public Alert).
    pub patient_nik: Option<String>,
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
    after: i64,
    limit: u32,
) -> DispatchResult<Vec<AlertChange>> {
    let changed = store::changed_alerts(pool, after, i64::from(limit), CHANGE_SETTLE_S).await?;
    let ids: Vec<Uuid> = changed.iter().map(|(_, id, _)| *id).collect();
    let mut rows: HashMap<Uuid, store::AlertRow> = store::alerts_by_ids(pool, &ids)
        .await?
        .into_iter()
        .map(|row| (row.id, row))
        .collect();
    let mut assignments: HashMap<Uuid, Vec<store::AssignmentRow>> = HashMap::new();
    for assignment in store::assignments_of_many(pool, &ids).await? {
        assignments
            .entry(assignment.alert_id)
            .or_default()
            .push(assignment);
    }
    Ok(changed
        .into_iter()
        .filter_map(|(seq, id, patient_nik)| {
            let row = rows.remove(&id)?;
            let alert = Alert::from_rows(row, assignments.remove(&id).unwrap_or_default());
            Some(AlertChange {
                seq,
                alert,
                patient_nik,
            })
        })
        .collect())
}

/// What dispatch talks to beyond PostgreSQL, each behind a port so tests and the binary choose.
pub struct Ports {
    /// Delivers messages (the realtime hub in the binary; a recorder in tests).
    pub notifier: Arc<dyn Notifier>,
    /// Valid certifications of volunteers (dispatch's own table until the LMS supplies them).
    pub certs: Arc<dyn CertificationSource>,
}

/// The dispatch service. One per process; shared as `Arc<DispatchService>`.
pub struct DispatchService {
    pool: PgPool,
    config: DispatchConfig,
    index: Index,
    notifier: Arc<dyn Notifier>,
    certs: Arc<dyn CertificationSource>,
    wake: mpsc::Sender<Wake>,
    history: HistoryQueue,
    /// Positions applied to the matcher, waiting to be written ([`crate::positions`]).
    positions: PositionWriter,
    /// Set once kind settings are seeded and the matcher is built.
    prepared: std::sync::atomic::AtomicBool,
    /// Catching up on other instances' volunteer changes ([`crate::sync`]).
    sync: crate::sync::VolunteerSync,
}

impl std::fmt::Debug for DispatchService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DispatchService").finish_non_exhaustive()
    }
}

fn parse_status<T>(text: &str, parse: fn(&str) -> Option<T>) -> DispatchResult<T> {
    parse(text).ok_or_else(|| DispatchError::Internal(format!("unknown status {text:?} stored")))
}

impl DispatchService {
    /// A service over `pool`; nothing runs until [`crate::worker::spawn`] is given the returned
    /// [`Workers`] (which first calls [`Self::prepare`]).
    pub fn new(pool: PgPool, config: DispatchConfig, ports: Ports) -> (Arc<Self>, Workers) {
        let (wake, wake_rx) = mpsc::channel(WAKE_QUEUE);
        let (history, history_rx) = HistoryQueue::new(config.location_history_queue);
        let positions = PositionWriter::new(config.position_pending_max);
        let index = Index::new(Duration::seconds(
            i64::try_from(config.position_max_age_s).unwrap_or(600),
        ));
        let service = Arc::new(Self {
            pool,
            config,
            index,
            notifier: ports.notifier,
            certs: ports.certs,
            wake,
            history,
            positions,
            prepared: std::sync::atomic::AtomicBool::new(false),
            sync: crate::sync::VolunteerSync::new(),
        });
        (
            service,
            Workers {
                wake: wake_rx,
                history: history_rx,
            },
        )
    }

    /// The pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The configuration.
    pub fn config(&self) -> &DispatchConfig {
        &self.config
    }

    /// Seeds per-kind settings from config (where missing) and rebuilds the matcher from PostGIS.
    ///
    /// # Errors
    /// Database or certification-source failures.
    pub async fn prepare(&self) -> anyhow::Result<()> {
        for kind in AlertKind::ALL {
            store::seed_kind(&self.pool, *kind, &self.config.kind_settings(*kind)).await?;
        }
        self.rebuild_index().await?;
        self.prepared
            .store(true, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// True once [`Self::prepare`] succeeded: kind settings exist and the matcher holds the
    /// volunteers (`/readyz` waits for it).
    pub fn is_prepared(&self) -> bool {
        self.prepared.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Replaces the matcher's contents with the on-duty volunteers stored in PostgreSQL.
    ///
    /// # Errors
    /// Database or certification-source failures.
    pub async fn rebuild_index(&self) -> anyhow::Result<()> {
        self.index.begin_rebuild();
        // Changes committed after this are caught up later (see `crate::sync`).
        let xmin = store::snapshot_xmin(&mut *self.pool.acquire().await?).await?;
        let volunteers = store::all_volunteers(&self.pool).await?;
        let mut certs = self.certs.all_valid().await?;
        let states: Vec<_> = volunteers
            .into_iter()
            .filter_map(|row| {
                let codes = certs.remove(&row.user_id).unwrap_or_default();
                VolunteerFacts::from_row(&row, &codes)
            })
            .collect();
        let count = states.len();
        let touched = self.index.finish_rebuild(states);
        {
            // Never move the cursor forward here: a catch-up may have applied newer changes to
            // the matcher this rebuild just replaced.
            let mut cursor = self.sync.state.lock().await;
            cursor.xmin = Some(cursor.xmin.map_or(xmin, |known| known.min(xmin)));
        }
        for id in touched {
            self.reload_volunteer(id).await?;
        }
        // Positions not written yet are newer than the rows just read.
        for (id, at, recorded_at) in self.positions.pending_positions() {
            self.index.advance_position(id, at, recorded_at);
        }
        tracing::info!(volunteers = count, "dispatch matcher rebuilt");
        Ok(())
    }

    /// Applies the volunteer changes committed since the last catch-up, by any instance (see
    /// [`crate::sync`]); answers how many rows it read. A call made while another runs waits for
    /// it and returns at once when that one started after this call did (its snapshot covers
    /// everything this call would see). Does nothing before the first rebuild.
    ///
    /// # Errors
    /// Database or certification-source failures (the cursor stays; the next call reads again).
    pub async fn catch_up_volunteers(&self) -> DispatchResult<usize> {
        let requested = std::time::Instant::now();
        let mut cursor = self.sync.state.lock().await;
        if cursor.started.is_some_and(|started| started >= requested) {
            return Ok(0);
        }
        let Some(since) = cursor.xmin else {
            return Ok(0);
        };
        let started = std::time::Instant::now();
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let xmin = store::snapshot_xmin(&mut tx).await?;
        let (mut after_xid, mut after_user) = (since, Uuid::nil());
        let mut read = 0;
        let mut unknown = Vec::new();
        loop {
            let page = store::volunteers_changed(&mut tx, after_xid, after_user, crate::sync::PAGE)
                .await?;
            let full = page.len() as i64 >= crate::sync::PAGE;
            read += page.len();
            for changed in page {
                (after_xid, after_user) = (
                    changed.change_xid.parse().unwrap_or(after_xid),
                    changed.row.user_id,
                );
                if self.index.sync_row(&changed.row) {
                    unknown.push(changed.row);
                }
            }
            if !full {
                break;
            }
        }
        tx.commit().await?;
        for row in unknown {
            let codes = self.certifications(row.user_id).await?;
            if let Some(state) = VolunteerFacts::from_row(&row, &codes) {
                self.index.upsert(state);
            }
        }
        cursor.xmin = Some(xmin);
        cursor.started = Some(started);
        metrics::counter!("kreki_dispatch_volunteer_catch_up_rows_total").increment(read as u64);
        Ok(read)
    }

    /// True when this instance's matcher holds `volunteer` (on duty with a position), whichever
    /// instance their changes went through: for diagnostics and tests.
    pub fn in_matcher(&self, volunteer: Uuid) -> bool {
        self.index.contains(volunteer)
    }

    /// When the position the matcher holds for `volunteer` was recorded (`None`: not in the
    /// matcher).
    pub fn matcher_position_at(&self, volunteer: Uuid) -> Option<DateTime<Utc>> {
        self.index.position_at(volunteer)
    }

    /// This instance's name in volunteer-change announcements.
    pub(crate) fn sync_instance(&self) -> Uuid {
        self.sync.instance
    }

    /// True (once) when this instance changed volunteers since the last call.
    pub(crate) fn take_volunteer_changes(&self) -> bool {
        self.sync
            .dirty
            .swap(false, std::sync::atomic::Ordering::Relaxed)
    }

    /// Puts volunteer `id` into the matcher as PostgreSQL has them (or takes them out).
    async fn reload_volunteer(&self, id: Uuid) -> DispatchResult<()> {
        let row = store::volunteer(&self.pool, id).await?;
        let state = match row.filter(|row| row.on_duty) {
            Some(row) => VolunteerFacts::from_row(&row, &self.certifications(id).await?),
            None => None,
        };
        match state {
            Some(state) => self.index.upsert(state),
            None => self.index.remove(id),
        }
        Ok(())
    }

    /// Samples dropped from the location history because its queue was full.
    pub fn history_dropped(&self) -> u64 {
        self.history.dropped()
    }

    // ------------------------------------------------------------ alerts

    /// Stores an alert durably (alert, first timeline event, outbox row and idempotency row in one
    /// transaction), then wakes the dispatcher. The same key returns the same alert; the same key
    /// with another body is [`DispatchError::IdempotencyKeyReused`]; a second press near an open
    /// alert of the same kind attaches to it.
    ///
    /// # Errors
    /// Database failures (503 when unavailable; safe to retry with the same key).
    pub async fn create_alert(
        &self,
        citizen: &CurrentUser,
        key: &IdempotencyKey,
        request: AlertRequest,
    ) -> DispatchResult<(Alert, Ingest)> {
        let started = std::time::Instant::now();
        let hash = request.hash();
        let alert_id = Uuid::now_v7();
        let citizen_id = citizen.id.0;
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET LOCAL synchronous_commit = on")
            .execute(&mut *tx)
            .await?;
        if !store::claim_idempotency_key(&mut tx, citizen_id, key.as_str(), &hash, alert_id).await?
        {
            tx.rollback().await?;
            let (existing, stored_hash) =
                store::idempotency_key(&self.pool, citizen_id, key.as_str())
                    .await?
                    .ok_or_else(|| DispatchError::Internal("idempotency key vanished".into()))?;
            if stored_hash != hash {
                return Err(DispatchError::IdempotencyKeyReused);
            }
            return Ok((self.alert(existing).await?, Ingest::Replayed));
        }
        if let Some(existing) = store::open_alert_nearby(
            &mut tx,
            citizen_id,
            request.kind,
            request.at,
            self.config.repeat_press_radius_m,
            request.drill,
        )
        .await?
        {
            store::repoint_idempotency_key(&mut tx, citizen_id, key.as_str(), existing).await?;
            store::insert_event(
                &mut tx,
                existing,
                "repeat_press",
                Some(citizen_id),
                json!({"location": {"lat": request.at.lat(), "lng": request.at.lng()}, "note": request.note}),
            )
            .await?;
            tx.commit().await?;
            return Ok((self.alert(existing).await?, Ingest::Attached));
        }
        let settings = self.kind_settings(&mut tx, request.kind).await?;
        store::insert_alert(
            &mut tx,
            &store::NewAlert {
                id: alert_id,
                citizen_id,
                citizen_name: &citizen.name,
                kind: request.kind,
                at: request.at,
                accuracy_m: request.accuracy_m,
                note: request.note.as_deref(),
                patient_nik: request.patient_nik.as_deref(),
                drill: request.drill,
                responders_needed: i32::try_from(settings.responders_needed).unwrap_or(1),
            },
        )
        .await?;
        store::insert_event(
            &mut tx,
            alert_id,
            "created",
            Some(citizen_id),
            json!({"kind": request.kind, "drill": request.drill, "location": {"lat": request.at.lat(), "lng": request.at.lng(), "accuracy_m": request.accuracy_m}}),
        )
        .await?;
        tx.commit().await?;
        metrics::histogram!("kreki_dispatch_alert_commit_seconds")
            .record(started.elapsed().as_secs_f64());
        self.apply(vec![Effect::Wake(Wake::Alert(alert_id))]).await;
        let alert = self.alert(alert_id).await?;
        self.publish_alert(&alert);
        Ok((alert, Ingest::Created))
    }

    async fn kind_settings(
        &self,
        conn: &mut PgConnection,
        kind: AlertKind,
    ) -> DispatchResult<KindSettings> {
        Ok(store::kind(conn, kind)
            .await?
            .unwrap_or_else(|| self.config.kind_settings(kind)))
    }

    /// Alerts that changed after event `after` (at most `limit` events' worth), each as its full
    /// current state, for consumers of dispatch's event stream such as the SATUSEHAT bridge. The
    /// cursor to pass next time is the last change's `seq`. Events settle for
    /// [`CHANGE_SETTLE_S`] first, so a transaction still committing is never skipped. The same as
    /// [`changes_after`] over this service's pool.
    ///
    /// # Errors
    /// Database failures.
    pub async fn changes_after(&self, after: i64, limit: u32) -> DispatchResult<Vec<AlertChange>> {
        changes_after(&self.pool, after, limit).await
    }

    /// One alert with its assignments (no access check).
    ///
    /// # Errors
    /// [`DispatchError::NotFound`] or database failures.
    pub async fn alert(&self, id: Uuid) -> DispatchResult<Alert> {
        let mut conn = self.pool.acquire().await?;
        let row = store::alert(&mut conn, id)
            .await?
            .ok_or(DispatchError::NotFound("alert"))?;
        let assignments = store::assignments_of(&mut conn, id).await?;
        Ok(Alert::from_rows(row, assignments))
    }

    /// Checks that `user` may see alert `id`: its citizen, a volunteer offered or assigned it, or a
    /// coordinator (admins included).
    ///
    /// # Errors
    /// 404 for an unknown alert, 403 for someone else's.
    pub async fn check_can_see(&self, user: &CurrentUser, id: Uuid) -> DispatchResult<Alert> {
        let alert = self.alert(id).await?;
        if alert.citizen.id == user.id.0
            || user.roles.grants(Role::Coordinator)
            || store::was_offered(&self.pool, id, user.id.0).await?
        {
            Ok(alert)
        } else {
            Err(DispatchError::Forbidden("this is not your alert"))
        }
    }

    /// The alert's timeline, oldest first (after [`Self::check_can_see`]).
    ///
    /// # Errors
    /// As [`Self::check_can_see`].
    pub async fn timeline(
        &self,
        user: &CurrentUser,
        id: Uuid,
    ) -> DispatchResult<Vec<TimelineEvent>> {
        self.check_can_see(user, id).await?;
        Ok(store::events(&self.pool, id)
            .await?
            .into_iter()
            .map(TimelineEvent::from)
            .collect())
    }

    /// Alerts for the coordinators' map, newest first (at most 500).
    ///
    /// # Errors
    /// Database failures.
    pub async fn list_alerts(
        &self,
        status: Option<AlertStatus>,
        bbox: Option<[f64; 4]>,
    ) -> DispatchResult<Vec<Alert>> {
        let rows =
            store::list_alerts(&self.pool, status.map(AlertStatus::as_str), bbox, 500).await?;
        let ids: Vec<Uuid> = rows.iter().map(|row| row.id).collect();
        let mut assignments = store::assignments_of_many(&self.pool, &ids).await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let (mine, rest): (Vec<_>, Vec<_>) =
                    assignments.drain(..).partition(|a| a.alert_id == row.id);
                assignments = rest;
                Alert::from_rows(row, mine)
            })
            .collect())
    }

    /// Cancels an alert (its citizen or a coordinator): pending offers are withdrawn, active
    /// assignments end as `withdrawn`, timers stop.
    ///
    /// # Errors
    /// 403 for someone else's alert, 409 when already cancelled or resolved.
    pub async fn cancel(
        &self,
        user: &CurrentUser,
        id: Uuid,
        reason: Option<String>,
    ) -> DispatchResult<Alert> {
        let mut tx = self.pool.begin().await?;
        let alert = store::lock_alert(&mut tx, id)
            .await?
            .ok_or(DispatchError::NotFound("alert"))?;
        if alert.citizen_id != user.id.0 && !user.roles.grants(Role::Coordinator) {
            return Err(DispatchError::Forbidden(
                "only its citizen or a coordinator may cancel an alert",
            ));
        }
        let status = parse_status(&alert.status, AlertStatus::parse)?;
        if matches!(status, AlertStatus::Cancelled | AlertStatus::Resolved) {
            return Err(DispatchError::AlertClosed(status));
        }
        let mut effects = Vec::new();
        for (offer_id, volunteer) in store::close_pending_offers(&mut tx, id, "withdrawn").await? {
            effects.push(Effect::Withdrawn {
                volunteer,
                offer_id,
                alert_id: id,
                reason: "cancelled",
            });
        }
        for assignment in store::assignments_of(&mut tx, id).await? {
            if parse_status(&assignment.status, AssignmentStatus::parse)?.is_active() {
                let row = store::set_assignment_status(&mut tx, assignment.id, "withdrawn").await?;
                effects.push(Effect::Busy(row.volunteer_id, false));
                effects.push(Effect::AssignmentChanged(row.into()));
            }
        }
        store::cancel_timers(&mut tx, id).await?;
        store::set_alert_status(&mut tx, id, AlertStatus::Cancelled.as_str()).await?;
        store::insert_event(
            &mut tx,
            id,
            "cancelled",
            Some(user.id.0),
            json!({"reason": reason}),
        )
        .await?;
        tx.commit().await?;
        effects.push(Effect::AlertChanged(id));
        self.apply(effects).await;
        self.alert(id).await
    }

    /// A coordinator assigns a volunteer directly (no offer needed). The volunteer must be on duty
    /// and free.
    ///
    /// # Errors
    /// 409 when the alert is closed or covered, or the volunteer is off duty or busy.
    pub async fn assign(
        &self,
        coordinator: &CurrentUser,
        id: Uuid,
        volunteer_id: Uuid,
    ) -> DispatchResult<Alert> {
        let mut tx = self.pool.begin().await?;
        let alert = store::lock_alert(&mut tx, id)
            .await?
            .ok_or(DispatchError::NotFound("alert"))?;
        let status = parse_status(&alert.status, AlertStatus::parse)?;
        if matches!(status, AlertStatus::Cancelled | AlertStatus::Resolved) {
            return Err(DispatchError::AlertClosed(status));
        }
        let volunteer = store::volunteer_in(&mut tx, volunteer_id)
            .await?
            .filter(|row| row.on_duty)
            .ok_or(DispatchError::VolunteerOffDuty)?;
        let active = active_count(&mut tx, id).await?;
        if active >= alert.responders_needed {
            return Err(DispatchError::AlertCovered);
        }
        let row = insert_assignment(&mut tx, id, volunteer_id, &volunteer.name, None, None).await?;
        let mut effects = vec![
            Effect::Busy(volunteer_id, true),
            Effect::AssignmentChanged(row.clone().into()),
        ];
        if active + 1 >= alert.responders_needed {
            effects.extend(self.cover(&mut tx, id).await?);
        }
        if matches!(status, AlertStatus::Dispatching | AlertStatus::Unmatched) {
            store::set_alert_status(&mut tx, id, AlertStatus::Assigned.as_str()).await?;
        }
        store::insert_event(
            &mut tx,
            id,
            "assigned",
            Some(coordinator.id.0),
            json!({"assignment_id": row.id, "volunteer": {"id": volunteer_id, "name": volunteer.name}}),
        )
        .await?;
        tx.commit().await?;
        effects.push(Effect::AlertChanged(id));
        effects.push(Effect::WithdrawOtherOffers(volunteer_id));
        self.apply(effects).await;
        self.alert(id).await
    }

    /// Withdraws the pending offers of a covered alert and stops its timers.
    async fn cover(&self, conn: &mut PgConnection, id: Uuid) -> DispatchResult<Vec<Effect>> {
        store::cancel_timers(conn, id).await?;
        Ok(store::close_pending_offers(conn, id, "withdrawn")
            .await?
            .into_iter()
            .map(|(offer_id, volunteer)| Effect::Withdrawn {
                volunteer,
                offer_id,
                alert_id: id,
                reason: "covered",
            })
            .collect())
    }

    // ------------------------------------------------------------ waves

    /// Processes one outbox row (of `alert` when given): sends the alert's next wave if it needs
    /// one. Returns false when there was no unclaimed row.
    ///
    /// # Errors
    /// Database failures (the row stays for the poller).
    pub async fn process_outbox(&self, alert: Option<Uuid>) -> DispatchResult<bool> {
        self.catch_up_before_wave().await;
        let mut tx = self.pool.begin().await?;
        let Some((row_id, alert_id)) = store::claim_outbox(&mut tx, alert).await? else {
            return Ok(false);
        };
        let effects = self.next_wave(&mut tx, alert_id, None).await?;
        store::finish_outbox(&mut tx, row_id).await?;
        tx.commit().await?;
        self.apply(effects).await;
        Ok(true)
    }

    /// Fires one due timer: the wave it closes expires and the next goes out. Returns false when
    /// no timer was due.
    ///
    /// # Errors
    /// Database failures (the timer stays for the next poll).
    pub async fn process_due_timer(&self) -> DispatchResult<bool> {
        self.catch_up_before_wave().await;
        let mut tx = self.pool.begin().await?;
        let Some((timer_id, alert_id, wave)) = store::claim_due_timer(&mut tx).await? else {
            return Ok(false);
        };
        let effects = self.next_wave(&mut tx, alert_id, Some(wave)).await?;
        store::fire_timer(&mut tx, timer_id).await?;
        tx.commit().await?;
        self.apply(effects).await;
        Ok(true)
    }

    /// Volunteers may have changed on another instance: the matcher sees every change committed
    /// before a wave's transaction begins. Done before it begins, so a wave never holds its
    /// connection and the alert's row lock while a second connection reads the changes.
    async fn catch_up_before_wave(&self) {
        if let Err(error) = self.catch_up_volunteers().await {
            tracing::warn!(%error, "volunteer catch-up before a wave failed; matching with what this instance knows");
        }
    }

    /// Sends the next wave of `alert_id` if it still needs responders. With `after_wave`, only when
    /// that wave is the alert's current one (a timer of an old wave does nothing); without it, only
    /// when no offer of the alert is still live.
    async fn next_wave(
        &self,
        conn: &mut PgConnection,
        alert_id: Uuid,
        after_wave: Option<i32>,
    ) -> DispatchResult<Vec<Effect>> {
        let mut effects = Vec::new();
        let Some(alert) = store::lock_alert(conn, alert_id).await? else {
            return Ok(effects);
        };
        let status = parse_status(&alert.status, AlertStatus::parse)?;
        if !matches!(
            status,
            AlertStatus::Dispatching | AlertStatus::Assigned | AlertStatus::OnScene
        ) {
            return Ok(effects);
        }
        match after_wave {
            Some(wave) if wave != alert.wave => return Ok(effects),
            None if store::has_live_offers(conn, alert_id).await? => return Ok(effects),
            _ => {}
        }
        let active = active_count(conn, alert_id).await?;
        if active >= alert.responders_needed {
            return Ok(effects);
        }
        for (offer_id, volunteer) in store::close_pending_offers(conn, alert_id, "expired").await? {
            effects.push(Effect::Withdrawn {
                volunteer,
                offer_id,
                alert_id,
                reason: "expired",
            });
        }
        let kind = AlertKind::parse(&alert.kind)
            .ok_or_else(|| DispatchError::Internal(format!("unknown kind {:?}", alert.kind)))?;
        let settings = self.kind_settings(conn, kind).await?;
        let at = LatLng::new(alert.lat, alert.lng)
            .map_err(|error| DispatchError::Internal(format!("stored alert position: {error}")))?;
        let mut excluded: HashSet<Uuid> = store::offered_volunteers(conn, alert_id)
            .await?
            .into_iter()
            .collect();
        let mut wave = alert.wave;
        loop {
            wave += 1;
            let Some(spec) = usize::try_from(wave - 1)
                .ok()
                .and_then(|index| settings.waves.get(index))
            else {
                store::set_alert_wave(conn, alert_id, wave - 1).await?;
                store::insert_event(
                    conn,
                    alert_id,
                    "waves_exhausted",
                    None,
                    json!({"waves": wave - 1}),
                )
                .await?;
                if active == 0 {
                    store::set_alert_status(conn, alert_id, AlertStatus::Unmatched.as_str())
                        .await?;
                    store::insert_event(conn, alert_id, "unmatched", None, json!({})).await?;
                    effects.push(Effect::Unmatched(alert_id));
                    effects.push(Effect::AlertChanged(alert_id));
                }
                break;
            };
            let candidates = self.index.nearest(
                at,
                f64::from(spec.radius_m),
                spec.count as usize,
                &settings.required_certifications,
                settings.requires_verified_practitioner,
                &excluded,
            );
            if candidates.is_empty() {
                store::insert_event(
                    conn,
                    alert_id,
                    "wave_empty",
                    None,
                    json!({"wave": wave, "radius_m": spec.radius_m}),
                )
                .await?;
                continue;
            }
            let expires_at = Utc::now() + Duration::seconds(i64::from(spec.timeout_s));
            let mut offered = Vec::with_capacity(candidates.len());
            for (volunteer, distance_m) in candidates {
                let row =
                    store::insert_offer(conn, alert_id, volunteer, wave, distance_m, expires_at)
                        .await?;
                excluded.insert(volunteer);
                offered.push(volunteer);
                effects.push(Effect::Offer(volunteer, row.into()));
            }
            store::set_alert_wave(conn, alert_id, wave).await?;
            store::set_timer(conn, alert_id, wave, expires_at).await?;
            store::insert_event(
                conn,
                alert_id,
                "offers_sent",
                None,
                json!({"wave": wave, "radius_m": spec.radius_m, "volunteers": offered, "expires_at": expires_at}),
            )
            .await?;
            metrics::counter!("kreki_dispatch_offers_total").increment(offered.len() as u64);
            break;
        }
        Ok(effects)
    }

    // ------------------------------------------------------------ offers

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
        offer_id: Uuid,
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
        let alert_status = parse_status(&alert.status, AlertStatus::parse)?;
        if matches!(alert_status, AlertStatus::Cancelled | AlertStatus::Resolved) {
            return Err(DispatchError::AlertClosed(alert_status));
        }
        let active = active_count(&mut tx, alert_id).await?;
        match parse_status(&offer.status, OfferStatus::parse)? {
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
        let row = insert_assignment(
            &mut tx,
            alert_id,
            volunteer.id.0,
            &volunteer.name,
            Some(offer_id),
            Some(offer.distance_m),
        )
        .await?;
        store::answer_offer(&mut tx, offer_id, OfferStatus::Accepted.as_str(), None).await?;
        let mut effects = vec![
            Effect::Busy(volunteer.id.0, true),
            Effect::AssignmentChanged(row.clone().into()),
        ];
        if active + 1 >= alert.responders_needed {
            effects.extend(self.cover(&mut tx, alert_id).await?);
        }
        if alert_status != AlertStatus::OnScene {
            store::set_alert_status(&mut tx, alert_id, AlertStatus::Assigned.as_str()).await?;
        }
        store::insert_event(
            &mut tx,
            alert_id,
            "accepted",
            Some(volunteer.id.0),
            json!({"assignment_id": row.id, "offer_id": offer_id, "distance_m": offer.distance_m,
                   "volunteer": {"id": volunteer.id.0, "name": volunteer.name}}),
        )
        .await?;
        tx.commit().await?;
        metrics::histogram!("kreki_dispatch_accept_seconds")
            .record(started.elapsed().as_secs_f64());
        effects.push(Effect::AlertChanged(alert_id));
        effects.push(Effect::WithdrawOtherOffers(volunteer.id.0));
        self.apply(effects).await;
        Ok(row.into())
    }

    /// Declines an offer. When no offer of the alert is still pending, the next wave goes out now
    /// instead of at the deadline.
    ///
    /// # Errors
    /// 404 unknown offer; 403 someone else's; 409 when it is no longer pending.
    pub async fn decline(
        &self,
        volunteer: &CurrentUser,
        offer_id: Uuid,
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
        match parse_status(&offer.status, OfferStatus::parse)? {
            OfferStatus::Pending if offer.expires_at <= Utc::now() => {
                return Err(DispatchError::OfferExpired);
            }
            OfferStatus::Pending => {}
            OfferStatus::Expired => return Err(DispatchError::OfferExpired),
            other => return Err(DispatchError::OfferNotPending(other)),
        }
        store::answer_offer(
            &mut tx,
            offer_id,
            OfferStatus::Declined.as_str(),
            reason.as_deref(),
        )
        .await?;
        store::insert_event(
            &mut tx,
            alert_id,
            "offer_declined",
            Some(volunteer.id.0),
            json!({"offer_id": offer_id, "reason": reason}),
        )
        .await?;
        let mut effects = Vec::new();
        if offer.wave == alert.wave && !store::has_live_offers(&mut tx, alert_id).await? {
            store::set_timer(&mut tx, alert_id, alert.wave, Utc::now()).await?;
            effects.push(Effect::Wake(Wake::Timers));
        }
        tx.commit().await?;
        self.apply(effects).await;
        let mut offer = Offer::from(offer);
        offer.status = OfferStatus::Declined.as_str().to_owned();
        Ok(offer)
    }

    // ------------------------------------------------------------ assignments

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
        assignment_id: Uuid,
        to: AssignmentStatus,
    ) -> DispatchResult<Assignment> {
        let mut conn = self.pool.acquire().await?;
        let current = store::lock_assignment(&mut conn, assignment_id)
            .await?
            .ok_or(DispatchError::NotFound("assignment"))?;
        drop(conn);
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
        let from = parse_status(&current.status, AssignmentStatus::parse)?;
        if from == to {
            return Ok(current.into());
        }
        let allowed = match from {
            AssignmentStatus::Accepted => true,
            AssignmentStatus::EnRoute => to != AssignmentStatus::Accepted,
            AssignmentStatus::OnScene => {
                matches!(
                    to,
                    AssignmentStatus::Completed | AssignmentStatus::Withdrawn
                )
            }
            AssignmentStatus::Completed | AssignmentStatus::Withdrawn => false,
        };
        if !allowed {
            return Err(DispatchError::InvalidTransition {
                from: from.as_str(),
                to: to.as_str(),
            });
        }
        let row = store::set_assignment_status(&mut tx, assignment_id, to.as_str()).await?;
        let mut effects = vec![Effect::AssignmentChanged(row.clone().into())];
        let alert_status = parse_status(&alert.status, AlertStatus::parse)?;
        match to {
            AssignmentStatus::OnScene if alert_status == AlertStatus::Assigned => {
                store::set_alert_status(&mut tx, alert.id, AlertStatus::OnScene.as_str()).await?;
            }
            AssignmentStatus::Completed => {
                let rest_until = Utc::now()
                    + Duration::seconds(i64::try_from(self.config.rest_period_s).unwrap_or(300));
                store::set_rest_until(&mut tx, volunteer.id.0, rest_until).await?;
                effects.push(Effect::Busy(volunteer.id.0, false));
                effects.push(Effect::Rest(volunteer.id.0, rest_until));
                if active_count(&mut tx, alert.id).await? == 0 && alert_status.is_open() {
                    effects.extend(self.cover(&mut tx, alert.id).await?);
                    store::set_alert_status(&mut tx, alert.id, AlertStatus::Resolved.as_str())
                        .await?;
                    store::insert_event(
                        &mut tx,
                        alert.id,
                        "resolved",
                        Some(volunteer.id.0),
                        json!({}),
                    )
                    .await?;
                }
            }
            AssignmentStatus::Withdrawn => {
                effects.push(Effect::Busy(volunteer.id.0, false));
                let active = active_count(&mut tx, alert.id).await?;
                if active < alert.responders_needed && alert_status.is_open() {
                    if active == 0 {
                        store::set_alert_status(
                            &mut tx,
                            alert.id,
                            AlertStatus::Dispatching.as_str(),
                        )
                        .await?;
                    }
                    sqlx::query("INSERT INTO dispatch.outbox (alert_id) VALUES ($1)")
                        .bind(alert.id)
                        .execute(&mut *tx)
                        .await?;
                    effects.push(Effect::Wake(Wake::Alert(alert.id)));
                }
            }
            _ => {}
        }
        store::insert_event(
            &mut tx,
            alert.id,
            "assignment_status",
            Some(volunteer.id.0),
            json!({"assignment_id": assignment_id, "from": from, "to": to}),
        )
        .await?;
        tx.commit().await?;
        effects.push(Effect::AlertChanged(alert.id));
        self.apply(effects).await;
        Ok(row.into())
    }

    // ------------------------------------------------------------ volunteers

    /// Puts the volunteer on or off duty; answers the alert kinds they are eligible for.
    ///
    /// # Errors
    /// Database or certification-source failures.
    pub async fn set_duty(
        &self,
        volunteer: &CurrentUser,
        on_duty: bool,
    ) -> DispatchResult<Vec<AlertKind>> {
        let row = store::set_duty(&self.pool, volunteer.id.0, &volunteer.name, on_duty).await?;
        self.sync.changed();
        let codes = self.certifications(volunteer.id.0).await?;
        let kinds = self
            .eligible_kinds(&codes, row.practitioner_verified)
            .await?;
        if on_duty {
            if let Some(state) = VolunteerFacts::from_row(&row, &codes) {
                self.index.upsert(state);
            }
        } else {
            self.index.remove(volunteer.id.0);
        }
        Ok(kinds)
    }

    async fn certifications(&self, user: Uuid) -> DispatchResult<Vec<String>> {
        self.certs
            .valid_for(user)
            .await
            .map_err(|error| DispatchError::Internal(format!("certification source: {error:#}")))
    }

    async fn eligible_kinds(
        &self,
        codes: &[String],
        verified: bool,
    ) -> DispatchResult<Vec<AlertKind>> {
        Ok(store::kinds(&self.pool)
            .await?
            .into_iter()
            .filter(|(_, settings)| {
                (verified || !settings.requires_verified_practitioner)
                    && settings
                        .required_certifications
                        .iter()
                        .all(|code| codes.contains(code))
            })
            .map(|(kind, _)| kind)
            .collect())
    }

    /// Records a volunteer's position: PostgreSQL (latest), the matcher, and, while on duty, the
    /// history queue and a `volunteer.position` message to coordinators. Used by HTTP and by
    /// WebSocket `location` frames. A position recorded before the stored one is kept in history
    /// only.
    ///
    /// # Errors
    /// Database failures.
    pub async fn update_location(
        &self,
        volunteer: Uuid,
        name: &str,
        at: LatLng,
        accuracy_m: Option<f32>,
        recorded_at: Option<DateTime<Utc>>,
    ) -> DispatchResult<()> {
        let now = Utc::now();
        // A device clock ahead of ours must not make a position look fresher than it is.
        let recorded_at = recorded_at.map_or(now, |at| at.min(now));
        let sample = Sample {
            volunteer_id: volunteer,
            at,
            accuracy_m,
            recorded_at,
        };
        match self.index.advance_position(volunteer, at, recorded_at) {
            // On duty and located: the matcher has it now, the table within a flush interval
            // (`crate::positions`).
            Advance::Moved => {
                self.positions
                    .submit(volunteer, name, at, accuracy_m, recorded_at)
                    .await?;
                self.history.push(sample);
                self.publish_position(volunteer, at, accuracy_m, recorded_at);
                return Ok(());
            }
            // Older than what the matcher holds: history only.
            Advance::Older => {
                self.history.push(sample);
                return Ok(());
            }
            Advance::Unknown => {}
        }
        // Off duty, or the first position since going on duty: the row decides (and is created
        // when new), synchronously.
        let stored =
            store::set_position(&self.pool, volunteer, name, at, accuracy_m, recorded_at).await?;
        if stored.latest {
            self.sync.changed();
        }
        if stored.latest && !self.index.update_position(volunteer, at, recorded_at) {
            // Not in the matcher yet (first position since going on duty, or off duty).
            self.reload_volunteer(volunteer).await?;
        }
        // Off duty, a volunteer's whereabouts are nobody's business: only the latest position is
        // kept (for going on duty), neither history nor the coordinators' map.
        if stored.on_duty {
            self.history.push(sample);
            if stored.latest {
                self.publish_position(volunteer, at, accuracy_m, recorded_at);
            }
        }
        Ok(())
    }

    /// Shows an on-duty volunteer's new position on the coordinators' map.
    fn publish_position(
        &self,
        volunteer: Uuid,
        at: LatLng,
        accuracy_m: Option<f32>,
        recorded_at: DateTime<Utc>,
    ) {
        self.notifier.publish(
            Audience::Role(Role::Coordinator),
            json!({"type": "volunteer.position", "volunteer_id": volunteer, "lat": at.lat(), "lng": at.lng(),
                   "accuracy_m": accuracy_m, "recorded_at": recorded_at}),
        );
    }

    /// Writes the positions waiting in the write-behind map now ([`crate::positions::run`] does
    /// every `position_flush_interval_ms`; shutdown and tests call it too) and announces them to
    /// other instances; answers how many volunteers were written.
    ///
    /// # Errors
    /// Database failures (the positions stay queued for the next flush).
    pub async fn flush_positions(&self) -> DispatchResult<usize> {
        let written = self.positions.flush(&self.pool).await?;
        if written > 0 {
            self.sync.changed();
        }
        Ok(written)
    }

    /// The write-behind position map (its counters, for tests and benchmarks).
    pub fn position_writer(&self) -> &PositionWriter {
        &self.positions
    }

    /// Volunteers for the coordinators' map (at most 2000).
    ///
    /// # Errors
    /// Database failures.
    pub async fn list_volunteers(&self, bbox: Option<[f64; 4]>) -> DispatchResult<Vec<Volunteer>> {
        Ok(store::volunteers_in_box(&self.pool, bbox, 2000)
            .await?
            .into_iter()
            .map(Volunteer::from)
            .collect())
    }

    /// Re-reads `user`'s certifications and updates the matcher at once (the LMS calls this when a
    /// certificate is issued, expires or is revoked).
    ///
    /// # Errors
    /// Certification-source failures.
    pub async fn eligibility_changed(&self, user: Uuid) -> DispatchResult<()> {
        let codes = self.certifications(user).await?;
        self.index.set_certifications(user, &codes);
        Ok(())
    }

    /// Stores whether `user` is a verified health practitioner and updates the matcher. The
    /// SATUSEHAT bridge (issue 5) calls this after it checked the volunteer's NIK; kinds with
    /// `requires_verified_practitioner` are offered only to verified volunteers.
    ///
    /// # Errors
    /// Database failures.
    pub async fn set_practitioner_verified(
        &self,
        user: Uuid,
        verified: bool,
    ) -> DispatchResult<()> {
        store::set_practitioner_verified(&self.pool, user, verified).await?;
        self.sync.changed();
        self.index.set_verified_practitioner(user, verified);
        Ok(())
    }

    /// May `user` receive messages of alert `id` (the realtime topic `alert:{id}`)?
    ///
    /// # Errors
    /// Database failures.
    pub async fn may_see_alert(&self, user: &CurrentUser, id: Uuid) -> DispatchResult<bool> {
        match self.check_can_see(user, id).await {
            Ok(_) => Ok(true),
            Err(DispatchError::Forbidden(_) | DispatchError::NotFound(_)) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Every kind's settings.
    ///
    /// # Errors
    /// Database failures.
    pub async fn kinds(&self) -> DispatchResult<Vec<(AlertKind, KindSettings)>> {
        Ok(store::kinds(&self.pool).await?)
    }

    /// Replaces one kind's settings; the next wave of every alert of that kind uses them.
    ///
    /// # Errors
    /// 422 naming the field out of range.
    pub async fn put_kind(&self, kind: AlertKind, settings: &KindSettings) -> DispatchResult<()> {
        let errors = settings.validate("");
        if !errors.is_empty() {
            return Err(DispatchError::Validation(errors));
        }
        store::put_kind(&self.pool, kind, settings).await?;
        Ok(())
    }

    // ------------------------------------------------------------ effects

    async fn apply(&self, effects: Vec<Effect>) {
        let mut alerts_changed = Vec::new();
        let mut queue: std::collections::VecDeque<Effect> = effects.into();
        while let Some(effect) = queue.pop_front() {
            match effect {
                Effect::Offer(volunteer, offer) => self.notifier.publish(
                    Audience::User(volunteer),
                    json!({"type": "offer", "offer": offer}),
                ),
                Effect::Withdrawn {
                    volunteer,
                    offer_id,
                    alert_id,
                    reason,
                } => self.notifier.publish(
                    Audience::User(volunteer),
                    json!({"type": "offer.withdrawn", "offer_id": offer_id, "alert_id": alert_id, "reason": reason}),
                ),
                Effect::AlertChanged(id) => {
                    if !alerts_changed.contains(&id) {
                        alerts_changed.push(id);
                    }
                }
                Effect::Unmatched(id) => {
                    metrics::counter!("kreki_dispatch_unmatched_total").increment(1);
                    tracing::warn!(alert_id = %id, "alert unmatched after every wave");
                }
                Effect::AssignmentChanged(assignment) => {
                    let message = json!({"type": "assignment.updated", "assignment": assignment});
                    self.notifier
                        .publish(Audience::User(assignment.volunteer.id), message.clone());
                    self.notifier
                        .publish(Audience::Role(Role::Coordinator), message);
                }
                Effect::Busy(volunteer, busy) => {
                    self.index.set_busy(volunteer, busy);
                    self.sync.changed();
                }
                Effect::Rest(volunteer, until) => {
                    self.index.set_rest_until(volunteer, until);
                    self.sync.changed();
                }
                Effect::Wake(wake) => {
                    // Full or closed: the poller finds the work within a poll interval.
                    if self.wake.try_send(wake).is_err() {
                        tracing::debug!("dispatcher wake queue full; the poller takes over");
                    }
                }
                Effect::WithdrawOtherOffers(volunteer) => {
                    match self.withdraw_other_offers(volunteer).await {
                        Ok(more) => queue.extend(more),
                        // Best effort: the offers still expire at their deadline.
                        Err(error) => tracing::warn!(%volunteer, %error, "other offers not withdrawn"),
                    }
                }
            }
        }
        for id in alerts_changed {
            match self.alert(id).await {
                Ok(alert) => self.publish_alert(&alert),
                Err(error) => tracing::warn!(alert_id = %id, %error, "alert.updated not sent"),
            }
        }
    }

    /// Withdraws a newly busy volunteer's other pending offers and, for each alert left with no
    /// live offer, moves its wave deadline to now. Separate statements, each committing on its
    /// own and taking no alert lock, so they cannot deadlock with waves or accepts.
    async fn withdraw_other_offers(&self, volunteer: Uuid) -> DispatchResult<Vec<Effect>> {
        let withdrawn = store::withdraw_offers_of_volunteer(&self.pool, volunteer).await?;
        let mut effects = Vec::new();
        let mut alerts = Vec::new();
        for (offer_id, alert_id) in withdrawn {
            effects.push(Effect::Withdrawn {
                volunteer,
                offer_id,
                alert_id,
                reason: "busy",
            });
            if !alerts.contains(&alert_id) {
                alerts.push(alert_id);
            }
        }
        let mut moved = false;
        for alert_id in alerts {
            moved |= store::hurry_timer_without_live_offers(&self.pool, alert_id).await?;
        }
        if moved {
            effects.push(Effect::Wake(Wake::Timers));
        }
        Ok(effects)
    }

    fn publish_alert(&self, alert: &Alert) {
        let message = json!({"type": "alert.updated", "alert": alert});
        self.notifier
            .publish(Audience::User(alert.citizen.id), message.clone());
        let volunteers: Vec<Uuid> = alert
            .assignments
            .iter()
            .map(|assignment| assignment.volunteer.id)
            .collect();
        if !volunteers.is_empty() {
            self.notifier
                .publish(Audience::Users(volunteers), message.clone());
        }
        self.notifier
            .publish(Audience::Role(Role::Coordinator), message.clone());
        self.notifier
            .publish(Audience::Topic(format!("alert:{}", alert.id)), message);
    }
}

async fn active_count(conn: &mut PgConnection, alert_id: Uuid) -> Result<i32, sqlx::Error> {
    let count: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM dispatch.assignments
         WHERE alert_id = $1 AND status IN ('accepted', 'en_route', 'on_scene')",
    )
    .bind(alert_id)
    .fetch_one(conn)
    .await?;
    Ok(i32::try_from(count).unwrap_or(i32::MAX))
}

async fn insert_assignment(
    conn: &mut PgConnection,
    alert_id: Uuid,
    volunteer_id: Uuid,
    name: &str,
    offer_id: Option<Uuid>,
    distance_m: Option<f64>,
) -> DispatchResult<store::AssignmentRow> {
    store::insert_assignment(conn, alert_id, volunteer_id, name, offer_id, distance_m)
        .await
        .map_err(|error| {
            if kreki_platform::db::unique_violation(&error)
                == Some("assignments_one_active_per_volunteer")
            {
                DispatchError::VolunteerBusy
            } else {
                DispatchError::Database(error)
            }
        })
}
