//! The CAP service's ports, wired here (the binary is the one place that knows every crate):
//! [`CapPeople`] answers who is inside an area from dispatch's volunteers and regions (ids only;
//! positions never leave the server), [`CapHub`] sends warnings to the coordinators' dashboards
//! and broadcasts to their recipients through the realtime hub, as typed messages encoded once,
//! pushes a broadcast to the recipients' phones and browsers (the pusher's delivery policy),
//! texts it to recipients with no socket open (where SMS is configured), and has dispatch
//! escalate a Severe or Extreme warning to the regions it covers.

use std::sync::Arc;

use kreki_auth::Role;
use kreki_cap::model::Severity;
use kreki_cap::ports::{Announcer, BoxFuture, People};
use kreki_cap::views::{BroadcastMessage, CapMessage, Warning};
use kreki_realtime::push::{BroadcastContent, Pusher};
use kreki_realtime::{Audience, Frame, Hub};
use sqlx::PgPool;
use uuid::Uuid;

/// Most recipients of one broadcast (a whole city's on-duty volunteers fit many times over).
const MAX_RECIPIENTS: i64 = 200_000;

/// How far back a citizen's own panic places them inside an area, seconds.
pub const CITIZEN_WINDOW_S: f64 = 12.0 * 3600.0;

/// Who is inside an area, from dispatch's tables through dispatch's own queries.
pub struct CapPeople {
    /// The shared database.
    pub pool: PgPool,
    /// Positions older than this do not count, seconds (dispatch's `position_max_age_s`).
    pub position_max_age_s: u64,
}

impl People for CapPeople {
    fn volunteers_inside(&self, area: &str) -> BoxFuture<'_, anyhow::Result<Vec<Uuid>>> {
        let area = area.to_owned();
        Box::pin(async move {
            Ok(kreki_dispatch::store::areas::on_duty_inside(
                &self.pool,
                &area,
                self.position_max_age_s as f64,
                MAX_RECIPIENTS,
            )
            .await?)
        })
    }

    /// KREKI keeps no citizen's position outside their own alerts: the citizens known to be
    /// inside are those whose own panic of the last [`CITIZEN_WINDOW_S`] lies in the area. Others
    /// follow the public CAP feed their apps and agencies read.
    fn citizens_inside(&self, area: &str) -> BoxFuture<'_, anyhow::Result<Vec<Uuid>>> {
        let area = area.to_owned();
        Box::pin(async move {
            Ok(kreki_dispatch::store::areas::citizens_inside(
                &self.pool,
                &area,
                CITIZEN_WINDOW_S,
                MAX_RECIPIENTS,
            )
            .await?)
        })
    }

    fn region_area(
        &self,
        region: Uuid,
    ) -> BoxFuture<'_, anyhow::Result<Option<serde_json::Value>>> {
        Box::pin(async move {
            Ok(kreki_dispatch::store::regions::regions(&self.pool)
                .await?
                .into_iter()
                .find(|row| row.id.0 == region)
                .map(|row| row.area.0))
        })
    }
}

/// Warnings and broadcasts through the hub (where it runs in this process), and severe warnings'
/// escalations through dispatch.
pub struct CapHub {
    /// The WebSocket hub; without it the dashboards poll `GET /v1/warnings`.
    pub hub: Option<Hub>,
    /// Push to phones and browsers (where the hub runs): a broadcast goes to the recipients'
    /// registered devices as well as their sockets.
    pub pusher: Option<Pusher>,
    /// Dispatch, which raises and announces escalations.
    pub dispatch: Arc<kreki_dispatch::DispatchService>,
    /// Texts, where configured: a recipient with no open socket gets the broadcast by SMS.
    pub sms: Option<Arc<kreki_sms::SmsService>>,
    /// The shared database (recipients' phone numbers, read here, sent nowhere else).
    pub pool: PgPool,
}

/// Most texts one broadcast sends (the SMS service's daily caps apply as well).
const MAX_TEXTS_PER_BROADCAST: usize = 1000;

/// The text of a broadcast: both languages, cut to three SMS segments.
pub fn broadcast_text(message: &BroadcastMessage) -> String {
    let text = format!(
        "KREKI: {} / {}",
        message.message.id.trim(),
        message.message.en.trim()
    );
    text.chars().take(450).collect()
}

/// Texts `message` to each of `users` who has a phone, one after the other (the provider's rate
/// limit and the daily caps are the SMS service's), at most once per broadcast and person.
async fn text_broadcast(
    sms: Arc<kreki_sms::SmsService>,
    pool: PgPool,
    users: Vec<Uuid>,
    message: BroadcastMessage,
) {
    let phones = match kreki_auth::store::phones_of(&pool, &users).await {
        Ok(phones) => phones,
        Err(error) => {
            tracing::warn!(broadcast = %message.id, %error, "broadcast not texted: phones unreadable");
            return;
        }
    };
    let body = broadcast_text(&message);
    let mut sent = 0usize;
    for (user, phone) in phones.into_iter().take(MAX_TEXTS_PER_BROADCAST) {
        let Some(to) = kreki_sms::E164::parse(&phone) else {
            continue;
        };
        match sms
            .send(kreki_sms::Text {
                to,
                body: body.clone(),
                purpose: kreki_sms::Purpose::Broadcast,
                user_id: Some(user),
                dedupe_key: Some(format!("broadcast:{}:{user}", message.id)),
                reference: None,
            })
            .await
        {
            Ok(Some(_)) => sent += 1,
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(broadcast = %message.id, %error, "broadcast text not sent; stopping");
                break;
            }
        }
    }
    tracing::info!(broadcast = %message.id, sent, "broadcast texted to recipients without a socket");
}

/// What a push of `message` says: its texts, its area in words and its severity; urgent
/// (high priority) when `Severe` or `Extreme`.
pub fn push_content(message: &BroadcastMessage) -> BroadcastContent {
    BroadcastContent {
        broadcast_id: message.id,
        severity: message.severity.clone(),
        urgent: Severity::parse(&message.severity).is_some_and(Severity::is_severe),
        text_id: message.message.id.trim().to_owned(),
        text_en: message.message.en.trim().to_owned(),
        area_desc: message.area_desc.clone(),
        expires_at: message.expires_at,
    }
}

impl CapHub {
    fn send(&self, audience: Audience, message: &CapMessage<'_>) {
        let Some(hub) = &self.hub else {
            return;
        };
        if let Some(frame) = frame(message) {
            hub.publish_frame(audience, &frame);
        }
    }
}

fn frame(message: &CapMessage<'_>) -> Option<Frame> {
    match Frame::new(message) {
        Ok(frame) => Some(frame),
        // Typed messages with a `type` tag: a failure here is a bug, not input.
        Err(error) => {
            tracing::error!(%error, "CAP message not published");
            None
        }
    }
}

impl Announcer for CapHub {
    fn warning_changed(&self, warning: &Warning) {
        self.send(
            Audience::Role(Role::Coordinator),
            &CapMessage::Warning { warning },
        );
    }

    fn warnings_removed(&self, ids: &[Uuid]) {
        self.send(
            Audience::Role(Role::Coordinator),
            &CapMessage::WarningsRemoved { ids },
        );
    }

    /// Raises the escalations of the regions the warning covers, off the poller's path (a
    /// severe warning is rare: one short task each).
    fn severe_warning(&self, warning: &Warning) {
        let Some(area) = warning.area.as_ref().map(serde_json::Value::to_string) else {
            return;
        };
        let dispatch = self.dispatch.clone();
        let id = warning.id;
        tokio::spawn(async move {
            match dispatch.escalate_warning(id, &area).await {
                Ok(raised) => tracing::info!(warning = %id, raised, "severe warning escalated"),
                Err(error) => tracing::warn!(warning = %id, %error, "severe warning not escalated"),
            }
        });
    }

    /// On every socket of each recipient; by push to their devices (unless a socket
    /// acknowledged it within the grace, under `push_when = "no_ack"`); by SMS to those with no
    /// socket open on this instance (where texts are configured).
    fn broadcast(&self, recipients: &[Uuid], message: &BroadcastMessage) {
        if recipients.is_empty() {
            return;
        }
        let typed = CapMessage::Broadcast { broadcast: message };
        match &self.pusher {
            Some(pusher) => {
                if let Some(frame) = frame(&typed) {
                    pusher.broadcast_frame(recipients.to_vec(), &frame, push_content(message));
                }
            }
            None => self.send(Audience::Users(recipients.to_vec()), &typed),
        }
        let Some(sms) = self.sms.clone().filter(|sms| sms.enabled()) else {
            return;
        };
        let offline: Vec<Uuid> = recipients
            .iter()
            .copied()
            .filter(|user| {
                self.hub
                    .as_ref()
                    .is_none_or(|hub| hub.connections_of(*user) == 0)
            })
            .collect();
        if !offline.is_empty() {
            tokio::spawn(text_broadcast(
                sms,
                self.pool.clone(),
                offline,
                message.clone(),
            ));
        }
    }
}

/// The announcer of a process running dispatch: the hub and push where they run here too,
/// texts where configured.
pub fn announcer(
    hub: Option<&Hub>,
    pusher: Option<&Pusher>,
    dispatch: &Arc<kreki_dispatch::DispatchService>,
    sms: &Arc<kreki_sms::SmsService>,
    pool: &PgPool,
) -> Arc<dyn Announcer> {
    Arc::new(CapHub {
        hub: hub.cloned(),
        pusher: pusher.cloned(),
        dispatch: dispatch.clone(),
        sms: sms.enabled().then(|| sms.clone()),
        pool: pool.clone(),
    })
}
