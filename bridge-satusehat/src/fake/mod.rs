//! A fake SATUSEHAT: an axum server that behaves like the real one where KREKI depends on it, with
//! switches to inject the faults seen in the wild and a request log tests can read. `kreki serve` in
//! demo mode runs it in-process; the bridge's tests run against it.
//!
//! What it does like SATUSEHAT:
//! - `POST /oauth2/v1/accesstoken?grant_type=client_credentials` with form `client_id`,
//!   `client_secret`: answers numbers as strings (`"expires_in": "3599"`, `issued_at` in ms), refuses a
//!   request without `User-Agent` (plain-text 400), answers wrong credentials with a gateway `fault`
//!   (401), and locks a client out with 429s (no `Retry-After`) after more than
//!   [`FakeConfig::token_burst`] token requests within a minute;
//! - every FHIR call under `/fhir-r4/v1` needs a live token, else a 401 `fault` object;
//! - `GET Practitioner?identifier=https://fhir.kemkes.go.id/id/nik|{nik}` and the same for `Patient`
//!   return searchset Bundles with masked names, seeded with zero, one and several matches
//!   ([`SEED_NIK_ONE`], [`SEED_NIK_SEVERAL`], [`SEED_PATIENT_NIK`]);
//! - `POST Encounter` / `PUT Encounter/{id}` enforce the rules: required `status`, `class` (a Coding of
//!   v3-ActCode), `subject`, `participant` with type `ATND`, `location`, `serviceProvider`, an
//!   identifier under `http://sys-ids.kemkes.go.id/encounter/{org_id}` whose org is the credential's
//!   (else rule 10117), and times in UTC; errors are OperationOutcomes. `GET Encounter?identifier=`
//!   searches, `GET Encounter/{id}` reads. Like the real service it does not refuse a second Encounter
//!   with the same identifier: avoiding duplicates is the client's job, and tests count them.
//!
//! Faults ([`Faults`]): gateway 401s on FHIR calls, plain-text 5xx, 429s, a delay on every request,
//! and "commit then time out" on Encounter create (stores it, then answers only after a long hang).
//!
//! Files: this one holds the server, its switches, the request log and the shared answers;
//! `token.rs` the OAuth2 endpoint, `search.rs` the NIK searches and their seeds, `encounter.rs`
//! the Encounter rules and endpoints.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

mod encounter;
mod search;
mod token;

use self::encounter::{
    create_encounter, has_identifier_value, read_encounter, search_encounter, update_encounter,
};
use self::search::{search_patient, search_practitioner, seed_patients, seed_practitioners};
use self::token::token;

/// A NIK the fake knows as exactly one health worker ([`SEED_IHS_ONE`]).
pub const SEED_NIK_ONE: &str = "3171012345678901";
/// The IHS number of the health worker of [`SEED_NIK_ONE`].
pub const SEED_IHS_ONE: &str = "10009880728";
/// A NIK that matches several health workers (as the sandbox does).
pub const SEED_NIK_SEVERAL: &str = "3171012345678902";
/// A NIK with no health worker.
pub const SEED_NIK_NONE: &str = "3171012345678903";
/// A NIK of a second health worker, so demos and tests can verify two volunteers.
pub const SEED_NIK_TWO: &str = "3171012345678904";
/// The IHS number of [`SEED_NIK_TWO`].
pub const SEED_IHS_TWO: &str = "10006926841";
/// A NIK the fake knows as exactly one patient ([`SEED_PATIENT_IHS`]).
pub const SEED_PATIENT_NIK: &str = "3171098765432101";
/// The patient IHS number of [`SEED_PATIENT_NIK`].
pub const SEED_PATIENT_IHS: &str = "P02478375538";

/// Who the fake accepts, and how strict it is.
#[derive(Debug, Clone)]
pub struct FakeConfig {
    /// The one client id accepted.
    pub client_id: String,
    /// Its secret.
    pub client_secret: String,
    /// The organization that client belongs to.
    pub org_id: String,
    /// Lifetime of issued tokens, in seconds (SATUSEHAT: 3599).
    pub token_ttl_s: u64,
    /// Token requests allowed per minute before the client is locked out with 429s.
    pub token_burst: u32,
    /// How long a lock-out lasts.
    pub lockout: Duration,
}

impl Default for FakeConfig {
    fn default() -> Self {
        Self {
            client_id: "kreki-fake-client".to_owned(),
            client_secret: "kreki-fake-secret".to_owned(),
            org_id: "10000004".to_owned(),
            token_ttl_s: 3599,
            token_burst: 20,
            lockout: Duration::from_secs(60),
        }
    }
}

/// Fault switches. Counters are consumed one per matching request.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// The next N FHIR calls get a gateway 401 `fault`, whatever their token.
    pub fhir_401: u32,
    /// The next N FHIR calls get a plain-text 502.
    pub fhir_5xx: u32,
    /// The next N FHIR calls get a 429 without `Retry-After`.
    pub fhir_429: u32,
    /// The next N token requests get a 429 without `Retry-After`.
    pub token_429: u32,
    /// The next N token requests get a plain-text 503.
    pub token_5xx: u32,
    /// Every request waits this long before it is handled.
    pub delay: Duration,
    /// The next N Encounter creates are stored, then answered only after `hang` (the client times out).
    pub create_commit_then_hang: u32,
    /// How long such an answer hangs.
    pub hang: Duration,
    /// While true, every request gets a plain-text 503 (an outage).
    pub down: bool,
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct LoggedRequest {
    /// HTTP method.
    pub method: String,
    /// Path (without the query).
    pub path: String,
    /// Query string, if any.
    pub query: Option<String>,
    /// `User-Agent`, if sent.
    pub user_agent: Option<String>,
    /// Status answered; 0 while the request is still being answered.
    pub status: u16,
}

struct Inner {
    faults: Faults,
    log: Vec<LoggedRequest>,
    tokens: HashMap<String, Instant>,
    token_times: Vec<Instant>,
    locked_until: Option<Instant>,
    practitioners: HashMap<String, Vec<(String, String)>>,
    patients: HashMap<String, Vec<(String, String)>>,
    encounters: Vec<Value>,
}

struct Shared {
    config: FakeConfig,
    inner: Mutex<Inner>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A test thread that panicked while holding the lock must not hide every later assertion.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A running fake SATUSEHAT. Stops when dropped.
pub struct FakeSatusehat {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for FakeSatusehat {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeSatusehat {
    /// Starts a fake on `127.0.0.1` at a free port.
    ///
    /// # Errors
    /// When no port can be bound.
    pub async fn start(config: FakeConfig) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        Self::serve(listener, config)
    }

    /// Starts a fake on `listener`.
    ///
    /// # Errors
    /// When the listener has no local address.
    pub fn serve(listener: TcpListener, config: FakeConfig) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            config,
            inner: Mutex::new(Inner {
                faults: Faults::default(),
                log: Vec::new(),
                tokens: HashMap::new(),
                token_times: Vec::new(),
                locked_until: None,
                practitioners: seed_practitioners(),
                patients: seed_patients(),
                encounters: Vec::new(),
            }),
        });
        let router = router(shared.clone());
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                tracing::error!(%error, "fake SATUSEHAT stopped");
            }
        });
        Ok(Self { addr, shared, task })
    }

    /// Its base URL (`http://127.0.0.1:port`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &FakeConfig {
        &self.shared.config
    }

    /// Changes the fault switches.
    pub fn faults(&self, change: impl FnOnce(&mut Faults)) {
        change(&mut self.shared.lock().faults);
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.shared.lock().log.clone()
    }

    /// How many token requests arrived.
    pub fn token_requests(&self) -> usize {
        self.shared
            .lock()
            .log
            .iter()
            .filter(|request| request.path == "/oauth2/v1/accesstoken")
            .count()
    }

    /// Every stored Encounter.
    pub fn encounters(&self) -> Vec<Value> {
        self.shared.lock().encounters.clone()
    }

    /// Stored Encounters carrying identifier `value` (under any system).
    pub fn encounters_with_identifier(&self, value: &str) -> Vec<Value> {
        self.shared
            .lock()
            .encounters
            .iter()
            .filter(|encounter| has_identifier_value(encounter, value))
            .cloned()
            .collect()
    }

    /// Adds a health worker under `nik`.
    pub fn seed_practitioner(&self, nik: &str, ihs_number: &str, masked_name: &str) {
        self.shared
            .lock()
            .practitioners
            .entry(nik.to_owned())
            .or_default()
            .push((ihs_number.to_owned(), masked_name.to_owned()));
    }

    /// Expires every issued token (as if an hour passed).
    pub fn expire_tokens(&self) {
        self.shared.lock().tokens.clear();
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/oauth2/v1/accesstoken", post(token))
        .route("/fhir-r4/v1/Practitioner", get(search_practitioner))
        .route("/fhir-r4/v1/Patient", get(search_patient))
        .route(
            "/fhir-r4/v1/Encounter",
            post(create_encounter).get(search_encounter),
        )
        .route(
            "/fhir-r4/v1/Encounter/{id}",
            get(read_encounter).put(update_encounter),
        )
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            log_and_fault,
        ))
        .with_state(shared)
}

/// Logs every request, applies the delay, outage and injected faults.
async fn log_and_fault(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(str::to_owned);
    let user_agent = request
        .headers()
        .get(header::USER_AGENT)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let is_token = path == "/oauth2/v1/accesstoken";
    // Logged on arrival (status 0 until answered), so a request still hanging is already visible.
    let index = {
        let mut inner = shared.lock();
        inner.log.push(LoggedRequest {
            method,
            path,
            query,
            user_agent,
            status: 0,
        });
        inner.log.len() - 1
    };
    let delay = shared.lock().faults.delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let injected = {
        let mut inner = shared.lock();
        let faults = &mut inner.faults;
        if faults.down {
            Some(plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "Service Temporarily Unavailable",
            ))
        } else if is_token && take(&mut faults.token_429) {
            Some(too_many())
        } else if is_token && take(&mut faults.token_5xx) {
            Some(plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "503 Service Unavailable",
            ))
        } else if !is_token && take(&mut faults.fhir_429) {
            Some(too_many())
        } else if !is_token && take(&mut faults.fhir_5xx) {
            Some(plain(
                StatusCode::BAD_GATEWAY,
                "<html><body>502 Bad Gateway</body></html>",
            ))
        } else if !is_token && take(&mut faults.fhir_401) {
            Some(fault(
                "Invalid access token",
                "keymanagement.service.invalid_access_token",
            ))
        } else {
            None
        }
    };
    let response = match injected {
        Some(response) => response,
        None => next.run(request).await,
    };
    if let Some(logged) = shared.lock().log.get_mut(index) {
        logged.status = response.status().as_u16();
    }
    response
}

fn take(counter: &mut u32) -> bool {
    if *counter > 0 {
        *counter -= 1;
        true
    } else {
        false
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain")], text).into_response()
}

fn too_many() -> Response {
    // No Retry-After: SATUSEHAT's gateway does not say how long to wait.
    (
        StatusCode::TOO_MANY_REQUESTS,
        axum::Json(json!({"fault": {"faultstring": "Rate limit quota violation. Quota limit exceeded.", "detail": {"errorcode": "policies.ratelimit.QuotaViolation"}}})),
    )
        .into_response()
}

fn fault(faultstring: &str, errorcode: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(
            json!({"fault": {"faultstring": faultstring, "detail": {"errorcode": errorcode}}}),
        ),
    )
        .into_response()
}

fn outcome(status: StatusCode, code: &str, rule: Option<&str>, text: &str) -> Response {
    let mut details = json!({ "text": text });
    if let Some(rule) = rule {
        details["coding"] = json!([{ "system": "https://fhir.kemkes.go.id/rule", "code": rule }]);
    }
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/fhir+json"),
        )],
        axum::Json(json!({
            "resourceType": "OperationOutcome",
            "issue": [{ "severity": "error", "code": code, "details": details }]
        })),
    )
        .into_response()
}

fn fhir_json(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/fhir+json"),
        )],
        axum::Json(body),
    )
        .into_response()
}
