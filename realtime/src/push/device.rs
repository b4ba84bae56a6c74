//! What a device registration is, validated once at the edge: the [`Platform`], an FCM
//! registration token ([`FcmToken`]) or a browser's Web Push subscription ([`WebSubscription`]).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kreki_platform::FieldError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Longest FCM token or Web Push endpoint accepted, in bytes (FCM tokens are about 160).
pub const TOKEN_MAX_BYTES: usize = 4096;

/// Where a device's pushes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// The Android app, through FCM.
    Android,
    /// The iOS app, through FCM's APNs block.
    Ios,
    /// A PWA, through Web Push (VAPID).
    Web,
}

impl Platform {
    /// Its name on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Android => "android",
            Self::Ios => "ios",
            Self::Web => "web",
        }
    }

    /// Reads a name; `None` for anything else.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "android" => Some(Self::Android),
            "ios" => Some(Self::Ios),
            "web" => Some(Self::Web),
            _ => None,
        }
    }
}

/// An FCM registration token: 1 to [`TOKEN_MAX_BYTES`] characters of base64url and `:` (what the
/// Firebase SDKs hand the app). Not `Display`: a token is a credential to buzz someone's phone.
#[derive(Clone, PartialEq, Eq)]
pub struct FcmToken(String);

impl std::fmt::Debug for FcmToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FcmToken({}…)", self.0.get(..8).unwrap_or_default())
    }
}

impl FcmToken {
    /// Checks the spelling.
    ///
    /// # Errors
    /// What is expected, for the `token` field.
    pub fn parse(input: &str) -> Result<Self, String> {
        if input.is_empty() || input.len() > TOKEN_MAX_BYTES {
            return Err(format!(
                "must be an FCM registration token of 1 to {TOKEN_MAX_BYTES} characters"
            ));
        }
        let allowed = |byte: u8| byte.is_ascii_alphanumeric() || b"-_:.".contains(&byte);
        if !input.bytes().all(allowed) {
            return Err(
                "must be an FCM registration token (letters, digits, `-`, `_`, `:`, `.`)"
                    .to_owned(),
            );
        }
        Ok(Self(input.to_owned()))
    }

    /// The token as FCM wants it in `message.token`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A browser's Web Push subscription, as `PushSubscription.toJSON()` gives it:
/// `{"endpoint": "https://…", "keys": {"p256dh": "…", "auth": "…"}}`.
#[derive(Clone, PartialEq, Eq)]
pub struct WebSubscription {
    /// The push service URL the server posts to.
    pub endpoint: String,
    /// The browser's P-256 public key (65 bytes, uncompressed), unpadded base64url.
    pub p256dh: String,
    /// The 16-byte authentication secret, unpadded base64url.
    pub auth: String,
}

impl std::fmt::Debug for WebSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let origin = self
            .endpoint
            .split('/')
            .take(3)
            .collect::<Vec<_>>()
            .join("/");
        write!(f, "WebSubscription({origin}/…)")
    }
}

impl WebSubscription {
    /// Reads a subscription given as a JSON object, or as a string holding that JSON. Field
    /// names in errors are `token.endpoint`, `token.keys.p256dh`, `token.keys.auth`.
    ///
    /// `allow_insecure` accepts `http://` endpoints and IP-address hosts (tests, demo); otherwise
    /// the endpoint must be `https://` on a host name, so a subscription cannot aim the server's
    /// requests at its own network.
    ///
    /// # Errors
    /// Every field that is wrong.
    pub fn parse(token: &serde_json::Value, allow_insecure: bool) -> Result<Self, Vec<FieldError>> {
        let parsed;
        let object = match token {
            serde_json::Value::String(text) => {
                parsed = serde_json::from_str::<serde_json::Value>(text).map_err(|_| {
                    vec![FieldError::new(
                        "token",
                        "for web, must be the PushSubscription JSON {endpoint, keys: {p256dh, auth}}",
                    )]
                })?;
                &parsed
            }
            other => other,
        };
        let Some(object) = object.as_object() else {
            return Err(vec![FieldError::new(
                "token",
                "for web, must be the PushSubscription JSON {endpoint, keys: {p256dh, auth}}",
            )]);
        };
        let text = |value: Option<&serde_json::Value>| {
            value.and_then(serde_json::Value::as_str).map(str::to_owned)
        };
        let mut errors = Vec::new();
        let endpoint = text(object.get("endpoint"));
        let keys = object.get("keys");
        let p256dh = text(keys.and_then(|keys| keys.get("p256dh")));
        let auth = text(keys.and_then(|keys| keys.get("auth")));
        match endpoint.as_deref() {
            None => errors.push(FieldError::new("token.endpoint", "is required (a URL)")),
            Some(endpoint) => {
                if let Err(why) = check_endpoint(endpoint, allow_insecure) {
                    errors.push(FieldError::new("token.endpoint", why));
                }
            }
        }
        match p256dh.as_deref().map(decode) {
            None => errors.push(FieldError::new("token.keys.p256dh", "is required")),
            Some(Some(bytes))
                if bytes.len() == 65 && p256::PublicKey::from_sec1_bytes(&bytes).is_ok() => {}
            Some(_) => errors.push(FieldError::new(
                "token.keys.p256dh",
                "must be an uncompressed P-256 public key in base64url",
            )),
        }
        match auth.as_deref().map(decode) {
            None => errors.push(FieldError::new("token.keys.auth", "is required")),
            Some(Some(bytes)) if bytes.len() == 16 => {}
            Some(_) => errors.push(FieldError::new(
                "token.keys.auth",
                "must be 16 bytes in base64url",
            )),
        }
        match (endpoint, p256dh, auth) {
            (Some(endpoint), Some(p256dh), Some(auth)) if errors.is_empty() => Ok(Self {
                endpoint,
                p256dh: p256dh.trim_end_matches('=').to_owned(),
                auth: auth.trim_end_matches('=').to_owned(),
            }),
            _ => Err(errors),
        }
    }
}

/// Decodes base64url with or without padding.
pub(crate) fn decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).ok()
}

fn check_endpoint(endpoint: &str, allow_insecure: bool) -> Result<(), String> {
    if endpoint.len() > TOKEN_MAX_BYTES {
        return Err(format!("must be at most {TOKEN_MAX_BYTES} characters"));
    }
    let uri: http::Uri = endpoint
        .parse()
        .map_err(|_| "must be an absolute https URL".to_owned())?;
    let host = uri.host().unwrap_or_default();
    let scheme_ok = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => allow_insecure,
        _ => false,
    };
    if !scheme_ok || host.is_empty() {
        return Err("must be an absolute https URL".to_owned());
    }
    let is_address = host
        .trim_matches(['[', ']'])
        .parse::<std::net::IpAddr>()
        .is_ok();
    if !allow_insecure && (is_address || host == "localhost") {
        return Err("must name a push service by its host name".to_owned());
    }
    Ok(())
}

/// A validated registration: what `POST /v1/devices` stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An Android or iOS app's FCM token.
    Fcm {
        /// `android` or `ios`.
        platform: Platform,
        /// The token.
        token: FcmToken,
    },
    /// A browser's subscription.
    Web(WebSubscription),
}

impl Target {
    /// Validates a `{platform, token}` body; field names are `platform`, `token` and
    /// `token.endpoint` / `token.keys.*`.
    ///
    /// # Errors
    /// Every field that is wrong.
    pub fn parse(
        platform: Option<&str>,
        token: Option<&serde_json::Value>,
        allow_insecure: bool,
    ) -> Result<Self, Vec<FieldError>> {
        let platform = match platform {
            None => {
                return Err(vec![FieldError::new(
                    "platform",
                    "is required: android, ios or web",
                )]);
            }
            Some(name) => Platform::parse(name)
                .ok_or_else(|| vec![FieldError::new("platform", "must be android, ios or web")])?,
        };
        let Some(token) = token.filter(|token| !token.is_null()) else {
            return Err(vec![FieldError::new("token", "is required")]);
        };
        match platform {
            Platform::Web => WebSubscription::parse(token, allow_insecure).map(Target::Web),
            Platform::Android | Platform::Ios => {
                let text = token.as_str().ok_or_else(|| {
                    vec![FieldError::new(
                        "token",
                        "must be the FCM registration token (a string)",
                    )]
                })?;
                FcmToken::parse(text)
                    .map(|token| Target::Fcm { platform, token })
                    .map_err(|why| vec![FieldError::new("token", why)])
            }
        }
    }

    /// The platform.
    pub fn platform(&self) -> Platform {
        match self {
            Self::Fcm { platform, .. } => *platform,
            Self::Web(_) => Platform::Web,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A real-shaped subscription (the public key is the P-256 generator point).
    fn subscription(endpoint: &str) -> serde_json::Value {
        let point = p256::PublicKey::from_sec1_bytes(&generator()).expect("a point");
        let p256dh = URL_SAFE_NO_PAD.encode(p256::EncodedPoint::from(point).as_bytes());
        json!({"endpoint": endpoint, "keys": {"p256dh": p256dh, "auth": URL_SAFE_NO_PAD.encode([7u8; 16])}})
    }

    fn generator() -> Vec<u8> {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        p256::AffinePoint::GENERATOR
            .to_encoded_point(false)
            .as_bytes()
            .to_vec()
    }

    fn fields(result: Result<Target, Vec<FieldError>>) -> Vec<String> {
        result
            .expect_err("invalid")
            .into_iter()
            .map(|error| error.field)
            .collect()
    }

    #[test]
    fn fcm_tokens_and_subscriptions_are_read() {
        let token = json!("cXyz-12_ab:APA91bH-token.value");
        assert!(matches!(
            Target::parse(Some("android"), Some(&token), false),
            Ok(Target::Fcm {
                platform: Platform::Android,
                ..
            })
        ));
        let sub = subscription("https://fcm.googleapis.com/fcm/send/abc");
        assert!(matches!(
            Target::parse(Some("web"), Some(&sub), false),
            Ok(Target::Web(_))
        ));
        let as_text = json!(sub.to_string());
        assert!(Target::parse(Some("web"), Some(&as_text), false).is_ok());
    }

    #[test]
    fn every_wrong_field_is_named() {
        assert_eq!(fields(Target::parse(None, None, false)), ["platform"]);
        assert_eq!(
            fields(Target::parse(Some("blackberry"), Some(&json!("t")), false)),
            ["platform"]
        );
        assert_eq!(fields(Target::parse(Some("ios"), None, false)), ["token"]);
        assert_eq!(
            fields(Target::parse(Some("ios"), Some(&json!("has space")), false)),
            ["token"]
        );
        assert_eq!(
            fields(Target::parse(Some("android"), Some(&json!(42)), false)),
            ["token"]
        );
        assert_eq!(
            fields(Target::parse(Some("web"), Some(&json!("not json")), false)),
            ["token"]
        );
        let bad = json!({"endpoint": "ftp://x", "keys": {"p256dh": "AAAA", "auth": "%%"}});
        assert_eq!(
            fields(Target::parse(Some("web"), Some(&bad), false)),
            ["token.endpoint", "token.keys.p256dh", "token.keys.auth"]
        );
    }

    #[test]
    fn local_endpoints_only_when_allowed() {
        for endpoint in [
            "http://push.example/x",
            "https://127.0.0.1/x",
            "https://localhost/x",
        ] {
            let sub = subscription(endpoint);
            assert_eq!(
                fields(Target::parse(Some("web"), Some(&sub), false)),
                ["token.endpoint"],
                "{endpoint}"
            );
            assert!(Target::parse(Some("web"), Some(&sub), true).is_ok());
        }
    }
}
