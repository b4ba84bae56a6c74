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

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::domain::{IHS_SYSTEM, NIK_SYSTEM, PATIENT_IHS_SYSTEM};

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

fn seed_practitioners() -> HashMap<String, Vec<(String, String)>> {
    HashMap::from([
        (
            SEED_NIK_ONE.to_owned(),
            vec![(SEED_IHS_ONE.to_owned(), "Sa**i Wu*****ri".to_owned())],
        ),
        (
            SEED_NIK_TWO.to_owned(),
            vec![(SEED_IHS_TWO.to_owned(), "Bu*i Sa****o".to_owned())],
        ),
        (
            SEED_NIK_SEVERAL.to_owned(),
            vec![
                ("10001354453".to_owned(), "Ra**a".to_owned()),
                ("10006926842".to_owned(), "Ra**a Pu**i".to_owned()),
                ("10009880729".to_owned(), "R**a".to_owned()),
            ],
        ),
    ])
}

fn seed_patients() -> HashMap<String, Vec<(String, String)>> {
    HashMap::from([(
        SEED_PATIENT_NIK.to_owned(),
        vec![(SEED_PATIENT_IHS.to_owned(), "Wa**a De**o".to_owned())],
    )])
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

async fn token(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if headers.get(header::USER_AGENT).is_none() {
        return plain(StatusCode::BAD_REQUEST, "Bad Request");
    }
    if query.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(
                json!({"ErrorCode": "invalid_request", "Error": "Unsupported grant type : "}),
            ),
        )
            .into_response();
    }
    let form: HashMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let now = Instant::now();
    let mut inner = shared.lock();
    if inner.locked_until.is_some_and(|until| now < until) {
        return too_many();
    }
    inner
        .token_times
        .retain(|at| now.duration_since(*at) < Duration::from_secs(60));
    inner.token_times.push(now);
    if inner.token_times.len() > shared.config.token_burst as usize {
        inner.locked_until = Some(now + shared.config.lockout);
        return too_many();
    }
    if form.get("client_id") != Some(&shared.config.client_id)
        || form.get("client_secret") != Some(&shared.config.client_secret)
    {
        return fault(
            "Invalid client identifier {0}",
            "oauth.v2.InvalidClientIdentifier",
        );
    }
    let access_token = format!("fake-{}", Uuid::new_v4().simple());
    inner.tokens.insert(
        access_token.clone(),
        now + Duration::from_secs(shared.config.token_ttl_s),
    );
    let issued_at_ms = Utc::now().timestamp_millis();
    axum::Json(json!({
        "refresh_token_expires_in": "0",
        "api_product_list": "[api-dev]",
        "api_product_list_json": ["api-dev"],
        "organization_name": "ihs-prod-1",
        "developer.email": "kreki@example.id",
        "token_type": "BearerToken",
        "issued_at": issued_at_ms.to_string(),
        "client_id": shared.config.client_id,
        "access_token": access_token,
        "application_name": "kreki-fake",
        "scope": "",
        "expires_in": shared.config.token_ttl_s.to_string(),
        "refresh_count": "0",
        "status": "approved"
    }))
    .into_response()
}

/// Ok when the request carries a live token.
fn authorize(shared: &Shared, headers: &HeaderMap) -> Result<(), Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let Some(token) = token else {
        return Err(fault("Invalid access token", "oauth.v2.InvalidAccessToken"));
    };
    let inner = shared.lock();
    match inner.tokens.get(token) {
        Some(expires) if Instant::now() < *expires => Ok(()),
        Some(_) => Err(fault(
            "Access Token expired",
            "keymanagement.service.access_token_expired",
        )),
        None => Err(fault("Invalid access token", "oauth.v2.InvalidAccessToken")),
    }
}

fn nik_from(query: &HashMap<String, String>) -> Result<String, Response> {
    let identifier = query.get("identifier").ok_or_else(|| {
        outcome(
            StatusCode::BAD_REQUEST,
            "required",
            None,
            "search parameter identifier is required",
        )
    })?;
    match identifier.split_once('|') {
        Some((system, value)) if system == NIK_SYSTEM => Ok(value.to_owned()),
        _ => Err(outcome(
            StatusCode::BAD_REQUEST,
            "invalid",
            None,
            "identifier must be https://fhir.kemkes.go.id/id/nik|{nik}",
        )),
    }
}

fn searchset(resources: Vec<Value>) -> Value {
    json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": resources.len(),
        "entry": resources.into_iter().map(|resource| {
            let url = format!("https://api-satusehat-stg.dto.kemkes.go.id/fhir-r4/v1/{}/{}",
                resource["resourceType"].as_str().unwrap_or(""), resource["id"].as_str().unwrap_or(""));
            json!({ "fullUrl": url, "resource": resource, "search": { "mode": "match" } })
        }).collect::<Vec<_>>()
    })
}

async fn search_practitioner(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(response) = authorize(&shared, &headers) {
        return response;
    }
    let nik = match nik_from(&query) {
        Ok(nik) => nik,
        Err(response) => return response,
    };
    let matches = shared
        .lock()
        .practitioners
        .get(&nik)
        .cloned()
        .unwrap_or_default();
    let resources = matches
        .into_iter()
        .map(|(ihs, name)| {
            json!({
                "resourceType": "Practitioner",
                "id": ihs,
                "identifier": [
                    { "use": "official", "system": IHS_SYSTEM, "value": ihs },
                    { "use": "official", "system": NIK_SYSTEM, "value": format!("{}********", &nik[..8]) }
                ],
                "name": [{ "use": "official", "text": name }],
                "meta": { "versionId": "1", "lastUpdated": "2023-06-01T00:00:00+00:00" }
            })
        })
        .collect();
    fhir_json(StatusCode::OK, searchset(resources))
}

async fn search_patient(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(response) = authorize(&shared, &headers) {
        return response;
    }
    let nik = match nik_from(&query) {
        Ok(nik) => nik,
        Err(response) => return response,
    };
    let matches = shared
        .lock()
        .patients
        .get(&nik)
        .cloned()
        .unwrap_or_default();
    let resources = matches
        .into_iter()
        .map(|(ihs, name)| {
            json!({
                "resourceType": "Patient",
                "id": ihs,
                "identifier": [{ "use": "official", "system": PATIENT_IHS_SYSTEM, "value": ihs }],
                "name": [{ "use": "official", "text": name }],
                "meta": { "versionId": "1", "lastUpdated": "2023-06-01T00:00:00+00:00" }
            })
        })
        .collect();
    fhir_json(StatusCode::OK, searchset(resources))
}

/// Checks an Encounter against SATUSEHAT's rules for our organization `org_id`.
fn validate_encounter(encounter: &Value, org_id: &str) -> Result<(), Response> {
    let invalid = |code: &str, text: &str| outcome(StatusCode::BAD_REQUEST, code, None, text);
    if encounter.get("resourceType").and_then(Value::as_str) != Some("Encounter") {
        return Err(invalid("invalid", "resourceType must be Encounter"));
    }
    const STATUSES: &[&str] = &[
        "planned",
        "arrived",
        "triaged",
        "in-progress",
        "onleave",
        "finished",
        "cancelled",
        "entered-in-error",
        "unknown",
    ];
    match encounter.get("status").and_then(Value::as_str) {
        None => return Err(invalid("required", "Encounter.status is required")),
        Some(status) if !STATUSES.contains(&status) => {
            return Err(invalid(
                "code-invalid",
                "Encounter.status is not a valid code",
            ));
        }
        Some(_) => {}
    }
    let class = encounter.get("class");
    let class_ok = class.is_some_and(|class| {
        class.is_object()
            && class.get("system").and_then(Value::as_str)
                == Some("http://terminology.hl7.org/CodeSystem/v3-ActCode")
            && class
                .get("code")
                .and_then(Value::as_str)
                .is_some_and(|code| {
                    ["AMB", "EMER", "IMP", "HH", "VR", "SS", "ACUTE", "NONAC"].contains(&code)
                })
    });
    if class.is_none() {
        return Err(invalid("required", "Encounter.class is required"));
    }
    if !class_ok {
        return Err(invalid(
            "code-invalid",
            "Encounter.class must be a Coding from http://terminology.hl7.org/CodeSystem/v3-ActCode",
        ));
    }
    let subject_ok = encounter.get("subject").is_some_and(|subject| {
        subject
            .get("reference")
            .and_then(Value::as_str)
            .is_some_and(|reference| reference.starts_with("Patient/"))
            || subject.get("display").and_then(Value::as_str).is_some()
    });
    if !subject_ok {
        return Err(invalid(
            "required",
            "Encounter.subject is required (a Patient reference or display)",
        ));
    }
    let participants = encounter.get("participant").and_then(Value::as_array);
    let participant_ok = participants.is_some_and(|participants| {
        !participants.is_empty()
            && participants.iter().all(|participant| {
                let attender = participant
                    .pointer("/type/0/coding")
                    .and_then(Value::as_array)
                    .is_some_and(|codings| {
                        codings.iter().any(|coding| {
                        coding.get("code").and_then(Value::as_str) == Some("ATND")
                            && coding.get("system").and_then(Value::as_str)
                                == Some(
                                    "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                )
                    })
                    });
                let practitioner = participant
                    .pointer("/individual/reference")
                    .and_then(Value::as_str)
                    .is_some_and(|reference| reference.starts_with("Practitioner/"));
                attender && practitioner
            })
    });
    if !participant_ok {
        return Err(invalid(
            "required",
            "Encounter.participant needs type ATND (v3-ParticipationType) and a Practitioner individual",
        ));
    }
    let location_ok = encounter
        .pointer("/location/0/location/reference")
        .and_then(Value::as_str)
        .is_some_and(|reference| reference.starts_with("Location/"));
    if !location_ok {
        return Err(invalid(
            "required",
            "Encounter.location needs a Location reference",
        ));
    }
    let provider = encounter
        .pointer("/serviceProvider/reference")
        .and_then(Value::as_str);
    match provider {
        None => return Err(invalid("required", "Encounter.serviceProvider is required")),
        Some(reference) if reference != format!("Organization/{org_id}") => {
            return Err(outcome(
                StatusCode::BAD_REQUEST,
                "business-rule",
                Some("10117"),
                "serviceProvider must be the organization of the credentials",
            ));
        }
        Some(_) => {}
    }
    let identifiers = encounter.get("identifier").and_then(Value::as_array);
    let ours = identifiers.into_iter().flatten().find_map(|identifier| {
        identifier
            .get("system")
            .and_then(Value::as_str)
            .and_then(|system| system.strip_prefix("http://sys-ids.kemkes.go.id/encounter/"))
            .map(|org| {
                (
                    org.to_owned(),
                    identifier.get("value").and_then(Value::as_str),
                )
            })
    });
    match ours {
        None => {
            return Err(invalid(
                "required",
                "Encounter.identifier needs system http://sys-ids.kemkes.go.id/encounter/{org_id}",
            ));
        }
        Some((org, _)) if org != org_id => {
            return Err(outcome(
                StatusCode::BAD_REQUEST,
                "business-rule",
                Some("10117"),
                "the organization in the identifier system is not the organization of the credentials",
            ));
        }
        Some((_, None)) => {
            return Err(invalid(
                "required",
                "Encounter.identifier.value is required",
            ));
        }
        Some(_) => {}
    }
    let mut times = Vec::new();
    collect_times(encounter, &mut times);
    if !encounter
        .pointer("/period/start")
        .is_some_and(Value::is_string)
    {
        return Err(invalid("required", "Encounter.period.start is required"));
    }
    for time in times {
        let utc = DateTime::parse_from_rfc3339(&time)
            .is_ok_and(|parsed| parsed.offset().local_minus_utc() == 0);
        if !utc {
            return Err(invalid(
                "invalid",
                &format!("time {time} must be UTC (…Z or +00:00)"),
            ));
        }
    }
    Ok(())
}

/// Every `start`/`end` string in the resource (period and statusHistory times).
fn collect_times(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("start" | "end", Value::String(text)) => out.push(text.clone()),
                    _ => collect_times(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_times(item, out)),
        _ => {}
    }
}

fn has_identifier_value(encounter: &Value, value: &str) -> bool {
    encounter
        .get("identifier")
        .and_then(Value::as_array)
        .is_some_and(|identifiers| {
            identifiers
                .iter()
                .any(|identifier| identifier.get("value").and_then(Value::as_str) == Some(value))
        })
}

fn stamp(encounter: &mut Value, id: &str, version: u64) {
    encounter["id"] = json!(id);
    encounter["meta"] = json!({
        "versionId": version.to_string(),
        "lastUpdated": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    });
}

fn parse_body(body: &Bytes) -> Result<Value, Response> {
    serde_json::from_slice(body).map_err(|error| {
        outcome(
            StatusCode::BAD_REQUEST,
            "structure",
            None,
            &format!("body is not JSON: {error}"),
        )
    })
}

async fn create_encounter(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(response) = authorize(&shared, &headers) {
        return response;
    }
    let mut encounter = match parse_body(&body) {
        Ok(encounter) => encounter,
        Err(response) => return response,
    };
    if let Err(response) = validate_encounter(&encounter, &shared.config.org_id) {
        return response;
    }
    let id = Uuid::new_v4().to_string();
    stamp(&mut encounter, &id, 1);
    let hang = {
        let mut inner = shared.lock();
        inner.encounters.push(encounter.clone());
        take(&mut inner.faults.create_commit_then_hang).then_some(inner.faults.hang)
    };
    if let Some(hang) = hang {
        tokio::time::sleep(hang).await;
    }
    fhir_json(StatusCode::CREATED, encounter)
}

async fn update_encounter(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(response) = authorize(&shared, &headers) {
        return response;
    }
    let mut encounter = match parse_body(&body) {
        Ok(encounter) => encounter,
        Err(response) => return response,
    };
    if encounter.get("id").and_then(Value::as_str) != Some(id.as_str()) {
        return outcome(
            StatusCode::BAD_REQUEST,
            "invalid",
            None,
            "Encounter.id must match the id in the URL",
        );
    }
    if let Err(response) = validate_encounter(&encounter, &shared.config.org_id) {
        return response;
    }
    let mut inner = shared.lock();
    let Some(stored) = inner
        .encounters
        .iter_mut()
        .find(|stored| stored.get("id").and_then(Value::as_str) == Some(id.as_str()))
    else {
        return outcome(
            StatusCode::NOT_FOUND,
            "not-found",
            None,
            "Encounter not found",
        );
    };
    let version = stored
        .pointer("/meta/versionId")
        .and_then(Value::as_str)
        .and_then(|version| version.parse::<u64>().ok())
        .unwrap_or(1);
    stamp(&mut encounter, &id, version + 1);
    *stored = encounter.clone();
    fhir_json(StatusCode::OK, encounter)
}

async fn read_encounter(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(response) = authorize(&shared, &headers) {
        return response;
    }
    let found = shared
        .lock()
        .encounters
        .iter()
        .find(|stored| stored.get("id").and_then(Value::as_str) == Some(id.as_str()))
        .cloned();
    match found {
        Some(encounter) => fhir_json(StatusCode::OK, encounter),
        None => outcome(
            StatusCode::NOT_FOUND,
            "not-found",
            None,
            "Encounter not found",
        ),
    }
}

async fn search_encounter(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(response) = authorize(&shared, &headers) {
        return response;
    }
    let Some((system, value)) = query
        .get("identifier")
        .and_then(|identifier| identifier.split_once('|'))
    else {
        return outcome(
            StatusCode::BAD_REQUEST,
            "required",
            None,
            "search by identifier=system|value",
        );
    };
    let found = shared
        .lock()
        .encounters
        .iter()
        .filter(|encounter| {
            encounter
                .get("identifier")
                .and_then(Value::as_array)
                .is_some_and(|identifiers| {
                    identifiers.iter().any(|identifier| {
                        identifier.get("system").and_then(Value::as_str) == Some(system)
                            && identifier.get("value").and_then(Value::as_str) == Some(value)
                    })
                })
        })
        .cloned()
        .collect();
    fhir_json(StatusCode::OK, searchset(found))
}
