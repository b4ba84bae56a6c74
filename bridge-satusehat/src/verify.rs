//! Practitioner verification: is this volunteer a health worker registered in SATUSEHAT?
//!
//! One NIK lookup: no match is `not_found`, one IHS number is `verified`, several are `ambiguous`
//! (the sandbox returns several for one NIK, so a list is never collapsed by guessing). When
//! SATUSEHAT cannot answer, the result is `unavailable` and a background retry (exponential back-off,
//! bounded attempts) asks again; each final result goes to the [`PractitionerStatusSink`](crate::domain::PractitionerStatusSink).

use chrono::Utc;
use kreki_platform::shutdown::CancellationToken;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::Nik;
use crate::state::BridgeState;
use crate::store;

/// Result of a verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VerificationStatus {
    /// Exactly one health worker has this NIK.
    Verified,
    /// No health worker has this NIK.
    NotFound,
    /// Several records match this NIK; an admin must sort it out with SATUSEHAT.
    Ambiguous,
    /// SATUSEHAT could not be asked now; KREKI retries in the background.
    Unavailable,
}

impl VerificationStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Verified => "verified",
            Self::NotFound => "not_found",
            Self::Ambiguous => "ambiguous",
            Self::Unavailable => "unavailable",
        }
    }
}

/// What a verification found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Verification {
    /// The result.
    pub status: VerificationStatus,
    /// The IHS number, when verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ihs_number: Option<String>,
}

/// Asks SATUSEHAT about `nik` and classifies the answer; `Err` carries why it could not.
async fn look_up(state: &BridgeState, nik: &Nik) -> Result<Verification, String> {
    let Some(client) = &state.client else {
        return Err("SATUSEHAT is not configured".to_owned());
    };
    let matches = client
        .search_practitioners(nik)
        .await
        .map_err(|error| error.to_string())?;
    let mut numbers: Vec<String> = matches
        .into_iter()
        .filter_map(|found| found.ihs_number)
        .collect();
    numbers.sort();
    numbers.dedup();
    Ok(match numbers.as_slice() {
        [] => Verification {
            status: VerificationStatus::NotFound,
            ihs_number: None,
        },
        [one] => Verification {
            status: VerificationStatus::Verified,
            ihs_number: Some(one.clone()),
        },
        _ => Verification {
            status: VerificationStatus::Ambiguous,
            ihs_number: None,
        },
    })
}

/// Stores a final result and tells the sink.
async fn settle(
    state: &BridgeState,
    user: Uuid,
    nik: &Nik,
    attempts: i32,
    found: &Verification,
) -> Result<(), sqlx::Error> {
    store::save_practitioner(
        &state.pool,
        user,
        None,
        &state.pii.hash(nik),
        found.status.as_str(),
        found.ihs_number.as_deref(),
        attempts,
        None,
        None,
    )
    .await?;
    state.sink.set_verified(user, found.ihs_number.clone());
    metrics::counter!("bridge_practitioner_verifications_total", "status" => found.status.as_str())
        .increment(1);
    tracing::info!(%user, status = found.status.as_str(), "practitioner verification settled");
    Ok(())
}

/// Verifies volunteer `user` by `nik`, now. `unavailable` schedules background retries (unless
/// SATUSEHAT is not configured at all).
///
/// # Errors
/// Only database errors; SATUSEHAT's failures become `unavailable`.
pub async fn verify(
    state: &BridgeState,
    user: Uuid,
    nik: &Nik,
) -> Result<Verification, sqlx::Error> {
    match look_up(state, nik).await {
        Ok(found) => {
            settle(state, user, nik, 1, &found).await?;
            Ok(found)
        }
        Err(why) => {
            tracing::warn!(%user, error = %why, "practitioner verification unavailable; will retry");
            let retry_at = state.client.is_some().then(|| {
                Utc::now()
                    + chrono::Duration::from_std(state.settings.retry_delay(1)).unwrap_or_default()
            });
            store::save_practitioner(
                &state.pool,
                user,
                Some(&state.pii.seal(nik)),
                &state.pii.hash(nik),
                VerificationStatus::Unavailable.as_str(),
                None,
                1,
                retry_at,
                Some(&why),
            )
            .await?;
            Ok(Verification {
                status: VerificationStatus::Unavailable,
                ihs_number: None,
            })
        }
    }
}

/// Retries the verifications that are due; answers how many were tried.
///
/// # Errors
/// Database errors.
pub async fn retry_due(state: &BridgeState) -> Result<usize, sqlx::Error> {
    let lease_s = state.settings.retry_max.as_secs_f64().max(60.0);
    let due = store::claim_due_practitioners(&state.pool, 20, lease_s).await?;
    for row in &due {
        let nik = match row.nik.as_deref().map(|stored| state.pii.open_str(stored)) {
            Some(Ok(nik)) => nik,
            None => continue,
            Some(Err(error)) => {
                tracing::error!(user = %row.user_id, %error, "a pending verification's NIK cannot be read; the volunteer must ask again");
                continue;
            }
        };
        let attempts = row.attempts.saturating_add(1);
        match look_up(state, &nik).await {
            Ok(found) => settle(state, row.user_id, &nik, attempts, &found).await?,
            Err(why) => {
                let attempt = u32::try_from(attempts).unwrap_or(u32::MAX);
                let retry_at = (attempt < state.settings.max_attempts).then(|| {
                    Utc::now()
                        + chrono::Duration::from_std(state.settings.retry_delay(attempt))
                            .unwrap_or_default()
                });
                if retry_at.is_none() {
                    tracing::warn!(user = %row.user_id, attempts, "practitioner verification gave up; the volunteer may ask again");
                }
                store::save_practitioner(
                    &state.pool,
                    row.user_id,
                    retry_at.is_some().then(|| state.pii.seal(&nik)).as_ref(),
                    &state.pii.hash(&nik),
                    VerificationStatus::Unavailable.as_str(),
                    None,
                    attempts,
                    retry_at,
                    Some(&why),
                )
                .await?;
            }
        }
    }
    Ok(due.len())
}

/// Runs [`retry_due`] every poll interval until `shutdown`.
pub async fn run_retries(state: BridgeState, shutdown: CancellationToken) {
    let mut tick =
        tokio::time::interval(state.settings.poll.max(std::time::Duration::from_secs(1)));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = tick.tick() => if let Err(error) = retry_due(&state).await {
                tracing::warn!(%error, "practitioner verification retries failed; will try again");
            },
        }
    }
}
