//! Incidents in, Encounters out.
//!
//! - The feed consumer reads [`IncidentFeed`] from the bridge's own cursor and applies each batch
//!   (projection + outbox rows + cursor) in one transaction ([`store::apply_events`]). A feed or
//!   database failure only delays the next batch: the consumer logs it, backs off and goes on.
//! - The Encounter worker sends outbox rows to SATUSEHAT with exponential back-off. Before any
//!   create it searches SATUSEHAT by our identifier, so a create that timed out after SATUSEHAT
//!   committed it is found instead of duplicated. Rows that exhaust their attempts are marked
//!   `failed` and listed for coordinators. Nothing here ever blocks dispatch: dispatch does not know
//!   the bridge exists.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use kreki_platform::shutdown::CancellationToken;

use crate::client::{SatusehatClient, SatusehatError};
use crate::domain::IncidentFeed;
use crate::state::BridgeState;
use crate::store::{self, OutboxRow, SyncRow};

/// Events read per batch.
pub const FEED_BATCH: u32 = 200;

/// Reads and applies one batch; answers how many events it applied.
///
/// # Errors
/// The feed's error or a database error; nothing was applied then.
pub async fn pump_once(state: &BridgeState, feed: &dyn IncidentFeed) -> anyhow::Result<usize> {
    let cursor = store::feed_cursor(&state.pool).await?;
    let events = feed.next_batch(cursor, FEED_BATCH).await?;
    if events.is_empty() {
        return Ok(0);
    }
    store::apply_events(&state.pool, &state.pii, &events, state.client.is_some()).await?;
    Ok(events.len())
}

/// Consumes the feed until `shutdown`: at once while there is more, every poll interval when idle,
/// with growing pauses (up to a minute) while the feed or the database fails.
pub async fn run_feed(
    state: BridgeState,
    feed: Arc<dyn IncidentFeed>,
    shutdown: CancellationToken,
) {
    let mut failures = 0u32;
    loop {
        let pause = match pump_once(&state, feed.as_ref()).await {
            Ok(applied) => {
                failures = 0;
                if applied > 0 {
                    Duration::ZERO
                } else {
                    state.settings.poll
                }
            }
            Err(error) => {
                failures = failures.saturating_add(1);
                tracing::warn!(error = %format!("{error:#}"), failures, "incident feed failed; will retry");
                crate::config::backoff(Duration::from_secs(1), Duration::from_secs(60), failures)
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(pause) => {}
        }
    }
}

/// Why one outbox row could not be sent now.
enum SendError {
    /// Try again later.
    Retry(String),
    /// Trying again cannot help (a rule the resource breaks).
    Permanent(String),
}

impl From<SatusehatError> for SendError {
    fn from(error: SatusehatError) -> Self {
        if error.is_transient() {
            Self::Retry(error.to_string())
        } else {
            Self::Permanent(error.to_string())
        }
    }
}

impl From<sqlx::Error> for SendError {
    fn from(error: sqlx::Error) -> Self {
        Self::Retry(format!("database: {error}"))
    }
}

/// Sends due outbox rows; answers how many were worked (sent or not).
///
/// # Errors
/// Database errors while claiming or recording.
pub async fn work_once(state: &BridgeState) -> Result<usize, sqlx::Error> {
    let Some(client) = state.client.clone() else {
        return Ok(0);
    };
    // The lease outlasts the few requests of one row (each may retry once after a 401), so no
    // second worker takes the row meanwhile.
    let lease_s = (state.settings.request_timeout.as_secs_f64() * 8.0).max(30.0);
    let rows = store::claim_outbox(&state.pool, 20, lease_s).await?;
    for row in &rows {
        let result = match row.action.as_str() {
            "create" => create(state, &client, row).await,
            _ => update(state, &client, row).await,
        };
        let outcome = match &result {
            Ok(()) => "sent",
            Err(SendError::Retry(_)) => "retry",
            Err(SendError::Permanent(_)) => "rejected",
        };
        metrics::counter!("bridge_encounter_sync_total", "action" => row.action.clone(), "outcome" => outcome)
            .increment(1);
        match result {
            Ok(()) => store::outbox_done(&state.pool, row.id).await?,
            Err(error) => {
                let attempt = u32::try_from(row.attempts.saturating_add(1)).unwrap_or(u32::MAX);
                let (message, retry_at) = match error {
                    SendError::Retry(message) if attempt < state.settings.max_attempts => {
                        let delay = chrono::Duration::from_std(state.settings.retry_delay(attempt))
                            .unwrap_or_default();
                        (message, Some(Utc::now() + delay))
                    }
                    SendError::Retry(message) | SendError::Permanent(message) => (message, None),
                };
                if retry_at.is_none() {
                    // Operators alert on this; coordinators see the change at /v1/fhir-sync/failures.
                    metrics::counter!("bridge_encounter_sync_failed_total", "action" => row.action.clone())
                        .increment(1);
                    tracing::error!(alert_id = %row.alert_id, action = %row.action, attempt, error = %message, "Encounter sync failed for good");
                } else {
                    tracing::warn!(alert_id = %row.alert_id, action = %row.action, attempt, error = %message, "Encounter sync failed; will retry");
                }
                store::outbox_failed_attempt(&state.pool, row.id, &message, retry_at).await?;
            }
        }
    }
    Ok(rows.len())
}

/// The practitioner to record: the first responder still on the alert with an IHS number.
async fn practitioner_of(
    state: &BridgeState,
    row: &OutboxRow,
) -> Result<Option<String>, sqlx::Error> {
    Ok(store::tasks_of(&state.pool, row.alert_id)
        .await?
        .into_iter()
        .filter(|task| task.status != "withdrawn")
        .find_map(|task| task.ihs_number))
}

async fn create(
    state: &BridgeState,
    client: &SatusehatClient,
    row: &OutboxRow,
) -> Result<(), SendError> {
    if store::sync_state(&state.pool, row.alert_id)
        .await?
        .is_some()
    {
        return Ok(());
    }
    let incident = store::incident(&state.pool, row.alert_id)
        .await?
        .ok_or_else(|| SendError::Permanent("incident not in the projection".into()))?;
    let Some(ihs) = practitioner_of(state, row).await? else {
        // Every verified practitioner withdrew before the Encounter was sent: there is nothing
        // to record in SATUSEHAT, and nothing a coordinator must fix.
        tracing::info!(alert_id = %row.alert_id, "no verified practitioner on the alert any more; no Encounter sent");
        return Ok(());
    };
    // The one place a patient's NIK is decrypted: to find the patient in SATUSEHAT.
    let patient_nik = match incident
        .patient_nik
        .as_deref()
        .map(|stored| state.pii.open_str(stored))
    {
        None => None,
        Some(Ok(nik)) => Some(nik),
        Some(Err(error)) => {
            tracing::error!(alert_id = %row.alert_id, %error, "the patient's NIK cannot be read; the Encounter goes without a subject");
            None
        }
    };
    let patient_ihs = match patient_nik {
        None => None,
        Some(nik) => {
            let mut patients = client.search_patients(&nik).await?;
            patients.dedup();
            // Several patients for one NIK: better no subject reference than the wrong person.
            (patients.len() == 1).then(|| patients.remove(0))
        }
    };
    let our_id = row.alert_id.to_string();
    let existing = client.find_encounters(&our_id).await?;
    let satusehat_id = match existing.into_iter().next() {
        Some(id) => {
            tracing::info!(alert_id = %row.alert_id, satusehat_id = %id, "Encounter already in SATUSEHAT (an earlier create went through)");
            id
        }
        None => {
            let encounter = crate::fhir::satusehat_encounter(
                &incident,
                client.org_id(),
                &state.settings.location_id,
                &ihs,
                patient_ihs.as_deref(),
                None,
            );
            client.create_encounter(&encounter).await?
        }
    };
    store::save_sync_state(
        &state.pool,
        row.alert_id,
        &SyncRow {
            satusehat_id,
            ihs_number: ihs,
            patient_ihs,
            synced_status: incident.status().encounter_status().to_owned(),
        },
    )
    .await?;
    Ok(())
}

async fn update(
    state: &BridgeState,
    client: &SatusehatClient,
    row: &OutboxRow,
) -> Result<(), SendError> {
    let Some(mut synced) = store::sync_state(&state.pool, row.alert_id).await? else {
        return match store::create_state(&state.pool, row.alert_id)
            .await?
            .as_deref()
        {
            Some("pending") => Err(SendError::Retry("the Encounter is not created yet".into())),
            // The create was given up (and is listed) or had nothing to send: nothing to update.
            _ => Ok(()),
        };
    };
    let incident = store::incident(&state.pool, row.alert_id)
        .await?
        .ok_or_else(|| SendError::Permanent("incident not in the projection".into()))?;
    let status = incident.status().encounter_status();
    if synced.synced_status == status {
        return Ok(());
    }
    let encounter = crate::fhir::satusehat_encounter(
        &incident,
        client.org_id(),
        &state.settings.location_id,
        &synced.ihs_number,
        synced.patient_ihs.as_deref(),
        Some(&synced.satusehat_id),
    );
    client
        .update_encounter(&synced.satusehat_id, &encounter)
        .await?;
    status.clone_into(&mut synced.synced_status);
    store::save_sync_state(&state.pool, row.alert_id, &synced).await?;
    Ok(())
}

/// Runs [`work_once`] until `shutdown`: at once while rows come, every poll interval when idle.
pub async fn run_outbox(state: BridgeState, shutdown: CancellationToken) {
    loop {
        let pause = match work_once(&state).await {
            Ok(0) => state.settings.poll,
            Ok(_) => Duration::ZERO,
            Err(error) => {
                tracing::warn!(%error, "Encounter outbox failed; will retry");
                state.settings.poll.max(Duration::from_secs(1))
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(pause) => {}
        }
    }
}
