//! What a push may say. Two things are pushed: an offer to one volunteer ([`PushContent`]) and
//! an area broadcast to many ([`BroadcastContent`], a coordinator's message or a rule relaying a
//! BMKG warning). [`Payload`] is either, in the shapes the FCM and Web Push clients send: the
//! data block, the collapse key (a newer push of the same thing replaces the older one on the
//! device), its lifetime and its priority.
//!
//! Neither says who else was told or where anybody is: an offer carries the kind and the
//! distance and the ids the app fetches the rest with; a broadcast carries its text (both
//! languages, since a push service cannot ask the device for its language) and its area in words.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

/// What a push of an offer may say: the kind and the distance, and the ids the app fetches the
/// rest with (with its own token). Never the citizen's name, phone, address or position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PushContent {
    /// The alert's kind (`cardiac_arrest`, …), for the notification's wording.
    pub kind: String,
    /// Straight-line distance from the volunteer to the alert, in metres.
    pub distance_m: u32,
    /// The offer, to accept or decline (`POST /v1/offers/{id}/accept`).
    pub offer_id: Uuid,
    /// The alert, to fetch its details with the volunteer's token.
    pub alert_id: Uuid,
    /// The offer's deadline (UTC): the push's time to live ends here, and no push or retry is
    /// made after it.
    pub expires_at: DateTime<Utc>,
    /// A drill (practice): the notification says so, so nobody rushes out for an exercise.
    pub drill: bool,
}

impl PushContent {
    /// One collapse key per offer: a repeated push replaces the earlier one on the device.
    pub fn collapse_key(&self) -> String {
        format!("offer-{}", self.offer_id)
    }

    /// The payload of a Web Push (the FCM data block holds the same keys, as strings).
    pub fn data(&self) -> Value {
        json!({
            "type": "offer",
            "kind": self.kind,
            "distance_m": self.distance_m,
            "offer_id": self.offer_id,
            "alert_id": self.alert_id,
            "expires_at": self.expires_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            "drill": self.drill,
        })
    }
}

/// What a push of an area broadcast says: its short text in Bahasa Indonesia and in English
/// (each at most a few hundred characters, well inside FCM's and Web Push's 4 KB), its area in
/// words and its CAP severity. The recipients are counted by the sender, never listed here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BroadcastContent {
    /// The broadcast (`GET /cap/alerts/{id}.xml` is its public CAP document).
    pub broadcast_id: Uuid,
    /// CAP severity as the sender gave it (`Extreme`, `Severe`, `Moderate`, `Minor`, `Unknown`),
    /// shown as it is.
    pub severity: String,
    /// True for a `Severe` or `Extreme` broadcast: pushed with high priority (it may wake a
    /// phone in Doze and break through iOS focus as time-sensitive); others go at normal priority.
    pub urgent: bool,
    /// The text in Bahasa Indonesia.
    pub text_id: String,
    /// The text in English.
    pub text_en: String,
    /// The area in words ("Jakarta Pusat").
    pub area_desc: String,
    /// Until when the broadcast holds (UTC): no push is made after it, and a device that was
    /// off longer is not told late.
    pub expires_at: DateTime<Utc>,
}

impl BroadcastContent {
    /// One collapse key per broadcast.
    pub fn collapse_key(&self) -> String {
        format!("broadcast-{}", self.broadcast_id)
    }

    /// The payload of a Web Push (the FCM data block holds the same keys, as strings).
    pub fn data(&self) -> Value {
        json!({
            "type": "broadcast",
            "broadcast_id": self.broadcast_id,
            "severity": self.severity,
            "urgent": self.urgent,
            "text_id": self.text_id,
            "text_en": self.text_en,
            "area_desc": self.area_desc,
            "expires_at": self.expires_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        })
    }
}

/// One push's content, as the clients send it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload<'a> {
    /// An offer to one volunteer.
    Offer(&'a PushContent),
    /// An area broadcast.
    Broadcast(&'a BroadcastContent),
}

impl Payload<'_> {
    /// The offer or the broadcast, for logs.
    pub fn id(self) -> Uuid {
        match self {
            Self::Offer(offer) => offer.offer_id,
            Self::Broadcast(broadcast) => broadcast.broadcast_id,
        }
    }

    /// When the push stops being worth delivering: its time to live ends here.
    pub fn expires_at(self) -> DateTime<Utc> {
        match self {
            Self::Offer(offer) => offer.expires_at,
            Self::Broadcast(broadcast) => broadcast.expires_at,
        }
    }

    /// FCM's `collapse_key` and APNs' `apns-collapse-id`.
    pub fn collapse_key(self) -> String {
        match self {
            Self::Offer(offer) => offer.collapse_key(),
            Self::Broadcast(broadcast) => broadcast.collapse_key(),
        }
    }

    /// Web Push's `Topic` (at most 32 URL-safe characters): the id in simple form.
    pub fn topic(self) -> String {
        self.id().simple().to_string()
    }

    /// High priority: every offer (a life may hang on it), and a severe broadcast.
    pub fn urgent(self) -> bool {
        match self {
            Self::Offer(_) => true,
            Self::Broadcast(broadcast) => broadcast.urgent,
        }
    }

    /// The Web Push payload (JSON the service worker reads).
    pub fn web_data(self) -> Value {
        match self {
            Self::Offer(offer) => offer.data(),
            Self::Broadcast(broadcast) => broadcast.data(),
        }
    }

    /// FCM's `data` block: the same keys, every value a string (FCM refuses anything else).
    pub fn fcm_data(self) -> Value {
        let Value::Object(fields) = self.web_data() else {
            return json!({});
        };
        fields
            .into_iter()
            .map(|(key, value)| {
                let text = match value {
                    Value::String(text) => text,
                    other => other.to_string(),
                };
                (key, Value::String(text))
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    }

    /// The `aps.alert` of an iOS push: an offer by localised keys the app ships (kind and
    /// distance as arguments), a broadcast by its Indonesian text (the app's notification
    /// extension may swap in the English one from the data).
    pub fn apns_alert(self) -> Value {
        match self {
            Self::Offer(offer) => json!({
                "loc-key": if offer.drill { "OFFER_DRILL" } else { "OFFER_ALERT" },
                "loc-args": [offer.kind, offer.distance_m.to_string()],
            }),
            Self::Broadcast(broadcast) => json!({
                "title-loc-key": "BROADCAST_TITLE",
                "body": broadcast.text_id,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broadcast() -> BroadcastContent {
        BroadcastContent {
            broadcast_id: Uuid::now_v7(),
            severity: "Extreme".into(),
            urgent: true,
            text_id: "Gempa M6,1. Jauhi bangunan.".into(),
            text_en: "M6.1 earthquake. Keep away from buildings.".into(),
            area_desc: "Jakarta".into(),
            expires_at: Utc::now() + chrono::Duration::hours(2),
        }
    }

    #[test]
    fn a_broadcast_says_its_text_in_both_languages_and_nothing_about_people() {
        let content = broadcast();
        let data = Payload::Broadcast(&content).web_data();
        assert_eq!(data["type"], "broadcast");
        assert_eq!(data["text_id"], content.text_id);
        assert_eq!(data["text_en"], content.text_en);
        assert_eq!(data["urgent"], true);
        let keys: Vec<&str> = data
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        for private in ["lat", "lng", "recipients", "user_id", "phone"] {
            assert!(!keys.contains(&private), "{private} in {keys:?}");
        }
    }

    #[test]
    fn fcm_data_holds_the_same_keys_as_strings() {
        let content = broadcast();
        let payload = Payload::Broadcast(&content);
        let fcm = payload.fcm_data();
        let web = payload.web_data();
        let fcm = fcm.as_object().expect("an object");
        assert_eq!(
            fcm.keys().collect::<Vec<_>>(),
            web.as_object()
                .expect("an object")
                .keys()
                .collect::<Vec<_>>()
        );
        assert!(fcm.values().all(Value::is_string));
        assert_eq!(fcm["urgent"], "true");
        // FCM reserves `from`, `message_type` and the `google.`/`gcm.` prefixes.
        assert!(fcm.keys().all(|key| {
            !matches!(key.as_str(), "from" | "message_type" | "notification")
                && !key.starts_with("google")
                && !key.starts_with("gcm")
        }));
    }

    #[test]
    fn offers_and_broadcasts_collapse_apart_and_only_severe_broadcasts_are_urgent() {
        let offer = PushContent {
            kind: "fire".into(),
            distance_m: 90,
            offer_id: Uuid::now_v7(),
            alert_id: Uuid::now_v7(),
            expires_at: Utc::now(),
            drill: false,
        };
        let severe = broadcast();
        let minor = BroadcastContent {
            urgent: false,
            severity: "Minor".into(),
            ..broadcast()
        };
        assert!(Payload::Offer(&offer).urgent());
        assert!(Payload::Broadcast(&severe).urgent());
        assert!(!Payload::Broadcast(&minor).urgent());
        assert_ne!(
            Payload::Offer(&offer).collapse_key(),
            Payload::Broadcast(&severe).collapse_key()
        );
        assert_eq!(Payload::Broadcast(&severe).topic().len(), 32);
        assert_eq!(
            Payload::Broadcast(&severe).apns_alert()["body"],
            severe.text_id
        );
    }
}
