//! Sending a text through the outbound log: the per-day caps, "at most one text per key", the
//! metrics (sent, delivered, failed by reason), delivery statuses from the provider's callbacks,
//! opt-outs, and inbound replies handed to whoever handles them (offers).

use std::sync::{Arc, OnceLock};

use sqlx::PgPool;
use uuid::Uuid;

use crate::config::SmsConfig;
use crate::domain::{E164, OutboundSms, Purpose, SentSms, is_final_status};
use crate::error::{SmsError, SmsResult};
use crate::provider::{BoxFuture, SmsProvider};

/// Words that opt a number out of texts (Twilio's defaults), and back in.
const STOP_WORDS: [&str; 6] = ["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"];
const START_WORDS: [&str; 3] = ["START", "YES", "UNSTOP"];

/// One text to send through the log.
#[derive(Debug, Clone)]
pub struct Text {
    /// Recipient.
    pub to: E164,
    /// The words.
    pub body: String,
    /// Why (metrics label).
    pub purpose: Purpose,
    /// The recipient's account, when known.
    pub user_id: Option<Uuid>,
    /// A key sent at most once (`offer:<id>`); `None` for texts that may repeat.
    pub dedupe_key: Option<String>,
    /// A short code the recipient may quote in a reply, stored to find this text again.
    pub reference: Option<String>,
}

/// A text someone sent to our number.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// The sender.
    pub from: E164,
    /// What they wrote.
    pub body: String,
}

/// Handles replies (offers' "1 K7Q"); answers the text to send back, if any.
pub trait InboundHandler: Send + Sync + 'static {
    /// Handles one inbound text.
    fn handle<'a>(&'a self, inbound: &'a Inbound) -> BoxFuture<'a, Option<String>>;
}

/// Told when the deployment's texts of the day pass `sms.cap_warning_ratio` of
/// `sms.daily_cap_total` (once per instance and UTC day), so coordinators learn before texts stop.
pub trait CapWarning: Send + Sync + 'static {
    /// `used` texts of `cap` today.
    fn near_cap(&self, used: u32, cap: u32);
}

/// How long a status callback waits for its message's sid to be recorded by the send.
pub const EARLY_CALLBACK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The SMS service.
pub struct SmsService {
    pool: PgPool,
    config: SmsConfig,
    provider: Option<Arc<dyn SmsProvider>>,
    inbound: OnceLock<Arc<dyn InboundHandler>>,
    cap_warning: OnceLock<Arc<dyn CapWarning>>,
    /// The UTC day (days since 1970) coordinators were last warned of.
    warned_day: std::sync::atomic::AtomicI64,
}

impl std::fmt::Debug for SmsService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmsService")
            .field("provider", &self.config.provider)
            .finish_non_exhaustive()
    }
}

impl SmsService {
    /// A service sending through `provider` (`None`: `sms.provider = "off"`).
    pub fn new(pool: PgPool, config: SmsConfig, provider: Option<Arc<dyn SmsProvider>>) -> Self {
        for reason in [
            "invalid_number",
            "unsubscribed",
            "rejected",
            "throttled",
            "unavailable",
            "cap_reached",
        ] {
            metrics::counter!("sms_failed_total", "reason" => reason).increment(0);
        }
        Self {
            pool,
            config,
            provider,
            inbound: OnceLock::new(),
            cap_warning: OnceLock::new(),
            warned_day: std::sync::atomic::AtomicI64::new(i64::MIN),
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &SmsConfig {
        &self.config
    }

    /// Whether texts can be sent at all.
    pub fn enabled(&self) -> bool {
        self.provider.is_some()
    }

    /// Sets who handles inbound replies (once; later calls are ignored).
    pub fn set_inbound_handler(&self, handler: Arc<dyn InboundHandler>) {
        let _ = self.inbound.set(handler);
    }

    /// Sets who is warned when the daily cap is near (once; later calls are ignored).
    pub fn set_cap_warning(&self, warning: Arc<dyn CapWarning>) {
        let _ = self.cap_warning.set(warning);
    }

    /// Sends `text` unless its recipient opted out, a per-day cap is reached, or its dedupe key was
    /// sent already (then `Ok(None)`).
    ///
    /// # Errors
    /// [`SmsError::Disabled`], [`SmsError::CapReached`], the provider's errors, database errors.
    pub async fn send(&self, text: Text) -> SmsResult<Option<SentSms>> {
        let Some(provider) = &self.provider else {
            return Err(SmsError::Disabled);
        };
        let (to_recipient, total): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE to_phone = $1), count(*) FROM sms.messages
             WHERE created_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
               AND status <> 'failed'",
        )
        .bind(text.to.as_str())
        .fetch_one(&self.pool)
        .await?;
        let failure = if total >= i64::from(self.config.daily_cap_total) {
            Some(SmsError::CapReached {
                scope: "deployment",
            })
        } else if to_recipient >= i64::from(self.config.daily_cap_per_recipient) {
            Some(SmsError::CapReached { scope: "recipient" })
        } else {
            None
        };
        if let Some(error) = failure {
            metrics::counter!("sms_failed_total", "reason" => error.reason()).increment(1);
            tracing::warn!(purpose = text.purpose.as_str(), %error, "text not sent");
            return Err(error);
        }
        self.warn_near_cap(total + 1);
        let opted_out: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM sms.opt_outs WHERE phone = $1)")
                .bind(text.to.as_str())
                .fetch_one(&self.pool)
                .await?;
        if opted_out && text.purpose != Purpose::VerificationCode {
            metrics::counter!("sms_failed_total", "reason" => "unsubscribed").increment(1);
            return Err(SmsError::Rejected {
                status: 400,
                code: Some(crate::error::CODE_UNSUBSCRIBED),
                message: "the recipient replied STOP".to_owned(),
            });
        }
        let id = Uuid::now_v7();
        let inserted = sqlx::query(
            "INSERT INTO sms.messages (id, purpose, user_id, to_phone, dedupe_key, reference, status)
             VALUES ($1, $2, $3, $4, $5, $6, 'sending') ON CONFLICT (dedupe_key) DO NOTHING",
        )
        .bind(id)
        .bind(text.purpose.as_str())
        .bind(text.user_id)
        .bind(text.to.as_str())
        .bind(&text.dedupe_key)
        .bind(&text.reference)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if inserted == 0 {
            metrics::counter!("sms_deduplicated_total").increment(1);
            return Ok(None);
        }
        let message = OutboundSms {
            to: text.to,
            body: text.body,
            status_callback: Some(self.config.status_callback_url()),
        };
        match provider.send(&message).await {
            Ok(sent) => {
                sqlx::query(
                    "UPDATE sms.messages SET sid = $2, status = $3, updated_at = now() WHERE id = $1",
                )
                .bind(id)
                .bind(&sent.sid)
                .bind(&sent.status)
                .execute(&self.pool)
                .await?;
                metrics::counter!("sms_sent_total", "purpose" => text.purpose.as_str())
                    .increment(1);
                Ok(Some(sent))
            }
            Err(error) => {
                sqlx::query(
                    "UPDATE sms.messages SET status = 'failed', error = $2, updated_at = now() WHERE id = $1",
                )
                .bind(id)
                .bind(error.to_string())
                .execute(&self.pool)
                .await?;
                metrics::counter!("sms_failed_total", "reason" => error.reason()).increment(1);
                tracing::warn!(purpose = text.purpose.as_str(), %error, "text not sent");
                Err(error)
            }
        }
    }

    fn warn_near_cap(&self, used: i64) {
        let cap = f64::from(self.config.daily_cap_total);
        #[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
        let ratio = used as f64 / cap;
        metrics::gauge!("sms_daily_cap_used_ratio").set(ratio);
        if ratio >= self.config.cap_warning_ratio {
            let today = chrono::Utc::now().timestamp().div_euclid(86_400);
            let before = self
                .warned_day
                .swap(today, std::sync::atomic::Ordering::Relaxed);
            if before != today
                && let Some(warning) = self.cap_warning.get()
            {
                warning.near_cap(
                    u32::try_from(used).unwrap_or(u32::MAX),
                    self.config.daily_cap_total,
                );
            }
            tracing::warn!(
                used,
                cap = self.config.daily_cap_total,
                "SMS: the deployment's daily cap is near; coordinators should expect texts to stop"
            );
        }
    }

    /// Records a delivery status from the provider's callback. Statuses arrive out of order at
    /// times: a status never replaces a later one (`queued` < `sending` < `sent` < a final one),
    /// and a final status is never replaced. A callback can also arrive before the send has
    /// recorded the message's sid (the provider answers the send and calls back at once): it then
    /// waits for the sid, up to [`EARLY_CALLBACK_WAIT`], instead of being lost.
    ///
    /// # Errors
    /// Database errors.
    pub async fn record_status(
        &self,
        sid: &str,
        status: &str,
        error_code: Option<&str>,
    ) -> SmsResult<bool> {
        let deadline = tokio::time::Instant::now() + EARLY_CALLBACK_WAIT;
        let updated = loop {
            let updated = sqlx::query(
                "UPDATE sms.messages SET status = $2, error = COALESCE($3, error), updated_at = now()
                 WHERE sid = $1
                   AND status NOT IN ('delivered', 'undelivered', 'failed', 'read', 'canceled')
                   AND sms.status_rank(status) <= sms.status_rank($2)",
            )
            .bind(sid)
            .bind(status)
            .bind(error_code.map(|code| format!("provider error {code}")))
            .execute(&self.pool)
            .await?
            .rows_affected();
            if updated > 0 || tokio::time::Instant::now() >= deadline {
                break updated;
            }
            let known: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM sms.messages WHERE sid = $1)")
                    .bind(sid)
                    .fetch_one(&self.pool)
                    .await?;
            if known {
                // Known and already at this status or past it.
                break 0;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        if updated > 0 && is_final_status(status) {
            if status == "delivered" || status == "read" {
                metrics::counter!("sms_delivered_total").increment(1);
            } else {
                let reason = match error_code {
                    Some("30003") => "unreachable",
                    Some("30005") => "unknown_number",
                    Some("30006") => "landline",
                    Some("30007") => "carrier_filtered",
                    _ => "undelivered",
                };
                metrics::counter!("sms_failed_total", "reason" => reason).increment(1);
            }
        }
        Ok(updated > 0)
    }

    /// The dedupe key and recipient account of the latest text of `purpose` to `phone` whose
    /// reference is `reference` (any reference when `None`): what a reply answers.
    ///
    /// # Errors
    /// Database errors.
    pub async fn replied_to(
        &self,
        phone: &E164,
        purpose: Purpose,
        reference: Option<&str>,
    ) -> SmsResult<Option<(String, Option<Uuid>)>> {
        Ok(sqlx::query_as(
            "SELECT dedupe_key, user_id FROM sms.messages
             WHERE to_phone = $1 AND purpose = $2 AND dedupe_key IS NOT NULL
               AND ($3::text IS NULL OR reference = $3) AND status <> 'failed'
             ORDER BY created_at DESC LIMIT 1",
        )
        .bind(phone.as_str())
        .bind(purpose.as_str())
        .bind(reference)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The latest status of the text `sid` (tests, support).
    ///
    /// # Errors
    /// Database errors.
    pub async fn status_of(&self, sid: &str) -> SmsResult<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT status FROM sms.messages WHERE sid = $1")
                .bind(sid)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Handles a text to our number: STOP/START words change the opt-out, anything else goes to the
    /// inbound handler, whose answer is texted back.
    ///
    /// # Errors
    /// Database errors.
    pub async fn receive(&self, inbound: Inbound) -> SmsResult<()> {
        let word = inbound.body.trim().to_uppercase();
        if STOP_WORDS.contains(&word.as_str()) {
            sqlx::query("INSERT INTO sms.opt_outs (phone) VALUES ($1) ON CONFLICT DO NOTHING")
                .bind(inbound.from.as_str())
                .execute(&self.pool)
                .await?;
            tracing::info!("a number opted out of texts");
            return Ok(());
        }
        if START_WORDS.contains(&word.as_str()) {
            sqlx::query("DELETE FROM sms.opt_outs WHERE phone = $1")
                .bind(inbound.from.as_str())
                .execute(&self.pool)
                .await?;
            return Ok(());
        }
        metrics::counter!("sms_received_total").increment(1);
        let Some(handler) = self.inbound.get() else {
            return Ok(());
        };
        if let Some(answer) = handler.handle(&inbound).await {
            let reply = Text {
                to: inbound.from,
                body: answer,
                purpose: Purpose::Reply,
                user_id: None,
                dedupe_key: None,
                reference: None,
            };
            if let Err(error) = self.send(reply).await {
                tracing::warn!(%error, "the answer to an inbound text was not sent");
            }
        }
        Ok(())
    }
}
