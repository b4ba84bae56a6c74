//! Course versions, question banks, feedback, results and the QR code, against the real
//! PostgreSQL over HTTP (a module of the `api` test binary).

use http::StatusCode;
use kreki_auth::Role;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::support::TestApp;

/// A certifying course whose one quiz draws 2 of 4 questions; every question's right option is
/// `a`, and each explains why.
fn bank_course(title: &str) -> Value {
    let questions: Vec<Value> = (0..4)
        .map(|n| json!({"kind": "single", "prompt": format!("Soal {n}"), "explanation": format!("Karena {n}."),
                        "options": [{"text": "benar", "correct": true}, {"text": "salah"}]}))
        .collect();
    json!({
        "title": title, "certification": "first_aid",
        "modules": [{"title": "Modul", "lessons": [{"title": "Baca", "body_md": "**Tekan** kuat. <script>x()</script>"}],
                     "quizzes": [{"title": "Kuis", "pass_mark_pct": 100, "draw_count": 2, "questions": questions}]}]
    })
}

fn answers_all_a(questions: &[Value]) -> Value {
    Value::Array(
        questions
            .iter()
            .map(|q| json!({"question_id": q["id"], "selected": ["a"]}))
            .collect(),
    )
}

#[sqlx::test(migrations = "../migrations")]
async fn a_new_version_leaves_learners_on_theirs_and_banks_draw_per_attempt(pool: PgPool) {
    let app = TestApp::new(pool);
    let trainer = app.person("Pelatih", &[Role::Trainer]);
    let learner = app.person("Rina", &[Role::Volunteer]);
    let v1 = app
        .course(&trainer, bank_course("Pertolongan Pertama"))
        .await;
    let v1_id = v1["id"].as_str().expect("id").to_owned();
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["modules"][0]["quizzes"][0]["draw_count"], 2);
    let html = v1["modules"][0]["lessons"][0]["body_html"]
        .as_str()
        .expect("html");
    assert!(
        html.contains("<strong>Tekan</strong>") && !html.contains("<script"),
        "{html}"
    );

    app.enroll(&learner, &v1_id).await;
    let quiz = v1["modules"][0]["quizzes"][0]["id"]
        .as_str()
        .expect("quiz")
        .to_owned();
    let (attempt, questions) = app.start(&learner, &quiz).await;
    assert_eq!(
        questions.len(),
        2,
        "two questions drawn from the bank of four"
    );

    // Without an attempt a bank quiz cannot be answered (the learner would pick the questions).
    let (status, problem) = app
        .submit(&learner, &quiz, None, answers_all_a(&questions))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"][0]["field"], "attempt_id");

    // The trainer edits the definition into version 2 while Rina is mid-quiz.
    let (status, mut definition) = app
        .call(
            "GET",
            &format!("/v1/lms/courses/{v1_id}/definition"),
            Some(&trainer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        definition["modules"][0]["quizzes"][0]["questions"][0]["options"][0]["correct"],
        true
    );
    assert_eq!(
        definition["modules"][0]["quizzes"][0]["questions"][3]["explanation"],
        "Karena 3."
    );
    let (status, _) = app
        .call(
            "GET",
            &format!("/v1/lms/courses/{v1_id}/definition"),
            Some(&learner),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "answers are for trainers");
    definition["title"] = "Pertolongan Pertama (2027)".into();
    let (status, v2) = app
        .call(
            "POST",
            &format!("/v1/lms/courses/{v1_id}/versions"),
            Some(&trainer),
            Some(definition),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v2}");
    assert_eq!(v2["version"], 2);
    assert_eq!(v2["series_id"], v1["series_id"]);

    let (_, catalogue) = app
        .call("GET", "/v1/lms/courses", Some(&learner), None)
        .await;
    let titles: Vec<&str> = catalogue
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|c| c["title"].as_str())
        .collect();
    assert!(
        titles.contains(&"Pertolongan Pertama (2027)") && !titles.contains(&"Pertolongan Pertama"),
        "{titles:?}"
    );

    // Rina's attempt on version 1 still counts, with feedback per question, and certifies her.
    let (status, result) = app
        .submit(&learner, &quiz, Some(&attempt), answers_all_a(&questions))
        .await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!(result["passed"], true);
    assert_eq!(result["questions"].as_array().map(Vec::len), Some(2));
    assert_eq!(result["questions"][0]["correct"], true);
    assert!(
        result["questions"][0]["explanation"]
            .as_str()
            .is_some_and(|e| e.starts_with("Karena"))
    );
    assert_eq!(result["certificate"]["certification"], "first_aid");

    let (_, mine) = app
        .call("GET", "/v1/lms/enrollments/me", Some(&learner), None)
        .await;
    assert_eq!(mine[0]["course_id"], v1_id.as_str());
    assert_eq!(mine[0]["version"], 1);
    assert_eq!(mine[0]["newest_version"], 2);
    assert_eq!(mine[0]["newest_course_id"], v2["id"]);

    let (_, versions) = app
        .call(
            "GET",
            &format!("/v1/lms/courses/{v1_id}/versions"),
            Some(&trainer),
            None,
        )
        .await;
    assert_eq!(versions[0]["version"], 2);
    assert_eq!(versions[1]["enrolled"], 1);

    let (status, learners) = app
        .call(
            "GET",
            &format!("/v1/lms/courses/{v1_id}/enrollments"),
            Some(&trainer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(learners[0]["name"], "Rina");
    assert_eq!(learners[0]["quizzes"][0]["passed"], true);
    assert_eq!(learners[0]["quizzes"][0]["best_score"], 100.0);
    let (status, _) = app
        .call(
            "GET",
            &format!("/v1/lms/courses/{v1_id}/enrollments"),
            Some(&learner),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The certificate's QR code is an SVG of the public verify link.
    let code = result["certificate"]["code"].as_str().expect("code");
    let (status, _, headers, svg) = app
        .call_full(
            "GET",
            &format!("/v1/lms/certificates/verify/{code}/qr.svg"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "image/svg+xml");
    assert!(svg.starts_with("<?xml") || svg.contains("<svg"), "{svg}");
    let (status, _) = app
        .call(
            "GET",
            "/v1/lms/certificates/verify/%3Cx%3E/qr.svg",
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let mut bad = bank_course("Buruk");
    bad["modules"][0]["quizzes"][0]["draw_count"] = 9.into();
    let (status, problem) = app
        .call("POST", "/v1/lms/courses", Some(&trainer), Some(bad))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        problem["errors"][0]["field"],
        "modules[0].quizzes[0].draw_count"
    );
}
