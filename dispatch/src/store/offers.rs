//! The SQL of offers: a volunteer's pending offers, answering one, closing an alert's pending
//! offers, and withdrawing the offers of a volunteer who took another alert.

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::OfferRow;
use crate::domain::{AlertId, OfferId, OfferStatus};

/// One offer with its alert, locked (the offer row only).
pub async fn lock_offer(
    conn: &mut PgConnection,
    id: OfferId,
) -> Result<Option<OfferRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        offer_columns!(),
        " FROM dispatch.offers o JOIN dispatch.alerts a ON a.id = o.alert_id WHERE o.id = $1 FOR UPDATE OF o"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// The alert an offer is for, and who it was offered to (no lock).
pub async fn offer_owner(
    pool: &PgPool,
    id: OfferId,
) -> Result<Option<(AlertId, Uuid)>, sqlx::Error> {
    sqlx::query_as("SELECT alert_id, volunteer_id FROM dispatch.offers WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// A volunteer's pending, unexpired offers, newest first.
pub async fn pending_offers(pool: &PgPool, volunteer: Uuid) -> Result<Vec<OfferRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        offer_columns!(),
        " FROM dispatch.offers o JOIN dispatch.alerts a ON a.id = o.alert_id
         WHERE o.volunteer_id = $1 AND o.status = 'pending' AND o.expires_at > now()
         ORDER BY o.offered_at DESC"
    ))
    .bind(volunteer)
    .fetch_all(pool)
    .await
}

/// Sets an offer's status and answer time (and the decline reason).
pub async fn answer_offer(
    conn: &mut PgConnection,
    id: OfferId,
    status: OfferStatus,
    reason: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE dispatch.offers SET status = $2, reason = $3, responded_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(status)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(())
}

/// Moves every pending offer of `alert_id` to `status` (`expired` or `withdrawn`); returns
/// `(offer id, volunteer id)` of each.
pub async fn close_pending_offers(
    conn: &mut PgConnection,
    alert_id: AlertId,
    status: OfferStatus,
) -> Result<Vec<(OfferId, Uuid)>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE dispatch.offers SET status = $2, responded_at = now()
         WHERE alert_id = $1 AND status = 'pending' RETURNING id, volunteer_id",
    )
    .bind(alert_id)
    .bind(status)
    .fetch_all(conn)
    .await
}

/// What [`withdraw_offers_of_volunteer`] did.
#[derive(Debug, Clone, Default)]
pub struct Withdrawn {
    /// The offers withdrawn, with their alerts.
    pub offers: Vec<(OfferId, AlertId)>,
    /// True when some alert was left without a live offer and its wave's deadline moved to now.
    pub deadlines_moved: bool,
    /// Alerts whose kind replaces decliners: an outbox row asks for the withdrawn offers to be
    /// replaced within their current wave.
    pub replacing: Vec<AlertId>,
}

/// Withdraws every pending offer of a volunteer who just took an assignment; each alert whose
/// kind replaces decliners gets an outbox row asking for replacements, and each other alert left
/// with no live offer has its wave's deadline brought forward to now. One statement, taking no
/// alert lock, so it cannot deadlock with waves or accepts.
pub async fn withdraw_offers_of_volunteer(
    pool: &PgPool,
    volunteer: Uuid,
) -> Result<Withdrawn, sqlx::Error> {
    let (ids, alerts, moved, replacing): (Vec<OfferId>, Vec<AlertId>, i64, Vec<AlertId>) =
        sqlx::query_as(
            "WITH withdrawn AS (
                 UPDATE dispatch.offers SET status = 'withdrawn', responded_at = now()
                 WHERE volunteer_id = $1 AND status = 'pending' RETURNING id, alert_id
             ), replacing AS (
                 SELECT DISTINCT w.alert_id FROM withdrawn w
                 JOIN dispatch.alerts a ON a.id = w.alert_id
                 JOIN dispatch.kind_settings k ON k.kind = a.kind
                 WHERE coalesce((k.policy ->> 'replace_on_decline')::boolean, false)
             ), queued AS (
                 INSERT INTO dispatch.outbox (alert_id, reason)
                 SELECT alert_id, 'replace' FROM replacing
             ), moved AS (
                 UPDATE dispatch.timers t SET due_at = now()
                 WHERE t.alert_id IN (SELECT alert_id FROM withdrawn)
                   AND t.alert_id NOT IN (SELECT alert_id FROM replacing)
                   AND t.fired_at IS NULL AND t.due_at > now()
                   AND NOT EXISTS (SELECT 1 FROM dispatch.offers o
                                   WHERE o.alert_id = t.alert_id AND o.status = 'pending'
                                     AND o.expires_at > now()
                                     AND o.id NOT IN (SELECT id FROM withdrawn))
                 RETURNING t.id
             )
             SELECT coalesce((SELECT array_agg(id ORDER BY id) FROM withdrawn), '{}'),
                    coalesce((SELECT array_agg(alert_id ORDER BY id) FROM withdrawn), '{}'),
                    (SELECT count(*) FROM moved),
                    coalesce((SELECT array_agg(alert_id) FROM replacing), '{}')",
        )
        .bind(volunteer)
        .fetch_one(pool)
        .await?;
    Ok(Withdrawn {
        offers: ids.into_iter().zip(alerts).collect(),
        deadlines_moved: moved > 0,
        replacing,
    })
}
