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

mod drills;
mod flow;
mod outages;

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
