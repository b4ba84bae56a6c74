//! The coordinators' operations centre: regions and who answers for them, triage of panics from
//! accounts a region does not trust yet (release by a coordinator, or by itself in time), the
//! panic limit, escalations that stay until acknowledged, notes and phoned-in alerts.

pub mod common;

use std::time::Duration;

use common::{MONAS, Person, TestApp, alert_body, offset};
use http::{Method, StatusCode};
use kreki_auth::{Role, Trust};
use kreki_dispatch::config::DispatchConfig;
use serde_json::{Value, json};
use sqlx::PgPool;

const WAIT: Duration = Duration::from_secs(10);

/// A square polygon of `size` degrees with its south-west corner at (lat, lng).
fn square(lat: f64, lng: f64, size: f64) -> Value {
    json!({"type": "Polygon", "coordinates": [[
        [lng, lat], [lng + size, lat], [lng + size, lat + size], [lng, lat + size], [lng, lat]
    ]]})
}

/// Jakarta Pusat around Monas, and a region east of it.
async fn two_regions(app: &TestApp, admin: &Person) -> (String, String) {
    let (status, centre) = app
        .call(
            Method::POST,
            "/v1/regions",
            Some(admin),
            Some(json!({"name": "Jakarta Pusat", "area": square(-6.25, 106.75, 0.12)})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{centre}");
    let (status, east) = app
        .call(
            Method::POST,
            "/v1/regions",
            Some(admin),
            Some(json!({"name": "Jakarta Timur", "area": square(-6.25, 106.87, 0.12)})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{east}");
    (
        centre["id"].as_str().expect("an id").to_owned(),
        east["id"].as_str().expect("an id").to_owned(),
    )
}

async fn started(pool: PgPool, config: DispatchConfig) -> TestApp {
    let mut app = TestApp::with_config(pool, config).await;
    app.start_workers();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !app.service.is_dispatching() {
        assert!(tokio::time::Instant::now() < deadline, "never dispatching");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    app
}

async fn timeline_types(app: &TestApp, who: &Person, alert: &str) -> Vec<String> {
    let (status, timeline) = app
        .call(
            Method::GET,
            &format!("/v1/alerts/{alert}/timeline"),
            Some(who),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{timeline}");
    timeline
        .as_array()
        .expect("a list")
        .iter()
        .map(|event| event["type"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn open_escalations(app: &TestApp, who: &Person) -> Vec<Value> {
    let (status, list) = app
        .call(Method::GET, "/v1/escalations?status=open", Some(who), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list.as_array().expect("a list").clone()
}

#[sqlx::test(migrations = "../migrations")]
async fn a_new_accounts_panic_waits_in_triage_until_a_coordinator_releases_it(pool: PgPool) {
    let app = started(pool, DispatchConfig::default()).await;
    let admin = app.person("Admin", &[Role::Admin]);
    two_regions(&app, &admin).await;
    let coordinator = app.person("Kord", &[Role::Coordinator]);
    let (lat, lng) = offset(MONAS.0, MONAS.1, 200.0, 0.0);
    let volunteer = app.volunteer_at("Relawan", lat, lng, &["first_aid"]).await;
    let citizen = app.person_trusted("Baru", &[Role::Citizen], Trust::New);

    let (status, alert) = app
        .panic(&citizen, "t-1", alert_body("medical", MONAS))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{alert}");
    assert_eq!(alert["status"], "triage");
    assert!(alert["region_id"].is_string(), "{alert}");
    let id = alert["id"].as_str().expect("an id");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        app.notifier.to_user(volunteer.id, "offer").is_empty(),
        "nobody is alerted while the alert is in triage"
    );
    let escalations = open_escalations(&app, &coordinator).await;
    assert_eq!(escalations.len(), 1, "{escalations:?}");
    assert_eq!(escalations[0]["reason"], "triage_waiting");
    assert_eq!(escalations[0]["alert_id"], id);
    assert!(
        !app.notifier
            .to_role(Role::Coordinator, "escalation")
            .is_empty(),
        "coordinators heard of it at once"
    );

    let (status, released) = app
        .call(
            Method::POST,
            &format!("/v1/alerts/{id}/release"),
            Some(&coordinator),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{released}");
    assert_eq!(released["status"], "dispatching");
    assert!(
        !app.notifier.to_user(volunteer.id, "offer").is_empty(),
        "the first wave went out before the release was answered"
    );
    assert!(open_escalations(&app, &coordinator).await.is_empty());
    let (status, again) = app
        .call(
            Method::POST,
            &format!("/v1/alerts/{id}/release"),
            Some(&coordinator),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    let types = timeline_types(&app, &coordinator, id).await;
    for expected in ["created", "triaged", "released", "offers_sent"] {
        assert!(
            types.iter().any(|t| t == expected),
            "{expected} in {types:?}"
        );
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn triage_nobody_touches_releases_itself_and_trusted_accounts_go_at_once(pool: PgPool) {
    let config = DispatchConfig {
        triage_auto_release_s: 1,
        ..DispatchConfig::default()
    };
    let app = started(pool, config).await;
    let admin = app.person("Admin", &[Role::Admin]);
    two_regions(&app, &admin).await;
    let coordinator = app.person("Kord", &[Role::Coordinator]);
    let (lat, lng) = offset(MONAS.0, MONAS.1, 200.0, 0.0);
    let volunteer = app.volunteer_at("Relawan", lat, lng, &["first_aid"]).await;
    let firefighter = app.volunteer_at("Pemadam", lat, lng, &["fire_basic"]).await;

    let trusted = app.person_trusted("Lama", &[Role::Citizen], Trust::Trusted);
    let (status, alert) = app.panic(&trusted, "t-2", alert_body("fire", MONAS)).await;
    assert_eq!(status, StatusCode::CREATED, "{alert}");
    assert_eq!(
        alert["status"], "dispatching",
        "a trusted account's panic goes at once"
    );
    assert!(
        !app.notifier.to_user(firefighter.id, "offer").is_empty(),
        "offered with the 201"
    );

    let citizen = app.person_trusted("Baru", &[Role::Citizen], Trust::New);
    let (status, alert) = app
        .panic(&citizen, "t-3", alert_body("medical", MONAS))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{alert}");
    assert_eq!(alert["status"], "triage");
    let id = alert["id"].as_str().expect("an id");
    let offer = app
        .notifier
        .wait_for_user(volunteer.id, "offer", WAIT)
        .await
        .expect("the alert released itself and was offered");
    assert_eq!(offer["offer"]["alert"]["id"], id);
    let types = timeline_types(&app, &coordinator, id).await;
    assert!(types.iter().any(|t| t == "released"), "{types:?}");
    let (_, timeline) = app
        .call(
            Method::GET,
            &format!("/v1/alerts/{id}/timeline"),
            Some(&coordinator),
            None,
        )
        .await;
    let released = timeline
        .as_array()
        .and_then(|events| events.iter().find(|e| e["type"] == "released"))
        .expect("a released entry")
        .clone();
    assert!(
        released["data"]["by"].is_null(),
        "nobody released it: {released}"
    );
    // Nobody looked at it: the escalation stays until someone acknowledges it.
    let open = open_escalations(&app, &coordinator).await;
    assert!(
        open.iter()
            .any(|e| e["alert_id"] == id && e["reason"] == "triage_waiting"),
        "{open:?}"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn blocked_accounts_and_the_eleventh_panic_in_a_minute_are_refused(pool: PgPool) {
    let app = started(pool, DispatchConfig::default()).await;
    let blocked = app.person_trusted("Iseng", &[Role::Citizen], Trust::Blocked);
    let (status, problem) = app
        .panic(&blocked, "b-1", alert_body("medical", MONAS))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");

    let citizen = app.person_trusted("Cepat", &[Role::Citizen], Trust::Trusted);
    for n in 0..10 {
        // Far apart, so no press attaches to an earlier one.
        let at = offset(MONAS.0, MONAS.1, 1000.0 * f64::from(n), 0.0);
        let (status, body) = app
            .panic(&citizen, &format!("r-{n}"), alert_body("other", at))
            .await;
        assert!(status.is_success(), "press {n}: {status} {body}");
    }
    let (status, problem) = app
        .call_with(
            Method::POST,
            "/v1/alerts",
            Some(&citizen),
            Some(alert_body("other", MONAS)),
            &[("idempotency-key", "r-10")],
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{problem}");
    assert_eq!(problem["status"], 429);
    let told = app.notifier.to_role(Role::Coordinator, "panic.limited");
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0]["citizen"]["id"], citizen.id.to_string());
    assert!(
        told[0]["retry_after_s"]
            .as_u64()
            .is_some_and(|s| (1..=60).contains(&s))
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn a_regional_coordinator_neither_sees_nor_acts_on_another_regions_alert(pool: PgPool) {
    let app = started(pool, DispatchConfig::default()).await;
    let admin = app.person("Admin", &[Role::Admin]);
    let (centre, east) = two_regions(&app, &admin).await;
    let ani = app.person("Ani", &[Role::Coordinator]);
    let budi = app.person("Budi", &[Role::Coordinator]);
    let national = app.person("Nasional", &[Role::Coordinator]);
    for (region, who) in [(&centre, &ani), (&east, &budi)] {
        let (status, body) = app
            .call(
                Method::PUT,
                &format!("/v1/regions/{region}/coordinators"),
                Some(&admin),
                Some(json!({"user_ids": [who.id]})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["coordinator_ids"], json!([who.id]));
    }
    let citizen = app.person_trusted("Warga", &[Role::Citizen], Trust::Trusted);
    let (_, in_east) = app
        .panic(&citizen, "e-1", alert_body("fire", (-6.20, 106.93)))
        .await;
    assert_eq!(in_east["region_id"], json!(east));
    let id = in_east["id"].as_str().expect("an id");

    for (method, path, body) in [
        (Method::GET, format!("/v1/alerts/{id}"), None),
        (Method::GET, format!("/v1/alerts/{id}/timeline"), None),
        (
            Method::POST,
            format!("/v1/alerts/{id}/notes"),
            Some(json!({"text": "x"})),
        ),
        (Method::POST, format!("/v1/alerts/{id}/cancel"), None),
        (
            Method::POST,
            format!("/v1/alerts/{id}/resolve"),
            Some(json!({"outcome": "false_alarm"})),
        ),
    ] {
        let (status, problem) = app.call(method.clone(), &path, Some(&ani), body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {problem}");
    }
    let (_, listed) = app.call(Method::GET, "/v1/alerts", Some(&ani), None).await;
    assert!(listed.as_array().expect("a list").is_empty(), "{listed}");
    let (_, listed) = app.call(Method::GET, "/v1/alerts", Some(&budi), None).await;
    assert_eq!(listed.as_array().expect("a list").len(), 1);
    let (_, listed) = app
        .call(Method::GET, "/v1/alerts", Some(&national), None)
        .await;
    assert_eq!(listed.as_array().expect("a list").len(), 1);
    let (status, _) = app
        .call(Method::GET, &format!("/v1/alerts/{id}"), Some(&budi), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, regions) = app.call(Method::GET, "/v1/regions", Some(&ani), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(regions.as_array().expect("a list").len(), 2);
    // Only admins define regions.
    let (status, _) = app
        .call(
            Method::POST,
            "/v1/regions",
            Some(&ani),
            Some(json!({"name": "X", "area": square(0.0, 100.0, 1.0)})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[sqlx::test(migrations = "../migrations")]
async fn an_unmatched_alert_escalates_until_acknowledged(pool: PgPool) {
    let app = started(pool, DispatchConfig::default()).await;
    let coordinator = app.person("Kord", &[Role::Coordinator]);
    let citizen = app.citizen("Sendiri");
    let (status, alert) = app
        .panic(&citizen, "u-1", alert_body("medical", MONAS))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{alert}");
    assert_eq!(alert["status"], "unmatched", "nobody is on duty");
    let id = alert["id"].as_str().expect("an id");
    let open = open_escalations(&app, &coordinator).await;
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["reason"], "unmatched");
    let escalation = open[0]["id"].as_str().expect("an id").to_owned();
    let announced = app.notifier.to_role(Role::Coordinator, "escalation");
    assert!(
        announced
            .iter()
            .any(|m| m["escalation"]["id"] == escalation.as_str()),
        "{announced:?}"
    );

    let volunteer = app.person("Relawan", &[Role::Volunteer]);
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/v1/escalations/{escalation}/ack"),
            Some(&volunteer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, acked) = app
        .call(
            Method::POST,
            &format!("/v1/escalations/{escalation}/ack"),
            Some(&coordinator),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{acked}");
    assert_eq!(acked["acknowledged_by"], coordinator.id.to_string());
    assert!(open_escalations(&app, &coordinator).await.is_empty());
    let (status, again) = app
        .call(
            Method::POST,
            &format!("/v1/escalations/{escalation}/ack"),
            Some(&coordinator),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    let types = timeline_types(&app, &coordinator, id).await;
    assert!(
        types.iter().any(|t| t == "escalation_acknowledged"),
        "{types:?}"
    );
    let (status, all) = app
        .call(Method::GET, "/v1/escalations", Some(&coordinator), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(all.as_array().expect("a list").len(), 1);
}

#[sqlx::test(migrations = "../migrations")]
async fn notes_phoned_in_alerts_and_a_false_alarm_closed_from_triage_are_on_the_timeline(
    pool: PgPool,
) {
    let app = started(pool, DispatchConfig::default()).await;
    let admin = app.person("Admin", &[Role::Admin]);
    two_regions(&app, &admin).await;
    let coordinator = app.person("Kord", &[Role::Coordinator]);
    let (lat, lng) = offset(MONAS.0, MONAS.1, 200.0, 0.0);
    let volunteer = app.volunteer_at("Relawan", lat, lng, &["first_aid"]).await;

    let body = json!({"kind": "accident", "location": {"lat": MONAS.0, "lng": MONAS.1},
                      "note": "tabrakan motor", "caller_phone": "0812-3456-7890"});
    let (status, phoned) = app
        .call_with(
            Method::POST,
            "/v1/coordinator/alerts",
            Some(&coordinator),
            Some(body.clone()),
            &[("idempotency-key", "call-1")],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{phoned}");
    assert_eq!(
        phoned["status"], "dispatching",
        "a phoned-in alert is never triaged"
    );
    let id = phoned["id"].as_str().expect("an id");
    app.notifier
        .wait_for_user(volunteer.id, "offer", WAIT)
        .await
        .expect("the phoned-in alert was offered");
    let (status, retry) = app
        .call_with(
            Method::POST,
            "/v1/coordinator/alerts",
            Some(&coordinator),
            Some(body),
            &[("idempotency-key", "call-1")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "a retry is the same alert: {retry}");
    assert_eq!(retry["id"], id);
    let (status, note) = app
        .call(
            Method::POST,
            &format!("/v1/alerts/{id}/notes"),
            Some(&coordinator),
            Some(json!({"text": "Penelepon: korban sadar"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{note}");
    assert_eq!(note["type"], "note");
    assert_eq!(note["data"]["text"], "Penelepon: korban sadar");
    let types = timeline_types(&app, &coordinator, id).await;
    for expected in ["created", "phoned_in", "offers_sent", "note"] {
        assert!(
            types.iter().any(|t| t == expected),
            "{expected} in {types:?}"
        );
    }

    let citizen = app.person_trusted("Iseng", &[Role::Citizen], Trust::New);
    let (_, triaged) = app
        .panic(
            &citizen,
            "f-1",
            alert_body("medical", offset(MONAS.0, MONAS.1, 0.0, 900.0)),
        )
        .await;
    assert_eq!(triaged["status"], "triage");
    let id = triaged["id"].as_str().expect("an id");
    let (status, closed) = app
        .call(
            Method::POST,
            &format!("/v1/alerts/{id}/resolve"),
            Some(&coordinator),
            Some(json!({"outcome": "false_alarm", "note": "tidak ada orang"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{closed}");
    assert_eq!(closed["status"], "resolved");
    assert_eq!(closed["outcome"], "false_alarm");
    assert!(
        open_escalations(&app, &coordinator).await.is_empty(),
        "closing it dealt with its triage escalation"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn bad_regions_notes_and_phoned_in_alerts_name_the_field(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let admin = app.person("Admin", &[Role::Admin]);
    let cases = [
        (json!({"name": "", "area": square(0.0, 100.0, 1.0)}), "name"),
        (
            json!({"name": "A", "area": {"type": "Point", "coordinates": [1, 2]}}),
            "area",
        ),
        (
            json!({"name": "A", "area": {"type": "Polygon", "coordinates": [[[100, 0], [101, 0], [101, 1], [100, 0.5]]]}}),
            "area.coordinates[0]",
        ),
        (
            // A bow tie: its edges cross.
            json!({"name": "A", "area": {"type": "Polygon", "coordinates": [[[100, 0], [101, 1], [101, 0], [100, 1], [100, 0]]]}}),
            "area",
        ),
    ];
    for (body, field) in cases {
        let (status, problem) = app
            .call(
                Method::POST,
                "/v1/regions",
                Some(&admin),
                Some(body.clone()),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {problem}"
        );
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
    let (status, _) = app
        .call(
            Method::POST,
            "/v1/regions",
            Some(&admin),
            Some(json!({"name": "Dua", "area": square(0.0, 100.0, 1.0)})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, problem) = app
        .call(
            Method::POST,
            "/v1/regions",
            Some(&admin),
            Some(json!({"name": "Dua", "area": square(2.0, 100.0, 1.0)})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");

    let coordinator = app.person("Kord", &[Role::Coordinator]);
    let (status, problem) = app
        .call_with(
            Method::POST,
            "/v1/coordinator/alerts",
            Some(&coordinator),
            Some(json!({"kind": "fire", "location": {"lat": 95, "lng": 106.8}, "caller_phone": "12"})),
            &[("idempotency-key", "bad-1")],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(fields, ["location.lat", "caller_phone"]);
    let (status, problem) = app
        .call(
            Method::GET,
            "/v1/escalations?status=closed",
            Some(&coordinator),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "status");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_coordinator_sends_an_unmatched_alert_wider_and_records_a_hand_off(pool: PgPool) {
    let app = started(pool, DispatchConfig::default()).await;
    let coordinator = app.person("Kord", &[Role::Coordinator]);
    let (lat, lng) = offset(MONAS.0, MONAS.1, 0.0, 6000.0);
    let far = app.volunteer_at("Jauh", lat, lng, &[]).await;
    let citizen = app.citizen("Warga");
    let (_, alert) = app.panic(&citizen, "w-1", alert_body("other", MONAS)).await;
    assert_eq!(
        alert["status"], "unmatched",
        "6 km is beyond the waves: {alert}"
    );
    let id = alert["id"].as_str().expect("an id");

    for (radius, why) in [
        (json!(5000), "not wider"),
        (json!(200_000), "too wide"),
        (json!("x"), "not a number"),
    ] {
        let (status, problem) = app
            .call(
                Method::POST,
                &format!("/v1/alerts/{id}/redispatch"),
                Some(&coordinator),
                Some(json!({"radius_m": radius})),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{why}: {problem}");
    }
    let (status, again) = app
        .call(
            Method::POST,
            &format!("/v1/alerts/{id}/redispatch"),
            Some(&coordinator),
            Some(json!({"radius_m": 8000})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["status"], "dispatching");
    assert!(
        !app.notifier.to_user(far.id, "offer").is_empty(),
        "the wider wave went out before the answer"
    );
    assert!(
        open_escalations(&app, &coordinator).await.is_empty(),
        "sending it wider dealt with the unmatched escalation"
    );

    let (status, problem) = app
        .call(
            Method::POST,
            &format!("/v1/alerts/{id}/handoff"),
            Some(&coordinator),
            Some(json!({"to": "911", "reference": ""})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(fields, ["to", "reference"]);
    let (status, entry) = app
        .call(
            Method::POST,
            &format!("/v1/alerts/{id}/handoff"),
            Some(&coordinator),
            Some(json!({"to": "psc119", "reference": "PSC-2026-0412"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{entry}");
    assert_eq!(entry["type"], "handed_off");
    let types = timeline_types(&app, &coordinator, id).await;
    for expected in ["unmatched", "redispatched", "offers_sent", "handed_off"] {
        assert!(
            types.iter().any(|t| t == expected),
            "{expected} in {types:?}"
        );
    }
}
