//! The certification catalogue and course authoring: who may extend and author them, and that
//! answers never leave the server (a module of the `api` test binary).

use http::StatusCode;
use kreki_auth::Role;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::problem_fields;
use crate::support::{TestApp, small_course};

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
