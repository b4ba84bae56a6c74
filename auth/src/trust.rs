//! How far KREKI trusts an account's panic. An emergency service cannot send volunteers to every
//! press of a fresh account (the Depok 112 line: 79,734 calls in ten weeks, 22 real emergencies),
//! so each region's policy names the trust levels whose panics wait for a coordinator (triage).
//! The level rides in the access token like the roles, so dispatch decides without asking KREKI
//! ID; a change takes effect in new tokens (at most their lifetime later), and a blocked account
//! gets no new tokens at all.

use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An account's trust level.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Trust {
    /// Registered; phone not verified yet.
    New,
    /// The phone was verified with a one-time code.
    Verified,
    /// A coordinator marked it, or its earlier alerts were real. Panic buttons (MQTT devices) are
    /// trusted by default.
    Trusted,
    /// Abused the service: may not raise alerts or sign in.
    Blocked,
}

impl Trust {
    /// Every level.
    pub const ALL: [Trust; 4] = [Trust::New, Trust::Verified, Trust::Trusted, Trust::Blocked];

    /// The wire and database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Trust::New => "new",
            Trust::Verified => "verified",
            Trust::Trusted => "trusted",
            Trust::Blocked => "blocked",
        }
    }

    /// Parses the wire spelling.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|trust| trust.as_str() == text)
    }
}

impl fmt::Display for Trust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Body of `PUT /v1/admin/users/{id}/trust`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SetTrustRequest {
    /// `new`, `verified`, `trusted` or `blocked`.
    pub trust: String,
}

/// Sets an account's trust level (coordinators and admins). `trusted` sends its panics to
/// volunteers at once in every region; `blocked` stops it signing in and raising alerts. Takes
/// effect in new access tokens (at most their lifetime later).
#[utoipa::path(put, path = "/v1/admin/users/{id}/trust", tag = "admin", request_body = SetTrustRequest, security(("bearer" = [])),
    params(("id" = crate::domain::UserId, Path, description = "Account id")),
    responses(
        (status = 200, description = "The account with its new trust level", body = crate::routes::User),
        (status = 403, description = "Not a coordinator or admin", body = kreki_platform::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such account", body = kreki_platform::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown trust level (field `trust`)", body = kreki_platform::Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn set_trust(
    state: axum::extract::State<crate::routes::AuthState>,
    caller: crate::extract::CurrentUser,
    kreki_platform::extract::Path(id): kreki_platform::extract::Path<uuid::Uuid>,
    kreki_platform::extract::Json(body): kreki_platform::extract::Json<SetTrustRequest>,
) -> crate::error::AuthResult<kreki_platform::extract::Json<crate::routes::User>> {
    caller.require(crate::domain::Role::Coordinator)?;
    let trust = Trust::parse(body.trust.trim()).ok_or_else(|| {
        crate::error::AuthError::Validation(vec![kreki_platform::FieldError::new(
            "trust",
            "must be new, verified, trusted or blocked",
        )])
    })?;
    let row = state
        .service
        .set_trust(crate::domain::UserId(id), trust)
        .await?;
    tracing::info!(actor = %caller.id, subject = %id, %trust, "trust level set");
    Ok(kreki_platform::extract::Json(row.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_round_trip() {
        for trust in Trust::ALL {
            assert_eq!(Trust::parse(trust.as_str()), Some(trust));
            assert_eq!(
                serde_json::to_value(trust).expect("serialises"),
                serde_json::json!(trust.as_str())
            );
        }
        assert_eq!(Trust::parse("root"), None);
    }
}
