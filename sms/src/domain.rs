//! Validated values of the SMS service.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A phone number in E.164 (`+` then 7 to 15 digits, the first not 0): the only form Twilio's `To`
/// accepts without guessing a country.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct E164(String);

impl E164 {
    /// Parses an exact E.164 number (no spaces, no national spelling).
    pub fn parse(text: &str) -> Option<Self> {
        let digits = text.strip_prefix('+')?;
        let ok = (7..=15).contains(&digits.len())
            && digits.bytes().all(|byte| byte.is_ascii_digit())
            && !digits.starts_with('0');
        ok.then(|| Self(text.to_owned()))
    }

    /// The number with its `+`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for E164 {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value).ok_or_else(|| format!("`{value}` is not an E.164 number"))
    }
}

impl From<E164> for String {
    fn from(value: E164) -> Self {
        value.0
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Longest body Twilio accepts, in characters (it splits it into segments itself).
pub const MAX_BODY_CHARS: usize = 1600;

/// Why a text is sent: the label of its metrics and its row in the outbound log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// A phone verification code.
    VerificationCode,
    /// An offer that did not reach the volunteer's app.
    Offer,
    /// An answer to an inbound reply (accepted, already covered, not understood).
    Reply,
    /// An escalation to a coordinator.
    Escalation,
    /// An area broadcast (a warning) to someone inside the area whose app is not connected.
    Broadcast,
}

impl Purpose {
    /// The label and database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VerificationCode => "verification_code",
            Self::Offer => "offer",
            Self::Reply => "reply",
            Self::Escalation => "escalation",
            Self::Broadcast => "broadcast",
        }
    }
}

/// One text to send.
#[derive(Debug, Clone)]
pub struct OutboundSms {
    /// Recipient.
    pub to: E164,
    /// The text (at most [`MAX_BODY_CHARS`] characters).
    pub body: String,
    /// Where the provider posts delivery statuses, if anywhere.
    pub status_callback: Option<String>,
}

/// What the provider answered for an accepted text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentSms {
    /// The provider's message id (Twilio `SM…`).
    pub sid: String,
    /// Its first status (`queued` or `accepted`).
    pub status: String,
}

/// Delivery states of a text, as Twilio names them.
pub fn is_final_status(status: &str) -> bool {
    matches!(
        status,
        "delivered" | "undelivered" | "failed" | "read" | "canceled"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_is_strict() {
        assert!(E164::parse("+6281234567890").is_some());
        for bad in [
            "6281234567890",
            "+62 812",
            "+0812345678",
            "+62812345678901234",
            "+12345",
            "",
            "+",
        ] {
            assert!(E164::parse(bad).is_none(), "{bad}");
        }
    }
}
