//! The SQL of waves: claiming due work together with the snapshots it needs (one statement), and
//! writing the plans of a whole batch (one statement). See `crate::wave` for the decision in
//! between and `crate::service::waves` for the order of things.
//!
//! **Claims.** Work is an unprocessed `dispatch.outbox` row (an alert that may need a wave) or a
//! due, unfired `dispatch.timers` row (a wave's deadline). A dispatcher claims rows with a
//! session-level advisory lock (`pg_try_advisory_lock`), skipping rows another dispatcher holds,
//! and the write that finishes the batch releases them. The claim costs no disk write and no open
//! transaction; a dispatcher that dies loses its connection and with it its claims, at once.
//!
//! **Writes.** A plan was made from a snapshot read without locks, so it is written only if the
//! alert is still as read: the statement locks the batch's alerts in id order, keeps those whose
//! `version` is unchanged (every write of an alert row bumps it; a concurrent accept or cancel
//! therefore makes the plan stale), and applies everything else only to those. Work rows are
//! finished with them; the work of a stale plan stays for the next claim.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

use crate::domain::{
    AlertId, AlertKind, AlertStatus, KindSettings, OfferId, OfferPolicy, ResponderRole, WaveSpec,
};
use crate::geo::LatLng;
use crate::wave::{AlertState, Changes, PendingOffer, Snapshot, Trigger};

/// Advisory-lock class of claimed outbox rows (`KR\0\1`).
const OUTBOX_LOCK_CLASS: i32 = 0x4b52_0001;
/// Advisory-lock class of claimed timers (`KR\0\2`).
const TIMER_LOCK_CLASS: i32 = 0x4b52_0002;

macro_rules! claim_outbox_sql {
    () => {
        "SELECT id, alert_id, reason FROM dispatch.outbox WHERE processed_at IS NULL ORDER BY id LIMIT 256"
    };
}

macro_rules! claim_woken_outbox_sql {
    () => {
        "SELECT id, alert_id, reason FROM dispatch.outbox
         WHERE processed_at IS NULL AND alert_id = ANY($1::uuid[])
         ORDER BY id LIMIT 256"
    };
}

macro_rules! claim_due_timer_sql {
    () => {
        "SELECT id, alert_id, wave FROM dispatch.timers
         WHERE fired_at IS NULL AND due_at <= now()
         ORDER BY due_at LIMIT 256"
    };
}

/// The outbox part of [`claim`] for any alert, oldest first (served by `outbox_pending_idx`).
pub const CLAIM_OUTBOX_SQL: &str = claim_outbox_sql!();
/// The outbox part of [`claim`] for the alerts a dispatcher was woken for (`$1`, served by
/// `outbox_alert_pending_idx`).
pub const CLAIM_WOKEN_OUTBOX_SQL: &str = claim_woken_outbox_sql!();
/// The timer part of [`claim`] (served by `timers_due_idx`).
pub const CLAIM_DUE_TIMER_SQL: &str = claim_due_timer_sql!();

/// Which work to claim.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkWanted {
    /// Outbox rows: `None` for none, `Some(None)` for the oldest of all, `Some(Some(ids))` for
    /// those of these alerts.
    pub outbox: Option<Option<Vec<AlertId>>>,
    /// Due timers (the earliest first).
    pub timers: bool,
    /// Most rows of each kind.
    pub limit: u32,
}

/// A claimed row of work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Work {
    /// An outbox row: the alert may need a wave, or (`replace`) declined offers replaced.
    Outbox {
        /// Row id.
        id: i64,
        /// Asked to replace declined offers within the current wave.
        replace: bool,
    },
    /// A timer: the deadline of `wave` fell due.
    Deadline {
        /// Row id.
        id: i64,
        /// Its wave.
        wave: u32,
    },
}

impl Work {
    /// What this work asks of the wave policy.
    pub fn trigger(self) -> Trigger {
        match self {
            Self::Outbox { replace: false, .. } => Trigger::NeedsWave,
            Self::Outbox { replace: true, .. } => Trigger::Replace,
            Self::Deadline { wave, .. } => Trigger::Deadline { wave },
        }
    }
}

/// What a wave needs to know of an alert beyond the policy's snapshot: where it is (for the
/// matcher) and what its offers show.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertFacts {
    /// The alert.
    pub id: AlertId,
    /// Its kind (eligibility).
    pub kind: AlertKind,
    /// Where.
    pub at: LatLng,
    /// Accuracy, metres.
    pub accuracy_m: Option<f32>,
    /// The citizen's note.
    pub note: Option<String>,
    /// A drill.
    pub drill: bool,
    /// The trace of the request that raised it, when traces are exported.
    pub traceparent: Option<String>,
}

/// An alert with claimed work: its facts, its snapshot for the policy and the version it was read
/// at.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// The claimed rows of this alert.
    pub work: Vec<Work>,
    /// What the matcher and the offers need.
    pub facts: AlertFacts,
    /// What the policy needs.
    pub snapshot: Snapshot,
    /// Whether the kind had a settings row (otherwise the caller's defaults are in `snapshot`).
    pub settings_stored: bool,
    /// The alert's `version` when read.
    pub version: i64,
}

#[derive(sqlx::FromRow)]
struct WorkRow {
    is_timer: bool,
    work_id: i64,
    timer_wave: Option<i32>,
    replace: bool,
    id: AlertId,
    kind: AlertKind,
    status: AlertStatus,
    lat: f64,
    lng: f64,
    accuracy_m: Option<f32>,
    note: Option<String>,
    drill: bool,
    responders_needed: i32,
    wave: i32,
    wave_ends_at: Option<DateTime<Utc>>,
    version: i64,
    traceparent: Option<String>,
    extra_radii_m: Vec<i32>,
    required_certifications: Option<Vec<String>>,
    requires_verified_practitioner: Option<bool>,
    kind_responders_needed: Option<i32>,
    waves: Option<Json<Vec<WaveSpec>>>,
    policy: Option<Json<OfferPolicy>>,
    roles: Option<Vec<ResponderRole>>,
    pending_ids: Vec<OfferId>,
    pending_volunteers: Vec<Uuid>,
    pending_waves: Vec<i32>,
    pending_expires: Vec<DateTime<Utc>>,
    offered: Vec<Uuid>,
    active: i64,
}

fn count(value: i32) -> u32 {
    u32::try_from(value).unwrap_or(0)
}

/// The snapshot columns of an alert `a` (its kind's settings joined as `k`): one statement reads
/// the alert, its pending offers, everyone offered it and its active responders.
macro_rules! snapshot_columns {
    () => {
        "a.id, a.kind, a.status, ST_Y(a.location::geometry) AS lat, ST_X(a.location::geometry) AS lng,
         a.accuracy_m, a.note, a.drill, a.responders_needed, a.wave, a.wave_ends_at, a.version,
         a.traceparent, a.extra_radii_m, k.required_certifications, k.requires_verified_practitioner,
         k.responders_needed AS kind_responders_needed, k.waves, k.policy, k.roles,
         coalesce(p.ids, '{}') AS pending_ids, coalesce(p.volunteers, '{}') AS pending_volunteers,
         coalesce(p.waves, '{}') AS pending_waves, coalesce(p.expires, '{}') AS pending_expires,
         ARRAY(SELECT o.volunteer_id FROM dispatch.offers o WHERE o.alert_id = a.id) AS offered,
         (SELECT count(*) FROM dispatch.assignments s
          WHERE s.alert_id = a.id AND s.status IN ('accepted', 'en_route', 'on_scene')) AS active"
    };
}

macro_rules! snapshot_joins {
    () => {
        " LEFT JOIN dispatch.kind_settings k ON k.kind = a.kind
         LEFT JOIN LATERAL (
             SELECT array_agg(o.id ORDER BY o.id) AS ids, array_agg(o.volunteer_id ORDER BY o.id) AS volunteers,
                    array_agg(o.wave ORDER BY o.id) AS waves, array_agg(o.expires_at ORDER BY o.id) AS expires
             FROM dispatch.offers o WHERE o.alert_id = a.id AND o.status = 'pending') p ON true"
    };
}

/// Claims work (skipping rows other dispatchers hold) and reads the snapshot of every alert it
/// is for, in one statement. The claims stay held on `conn` until [`write_plans`] (or
/// [`release_claims`]) runs on the same connection; `defaults` stands in for a kind without a
/// settings row. At most `wanted.limit` rows of each kind.
pub async fn claim(
    conn: &mut PgConnection,
    wanted: &WorkWanted,
    defaults: &(dyn Fn(AlertKind) -> KindSettings + Sync),
) -> Result<Vec<Claimed>, sqlx::Error> {
    let alerts: Option<Vec<AlertId>> = wanted.outbox.clone().flatten();
    let rows: Vec<WorkRow> = sqlx::query_as(concat!(
        "WITH work AS MATERIALIZED (
             (SELECT false AS is_timer, w.id AS work_id, w.alert_id, NULL::int4 AS timer_wave,
                     w.reason = 'replace' AS replace
              FROM (",
        claim_outbox_sql!(),
        ") w WHERE $2 AND $1::uuid[] IS NULL LIMIT $4)
             UNION ALL
             (SELECT false, w.id, w.alert_id, NULL, w.reason = 'replace' FROM (",
        claim_woken_outbox_sql!(),
        ") w WHERE $2 LIMIT $4)
             UNION ALL
             (SELECT true, w.id, w.alert_id, w.wave, false FROM (",
        claim_due_timer_sql!(),
        ") w WHERE $3 LIMIT $4)
         ), claimed AS MATERIALIZED (
             SELECT * FROM work
             WHERE pg_try_advisory_lock(CASE WHEN is_timer THEN $6 ELSE $5 END,
                                        (work_id % 2147483647)::int4)
         )
         SELECT c.is_timer, c.work_id, c.timer_wave, c.replace, ",
        snapshot_columns!(),
        " FROM claimed c JOIN dispatch.alerts a ON a.id = c.alert_id",
        snapshot_joins!(),
    ))
    .bind(alerts)
    .bind(wanted.outbox.is_some())
    .bind(wanted.timers)
    .bind(i64::from(wanted.limit))
    .bind(OUTBOX_LOCK_CLASS)
    .bind(TIMER_LOCK_CLASS)
    .fetch_all(conn)
    .await?;
    let mut by_alert: HashMap<AlertId, Claimed> = HashMap::new();
    let mut order = Vec::new();
    for row in rows {
        let work = if row.is_timer {
            Work::Deadline {
                id: row.work_id,
                wave: count(row.timer_wave.unwrap_or_default()),
            }
        } else {
            Work::Outbox {
                id: row.work_id,
                replace: row.replace,
            }
        };
        if let Some(claimed) = by_alert.get_mut(&row.id) {
            claimed.work.push(work);
            continue;
        }
        order.push(row.id);
        by_alert.insert(row.id, claimed_from(row, vec![work], defaults)?);
    }
    Ok(order
        .into_iter()
        .filter_map(|id| by_alert.remove(&id))
        .collect())
}

fn claimed_from(
    row: WorkRow,
    work: Vec<Work>,
    defaults: &(dyn Fn(AlertKind) -> KindSettings + Sync),
) -> Result<Claimed, sqlx::Error> {
    let at = LatLng::new(row.lat, row.lng)
        .map_err(|error| sqlx::Error::Decode(format!("stored alert position: {error}").into()))?;
    let settings_stored = row.waves.is_some();
    let settings = match (row.required_certifications, row.waves) {
        (Some(required), Some(waves)) => KindSettings {
            required_certifications: required,
            requires_verified_practitioner: row.requires_verified_practitioner.unwrap_or(false),
            responders_needed: count(row.kind_responders_needed.unwrap_or(1)),
            waves: waves.0,
            policy: row.policy.map(|policy| policy.0).unwrap_or_default(),
            roles: row.roles.unwrap_or_default(),
        },
        _ => defaults(row.kind),
    };
    // A coordinator's wider waves for this alert follow the kind's own.
    let extra: Vec<u32> = row
        .extra_radii_m
        .iter()
        .map(|&radius| count(radius))
        .collect();
    let settings = settings.with_extra_radii(&extra);
    let pending = row
        .pending_ids
        .into_iter()
        .zip(row.pending_volunteers)
        .zip(row.pending_waves)
        .zip(row.pending_expires)
        .map(|(((id, volunteer), wave), expires_at)| PendingOffer {
            id,
            volunteer,
            wave: count(wave),
            expires_at,
        })
        .collect();
    Ok(Claimed {
        work,
        facts: AlertFacts {
            id: row.id,
            kind: row.kind,
            at,
            accuracy_m: row.accuracy_m,
            note: row.note,
            drill: row.drill,
            traceparent: row.traceparent,
        },
        snapshot: Snapshot {
            alert: AlertState {
                id: row.id,
                status: row.status,
                wave: count(row.wave),
                responders_needed: count(row.responders_needed),
                wave_ends_at: row.wave_ends_at,
            },
            pending,
            offered: row.offered,
            active: u32::try_from(row.active).unwrap_or(u32::MAX),
            settings,
        },
        settings_stored,
        version: row.version,
    })
}

/// Releases every claim held on `conn` (after a failed batch; [`write_plans`] releases them
/// itself).
pub async fn release_claims(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_unlock_all()")
        .execute(conn)
        .await?;
    Ok(())
}

/// The plans of a batch as the column arrays [`write_plans`] binds, one element per row to
/// write. Built with [`Self::add_changes`] and [`Self::finish`].
#[derive(Debug, Default, Clone)]
pub struct PlanRows {
    alert_ids: Vec<AlertId>,
    versions: Vec<i64>,
    waves: Vec<i32>,
    wave_ends: Vec<Option<DateTime<Utc>>>,
    statuses: Vec<Option<AlertStatus>>,
    expire_ids: Vec<OfferId>,
    expire_alerts: Vec<AlertId>,
    pub(crate) offer_ids: Vec<OfferId>,
    pub(crate) offer_alerts: Vec<AlertId>,
    pub(crate) offer_volunteers: Vec<Uuid>,
    pub(crate) offer_waves: Vec<i32>,
    pub(crate) offer_distances: Vec<f64>,
    pub(crate) offer_expires: Vec<DateTime<Utc>>,
    pub(crate) timer_alerts: Vec<AlertId>,
    pub(crate) timer_waves: Vec<i32>,
    pub(crate) timer_due: Vec<DateTime<Utc>>,
    pub(crate) event_alerts: Vec<AlertId>,
    pub(crate) event_types: Vec<String>,
    pub(crate) event_data: Vec<serde_json::Value>,
    outbox_ids: Vec<i64>,
    outbox_alerts: Vec<AlertId>,
    outbox_guarded: Vec<bool>,
    timer_ids: Vec<i64>,
    fired_alerts: Vec<AlertId>,
    fired_guarded: Vec<bool>,
}

fn signed(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

impl PlanRows {
    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.alert_ids.is_empty() && self.outbox_ids.is_empty() && self.timer_ids.is_empty()
    }

    /// Adds `changes` of `alert`, to be applied only if the alert is still at `version`; answers
    /// the ids given to its new offers, in the order of `changes.offers`.
    pub fn add_changes(&mut self, alert: AlertId, version: i64, changes: &Changes) -> Vec<OfferId> {
        self.alert_ids.push(alert);
        self.versions.push(version);
        self.waves.push(signed(changes.wave));
        self.wave_ends.push(changes.wave_ends_at);
        self.statuses.push(changes.status);
        self.add_rows(alert, changes)
    }

    /// The rows of `changes` other than the alert's own (its offers, timer and events).
    pub(crate) fn add_rows(&mut self, alert: AlertId, changes: &Changes) -> Vec<OfferId> {
        for offer in &changes.expire {
            self.expire_ids.push(offer.id);
            self.expire_alerts.push(alert);
        }
        let ids: Vec<OfferId> = changes.offers.iter().map(|_| OfferId::new()).collect();
        for (offer, id) in changes.offers.iter().zip(&ids) {
            self.offer_ids.push(*id);
            self.offer_alerts.push(alert);
            self.offer_volunteers.push(offer.volunteer);
            self.offer_waves.push(signed(offer.wave));
            self.offer_distances.push(offer.distance_m);
            self.offer_expires.push(offer.expires_at);
        }
        if let Some(timer) = changes.timer {
            self.timer_alerts.push(alert);
            self.timer_waves.push(signed(timer.wave));
            self.timer_due.push(timer.due_at);
        }
        for event in &changes.events {
            let (kind, data) = event.columns();
            self.event_alerts.push(alert);
            self.event_types.push(kind);
            self.event_data.push(data);
        }
        ids
    }

    /// Marks `work` of `alert` done with this batch: `guarded` when it must stay undone unless
    /// the alert's changes land (a plan that changes nothing finishes its work regardless).
    pub fn finish(&mut self, alert: AlertId, work: Work, guarded: bool) {
        match work {
            Work::Outbox { id, .. } => {
                self.outbox_ids.push(id);
                self.outbox_alerts.push(alert);
                self.outbox_guarded.push(guarded);
            }
            Work::Deadline { id, .. } => {
                self.timer_ids.push(id);
                self.fired_alerts.push(alert);
                self.fired_guarded.push(guarded);
            }
        }
    }
}

/// What [`write_plans`] did.
#[derive(Debug, Clone, Default)]
pub struct Written {
    /// Alerts whose changes landed (the others were stale: read and plan them again).
    pub applied: Vec<AlertId>,
    /// Offers that really expired (an offer answered meanwhile is left as it is).
    pub expired: Vec<OfferId>,
    /// The transaction's time: `offered_at` of the new offers.
    pub at: DateTime<Utc>,
}

/// Writes a batch of plans in one statement (one commit for the whole batch) and releases the
/// claims held on `conn`. See the module documentation for the version guard.
pub async fn write_plans(conn: &mut PgConnection, rows: &PlanRows) -> Result<Written, sqlx::Error> {
    let (applied, expired, at): (Vec<AlertId>, Vec<OfferId>, DateTime<Utc>) = sqlx::query_as(
        "WITH plan AS (
             SELECT * FROM unnest($1::uuid[], $2::int8[], $3::int4[], $4::text[], $25::timestamptz[])
                 AS p(id, version, wave, status, wave_ends_at)
         ), locked AS MATERIALIZED (
             SELECT a.id FROM dispatch.alerts a JOIN plan p ON p.id = a.id AND p.version = a.version
             ORDER BY a.id FOR UPDATE OF a
         ), updated AS (
             UPDATE dispatch.alerts a
             SET wave = p.wave, status = coalesce(p.status, a.status), wave_ends_at = p.wave_ends_at,
                 updated_at = now()
             FROM plan p WHERE a.id = p.id AND a.id IN (SELECT id FROM locked)
             RETURNING a.id
         ), expired AS (
             UPDATE dispatch.offers o SET status = 'expired', responded_at = now()
             FROM unnest($5::uuid[], $6::uuid[]) AS e(id, alert_id)
             WHERE o.id = e.id AND o.status = 'pending' AND e.alert_id IN (SELECT id FROM updated)
             RETURNING o.id
         ), offered AS (
             INSERT INTO dispatch.offers (id, alert_id, volunteer_id, wave, distance_m, expires_at)
             SELECT n.id, n.alert_id, n.volunteer_id, n.wave, n.distance_m, n.expires_at
             FROM unnest($7::uuid[], $8::uuid[], $9::uuid[], $10::int4[], $11::float8[], $12::timestamptz[])
                 AS n(id, alert_id, volunteer_id, wave, distance_m, expires_at)
             WHERE n.alert_id IN (SELECT id FROM updated)
         ), timers AS (
             INSERT INTO dispatch.timers (alert_id, wave, due_at)
             SELECT t.alert_id, t.wave, t.due_at
             FROM unnest($13::uuid[], $14::int4[], $15::timestamptz[]) AS t(alert_id, wave, due_at)
             WHERE t.alert_id IN (SELECT id FROM updated)
             ON CONFLICT (alert_id, wave) DO UPDATE SET due_at = EXCLUDED.due_at
             WHERE dispatch.timers.fired_at IS NULL
         ), events AS (
             INSERT INTO dispatch.alert_events (alert_id, type, data)
             SELECT e.alert_id, e.type, e.data
             FROM unnest($16::uuid[], $17::text[], $18::jsonb[]) WITH ORDINALITY AS e(alert_id, type, data, n)
             WHERE e.alert_id IN (SELECT id FROM updated)
             ORDER BY e.n
         ), outbox_done AS (
             UPDATE dispatch.outbox o SET processed_at = now()
             FROM unnest($19::int8[], $20::uuid[], $21::bool[]) AS w(id, alert_id, guarded)
             WHERE o.id = w.id AND o.processed_at IS NULL
               AND (NOT w.guarded OR w.alert_id IN (SELECT id FROM updated))
         ), timers_fired AS (
             UPDATE dispatch.timers t SET fired_at = now()
             FROM unnest($22::int8[], $23::uuid[], $24::bool[]) AS w(id, alert_id, guarded)
             WHERE t.id = w.id AND t.fired_at IS NULL
               AND (NOT w.guarded OR w.alert_id IN (SELECT id FROM updated))
         )
         SELECT coalesce((SELECT array_agg(id) FROM updated), '{}'),
                coalesce((SELECT array_agg(id) FROM expired), '{}'),
                now()
         FROM (SELECT pg_advisory_unlock_all()) AS released",
    )
    .bind(&rows.alert_ids)
    .bind(&rows.versions)
    .bind(&rows.waves)
    .bind(&rows.statuses)
    .bind(&rows.expire_ids)
    .bind(&rows.expire_alerts)
    .bind(&rows.offer_ids)
    .bind(&rows.offer_alerts)
    .bind(&rows.offer_volunteers)
    .bind(&rows.offer_waves)
    .bind(&rows.offer_distances)
    .bind(&rows.offer_expires)
    .bind(&rows.timer_alerts)
    .bind(&rows.timer_waves)
    .bind(&rows.timer_due)
    .bind(&rows.event_alerts)
    .bind(&rows.event_types)
    .bind(&rows.event_data)
    .bind(&rows.outbox_ids)
    .bind(&rows.outbox_alerts)
    .bind(&rows.outbox_guarded)
    .bind(&rows.timer_ids)
    .bind(&rows.fired_alerts)
    .bind(&rows.fired_guarded)
    .bind(&rows.wave_ends)
    .fetch_one(conn)
    .await?;
    Ok(Written {
        applied,
        expired,
        at,
    })
}

/// SQL of [`has_live_offers`] (served by `offers_alert_pending_idx`).
pub const HAS_LIVE_OFFERS_SQL: &str = "SELECT EXISTS (SELECT 1 FROM dispatch.offers
                        WHERE alert_id = $1 AND status = 'pending' AND expires_at > now())";

/// True when `alert_id` has a pending offer that has not expired.
pub async fn has_live_offers(
    conn: &mut PgConnection,
    alert_id: AlertId,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(HAS_LIVE_OFFERS_SQL)
        .bind(alert_id)
        .fetch_one(conn)
        .await
}

/// Sets the deadline of wave `wave` of `alert_id` (insert, or move an unfired one).
pub async fn set_timer(
    conn: &mut PgConnection,
    alert_id: AlertId,
    wave: i32,
    due_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO dispatch.timers (alert_id, wave, due_at) VALUES ($1, $2, $3)
         ON CONFLICT (alert_id, wave) DO UPDATE SET due_at = EXCLUDED.due_at
         WHERE dispatch.timers.fired_at IS NULL",
    )
    .bind(alert_id)
    .bind(wave)
    .bind(due_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Cancels every unfired timer of `alert_id` (covered, cancelled, resolved). A timer a dispatcher
/// has claimed fires anyway and finds the alert needing no wave.
pub async fn cancel_timers(conn: &mut PgConnection, alert_id: AlertId) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE dispatch.timers SET fired_at = now() WHERE alert_id = $1 AND fired_at IS NULL",
    )
    .bind(alert_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Inserts an outbox row: `alert_id` may need its next wave (a responder withdrew).
pub async fn enqueue_wave(conn: &mut PgConnection, alert_id: AlertId) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO dispatch.outbox (alert_id) VALUES ($1)")
        .bind(alert_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Inserts an outbox row asking for `alert_id`'s declined offers to be replaced within its
/// current wave (its kind replaces decliners).
pub async fn enqueue_replacement(
    conn: &mut PgConnection,
    alert_id: AlertId,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO dispatch.outbox (alert_id, reason) VALUES ($1, 'replace')")
        .bind(alert_id)
        .execute(conn)
        .await?;
    Ok(())
}
