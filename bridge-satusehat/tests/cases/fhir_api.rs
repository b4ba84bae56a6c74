//! The FHIR API for health systems: paging through every incident once, versions, scopes and no
//! personal data; drills never served (a module of the `bridge` test binary).

use std::collections::HashSet;

use chrono::Utc;
use kreki_auth::Role;
use kreki_bridge_satusehat::IncidentStatus;
use kreki_bridge_satusehat::fake;
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::{self, Options, event, harness, responder};
use crate::verification::verify;

pub(crate) async fn fhir_get(
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

pub(crate) fn samples_dir() -> Option<std::path::PathBuf> {
    std::env::var_os("KREKI_FHIR_SAMPLES_DIR").map(std::path::PathBuf::from)
}

pub(crate) fn keep_sample(name: &str, resource: &Value) {
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
