//! Integration tests of the LMS against the real PostgreSQL: each test gets a fresh database with
//! every migration, and speaks HTTP to the routes with real access tokens.

mod support;
#[path = "cases/versions.rs"]
mod versions;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use http::StatusCode;
use kreki_auth::Role;
use serde_json::{Value, json};
use sqlx::PgPool;
use support::{TestApp, question_id, quiz_ids, small_answers, small_course};

fn problem_fields(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|error| error["field"].as_str().map(str::to_owned))
        .collect()
}

#[sqlx::test(migrations = "../migrations")]
async fn the_catalogue_is_seeded_and_only_admins_extend_it(pool: PgPool) {
    let app = TestApp::new(pool);
    let (status, list) = app.call("GET", "/v1/lms/certifications", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let codes: Vec<&str> = list
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["code"].as_str())
        .collect();
    for code in ["bls", "disaster_response", "fire_basic", "first_aid"] {
        assert!(codes.contains(&code), "{codes:?}");
    }
    let trainer = app.person("Pelatih", &[Role::Trainer]);
    let admin = app.person("Admin", &[Role::Admin]);
    let new = json!({"code": "water_rescue", "name": "Penyelamatan Air", "validity_days": 365});
    let (status, _) = app
        .call(
            "POST",
            "/v1/lms/certifications",
            Some(&trainer),
            Some(new.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .call("POST", "/v1/lms/certifications", None, Some(new.clone()))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, added) = app
        .call(
            "POST",
            "/v1/lms/certifications",
            Some(&admin),
            Some(new.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    assert_eq!(added["validity_days"], 365);
    let (status, _) = app
        .call("POST", "/v1/lms/certifications", Some(&admin), Some(new))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, body) = app
        .call(
            "POST",
            "/v1/lms/certifications",
            Some(&admin),
            Some(json!({"code": "Bad Code", "name": "", "validity_days": 0})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem_fields(&body), vec!["code"]);
}

#[sqlx::test(migrations = "../migrations")]
async fn only_trainers_author_courses_and_answers_never_leak(pool: PgPool) {
    let app = TestApp::new(pool);
    let volunteer = app.person("Relawan", &[Role::Volunteer]);
    let trainer = app.person("Pelatih", &[Role::Trainer]);
    let admin = app.person("Admin", &[Role::Admin]);
    let (status, _) = app
        .call(
            "POST",
            "/v1/lms/courses",
            Some(&volunteer),
            Some(small_course(None, 3, 0)),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let course = app.course(&trainer, small_course(Some("bls"), 3, 0)).await;
    app.course(&admin, small_course(None, 3, 0)).await;
    let text = course.to_string();
    assert!(!text.contains("correct"), "answers leaked: {text}");
    assert_eq!(course["certification"], "bls");

    let (status, listed) = app
        .call("GET", "/v1/lms/courses", Some(&volunteer), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed.as_array().map(Vec::len), Some(2));
    assert!(!listed.to_string().contains("correct"));
    let id = course["id"].as_str().unwrap_or_default();
    let (status, one) = app
        .call(
            "GET",
            &format!("/v1/lms/courses/{id}"),
            Some(&volunteer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        one["modules"][0]["quizzes"][0]["questions"][1]["options"][2]["id"],
        "c"
    );
    let (status, _) = app.call("GET", "/v1/lms/courses", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Broken definitions are 422s naming the field by path.
    let mut broken = small_course(Some("no_such_cert"), 3, 0);
    let (status, body) = app
        .call(
            "POST",
            "/v1/lms/courses",
            Some(&trainer),
            Some(broken.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem_fields(&body), vec!["certification"]);
    broken["certification"] = Value::Null;
    broken["modules"][0]["quizzes"][0]["questions"][0]["options"][0]["correct"] = true.into();
    let (status, body) = app
        .call(
            "POST",
            "/v1/lms/courses",
            Some(&trainer),
            Some(broken.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        problem_fields(&body),
        vec!["modules[0].quizzes[0].questions[0].options"]
    );
    broken["modules"][0]["quizzes"][0]["questions"][0]["kind"] = "essay".into();
    let (status, body) = app
        .call("POST", "/v1/lms/courses", Some(&trainer), Some(broken))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        problem_fields(&body),
        vec!["modules[0].quizzes[0].questions[0].kind"]
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn attempts_need_an_enrollment(pool: PgPool) {
    let app = TestApp::new(pool);
    let trainer = app.person("Pelatih", &[Role::Trainer]);
    let learner = app.person("Sari", &[Role::Volunteer]);
    let course = app.course(&trainer, small_course(None, 3, 0)).await;
    let quiz = &quiz_ids(&course)[0];
    let (status, body) = app
        .call(
            "POST",
            &format!("/v1/lms/quizzes/{quiz}/attempts/start"),
            Some(&learner),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _) = app.submit(&learner, quiz, None, json!([])).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let unknown = uuid::Uuid::now_v7();
    let (status, _) = app
        .call(
            "POST",
            &format!("/v1/lms/quizzes/{unknown}/attempts/start"),
            Some(&learner),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = app
        .call(
            "POST",
            "/v1/lms/quizzes/not-a-uuid/attempts/start",
            Some(&learner),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Enrolling is idempotent: 201, then 200.
    let id = course["id"].as_str().unwrap_or_default();
    let path = format!("/v1/lms/courses/{id}/enroll");
    assert_eq!(
        app.call("POST", &path, Some(&learner), None).await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        app.call("POST", &path, Some(&learner), None).await.0,
        StatusCode::OK
    );
    let (status, started) = app
        .call(
            "POST",
            &format!("/v1/lms/quizzes/{quiz}/attempts/start"),
            Some(&learner),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(!started.to_string().contains("correct"));
}

#[sqlx::test(migrations = "../migrations")]
async fn scoring_gives_partial_credit_for_multiple_choice(pool: PgPool) {
    let app = TestApp::new(pool);
    let trainer = app.person("Pelatih", &[Role::Trainer]);
    let learner = app.person("Sari", &[Role::Volunteer]);
    let course = app.course(&trainer, small_course(None, 20, 0)).await;
    let quiz = &quiz_ids(&course)[0];
    app.enroll(&learner, course["id"].as_str().unwrap_or_default())
        .await;

    // (q0 choices, q1 choices, expected score, passed): q0 is worth 1 point, q1 2 points with
    // per-option credit of 1/2 per correct option and -1/2 per wrong one, never below zero.
    let cases: [(&[&str], &[&str], f64, bool); 6] = [
        (&["b"], &["a", "c"], 100.0, true),
        (&["b"], &["a"], 66.7, true),
        (&["b"], &["a", "b"], 33.3, false),
        (&["a"], &["a", "c"], 66.7, true),
        (&["b"], &["b", "d"], 33.3, false),
        (&[], &["a", "b", "c", "d"], 0.0, false),
    ];
    for (q0, q1, score, passed) in cases {
        let (attempt, questions) = app.start(&learner, quiz).await;
        let (status, result) = app
            .submit(
                &learner,
                quiz,
                Some(&attempt),
                small_answers(&questions, q0, q1),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{result}");
        assert!(
            (result["score"].as_f64().unwrap_or(-1.0) - score).abs() < 0.05,
            "{q0:?} {q1:?}: {result}"
        );
        assert_eq!(result["passed"], passed, "{q0:?} {q1:?}: {result}");
    }

    // Answers that do not fit the quiz are 422s naming them.
    let (attempt, questions) = app.start(&learner, quiz).await;
    let q0 = question_id(&questions, "Q0");
    let answers = json!([
        {"question_id": q0, "selected": ["a", "b"]},
        {"question_id": uuid::Uuid::now_v7(), "selected": ["a"]},
        {"question_id": question_id(&questions, "Q1"), "selected": ["z"]},
    ]);
    let (status, body) = app.submit(&learner, quiz, Some(&attempt), answers).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        problem_fields(&body),
        vec![
            "answers",
            "answers[0].selected",
            "answers[1].question_id",
            "answers[2].selected[0]"
        ]
    );
    // The rejected submission did not use up the attempt.
    let (status, _) = app
        .submit(
            &learner,
            quiz,
            Some(&attempt),
            small_answers(&questions, &["b"], &["a", "c"]),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[sqlx::test(migrations = "../migrations")]
async fn question_order_is_shuffled_per_attempt(pool: PgPool) {
    let app = TestApp::new(pool);
    let trainer = app.person("Pelatih", &[Role::Trainer]);
    let learner = app.person("Sari", &[Role::Volunteer]);
    let questions: Vec<Value> = (0..8)
        .map(|n| json!({"kind": "single", "prompt": format!("P{n}"), "options": [{"text": "ya", "correct": true}, {"text": "tidak"}]}))
        .collect();
    let course = app
        .course(
            &trainer,
            json!({"title": "Acak", "modules": [{"title": "M", "quizzes": [
                {"title": "K", "pass_mark_pct": 50, "max_attempts": 100, "cooldown_s": 0, "questions": questions}
            ]}]}),
        )
        .await;
    let quiz = &quiz_ids(&course)[0];
    app.enroll(&learner, course["id"].as_str().unwrap_or_default())
        .await;
    let mut orders = std::collections::HashSet::new();
    for _ in 0..4 {
        let (attempt, questions) = app.start(&learner, quiz).await;
        // Starting again while open returns the same attempt in the same order.
        let (again, same) = app.start(&learner, quiz).await;
        assert_eq!(attempt, again);
        assert_eq!(questions, same);
        let order: Vec<String> = questions
            .iter()
            .filter_map(|q| q["prompt"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(order.len(), 8);
        orders.insert(order);
        let (status, _) = app.submit(&learner, quiz, Some(&attempt), json!([])).await;
        assert_eq!(status, StatusCode::OK);
    }
    // 4 attempts of 8! orders: all equal has probability 1/40320^3.
    assert!(orders.len() > 1, "question order never changed");
}

#[sqlx::test(migrations = "../migrations")]
async fn replayed_or_altered_attempt_ids_are_refused(pool: PgPool) {
    let app = TestApp::new(pool);
    let trainer = app.person("Pelatih", &[Role::Trainer]);
    let sari = app.person("Sari", &[Role::Volunteer]);
    let budi = app.person("Budi", &[Role::Volunteer]);
    let course = app.course(&trainer, small_course(None, 20, 0)).await;
    let other = app.course(&trainer, small_course(None, 20, 0)).await;
    let quiz = &quiz_ids(&course)[0];
    let other_quiz = &quiz_ids(&other)[0];
    for person in [&sari, &budi] {
        app.enroll(person, course["id"].as_str().unwrap_or_default())
            .await;
        app.enroll(person, other["id"].as_str().unwrap_or_default())
            .await;
    }
    let (attempt, questions) = app.start(&sari, quiz).await;
    let good = small_answers(&questions, &["b"], &["a", "c"]);

    // Someone else's attempt: 404, as if it did not exist.
    let (status, _) = app.submit(&budi, quiz, Some(&attempt), good.clone()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // An attempt of another quiz: 404.
    let (status, _) = app
        .submit(&sari, other_quiz, Some(&attempt), json!([]))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A made-up attempt id: 404.
    let made_up = uuid::Uuid::now_v7().to_string();
    let (status, _) = app.submit(&sari, quiz, Some(&made_up), good.clone()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Scored once; the replay is a 409.
    let (status, first) = app.submit(&sari, quiz, Some(&attempt), good.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first["passed"], true);
    let (status, body) = app.submit(&sari, quiz, Some(&attempt), good.clone()).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(problem_fields(&body), vec!["attempt_id"]);
    // An attempt not submitted in time: 409.
    let (late, questions) = app.start(&sari, quiz).await;
    sqlx::query("UPDATE lms.attempts SET started_at = started_at - interval '2 hours', expires_at = now() - interval '1 second' WHERE id = $1::uuid")
        .bind(&late)
        .execute(&app.pool)
        .await
        .expect("the attempt is aged");
    let (status, body) = app
        .submit(
            &sari,
            quiz,
            Some(&late),
            small_answers(&questions, &["b"], &["a"]),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["type"]
            .as_str()
            .unwrap_or_default()
            .ends_with("attempt-expired")
    );
    // Concurrent submissions of one attempt: exactly one is scored.
    let (attempt, questions) = app.start(&budi, quiz).await;
    let answers = small_answers(&questions, &["b"], &["a", "c"]);
    let (a, b) = tokio::join!(
        app.submit(&budi, quiz, Some(&attempt), answers.clone()),
        app.submit(&budi, quiz, Some(&attempt), answers.clone()),
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::CONFLICT]);
}

#[sqlx::test(migrations = "../migrations")]
async fn attempts_lock_after_the_limit_until_the_cool_down_ends(pool: PgPool) {
    let app = TestApp::new(pool);
    let trainer = app.person("Pelatih", &[Role::Trainer]);
    let learner = app.person("Sari", &[Role::Volunteer]);
    let course = app.course(&trainer, small_course(None, 2, 3600)).await;
    let quiz = &quiz_ids(&course)[0];
    app.enroll(&learner, course["id"].as_str().unwrap_or_default())
        .await;
    for _ in 0..2 {
        let (attempt, _) = app.start(&learner, quiz).await;
        let (status, result) = app.submit(&learner, quiz, Some(&attempt), json!([])).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(result["passed"], false);
    }
    let (status, body, headers, _) = app
        .call_full(
            "POST",
            &format!("/v1/lms/quizzes/{quiz}/attempts/start"),
            Some(&learner),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let (status, standing) = app
        .call(
            "GET",
            &format!("/v1/lms/quizzes/{quiz}/attempts/me"),
            Some(&learner),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(standing["attempts_left"], 0);
    assert!(standing["locked_until"].is_string(), "{standing}");
    assert_eq!(standing["attempts"].as_array().map(Vec::len), Some(2));
    let retry_after: u64 = headers
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(
        (3500..=3600).contains(&retry_after),
        "Retry-After {retry_after}"
    );
    // The API.md shape (no attempt id) obeys the same lock.
    let (status, _) = app.submit(&learner, quiz, None, json!([])).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);

    // An hour later the quiz opens again for a new round.
    sqlx::query("UPDATE lms.attempts SET started_at = started_at - interval '61 minutes', submitted_at = submitted_at - interval '61 minutes', expires_at = expires_at - interval '61 minutes'")
        .execute(&app.pool)
        .await
        .expect("attempts are aged");
    let (_, standing) = app
        .call(
            "GET",
            &format!("/v1/lms/quizzes/{quiz}/attempts/me"),
            Some(&learner),
            None,
        )
        .await;
    assert_eq!(standing["attempts_left"], 2, "{standing}");
    assert!(standing["locked_until"].is_null());
    let (attempt, questions) = app.start(&learner, quiz).await;
    let (status, result) = app
        .submit(
            &learner,
            quiz,
            Some(&attempt),
            small_answers(&questions, &["b"], &["a", "c"]),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(result["passed"], true);
}

#[sqlx::test(migrations = "../migrations")]
async fn answers_without_an_attempt_id_are_scored_under_the_same_rules(pool: PgPool) {
    let app = TestApp::new(pool);
    let trainer = app.person("Pelatih", &[Role::Trainer]);
    let learner = app.person("Sari", &[Role::Volunteer]);
    let course = app
        .course(&trainer, small_course(Some("first_aid"), 1, 600))
        .await;
    let quiz = &quiz_ids(&course)[0];
    let questions = course["modules"][0]["quizzes"][0]["questions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    app.enroll(&learner, course["id"].as_str().unwrap_or_default())
        .await;
    let (status, result) = app
        .submit(&learner, quiz, None, small_answers(&questions, &["a"], &[]))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(result["passed"], false);
    let (status, _) = app
        .submit(
            &learner,
            quiz,
            None,
            small_answers(&questions, &["b"], &["a", "c"]),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

#[sqlx::test(migrations = "../migrations")]
async fn passing_every_quiz_issues_the_certificate(pool: PgPool) {
    let app = TestApp::new(pool);
    let trainer = app.person("Pelatih", &[Role::Trainer]);
    let learner = app.person("Sari Wulandari", &[Role::Volunteer]);
    let mut definition = small_course(Some("bls"), 5, 0);
    let second_quiz = definition["modules"][0]["quizzes"][0].clone();
    definition["modules"]
        .as_array_mut()
        .expect("modules")
        .push(json!({"title": "Modul 2", "quizzes": [second_quiz]}));
    let course = app.course(&trainer, definition).await;
    let course_id = course["id"].as_str().unwrap_or_default().to_owned();
    let quizzes = quiz_ids(&course);
    assert_eq!(quizzes.len(), 2);
    app.enroll(&learner, &course_id).await;

    let pass = |quiz: String| {
        let app = &app;
        let learner = &learner;
        async move {
            let (attempt, questions) = app.start(learner, &quiz).await;
            let (status, result) = app
                .submit(
                    learner,
                    &quiz,
                    Some(&attempt),
                    small_answers(&questions, &["b"], &["a", "c"]),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{result}");
            result
        }
    };
    let first = pass(quizzes[0].clone()).await;
    assert_eq!(first["passed"], true);
    assert!(
        first["certificate"].is_null(),
        "one quiz of two is not the course"
    );
    assert_eq!(
        app.service.valid_certifications(learner.id).await.ok(),
        Some(vec![])
    );
    assert_eq!(app.recorder.changes_of(learner.id), 0);

    let second = pass(quizzes[1].clone()).await;
    let certificate = &second["certificate"];
    assert_eq!(certificate["certification"], "bls");
    assert_eq!(certificate["holder_name"], "Sari Wulandari");
    assert_eq!(certificate["status"], "valid");
    assert_eq!(certificate["source"], "course");
    let issued: DateTime<Utc> =
        serde_json::from_value(certificate["issued_at"].clone()).expect("a time");
    let expires: DateTime<Utc> =
        serde_json::from_value(certificate["expires_at"].clone()).expect("a time");
    assert_eq!((expires - issued).num_days(), 730);
    assert_eq!(app.recorder.changes_of(learner.id), 1);
    assert_eq!(
        app.service.valid_certifications(learner.id).await.ok(),
        Some(vec!["bls".to_owned()])
    );
    let all = app
        .service
        .all_valid_certifications()
        .await
        .expect("all valid");
    assert_eq!(all.get(&learner.id), Some(&vec!["bls".to_owned()]));

    let (status, mine) = app
        .call("GET", "/v1/lms/certificates/me", Some(&learner), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(mine.as_array().map(Vec::len), Some(1));
    let (_, progress) = app
        .call(
            "GET",
            &format!("/v1/lms/courses/{course_id}/progress"),
            Some(&learner),
            None,
        )
        .await;
    assert!(progress["completed_at"].is_string(), "{progress}");
    assert_eq!(
        progress["quizzes_passed"].as_array().map(Vec::len),
        Some(0),
        "a new cycle starts"
    );

    // Passing a quiz again does not issue a second certificate: a renewal needs the whole course.
    let again = pass(quizzes[1].clone()).await;
    assert!(again["certificate"].is_null());
    let (_, mine) = app
        .call("GET", "/v1/lms/certificates/me", Some(&learner), None)
        .await;
    assert_eq!(mine.as_array().map(Vec::len), Some(1));
}

#[sqlx::test(migrations = "../migrations")]
async fn lessons_track_progress(pool: PgPool) {
    let app = TestApp::new(pool);
    let trainer = app.person("Pelatih", &[Role::Trainer]);
    let learner = app.person("Sari", &[Role::Volunteer]);
    let course = app.course(&trainer, small_course(None, 3, 0)).await;
    let course_id = course["id"].as_str().unwrap_or_default();
    let lesson = course["modules"][0]["lessons"][0]["id"]
        .as_str()
        .unwrap_or_default();
    let path = format!("/v1/lms/lessons/{lesson}/complete");
    assert_eq!(
        app.call("POST", &path, Some(&learner), None).await.0,
        StatusCode::FORBIDDEN
    );
    app.enroll(&learner, course_id).await;
    for _ in 0..2 {
        let (status, progress) = app.call("POST", &path, Some(&learner), None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(progress["lessons_completed"], json!([lesson]));
        assert_eq!(progress["lessons_total"], 2);
        assert_eq!(progress["quizzes_total"], 1);
    }
}

/// Records a certificate earned elsewhere, as a trainer, and answers it.
async fn record(app: &TestApp, trainer: &support::Person, body: Value) -> Value {
    let (status, certificate) = app
        .call("POST", "/v1/lms/certificates", Some(trainer), Some(body))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{certificate}");
    certificate
}

#[sqlx::test(migrations = "../migrations")]
async fn trainers_record_certificates_earned_elsewhere(pool: PgPool) {
    let app = TestApp::new(pool);
    let trainer = app.person("Pelatih", &[Role::Trainer]);
    let volunteer = app.person("Budi", &[Role::Volunteer]);
    let issued_at = Utc::now() - chrono::Duration::days(10);
    let body = json!({
        "user_id": volunteer.id, "certification": "bls", "issued_at": issued_at,
        "evidence": "Kartu BLS PMI No. 12345", "holder_name": "Budi Santoso"
    });
    let (status, _) = app
        .call(
            "POST",
            "/v1/lms/certificates",
            Some(&volunteer),
            Some(body.clone()),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "volunteers cannot certify themselves"
    );

    let mut unknown = body.clone();
    unknown["certification"] = "astronaut".into();
    unknown["issued_at"] = json!(Utc::now() + chrono::Duration::days(2));
    let (status, problem) = app
        .call(
            "POST",
            "/v1/lms/certificates",
            Some(&trainer),
            Some(unknown),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem_fields(&problem), vec!["issued_at", "certification"]);

    // Someone with no KREKI ID account cannot be certified: the field says which.
    let mut stranger = body.clone();
    stranger["user_id"] = json!(uuid::Uuid::now_v7());
    stranger
        .as_object_mut()
        .expect("object")
        .remove("holder_name");
    let (status, problem) = app
        .call(
            "POST",
            "/v1/lms/certificates",
            Some(&trainer),
            Some(stranger),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem_fields(&problem), vec!["user_id"]);

    app.recorder.clear();
    let certificate = record(&app, &trainer, body).await;
    assert_eq!(certificate["source"], "external");
    assert_eq!(certificate["evidence"], "Kartu BLS PMI No. 12345");
    assert_eq!(
        certificate["holder_name"], "Budi Santoso",
        "a given name is printed"
    );
    assert_eq!(app.recorder.changes_of(volunteer.id), 1);
    assert_eq!(
        app.service.valid_certifications(volunteer.id).await.ok(),
        Some(vec!["bls".to_owned()])
    );
}

/// Exactly the body API.md names (`user_id`, `certification`, `issued_at`, `expires_at`,
/// `evidence`) for someone who never opened the LMS: the name comes from KREKI ID.
#[sqlx::test(migrations = "../migrations")]
async fn the_contract_body_records_a_certificate_for_someone_new_to_the_lms(pool: PgPool) {
    let app = TestApp::new(pool);
    let trainer = app.person("Pelatih", &[Role::Trainer]);
    let newcomer = app.person("Siti Rahayu", &[Role::Volunteer]);
    let issued_at = Utc::now() - chrono::Duration::days(30);
    let expires_at = Utc::now() + chrono::Duration::days(700);
    let (status, certificate) = app
        .call(
            "POST",
            "/v1/lms/certificates",
            Some(&trainer),
            Some(json!({
                "user_id": newcomer.id, "certification": "bls", "issued_at": issued_at,
                "expires_at": expires_at, "evidence": "Sertifikat BLS RS Cipto No. 88/2026"
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{certificate}");
    assert_eq!(certificate["holder_name"], "Siti Rahayu");
    assert_eq!(certificate["status"], "valid");
    let code = certificate["code"].as_str().unwrap_or_default();
    let (status, verified) = app
        .call(
            "GET",
            &format!("/v1/lms/certificates/verify/{code}"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(verified["holder_name"], "Siti Rahayu");
    assert_eq!(verified["valid"], true);
}

#[sqlx::test(migrations = "../migrations")]
async fn revocation_removes_eligibility_at_once(pool: PgPool) {
    let app = TestApp::new(pool);
    let trainer = app.person("Pelatih", &[Role::Trainer]);
    let volunteer = app.person("Budi", &[Role::Volunteer]);
    let certificate = record(
        &app,
        &trainer,
        json!({"user_id": volunteer.id, "certification": "bls", "issued_at": Utc::now() - chrono::Duration::days(1), "holder_name": "Budi"}),
    )
    .await;
    let code = certificate["code"].as_str().unwrap_or_default();
    // The trainer finds the certificate among the volunteer's.
    let listing = format!("/v1/lms/users/{}/certificates", volunteer.id);
    let (status, _) = app.call("GET", &listing, Some(&volunteer), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, listed) = app.call("GET", &listing, Some(&trainer), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed[0]["code"], code);
    let id = listed[0]["id"].as_str().unwrap_or_default();
    let path = format!("/v1/lms/certificates/{id}/revoke");
    app.recorder.clear();

    let (status, _) = app
        .call(
            "POST",
            &path,
            Some(&volunteer),
            Some(json!({"reason": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, problem) = app
        .call("POST", &path, Some(&trainer), Some(json!({"reason": "  "})))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem_fields(&problem), vec!["reason"]);
    assert_eq!(app.recorder.changes_of(volunteer.id), 0);

    let (status, revoked) = app
        .call(
            "POST",
            &path,
            Some(&trainer),
            Some(json!({"reason": "Kartu palsu"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert_eq!(revoked["status"], "revoked");
    assert_eq!(revoked["revoked_reason"], "Kartu palsu");
    assert_eq!(app.recorder.changes_of(volunteer.id), 1);
    assert_eq!(
        app.service.valid_certifications(volunteer.id).await.ok(),
        Some(vec![])
    );
    assert!(
        app.service
            .all_valid_certifications()
            .await
            .expect("all")
            .is_empty()
    );

    let (status, _) = app
        .call(
            "POST",
            &path,
            Some(&trainer),
            Some(json!({"reason": "lagi"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let unknown = uuid::Uuid::now_v7();
    let (status, _) = app
        .call(
            "POST",
            &format!("/v1/lms/certificates/{unknown}/revoke"),
            Some(&trainer),
            Some(json!({"reason": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, verify) = app
        .call(
            "GET",
            &format!("/v1/lms/certificates/verify/{code}"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(verify["valid"], false);
    assert_eq!(verify["status"], "revoked");
    assert!(
        !verify.to_string().contains("Kartu palsu"),
        "the reason stays private"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn verify_tells_valid_expired_revoked_and_unknown_apart(pool: PgPool) {
    let app = TestApp::new(pool);
    let trainer = app.person("Pelatih", &[Role::Trainer]);
    let volunteer = app.person("Budi", &[Role::Volunteer]);
    let now = Utc::now();
    let valid = record(
        &app,
        &trainer,
        json!({"user_id": volunteer.id, "certification": "bls", "issued_at": now - chrono::Duration::days(1),
               "holder_name": "Budi <Santoso>", "evidence": "rahasia"}),
    )
    .await;
    let expired = record(
        &app,
        &trainer,
        json!({"user_id": volunteer.id, "certification": "first_aid", "issued_at": now - chrono::Duration::days(800),
               "expires_at": now - chrono::Duration::days(70), "holder_name": "Budi"}),
    )
    .await;
    let code = valid["code"].as_str().unwrap_or_default();
    let (status, body) = app
        .call(
            "GET",
            &format!("/v1/lms/certificates/verify/{code}"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["valid"], true);
    assert_eq!(body["status"], "valid");
    assert_eq!(body["certification"], "bls");
    assert_eq!(body["holder_name"], "Budi <Santoso>");
    let mut keys: Vec<&String> = body
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    keys.sort();
    assert_eq!(
        keys,
        [
            "certification",
            "certification_name",
            "expires_at",
            "holder_name",
            "issued_at",
            "status",
            "valid"
        ]
    );
    // Typed from paper: lower case, spaces, O for 0 and I for 1.
    let typed = code
        .to_lowercase()
        .replace('0', "o")
        .replace('1', "i")
        .replace('-', " - ");
    let (status, body) = app
        .call(
            "GET",
            &format!("/v1/lms/certificates/verify/{}", typed.replace(' ', "%20")),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{typed}");
    assert_eq!(body["valid"], true);

    let code = expired["code"].as_str().unwrap_or_default();
    let (status, body) = app
        .call(
            "GET",
            &format!("/v1/lms/certificates/verify/{code}"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["valid"], false);
    assert_eq!(body["status"], "expired");

    let (status, body) = app
        .call(
            "GET",
            "/v1/lms/certificates/verify/AAAAAA-BBBBBB-CCCCCC-DDDDDD",
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["status"], 404);

    // Opened in a browser, the verify link answers a page.
    let (status, _, headers, html) = app
        .call_html(&format!(
            "/v1/lms/certificates/verify/{}",
            valid["code"].as_str().unwrap_or_default()
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers[http::header::CONTENT_TYPE]
            .to_str()
            .unwrap_or_default()
            .starts_with("text/html")
    );
    assert!(
        html.contains("SAH / VALID") && html.contains("Budi &lt;Santoso&gt;"),
        "{html}"
    );
    let (status, _, _, html) = app
        .call_html("/v1/lms/certificates/verify/AAAAAA-BBBBBB-CCCCCC-DDDDDD")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains("Unknown code"));

    // The printable page: for the holder and trainers, escaped, with the verify link.
    let id = valid["id"].as_str().unwrap_or_default();
    let (status, _, headers, html) = app
        .call_full(
            "GET",
            &format!("/v1/lms/certificates/{id}/print"),
            Some(&volunteer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers[http::header::CONTENT_TYPE]
            .to_str()
            .unwrap_or_default()
            .starts_with("text/html")
    );
    let code = valid["code"].as_str().unwrap_or_default();
    assert!(html.contains(&format!(
        "https://kreki.example.id/v1/lms/certificates/verify/{code}"
    )));
    assert!(html.contains("Budi &lt;Santoso&gt;") && !html.contains("<Santoso>"));
    assert!(
        html.contains("<svg"),
        "the QR code of the verify link is printed"
    );
    let stranger = app.person("Orang lain", &[Role::Volunteer]);
    let (status, _) = app
        .call(
            "GET",
            &format!("/v1/lms/certificates/{id}/print"),
            Some(&stranger),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .call(
            "GET",
            &format!("/v1/lms/certificates/{id}/print"),
            Some(&trainer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[sqlx::test(migrations = "../migrations")]
async fn the_sweep_acts_on_expiry_within_a_second_and_only_once(pool: PgPool) {
    let app = TestApp::new(pool);
    let trainer = app.person("Pelatih", &[Role::Trainer]);
    let volunteer = app.person("Budi", &[Role::Volunteer]);
    let shutdown = kreki_platform::shutdown::CancellationToken::new();
    let worker = tokio::spawn(kreki_lms::worker::run(
        app.service.clone(),
        shutdown.clone(),
    ));
    // Let the worker plan its first (long) sleep, so the issue below has to wake it.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let expires_at = Utc::now() + chrono::Duration::seconds(2);
    record(
        &app,
        &trainer,
        json!({"user_id": volunteer.id, "certification": "bls", "issued_at": Utc::now() - chrono::Duration::days(700),
               "expires_at": expires_at, "holder_name": "Budi"}),
    )
    .await;
    record(
        &app,
        &trainer,
        json!({"user_id": volunteer.id, "certification": "first_aid", "issued_at": Utc::now() - chrono::Duration::days(1), "holder_name": "Budi"}),
    )
    .await;
    assert_eq!(
        app.service.valid_certifications(volunteer.id).await.ok(),
        Some(vec!["bls".to_owned(), "first_aid".to_owned()])
    );
    app.recorder.clear();

    let deadline = Instant::now() + Duration::from_secs(6);
    while app.recorder.changes_of(volunteer.id) == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let noticed = Utc::now();
    assert_eq!(
        app.recorder.changes_of(volunteer.id),
        1,
        "the listener heard of the expiry"
    );
    let lag = noticed - expires_at;
    assert!(
        lag < chrono::Duration::seconds(1),
        "noticed {lag} after the expiry"
    );
    assert_eq!(
        app.service.valid_certifications(volunteer.id).await.ok(),
        Some(vec!["first_aid".to_owned()]),
        "bls lapsed; first aid still counts"
    );
    shutdown.cancel();
    worker.await.expect("the worker stops");

    // Acted on once: further sweeps, even two at once, find nothing.
    let (a, b) = tokio::join!(app.service.sweep_once(), app.service.sweep_once());
    assert_eq!(a.expect("sweep").expired + b.expect("sweep").expired, 0);
    assert_eq!(app.recorder.changes_of(volunteer.id), 1);
}

#[sqlx::test(migrations = "../migrations")]
async fn concurrent_sweeps_claim_each_expiry_once(pool: PgPool) {
    let app = TestApp::new(pool);
    let mut people = Vec::new();
    for n in 0..20 {
        let person = app.person(&format!("Relawan {n}"), &[Role::Volunteer]);
        sqlx::query(
            "INSERT INTO lms.certificates (id, user_id, certification, holder_name, issued_at, expires_at, code, source)
             VALUES (gen_random_uuid(), $1, 'bls', 'x', now() - interval '2 years', now() - interval '1 minute', $2, 'external')",
        )
        .bind(person.id)
        .bind(format!("TEST-{n}"))
        .execute(&app.pool)
        .await
        .expect("an expired certificate");
        people.push(person);
    }
    let (a, b, c) = tokio::join!(
        app.service.sweep_once(),
        app.service.sweep_once(),
        app.service.sweep_once()
    );
    let total = a.expect("sweep").expired + b.expect("sweep").expired + c.expect("sweep").expired;
    assert_eq!(total, 20);
    for person in &people {
        assert_eq!(app.recorder.changes_of(person.id), 1);
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn reminders_are_stored_and_delivered_once(pool: PgPool) {
    let app = TestApp::new(pool);
    let trainer = app.person("Pelatih", &[Role::Trainer]);
    let soon = app.person("Budi", &[Role::Volunteer]);
    let later = app.person("Sari", &[Role::Volunteer]);
    let renewed = app.person("Dewi", &[Role::Volunteer]);
    let now = Utc::now();
    let cert = |user: uuid::Uuid, days: i64, issued_days_ago: i64| {
        json!({"user_id": user, "certification": "bls", "issued_at": now - chrono::Duration::days(issued_days_ago),
               "expires_at": now + chrono::Duration::days(days), "holder_name": "X"})
    };
    let expiring = record(&app, &trainer, cert(soon.id, 5, 700)).await;
    record(&app, &trainer, cert(later.id, 25, 700)).await;
    record(&app, &trainer, cert(renewed.id, 3, 700)).await;
    record(&app, &trainer, cert(renewed.id, 700, 1)).await;

    let (a, b) = tokio::join!(app.service.sweep_once(), app.service.sweep_once());
    assert_eq!(a.expect("sweep").reminders + b.expect("sweep").reminders, 2);
    let notes = app.recorder.notes_of(soon.id);
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0]["type"], "certificate.expiring");
    assert_eq!(notes[0]["days_before"], 7);
    assert_eq!(notes[0]["certificate_id"], expiring["id"]);
    assert!(
        notes[0]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("WIB")
    );
    assert_eq!(app.recorder.notes_of(later.id)[0]["days_before"], 30);
    assert!(
        app.recorder.notes_of(renewed.id).is_empty(),
        "a renewed certificate needs no reminder"
    );

    assert_eq!(app.service.sweep_once().await.expect("sweep").reminders, 0);
    // Four days later the 1-day reminder is due.
    sqlx::query(
        "UPDATE lms.certificates SET expires_at = now() + interval '20 hours' WHERE user_id = $1",
    )
    .bind(soon.id)
    .execute(&app.pool)
    .await
    .expect("time passes");
    assert_eq!(app.service.sweep_once().await.expect("sweep").reminders, 1);

    let (status, stored) = app
        .call("GET", "/v1/lms/notifications/me", Some(&soon), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let kinds: Vec<&str> = stored
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["expiry_1d", "expiry_7d"]);
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
async fn wait_for(what: &str, done: impl Fn() -> bool) {
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
async fn plan(conn: &mut sqlx::PgConnection, sql: &'static str) -> String {
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
