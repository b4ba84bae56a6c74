//! The bridge end to end over a fresh database and the fake SATUSEHAT: practitioner verification,
//! the incident feed, the Encounter outbox under faults, and the FHIR API for health systems.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use kreki_auth::Role;
use kreki_bridge_satusehat::IncidentStatus;
use kreki_bridge_satusehat::fake;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use support::{Options, event, harness, responder};
use uuid::Uuid;

async fn verify(h: &support::Harness, user: Uuid, nik: &str) -> (StatusCode, Value) {
    let response = h
        .http
        .post(h.url("/v1/volunteers/me/practitioner-verification"))
        .bearer_auth(h.user_token(user, &[Role::Volunteer]))
        .json(&json!({ "nik": nik }))
        .send()
        .await
        .expect("answers");
    let status = response.status();
    (status, response.json().await.expect("json"))
}

#[sqlx::test(migrations = "../migrations")]
async fn practitioner_verification_outcomes(pool: PgPool) {
    let h = harness(pool, Options::default()).await;
    let (one, several, none) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());

    let (status, body) = verify(&h, one, fake::SEED_NIK_ONE).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({ "status": "verified", "ihs_number": fake::SEED_IHS_ONE })
    );

    let (status, body) = verify(&h, several, fake::SEED_NIK_SEVERAL).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({ "status": "ambiguous" }))
    );

    let (status, body) = verify(&h, none, fake::SEED_NIK_NONE).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({ "status": "not_found" }))
    );

    assert_eq!(
        h.sink.results(),
        vec![
            (one, Some(fake::SEED_IHS_ONE.to_owned())),
            (several, None),
            (none, None)
        ]
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn a_bad_nik_is_a_422_naming_nik_and_only_volunteers_may_ask(pool: PgPool) {
    let h = harness(pool, Options::default()).await;
    for bad in ["123", "31710123456789012", "317101234567890x"] {
        let (status, body) = verify(&h, Uuid::new_v4(), bad).await;
        assert_eq!(status, 422, "{bad}");
        assert_eq!(body["errors"][0]["field"], "nik", "{body}");
    }
    let response = h
        .http
        .post(h.url("/v1/volunteers/me/practitioner-verification"))
        .bearer_auth(h.user_token(Uuid::new_v4(), &[Role::Citizen]))
        .json(&json!({ "nik": fake::SEED_NIK_ONE }))
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), 403);
    let response = h
        .http
        .post(h.url("/v1/volunteers/me/practitioner-verification"))
        .json(&json!({ "nik": fake::SEED_NIK_ONE }))
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), 401);
    assert!(h.fake.requests().is_empty(), "nothing reached SATUSEHAT");

    // Asking again at once is refused without bothering SATUSEHAT.
    let user = Uuid::new_v4();
    assert_eq!(verify(&h, user, fake::SEED_NIK_ONE).await.0, 200);
    let sent = h.fake.requests().len();
    let (status, body) = verify(&h, user, fake::SEED_NIK_NONE).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(h.fake.requests().len(), sent);
}

#[sqlx::test(migrations = "../migrations")]
async fn an_unavailable_satusehat_is_retried_in_the_background(pool: PgPool) {
    let h = harness(pool, Options::default()).await;
    let user = Uuid::new_v4();
    h.fake.faults(|faults| faults.down = true);
    let (status, body) = verify(&h, user, fake::SEED_NIK_ONE).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({ "status": "unavailable" }))
    );
    assert!(h.sink.results().is_empty());

    // Still down: the retry fails and is scheduled again.
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(
        kreki_bridge_satusehat::verify::retry_due(&h.state)
            .await
            .expect("runs"),
        1
    );
    assert!(h.sink.results().is_empty());

    h.fake.faults(|faults| faults.down = false);
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(
        kreki_bridge_satusehat::verify::retry_due(&h.state)
            .await
            .expect("runs"),
        1
    );
    assert_eq!(
        h.sink.results(),
        vec![(user, Some(fake::SEED_IHS_ONE.to_owned()))]
    );
    let row = kreki_bridge_satusehat::store::practitioner(&h.state.pool, user)
        .await
        .expect("reads")
        .expect("stored");
    assert_eq!(row.status, "verified");
    assert_eq!(row.nik, None, "the NIK is not kept once SATUSEHAT answered");
    assert_eq!(
        kreki_bridge_satusehat::verify::retry_due(&h.state)
            .await
            .expect("runs"),
        0
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn an_encounter_is_created_exactly_once_when_the_create_times_out_after_commit(pool: PgPool) {
    let h = harness(
        pool,
        Options {
            timeout: Duration::from_millis(500),
            ..Options::default()
        },
    )
    .await;
    let volunteer = Uuid::new_v4();
    verify(&h, volunteer, fake::SEED_NIK_ONE).await;
    let (alert, assignment) = (Uuid::new_v4(), Uuid::new_v4());
    let start = Utc::now() - chrono::Duration::minutes(3);
    h.feed.push(event(
        alert,
        IncidentStatus::Dispatching,
        start,
        None,
        vec![],
    ));
    h.feed.push(event(
        alert,
        IncidentStatus::Assigned,
        start,
        None,
        vec![responder(volunteer, assignment, "accepted", None)],
    ));
    h.pump().await;

    h.fake.faults(|faults| {
        faults.create_commit_then_hang = 1;
        faults.hang = Duration::from_secs(3);
    });
    h.drain_outbox(4).await;

    let sent = h.fake.encounters_with_identifier(&alert.to_string());
    assert_eq!(sent.len(), 1, "exactly one Encounter: {sent:?}");
    let creates = h
        .fake
        .requests()
        .iter()
        .filter(|request| request.method == "POST" && request.path.ends_with("/Encounter"))
        .count();
    assert_eq!(
        creates, 1,
        "the retry searched and found it instead of creating again"
    );
    let encounter = &sent[0];
    assert_eq!(encounter["class"]["code"], "EMER");
    assert_eq!(
        encounter["participant"][0]["individual"]["reference"],
        format!("Practitioner/{}", fake::SEED_IHS_ONE)
    );
    assert_eq!(encounter["status"], "arrived");

    // Arrival on scene, then resolution, update it.
    h.feed.push(event(
        alert,
        IncidentStatus::OnScene,
        start,
        None,
        vec![responder(volunteer, assignment, "on_scene", None)],
    ));
    h.pump().await;
    h.drain_outbox(2).await;
    let sent = h.fake.encounters_with_identifier(&alert.to_string());
    assert_eq!(sent[0]["status"], "in-progress");
    h.feed.push(event(
        alert,
        IncidentStatus::Resolved,
        start,
        None,
        vec![responder(volunteer, assignment, "completed", None)],
    ));
    h.pump().await;
    h.drain_outbox(2).await;
    let sent = h.fake.encounters_with_identifier(&alert.to_string());
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["status"], "finished");
    assert!(
        sent[0]["period"]["end"]
            .as_str()
            .is_some_and(|end| end.ends_with('Z'))
    );
    assert_eq!(sent[0]["meta"]["versionId"], "3");
    keep_sample("satusehat-encounter-finished", &sent[0]);
}

#[sqlx::test(migrations = "../migrations")]
async fn the_patient_is_referenced_when_the_nik_resolves_and_only_practitioners_trigger_a_create(
    pool: PgPool,
) {
    let h = harness(pool, Options::default()).await;
    let (alert, plain_alert) = (Uuid::new_v4(), Uuid::new_v4());
    let now = Utc::now();
    // A volunteer who is not a verified practitioner: nothing goes to SATUSEHAT.
    h.feed.push(event(
        plain_alert,
        IncidentStatus::Assigned,
        now,
        None,
        vec![responder(Uuid::new_v4(), Uuid::new_v4(), "accepted", None)],
    ));
    // Dispatch knows this one verified (IHS number in the event).
    h.feed.push(event(
        alert,
        IncidentStatus::Assigned,
        now,
        Some(fake::SEED_PATIENT_NIK),
        vec![responder(
            Uuid::new_v4(),
            Uuid::new_v4(),
            "en_route",
            Some(fake::SEED_IHS_TWO),
        )],
    ));
    h.pump().await;
    h.drain_outbox(2).await;
    assert!(
        h.fake
            .encounters_with_identifier(&plain_alert.to_string())
            .is_empty()
    );
    let sent = h.fake.encounters_with_identifier(&alert.to_string());
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0]["subject"]["reference"],
        format!("Patient/{}", fake::SEED_PATIENT_IHS)
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn a_satusehat_outage_leaves_the_feed_consumer_healthy_and_failures_are_listed(pool: PgPool) {
    let h = harness(
        pool,
        Options {
            max_attempts: 3,
            ..Options::default()
        },
    )
    .await;
    let alert = Uuid::new_v4();
    h.fake.faults(|faults| faults.down = true);
    h.feed.push(event(
        alert,
        IncidentStatus::Assigned,
        Utc::now(),
        None,
        vec![responder(
            Uuid::new_v4(),
            Uuid::new_v4(),
            "accepted",
            Some(fake::SEED_IHS_ONE),
        )],
    ));
    h.pump().await;
    h.drain_outbox(5).await;
    // The projection went on regardless: health systems see the incident.
    let later = Uuid::new_v4();
    h.feed.push(event(
        later,
        IncidentStatus::Dispatching,
        Utc::now(),
        None,
        vec![],
    ));
    h.pump().await;
    let incident = kreki_bridge_satusehat::store::incident(&h.state.pool, later)
        .await
        .expect("reads");
    assert!(incident.is_some());

    let failures = h
        .http
        .get(h.url("/v1/fhir-sync/failures"))
        .bearer_auth(h.user_token(Uuid::new_v4(), &[Role::Coordinator]))
        .send()
        .await
        .expect("answers");
    assert_eq!(failures.status(), 200);
    let failures: Value = failures.json().await.expect("json");
    assert_eq!(failures.as_array().map(Vec::len), Some(1), "{failures}");
    assert_eq!(failures[0]["alert_id"], alert.to_string());
    assert_eq!(failures[0]["attempts"], 3);
    assert!(
        failures[0]["last_error"]
            .as_str()
            .is_some_and(|error| error.contains("503")),
        "{failures}"
    );

    // Once SATUSEHAT is back, a coordinator queues it again and it goes through.
    h.fake.faults(|faults| faults.down = false);
    let coordinator = h.user_token(Uuid::new_v4(), &[Role::Coordinator]);
    let id = failures[0]["id"].as_i64().expect("id");
    let retried = h
        .http
        .post(h.url(&format!("/v1/fhir-sync/failures/{id}/retry")))
        .bearer_auth(&coordinator)
        .send()
        .await
        .expect("answers");
    assert_eq!(retried.status(), 202);
    h.drain_outbox(2).await;
    assert_eq!(
        h.fake.encounters_with_identifier(&alert.to_string()).len(),
        1
    );
    let again = h
        .http
        .post(h.url(&format!("/v1/fhir-sync/failures/{id}/retry")))
        .bearer_auth(&coordinator)
        .send()
        .await
        .expect("answers");
    assert_eq!(again.status(), 404, "no longer failed");

    let volunteer_asks = h
        .http
        .get(h.url("/v1/fhir-sync/failures"))
        .bearer_auth(h.user_token(Uuid::new_v4(), &[Role::Volunteer]))
        .send()
        .await
        .expect("answers");
    assert_eq!(volunteer_asks.status(), 403);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_failing_feed_is_retried_without_losing_events(pool: PgPool) {
    let h = harness(pool, Options::default()).await;
    let alert = Uuid::new_v4();
    h.feed.push(event(
        alert,
        IncidentStatus::Dispatching,
        Utc::now(),
        None,
        vec![],
    ));
    *h.feed.failing.lock().expect("lock") = true;
    assert!(
        kreki_bridge_satusehat::sync::pump_once(&h.state, h.feed.as_ref())
            .await
            .is_err()
    );
    assert_eq!(
        kreki_bridge_satusehat::store::feed_cursor(&h.state.pool)
            .await
            .expect("reads"),
        0
    );
    *h.feed.failing.lock().expect("lock") = false;
    h.pump().await;
    assert_eq!(
        kreki_bridge_satusehat::store::feed_cursor(&h.state.pool)
            .await
            .expect("reads"),
        1
    );
    // Replaying an event already applied changes nothing.
    let mut replay = event(alert, IncidentStatus::Cancelled, Utc::now(), None, vec![]);
    replay.seq = 1;
    let cursor =
        kreki_bridge_satusehat::store::apply_events(&h.state.pool, &h.state.pii, &[replay], true)
            .await
            .expect("applies");
    assert_eq!(cursor, 1);
    let incident = kreki_bridge_satusehat::store::incident(&h.state.pool, alert)
        .await
        .expect("reads")
        .expect("projected");
    assert_eq!(
        (incident.status.as_str(), incident.version),
        ("dispatching", 1)
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn rule_10117_is_a_permanent_failure(pool: PgPool) {
    let h = harness(
        pool,
        Options {
            client_org: Some("99999999".to_owned()),
            ..Options::default()
        },
    )
    .await;
    let alert = Uuid::new_v4();
    h.feed.push(event(
        alert,
        IncidentStatus::Assigned,
        Utc::now(),
        None,
        vec![responder(
            Uuid::new_v4(),
            Uuid::new_v4(),
            "accepted",
            Some(fake::SEED_IHS_ONE),
        )],
    ));
    h.pump().await;
    h.drain_outbox(2).await;
    let failures = kreki_bridge_satusehat::store::failures(&h.state.pool, 10)
        .await
        .expect("reads");
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].attempts, 1, "a broken rule is not retried");
    assert!(
        failures[0]
            .last_error
            .as_deref()
            .is_some_and(|error| error.contains("10117"))
    );
    assert!(h.fake.encounters().is_empty());
}

async fn fhir_get(
    h: &support::Harness,
    url: &str,
    token: Option<&str>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut request = h.http.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("answers");
    let status = response.status();
    let headers = response.headers().clone();
    let body = if status == StatusCode::NOT_MODIFIED {
        Value::Null
    } else {
        response.json().await.expect("json")
    };
    (status, headers, body)
}

fn samples_dir() -> Option<std::path::PathBuf> {
    std::env::var_os("KREKI_FHIR_SAMPLES_DIR").map(std::path::PathBuf::from)
}

fn keep_sample(name: &str, resource: &Value) {
    if let Some(dir) = samples_dir() {
        std::fs::create_dir_all(&dir).expect("samples dir");
        std::fs::write(
            dir.join(format!("{name}.json")),
            serde_json::to_vec_pretty(resource).expect("json"),
        )
        .expect("writes");
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn health_systems_page_through_every_incident_exactly_once(pool: PgPool) {
    let h = harness(pool, Options::default()).await;
    let token = h.client_token("system/*.read");
    let day = Utc::now() - chrono::Duration::hours(1);
    let mut alerts = HashSet::new();
    for index in 0..45 {
        let alert = Uuid::new_v4();
        alerts.insert(alert.to_string());
        let status = if index % 3 == 0 {
            IncidentStatus::Resolved
        } else {
            IncidentStatus::Assigned
        };
        h.feed.push(event(
            alert,
            status,
            day + chrono::Duration::seconds(index),
            None,
            vec![],
        ));
    }
    h.pump().await;

    let mut seen = Vec::new();
    let mut url = h.url("/fhir/r4/Encounter?_count=10");
    let mut pages = 0;
    loop {
        let (status, headers, bundle) = fhir_get(&h, &url, Some(&token)).await;
        assert_eq!(status, 200, "{bundle}");
        assert_eq!(
            headers[reqwest::header::CONTENT_TYPE],
            "application/fhir+json"
        );
        assert_eq!(bundle["type"], "searchset");
        if pages == 0 {
            keep_sample("bundle-encounter-searchset", &bundle);
            // Incidents change while the client pages: no repeats, no gaps.
            let first = bundle["entry"][0]["resource"]["id"]
                .as_str()
                .expect("id")
                .parse::<Uuid>()
                .expect("uuid");
            h.feed
                .push(event(first, IncidentStatus::Resolved, day, None, vec![]));
            h.pump().await;
        }
        pages += 1;
        for entry in bundle["entry"].as_array().expect("entries") {
            seen.push(entry["resource"]["id"].as_str().expect("id").to_owned());
        }
        let next = bundle["link"]
            .as_array()
            .expect("links")
            .iter()
            .find(|link| link["relation"] == "next")
            .and_then(|link| link["url"].as_str())
            .map(str::to_owned);
        match next {
            Some(next) => url = next,
            None => break,
        }
    }
    assert_eq!(pages, 5);
    assert_eq!(seen.len(), 45);
    assert_eq!(seen.iter().cloned().collect::<HashSet<_>>(), alerts);

    // Filters.
    let (_, _, finished) = fhir_get(
        &h,
        &h.url("/fhir/r4/Encounter?status=finished&_count=100"),
        Some(&token),
    )
    .await;
    assert_eq!(finished["entry"].as_array().map(Vec::len), Some(15));
    let today = day.format("%Y-%m-%d").to_string();
    let (_, _, by_date) = fhir_get(
        &h,
        &h.url(&format!("/fhir/r4/Encounter?date=ge{today}&_count=100")),
        Some(&token),
    )
    .await;
    assert_eq!(by_date["entry"].as_array().map(Vec::len), Some(45));
    let (_, _, future) = fhir_get(
        &h,
        &h.url("/fhir/r4/Encounter?date=gt2099-01-01"),
        Some(&token),
    )
    .await;
    assert_eq!(future["entry"].as_array().map(Vec::len), Some(0));
    let since = (Utc::now() + chrono::Duration::minutes(5))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (_, _, none_updated) = fhir_get(
        &h,
        &h.url(&format!(
            "/fhir/r4/Encounter?_lastUpdated=ge{}",
            urlencode(&since)
        )),
        Some(&token),
    )
    .await;
    assert_eq!(none_updated["entry"].as_array().map(Vec::len), Some(0));
    let (status, _, outcome) = fhir_get(
        &h,
        &h.url("/fhir/r4/Encounter?date=yesterday"),
        Some(&token),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(outcome["resourceType"], "OperationOutcome");
    keep_sample("operation-outcome", &outcome);
    let (status, _, capped) =
        fhir_get(&h, &h.url("/fhir/r4/Encounter?_count=5000"), Some(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(capped["entry"].as_array().map(Vec::len), Some(45));
}

fn urlencode(text: &str) -> String {
    text.replace('+', "%2B").replace(':', "%3A")
}

#[sqlx::test(migrations = "../migrations")]
async fn resources_are_versioned_scoped_and_free_of_personal_data(pool: PgPool) {
    let h = harness(pool, Options::default()).await;
    let token = h.client_token("system/*.read");
    let (alert, volunteer, verified_volunteer) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let (assignment, verified_assignment) = (Uuid::new_v4(), Uuid::new_v4());
    verify(&h, verified_volunteer, fake::SEED_NIK_ONE).await;
    let now = Utc::now();
    h.feed.push(event(
        alert,
        IncidentStatus::Dispatching,
        now,
        Some(fake::SEED_PATIENT_NIK),
        vec![],
    ));
    h.feed.push(event(
        alert,
        IncidentStatus::OnScene,
        now,
        Some(fake::SEED_PATIENT_NIK),
        vec![
            responder(volunteer, assignment, "on_scene", None),
            responder(verified_volunteer, verified_assignment, "en_route", None),
        ],
    ));
    h.pump().await;
    h.drain_outbox(2).await;

    let (status, headers, encounter) = fhir_get(
        &h,
        &h.url(&format!("/fhir/r4/Encounter/{alert}")),
        Some(&token),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(encounter["meta"]["versionId"], "2");
    assert_eq!(headers[reqwest::header::ETAG], "W/\"2\"");
    assert_eq!(encounter["status"], "in-progress");
    assert_eq!(encounter["class"]["code"], "EMER");
    // Health systems see that a NIK was given, masked; only SATUSEHAT gets the digits.
    assert_eq!(
        encounter["subject"]["display"],
        format!("NIK ************{}", &fake::SEED_PATIENT_NIK[12..])
    );
    assert!(!encounter.to_string().contains(fake::SEED_PATIENT_NIK));
    keep_sample("encounter", &encounter);
    let unchanged = h
        .http
        .get(h.url(&format!("/fhir/r4/Encounter/{alert}")))
        .bearer_auth(&token)
        .header(reqwest::header::IF_NONE_MATCH, "W/\"2\"")
        .send()
        .await
        .expect("answers");
    assert_eq!(unchanged.status(), 304);

    let (status, _, location) = fhir_get(
        &h,
        &h.url(&format!("/fhir/r4/Location/{alert}")),
        Some(&token),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(location["position"]["latitude"], -6.2);
    keep_sample("location", &location);

    let (status, _, tasks) = fhir_get(
        &h,
        &h.url(&format!("/fhir/r4/Task?focus=Encounter/{alert}")),
        Some(&token),
    )
    .await;
    assert_eq!(status, 200);
    let tasks = tasks["entry"].as_array().expect("entries").clone();
    assert_eq!(tasks.len(), 2);
    let owners: Vec<&Value> = tasks
        .iter()
        .map(|entry| &entry["resource"]["owner"])
        .collect();
    assert!(
        owners
            .iter()
            .any(|owner| owner["identifier"]["value"] == fake::SEED_IHS_ONE)
    );
    assert!(
        owners
            .iter()
            .any(|owner| owner["identifier"]["value"] == volunteer.to_string())
    );
    let (status, _, task) = fhir_get(
        &h,
        &h.url(&format!("/fhir/r4/Task/{verified_assignment}")),
        Some(&token),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(task["status"], "in-progress");
    assert_eq!(task["focus"]["reference"], format!("Encounter/{alert}"));
    keep_sample("task", &task);

    let (status, _, capability) = fhir_get(&h, &h.url("/fhir/r4/metadata"), None).await;
    assert_eq!(status, 200);
    assert_eq!(capability["fhirVersion"], "4.0.1");
    keep_sample("capability-statement", &capability);
    for (index, sent) in h.fake.encounters().iter().enumerate() {
        keep_sample(&format!("satusehat-encounter-{index}"), sent);
    }
    assert_eq!(h.fake.encounters().len(), 1);

    // Nothing personal beyond the NIK: no names, no phone numbers.
    for body in [&encounter, &location, &task] {
        let text = body.to_string();
        assert!(
            !text.contains("Tester") && !text.contains("+62") && !text.contains("phone"),
            "{text}"
        );
    }

    // Missing ids and unknown ids are OperationOutcomes.
    let (status, headers, missing) =
        fhir_get(&h, &h.url("/fhir/r4/Encounter/not-a-uuid"), Some(&token)).await;
    assert_eq!(status, 404);
    assert_eq!(
        headers[reqwest::header::CONTENT_TYPE],
        "application/fhir+json"
    );
    assert_eq!(missing["resourceType"], "OperationOutcome");
    let (status, _, _) = fhir_get(
        &h,
        &h.url(&format!("/fhir/r4/Task/{}", Uuid::new_v4())),
        Some(&token),
    )
    .await;
    assert_eq!(status, 404);
}

#[sqlx::test(migrations = "../migrations")]
async fn scopes_are_enforced(pool: PgPool) {
    let h = harness(pool, Options::default()).await;
    let alert = Uuid::new_v4();
    h.feed.push(event(
        alert,
        IncidentStatus::Dispatching,
        Utc::now(),
        None,
        vec![],
    ));
    h.pump().await;
    let url = h.url(&format!("/fhir/r4/Encounter/{alert}"));

    let (status, headers, outcome) = fhir_get(&h, &url, None).await;
    assert_eq!(status, 401);
    assert_eq!(outcome["resourceType"], "OperationOutcome");
    assert!(headers.contains_key(reqwest::header::WWW_AUTHENTICATE));

    let (status, _, outcome) = fhir_get(&h, &url, Some(&h.client_token("system/Task.read"))).await;
    assert_eq!(status, 403, "{outcome}");
    assert_eq!(outcome["issue"][0]["code"], "forbidden");

    let (status, _, _) = fhir_get(
        &h,
        &url,
        Some(&h.user_token(Uuid::new_v4(), &[Role::Admin])),
    )
    .await;
    assert_eq!(status, 403, "people use the KREKI API, not the FHIR API");

    let (status, _, _) = fhir_get(&h, &url, Some(&h.client_token("system/Encounter.read"))).await;
    assert_eq!(status, 200);
    let (status, _, _) = fhir_get(
        &h,
        &h.url(&format!("/fhir/r4/Location/{alert}")),
        Some(&h.client_token("system/Encounter.read")),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _, _) = fhir_get(&h, &url, Some("garbage")).await;
    assert_eq!(status, 401);
}

#[sqlx::test(migrations = "../migrations")]
async fn the_running_workers_send_the_encounter_once_satusehat_is_back(pool: PgPool) {
    let h = harness(
        pool,
        Options {
            max_attempts: 50,
            ..Options::default()
        },
    )
    .await;
    let shutdown = kreki_platform::shutdown::CancellationToken::new();
    let workers = kreki_bridge_satusehat::spawn_workers(&h.state, h.feed.clone(), &shutdown);
    h.fake.faults(|faults| faults.down = true);
    let alert = Uuid::new_v4();
    h.feed.push(event(
        alert,
        IncidentStatus::Assigned,
        Utc::now(),
        None,
        vec![responder(
            Uuid::new_v4(),
            Uuid::new_v4(),
            "accepted",
            Some(fake::SEED_IHS_ONE),
        )],
    ));

    // The feed is consumed while SATUSEHAT is down.
    let mut projected = false;
    for _ in 0..100 {
        if kreki_bridge_satusehat::store::incident(&h.state.pool, alert)
            .await
            .expect("reads")
            .is_some()
        {
            projected = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(projected, "the feed consumer kept going");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(h.fake.encounters().is_empty());
    assert!(
        h.fake
            .requests()
            .iter()
            .any(|request| request.status == 503),
        "it tried"
    );

    h.fake.faults(|faults| faults.down = false);
    let mut sent = Vec::new();
    for _ in 0..250 {
        sent = h.fake.encounters_with_identifier(&alert.to_string());
        if !sent.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(sent.len(), 1, "sent once SATUSEHAT answered again");
    shutdown.cancel();
    for worker in workers {
        tokio::time::timeout(Duration::from_secs(5), worker)
            .await
            .expect("workers stop on shutdown")
            .expect("workers did not panic");
    }
    assert!(
        kreki_bridge_satusehat::store::failures(&h.state.pool, 10)
            .await
            .expect("reads")
            .is_empty()
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn two_workers_never_send_one_change_twice(pool: PgPool) {
    let h = harness(pool, Options::default()).await;
    h.fake
        .faults(|faults| faults.delay = Duration::from_millis(100));
    let alerts: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
    for alert in &alerts {
        h.feed.push(event(
            *alert,
            IncidentStatus::Assigned,
            Utc::now(),
            None,
            vec![responder(
                Uuid::new_v4(),
                Uuid::new_v4(),
                "accepted",
                Some(fake::SEED_IHS_ONE),
            )],
        ));
    }
    h.pump().await;
    let (first, second) = tokio::join!(
        kreki_bridge_satusehat::sync::work_once(&h.state),
        kreki_bridge_satusehat::sync::work_once(&h.state)
    );
    assert_eq!(
        first.expect("works") + second.expect("works"),
        5,
        "each row claimed once"
    );
    for alert in &alerts {
        assert_eq!(
            h.fake.encounters_with_identifier(&alert.to_string()).len(),
            1
        );
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn a_practitioner_who_withdrew_before_the_sync_is_not_a_failure(pool: PgPool) {
    let h = harness(pool, Options::default()).await;
    let (alert, volunteer, assignment) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let now = Utc::now();
    h.feed.push(event(
        alert,
        IncidentStatus::Assigned,
        now,
        None,
        vec![responder(
            volunteer,
            assignment,
            "accepted",
            Some(fake::SEED_IHS_ONE),
        )],
    ));
    h.feed.push(event(
        alert,
        IncidentStatus::Cancelled,
        now,
        None,
        vec![responder(
            volunteer,
            assignment,
            "withdrawn",
            Some(fake::SEED_IHS_ONE),
        )],
    ));
    h.pump().await;
    h.drain_outbox(2).await;
    assert!(h.fake.encounters().is_empty());
    assert!(
        kreki_bridge_satusehat::store::failures(&h.state.pool, 10)
            .await
            .expect("reads")
            .is_empty()
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn a_drill_is_never_an_encounter_nor_served_to_health_systems(pool: PgPool) {
    let h = harness(pool, Options::default()).await;
    let token = h.client_token("system/*.read");
    let volunteer = Uuid::new_v4();
    verify(&h, volunteer, fake::SEED_NIK_ONE).await;
    let (drill, real) = (Uuid::new_v4(), Uuid::new_v4());
    let now = Utc::now();
    // The same story twice, a verified practitioner on each: one a drill, one real.
    for (alert, is_drill) in [(drill, true), (real, false)] {
        let assignment = Uuid::new_v4();
        for (status, responders) in [
            (IncidentStatus::Dispatching, vec![]),
            (
                IncidentStatus::Assigned,
                vec![responder(volunteer, assignment, "accepted", None)],
            ),
            (
                IncidentStatus::Resolved,
                vec![responder(volunteer, assignment, "completed", None)],
            ),
        ] {
            let mut change = event(alert, status, now, Some(fake::SEED_PATIENT_NIK), responders);
            change.drill = is_drill;
            h.feed.push(change);
        }
    }
    h.pump().await;
    h.drain_outbox(3).await;

    assert!(
        h.fake
            .encounters_with_identifier(&drill.to_string())
            .is_empty(),
        "no Encounter for a drill"
    );
    assert_eq!(
        h.fake.encounters_with_identifier(&real.to_string()).len(),
        1,
        "the real incident is recorded (the test can tell the two apart)"
    );
    let queued: i64 =
        sqlx::query_scalar("SELECT count(*) FROM bridge.encounter_outbox WHERE alert_id = $1")
            .bind(drill)
            .fetch_one(&h.state.pool)
            .await
            .expect("count");
    assert_eq!(queued, 0, "nothing queued for the drill");

    let (status, _, outcome) = fhir_get(
        &h,
        &h.url(&format!("/fhir/r4/Encounter/{drill}")),
        Some(&token),
    )
    .await;
    assert_eq!(status, 404, "{outcome}");
    assert_eq!(outcome["resourceType"], "OperationOutcome");
    let (status, _, served) = fhir_get(
        &h,
        &h.url(&format!("/fhir/r4/Encounter/{real}")),
        Some(&token),
    )
    .await;
    assert_eq!(status, 200, "{served}");
    let (status, _, bundle) = fhir_get(&h, &h.url("/fhir/r4/Encounter"), Some(&token)).await;
    assert_eq!(status, 200, "{bundle}");
    let listed = bundle.to_string();
    assert!(!listed.contains(&drill.to_string()), "{listed}");
    assert!(listed.contains(&real.to_string()), "{listed}");
    let (status, _, location) = fhir_get(
        &h,
        &h.url(&format!("/fhir/r4/Location/{drill}")),
        Some(&token),
    )
    .await;
    assert_eq!(status, 404, "{location}");
    let (status, _, tasks) = fhir_get(
        &h,
        &h.url(&format!("/fhir/r4/Task?focus=Encounter/{drill}")),
        Some(&token),
    )
    .await;
    assert_eq!(status, 200, "{tasks}");
    assert!(
        tasks["entry"].as_array().is_none_or(Vec::is_empty),
        "{tasks}"
    );
    // The cursor moved past the drill's events: they are not read again.
    let cursor: i64 = sqlx::query_scalar("SELECT last_seq FROM bridge.feed_cursor")
        .fetch_one(&h.state.pool)
        .await
        .expect("cursor");
    assert_eq!(cursor, 6);
}
