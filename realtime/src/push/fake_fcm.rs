//! A fake FCM (and Web Push service) for tests and `kreki demo`, so both exercise the real
//! clients: Google's OAuth2 JWT-bearer token endpoint (it checks the assertion's RS256 signature,
//! audience and scope) and `POST /v1/projects/{project}/messages:send` answering with FCM's real
//! error bodies:
//!
//! | when | status | `error.status` / `errorCode` |
//! |---|---|---|
//! | no or unknown access token | 401 | `UNAUTHENTICATED` / `THIRD_PARTY_AUTH_ERROR` |
//! | malformed message, bad `ttl`/`priority`, non-string `data`, data over 4,096 bytes | 400 | `INVALID_ARGUMENT` |
//! | token marked invalid | 400 | `INVALID_ARGUMENT`, field violation on `message.token` |
//! | token marked unregistered | 404 | `NOT_FOUND` / `UNREGISTERED` |
//! | [`Fault::QuotaExceeded`] | 429 + `Retry-After` | `RESOURCE_EXHAUSTED` / `QUOTA_EXCEEDED` |
//! | [`Fault::Unavailable`] | 503 | `UNAVAILABLE` |
//! | [`Fault::Internal`] | 500 | `INTERNAL` |
//!
//! `POST /webpush/{id}` plays a browser push service: 201, or 410 for a subscription marked
//! gone, with the same faults. Every request is in [`FakeFcm::requests`], and as JSON at
//! `GET /requests` (the demo's request log; `authorization` values are left out).
//!
//! The service account it hands out ([`FakeFcm::service_account_json`]) holds a key made for this
//! fake only (`fake-service-account.key.pem`); nothing else accepts it.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// FCM's limit on a message's data payload, bytes.
const MAX_DATA_BYTES: usize = 4096;

use crate::push::fcm::FCM_SCOPE;

/// The fake service account's private key (RSA 2048, PKCS#8): for this fake only.
const PRIVATE_KEY_PEM: &str = include_str!("fake-service-account.key.pem");
/// Its public key, which the fake token endpoint verifies assertions with.
const PUBLIC_KEY_PEM: &str = include_str!("fake-service-account.pub.pem");

/// A failure the next requests answer with, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 429 `QUOTA_EXCEEDED` with `Retry-After: retry_after_s`.
    QuotaExceeded {
        /// Seconds the client is asked to wait.
        retry_after_s: u64,
    },
    /// 503 `UNAVAILABLE`.
    Unavailable,
    /// 500 `INTERNAL`.
    Internal,
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `fcm` or `web_push`.
    pub channel: &'static str,
    /// The request path.
    pub path: String,
    /// Request headers, names lower-case.
    pub headers: Vec<(String, String)>,
    /// The JSON body (FCM), or `{"bytes": n}` for an encrypted Web Push body.
    pub body: Value,
    /// The raw body (the encrypted payload, for Web Push).
    pub raw: Bytes,
    /// What the fake answered.
    pub status: u16,
}

impl Recorded {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

#[derive(Default)]
struct Book {
    requests: Vec<Recorded>,
    access_tokens: HashSet<String>,
    unregistered: HashSet<String>,
    invalid: HashSet<String>,
    faults: VecDeque<Fault>,
    token_requests: usize,
    token_errors: Vec<String>,
}

struct Shared {
    project: String,
    token_url: String,
    book: Mutex<Book>,
    next: AtomicU64,
}

impl Shared {
    fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running fake FCM on 127.0.0.1. Stops when dropped.
pub struct FakeFcm {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for FakeFcm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeFcm")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for FakeFcm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeFcm {
    /// Starts the fake for Firebase project `project` on `addr` (`127.0.0.1:0` for any port).
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn start(project: &str, addr: SocketAddr) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            project: project.to_owned(),
            token_url: format!("http://{addr}/token"),
            book: Mutex::new(Book::default()),
            next: AtomicU64::new(1),
        });
        let router = Router::new()
            .route("/token", post(token))
            .route("/v1/projects/{project}/{method}", post(send))
            .route("/webpush/{id}", post(web_push))
            .route("/requests", axum::routing::get(request_log))
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                tracing::error!(%error, "fake FCM stopped");
            }
        });
        Ok(Self { addr, shared, task })
    }

    /// `push.fcm.base_url` for this fake.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The OAuth2 token endpoint (`push.fcm.token_url`; also the service account's `token_uri`).
    pub fn token_url(&self) -> String {
        self.shared.token_url.clone()
    }

    /// A Web Push endpoint on this fake, for a test subscription named `id`.
    pub fn web_push_endpoint(&self, id: &str) -> String {
        format!("http://{}/webpush/{id}", self.addr)
    }

    /// A service-account JSON file's content that this fake accepts.
    pub fn service_account_json(&self) -> String {
        json!({
            "type": "service_account",
            "project_id": self.shared.project,
            "private_key_id": "fake-key-1",
            "private_key": PRIVATE_KEY_PEM,
            "client_email": format!("kreki-push@{}.iam.gserviceaccount.com", self.shared.project),
            "client_id": "100000000000000000001",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.shared.token_url,
        })
        .to_string()
    }

    /// Every request received so far (token requests excluded), oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.book().requests.clone()
    }

    /// Why token requests were refused (`error: description`), oldest first.
    pub fn token_errors(&self) -> Vec<String> {
        self.shared.book().token_errors.clone()
    }

    /// How many access tokens were requested.
    pub fn token_requests(&self) -> usize {
        self.shared.book().token_requests
    }

    /// From now on, sends to `token` answer 404 `UNREGISTERED` (the app was uninstalled); for a
    /// Web Push subscription id, 410 Gone.
    pub fn unregister(&self, token: &str) {
        self.shared.book().unregistered.insert(token.to_owned());
    }

    /// From now on, sends to `token` answer 400 `INVALID_ARGUMENT` naming `message.token`.
    pub fn invalidate(&self, token: &str) {
        self.shared.book().invalid.insert(token.to_owned());
    }

    /// The next requests (one per fault, in order) fail with these.
    pub fn fail_next(&self, faults: impl IntoIterator<Item = Fault>) {
        self.shared.book().faults.extend(faults);
    }
}

/// Google's error body: `{"error": {code, message, status, details}}`.
fn google_error(status: StatusCode, code: &str, message: &str, details: &[Value]) -> Value {
    json!({"error": {"code": status.as_u16(), "message": message, "status": code, "details": details}})
}

fn fcm_error(status: StatusCode, code: &str, fcm_code: &str, message: &str) -> Value {
    google_error(
        status,
        code,
        message,
        &[
            json!({"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": fcm_code}),
        ],
    )
}

fn fault_response(fault: Fault) -> (StatusCode, Value, Option<u64>) {
    match fault {
        Fault::QuotaExceeded { retry_after_s } => (
            StatusCode::TOO_MANY_REQUESTS,
            fcm_error(
                StatusCode::TOO_MANY_REQUESTS,
                "RESOURCE_EXHAUSTED",
                "QUOTA_EXCEEDED",
                "Sending limit exceeded for the message target.",
            ),
            Some(retry_after_s),
        ),
        Fault::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            fcm_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                "UNAVAILABLE",
                "The service is currently unavailable.",
            ),
            None,
        ),
        Fault::Internal => (
            StatusCode::INTERNAL_SERVER_ERROR,
            fcm_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL",
                "INTERNAL",
                "Internal error encountered.",
            ),
            None,
        ),
    }
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    assertion: Option<String>,
}

#[derive(Deserialize)]
struct Assertion {
    scope: String,
    aud: String,
    iss: String,
    exp: i64,
    iat: i64,
}

fn oauth_error(shared: &Shared, error: &str, description: &str) -> Response {
    tracing::warn!(error, description, "fake FCM refused a token request");
    shared
        .book()
        .token_errors
        .push(format!("{error}: {description}"));
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

/// The JWT-bearer grant (RFC 7523) as Google serves it.
async fn token(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    shared.book().token_requests += 1;
    let Ok(form) = serde_urlencoded::from_bytes::<TokenForm>(&body) else {
        return oauth_error(&shared, "invalid_request", "Malformed form body.");
    };
    if form.grant_type.as_deref() != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
        return oauth_error(&shared, "unsupported_grant_type", "Invalid grant_type.");
    }
    let Some(assertion) = form.assertion else {
        return oauth_error(
            &shared,
            "invalid_request",
            "Missing required parameter: assertion",
        );
    };
    let Ok(key) = jsonwebtoken::DecodingKey::from_rsa_pem(PUBLIC_KEY_PEM.as_bytes()) else {
        return oauth_error(&shared, "invalid_grant", "The fake's key does not load.");
    };
    // gcp_auth pads each base64url part, which Google accepts and jsonwebtoken's parser does not.
    // The signature covers the parts as sent (padded), so it is checked over those; the claims
    // are then read from the unpadded parts and checked here.
    let Some((signed, signature)) = assertion.rsplit_once('.') else {
        return oauth_error(&shared, "invalid_grant", "Invalid JWT: malformed");
    };
    match jsonwebtoken::crypto::verify(
        signature.trim_end_matches('='),
        signed.as_bytes(),
        &key,
        jsonwebtoken::Algorithm::RS256,
    ) {
        Ok(true) => {}
        Ok(false) => return oauth_error(&shared, "invalid_grant", "Invalid JWT: InvalidSignature"),
        Err(error) => {
            return oauth_error(&shared, "invalid_grant", &format!("Invalid JWT: {error}"));
        }
    }
    let unpadded = assertion
        .split('.')
        .map(|part| part.trim_end_matches('='))
        .collect::<Vec<_>>()
        .join(".");
    let claims = match jsonwebtoken::dangerous::insecure_decode::<Assertion>(&unpadded) {
        Ok(data) if data.header.alg != jsonwebtoken::Algorithm::RS256 => {
            return oauth_error(&shared, "invalid_grant", "Invalid JWT: InvalidAlgorithm");
        }
        Ok(data) => data.claims,
        Err(error) => {
            return oauth_error(&shared, "invalid_grant", &format!("Invalid JWT: {error}"));
        }
    };
    let now = chrono::Utc::now().timestamp();
    if claims.aud != shared.token_url {
        return oauth_error(&shared, "invalid_grant", "Invalid JWT: InvalidAudience");
    }
    if claims.exp + 60 < now || claims.iat > now + 60 || claims.iss.is_empty() {
        return oauth_error(&shared, "invalid_grant", "Invalid JWT: ExpiredSignature");
    }
    if !claims.scope.split(' ').any(|scope| scope == FCM_SCOPE) {
        return oauth_error(
            &shared,
            "invalid_scope",
            "The assertion does not ask for FCM's scope.",
        );
    }
    let access = format!("ya29.fake-{}", uuid::Uuid::new_v4().simple());
    shared.book().access_tokens.insert(access.clone());
    axum::Json(json!({"access_token": access, "expires_in": 3599, "token_type": "Bearer"}))
        .into_response()
}

fn header_list(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                value.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// `messages:send`, checking what real FCM checks.
async fn send(
    State(shared): State<Arc<Shared>>,
    Path((project, method)): Path<(String, String)>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let (status, answer, retry_after_s) = if project == shared.project && method == "messages:send"
    {
        answer_send(&shared, &headers, &body)
    } else {
        let message = format!("Project {project} or method {method} not found.");
        (
            StatusCode::NOT_FOUND,
            google_error(StatusCode::NOT_FOUND, "NOT_FOUND", &message, &[]),
            None,
        )
    };
    shared.book().requests.push(Recorded {
        channel: "fcm",
        path: format!("/v1/projects/{project}/{method}"),
        headers: header_list(&headers),
        body,
        raw,
        status: status.as_u16(),
    });
    let mut response = (status, axum::Json(answer)).into_response();
    if let Some(seconds) = retry_after_s {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, seconds.into());
    }
    response
}

fn answer_send(
    shared: &Shared,
    headers: &HeaderMap,
    body: &Value,
) -> (StatusCode, Value, Option<u64>) {
    let mut book = shared.book();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    if !bearer.is_some_and(|token| book.access_tokens.contains(token)) {
        return (
            StatusCode::UNAUTHORIZED,
            fcm_error(
                StatusCode::UNAUTHORIZED,
                "UNAUTHENTICATED",
                "THIRD_PARTY_AUTH_ERROR",
                "Request had invalid authentication credentials.",
            ),
            None,
        );
    }
    let invalid = |message: &str, field: &str| {
        (
            StatusCode::BAD_REQUEST,
            google_error(
                StatusCode::BAD_REQUEST,
                "INVALID_ARGUMENT",
                message,
                &[
                    json!({"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [{"field": field, "description": message}]}),
                    json!({"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "INVALID_ARGUMENT"}),
                ],
            ),
            None,
        )
    };
    let message = &body["message"];
    let Some(token) = message["token"].as_str() else {
        return invalid("Recipient of the message is not set.", "message.token");
    };
    if let Some(data) = message["data"].as_object()
        && !data.values().all(Value::is_string)
    {
        return invalid(
            "Invalid value in data: values must be strings.",
            "message.data",
        );
    }
    // FCM allows 4,096 bytes of payload; counted here as the data's keys and values.
    let data_bytes: usize = message["data"].as_object().map_or(0, |data| {
        data.iter()
            .map(|(key, value)| key.len() + value.as_str().map_or(0, str::len))
            .sum()
    });
    if data_bytes > MAX_DATA_BYTES {
        return invalid("Android message is too big", "message.data");
    }
    let android = &message["android"];
    if let Some(ttl) = android.get("ttl") {
        let ok = ttl
            .as_str()
            .and_then(|ttl| ttl.strip_suffix('s'))
            .is_some_and(|seconds| seconds.parse::<f64>().is_ok_and(|s| s >= 0.0));
        if !ok {
            return invalid(
                "Invalid value at 'message.android.ttl'.",
                "message.android.ttl",
            );
        }
    }
    if let Some(priority) = android.get("priority")
        && !matches!(
            priority.as_str(),
            Some("NORMAL" | "HIGH" | "normal" | "high")
        )
    {
        return invalid(
            "Invalid value at 'message.android.priority'.",
            "message.android.priority",
        );
    }
    if book.invalid.contains(token) {
        return invalid(
            "The registration token is not a valid FCM registration token",
            "message.token",
        );
    }
    if book.unregistered.contains(token) {
        return (
            StatusCode::NOT_FOUND,
            fcm_error(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "UNREGISTERED",
                "Requested entity was not found.",
            ),
            None,
        );
    }
    if let Some(fault) = book.faults.pop_front() {
        return fault_response(fault);
    }
    let id = shared.next.fetch_add(1, Ordering::Relaxed);
    (
        StatusCode::OK,
        json!({"name": format!("projects/{}/messages/0:{id}", shared.project)}),
        None,
    )
}

/// The request log as JSON, newest last, without credentials.
async fn request_log(State(shared): State<Arc<Shared>>) -> axum::Json<Value> {
    let book = shared.book();
    let log = book
        .requests
        .iter()
        .map(|request| {
            let headers: serde_json::Map<String, Value> = request
                .headers
                .iter()
                .filter(|(name, _)| name != "authorization")
                .map(|(name, value)| (name.clone(), Value::String(value.clone())))
                .collect();
            json!({"channel": request.channel, "path": request.path, "status": request.status,
                "headers": headers, "body": request.body})
        })
        .collect();
    axum::Json(Value::Array(log))
}

/// A browser push service (RFC 8030): 201 Created, 410 for a subscription marked gone.
async fn web_push(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let (status, retry_after_s) = {
        let mut book = shared.book();
        let vapid = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("vapid t=") && value.contains(", k="));
        if !vapid {
            (StatusCode::UNAUTHORIZED, None)
        } else if headers.get("ttl").is_none() {
            (StatusCode::BAD_REQUEST, None)
        } else if book.unregistered.contains(&id) {
            (StatusCode::GONE, None)
        } else if let Some(fault) = book.faults.pop_front() {
            let (status, _, retry_after_s) = fault_response(fault);
            (status, retry_after_s)
        } else {
            (StatusCode::CREATED, None)
        }
    };
    shared.book().requests.push(Recorded {
        channel: "web_push",
        path: format!("/webpush/{id}"),
        headers: header_list(&headers),
        body: json!({"bytes": raw.len()}),
        raw,
        status: status.as_u16(),
    });
    let mut response = status.into_response();
    if let Some(seconds) = retry_after_s {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, seconds.into());
    }
    response
}
