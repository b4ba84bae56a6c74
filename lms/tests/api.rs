//! Integration tests of the LMS against the real PostgreSQL: each test gets a fresh database with
//! every migration, and speaks HTTP to the routes with real access tokens. One binary: the cases
//! are in `cases/` by use case; the demo courses, the change feed and the query plans are here.

#[path = "cases/catalogue.rs"]
mod catalogue;
#[path = "cases/certificates.rs"]
mod certificates;
#[path = "cases/expiry.rs"]
mod expiry;
#[path = "cases/quizzes.rs"]
mod quizzes;
mod support;
#[path = "cases/versions.rs"]
mod versions;

use std::time::{Duration, Instant};

use certificates::record;
use chrono::Utc;
use http::StatusCode;
use kreki_auth::Role;
use serde_json::{Value, json};
use sqlx::PgPool;
use support::{TestApp, quiz_ids};

pub(crate) fn problem_fields(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|error| error["field"].as_str().map(str::to_owned))
        .collect()
}

#[sqlx::test(migrations = "../migrations")]
async fn the_demo_courses_load_once_and_certify(pool: PgPool) {
    let app = TestApp::new(pool);
    let first = kreki_lms::demo::load(&app.service, None)
        .await
        .expect("demo loads");
    let (a, b) = tokio::join!(
        kreki_lms::demo::load(&app.service, None),
        kreki_lms::demo::load(&app.service, None)
    );
    assert_eq!(a.expect("loads again"), first);
    assert_eq!(b.expect("loads again"), first);
    let learner = app.person("Relawan Satu", &[Role::Volunteer]);
    let (_, courses) = app
        .call("GET", "/v1/lms/courses", Some(&learner), None)
        .await;
    let titles: Vec<&str> = courses
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["title_en"].as_str())
        .collect();
    assert_eq!(titles, ["Basic Life Support (BLS)", "First Aid"]);

    // Take the BLS course through the API with the right answers (known from the definition).
    let definition = kreki_lms::demo::bls_course();
    let correct: std::collections::HashMap<String, Vec<String>> = definition["modules"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|m| m["quizzes"].as_array().cloned().unwrap_or_default())
        .flat_map(|q| q["questions"].as_array().cloned().unwrap_or_default())
        .map(|q| {
            let ids = q["options"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
                .filter(|(_, o)| o["correct"] == true)
                .map(|(i, _)| kreki_lms::course::option_id(i))
                .collect();
            (q["prompt"].as_str().unwrap_or_default().to_owned(), ids)
        })
        .collect();
    let bls = first[0].to_string();
    app.enroll(&learner, &bls).await;
    let (_, course) = app
        .call(
            "GET",
            &format!("/v1/lms/courses/{bls}"),
            Some(&learner),
            None,
        )
        .await;
    let quiz = &quiz_ids(&course)[0];
    let (attempt, questions) = app.start(&learner, quiz).await;
    let answers: Vec<Value> = questions
        .iter()
        .map(|q| json!({"question_id": q["id"], "selected": correct[q["prompt"].as_str().unwrap_or_default()]}))
        .collect();
    let (status, result) = app
        .submit(&learner, quiz, Some(&attempt), json!(answers))
        .await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!(result["score"], 100.0);
    assert_eq!(result["certificate"]["certification"], "bls");
    assert_eq!(
        app.service.valid_certifications(learner.id).await.ok(),
        Some(vec!["bls".to_owned()])
    );
}

/// Waits up to a second for `done`.
pub(crate) async fn wait_for(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(1);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what} did not arrive within a second"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn changes_reach_listeners_in_other_instances(pool: PgPool) {
    let app = TestApp::new(pool.clone());
    let trainer = app.person("Pelatih", &[Role::Trainer]);
    let volunteer = app.person("Budi", &[Role::Volunteer]);
    // Another instance: its own listener, hearing changes only through PostgreSQL.
    let elsewhere = std::sync::Arc::new(support::Recorder::default());
    let shutdown = kreki_platform::shutdown::CancellationToken::new();
    let forwarder = tokio::spawn(kreki_lms::changes::forward(
        pool.clone(),
        elsewhere.clone(),
        shutdown.clone(),
    ));
    wait_for("the subscription", || {
        elsewhere.resyncs.load(std::sync::atomic::Ordering::SeqCst) > 0
    })
    .await;

    let certificate = record(
        &app,
        &trainer,
        json!({"user_id": volunteer.id, "certification": "bls", "issued_at": Utc::now() - chrono::Duration::days(1), "holder_name": "Budi"}),
    )
    .await;
    wait_for("the issue", || elsewhere.changes_of(volunteer.id) == 1).await;

    let id = certificate["id"].as_str().unwrap_or_default();
    let (status, _) = app
        .call(
            "POST",
            &format!("/v1/lms/certificates/{id}/revoke"),
            Some(&trainer),
            Some(json!({"reason": "Uji"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    wait_for("the revocation", || elsewhere.changes_of(volunteer.id) == 2).await;

    sqlx::query(
        "INSERT INTO lms.certificates (id, user_id, certification, holder_name, issued_at, expires_at, code, source)
         VALUES (gen_random_uuid(), $1, 'first_aid', 'Budi', now() - interval '2 years', now() - interval '1 second', 'TEST-EXPIRED', 'external')",
    )
    .bind(volunteer.id)
    .execute(&pool)
    .await
    .expect("an expired certificate");
    assert_eq!(app.service.sweep_once().await.expect("sweep").expired, 1);
    wait_for("the expiry", || elsewhere.changes_of(volunteer.id) == 3).await;

    // A failed transaction announces nothing: a revoke of the revoked certificate is refused.
    let (status, _) = app
        .call(
            "POST",
            &format!("/v1/lms/certificates/{id}/revoke"),
            Some(&trainer),
            Some(json!({"reason": "lagi"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(elsewhere.changes_of(volunteer.id), 3);
    shutdown.cancel();
    forwarder.await.expect("the forwarder stops");
}

/// The plan of an `EXPLAIN` statement, as text.
pub(crate) async fn plan(conn: &mut sqlx::PgConnection, sql: &'static str) -> String {
    let rows: Vec<String> = sqlx::query_scalar(sql)
        .fetch_all(conn)
        .await
        .expect("explained");
    rows.join("\n")
}

#[sqlx::test(migrations = "../migrations")]
async fn sweep_and_eligibility_queries_use_their_indexes(pool: PgPool) {
    let mut conn = pool.acquire().await.expect("a connection");
    // With few rows the planner rightly scans; forbid that to see which index it can use.
    sqlx::query("SET enable_seqscan = off")
        .execute(&mut *conn)
        .await
        .expect("set");
    let claim = plan(
        &mut conn,
        "EXPLAIN SELECT id FROM lms.certificates
         WHERE expiry_processed_at IS NULL AND revoked_at IS NULL AND expires_at <= now()
         ORDER BY expires_at LIMIT 500 FOR UPDATE SKIP LOCKED",
    )
    .await;
    assert!(claim.contains("certificates_expiry_due_idx"), "{claim}");
    let next = plan(
        &mut conn,
        "EXPLAIN SELECT min(expires_at) FROM lms.certificates WHERE expiry_processed_at IS NULL AND revoked_at IS NULL",
    )
    .await;
    assert!(next.contains("certificates_expiry_due_idx"), "{next}");
    let valid = plan(
        &mut conn,
        "EXPLAIN SELECT DISTINCT certification FROM lms.certificates
         WHERE user_id = '00000000-0000-0000-0000-000000000000' AND revoked_at IS NULL AND issued_at <= now() AND expires_at > now()",
    )
    .await;
    assert!(valid.contains("certificates_user_idx"), "{valid}");
}
