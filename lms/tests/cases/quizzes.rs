//! Quizzes: enrolment first, scoring with partial credit, shuffled order, one use per attempt,
//! the lock after the limit, and the certificate a pass issues (a module of the `api` test binary).

use chrono::{DateTime, Utc};
use http::StatusCode;
use kreki_auth::Role;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::problem_fields;
use crate::support::{TestApp, question_id, quiz_ids, small_answers, small_course};

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
    // The docs/API.md shape (no attempt id) obeys the same lock.
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
