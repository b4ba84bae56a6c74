//! Issue 5's "done when", through real `kreki` processes and nothing but their HTTP APIs, against
//! the fake SATUSEHAT (started here, in the test, so the test can inject faults and read what
//! SATUSEHAT received; `kreki` is configured for it like for the real one, by base URL and
//! credentials):
//!
//! - a health-worker volunteer is verified, goes on duty and accepts a citizen's panic; SATUSEHAT
//!   holds exactly one Encounter for it (with the patient and the practitioner) although the first
//!   create is committed but answered with a timeout and gateway 401s, plain-text 5xx and a 429 are
//!   injected; the Encounter follows the alert to `finished`; a health system with a client id then
//!   pages through today's Encounters at `/fhir/r4` and sees every incident exactly once;
//! - a SATUSEHAT outage leaves the dispatch untouched, the exhausted Encounter create is listed for
//!   coordinators and goes through once they queue it again;
//! - `kreki serve --services bridge` in a process of its own follows the alerts a dispatch process
//!   writes to the shared database.
//!
//! With `KREKI_FHIR_SAMPLES_DIR` set, every FHIR resource the health system got and the Encounter
//! SATUSEHAT holds are written there; `bridge-satusehat/validation/run.sh` (from `.ci/run`) then
//! checks each one with an independent FHIR R4 validator.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use kreki_bridge_satusehat::fake::{self, FakeConfig, FakeSatusehat};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::support::{JsonApi, MONAS, Server, TempDir, database_url, kreki, signing_key};

/// The `kreki` environment of a deployment that talks to `fake` as its SATUSEHAT, with retries
/// quick enough for a test (the 60 s silence after a 429 is a floor `kreki` enforces).
fn satusehat_env(fake: &FakeSatusehat, max_attempts: u32) -> Vec<(&'static str, String)> {
    let config = fake.config();
    vec![
        ("KREKI_SATUSEHAT__ENABLED", "true".into()),
        ("KREKI_SATUSEHAT__ENVIRONMENT", "sandbox".into()),
        ("KREKI_SATUSEHAT__BASE_URL", fake.base_url()),
        ("KREKI_SATUSEHAT__ORG_ID", config.org_id.clone()),
        ("KREKI_SATUSEHAT__CLIENT_ID", config.client_id.clone()),
        (
            "KREKI_SATUSEHAT__CLIENT_SECRET",
            config.client_secret.clone(),
        ),
        ("KREKI_SATUSEHAT__LOCATION_ID", "kreki-e2e-post".into()),
        ("KREKI_SATUSEHAT__REQUEST_TIMEOUT_MS", "1000".into()),
        ("KREKI_SATUSEHAT__RETRY_BASE_S", "1".into()),
        ("KREKI_SATUSEHAT__RETRY_MAX_S", "2".into()),
        (
            "KREKI_SATUSEHAT__SYNC_MAX_ATTEMPTS",
            max_attempts.to_string(),
        ),
        ("KREKI_SATUSEHAT__POLL_MS", "100".into()),
    ]
}

struct Api(JsonApi);

impl std::ops::Deref for Api {
    type Target = JsonApi;
    fn deref(&self) -> &JsonApi {
        &self.0
    }
}

impl Api {
    fn new(base: &str) -> Self {
        Self(JsonApi::new(base))
    }

    /// Signs up over HTTP and signs in; the new user's id and access token.
    async fn citizen(&self, phone: &str, name: &str) -> (String, String) {
        let (status, body) = self
            .send(
                Method::POST,
                "/v1/auth/register",
                None,
                Some(json!({"phone": phone, "password": "kata-sandi-aman", "name": name})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let id = body["id"].as_str().expect("an id").to_owned();
        (id, self.login(phone, "kata-sandi-aman").await)
    }

    /// A citizen's panic `metres` north of Monas; the new Alert.
    async fn panic(&self, citizen: &str, kind: &str, metres: f64, nik: Option<&str>) -> Value {
        let mut body = json!({"kind": kind, "location": {"lat": MONAS.0 + metres / 110_574.0, "lng": MONAS.1, "accuracy_m": 10}});
        if let Some(nik) = nik {
            body["patient"] = json!({"nik": nik});
        }
        let response = self
            .client
            .post(format!("{}/v1/alerts", self.base))
            .bearer_auth(citizen)
            .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
            .json(&body)
            .send()
            .await
            .expect("panic answered");
        assert_eq!(response.status(), StatusCode::CREATED, "a new alert");
        response.json().await.expect("JSON")
    }

    /// The volunteer's pending offer for `alert`, waiting at most 10 s.
    async fn offer_for(&self, volunteer: &str, alert: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (status, offers) = self
                .send(
                    Method::GET,
                    "/v1/volunteers/me/offers",
                    Some(volunteer),
                    None,
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{offers}");
            if let Some(offer) = offers
                .as_array()
                .into_iter()
                .flatten()
                .find(|offer| offer["alert"]["id"] == alert)
            {
                return offer.clone();
            }
            assert!(Instant::now() < deadline, "no offer for alert {alert}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Accepts the offer; the Assignment.
    async fn accept(&self, volunteer: &str, offer: &Value) -> Value {
        let id = offer["id"].as_str().expect("an offer id");
        let (status, assignment) = self
            .send(
                Method::POST,
                &format!("/v1/offers/{id}/accept"),
                Some(volunteer),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{assignment}");
        assignment
    }

    async fn assignment_status(&self, volunteer: &str, assignment: &str, status: &str) {
        let (code, body) = self
            .send(
                Method::POST,
                &format!("/v1/assignments/{assignment}/status"),
                Some(volunteer),
                Some(json!({"status": status})),
            )
            .await;
        assert_eq!(code, StatusCode::OK, "{body}");
        assert_eq!(body["status"], status);
    }

    /// A health worker volunteer: signed up, made a volunteer by the admin, first-aid certified
    /// (an operator's grant), verified against SATUSEHAT by NIK (at `bridge`, where the bridge
    /// runs), on duty 100 m north of Monas; their access token.
    async fn health_worker(
        &self,
        bridge: &Api,
        url: &str,
        admin: &str,
        nik: &str,
        ihs_number: &str,
    ) -> String {
        let phone = "081277770001";
        let (id, _) = self.citizen(phone, "Sari Wulandari").await;
        let (status, body) = self
            .send(
                Method::PUT,
                &format!("/v1/admin/users/{id}/roles"),
                Some(admin),
                Some(json!({"roles": ["citizen", "volunteer"]})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let granted = kreki()
            .args([
                "volunteer",
                "grant-cert",
                "--user",
                &id,
                "--cert",
                "first_aid",
            ])
            .env("KREKI_DATABASE__URL", url)
            .output()
            .expect("runs");
        assert!(
            granted.status.success(),
            "{}",
            String::from_utf8_lossy(&granted.stderr)
        );
        let token = self.login(phone, "kata-sandi-aman").await;
        let (status, verdict) = bridge
            .send(
                Method::POST,
                "/v1/volunteers/me/practitioner-verification",
                Some(&token),
                Some(json!({"nik": nik})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{verdict}");
        assert_eq!(verdict["status"], "verified", "{verdict}");
        assert_eq!(verdict["ihs_number"], ihs_number, "{verdict}");
        // The verdict reaches dispatch's record of the volunteer in the background; dispatch reads
        // it when they go on duty.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let (status, duty) = self
                .send(
                    Method::PUT,
                    "/v1/volunteers/me/duty",
                    Some(&token),
                    Some(json!({"on_duty": true})),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{duty}");
            if duty["eligible_kinds"]
                .as_array()
                .expect("kinds")
                .contains(&json!("medical"))
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "a verified, first-aid certified volunteer is not eligible for medical: {duty}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (status, body) = self
            .send(
                Method::POST,
                "/v1/volunteers/me/location",
                Some(&token),
                Some(json!({"lat": MONAS.0 + 100.0 / 110_574.0, "lng": MONAS.1, "accuracy_m": 5})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        token
    }

    /// A health system's access token: an OAuth2 client the admin registers with `system/*.read`,
    /// exchanged by client credentials.
    async fn health_system(&self, admin: &str) -> String {
        let (status, client) = self
            .send(
                Method::POST,
                "/v1/admin/clients",
                Some(admin),
                Some(json!({"name": "RSUD Tarakan", "scopes": ["system/*.read"]})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{client}");
        let response = self
            .client
            .post(format!("{}/v1/auth/token", self.base))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", client["client_id"].as_str().expect("id")),
                (
                    "client_secret",
                    client["client_secret"].as_str().expect("secret"),
                ),
                ("scope", "system/*.read"),
            ])
            .send()
            .await
            .expect("answered");
        assert_eq!(response.status(), StatusCode::OK);
        let token: Value = response.json().await.expect("JSON");
        assert_eq!(token["scope"], "system/*.read", "{token}");
        token["access_token"].as_str().expect("a token").to_owned()
    }

    /// A FHIR read: status and body, checking the FHIR content type.
    async fn fhir(&self, url: &str, token: &str) -> (StatusCode, Value) {
        let url = if url.starts_with("http") {
            url.to_owned()
        } else {
            format!("{}{url}", self.base)
        };
        let response = self
            .client
            .get(url)
            .bearer_auth(token)
            .header(reqwest::header::ACCEPT, "application/fhir+json")
            .send()
            .await
            .expect("answered");
        let status = response.status();
        assert_eq!(
            response.headers()[reqwest::header::CONTENT_TYPE],
            "application/fhir+json",
            "FHIR answers are application/fhir+json"
        );
        (status, response.json().await.expect("JSON"))
    }
}

fn cli_user(url: &str, phone: &str, password: &str, name: &str, role: &str) {
    let created = kreki()
        .args(["user", "create", "--phone", phone, "--password", password])
        .args(["--name", name, "--role", role])
        .env("KREKI_DATABASE__URL", url)
        .output()
        .expect("runs");
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
}

/// Writes `resource` to `$KREKI_FHIR_SAMPLES_DIR/{name}.json` for the independent validator.
fn keep_sample(name: &str, resource: &Value) {
    if let Some(dir) = std::env::var_os("KREKI_FHIR_SAMPLES_DIR") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).expect("samples dir");
        std::fs::write(
            dir.join(format!("{name}.json")),
            serde_json::to_vec_pretty(resource).expect("json"),
        )
        .expect("writes");
    }
}

/// Waits (at most `limit`) until `done` holds, describing the wait on timeout.
async fn until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The Encounter creates SATUSEHAT received (answered or not).
fn creates(fake: &FakeSatusehat) -> usize {
    fake.requests()
        .iter()
        .filter(|request| request.method == "POST" && request.path == "/fhir-r4/v1/Encounter")
        .count()
}

/// The one Encounter SATUSEHAT holds for `alert`, checked to be exactly one.
fn only_encounter(fake: &FakeSatusehat, alert: &str) -> Value {
    let encounters = fake.encounters_with_identifier(alert);
    assert_eq!(
        encounters.len(),
        1,
        "SATUSEHAT must hold exactly one Encounter for alert {alert}: {encounters:#?}"
    );
    encounters[0].clone()
}

/// Every page of `first` through its `next` links: the resources' ids in order, and the pages.
async fn every_page(api: &Api, first: &str, token: &str) -> (Vec<String>, Vec<Value>) {
    let mut ids = Vec::new();
    let mut pages = Vec::new();
    let mut url = first.to_owned();
    loop {
        let (status, bundle) = api.fhir(&url, token).await;
        assert_eq!(status, StatusCode::OK, "{bundle}");
        assert_eq!(bundle["resourceType"], "Bundle");
        assert_eq!(bundle["type"], "searchset");
        for entry in bundle["entry"].as_array().into_iter().flatten() {
            assert_eq!(entry["resource"]["resourceType"], "Encounter");
            ids.push(entry["resource"]["id"].as_str().expect("id").to_owned());
        }
        let next = bundle["link"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|link| link["relation"] == "next")
            .and_then(|link| link["url"].as_str())
            .map(str::to_owned);
        pages.push(bundle);
        match next {
            Some(next) => url = next,
            None => return (ids, pages),
        }
        assert!(pages.len() < 50, "paging does not end");
    }
}

#[sqlx::test(migrations = false)]
async fn a_verified_health_worker_s_incident_reaches_satusehat_once_under_faults_and_health_systems_page_through_it(
    pool: PgPool,
) {
    let fake = FakeSatusehat::start(FakeConfig::default())
        .await
        .expect("fake SATUSEHAT starts");
    let dir = TempDir::new();
    let key = signing_key(&dir.0);
    let url = database_url(&pool);
    let mut env = vec![
        ("KREKI_DATABASE__URL", url.clone()),
        ("KREKI_AUTH__SIGNING_KEY_FILE", key.display().to_string()),
    ];
    env.extend(satusehat_env(&fake, 50));
    let server = Server::start(&env).await;
    let api = Api::new(&server.base);
    cli_user(&url, "081100000001", "admin-rahasia", "Admin", "admin");
    let admin = api.login("081100000001", "admin-rahasia").await;
    let volunteer = api
        .health_worker(&api, &url, &admin, fake::SEED_NIK_ONE, fake::SEED_IHS_ONE)
        .await;

    // The first create is committed but answered only after the client gave up; before it the
    // gateway answers a plain-text 502 and a 401 fault.
    fake.faults(|faults| {
        faults.create_commit_then_hang = 1;
        faults.hang = Duration::from_secs(3);
        faults.fhir_5xx = 1;
        faults.fhir_401 = 1;
    });
    let (_, citizen) = api.citizen("081399990001", "Warga Satu").await;
    let alert = api
        .panic(&citizen, "medical", 0.0, Some(fake::SEED_PATIENT_NIK))
        .await;
    let alert_id = alert["id"].as_str().expect("id").to_owned();
    let offer = api.offer_for(&volunteer, &alert_id).await;
    let assignment = api.accept(&volunteer, &offer).await;
    let assignment_id = assignment["id"].as_str().expect("id").to_owned();

    // The Encounter appears, and the bridge finds it (search by our identifier) after the timeout
    // instead of creating it again.
    until(
        Duration::from_secs(30),
        "the Encounter in SATUSEHAT",
        || !fake.encounters_with_identifier(&alert_id).is_empty(),
    )
    .await;
    until(
        Duration::from_secs(30),
        "the search that finds the timed-out create",
        || {
            let log = fake.requests();
            let Some(post) = log.iter().position(|request| {
                request.method == "POST" && request.path == "/fhir-r4/v1/Encounter"
            }) else {
                return false;
            };
            log[post + 1..].iter().any(|request| {
                request.method == "GET"
                    && request.path == "/fhir-r4/v1/Encounter"
                    && request.status == 200
            })
        },
    )
    .await;
    // Several retry periods later there is still one, and only one create was ever sent.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let encounter = only_encounter(&fake, &alert_id);
    assert_eq!(creates(&fake), 1, "a second create was sent");
    let statuses: Vec<u16> = fake
        .requests()
        .iter()
        .filter(|request| request.path.starts_with("/fhir-r4/"))
        .map(|request| request.status)
        .collect();
    assert!(
        statuses.contains(&502) && statuses.contains(&401),
        "{statuses:?}"
    );
    assert_eq!(encounter["status"], "arrived", "{encounter:#}");
    assert_eq!(encounter["class"]["code"], "EMER");
    assert_eq!(
        encounter["subject"]["reference"],
        format!("Patient/{}", fake::SEED_PATIENT_IHS),
        "the citizen's NIK resolved to one patient"
    );
    assert_eq!(
        encounter["participant"][0]["individual"]["reference"],
        format!("Practitioner/{}", fake::SEED_IHS_ONE)
    );
    assert_eq!(
        encounter["serviceProvider"]["reference"],
        format!("Organization/{}", fake.config().org_id)
    );

    // The alert resolves while SATUSEHAT rate-limits (429 without Retry-After) and fails once
    // more: the Encounter still follows, once the 60 s silence after the 429 is over.
    fake.faults(|faults| {
        faults.fhir_429 = 1;
        faults.fhir_5xx = 1;
    });
    for status in ["en_route", "on_scene", "completed"] {
        api.assignment_status(&volunteer, &assignment_id, status)
            .await;
    }
    let (status, resolved) = api
        .send(
            Method::GET,
            &format!("/v1/alerts/{alert_id}"),
            Some(&citizen),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{resolved}");
    assert_eq!(resolved["status"], "resolved");
    until(
        Duration::from_secs(150),
        "the Encounter to be finished",
        || {
            fake.encounters_with_identifier(&alert_id)
                .iter()
                .any(|encounter| encounter["status"] == "finished")
        },
    )
    .await;
    let finished = only_encounter(&fake, &alert_id);
    assert_eq!(creates(&fake), 1, "a second create was sent");
    assert!(
        fake.requests().iter().any(|request| request.status == 429),
        "the 429 was never hit"
    );
    keep_sample("e2e-satusehat-encounter", &finished);

    // More incidents today: three citizens, one of whom calls it off.
    let mut incidents = HashSet::from([alert_id.clone()]);
    for n in 2..=4 {
        let (_, citizen) = api
            .citizen(&format!("08139999000{n}"), &format!("Warga {n}"))
            .await;
        let alert = api
            .panic(&citizen, "other", 300.0 * f64::from(n), None)
            .await;
        let id = alert["id"].as_str().expect("id").to_owned();
        if n == 4 {
            let (status, body) = api
                .send(
                    Method::POST,
                    &format!("/v1/alerts/{id}/cancel"),
                    Some(&citizen),
                    Some(json!({"reason": "salah tekan"})),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        incidents.insert(id);
    }

    // A health system lists today's Encounters, two per page.
    let system = api.health_system(&admin).await;
    let (status, capability) = api.fhir("/fhir/r4/metadata", &system).await;
    assert_eq!(status, StatusCode::OK, "{capability}");
    assert_eq!(capability["fhirVersion"], "4.0.1");
    keep_sample("e2e-capability-statement", &capability);
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let all = format!("/fhir/r4/Encounter?date=ge{today}&_count=100");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // The bridge follows dispatch's change feed a few seconds behind.
        let (ids, _) = every_page(&api, &all, &system).await;
        if ids.len() == incidents.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the FHIR API never showed every incident: {ids:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (ids, pages) = every_page(
        &api,
        &format!("/fhir/r4/Encounter?date=ge{today}&_count=2"),
        &system,
    )
    .await;
    assert_eq!(pages.len(), 2, "four incidents, two per page");
    assert_eq!(
        ids.len(),
        incidents.len(),
        "an incident was repeated: {ids:?}"
    );
    assert_eq!(ids.iter().cloned().collect::<HashSet<_>>(), incidents);
    for (index, page) in pages.iter().enumerate() {
        keep_sample(&format!("e2e-encounter-searchset-{}", index + 1), page);
    }

    // The incident's resources, as the health system reads them.
    let (status, encounter) = api
        .fhir(&format!("/fhir/r4/Encounter/{alert_id}"), &system)
        .await;
    assert_eq!(status, StatusCode::OK, "{encounter}");
    assert_eq!(encounter["status"], "finished");
    assert_eq!(encounter["class"]["code"], "EMER");
    keep_sample("e2e-encounter", &encounter);
    let (status, location) = api
        .fhir(&format!("/fhir/r4/Location/{alert_id}"), &system)
        .await;
    assert_eq!(status, StatusCode::OK, "{location}");
    keep_sample("e2e-location", &location);
    let (status, tasks) = api
        .fhir(
            &format!("/fhir/r4/Task?focus=Encounter/{alert_id}"),
            &system,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{tasks}");
    assert_eq!(tasks["entry"].as_array().map(Vec::len), Some(1), "{tasks}");
    assert_eq!(
        tasks["entry"][0]["resource"]["owner"]["identifier"]["value"],
        fake::SEED_IHS_ONE,
        "the task is owned by the verified practitioner"
    );
    keep_sample("e2e-task-searchset", &tasks);
    let (status, task) = api
        .fhir(&format!("/fhir/r4/Task/{assignment_id}"), &system)
        .await;
    assert_eq!(status, StatusCode::OK, "{task}");
    assert_eq!(task["status"], "completed");
    keep_sample("e2e-task", &task);
    let (status, outcome) = api.fhir("/fhir/r4/Encounter?date=kemarin", &system).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{outcome}");
    assert_eq!(outcome["resourceType"], "OperationOutcome");
    keep_sample("e2e-operation-outcome", &outcome);

    // Nothing personal beyond the patient's NIK: no names, no phone numbers.
    for resource in pages.iter().chain([&encounter, &location, &tasks, &task]) {
        let text = resource.to_string();
        for personal in ["Warga", "Sari", "0813", "0812"] {
            assert!(!text.contains(personal), "{personal} served: {text}");
        }
    }
    // A volunteer's token is no health system's.
    let (status, refused) = api.fhir("/fhir/r4/Encounter", &volunteer).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert_eq!(refused["resourceType"], "OperationOutcome");
}

#[sqlx::test(migrations = false)]
async fn a_satusehat_outage_leaves_the_dispatch_untouched_and_coordinators_see_and_retry_the_failure(
    pool: PgPool,
) {
    let fake = FakeSatusehat::start(FakeConfig::default())
        .await
        .expect("fake SATUSEHAT starts");
    let dir = TempDir::new();
    let key = signing_key(&dir.0);
    let url = database_url(&pool);
    let mut env = vec![
        ("KREKI_DATABASE__URL", url.clone()),
        ("KREKI_AUTH__SIGNING_KEY_FILE", key.display().to_string()),
    ];
    env.extend(satusehat_env(&fake, 2));
    let server = Server::start(&env).await;
    let api = Api::new(&server.base);
    cli_user(&url, "081100000001", "admin-rahasia", "Admin", "admin");
    cli_user(
        &url,
        "081100000002",
        "koordinator-rahasia",
        "Koordinator",
        "coordinator",
    );
    let admin = api.login("081100000001", "admin-rahasia").await;
    let coordinator = api.login("081100000002", "koordinator-rahasia").await;
    let volunteer = api
        .health_worker(&api, &url, &admin, fake::SEED_NIK_ONE, fake::SEED_IHS_ONE)
        .await;

    // SATUSEHAT goes down; a citizen panics and the volunteer is offered the alert and takes it,
    // as if SATUSEHAT did not exist.
    fake.faults(|faults| faults.down = true);
    let (_, citizen) = api.citizen("081399990001", "Warga Satu").await;
    let alert = api.panic(&citizen, "medical", 0.0, None).await;
    let alert_id = alert["id"].as_str().expect("id").to_owned();
    let started = Instant::now();
    let offer = api.offer_for(&volunteer, &alert_id).await;
    let assignment = api.accept(&volunteer, &offer).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "offer and accept took {:?} during the outage",
        started.elapsed()
    );
    assert_eq!(assignment["alert_id"], alert_id.as_str());
    let (status, assigned) = api
        .send(
            Method::GET,
            &format!("/v1/alerts/{alert_id}"),
            Some(&coordinator),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{assigned}");
    assert_eq!(assigned["status"], "assigned");

    // The create exhausts its two attempts against the outage and is listed for coordinators.
    let deadline = Instant::now() + Duration::from_secs(30);
    let failure = loop {
        let (status, failures) = api
            .send(
                Method::GET,
                "/v1/fhir-sync/failures",
                Some(&coordinator),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{failures}");
        if let Some(failure) = failures
            .as_array()
            .into_iter()
            .flatten()
            .find(|failure| failure["alert_id"] == alert_id.as_str())
        {
            break failure.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the failed create was never listed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(failure["action"], "create");
    assert_eq!(failure["attempts"], 2);
    assert!(
        failure["last_error"]
            .as_str()
            .is_some_and(|error| error.contains("503")),
        "{failure}"
    );
    let (status, _) = api
        .send(
            Method::GET,
            "/v1/fhir-sync/failures",
            Some(&volunteer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "only coordinators");
    assert!(fake.encounters().is_empty());
    // Operators see it too, in the metrics.
    let metrics = api
        .client
        .get(format!("{}/metrics", api.base))
        .send()
        .await
        .expect("answered")
        .text()
        .await
        .expect("text");
    assert!(
        metrics
            .lines()
            .any(|line| line.starts_with("bridge_encounter_sync_failed_total{action=\"create\"} 1")),
        "{metrics}"
    );

    // SATUSEHAT is back; the coordinator queues the change again and it goes through, once.
    fake.faults(|faults| faults.down = false);
    let id = failure["id"].as_i64().expect("id");
    let (status, retried) = api
        .send(
            Method::POST,
            &format!("/v1/fhir-sync/failures/{id}/retry"),
            Some(&coordinator),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{retried}");
    until(
        Duration::from_secs(30),
        "the Encounter after the retry",
        || !fake.encounters_with_identifier(&alert_id).is_empty(),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let encounter = only_encounter(&fake, &alert_id);
    assert_eq!(encounter["status"], "arrived");
    let (status, failures) = api
        .send(
            Method::GET,
            "/v1/fhir-sync/failures",
            Some(&coordinator),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{failures}");
    assert!(
        failures
            .as_array()
            .into_iter()
            .flatten()
            .all(|failure| failure["alert_id"] != alert_id.as_str()),
        "{failures}"
    );
}

#[sqlx::test(migrations = false)]
async fn a_bridge_in_its_own_process_follows_the_dispatch_process(pool: PgPool) {
    let fake = FakeSatusehat::start(FakeConfig::default())
        .await
        .expect("fake SATUSEHAT starts");
    let dir = TempDir::new();
    let key = signing_key(&dir.0);
    let url = database_url(&pool);
    let common = vec![
        ("KREKI_DATABASE__URL", url.clone()),
        ("KREKI_AUTH__SIGNING_KEY_FILE", key.display().to_string()),
    ];
    // Everything but the bridge here; SATUSEHAT is configured only where the bridge runs.
    let dispatch = Server::start_with(
        &[
            "serve",
            "--migrate",
            "--services",
            "auth,realtime,dispatch,lms",
        ],
        &common,
    )
    .await;
    let mut bridge_env = common.clone();
    bridge_env.extend(satusehat_env(&fake, 50));
    let bridge = Server::start_with(&["serve", "--services", "bridge"], &bridge_env).await;
    let api = Api::new(&dispatch.base);
    let bridge_api = Api::new(&bridge.base);
    // Each process serves only its own services.
    let (status, _) = bridge_api
        .send(Method::GET, "/v1/volunteers/me/offers", None, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "dispatch runs elsewhere");
    let (status, _) = api
        .send(
            Method::POST,
            "/v1/volunteers/me/practitioner-verification",
            None,
            Some(json!({"nik": fake::SEED_NIK_ONE})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the bridge runs elsewhere");

    cli_user(&url, "081100000001", "admin-rahasia", "Admin", "admin");
    let admin = api.login("081100000001", "admin-rahasia").await;
    // Medical alerts go to verified health workers only: the verdict the bridge process records
    // must reach the dispatch process through the database.
    let (status, kinds) = api
        .send(Method::GET, "/v1/dispatch/kinds", Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{kinds}");
    let mut medical = kinds
        .as_array()
        .into_iter()
        .flatten()
        .find(|entry| entry["kind"] == "medical")
        .expect("medical settings")
        .clone();
    medical["requires_verified_practitioner"] = json!(true);
    if let Some(fields) = medical.as_object_mut() {
        fields.remove("kind");
    }
    let (status, stored) = api
        .send(
            Method::PUT,
            "/v1/dispatch/kinds/medical",
            Some(&admin),
            Some(medical),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    assert_eq!(stored["requires_verified_practitioner"], true);
    // Verified at the bridge process, dispatched by the other.
    let volunteer = api
        .health_worker(
            &bridge_api,
            &url,
            &admin,
            fake::SEED_NIK_TWO,
            fake::SEED_IHS_TWO,
        )
        .await;
    let (_, citizen) = api.citizen("081399990001", "Warga Satu").await;
    let alert = api.panic(&citizen, "medical", 0.0, None).await;
    let alert_id = alert["id"].as_str().expect("id").to_owned();
    let offer = api.offer_for(&volunteer, &alert_id).await;
    api.accept(&volunteer, &offer).await;

    until(
        Duration::from_secs(30),
        "the Encounter in SATUSEHAT",
        || !fake.encounters_with_identifier(&alert_id).is_empty(),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let encounter = only_encounter(&fake, &alert_id);
    assert_eq!(creates(&fake), 1);
    assert_eq!(encounter["status"], "arrived");
    assert_eq!(
        encounter["participant"][0]["individual"]["reference"],
        format!("Practitioner/{}", fake::SEED_IHS_TWO)
    );

    // Health systems read it from the bridge process, with a token the auth process issued.
    let system = api.health_system(&admin).await;
    let (status, served) = bridge_api
        .fhir(&format!("/fhir/r4/Encounter/{alert_id}"), &system)
        .await;
    assert_eq!(status, StatusCode::OK, "{served}");
    assert_eq!(served["status"], "arrived");
}

/// Drills are not health records: a verified health worker who accepts a drill leaves SATUSEHAT
/// without an Encounter and `/fhir/r4` without the incident, through the real chain (dispatch's
/// change feed, the bridge's consumer, its Encounter worker); the same worker's real incident right
/// after is recorded, so the chain is shown to work here.
#[sqlx::test(migrations = false)]
async fn a_drill_never_reaches_satusehat_nor_health_systems(pool: PgPool) {
    let fake = FakeSatusehat::start(FakeConfig::default())
        .await
        .expect("fake SATUSEHAT starts");
    let dir = TempDir::new();
    let key = signing_key(&dir.0);
    let url = database_url(&pool);
    let mut env = vec![
        ("KREKI_DATABASE__URL", url.clone()),
        ("KREKI_AUTH__SIGNING_KEY_FILE", key.display().to_string()),
    ];
    env.extend(satusehat_env(&fake, 5));
    let server = Server::start(&env).await;
    let api = Api::new(&server.base);
    cli_user(&url, "081100000001", "admin-rahasia", "Admin", "admin");
    let admin = api.login("081100000001", "admin-rahasia").await;
    let health_system = api.health_system(&admin).await;
    let volunteer = api
        .health_worker(&api, &url, &admin, fake::SEED_NIK_ONE, fake::SEED_IHS_ONE)
        .await;
    let (_, citizen) = api.citizen("081399990003", "Warga Tiga").await;

    let response = api
        .client
        .post(format!("{}/v1/alerts", api.base))
        .bearer_auth(&citizen)
        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
        .json(&json!({"kind": "medical", "location": {"lat": MONAS.0, "lng": MONAS.1, "accuracy_m": 10},
            "patient": {"nik": fake::SEED_PATIENT_NIK}, "drill": true}))
        .send()
        .await
        .expect("panic answered");
    assert_eq!(response.status(), StatusCode::CREATED);
    let drill: Value = response.json().await.expect("JSON");
    assert_eq!(drill["drill"], true);
    let drill_id = drill["id"].as_str().expect("id").to_owned();
    let offer = api.offer_for(&volunteer, &drill_id).await;
    assert_eq!(offer["alert"]["drill"], true, "{offer}");
    let assignment = api.accept(&volunteer, &offer).await;

    // The bridge has read past every event of the drill (its assignment included) ...
    let drill_uuid = uuid::Uuid::parse_str(&drill_id).expect("uuid");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (cursor, newest): (i64, Option<i64>) = sqlx::query_as(
            "SELECT (SELECT last_seq FROM bridge.feed_cursor),
                    (SELECT max(id) FROM dispatch.alert_events WHERE alert_id = $1)",
        )
        .bind(drill_uuid)
        .fetch_one(&pool)
        .await
        .expect("cursor");
        if newest.is_some_and(|newest| cursor >= newest) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the bridge did not read the drill's events"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // ... and gave the Encounter worker time to act, were there anything queued.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        fake.encounters_with_identifier(&drill_id).is_empty(),
        "no Encounter for a drill"
    );
    assert_eq!(creates(&fake), 0, "nothing was sent");
    let (status, outcome) = api
        .fhir(&format!("/fhir/r4/Encounter/{drill_id}"), &health_system)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{outcome}");
    let (ids, _) = every_page(&api, "/fhir/r4/Encounter", &health_system).await;
    assert!(!ids.contains(&drill_id), "{ids:?}");

    // The worker hands the drill back (no rest period after a withdrawal) and takes a real one.
    api.assignment_status(
        &volunteer,
        assignment["id"].as_str().expect("id"),
        "withdrawn",
    )
    .await;
    let real = api.panic(&citizen, "medical", 0.0, None).await;
    let real_id = real["id"].as_str().expect("id").to_owned();
    assert_ne!(real_id, drill_id, "a real press never joins the open drill");
    assert_eq!(real["drill"], false);
    let offer = api.offer_for(&volunteer, &real_id).await;
    api.accept(&volunteer, &offer).await;
    until(Duration::from_secs(20), "the real Encounter", || {
        !fake.encounters_with_identifier(&real_id).is_empty()
    })
    .await;
    let (status, served) = api
        .fhir(&format!("/fhir/r4/Encounter/{real_id}"), &health_system)
        .await;
    assert_eq!(status, StatusCode::OK, "{served}");
    assert!(fake.encounters_with_identifier(&drill_id).is_empty());
}
