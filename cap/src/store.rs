//! The SQL of schema `cap`: applying a CAP message (insert de-duplicated, retire what it updates
//! or cancels, in one transaction), the active warnings, broadcasts and the outgoing feed.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use sqlx::types::Json;
use uuid::Uuid;

use crate::geometry::Area;
use crate::model::{CapAlert, Info, MsgType, Reference};

/// A warning as stored, its area as GeoJSON.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WarningRow {
    /// KREKI's id of the message.
    pub id: Uuid,
    /// The configured feed it came from.
    pub feed: String,
    /// CAP `sender`.
    pub sender: String,
    /// CAP `identifier`.
    pub identifier: String,
    /// CAP `sent` (UTC).
    pub sent: DateTime<Utc>,
    /// CAP `status`.
    pub status: String,
    /// CAP `msgType`.
    pub msg_type: String,
    /// Most severe `severity` of its `info` blocks.
    pub severity: String,
    /// `urgency` of that block.
    pub urgency: String,
    /// `certainty` of that block.
    pub certainty: String,
    /// `event` of its first block.
    pub event: String,
    /// Every `info` block (one per language).
    pub infos: Json<Vec<Info>>,
    /// Its area (GeoJSON MultiPolygon), none when it had only unmapped geocodes.
    pub area: Option<Json<serde_json::Value>>,
    /// When it leaves the map.
    pub expires_at: DateTime<Utc>,
    /// When KREKI read it.
    pub received_at: DateTime<Utc>,
}

macro_rules! warning_columns {
    () => {
        "w.id, w.feed, w.sender, w.identifier, w.sent, w.status, w.msg_type, w.severity,
     w.urgency, w.certainty, w.event, w.infos,
     CASE WHEN w.area IS NULL THEN NULL ELSE ST_AsGeoJSON(w.area, 6)::jsonb END AS area,
     w.expires_at, w.received_at"
    };
}

/// The de-duplication key of a message: `sender,identifier,epoch seconds`.
pub fn key(sender: &str, identifier: &str, sent: DateTime<Utc>) -> String {
    format!("{sender},{identifier},{}", sent.timestamp())
}

fn reference_key(reference: &Reference) -> String {
    key(
        &reference.sender,
        &reference.identifier,
        reference.sent.with_timezone(&Utc),
    )
}

/// What applying a message did.
#[derive(Debug)]
pub struct Applied {
    /// The stored message; `None` when it was a duplicate.
    pub stored: Option<WarningRow>,
    /// Ids of warnings it retired (updated or cancelled).
    pub retired: Vec<Uuid>,
    /// True when one of them was `Severe` or `Extreme` (an Update of a warning already escalated).
    pub retired_severe: bool,
}

/// Stores `alert` read from `feed` unless it is a duplicate; an `Update` replaces and a `Cancel`
/// cancels the messages it references; a message already referenced by a later one is stored
/// retired. One transaction: the insert, the retirement of what it references, the retirement of
/// itself when it arrived after its Update.
///
/// # Errors
/// Database failures.
pub async fn apply(
    pool: &PgPool,
    feed: &str,
    alert: &CapAlert,
    default_expiry_h: u32,
) -> Result<Applied, sqlx::Error> {
    let severity = alert.severity();
    let lead = alert
        .infos
        .iter()
        .find(|info| info.severity == severity)
        .or_else(|| alert.infos.first());
    let sent = alert.sent.with_timezone(&Utc);
    let expires = alert
        .expires()
        .unwrap_or_else(|| sent + chrono::Duration::hours(i64::from(default_expiry_h)));
    let refs: Vec<String> = alert.references.iter().map(reference_key).collect();
    let (lats, lngs, radii) = alert.area.circle_arrays();
    let id = Uuid::now_v7();
    let mut tx = pool.begin().await?;
    let row: Option<WarningRow> = sqlx::query_as(concat!(
        "WITH w AS (
             INSERT INTO cap.warnings (id, feed, sender, identifier, sent, status, msg_type, severity,
                 urgency, certainty, event, infos, refs, area, expires_at, cancelled_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,
                     cap.area_of($14, $15, $16, $17), $18,
                     CASE WHEN $7 = 'Cancel' OR EXISTS (
                         SELECT 1 FROM cap.warnings l WHERE $19 = ANY (l.refs) AND l.msg_type = 'Cancel')
                     THEN now() END)
             ON CONFLICT ON CONSTRAINT warnings_message_key DO NOTHING
             RETURNING *
         )
         SELECT ",
        warning_columns!(),
        " FROM w"
    ))
    .bind(id)
    .bind(feed)
    .bind(&alert.sender)
    .bind(&alert.identifier)
    .bind(sent)
    .bind(alert.status.as_str())
    .bind(alert.msg_type.as_str())
    .bind(severity.as_str())
    .bind(lead.map_or("Unknown", |info| info.urgency.as_str()))
    .bind(lead.map_or("Unknown", |info| info.certainty.as_str()))
    .bind(lead.map_or("", |info| info.event.as_str()))
    .bind(Json(&alert.infos))
    .bind(&refs)
    .bind(alert.area.polygons_wkt())
    .bind(&lats)
    .bind(&lngs)
    .bind(&radii)
    .bind(expires)
    .bind(key(&alert.sender, &alert.identifier, sent))
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(Applied {
            stored: None,
            retired: Vec::new(),
            retired_severe: false,
        });
    };
    let mut retired: Vec<(Uuid, String)> = Vec::new();
    if !refs.is_empty() && matches!(alert.msg_type, MsgType::Update | MsgType::Cancel) {
        let cancel = alert.msg_type == MsgType::Cancel;
        retired = sqlx::query_as(
            "UPDATE cap.warnings SET
                 replaced_by = CASE WHEN $3 THEN replaced_by ELSE $2 END,
                 cancelled_at = CASE WHEN $3 THEN now() ELSE cancelled_at END
             WHERE (sender || ',' || identifier || ',' || extract(epoch FROM sent)::bigint) = ANY ($1)
               AND id <> $2 AND replaced_by IS NULL AND cancelled_at IS NULL
             RETURNING id, severity",
        )
        .bind(&refs)
        .bind(row.id)
        .bind(cancel)
        .fetch_all(&mut *tx)
        .await?;
    }
    // A message that a later Update already names (it arrived late) is replaced at once.
    let late: Option<(Uuid, String)> = sqlx::query_as(
        "UPDATE cap.warnings w SET replaced_by = l.id
         FROM cap.warnings l
         WHERE w.id = $1 AND $2 = ANY (l.refs) AND l.msg_type = 'Update'
         RETURNING w.id, w.severity",
    )
    .bind(row.id)
    .bind(key(&alert.sender, &alert.identifier, sent))
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    retired.extend(late);
    Ok(Applied {
        stored: Some(row),
        retired_severe: retired
            .iter()
            .any(|(_, severity)| matches!(severity.as_str(), "Severe" | "Extreme")),
        retired: retired.into_iter().map(|(id, _)| id).collect(),
    })
}

/// The warnings on the map now: `Actual`, `Alert` or `Update`, neither replaced nor cancelled nor
/// expired; most severe first, then newest. At most `limit`.
///
/// # Errors
/// Database failures.
pub async fn active(pool: &PgPool, limit: i64) -> Result<Vec<WarningRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        warning_columns!(),
        " FROM cap.warnings w
         WHERE w.replaced_by IS NULL AND w.cancelled_at IS NULL AND w.expires_at > now()
           AND w.status = 'Actual' AND w.msg_type IN ('Alert', 'Update')
         ORDER BY array_position(ARRAY['Extreme','Severe','Moderate','Minor','Unknown'], w.severity),
                  w.sent DESC
         LIMIT $1"
    ))
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// One warning (active or not).
///
/// # Errors
/// Database failures.
pub async fn warning(pool: &PgPool, id: Uuid) -> Result<Option<WarningRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        warning_columns!(),
        " FROM cap.warnings w WHERE w.id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// A broadcast as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BroadcastRow {
    /// Its id.
    pub id: Uuid,
    /// When it was sent.
    pub sent_at: DateTime<Utc>,
    /// The coordinator who sent it; none for a rule.
    pub sender_id: Option<Uuid>,
    /// `everyone`, `volunteers` or `citizens`.
    pub audience: String,
    /// In Bahasa Indonesia.
    pub message_id: String,
    /// In English.
    pub message_en: String,
    /// Its area (GeoJSON MultiPolygon).
    pub area: Json<serde_json::Value>,
    /// Its area in words.
    pub area_desc: String,
    /// The warning it relays, if any.
    pub warning_id: Option<Uuid>,
    /// CAP severity.
    pub severity: String,
    /// CAP urgency.
    pub urgency: String,
    /// CAP event.
    pub event: String,
    /// Volunteers it reached.
    pub volunteers: i32,
    /// Citizens it reached.
    pub citizens: i32,
    /// Until when it holds.
    pub expires_at: DateTime<Utc>,
}

macro_rules! broadcast_columns {
    () => {
        "b.id, b.sent_at, b.sender_id, b.audience, b.message_id, b.message_en,
     ST_AsGeoJSON(b.area, 6)::jsonb AS area, b.area_desc, b.warning_id, b.severity, b.urgency,
     b.event, b.volunteers, b.citizens, b.expires_at"
    };
}

/// What a new broadcast is.
#[derive(Debug, Clone)]
pub struct NewBroadcast<'a> {
    /// Who sends it (none for a rule).
    pub sender_id: Option<Uuid>,
    /// Audience name.
    pub audience: &'a str,
    /// Text in Bahasa Indonesia.
    pub message_id: &'a str,
    /// Text in English.
    pub message_en: &'a str,
    /// Area in words.
    pub area_desc: &'a str,
    /// The warning it relays.
    pub warning_id: Option<Uuid>,
    /// Severity.
    pub severity: &'a str,
    /// Urgency.
    pub urgency: &'a str,
    /// Event.
    pub event: &'a str,
    /// Until when.
    pub expires_at: DateTime<Utc>,
}

/// Where a broadcast's area comes from.
#[derive(Debug, Clone)]
pub enum AreaSource<'a> {
    /// Checked shapes.
    Shapes(&'a Area),
    /// A warning's stored area.
    Warning(Uuid),
}

/// Stores a broadcast with its area (PostGIS makes it valid); `None` when the area came out
/// empty (a warning without area).
///
/// # Errors
/// Database failures; `broadcasts_area_valid` for an area PostGIS cannot repair.
pub async fn insert_broadcast(
    pool: &PgPool,
    new: &NewBroadcast<'_>,
    area: &AreaSource<'_>,
) -> Result<Option<BroadcastRow>, sqlx::Error> {
    let (wkt, lats, lngs, radii, warning) = match area {
        AreaSource::Shapes(area) => {
            let (lats, lngs, radii) = area.circle_arrays();
            (area.polygons_wkt(), lats, lngs, radii, None)
        }
        AreaSource::Warning(id) => (None, Vec::new(), Vec::new(), Vec::new(), Some(*id)),
    };
    sqlx::query_as(concat!(
        "WITH a AS (
             SELECT CASE WHEN $15::uuid IS NULL THEN cap.area_of($11, $12, $13, $14)
                         ELSE (SELECT area FROM cap.warnings WHERE id = $15) END AS area
         ), b AS (
             INSERT INTO cap.broadcasts (id, sender_id, audience, message_id, message_en, area,
                 area_desc, warning_id, severity, urgency, event, expires_at)
             SELECT $1, $2, $3, $4, $5, a.area, $6, $7, $8, $9, $10, $16 FROM a WHERE a.area IS NOT NULL
             RETURNING *
         )
         SELECT ",
        broadcast_columns!(),
        " FROM b"
    ))
    .bind(Uuid::now_v7())
    .bind(new.sender_id)
    .bind(new.audience)
    .bind(new.message_id)
    .bind(new.message_en)
    .bind(new.area_desc)
    .bind(new.warning_id)
    .bind(new.severity)
    .bind(new.urgency)
    .bind(new.event)
    .bind(wkt)
    .bind(&lats)
    .bind(&lngs)
    .bind(&radii)
    .bind(warning)
    .bind(new.expires_at)
    .fetch_optional(pool)
    .await
}

/// Records how many it reached.
///
/// # Errors
/// Database failures.
pub async fn set_reached(
    pool: &PgPool,
    id: Uuid,
    volunteers: i32,
    citizens: i32,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE cap.broadcasts SET volunteers = $2, citizens = $3 WHERE id = $1")
        .bind(id)
        .bind(volunteers)
        .bind(citizens)
        .execute(pool)
        .await?;
    Ok(())
}

/// One broadcast.
///
/// # Errors
/// Database failures.
pub async fn broadcast(pool: &PgPool, id: Uuid) -> Result<Option<BroadcastRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        broadcast_columns!(),
        " FROM cap.broadcasts b WHERE b.id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// The newest broadcasts, at most `limit`.
///
/// # Errors
/// Database failures.
pub async fn recent_broadcasts(
    pool: &PgPool,
    limit: i64,
) -> Result<Vec<BroadcastRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        broadcast_columns!(),
        " FROM cap.broadcasts b ORDER BY b.sent_at DESC, b.id DESC LIMIT $1"
    ))
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// True when the warning is on the map (neither replaced, cancelled nor expired).
///
/// # Errors
/// Database failures.
pub async fn active_one(pool: &PgPool, id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM cap.warnings WHERE id = $1 AND replaced_by IS NULL
                        AND cancelled_at IS NULL AND expires_at > now())",
    )
    .bind(id)
    .fetch_one(pool)
    .await
}
