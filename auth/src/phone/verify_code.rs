//! `POST /v1/auth/phone/verify`: checks the code; the right one verifies the phone and raises trust.

use axum::extract::State;
use kreki_platform::Problem;
use kreki_platform::extract::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{AuthError, AuthResult};
use crate::extract::CurrentUser;
use crate::routes::AuthState;
use crate::trust::Trust;

/// Body of `POST /v1/auth/phone/verify`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct VerifyPhoneRequest {
    /// The six digits texted to the phone.
    #[schema(example = "482913")]
    pub code: String,
}

/// Answer of `POST /v1/auth/phone/verify`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VerifyPhoneResponse {
    /// Always true.
    pub phone_verified: bool,
    /// The account's trust level now (`verified` unless it was `trusted` or `blocked`); new access
    /// tokens carry it.
    pub trust: Trust,
}

/// The stored code: hash, expiry, wrong tries, lock.
type CodeRow = (
    Vec<u8>,
    chrono::DateTime<chrono::Utc>,
    i32,
    Option<chrono::DateTime<chrono::Utc>>,
);

/// What one try comes to (decided under the row's lock).
enum Outcome {
    Verified,
    Expired,
    Wrong { locked: bool },
}

/// Verifies the phone with the texted code. A wrong code counts as a try; the
/// `auth.phone_code_max_tries`th locks verification for `auth.phone_code_lock_s`.
#[utoipa::path(post, path = "/v1/auth/phone/verify", tag = "auth", request_body = VerifyPhoneRequest, security(("bearer" = [])),
    responses(
        (status = 200, description = "Phone verified", body = VerifyPhoneResponse),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Wrong, expired or never requested code (field `code`)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many wrong codes: locked for a while (`Retry-After`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn verify_code(
    State(state): State<AuthState>,
    caller: CurrentUser,
    Json(body): Json<VerifyPhoneRequest>,
) -> AuthResult<Json<VerifyPhoneResponse>> {
    let code = body.code.trim();
    if code.len() != 6 || !code.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(AuthError::field(
            "code",
            "must be the six digits texted to you",
        ));
    }
    let service = &state.service;
    let config = service.config();
    let user = caller.id.0;
    let mut tx = service.pool().begin().await?;
    let row: Option<CodeRow> = sqlx::query_as(
        "SELECT code_hash, expires_at, failed_tries, locked_until FROM auth.phone_codes
             WHERE user_id = $1 FOR UPDATE",
    )
    .bind(user)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((hash, expires_at, failed_tries, locked_until)) = row else {
        return Err(AuthError::field(
            "code",
            "no code was requested; ask for one first",
        ));
    };
    let now = chrono::Utc::now();
    if let Some(until) = locked_until.filter(|until| *until > now) {
        return Err(AuthError::PhoneCodeThrottled {
            why: "locked",
            retry_after_s: super::seconds_until(until),
        });
    }
    let outcome = if expires_at <= now {
        Outcome::Expired
    } else if super::code_hash(user, code) == hash {
        Outcome::Verified
    } else {
        let tries = u32::try_from(failed_tries).unwrap_or(0) + 1;
        Outcome::Wrong {
            locked: tries >= config.phone_code_max_tries,
        }
    };
    match outcome {
        Outcome::Verified => {
            sqlx::query("DELETE FROM auth.phone_codes WHERE user_id = $1")
                .bind(user)
                .execute(&mut *tx)
                .await?;
            let trust: String = sqlx::query_scalar(
                "UPDATE auth.users SET phone_verified_at = COALESCE(phone_verified_at, now()),
                     trust = CASE WHEN trust = 'new' THEN 'verified' ELSE trust END
                 WHERE id = $1 RETURNING trust",
            )
            .bind(user)
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            metrics::counter!("auth_phone_verified_total").increment(1);
            tracing::info!(user = %caller.id, "phone verified");
            Ok(Json(VerifyPhoneResponse {
                phone_verified: true,
                trust: Trust::parse(&trust).unwrap_or(Trust::Verified),
            }))
        }
        Outcome::Expired => {
            tx.rollback().await?;
            Err(AuthError::field("code", "has expired; ask for a new one"))
        }
        Outcome::Wrong { locked } => {
            let lock_s = i64::try_from(config.phone_code_lock_s).unwrap_or(900);
            sqlx::query(
                "UPDATE auth.phone_codes SET failed_tries = failed_tries + 1,
                     locked_until = CASE WHEN $2 THEN now() + make_interval(secs => $3) ELSE locked_until END
                 WHERE user_id = $1",
            )
            .bind(user)
            .bind(locked)
            .bind(lock_s as f64)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            metrics::counter!("auth_phone_code_wrong_total").increment(1);
            if locked {
                tracing::warn!(user = %caller.id, "phone verification locked after wrong codes");
            }
            Err(AuthError::field("code", "is wrong"))
        }
    }
}
