//! A client of Twilio's Programmable Messaging REST API (`POST
//! /2010-04-01/Accounts/{AccountSid}/Messages.json`, HTTP Basic with the account SID and auth
//! token, form fields `To`, `From`, `Body`, `StatusCallback`). Many Indonesian aggregators serve
//! the same API at another base URL.
//!
//! Retries: 429, 5xx and network failures are retried up to `sms.max_attempts` times, after the
//! `Retry-After` the provider asked for (capped) or an exponential back-off with jitter; any other
//! 4xx is final (a wrong number stays wrong). Twilio answers errors as
//! `{"code": 21211, "message": …, "more_info": …, "status": 400}`.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::config::SmsConfig;
use crate::domain::{MAX_BODY_CHARS, OutboundSms, SentSms};
use crate::error::SmsError;
use crate::provider::{BoxFuture, SmsProvider};

/// How a failed attempt is retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all.
    pub max_attempts: u32,
    /// First back-off.
    pub base: Duration,
    /// Longest wait.
    pub cap: Duration,
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1` (after `attempt` failed, 1-based): the provider's
    /// `Retry-After` when given, else `base * 2^(attempt-1)` plus up to half of `base` as jitter;
    /// never above `cap`.
    pub fn wait(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(after) = retry_after {
            return after.min(self.cap);
        }
        let exponential = self
            .base
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)));
        let half_ms = u64::try_from(self.base.as_millis() / 2).unwrap_or(u64::MAX);
        let jitter = Duration::from_millis(rand::random_range(0..=half_ms));
        (exponential + jitter).min(self.cap)
    }
}

/// The Twilio client.
pub struct TwilioClient {
    http: reqwest::Client,
    messages_url: String,
    account_sid: String,
    auth_token: SecretString,
    from: String,
    retry: RetryPolicy,
}

impl std::fmt::Debug for TwilioClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioClient")
            .field("messages_url", &self.messages_url)
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct MessageResource {
    sid: String,
    status: String,
}

#[derive(Deserialize)]
struct ErrorBody {
    code: Option<u32>,
    message: Option<String>,
}

/// One attempt's outcome.
enum Attempt {
    Sent(SentSms),
    Retry {
        after: Option<Duration>,
        why: String,
        throttled: bool,
    },
    Final(SmsError),
}

impl TwilioClient {
    /// A client from `[sms]`.
    ///
    /// # Errors
    /// When the HTTP client cannot be built (TLS setup).
    pub fn new(config: &SmsConfig) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.request_timeout_ms))
            .user_agent(concat!("kreki/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            messages_url: format!(
                "{}/2010-04-01/Accounts/{}/Messages.json",
                config.base_url.trim_end_matches('/'),
                config.account_sid
            ),
            account_sid: config.account_sid.clone(),
            auth_token: config.auth_token.clone(),
            from: config.from.clone(),
            retry: RetryPolicy {
                max_attempts: config.max_attempts.max(1),
                base: Duration::from_millis(config.retry_base_ms),
                cap: Duration::from_secs(config.max_retry_after_s),
            },
        })
    }

    async fn attempt(&self, message: &OutboundSms) -> Attempt {
        let mut form = vec![
            ("To", message.to.as_str()),
            (
                if self.from.starts_with("MG") {
                    "MessagingServiceSid"
                } else {
                    "From"
                },
                self.from.as_str(),
            ),
            ("Body", message.body.as_str()),
        ];
        if let Some(callback) = &message.status_callback {
            form.push(("StatusCallback", callback.as_str()));
        }
        let response = self
            .http
            .post(&self.messages_url)
            .basic_auth(&self.account_sid, Some(self.auth_token.expose_secret()))
            .form(&form)
            .send()
            .await;
        let response = match response {
            Ok(response) => response,
            Err(error) => {
                return Attempt::Retry {
                    after: None,
                    why: format!("request failed: {error}"),
                    throttled: false,
                };
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = response.bytes().await.unwrap_or_default();
        classify(status, retry_after, &body)
    }
}

fn classify(status: u16, retry_after: Option<Duration>, body: &[u8]) -> Attempt {
    match status {
        200..=299 => match serde_json::from_slice::<MessageResource>(body) {
            Ok(resource) => Attempt::Sent(SentSms {
                sid: resource.sid,
                status: resource.status,
            }),
            // Accepted, but the answer is not a message resource: sending again could duplicate
            // the text, so this is final.
            Err(error) => Attempt::Final(SmsError::Rejected {
                status,
                code: None,
                message: format!("unreadable answer: {error}"),
            }),
        },
        429 => Attempt::Retry {
            after: retry_after,
            why: "429".to_owned(),
            throttled: true,
        },
        500..=599 => Attempt::Retry {
            after: retry_after,
            why: format!("{status}"),
            throttled: false,
        },
        _ => {
            let error = serde_json::from_slice::<ErrorBody>(body).ok();
            Attempt::Final(SmsError::Rejected {
                status,
                code: error.as_ref().and_then(|error| error.code),
                message: error
                    .and_then(|error| error.message)
                    .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect()),
            })
        }
    }
}

impl SmsProvider for TwilioClient {
    fn send<'a>(&'a self, message: &'a OutboundSms) -> BoxFuture<'a, Result<SentSms, SmsError>> {
        Box::pin(async move {
            if message.body.trim().is_empty() {
                return Err(SmsError::Invalid("the body is empty".to_owned()));
            }
            if message.body.chars().count() > MAX_BODY_CHARS {
                return Err(SmsError::Invalid(format!(
                    "the body is over {MAX_BODY_CHARS} characters"
                )));
            }
            let mut last = String::new();
            let mut throttled = false;
            for attempt in 1..=self.retry.max_attempts {
                match self.attempt(message).await {
                    Attempt::Sent(sent) => return Ok(sent),
                    Attempt::Final(error) => return Err(error),
                    Attempt::Retry {
                        after,
                        why,
                        throttled: was_throttled,
                    } => {
                        tracing::warn!(attempt, %why, "SMS attempt failed; retrying");
                        metrics::counter!("sms_retries_total").increment(1);
                        last = why;
                        throttled = was_throttled;
                        if attempt < self.retry.max_attempts {
                            tokio::time::sleep(self.retry.wait(attempt, after)).await;
                        }
                    }
                }
            }
            Err(if throttled {
                SmsError::Throttled
            } else {
                SmsError::Unavailable {
                    attempts: self.retry.max_attempts,
                    last,
                }
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_retries_only_429_and_5xx() {
        assert!(matches!(
            classify(429, None, b""),
            Attempt::Retry {
                throttled: true,
                ..
            }
        ));
        assert!(matches!(
            classify(503, None, b""),
            Attempt::Retry {
                throttled: false,
                ..
            }
        ));
        let body = br#"{"code": 21211, "message": "The 'To' number +62 is not a valid phone number.", "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}"#;
        match classify(400, None, body) {
            Attempt::Final(SmsError::Rejected { code, .. }) => assert_eq!(code, Some(21211)),
            _ => panic!("a 400 is final"),
        }
        assert!(matches!(
            classify(201, None, br#"{"sid": "SM1", "status": "queued"}"#),
            Attempt::Sent(_)
        ));
    }

    #[test]
    fn back_off_doubles_with_jitter_and_is_capped() {
        let policy = RetryPolicy {
            max_attempts: 5,
            base: Duration::from_millis(100),
            cap: Duration::from_millis(1000),
        };
        for _ in 0..50 {
            let first = policy.wait(1, None);
            assert!((100..=150).contains(&first.as_millis()), "{first:?}");
            let third = policy.wait(3, None);
            assert!((400..=450).contains(&third.as_millis()), "{third:?}");
            assert_eq!(policy.wait(9, None), Duration::from_millis(1000));
        }
        assert_eq!(
            policy.wait(1, Some(Duration::from_secs(60))),
            Duration::from_millis(1000)
        );
    }
}
