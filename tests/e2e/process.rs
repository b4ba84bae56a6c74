//! The `kreki` process as operators run it: start, configuration errors, health, the CLI, restarts
//! and graceful shutdown.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::support::{Server, TempDir, database_url, kreki, signing_key};

fn env(pool: &PgPool, key_file: &std::path::Path) -> Vec<(&'static str, String)> {
    vec![
        ("KREKI_DATABASE__URL", database_url(pool)),
        (
            "KREKI_AUTH__SIGNING_KEY_FILE",
            key_file.display().to_string(),
        ),
    ]
}

async fn register(
    client: &reqwest::Client,
    base: &str,
    phone: &str,
    password: &str,
) -> reqwest::Response {
    client
        .post(format!("{base}/v1/auth/register"))
        .json(&json!({"phone": phone, "password": password, "name": "Uji Coba"}))
        .send()
        .await
        .expect("request is answered")
}

async fn login(client: &reqwest::Client, base: &str, login: &str, password: &str) -> Value {
    let response = client
        .post(format!("{base}/v1/auth/login"))
        .json(&json!({"login": login, "password": password}))
        .send()
        .await
        .expect("request is answered");
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("JSON body")
}

#[sqlx::test(migrations = false)]
async fn serve_migrates_becomes_ready_and_registers(pool: PgPool) {
    let dir = TempDir::new();
    let key = signing_key(&dir.0);
    let server = Server::start(&env(&pool, &key)).await;
    let client = reqwest::Client::new();

    // Ready once every check passes, including dispatch's matcher being built just after start.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let ready = loop {
        let ready = client
            .get(format!("{}/readyz", server.base))
            .send()
            .await
            .expect("answered");
        if ready.status() == StatusCode::OK || tokio::time::Instant::now() > deadline {
            break ready;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(ready.status(), StatusCode::OK);
    let ready: Value = ready.json().await.expect("JSON");
    assert_eq!(ready["checks"]["migrations"], "ok");
    assert_eq!(ready["checks"]["dispatch"], "ok");

    let created = register(&client, &server.base, "0812-1111-2222", "kata-sandi-aman").await;
    assert_eq!(created.status(), StatusCode::CREATED);
    assert!(
        created.headers().contains_key("x-request-id"),
        "every answer carries a request id"
    );
    let body: Value = created.json().await.expect("JSON");
    assert_eq!(body["phone"], "+6281211112222");
    assert_eq!(body["roles"], json!(["citizen"]));

    let metrics = client
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .expect("answered");
    let text = metrics.text().await.expect("text");
    assert!(
        text.contains("http_request_duration_seconds"),
        "latency histogram exported"
    );
    assert!(
        text.contains(r#"route="/v1/auth/register""#),
        "labelled by route template, not raw path"
    );

    let docs = client
        .get(format!("{}/docs/", server.base))
        .send()
        .await
        .expect("answered");
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(
        docs.text().await.expect("text").contains("swagger"),
        "the docs page is served"
    );
}

#[sqlx::test(migrations = false)]
async fn sigterm_lets_in_flight_requests_finish_then_exits_cleanly(pool: PgPool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let dir = TempDir::new();
    let key = signing_key(&dir.0);
    let server = Server::start(&env(&pool, &key)).await;
    let address = server.base.trim_start_matches("http://").to_owned();
    // Each registration hashes a password (tens of ms, four at a time), so twenty written requests
    // are still being served when the signal lands. Raw sockets make "written" certain.
    let mut sockets = Vec::new();
    for i in 0..20 {
        let body = json!({"phone": format!("08123000{i:04}"), "password": "kata-sandi-aman", "name": "Uji"}).to_string();
        let request = format!(
            "POST /v1/auth/register HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let mut socket = tokio::net::TcpStream::connect(&address)
            .await
            .expect("connects");
        socket
            .write_all(request.as_bytes())
            .await
            .expect("request written");
        sockets.push(socket);
    }
    // Long enough for the server to accept every connection, far shorter than serving all twenty.
    tokio::time::sleep(Duration::from_millis(150)).await;
    server.terminate();
    for mut socket in sockets {
        let mut answer = String::new();
        socket
            .read_to_string(&mut answer)
            .await
            .expect("an answer, not a reset");
        assert!(
            answer.starts_with("HTTP/1.1 201"),
            "an in-flight request was cut off: {answer:?}"
        );
    }
    let status = server.wait().await;
    assert!(status.success(), "kreki exited with {status}");
}

#[sqlx::test(migrations = false)]
async fn a_restart_signs_nobody_out(pool: PgPool) {
    let dir = TempDir::new();
    let key = signing_key(&dir.0);
    let first = Server::start(&env(&pool, &key)).await;
    let client = reqwest::Client::new();
    register(&client, &first.base, "081299990001", "kata-sandi-aman").await;
    let tokens = login(&client, &first.base, "081299990001", "kata-sandi-aman").await;
    first.terminate();
    assert!(first.wait().await.success());

    let second = Server::start(&env(&pool, &key)).await;
    let me = client
        .get(format!("{}/v1/auth/me", second.base))
        .bearer_auth(tokens["access_token"].as_str().expect("token"))
        .send()
        .await
        .expect("answered");
    assert_eq!(
        me.status(),
        StatusCode::OK,
        "the access token from before the restart still works"
    );
    let refreshed = client
        .post(format!("{}/v1/auth/refresh", second.base))
        .json(&json!({"refresh_token": tokens["refresh_token"]}))
        .send()
        .await
        .expect("answered");
    assert_eq!(
        refreshed.status(),
        StatusCode::OK,
        "so does the refresh token"
    );
}

#[sqlx::test(migrations = false)]
async fn user_create_makes_the_first_admin(pool: PgPool) {
    let dir = TempDir::new();
    let key = signing_key(&dir.0);
    let url = database_url(&pool);
    let migrate = kreki()
        .arg("migrate")
        .env("KREKI_DATABASE__URL", &url)
        .output()
        .expect("runs");
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    let created = kreki()
        .args([
            "user",
            "create",
            "--phone",
            "0811-0000-0009",
            "--password",
            "admin-rahasia",
            "--name",
            "Admin Satu",
            "--role",
            "admin",
        ])
        .env("KREKI_DATABASE__URL", &url)
        .env("KREKI_AUTH__SIGNING_KEY_FILE", &key)
        .output()
        .expect("runs");
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let bad = kreki()
        .args([
            "user",
            "create",
            "--phone",
            "12",
            "--password",
            "admin-rahasia",
            "--name",
            "X",
            "--role",
            "boss",
        ])
        .env("KREKI_DATABASE__URL", &url)
        .output()
        .expect("runs");
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("--phone"),
        "the CLI names the wrong flag"
    );

    let server = Server::start(&env(&pool, &key)).await;
    let client = reqwest::Client::new();
    let tokens = login(&client, &server.base, "+6281100000009", "admin-rahasia").await;
    let me: Value = client
        .get(format!("{}/v1/auth/me", server.base))
        .bearer_auth(tokens["access_token"].as_str().expect("token"))
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("JSON");
    assert_eq!(me["roles"], json!(["citizen", "admin"]));
}

#[test]
fn a_wrong_setting_stops_kreki_naming_the_key() {
    let output = kreki()
        .arg("serve")
        .env("KREKI_SERVER__REQUEST_TIMEOUT_S", "soon")
        .env(
            "KREKI_DATABASE__URL",
            "postgres://kreki:very-secret-password@127.0.0.1/kreki",
        )
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr).to_lowercase();
    assert!(stderr.contains("server.request_timeout_s"), "{stderr}");
    assert!(
        !stderr.contains("very-secret-password"),
        "secrets never printed: {stderr}"
    );

    let output = kreki()
        .arg("serve")
        .env("KREKI_AUTH__ACCESS_TOKEN_TTL_S", "5")
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("auth.access_token_ttl_s"));

    let output = kreki()
        .args(["serve", "--services", "auth,teleport"])
        .output()
        .expect("runs");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown service `teleport`"));
}

#[tokio::test]
async fn database_down_means_503_with_retry_after_not_500() {
    let dir = TempDir::new();
    let key = signing_key(&dir.0);
    // Nothing listens on port 9 of the loopback interface: the database is "down".
    let server = Server::start_with(
        &["serve"],
        &[
            (
                "KREKI_DATABASE__URL",
                "postgres://postgres@127.0.0.1:9/kreki".to_owned(),
            ),
            ("KREKI_DATABASE__ACQUIRE_TIMEOUT_MS", "500".to_owned()),
            ("KREKI_AUTH__SIGNING_KEY_FILE", key.display().to_string()),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let ready = client
        .get(format!("{}/readyz", server.base))
        .send()
        .await
        .expect("answered");
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let created = register(&client, &server.base, "081288887777", "kata-sandi-aman").await;
    assert_eq!(created.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(created.headers().contains_key("retry-after"));
    assert_eq!(
        created.headers()["content-type"],
        "application/problem+json"
    );
}
