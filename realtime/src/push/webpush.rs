//! Web Push for the PWAs: the payload encrypted for the browser (RFC 8291, `aes128gcm`, by
//! `web-push-native`), a VAPID token (RFC 8292, ES256, signed with `jsonwebtoken`), `TTL` to the
//! offer's deadline (or the broadcast's end), `Urgency: high` (`normal` for a broadcast that is not
//! severe), and `Topic` per offer or broadcast so a newer push replaces an older one still queued.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::EncodePrivateKey;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use crate::push::content::Payload;
use crate::push::device::{WebSubscription, decode};
use crate::push::error::PushError;
use crate::push::fcm::retry_after;
use crate::push::pusher::Outcome;

/// Longest a VAPID token is valid (RFC 8292 says at most 24 hours).
const VAPID_VALIDITY_S: i64 = 12 * 60 * 60;

/// The server's VAPID key pair.
#[derive(Clone)]
pub struct VapidKey {
    secret: p256::SecretKey,
    encoding: jsonwebtoken::EncodingKey,
    public_key: String,
}

impl std::fmt::Debug for VapidKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VapidKey")
            .field("public_key", &self.public_key)
            .finish_non_exhaustive()
    }
}

impl VapidKey {
    /// Reads a private key: 32 bytes in base64url (as `web-push generate-vapid-keys` prints).
    ///
    /// # Errors
    /// [`PushError::Setup`] naming `push.web_push.vapid_private_key`.
    pub fn from_base64(text: &SecretString) -> Result<Self, PushError> {
        let wrong = || {
            PushError::Setup(
                "push.web_push.vapid_private_key: must be a P-256 private key, 32 bytes in base64url"
                    .to_owned(),
            )
        };
        let bytes = decode(text.expose_secret().trim()).ok_or_else(wrong)?;
        let secret = p256::SecretKey::from_slice(&bytes).map_err(|_| wrong())?;
        Self::from_secret(secret)
    }

    /// A new random key pair (the demo makes one and keeps it in its data directory).
    ///
    /// # Errors
    /// [`PushError::Setup`] when the system has no randomness.
    pub fn generate() -> Result<Self, PushError> {
        // A random 32-byte string is a valid scalar unless it is zero or above the group order,
        // which happens with probability about 2^-32; try again then.
        for _ in 0..8 {
            let bytes: [u8; 32] = rand::random();
            if let Ok(secret) = p256::SecretKey::from_slice(&bytes) {
                return Self::from_secret(secret);
            }
        }
        Err(PushError::Setup(
            "no valid VAPID key could be drawn".to_owned(),
        ))
    }

    fn from_secret(secret: p256::SecretKey) -> Result<Self, PushError> {
        let der = secret
            .to_pkcs8_der()
            .map_err(|error| PushError::Setup(format!("VAPID key: {error}")))?;
        let public_key = URL_SAFE_NO_PAD.encode(secret.public_key().to_encoded_point(false));
        Ok(Self {
            encoding: jsonwebtoken::EncodingKey::from_ec_der(der.as_bytes()),
            secret,
            public_key,
        })
    }

    /// The private key, base64url, to keep in a config file (the demo does).
    pub fn private_key_base64(&self) -> SecretString {
        SecretString::from(URL_SAFE_NO_PAD.encode(self.secret.to_bytes()))
    }

    /// The public key PWAs subscribe with (`applicationServerKey`), unpadded base64url.
    pub fn public_key(&self) -> &str {
        &self.public_key
    }
}

#[derive(Serialize)]
struct VapidClaims<'a> {
    aud: &'a str,
    exp: i64,
    sub: &'a str,
}

/// Sends Web Push messages. Cheap to clone.
#[derive(Debug, Clone)]
pub struct WebPushClient {
    http: reqwest::Client,
    key: VapidKey,
    subject: String,
}

impl WebPushClient {
    /// A client signing with `key`, naming `subject` (`mailto:` or `https:`) as its contact.
    ///
    /// # Errors
    /// [`PushError::Setup`] when the HTTP client cannot be built.
    pub fn new(
        key: VapidKey,
        subject: String,
        request_timeout: Duration,
    ) -> Result<Self, PushError> {
        let http = reqwest::Client::builder()
            .timeout(request_timeout)
            .build()
            .map_err(|error| PushError::Setup(format!("HTTP client: {error}")))?;
        Ok(Self { http, key, subject })
    }

    /// The key pair.
    pub fn key(&self) -> &VapidKey {
        &self.key
    }

    /// Sends one offer or broadcast to one subscription and says what became of it.
    pub async fn send(
        &self,
        subscription: &WebSubscription,
        payload: Payload<'_>,
        now: DateTime<Utc>,
    ) -> Outcome {
        let left_s = (payload.expires_at() - now).num_seconds();
        let Ok(ttl_s) = u64::try_from(left_s) else {
            return Outcome::Expired;
        };
        if ttl_s == 0 {
            return Outcome::Expired;
        }
        let request = match self.build(subscription, payload, ttl_s, now) {
            Ok(request) => request,
            Err(why) => return Outcome::Failed(why),
        };
        match self.http.execute(request).await {
            Err(error) => {
                tracing::debug!(%error, "Web Push request failed");
                Outcome::Retry { after: None }
            }
            Ok(response) => {
                let status = response.status().as_u16();
                match status {
                    200..=299 => Outcome::Sent,
                    // RFC 8030: the subscription is gone (410) or never was (404).
                    404 | 410 => Outcome::Dead,
                    429 | 500..=599 => Outcome::Retry {
                        after: retry_after(response.headers()),
                    },
                    _ => Outcome::Failed(format!("the push service answered {status}")),
                }
            }
        }
    }

    fn build(
        &self,
        subscription: &WebSubscription,
        payload: Payload<'_>,
        ttl_s: u64,
        now: DateTime<Utc>,
    ) -> Result<reqwest::Request, String> {
        let endpoint: http::Uri = subscription
            .endpoint
            .parse()
            .map_err(|_| "stored endpoint is not a URL".to_owned())?;
        let ua_public = decode(&subscription.p256dh)
            .and_then(|bytes| p256::PublicKey::from_sec1_bytes(&bytes).ok())
            .ok_or("stored p256dh is not a P-256 key")?;
        let ua_auth: [u8; 16] = decode(&subscription.auth)
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or("stored auth is not 16 bytes")?;
        let body = serde_json::to_vec(&payload.web_data()).map_err(|error| error.to_string())?;
        let request = web_push_native::WebPushBuilder::new(
            endpoint.clone(),
            ua_public,
            web_push_native::Auth::from(ua_auth),
        )
        .with_valid_duration(Duration::from_secs(ttl_s))
        .build(body)
        .map_err(|error| format!("encrypting the payload: {error}"))?;
        let audience = format!(
            "{}://{}",
            endpoint.scheme_str().unwrap_or("https"),
            endpoint
                .authority()
                .map(http::uri::Authority::as_str)
                .unwrap_or_default()
        );
        let claims = VapidClaims {
            aud: &audience,
            exp: now.timestamp() + VAPID_VALIDITY_S,
            sub: &self.subject,
        };
        let jwt = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256),
            &claims,
            &self.key.encoding,
        )
        .map_err(|error| format!("signing the VAPID token: {error}"))?;
        let (parts, body) = request.into_parts();
        let mut request = reqwest::Request::new(
            reqwest::Method::POST,
            subscription
                .endpoint
                .parse()
                .map_err(|_| "stored endpoint is not a URL".to_owned())?,
        );
        *request.headers_mut() = parts.headers;
        let headers = request.headers_mut();
        let mut set = |name: &'static str, value: String| {
            if let Ok(value) = reqwest::header::HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        };
        set(
            "authorization",
            format!("vapid t={jwt}, k={}", self.key.public_key()),
        );
        set(
            "urgency",
            if payload.urgent() { "high" } else { "normal" }.to_owned(),
        );
        set("topic", payload.topic());
        *request.body_mut() = Some(body.into());
        Ok(request)
    }
}
