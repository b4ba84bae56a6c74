//! The FCM HTTP v1 client: an OAuth2 access token from a service account (`gcp_auth`, cached and
//! renewed by it), `POST {base_url}/v1/projects/{project}/messages:send`, and the reading of FCM's
//! error bodies into what the pusher should do ([`Outcome`]).
//!
//! The legacy FCM API (what the `fcm` crate posts to) was shut down in 2024; this is the v1 API:
//! <https://firebase.google.com/docs/reference/fcm/rest/v1/projects.messages/send>.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::push::config::FcmConfig;
use crate::push::content::Payload;
use crate::push::device::{FcmToken, Platform};
use crate::push::error::PushError;
use crate::push::pusher::Outcome;

/// The OAuth2 scope of FCM's send API.
pub const FCM_SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";

/// Sends FCM v1 messages. Cheap to clone.
#[derive(Clone)]
pub struct FcmClient {
    http: reqwest::Client,
    tokens: Arc<dyn gcp_auth::TokenProvider>,
    send_url: String,
}

impl std::fmt::Debug for FcmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FcmClient")
            .field("send_url", &self.send_url)
            .finish_non_exhaustive()
    }
}

impl FcmClient {
    /// A client for the service account named in `config` (`None` when none is: FCM off).
    ///
    /// # Errors
    /// [`PushError::Setup`] when the file cannot be read or holds no usable key or project.
    pub fn from_config(
        config: &FcmConfig,
        request_timeout: Duration,
    ) -> Result<Option<Self>, PushError> {
        let Some(path) = &config.service_account_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path).map_err(|error| {
            PushError::Setup(format!(
                "push.fcm.service_account_file {}: {error}",
                path.display()
            ))
        })?;
        Self::from_service_account_json(&text, config, request_timeout).map(Some)
    }

    /// A client for a service account given as its JSON text.
    ///
    /// # Errors
    /// [`PushError::Setup`] when the JSON holds no usable key or project.
    pub fn from_service_account_json(
        json: &str,
        config: &FcmConfig,
        request_timeout: Duration,
    ) -> Result<Self, PushError> {
        let mut key: Value = serde_json::from_str(json).map_err(|error| {
            PushError::Setup(format!("the FCM service account is not JSON: {error}"))
        })?;
        if let (Some(url), Some(object)) = (&config.token_url, key.as_object_mut()) {
            object.insert("token_uri".to_owned(), Value::String(url.clone()));
        }
        let project = config
            .project_id
            .clone()
            .or_else(|| key["project_id"].as_str().map(str::to_owned))
            .ok_or_else(|| {
                PushError::Setup(
                    "push.fcm.project_id is not set and the service account names no project_id"
                        .to_owned(),
                )
            })?;
        let account = gcp_auth::CustomServiceAccount::from_json(&key.to_string())
            .map_err(|error| PushError::Setup(format!("the FCM service account: {error}")))?;
        let http = reqwest::Client::builder()
            .timeout(request_timeout)
            .build()
            .map_err(|error| PushError::Setup(format!("HTTP client: {error}")))?;
        Ok(Self {
            http,
            tokens: Arc::new(account),
            send_url: format!(
                "{}/v1/projects/{project}/messages:send",
                config.base_url.trim_end_matches('/')
            ),
        })
    }

    /// Sends one offer or broadcast to one token and says what became of it. Never panics;
    /// network and token failures are [`Outcome::Retry`].
    pub async fn send(
        &self,
        platform: Platform,
        token: &FcmToken,
        payload: Payload<'_>,
        now: DateTime<Utc>,
    ) -> Outcome {
        let Some(ttl_s) = ttl_s(payload.expires_at(), now) else {
            return Outcome::Expired;
        };
        let access = match self.tokens.token(&[FCM_SCOPE]).await {
            Ok(access) => access,
            Err(error) => {
                tracing::warn!(%error, "FCM access token request failed");
                return Outcome::Retry { after: None };
            }
        };
        let body = message(platform, token, payload, ttl_s);
        let response = self
            .http
            .post(&self.send_url)
            .bearer_auth(access.as_str())
            .json(&body)
            .send()
            .await;
        match response {
            Err(error) => {
                tracing::debug!(%error, "FCM request failed");
                Outcome::Retry { after: None }
            }
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = retry_after(response.headers());
                let body: Value = response.json().await.unwrap_or(Value::Null);
                classify(status, retry_after, &body)
            }
        }
    }
}

/// Seconds from `now` to the offer's deadline, rounded down; `None` when it has passed.
fn ttl_s(expires_at: DateTime<Utc>, now: DateTime<Utc>) -> Option<i64> {
    let left = (expires_at - now).num_seconds();
    (left >= 1).then_some(left)
}

/// The `messages:send` body: a data message living until the deadline, collapsing per offer or
/// broadcast; high priority for offers and severe broadcasts (iOS: time-sensitive through the
/// APNs block). Only what [`Payload`] lets out: never the citizen's details, never recipients.
pub fn message(platform: Platform, token: &FcmToken, payload: Payload<'_>, ttl_s: i64) -> Value {
    let collapse = payload.collapse_key();
    let urgent = payload.urgent();
    let mut message = json!({"token": token.as_str(), "data": payload.fcm_data()});
    match platform {
        Platform::Ios => {
            message["apns"] = json!({
                "headers": {
                    "apns-priority": if urgent { "10" } else { "5" },
                    "apns-push-type": "alert",
                    "apns-expiration": payload.expires_at().timestamp().to_string(),
                    "apns-collapse-id": collapse,
                },
                "payload": {"aps": {
                    "alert": payload.apns_alert(),
                    "sound": "default",
                    "interruption-level": if urgent { "time-sensitive" } else { "active" },
                    "mutable-content": 1,
                }},
            });
        }
        Platform::Android | Platform::Web => {
            message["android"] = json!({
                "priority": if urgent { "HIGH" } else { "NORMAL" },
                "ttl": format!("{ttl_s}s"),
                "collapse_key": collapse,
            });
        }
    }
    json!({"message": message})
}

/// `Retry-After` in seconds (FCM sends whole seconds; an HTTP date is not used by FCM).
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// What an FCM answer means for this token and this offer.
fn classify(status: u16, retry_after: Option<Duration>, body: &Value) -> Outcome {
    if (200..300).contains(&status) {
        return Outcome::Sent;
    }
    let error = &body["error"];
    let details = error["details"].as_array().cloned().unwrap_or_default();
    let fcm_code = details
        .iter()
        .find_map(|detail| detail["errorCode"].as_str())
        .unwrap_or_else(|| error["status"].as_str().unwrap_or_default())
        .to_owned();
    let names_token = details.iter().any(|detail| {
        detail["fieldViolations"]
            .as_array()
            .is_some_and(|violations| {
                violations
                    .iter()
                    .any(|violation| violation["field"] == "message.token")
            })
    });
    match (status, fcm_code.as_str()) {
        (_, "UNREGISTERED") | (_, "SENDER_ID_MISMATCH") => Outcome::Dead,
        (400, "INVALID_ARGUMENT") if names_token => Outcome::Dead,
        (429, _) | (500..=599, _) => Outcome::Retry { after: retry_after },
        _ => Outcome::Failed(format!(
            "FCM answered {status} {fcm_code}: {}",
            error["message"].as_str().unwrap_or_default()
        )),
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::push::content::{BroadcastContent, PushContent};

    fn content() -> PushContent {
        PushContent {
            kind: "cardiac_arrest".into(),
            distance_m: 420,
            offer_id: Uuid::now_v7(),
            alert_id: Uuid::now_v7(),
            expires_at: Utc::now() + chrono::Duration::seconds(30),
            drill: false,
        }
    }

    #[test]
    fn android_messages_are_high_priority_data_living_until_the_deadline() {
        let content = content();
        let token = FcmToken::parse("tok:1").expect("a token");
        let body = message(Platform::Android, &token, Payload::Offer(&content), 27);
        let android = &body["message"]["android"];
        assert_eq!(android["priority"], "HIGH");
        assert_eq!(android["ttl"], "27s");
        assert_eq!(android["collapse_key"], content.collapse_key());
        assert!(body["message"]["notification"].is_null());
        let data = body["message"]["data"].as_object().expect("data");
        assert!(
            data.values().all(Value::is_string),
            "FCM data values are strings"
        );
        assert_eq!(data["distance_m"], "420");
        let ios = message(Platform::Ios, &token, Payload::Offer(&content), 27);
        assert_eq!(ios["message"]["apns"]["headers"]["apns-priority"], "10");
        assert_eq!(
            ios["message"]["apns"]["payload"]["aps"]["interruption-level"],
            "time-sensitive"
        );
        assert_eq!(data["drill"], "false");
        assert_eq!(
            ios["message"]["apns"]["payload"]["aps"]["alert"]["loc-key"],
            "OFFER_ALERT"
        );
    }

    #[test]
    fn a_drill_says_so_on_every_platform() {
        let content = PushContent {
            drill: true,
            ..content()
        };
        let token = FcmToken::parse("tok:1").expect("a token");
        let android = message(Platform::Android, &token, Payload::Offer(&content), 27);
        assert_eq!(android["message"]["data"]["drill"], "true");
        let ios = message(Platform::Ios, &token, Payload::Offer(&content), 27);
        assert_eq!(
            ios["message"]["apns"]["payload"]["aps"]["alert"]["loc-key"],
            "OFFER_DRILL"
        );
        assert_eq!(content.data()["drill"], true);
    }

    #[test]
    fn a_minor_broadcast_goes_at_normal_priority_and_a_severe_one_wakes_the_phone() {
        let token = FcmToken::parse("tok:1").expect("a token");
        let severe = BroadcastContent {
            broadcast_id: Uuid::now_v7(),
            severity: "Severe".into(),
            urgent: true,
            text_id: "Banjir, hindari Monas.".into(),
            text_en: "Flooding, avoid Monas.".into(),
            area_desc: "Monas".into(),
            expires_at: Utc::now() + chrono::Duration::hours(1),
        };
        let minor = BroadcastContent {
            urgent: false,
            severity: "Minor".into(),
            ..severe.clone()
        };
        let android = message(Platform::Android, &token, Payload::Broadcast(&severe), 3600);
        assert_eq!(android["message"]["android"]["priority"], "HIGH");
        assert_eq!(android["message"]["data"]["type"], "broadcast");
        assert_eq!(
            android["message"]["android"]["collapse_key"],
            severe.collapse_key()
        );
        let android = message(Platform::Android, &token, Payload::Broadcast(&minor), 3600);
        assert_eq!(android["message"]["android"]["priority"], "NORMAL");
        let ios = message(Platform::Ios, &token, Payload::Broadcast(&minor), 3600);
        let apns = &ios["message"]["apns"];
        assert_eq!(apns["headers"]["apns-priority"], "5");
        assert_eq!(apns["payload"]["aps"]["interruption-level"], "active");
        assert_eq!(
            apns["payload"]["aps"]["alert"]["body"],
            "Banjir, hindari Monas."
        );
    }

    #[test]
    fn fcm_errors_are_read_into_what_to_do() {
        let error = |status: u16, code: &str, field: Option<&str>| {
            let mut details = vec![
                json!({"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}),
            ];
            if let Some(field) = field {
                details.push(json!({"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [{"field": field, "description": "Invalid registration token"}]}));
            }
            json!({"error": {"code": status, "message": "m", "status": code, "details": details}})
        };
        assert_eq!(
            classify(404, None, &error(404, "UNREGISTERED", None)),
            Outcome::Dead
        );
        assert_eq!(
            classify(
                400,
                None,
                &error(400, "INVALID_ARGUMENT", Some("message.token"))
            ),
            Outcome::Dead
        );
        assert!(matches!(
            classify(
                400,
                None,
                &error(400, "INVALID_ARGUMENT", Some("message.android.ttl"))
            ),
            Outcome::Failed(_)
        ));
        let wait = Some(Duration::from_secs(3));
        assert_eq!(
            classify(429, wait, &error(429, "QUOTA_EXCEEDED", None)),
            Outcome::Retry { after: wait }
        );
        assert_eq!(
            classify(503, None, &Value::Null),
            Outcome::Retry { after: None }
        );
        assert!(ttl_s(Utc::now(), Utc::now()).is_none());
    }
}
