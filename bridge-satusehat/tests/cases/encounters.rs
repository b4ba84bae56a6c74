//! The Encounter outbox under faults: exactly once when a create times out after committing,
//! the patient referenced when the NIK resolves, outages, failing feeds, permanent rule failures,
//! the running workers (a module of the `bridge` test binary).

use std::time::Duration;

use chrono::Utc;
use kreki_auth::Role;
use kreki_bridge_satusehat::IncidentStatus;
use kreki_bridge_satusehat::fake;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::fhir_api::keep_sample;
use crate::support::{Options, event, harness, responder};
use crate::verification::verify;

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
