//! `kreki simulate` against a real `kreki demo` process: the demo creates the simulated accounts
//! (with `--no-simulate`, so only the separate simulator acts), the simulator runs briefly through
//! the public API, and a coordinator sees simulated alerts created and accepted, volunteers on duty
//! and moving; a real alert among them is declined by simulated volunteers and never taken; at
//! SIGTERM the simulator sends its volunteers off duty and exits cleanly.

use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::support::{Server, TempDir, database_url, kreki, signing_key};

/// The simulator process, killed if the test fails before it is stopped.
struct Simulator(Option<std::process::Child>);

impl Drop for Simulator {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            drop(child.kill());
            drop(child.wait());
        }
    }
}

/// Central Jakarta and around, where the simulator's people live (with a margin).
const BBOX: &str = "106.70,-6.30,106.95,-6.10";

async fn coordinator_token(client: &reqwest::Client, base: &str) -> String {
    let answer: Value = client
        .post(format!("{base}/v1/auth/login"))
        .json(&json!({"login": "081100000002", "password": "demo-koordinator"}))
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("JSON");
    answer["access_token"]
        .as_str()
        .expect("the demo coordinator signs in")
        .to_owned()
}

async fn get(client: &reqwest::Client, base: &str, token: &str, path: &str) -> Value {
    let response = client
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    response.json().await.expect("JSON")
}

fn simulated_volunteers(volunteers: &Value) -> Vec<&Value> {
    volunteers
        .as_array()
        .expect("a list")
        .iter()
        .filter(|v| {
            v["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("Relawan Simulasi"))
        })
        .collect()
}

#[sqlx::test(migrations = false)]
async fn simulate_creates_alerts_that_simulated_volunteers_accept(pool: PgPool) {
    let dir = TempDir::new();
    let key = signing_key(&dir.0);
    let data_dir = dir.0.join("demo").display().to_string();
    let env = vec![
        ("KREKI_DATABASE__URL", database_url(&pool)),
        ("KREKI_AUTH__SIGNING_KEY_FILE", key.display().to_string()),
    ];
    let server = Server::start_with(
        &[
            "demo",
            "--data-dir",
            &data_dir,
            "--no-simulate",
            "--sim-volunteers",
            "8",
            "--sim-citizens",
            "2",
        ],
        &env,
    )
    .await;
    let client = reqwest::Client::new();

    let mut simulator = kreki();
    simulator
        .args([
            "simulate",
            "--url",
            &server.base,
            "--sim-volunteers",
            "8",
            "--sim-citizens",
            "2",
            "--sim-alerts-per-minute",
            "30",
            "--sim-position-every-s",
            "1",
            "--sim-seed",
            "3",
        ])
        .env("KREKI_LOG__FILTER", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut simulator = Simulator(Some(simulator.spawn().expect("kreki simulate starts")));

    // Simulated alerts appear, marked as drills, and simulated volunteers accept them.
    let token = coordinator_token(&client, &server.base).await;
    let deadline = Instant::now() + Duration::from_secs(90);
    let (alerts, positions) = loop {
        let alerts = get(&client, &server.base, &token, "/v1/alerts").await;
        let simulated: Vec<&Value> = alerts
            .as_array()
            .expect("a list")
            .iter()
            .filter(|a| a["drill"] == true)
            .collect();
        let accepted = simulated
            .iter()
            .filter(|a| {
                a["assignments"].as_array().is_some_and(|list| {
                    list.iter().any(|s| {
                        s["volunteer"]["name"]
                            .as_str()
                            .is_some_and(|n| n.starts_with("Relawan Simulasi"))
                    })
                })
            })
            .count();
        if simulated.len() >= 2 && accepted >= 1 {
            let volunteers = get(
                &client,
                &server.base,
                &token,
                &format!("/v1/volunteers?bbox={BBOX}"),
            )
            .await;
            let positions: Vec<(String, f64, f64)> = simulated_volunteers(&volunteers)
                .iter()
                .map(|v| {
                    (
                        v["id"].as_str().unwrap_or_default().to_owned(),
                        v["lat"].as_f64().unwrap_or_default(),
                        v["lng"].as_f64().unwrap_or_default(),
                    )
                })
                .collect();
            break (simulated.len(), positions);
        }
        assert!(
            Instant::now() < deadline,
            "no simulated alert accepted within 90 s: {alerts:#}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(alerts >= 2);
    assert!(
        positions.len() >= 6,
        "simulated volunteers on duty with positions: {positions:?}"
    );

    // They move: a few seconds later, some have reported another position.
    let moved = async {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let volunteers = get(
                &client,
                &server.base,
                &token,
                &format!("/v1/volunteers?bbox={BBOX}"),
            )
            .await;
            let now = simulated_volunteers(&volunteers);
            let moved = now
                .iter()
                .filter(|v| {
                    positions.iter().any(|(id, lat, lng)| {
                        v["id"] == id.as_str()
                            && (v["lat"].as_f64() != Some(*lat) || v["lng"].as_f64() != Some(*lng))
                    })
                })
                .count();
            if moved >= 3 {
                return moved;
            }
        }
    };
    let moved = tokio::time::timeout(Duration::from_secs(15), moved)
        .await
        .expect("simulated volunteers move");
    assert!(moved >= 3);

    // A real alert (no drill flag, though its citizen typed the old drill prefix) right where a
    // simulated volunteer stands: simulated volunteers decline its offers at once and never take it.
    let citizen: Value = client
        .post(format!("{}/v1/auth/login", server.base))
        .json(&json!({"login": "081300000001", "password": "demo-warga"}))
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("JSON");
    let (_, lat, lng) = &positions[0];
    let real: Value = client
        .post(format!("{}/v1/alerts", server.base))
        .bearer_auth(citizen["access_token"].as_str().expect("the demo citizen signs in"))
        .header("idempotency-key", uuid::Uuid::new_v4().to_string())
        .json(&json!({"kind": "other", "location": {"lat": lat, "lng": lng, "accuracy_m": 10}, "note": "[SIMULASI] Pingsan di pasar"}))
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("JSON");
    let real_id = real["id"].as_str().expect("an alert").to_owned();
    assert_eq!(real["drill"], false, "a typed prefix does not make a drill");
    let declined = async {
        loop {
            let timeline = get(
                &client,
                &server.base,
                &token,
                &format!("/v1/alerts/{real_id}/timeline"),
            )
            .await;
            if timeline
                .as_array()
                .is_some_and(|events| events.iter().any(|e| e["type"] == "offer_declined"))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), declined)
        .await
        .expect("a simulated volunteer declines the real alert's offer at once");
    // Longer than any simulated volunteer thinks before accepting a drill.
    tokio::time::sleep(Duration::from_secs(13)).await;
    let real = get(
        &client,
        &server.base,
        &token,
        &format!("/v1/alerts/{real_id}"),
    )
    .await;
    assert_eq!(
        real["assignments"],
        json!([]),
        "no simulated volunteer holds a real alert: {real:#}"
    );

    // SIGTERM: the simulator sends its volunteers off duty and reports what it did.
    let child = simulator.0.take().expect("running");
    let signalled = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(signalled.success());
    let waited = tokio::task::spawn_blocking(move || child.wait_with_output());
    let output = tokio::time::timeout(Duration::from_secs(20), waited)
        .await
        .expect("the simulator stops within 20 s")
        .expect("joined")
        .expect("its output");
    assert!(output.status.success(), "exit status {}", output.status);
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        said.contains("simulation stopped: 8 volunteers on duty;"),
        "the summary: {said}"
    );
    let volunteers = get(
        &client,
        &server.base,
        &token,
        &format!("/v1/volunteers?bbox={BBOX}"),
    )
    .await;
    let still_on: Vec<_> = simulated_volunteers(&volunteers)
        .into_iter()
        .filter(|v| v["on_duty"] == true)
        .collect();
    assert!(still_on.is_empty(), "off duty after SIGTERM: {still_on:?}");
}
