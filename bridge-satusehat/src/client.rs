//! The SATUSEHAT client: OAuth2 client-credentials token cache and the few FHIR R4 calls KREKI makes.
//!
//! How SATUSEHAT behaves (and how this client copes):
//! - the token answer carries numbers as strings (`"expires_in": "3599"`); both spellings are read;
//! - tokens last about an hour and there is no refresh token: the cache renews
//!   `token_renew_before_s` before expiry, and only one renewal runs at a time however many callers
//!   wait (they hold a `tokio::sync::Mutex` across the token request, then share its answer);
//! - a 401 on a FHIR call (the gateway's `fault` object) drops the cached token and retries once;
//! - repeated token requests may be answered 429 without `Retry-After`: after any 429 the client
//!   sends nothing for `Retry-After` or `rate_limit_backoff_s` (at least 60 s), answering
//!   [`SatusehatError::RateLimited`] at once instead;
//! - every request carries a `User-Agent`;
//! - errors come in three shapes (FHIR OperationOutcome, gateway `fault`, plain-text 5xx), each a
//!   variant of [`SatusehatError`].

use std::time::{Duration, Instant};

use http::{HeaderMap, Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;

use crate::config::SatusehatConfig;
use crate::domain::{IHS_SYSTEM, NIK_SYSTEM, Nik, PATIENT_IHS_SYSTEM};

/// The identifier system under which an organization's own encounter ids live in SATUSEHAT.
pub fn encounter_identifier_system(org_id: &str) -> String {
    format!("http://sys-ids.kemkes.go.id/encounter/{org_id}")
}

/// One issue of a FHIR OperationOutcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutcomeIssue {
    /// `fatal`, `error`, `warning` or `information`.
    pub severity: String,
    /// FHIR issue type (`required`, `invalid`, `business-rule`, ...).
    pub code: String,
    /// SATUSEHAT's rule number, when it gives one (`10117`: wrong organization in an identifier).
    pub rule: Option<String>,
    /// Human text (`details.text` or `diagnostics`).
    pub text: String,
}

/// Everything a SATUSEHAT call can fail with.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SatusehatError {
    /// SATUSEHAT refused the request with a FHIR OperationOutcome (validation, business rules).
    #[error("SATUSEHAT answered {status} with an OperationOutcome: {}", summary(.issues))]
    OperationOutcome {
        /// HTTP status.
        status: u16,
        /// The issues.
        issues: Vec<OutcomeIssue>,
    },
    /// The API gateway refused the request (usually 401: missing, expired or invalid token, or
    /// wrong client credentials on the token endpoint).
    #[error("SATUSEHAT gateway fault {status}: {faultstring}")]
    Fault {
        /// HTTP status.
        status: u16,
        /// `fault.faultstring`.
        faultstring: String,
        /// `fault.detail.errorcode`, when given.
        errorcode: Option<String>,
    },
    /// A server error answered in plain text (or anything else we cannot read), at most 200 chars kept.
    #[error("SATUSEHAT answered {status}: {body}")]
    Server {
        /// HTTP status.
        status: u16,
        /// Start of the body.
        body: String,
    },
    /// SATUSEHAT rate-limited us; nothing is sent until the back-off has passed.
    #[error("SATUSEHAT rate limit: backing off for {retry_after_s} s")]
    RateLimited {
        /// Seconds left before the next request will be sent.
        retry_after_s: u64,
    },
    /// No answer within `request_timeout_ms`. The request may or may not have taken effect.
    #[error("SATUSEHAT did not answer in time")]
    Timeout,
    /// The connection failed.
    #[error("cannot reach SATUSEHAT: {0}")]
    Transport(String),
    /// A 2xx answer we could not read.
    #[error("unreadable SATUSEHAT answer: {0}")]
    Decode(String),
}

fn summary(issues: &[OutcomeIssue]) -> String {
    issues
        .iter()
        .map(|issue| match &issue.rule {
            Some(rule) => format!("[{rule}] {}", issue.text),
            None => issue.text.clone(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl SatusehatError {
    /// True when trying again later may succeed (outages, timeouts, rate limits, gateway hiccups);
    /// false for answers that will not change (a rule the resource breaks).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::OperationOutcome { status, .. } => *status >= 500,
            Self::Fault { .. }
            | Self::Server { .. }
            | Self::RateLimited { .. }
            | Self::Timeout
            | Self::Transport(_) => true,
            Self::Decode(_) => false,
        }
    }

    /// The SATUSEHAT rule numbers named by an OperationOutcome.
    pub fn rules(&self) -> Vec<&str> {
        match self {
            Self::OperationOutcome { issues, .. } => issues
                .iter()
                .filter_map(|issue| issue.rule.as_deref())
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Reads an error answer: OperationOutcome, gateway fault, or anything else as plain text.
    pub fn from_answer(status: StatusCode, body: &[u8]) -> Self {
        let status = status.as_u16();
        if let Ok(json) = serde_json::from_slice::<Value>(body) {
            if json.get("resourceType").and_then(Value::as_str) == Some("OperationOutcome") {
                return Self::OperationOutcome {
                    status,
                    issues: parse_issues(&json),
                };
            }
            if let Some(fault) = json.get("fault") {
                return Self::Fault {
                    status,
                    faultstring: fault
                        .get("faultstring")
                        .and_then(Value::as_str)
                        .unwrap_or("gateway fault")
                        .to_owned(),
                    errorcode: fault
                        .pointer("/detail/errorcode")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                };
            }
        }
        let text = String::from_utf8_lossy(body);
        Self::Server {
            status,
            body: text.chars().take(200).collect(),
        }
    }
}

fn parse_issues(outcome: &Value) -> Vec<OutcomeIssue> {
    outcome
        .get("issue")
        .and_then(Value::as_array)
        .map(|issues| {
            issues
                .iter()
                .map(|issue| {
                    let text = |pointer: &str| issue.pointer(pointer).and_then(Value::as_str);
                    OutcomeIssue {
                        severity: text("/severity").unwrap_or("error").to_owned(),
                        code: text("/code").unwrap_or("unknown").to_owned(),
                        rule: text("/details/coding/0/code").map(str::to_owned),
                        text: text("/details/text")
                            .or_else(|| text("/diagnostics"))
                            .unwrap_or("")
                            .to_owned(),
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

/// What the client needs to know; see [`SatusehatConfig`] for each value's meaning.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// Base URL without a trailing slash (`https://api-satusehat-stg.dto.kemkes.go.id`).
    pub base_url: String,
    /// Our organization id.
    pub org_id: String,
    /// OAuth2 client id.
    pub client_id: SecretString,
    /// OAuth2 client secret.
    pub client_secret: SecretString,
    /// `User-Agent` header.
    pub user_agent: String,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// Renew the token this long before it expires.
    pub renew_before: Duration,
    /// Silence after a 429 without `Retry-After`.
    pub rate_limit_backoff: Duration,
}

impl ClientSettings {
    /// Settings from config, for a SATUSEHAT at `base_url`; `None` when the credentials are missing.
    pub fn from_config(config: &SatusehatConfig, base_url: &str) -> Option<Self> {
        Some(Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            org_id: config.org_id.clone(),
            client_id: config.client_id.clone()?,
            client_secret: config.client_secret.clone()?,
            user_agent: config.user_agent.clone(),
            request_timeout: config.request_timeout(),
            renew_before: Duration::from_secs(config.token_renew_before_s),
            rate_limit_backoff: Duration::from_secs(config.rate_limit_backoff_s.max(60)),
        })
    }
}

/// A cached access token.
struct CachedToken {
    value: SecretString,
    /// When to fetch a new one (expiry minus `renew_before`).
    renew_at: Instant,
}

/// The token endpoint's answer. SATUSEHAT sends numbers as strings; both are accepted.
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: NumberOrString,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrString {
    Number(u64),
    Text(String),
}

impl NumberOrString {
    fn value(&self) -> Option<u64> {
        match self {
            Self::Number(number) => Some(*number),
            Self::Text(text) => text.trim().parse().ok(),
        }
    }
}

/// A health worker found in SATUSEHAT by NIK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PractitionerMatch {
    /// IHS number (`nakes-his-number`), if the record has one.
    pub ihs_number: Option<String>,
    /// The name as SATUSEHAT shows it (masked).
    pub name: Option<String>,
}

/// The SATUSEHAT client. Cheap to share behind an `Arc`; one per organization credential.
pub struct SatusehatClient {
    http: reqwest::Client,
    settings: ClientSettings,
    token: tokio::sync::Mutex<Option<CachedToken>>,
    blocked_until: std::sync::Mutex<Option<Instant>>,
}

impl std::fmt::Debug for SatusehatClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SatusehatClient")
            .field("base_url", &self.settings.base_url)
            .field("org_id", &self.settings.org_id)
            .finish_non_exhaustive()
    }
}

impl SatusehatClient {
    /// A client with these settings.
    ///
    /// # Errors
    /// When the HTTP client cannot be built (no TLS provider).
    pub fn new(settings: ClientSettings) -> Result<Self, SatusehatError> {
        let http = reqwest::Client::builder()
            .user_agent(settings.user_agent.clone())
            .timeout(settings.request_timeout)
            .connect_timeout(settings.request_timeout)
            .build()
            .map_err(|error| SatusehatError::Transport(error.without_url().to_string()))?;
        Ok(Self {
            http,
            settings,
            token: tokio::sync::Mutex::new(None),
            blocked_until: std::sync::Mutex::new(None),
        })
    }

    /// Our organization id (the one our credentials belong to).
    pub fn org_id(&self) -> &str {
        &self.settings.org_id
    }

    fn check_blocked(&self) -> Result<(), SatusehatError> {
        let blocked = self
            .blocked_until
            .lock()
            .map_or(None, |guard| *guard)
            .and_then(|until| until.checked_duration_since(Instant::now()));
        match blocked {
            Some(left) if !left.is_zero() => Err(SatusehatError::RateLimited {
                retry_after_s: left.as_secs().max(1),
            }),
            _ => Ok(()),
        }
    }

    /// Starts the silence after a 429.
    fn block(&self, headers: &HeaderMap) -> SatusehatError {
        let backoff = headers
            .get(http::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok())
            .map(Duration::from_secs)
            .filter(|wait| !wait.is_zero())
            .unwrap_or(self.settings.rate_limit_backoff);
        if let Ok(mut guard) = self.blocked_until.lock() {
            *guard = Some(Instant::now() + backoff);
        }
        tracing::warn!(
            backoff_s = backoff.as_secs(),
            "SATUSEHAT rate-limited us; backing off"
        );
        SatusehatError::RateLimited {
            retry_after_s: backoff.as_secs().max(1),
        }
    }

    /// A valid access token: the cached one, or a new one (one request however many callers ask).
    ///
    /// # Errors
    /// The token endpoint's error, or [`SatusehatError::RateLimited`] during a back-off.
    pub async fn access_token(&self) -> Result<SecretString, SatusehatError> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref()
            && Instant::now() < token.renew_at
        {
            return Ok(token.value.clone());
        }
        self.check_blocked()?;
        let started = Instant::now();
        let url = format!(
            "{}/oauth2/v1/accesstoken?grant_type=client_credentials",
            self.settings.base_url
        );
        let response = self
            .http
            .post(url)
            .form(&[
                ("client_id", self.settings.client_id.expose_secret()),
                ("client_secret", self.settings.client_secret.expose_secret()),
            ])
            .send()
            .await
            .map_err(transport)?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(transport)?;
        metrics::counter!("satusehat_token_requests_total", "status" => status.as_u16().to_string())
            .increment(1);
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(self.block(&headers));
        }
        if !status.is_success() {
            return Err(SatusehatError::from_answer(status, &body));
        }
        let answer: TokenAnswer = serde_json::from_slice(&body)
            .map_err(|error| SatusehatError::Decode(format!("token answer: {error}")))?;
        let expires_in = answer.expires_in.value().ok_or_else(|| {
            SatusehatError::Decode("token answer: expires_in is not a number".into())
        })?;
        let lifetime = Duration::from_secs(expires_in);
        // Counted from before the request was sent, so network time only makes us renew earlier.
        let renew_at = started + lifetime.saturating_sub(self.settings.renew_before);
        let value = SecretString::from(answer.access_token);
        *cached = Some(CachedToken {
            value: value.clone(),
            renew_at,
        });
        tracing::debug!(expires_in_s = expires_in, "new SATUSEHAT access token");
        Ok(value)
    }

    /// Drops the cached token if it is still `used` (a concurrent caller may have renewed it already).
    async fn forget_token(&self, used: &SecretString) {
        let mut cached = self.token.lock().await;
        if cached
            .as_ref()
            .is_some_and(|token| token.value.expose_secret() == used.expose_secret())
        {
            *cached = None;
        }
    }

    /// One FHIR call: `path` is relative to `/fhir-r4/v1/` (with its query string). Retries once,
    /// with a new token, after a 401.
    async fn fhir(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value, SatusehatError> {
        let token = self.access_token().await?;
        match self.fhir_once(&method, path, query, body, &token).await {
            Err(SatusehatError::Fault { status: 401, .. })
            | Err(SatusehatError::OperationOutcome { status: 401, .. })
            | Err(SatusehatError::Server { status: 401, .. }) => {
                tracing::info!("SATUSEHAT refused our token; renewing it and retrying once");
                self.forget_token(&token).await;
                let token = self.access_token().await?;
                self.fhir_once(&method, path, query, body, &token).await
            }
            other => other,
        }
    }

    async fn fhir_once(
        &self,
        method: &Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
        token: &SecretString,
    ) -> Result<Value, SatusehatError> {
        self.check_blocked()?;
        let url = format!("{}/fhir-r4/v1/{path}", self.settings.base_url);
        let mut request = self
            .http
            .request(method.clone(), url)
            .bearer_auth(token.expose_secret())
            .header(
                http::header::ACCEPT,
                "application/fhir+json, application/json",
            );
        if !query.is_empty() {
            request = request.query(query);
        }
        if let Some(body) = body {
            let bytes = serde_json::to_vec(body)
                .map_err(|error| SatusehatError::Decode(error.to_string()))?;
            request = request
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(bytes);
        }
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.map_err(transport)?;
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(self.block(&headers));
        }
        if !status.is_success() {
            return Err(SatusehatError::from_answer(status, &bytes));
        }
        serde_json::from_slice(&bytes).map_err(|error| SatusehatError::Decode(error.to_string()))
    }

    /// Health workers registered under `nik` (SATUSEHAT's sandbox may return several).
    ///
    /// # Errors
    /// Any [`SatusehatError`].
    pub async fn search_practitioners(
        &self,
        nik: &Nik,
    ) -> Result<Vec<PractitionerMatch>, SatusehatError> {
        let identifier = format!("{NIK_SYSTEM}|{}", nik.as_str());
        let bundle = self
            .fhir(
                Method::GET,
                "Practitioner",
                &[("identifier", &identifier)],
                None,
            )
            .await?;
        Ok(entries(&bundle)
            .map(|resource| PractitionerMatch {
                ihs_number: identifier_value(resource, IHS_SYSTEM),
                name: resource
                    .pointer("/name/0/text")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            })
            .collect())
    }

    /// IHS numbers of the patients registered under `nik`.
    ///
    /// # Errors
    /// Any [`SatusehatError`].
    pub async fn search_patients(&self, nik: &Nik) -> Result<Vec<String>, SatusehatError> {
        let identifier = format!("{NIK_SYSTEM}|{}", nik.as_str());
        let bundle = self
            .fhir(Method::GET, "Patient", &[("identifier", &identifier)], None)
            .await?;
        Ok(entries(&bundle)
            .filter_map(|resource| {
                identifier_value(resource, PATIENT_IHS_SYSTEM).or_else(|| {
                    resource
                        .get("id")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
            })
            .collect())
    }

    /// The SATUSEHAT ids of Encounters carrying our id `our_id` (the alert id; normally zero or one).
    ///
    /// # Errors
    /// Any [`SatusehatError`].
    pub async fn find_encounters(&self, our_id: &str) -> Result<Vec<String>, SatusehatError> {
        let identifier = format!(
            "{}|{our_id}",
            encounter_identifier_system(&self.settings.org_id)
        );
        let bundle = self
            .fhir(
                Method::GET,
                "Encounter",
                &[("identifier", &identifier)],
                None,
            )
            .await?;
        Ok(entries(&bundle)
            .filter_map(|resource| {
                resource
                    .get("id")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .collect())
    }

    /// Creates an Encounter; answers its SATUSEHAT id.
    ///
    /// # Errors
    /// Any [`SatusehatError`]; after [`SatusehatError::Timeout`] the Encounter may exist anyway, so
    /// search with [`Self::find_encounters`] before creating again.
    pub async fn create_encounter(&self, encounter: &Value) -> Result<String, SatusehatError> {
        let created = self
            .fhir(Method::POST, "Encounter", &[], Some(encounter))
            .await?;
        created
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| SatusehatError::Decode("created Encounter has no id".into()))
    }

    /// Replaces Encounter `id` with `encounter` (which must carry the same `id`).
    ///
    /// # Errors
    /// Any [`SatusehatError`].
    pub async fn update_encounter(
        &self,
        id: &str,
        encounter: &Value,
    ) -> Result<(), SatusehatError> {
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return Err(SatusehatError::Decode(format!("not a FHIR id: {id}")));
        }
        self.fhir(
            Method::PUT,
            &format!("Encounter/{id}"),
            &[],
            Some(encounter),
        )
        .await
        .map(drop)
    }
}

/// Maps a reqwest failure. The URL is dropped from the message: search URLs carry NIKs, and this
/// text ends up in logs and in `last_error` columns.
fn transport(error: reqwest::Error) -> SatusehatError {
    if error.is_timeout() {
        SatusehatError::Timeout
    } else {
        SatusehatError::Transport(error.without_url().to_string())
    }
}

/// The resources of a searchset Bundle.
fn entries(bundle: &Value) -> impl Iterator<Item = &Value> {
    bundle
        .get("entry")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.get("resource"))
}

/// The value of the resource's identifier with `system`.
fn identifier_value(resource: &Value, system: &str) -> Option<String> {
    resource
        .get("identifier")?
        .as_array()?
        .iter()
        .find(|identifier| identifier.get("system").and_then(Value::as_str) == Some(system))?
        .get("value")?
        .as_str()
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_error_shapes_are_told_apart() {
        let outcome = br#"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"business-rule","details":{"coding":[{"code":"10117"}],"text":"org mismatch"}}]}"#;
        let error = SatusehatError::from_answer(StatusCode::BAD_REQUEST, outcome);
        assert_eq!(error.rules(), vec!["10117"]);
        assert!(!error.is_transient());

        let fault = br#"{"fault":{"faultstring":"Invalid access token","detail":{"errorcode":"oauth.v2.InvalidAccessToken"}}}"#;
        match SatusehatError::from_answer(StatusCode::UNAUTHORIZED, fault) {
            SatusehatError::Fault {
                status, errorcode, ..
            } => {
                assert_eq!(status, 401);
                assert_eq!(errorcode.as_deref(), Some("oauth.v2.InvalidAccessToken"));
            }
            other => panic!("not a fault: {other:?}"),
        }

        match SatusehatError::from_answer(StatusCode::BAD_GATEWAY, b"502 Bad Gateway") {
            SatusehatError::Server { status, body } => {
                assert_eq!((status, body.as_str()), (502, "502 Bad Gateway"));
            }
            other => panic!("not plain text: {other:?}"),
        }
    }

    #[test]
    fn token_numbers_may_be_strings() {
        let answer: TokenAnswer = serde_json::from_str(
            r#"{"access_token":"a","expires_in":"3599","issued_at":"1700000000000"}"#,
        )
        .expect("reads");
        assert_eq!(answer.expires_in.value(), Some(3599));
        let answer: TokenAnswer =
            serde_json::from_str(r#"{"access_token":"a","expires_in":3599}"#).expect("reads");
        assert_eq!(answer.expires_in.value(), Some(3599));
    }
}
