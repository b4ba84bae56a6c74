//! Training and certification through the real `kreki` process: a trainer made with the CLI
//! authors a course, a citizen passes it and holds a certificate anyone can verify, and the expiry
//! sweep running inside `kreki serve` acts on a lapse within a second.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::support::{Server, TempDir, database_url, kreki, signing_key};

async fn login(client: &reqwest::Client, base: &str, phone: &str, password: &str) -> String {
    let response = client
        .post(format!("{base}/v1/auth/login"))
        .json(&json!({"login": phone, "password": password}))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("JSON");
    body["access_token"].as_str().expect("a token").to_owned()
}

async fn send(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = client.request(method, url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("answered");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[sqlx::test(migrations = false)]
async fn a_citizen_passes_a_course_and_a_lapse_is_acted_on_at_once(pool: PgPool) {
    let dir = TempDir::new();
    let key = signing_key(&dir.0);
    let url = database_url(&pool);
    let env = vec![
        ("KREKI_DATABASE__URL", url.clone()),
        ("KREKI_AUTH__SIGNING_KEY_FILE", key.display().to_string()),
    ];
    let server = Server::start(&env).await;
    let created = kreki()
        .args([
            "user",
            "create",
            "--phone",
            "0811-5555-0001",
            "--password",
            "pelatih-rahasia",
        ])
        .args(["--name", "Pelatih Satu", "--role", "trainer"])
        .env("KREKI_DATABASE__URL", &url)
        .output()
        .expect("runs");
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let client = reqwest::Client::new();
    let base = &server.base;
    let trainer = login(&client, base, "081155550001", "pelatih-rahasia").await;
    let (status, _) = send(
        &client,
        reqwest::Method::POST,
        format!("{base}/v1/auth/register"),
        None,
        Some(json!({"phone": "0812-7777-0001", "password": "kata-sandi-aman", "name": "Sari Wulandari"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let citizen = login(&client, base, "081277770001", "kata-sandi-aman").await;

    let course = json!({
        "title": "Bantuan Hidup Dasar singkat", "certification": "bls",
        "modules": [{"title": "RJP", "quizzes": [{"title": "Kuis", "pass_mark_pct": 100, "questions": [
            {"kind": "single", "prompt": "Kecepatan kompresi?", "options": [
                {"text": "60/menit"}, {"text": "100–120/menit", "correct": true}]},
            {"kind": "multiple", "prompt": "Yang benar?", "options": [
                {"text": "Recoil penuh", "correct": true}, {"text": "Kedalaman 5–6 cm", "correct": true}, {"text": "Berhenti tiap 5 kompresi"}]}
        ]}]}]
    });
    let (status, _) = send(
        &client,
        reqwest::Method::POST,
        format!("{base}/v1/lms/courses"),
        Some(&citizen),
        Some(course.clone()),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "citizens do not author courses"
    );
    let (status, course) = send(
        &client,
        reqwest::Method::POST,
        format!("{base}/v1/lms/courses"),
        Some(&trainer),
        Some(course),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{course}");
    let course_id = course["id"].as_str().expect("id");
    let quiz_id = course["modules"][0]["quizzes"][0]["id"]
        .as_str()
        .expect("quiz id");

    let (status, _) = send(
        &client,
        reqwest::Method::POST,
        format!("{base}/v1/lms/courses/{course_id}/enroll"),
        Some(&citizen),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, attempt) = send(
        &client,
        reqwest::Method::POST,
        format!("{base}/v1/lms/quizzes/{quiz_id}/attempts/start"),
        Some(&citizen),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let answers: Vec<Value> = attempt["questions"]
        .as_array()
        .expect("questions")
        .iter()
        .map(|q| {
            let selected = if q["prompt"] == "Kecepatan kompresi?" {
                json!(["b"])
            } else {
                json!(["a", "b"])
            };
            json!({"question_id": q["id"], "selected": selected})
        })
        .collect();
    let (status, result) = send(
        &client,
        reqwest::Method::POST,
        format!("{base}/v1/lms/quizzes/{quiz_id}/attempts"),
        Some(&citizen),
        Some(json!({"attempt_id": attempt["attempt_id"], "answers": answers})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!(result["passed"], true);
    let code = result["certificate"]["code"]
        .as_str()
        .expect("a certificate");
    let (status, verified) = send(
        &client,
        reqwest::Method::GET,
        format!("{base}/v1/lms/certificates/verify/{code}"),
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(verified["valid"], true);
    assert_eq!(verified["holder_name"], "Sari Wulandari");

    // A first-aid card that lapses in two seconds: the sweep inside `kreki serve` acts on it.
    let user_id = result["certificate"]["user_id"].clone();
    let expires_at = chrono::Utc::now() + chrono::Duration::seconds(2);
    let (status, recorded) = send(
        &client,
        reqwest::Method::POST,
        format!("{base}/v1/lms/certificates"),
        Some(&trainer),
        Some(json!({"user_id": user_id, "certification": "first_aid", "issued_at": chrono::Utc::now() - chrono::Duration::days(700),
                    "expires_at": expires_at, "evidence": "Kartu PMI"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{recorded}");
    let id: uuid::Uuid = serde_json::from_value(recorded["id"].clone()).expect("an id");
    let deadline = Instant::now() + Duration::from_secs(8);
    let processed_at = loop {
        let processed: Option<chrono::DateTime<chrono::Utc>> =
            sqlx::query_scalar("SELECT expiry_processed_at FROM lms.certificates WHERE id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await
                .expect("readable");
        if let Some(at) = processed {
            break at;
        }
        assert!(
            Instant::now() < deadline,
            "the sweep never acted on the expiry"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let lag = processed_at - expires_at;
    assert!(
        lag < chrono::Duration::seconds(1),
        "acted on {lag} after the expiry"
    );
    let (_, mine) = send(
        &client,
        reqwest::Method::GET,
        format!("{base}/v1/lms/certificates/me"),
        Some(&citizen),
        None,
    )
    .await;
    let statuses: Vec<(&str, &str)> = mine
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| Some((c["certification"].as_str()?, c["status"].as_str()?)))
        .collect();
    assert!(
        statuses.contains(&("bls", "valid")) && statuses.contains(&("first_aid", "expired")),
        "{statuses:?}"
    );
}

#[sqlx::test(migrations = false)]
async fn kreki_demo_loads_the_courses_once(pool: PgPool) {
    let dir = TempDir::new();
    let env = vec![("KREKI_DATABASE__URL", database_url(&pool))];
    let data_dir = dir.0.display().to_string();
    for _run in 0..2 {
        let server = Server::start_with(&["demo", "--data-dir", &data_dir], &env).await;
        let client = reqwest::Client::new();
        // The demo is up once its accounts exist; /healthz may answer a moment earlier.
        let token = login(&client, &server.base, "081200000001", "demo-relawan").await;
        let (status, courses) = send(
            &client,
            reqwest::Method::GET,
            format!("{}/v1/lms/courses", server.base),
            Some(&token),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let titles: Vec<&str> = courses
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["title"].as_str())
            .collect();
        assert_eq!(titles, ["Bantuan Hidup Dasar (BLS)", "Pertolongan Pertama"]);
        server.terminate();
        assert!(server.wait().await.success());
    }
}
