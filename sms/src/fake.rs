//! A fake Twilio Programmable Messaging API for tests and `kreki demo`, so both run the real client
//! and the real webhooks. What it does like Twilio:
//!
//! | when | answer | Twilio `code` |
//! |---|---|---|
//! | wrong or no HTTP Basic credentials | 401 | 20003 |
//! | `To` missing or not E.164 | 400 | 21211 |
//! | `Body` missing or empty | 400 | 21602 |
//! | `Body` over 1,600 characters | 400 | 21617 |
//! | `To` replied STOP (until START) | 400 | 21610 |
//! | more than [`FakeTwilioConfig::max_per_second`] sends in a second | 429, `Retry-After: 1` | 20429 |
//! | [`Faults::down`] (an outage) or [`Faults::fail_next_5xx`] | 503 | — |
//! | accepted | 201, a Message resource (`status: queued`) | — |
//!
//! An accepted text's `StatusCallback` gets signed form posts `queued`, `sent`, then `delivered`
//! (or `undelivered` with `ErrorCode` 30003 for a number marked unreachable), each
//! [`Faults::callback_delay`] apart. [`FakeTwilio::reply`] plays a phone answering: a signed post to
//! the inbound webhook, as Twilio makes when a text reaches the sender number. The request log is
//! [`FakeTwilio::messages`], and JSON at `GET /messages` (the demo's).

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, StatusCode, header};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::domain::{E164, MAX_BODY_CHARS};
use crate::signature::{SIGNATURE_HEADER, form_fields, sign};

/// Words that opt a number out, as Twilio's default opt-out handling knows them.
const STOP_WORDS: [&str; 6] = ["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"];
/// Words that opt a number back in.
const START_WORDS: [&str; 3] = ["START", "YES", "UNSTOP"];

/// Who the fake accepts and how fast.
#[derive(Debug, Clone)]
pub struct FakeTwilioConfig {
    /// The account SID accepted (`AC` + 32 hex digits).
    pub account_sid: String,
    /// Its auth token (also the webhook signing key).
    pub auth_token: String,
    /// The sender number texts come from and replies go to.
    pub number: String,
    /// Sends accepted per second before 429s.
    pub max_per_second: u32,
}

impl Default for FakeTwilioConfig {
    fn default() -> Self {
        Self {
            account_sid: "AC00000000000000000000000000000000".to_owned(),
            auth_token: "fake-twilio-auth-token".to_owned(),
            number: "+6281100000000".to_owned(),
            max_per_second: 20,
        }
    }
}

/// Fault switches.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// While true, every send answers 503 and nothing is stored (an outage).
    pub down: bool,
    /// The next N sends answer 503 and store nothing.
    pub fail_next_5xx: u32,
    /// Every send waits this long before it is answered.
    pub delay: Duration,
    /// Time between status callbacks of a text.
    pub callback_delay: Duration,
}

/// One text the fake accepted.
#[derive(Debug, Clone)]
pub struct FakeMessage {
    /// `SM…`.
    pub sid: String,
    /// Recipient.
    pub to: String,
    /// Sender.
    pub from: String,
    /// Text.
    pub body: String,
    /// Latest status sent to the callback.
    pub status: String,
    /// Where statuses go.
    pub status_callback: Option<String>,
}

#[derive(Default)]
struct Book {
    messages: Vec<FakeMessage>,
    refused: Vec<(u16, Option<u32>, String)>,
    opted_out: HashSet<String>,
    unreachable: HashSet<String>,
    faults: Faults,
    recent: VecDeque<Instant>,
    inbound_url: Option<String>,
    callbacks: Vec<(String, String, u16)>,
}

struct Shared {
    config: FakeTwilioConfig,
    book: Mutex<Book>,
    next: AtomicU64,
    http: reqwest::Client,
}

impl Shared {
    fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running fake Twilio on 127.0.0.1. Stops when dropped.
pub struct FakeTwilio {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for FakeTwilio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeTwilio")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for FakeTwilio {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeTwilio {
    /// Starts the fake on `addr` (`127.0.0.1:0` for any port).
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn start(config: FakeTwilioConfig, addr: SocketAddr) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            config,
            book: Mutex::new(Book::default()),
            next: AtomicU64::new(1),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .map_err(std::io::Error::other)?,
        });
        let router = Router::new()
            .route("/2010-04-01/Accounts/{account}/Messages.json", post(send))
            .route("/messages", get(message_log))
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                tracing::error!(%error, "fake Twilio stopped");
            }
        });
        Ok(Self { addr, shared, task })
    }

    /// `sms.base_url` for this fake.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The configuration it runs with (credentials for `[sms]`).
    pub fn config(&self) -> &FakeTwilioConfig {
        &self.shared.config
    }

    /// Where [`FakeTwilio::reply`] posts (the number's "A message comes in" webhook).
    pub fn set_inbound_url(&self, url: impl Into<String>) {
        self.shared.book().inbound_url = Some(url.into());
    }

    /// Changes the fault switches.
    pub fn faults(&self, change: impl FnOnce(&mut Faults)) {
        change(&mut self.shared.book().faults);
    }

    /// Texts to `phone` from now on end `undelivered` (30003: unreachable handset).
    pub fn make_unreachable(&self, phone: &str) {
        self.shared.book().unreachable.insert(phone.to_owned());
    }

    /// Every accepted text, oldest first.
    pub fn messages(&self) -> Vec<FakeMessage> {
        self.shared.book().messages.clone()
    }

    /// Accepted texts to `phone`, oldest first.
    pub fn messages_to(&self, phone: &str) -> Vec<FakeMessage> {
        self.messages()
            .into_iter()
            .filter(|message| message.to == phone)
            .collect()
    }

    /// Refused sends: (HTTP status, Twilio code, `To`), oldest first.
    pub fn refused(&self) -> Vec<(u16, Option<u32>, String)> {
        self.shared.book().refused.clone()
    }

    /// Status callbacks posted: (sid, status, HTTP status answered), oldest first.
    pub fn callbacks(&self) -> Vec<(String, String, u16)> {
        self.shared.book().callbacks.clone()
    }

    /// `phone` texts `body` to the sender number: opt-out words are applied as Twilio does, then
    /// the signed inbound webhook is posted. Answers the webhook's HTTP status.
    ///
    /// # Errors
    /// When no inbound URL is set or the webhook cannot be reached.
    pub async fn reply(&self, phone: &str, body: &str) -> Result<u16, String> {
        let word = body.trim().to_uppercase();
        let url = {
            let mut book = self.shared.book();
            if STOP_WORDS.contains(&word.as_str()) {
                book.opted_out.insert(phone.to_owned());
            } else if START_WORDS.contains(&word.as_str()) {
                book.opted_out.remove(phone);
            }
            book.inbound_url.clone().ok_or("no inbound URL set")?
        };
        let sid = format!(
            "SM{:032x}",
            u128::from(self.shared.next.fetch_add(1, Ordering::Relaxed)) | (1u128 << 120)
        );
        let fields = vec![
            (
                "AccountSid".to_owned(),
                self.shared.config.account_sid.clone(),
            ),
            ("Body".to_owned(), body.to_owned()),
            ("From".to_owned(), phone.to_owned()),
            ("MessageSid".to_owned(), sid.clone()),
            ("NumMedia".to_owned(), "0".to_owned()),
            ("NumSegments".to_owned(), "1".to_owned()),
            ("SmsSid".to_owned(), sid),
            ("To".to_owned(), self.shared.config.number.clone()),
        ];
        post_signed(&self.shared, &url, &fields).await
    }
}

async fn post_signed(
    shared: &Shared,
    url: &str,
    fields: &[(String, String)],
) -> Result<u16, String> {
    let signature = sign(&shared.config.auth_token, url, fields);
    shared
        .http
        .post(url)
        .header(SIGNATURE_HEADER, signature)
        .form(fields)
        .send()
        .await
        .map(|response| response.status().as_u16())
        .map_err(|error| error.to_string())
}

fn twilio_error(status: StatusCode, code: u32, message: &str) -> (StatusCode, Value) {
    (
        status,
        json!({"code": code, "message": message,
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"), "status": status.as_u16()}),
    )
}

fn authorised(shared: &Shared, headers: &HeaderMap) -> bool {
    let expected = STANDARD.encode(format!(
        "{}:{}",
        shared.config.account_sid, shared.config.auth_token
    ));
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Basic "))
        .is_some_and(|given| given == expected)
}

async fn send(
    State(shared): State<Arc<Shared>>,
    Path(account): Path<String>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let delay = shared.book().faults.delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let fields = form_fields(&raw);
    let field = |name: &str| {
        fields
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    let to = field("To").unwrap_or_default();
    let answer = decide(&shared, &account, &headers, &fields);
    match answer {
        Err((status, body)) => {
            let code = body["code"]
                .as_u64()
                .and_then(|code| u32::try_from(code).ok());
            shared.book().refused.push((status.as_u16(), code, to));
            let mut response = (status, axum::Json(body)).into_response();
            if status == StatusCode::TOO_MANY_REQUESTS {
                // The rate window is a second; say so, as a polite API does.
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, http::HeaderValue::from_static("1"));
            }
            response
        }
        Ok(message) => {
            let body = json!({"sid": message.sid, "account_sid": shared.config.account_sid,
                "to": message.to, "from": message.from, "body": message.body, "status": "queued",
                "num_segments": "1", "direction": "outbound-api", "error_code": null});
            if let Some(callback) = message.status_callback.clone() {
                tokio::spawn(report_statuses(Arc::clone(&shared), message, callback));
            }
            (StatusCode::CREATED, axum::Json(body)).into_response()
        }
    }
}

fn decide(
    shared: &Shared,
    account: &str,
    headers: &HeaderMap,
    fields: &[(String, String)],
) -> Result<FakeMessage, (StatusCode, Value)> {
    let field = |name: &str| {
        fields
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    if account != shared.config.account_sid || !authorised(shared, headers) {
        return Err(twilio_error(
            StatusCode::UNAUTHORIZED,
            20003,
            "Authenticate",
        ));
    }
    let mut book = shared.book();
    if book.faults.down {
        return Err(twilio_error(
            StatusCode::SERVICE_UNAVAILABLE,
            20500,
            "Service unavailable",
        ));
    }
    if book.faults.fail_next_5xx > 0 {
        book.faults.fail_next_5xx -= 1;
        return Err(twilio_error(
            StatusCode::SERVICE_UNAVAILABLE,
            20500,
            "Service unavailable",
        ));
    }
    let now = Instant::now();
    while book
        .recent
        .front()
        .is_some_and(|at| now.duration_since(*at) >= Duration::from_secs(1))
    {
        book.recent.pop_front();
    }
    if book.recent.len() >= shared.config.max_per_second as usize {
        return Err(twilio_error(
            StatusCode::TOO_MANY_REQUESTS,
            20429,
            "Too Many Requests",
        ));
    }
    let to = field("To").unwrap_or_default();
    if E164::parse(&to).is_none() {
        return Err(twilio_error(
            StatusCode::BAD_REQUEST,
            21211,
            &format!("The 'To' number {to} is not a valid phone number."),
        ));
    }
    let body = field("Body").unwrap_or_default();
    if body.is_empty() {
        return Err(twilio_error(
            StatusCode::BAD_REQUEST,
            21602,
            "Message body is required.",
        ));
    }
    if body.chars().count() > MAX_BODY_CHARS {
        return Err(twilio_error(
            StatusCode::BAD_REQUEST,
            21617,
            "The concatenated message body exceeds the 1600 character limit.",
        ));
    }
    if book.opted_out.contains(&to) {
        return Err(twilio_error(
            StatusCode::BAD_REQUEST,
            21610,
            "Attempt to send to unsubscribed recipient",
        ));
    }
    book.recent.push_back(now);
    let message = FakeMessage {
        sid: format!("SM{:032x}", shared.next.fetch_add(1, Ordering::Relaxed)),
        to,
        from: field("From")
            .or_else(|| field("MessagingServiceSid"))
            .unwrap_or_else(|| shared.config.number.clone()),
        body,
        status: "queued".to_owned(),
        status_callback: field("StatusCallback"),
    };
    book.messages.push(message.clone());
    Ok(message)
}

async fn report_statuses(shared: Arc<Shared>, message: FakeMessage, url: String) {
    let unreachable = shared.book().unreachable.contains(&message.to);
    let last = if unreachable {
        "undelivered"
    } else {
        "delivered"
    };
    for status in ["queued", "sent", last] {
        let delay = shared.book().faults.callback_delay;
        tokio::time::sleep(delay.max(Duration::from_millis(20))).await;
        let mut fields = vec![
            ("AccountSid".to_owned(), shared.config.account_sid.clone()),
            ("From".to_owned(), message.from.clone()),
            ("MessageSid".to_owned(), message.sid.clone()),
            ("MessageStatus".to_owned(), status.to_owned()),
            ("SmsSid".to_owned(), message.sid.clone()),
            ("SmsStatus".to_owned(), status.to_owned()),
            ("To".to_owned(), message.to.clone()),
        ];
        if status == "undelivered" {
            fields.push(("ErrorCode".to_owned(), "30003".to_owned()));
        }
        let answered = post_signed(&shared, &url, &fields).await.unwrap_or(0);
        let mut book = shared.book();
        book.callbacks
            .push((message.sid.clone(), status.to_owned(), answered));
        if let Some(stored) = book.messages.iter_mut().find(|m| m.sid == message.sid) {
            status.clone_into(&mut stored.status);
        }
    }
}

/// The texts as JSON, oldest first.
async fn message_log(State(shared): State<Arc<Shared>>) -> axum::Json<Value> {
    let book = shared.book();
    axum::Json(Value::Array(
        book.messages
            .iter()
            .map(|m| json!({"sid": m.sid, "to": m.to, "from": m.from, "body": m.body, "status": m.status}))
            .collect(),
    ))
}
