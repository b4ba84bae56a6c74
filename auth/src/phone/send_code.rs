//! `POST /v1/auth/phone/code`: texts a fresh code to the signed-in account's phone.

use axum::extract::State;
use http::StatusCode;
use kreki_platform::Problem;
use rand::Rng;

use crate::error::{AuthError, AuthResult};
use crate::extract::CurrentUser;
use crate::routes::AuthState;

/// The text, in Bahasa Indonesia then English, one GSM-7 segment.
pub(crate) fn code_text(code: &str, ttl_min: u64) -> String {
    format!(
        "KREKI: kode verifikasi {code}, berlaku {ttl_min} menit. Jangan berikan ke siapa pun. / Your KREKI code."
    )
}

/// Texts a six-digit code to the account's phone. Throttled: one code per
/// `auth.phone_code_resend_s`, none while verification is locked.
#[utoipa::path(post, path = "/v1/auth/phone/code", tag = "auth", security(("bearer" = [])),
    request_body(content = Object, description = "Empty object `{}`"),
    responses(
        (status = 202, description = "A code is on its way (also when the phone is verified already: nothing is sent)"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "A code was sent moments ago, or verification is locked (`Retry-After`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Texts cannot be sent now", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn send_code(
    State(state): State<AuthState>,
    caller: CurrentUser,
) -> AuthResult<StatusCode> {
    let service = &state.service;
    let config = service.config();
    let user = service.user(caller.id).await?;
    if user.phone_verified_at.is_some() {
        return Ok(StatusCode::ACCEPTED);
    }
    let Some(sms) = service.sms().filter(|sms| sms.enabled()) else {
        return Err(AuthError::SmsUnavailable(
            "no SMS provider is configured".to_owned(),
        ));
    };
    let Some(to) = kreki_sms::E164::parse(&user.phone) else {
        return Err(AuthError::field("phone", "is not an E.164 number"));
    };
    let code = format!("{:06}", rand::rng().random_range(0..1_000_000u32));
    let hash = super::code_hash(user.id, &code);
    let ttl_s = i64::try_from(config.phone_code_ttl_s).unwrap_or(600);
    let resend_s = i64::try_from(config.phone_code_resend_s).unwrap_or(60);
    // One statement decides and stores: a code sent less than `resend_s` ago, or a live lock,
    // leaves the row as it is (and the request gets 429), so concurrent requests send one code.
    // Wrong tries are kept across resends until the lock they earn has passed.
    let stored: Option<(chrono::DateTime<chrono::Utc>,)> = sqlx::query_as(
        "INSERT INTO auth.phone_codes (user_id, code_hash, expires_at, sent_at)
         VALUES ($1, $2, now() + make_interval(secs => $3), now())
         ON CONFLICT (user_id) DO UPDATE SET
             code_hash = EXCLUDED.code_hash, expires_at = EXCLUDED.expires_at, sent_at = now(),
             failed_tries = CASE WHEN auth.phone_codes.locked_until <= now() THEN 0
                                 ELSE auth.phone_codes.failed_tries END,
             locked_until = CASE WHEN auth.phone_codes.locked_until <= now() THEN NULL
                                 ELSE auth.phone_codes.locked_until END
           WHERE auth.phone_codes.sent_at <= now() - make_interval(secs => $4)
             AND (auth.phone_codes.locked_until IS NULL OR auth.phone_codes.locked_until <= now())
         RETURNING expires_at",
    )
    .bind(user.id)
    .bind(&hash)
    .bind(ttl_s as f64)
    .bind(resend_s as f64)
    .fetch_optional(service.pool())
    .await?;
    if stored.is_none() {
        let (sent_at, locked_until): (
            chrono::DateTime<chrono::Utc>,
            Option<chrono::DateTime<chrono::Utc>>,
        ) = sqlx::query_as("SELECT sent_at, locked_until FROM auth.phone_codes WHERE user_id = $1")
            .bind(user.id)
            .fetch_one(service.pool())
            .await?;
        return Err(match locked_until {
            Some(until) if until > chrono::Utc::now() => AuthError::PhoneCodeThrottled {
                why: "locked",
                retry_after_s: super::seconds_until(until),
            },
            _ => AuthError::PhoneCodeThrottled {
                why: "resend",
                retry_after_s: super::seconds_until(sent_at + chrono::Duration::seconds(resend_s)),
            },
        });
    }
    let text = kreki_sms::Text {
        to,
        body: code_text(&code, config.phone_code_ttl_s / 60),
        purpose: kreki_sms::Purpose::VerificationCode,
        user_id: Some(user.id),
        dedupe_key: None,
        reference: None,
    };
    if let Err(error) = sms.send(text).await {
        // Not texted: let the person ask again at once rather than wait out the resend throttle.
        sqlx::query("UPDATE auth.phone_codes SET sent_at = '-infinity' WHERE user_id = $1")
            .bind(user.id)
            .execute(service.pool())
            .await?;
        return Err(match error {
            kreki_sms::SmsError::Rejected { .. } | kreki_sms::SmsError::Invalid(_) => {
                AuthError::field("phone", format!("cannot receive texts: {error}"))
            }
            other => AuthError::SmsUnavailable(other.to_string()),
        });
    }
    tracing::info!(user = %caller.id, "phone verification code sent");
    Ok(StatusCode::ACCEPTED)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_code_text_fits_one_segment() {
        let text = super::code_text("123456", 10);
        assert!(text.len() <= 160, "{} characters", text.len());
        assert!(text.is_ascii());
    }
}
