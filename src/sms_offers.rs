//! Offers by text when the app did not take them, and the replies that answer them. In much of
//! Indonesia a phone has signal but no data, or the app was killed in the background; then neither
//! the WebSocket nor push reaches the volunteer, and a text still does.
//!
//! [`OfferTexts::schedule`] is called for every offer published to one volunteer. After
//! `sms.offer_after_s` it texts the offer unless a WebSocket of the volunteer acknowledged it, or
//! the offer is no longer pending (withdrawn, answered, expired). At most one text per offer: the
//! outbound log's dedupe key is `offer:<id>`. The text names the kind, the distance, a short map
//! link and "reply 1 to accept, 2 to decline" with a four-letter offer code.
//!
//! [`OfferTexts::schedule_escalation`] does the same for escalations: one not acknowledged on a
//! dashboard within `sms.escalation_after_s` is texted to the coordinators of its region.
//!
//! [`OfferReplies`] answers "1 CODE" / "2 CODE" (the code may be left out: the latest offer texted
//! to that phone) through dispatch's own accept and decline, so a reply races the app's accept
//! under the same locks: one winner, the others told "already covered".

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use kreki_auth::{CurrentUser, UserId};
use kreki_dispatch::domain::OfferId;
use kreki_dispatch::{DispatchError, DispatchService};
use kreki_sms::{E164, Inbound, Purpose, SmsService, Text};
use uuid::Uuid;

/// Offers waiting for their text at most; beyond this new ones are not texted (and counted).
const MAX_WAITING: usize = 10_000;

/// Texts offers that no socket took.
#[derive(Clone)]
pub struct OfferTexts {
    inner: Arc<Inner>,
}

struct Inner {
    sms: Arc<SmsService>,
    hub: kreki_realtime::Hub,
    pool: sqlx::PgPool,
    dispatch: OnceLock<Arc<DispatchService>>,
    after: Duration,
    waiting: AtomicUsize,
}

impl OfferTexts {
    /// Texts through `sms` offers not acknowledged on `hub` within `sms.offer_after_s`.
    pub fn new(sms: Arc<SmsService>, hub: kreki_realtime::Hub, pool: sqlx::PgPool) -> Self {
        let after = Duration::from_secs(sms.config().offer_after_s);
        Self {
            inner: Arc::new(Inner {
                sms,
                hub,
                pool,
                dispatch: OnceLock::new(),
                after,
                waiting: AtomicUsize::new(0),
            }),
        }
    }

    /// Dispatch, asked whether an offer is still pending (set once it is built).
    pub fn set_dispatch(&self, dispatch: Arc<DispatchService>) {
        let _ = self.inner.dispatch.set(dispatch);
    }

    /// Texts `offer` to `user` later, unless `frame` (the offer's) was acknowledged on a socket
    /// by then or the offer is no longer pending.
    pub fn schedule(
        &self,
        user: Uuid,
        frame: kreki_realtime::Frame,
        offer: &kreki_dispatch::views::Offer,
    ) {
        if !self.inner.sms.enabled() {
            return;
        }
        if self.inner.waiting.fetch_add(1, Ordering::Relaxed) >= MAX_WAITING {
            self.inner.waiting.fetch_sub(1, Ordering::Relaxed);
            metrics::counter!("sms_offers_dropped_total").increment(1);
            return;
        }
        let inner = Arc::clone(&self.inner);
        let offer = offer.clone();
        tokio::spawn(async move {
            tokio::time::sleep(inner.after).await;
            if let Err(error) = text_offer(&inner, user, &frame, &offer).await {
                tracing::warn!(%error, offer = %offer.id.0, "offer not texted");
            }
            inner.waiting.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

async fn text_offer(
    inner: &Inner,
    user: Uuid,
    frame: &kreki_realtime::Frame,
    offer: &kreki_dispatch::views::Offer,
) -> anyhow::Result<()> {
    if inner.hub.acknowledged(user, frame) {
        metrics::counter!("sms_offers_skipped_total", "why" => "acknowledged").increment(1);
        return Ok(());
    }
    let Some(dispatch) = inner.dispatch.get() else {
        return Ok(());
    };
    let pending = dispatch.pending_offers(user).await?;
    if !pending.iter().any(|pending| pending.id == offer.id) {
        metrics::counter!("sms_offers_skipped_total", "why" => "not_pending").increment(1);
        return Ok(());
    }
    let Some(row) = kreki_auth::store::user_by_id(&inner.pool, UserId(user)).await? else {
        return Ok(());
    };
    let Some(to) = E164::parse(&row.phone) else {
        return Ok(());
    };
    let code = offer_code(offer.id.0);
    let body = offer_text(
        offer.alert.kind.as_str(),
        offer.distance_m,
        offer.alert.location.lat,
        offer.alert.location.lng,
        &code,
    );
    let sent = inner
        .sms
        .send(Text {
            to,
            body,
            purpose: Purpose::Offer,
            user_id: Some(user),
            dedupe_key: Some(format!("offer:{}", offer.id.0)),
            reference: Some(code),
        })
        .await?;
    if sent.is_some() {
        tracing::info!(offer = %offer.id.0, "offer texted: no socket acknowledged it");
    }
    Ok(())
}

/// Four letters naming an offer in a reply: from its id, in an alphabet without look-alikes
/// (no I, L, O, U, 0, 1). Replies are matched per phone, so four letters are plenty.
pub fn offer_code(offer: Uuid) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTVWXYZ23456789";
    let mut value = offer.as_u128() ^ (offer.as_u128() >> 64);
    let mut code = String::with_capacity(4);
    for _ in 0..4 {
        let index = usize::try_from(value % ALPHABET.len() as u128).unwrap_or(0);
        code.push(char::from(ALPHABET[index]));
        value /= ALPHABET.len() as u128;
    }
    code
}

fn kind_words(kind: &str) -> (&'static str, &'static str) {
    match kind {
        "medical" => ("Darurat medis", "Medical"),
        "cardiac_arrest" => ("HENTI JANTUNG", "CARDIAC ARREST"),
        "accident" => ("Kecelakaan", "Accident"),
        "fire" => ("Kebakaran", "Fire"),
        "disaster" => ("Bencana", "Disaster"),
        "security" => ("Keamanan", "Security"),
        _ => ("Darurat", "Emergency"),
    }
}

/// The offer's text, Bahasa Indonesia then English, in GSM-7 and at most two segments (306
/// characters): kind, distance, a map link, and how to answer.
pub fn offer_text(kind: &str, distance_m: f64, lat: f64, lng: f64, code: &str) -> String {
    let (id, en) = kind_words(kind);
    let distance = if distance_m < 1000.0 {
        format!("{} m", (distance_m / 10.0).round() * 10.0)
    } else {
        format!("{:.1} km", distance_m / 1000.0)
    };
    format!(
        "KREKI {id}, {distance}. https://osm.org/?mlat={lat:.5}&mlon={lng:.5}\n\
         Balas 1 {code} untuk menerima, 2 {code} untuk menolak.\n\
         {en}, {distance}: reply 1 {code} to accept, 2 {code} to decline."
    )
}

/// Answers offers' replies through dispatch's accept and decline.
pub struct OfferReplies {
    /// The SMS service (finds the offer a reply answers).
    pub sms: Arc<SmsService>,
    /// Dispatch.
    pub dispatch: Arc<DispatchService>,
    /// The database (the volunteer's account).
    pub pool: sqlx::PgPool,
}

/// What a reply asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// `1` (or YA/YES), with the offer code if given.
    Accept(Option<String>),
    /// `2` (or TIDAK/NO), with the offer code if given.
    Decline(Option<String>),
}

/// Reads a reply: "1 K7QM", "1", "ya k7qm", "2 K7QM"; anything else is `None`.
pub fn parse_reply(body: &str) -> Option<Reply> {
    let mut words = body.split_whitespace();
    let answer = words.next()?.to_uppercase();
    let code = words.next().map(str::to_uppercase);
    if words.next().is_some() {
        return None;
    }
    match answer.as_str() {
        "1" | "YA" | "YES" => Some(Reply::Accept(code)),
        "2" | "TIDAK" | "NO" => Some(Reply::Decline(code)),
        _ => None,
    }
}

const NOT_UNDERSTOOD: &str = "KREKI: balas 1 KODE untuk menerima, 2 KODE untuk menolak. / Reply 1 CODE to accept, 2 CODE to decline.";

impl kreki_sms::InboundHandler for OfferReplies {
    fn handle<'a>(
        &'a self,
        inbound: &'a Inbound,
    ) -> kreki_sms::provider::BoxFuture<'a, Option<String>> {
        Box::pin(async move {
            let Some(reply) = parse_reply(&inbound.body) else {
                return Some(NOT_UNDERSTOOD.to_owned());
            };
            match self.answer(inbound, reply).await {
                Ok(text) => Some(text),
                Err(error) => {
                    tracing::warn!(%error, "a reply to an offer failed");
                    Some("KREKI: maaf, coba lagi atau buka aplikasi. / Sorry, try again or open the app.".to_owned())
                }
            }
        })
    }
}

impl OfferReplies {
    async fn answer(&self, inbound: &Inbound, reply: Reply) -> anyhow::Result<String> {
        let (accept, code) = match reply {
            Reply::Accept(code) => (true, code),
            Reply::Decline(code) => (false, code),
        };
        let Some((key, Some(user))) = self
            .sms
            .replied_to(&inbound.from, Purpose::Offer, code.as_deref())
            .await?
        else {
            return Ok("KREKI: kode tawaran tidak dikenal. / Unknown offer code.".to_owned());
        };
        let offer = OfferId(key.trim_start_matches("offer:").parse::<Uuid>()?);
        let Some(row) = kreki_auth::store::user_by_id(&self.pool, UserId(user)).await? else {
            return Ok(NOT_UNDERSTOOD.to_owned());
        };
        let volunteer = CurrentUser {
            id: UserId(row.id),
            roles: row.roles(),
            trust: row.trust(),
            name: row.name,
        };
        let outcome = if accept {
            self.dispatch.accept(&volunteer, offer).await.map(|_| ())
        } else {
            self.dispatch
                .decline(&volunteer, offer, Some("sms".to_owned()))
                .await
                .map(|_| ())
        };
        metrics::counter!("sms_offer_replies_total", "answer" => if accept { "accept" } else { "decline" })
            .increment(1);
        Ok(match outcome {
            Ok(()) if accept => "KREKI: diterima, terima kasih! Menuju lokasi; buka aplikasi bila bisa. / Accepted, thank you: go now.".to_owned(),
            Ok(()) => "KREKI: ditolak, terima kasih. / Declined, thank you.".to_owned(),
            Err(DispatchError::AlertCovered)
            | Err(DispatchError::OfferNotPending(kreki_dispatch::domain::OfferStatus::Withdrawn)) => {
                "KREKI: sudah ditangani relawan lain, terima kasih. / Already covered, thank you.".to_owned()
            }
            Err(DispatchError::OfferExpired) => {
                "KREKI: tawaran ini sudah kedaluwarsa. / This offer has expired.".to_owned()
            }
            Err(DispatchError::AlertClosed(_)) => {
                "KREKI: kejadian ini sudah selesai. / This alert is closed.".to_owned()
            }
            Err(DispatchError::VolunteerBusy) => {
                "KREKI: Anda sedang bertugas di kejadian lain. / You are on another alert.".to_owned()
            }
            Err(DispatchError::OfferNotPending(_)) => {
                "KREKI: tawaran ini sudah dijawab. / This offer was already answered.".to_owned()
            }
            Err(error) => return Err(error.into()),
        })
    }
}

/// Escalations not acknowledged on a dashboard within `sms.escalation_after_s` go by text to the
/// coordinators of the alert's region (once per escalation and coordinator).
impl OfferTexts {
    /// Texts `escalation` to its region's coordinators later, unless acknowledged by then.
    pub fn schedule_escalation(&self, escalation: &kreki_dispatch::views::Escalation) {
        if !self.inner.sms.enabled() || escalation.acknowledged_at.is_some() {
            return;
        }
        if self.inner.waiting.fetch_add(1, Ordering::Relaxed) >= MAX_WAITING {
            self.inner.waiting.fetch_sub(1, Ordering::Relaxed);
            metrics::counter!("sms_escalations_dropped_total").increment(1);
            return;
        }
        let inner = Arc::clone(&self.inner);
        let escalation = escalation.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(inner.sms.config().escalation_after_s)).await;
            if let Err(error) = text_escalation(&inner, &escalation).await {
                tracing::warn!(%error, escalation = %escalation.id.0, "escalation not texted");
            }
            inner.waiting.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

async fn text_escalation(
    inner: &Inner,
    escalation: &kreki_dispatch::views::Escalation,
) -> anyhow::Result<()> {
    // Read back from dispatch: any instance's dashboard may have acknowledged it.
    let open = kreki_dispatch::store::escalations::get(&inner.pool, escalation.id)
        .await?
        .is_some_and(|row| row.acknowledged_at.is_none());
    if !open {
        return Ok(());
    }
    let Some(region) = escalation.region_id else {
        return Ok(());
    };
    let coordinators = kreki_dispatch::store::regions::coordinators_of(&inner.pool, region).await?;
    let coordinators = kreki_auth::store::phones_of(&inner.pool, &coordinators).await?;
    let body = escalation_text(
        escalation.reason.as_str(),
        escalation.alert_id.map_or_else(
            || escalation.warning_id.unwrap_or_default(),
            |alert| alert.0,
        ),
    );
    for (user, phone) in coordinators {
        let Some(to) = E164::parse(&phone) else {
            continue;
        };
        let sent = inner
            .sms
            .send(Text {
                to,
                body: body.clone(),
                purpose: Purpose::Escalation,
                user_id: Some(user),
                dedupe_key: Some(format!("escalation:{}:{user}", escalation.id.0)),
                reference: None,
            })
            .await;
        if let Err(error) = sent {
            tracing::warn!(%error, "escalation text to a coordinator not sent");
        }
    }
    Ok(())
}

/// The escalation's text, Bahasa Indonesia then English, one or two GSM-7 segments.
pub fn escalation_text(reason: &str, alert: Uuid) -> String {
    let (id, en) = match reason {
        "unmatched" => ("tidak ada relawan", "no volunteer matched"),
        "triage_waiting" => ("menunggu triase", "waiting for triage"),
        "responder_stalled" => ("relawan tidak bergerak", "responder stalled"),
        "open_too_long" => ("terbuka terlalu lama", "open too long"),
        "severe_warning" => ("peringatan BMKG parah", "severe BMKG warning"),
        _ => ("perlu perhatian", "needs attention"),
    };
    let short = alert.simple().to_string();
    format!(
        "KREKI ESKALASI: kejadian {} {id}. Buka dasbor. / Escalation: alert {} {en}; open the dashboard.",
        &short[short.len() - 8..],
        &short[short.len() - 8..]
    )
}

/// Warns coordinators on their dashboards that the day's SMS cap is near (WebSocket
/// `sms_cap_warning` to every coordinator connected).
pub struct CapWarningToCoordinators(pub kreki_realtime::Hub);

impl kreki_sms::CapWarning for CapWarningToCoordinators {
    fn near_cap(&self, used: u32, cap: u32) {
        self.0.publish(
            kreki_realtime::Audience::Role(kreki_auth::Role::Coordinator),
            serde_json::json!({"type": "sms_cap_warning", "used": used, "cap": cap}),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_read_leniently() {
        assert_eq!(
            parse_reply(" 1 k7qm "),
            Some(Reply::Accept(Some("K7QM".to_owned())))
        );
        assert_eq!(parse_reply("2"), Some(Reply::Decline(None)));
        assert_eq!(parse_reply("Ya"), Some(Reply::Accept(None)));
        assert_eq!(parse_reply("halo apa ini"), None);
        assert_eq!(parse_reply(""), None);
    }

    #[test]
    fn the_offer_text_fits_two_segments_of_gsm7() {
        let code = offer_code(Uuid::now_v7());
        assert_eq!(code.len(), 4);
        for kind in ["cardiac_arrest", "medical", "disaster", "unknown"] {
            let text = offer_text(kind, 12_345.6, -6.175392, 106.827153, &code);
            assert!(
                text.chars().count() <= 306,
                "{} chars: {text}",
                text.chars().count()
            );
            assert!(text.is_ascii(), "{text}");
            assert!(text.contains(&format!("1 {code}")));
        }
        assert!(offer_text("fire", 432.0, 0.0, 0.0, "ABCD").contains("430 m"));
    }

    #[test]
    fn escalation_texts_fit_two_segments() {
        for reason in [
            "unmatched",
            "triage_waiting",
            "responder_stalled",
            "open_too_long",
            "severe_warning",
        ] {
            let text = escalation_text(reason, Uuid::now_v7());
            assert!(text.len() <= 306 && text.is_ascii(), "{text}");
        }
    }
}
