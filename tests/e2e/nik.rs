//! NIK protection through real `kreki` processes (issue 18): a volunteer verifies as a health
//! worker by NIK and a citizen raises an alert with the patient's NIK; the SATUSEHAT bridge (the
//! in-process fake) gets them, while no table of the database and no line of the process's log
//! (at `debug`) holds the digits. Answers show NIKs masked at most; garbage is a 422 naming the
//! field; a second account cannot verify with a NIK already verified (the keyed-hash lookup);
//! `kreki pii reseal` moves every stored NIK to a new key, and wraps every search hash with a new
//! search key (the verified health worker's NIK is gone by then; the NIK is still found taken);
//! and a process told to require keys refuses to start without them.

use std::time::Duration;

use kreki_bridge_satusehat::fake;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::support::{
    JsonApi, MONAS, Server, TempDir, create_account, database_url, kreki, signing_key,
};

const PASSWORD: &str = "kata-sandi-aman";
/// Test keys (base64 of 32 bytes); never use these anywhere else.
const KEY_ONE: &str = "MTExMTExMTExMTExMTExMTExMTExMTExMTExMTExMTE=";
const KEY_TWO: &str = "MjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjI=";
const SEARCH_KEY: &str = "OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk=";
const WRAP_KEY: &str = "MzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzM=";

/// `schema.table` of every table of ours whose rows' text holds `needle`.
async fn tables_holding(pool: &PgPool, needle: &str) -> Vec<String> {
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_schema::text, table_name::text FROM information_schema.tables
         WHERE table_type = 'BASE TABLE'
           AND table_schema NOT IN ('pg_catalog', 'information_schema', 'tiger', 'tiger_data', 'topology')",
    )
    .fetch_all(pool)
    .await
    .expect("tables listed");
    assert!(tables.len() > 30, "only {} tables?", tables.len());
    let mut found = Vec::new();
    for (schema, table) in tables {
        // Names come from the catalogue, quoted: nothing from outside reaches the SQL.
        let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            r#"SELECT count(*) FROM "{schema}"."{table}" AS t WHERE t::text LIKE '%' || $1 || '%'"#
        )))
        .bind(needle)
        .fetch_one(pool)
        .await
        .expect("scanned");
        if count > 0 {
            found.push(format!("{schema}.{table}"));
        }
    }
    found
}

fn pii_env(current: &str) -> Vec<(&'static str, String)> {
    vec![
        ("KREKI_PII__CURRENT_KEY", current.to_owned()),
        ("KREKI_PII__KEYS__E2E1", KEY_ONE.to_owned()),
        ("KREKI_PII__KEYS__E2E2", KEY_TWO.to_owned()),
        ("KREKI_PII__SEARCH_KEY", SEARCH_KEY.to_owned()),
        ("KREKI_PII__REQUIRE_KEYS", "true".to_owned()),
    ]
}

async fn until<F: std::future::Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[sqlx::test(migrations = false)]
async fn niks_never_reach_the_database_or_the_logs_in_plain_text(pool: PgPool) {
    let dir = TempDir::new();
    let key = signing_key(&dir.0);
    let url = database_url(&pool);
    let mut env = vec![
        ("KREKI_DATABASE__URL", url.clone()),
        ("KREKI_AUTH__SIGNING_KEY_FILE", key.display().to_string()),
        ("KREKI_SATUSEHAT__ENABLED", "true".to_owned()),
        ("KREKI_SATUSEHAT__ENVIRONMENT", "fake".to_owned()),
        ("KREKI_SATUSEHAT__POLL_MS", "100".to_owned()),
        ("KREKI_LOG__FILTER", "debug".to_owned()),
    ];
    env.extend(pii_env("e2e1"));
    let server = Server::start(&env).await;
    create_account(&url, "081300000201", PASSWORD, "Nurse Nia", &["volunteer"]);
    create_account(&url, "081300000202", PASSWORD, "Other Oki", &["volunteer"]);
    create_account(&url, "081300000203", PASSWORD, "Citizen Cici", &[]);
    let api = JsonApi::new(&server.base);
    let nurse = api.login("081300000201", PASSWORD).await;
    let other = api.login("081300000202", PASSWORD).await;
    let citizen = api.login("081300000203", PASSWORD).await;

    let verify = |token: String, nik: Value| {
        let api = &api;
        async move {
            api.send(
                Method::POST,
                "/v1/volunteers/me/practitioner-verification",
                Some(&token),
                Some(json!({ "nik": nik })),
            )
            .await
        }
    };
    let (status, verdict) = verify(nurse.clone(), json!(fake::SEED_NIK_ONE)).await;
    assert_eq!(
        (status, verdict["status"].as_str()),
        (StatusCode::OK, Some("verified")),
        "{verdict}"
    );
    // The same NIK for another account: found by its keyed hash, refused.
    let (status, problem) = verify(other.clone(), json!(fake::SEED_NIK_ONE)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    let (status, problem) = verify(other.clone(), json!("3171 0123 45")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "nik", "{problem}");

    let panic = |nik: Value, key: &'static str| {
        let (api, citizen) = (&api, &citizen);
        async move {
            let response = api
                .client
                .post(format!("{}/v1/alerts", api.base))
                .bearer_auth(citizen)
                .header("Idempotency-Key", key)
                .json(
                    &json!({"kind": "medical", "location": {"lat": MONAS.0, "lng": MONAS.1},
                              "patient": {"nik": nik}}),
                )
                .send()
                .await
                .expect("answered");
            let status = response.status();
            (status, response.json::<Value>().await.expect("JSON"))
        }
    };
    let (status, problem) = panic(json!("31710987654321"), "nik-bad").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "patient.nik", "{problem}");
    let (status, alert) = panic(json!(fake::SEED_PATIENT_NIK), "nik-1").await;
    assert_eq!(status, StatusCode::CREATED, "{alert}");
    let alert_id = alert["id"].as_str().expect("id").to_owned();
    let (_, timeline) = api
        .send(
            Method::GET,
            &format!("/v1/alerts/{alert_id}/timeline"),
            Some(&citizen),
            None,
        )
        .await;

    // The bridge projected the incident (sealed under its own write).
    until("the incident in the bridge", || async {
        sqlx::query_scalar::<_, String>(
            "SELECT patient_nik FROM bridge.incidents WHERE alert_id = $1::uuid",
        )
        .bind(&alert_id)
        .fetch_optional(&pool)
        .await
        .expect("read")
        .is_some()
    })
    .await;

    let niks = [fake::SEED_NIK_ONE, fake::SEED_PATIENT_NIK];
    for answer in [&verdict, &alert, &timeline] {
        for nik in niks {
            assert!(!answer.to_string().contains(&nik[4..]), "{answer}");
        }
    }
    for nik in niks {
        assert_eq!(
            tables_holding(&pool, nik).await,
            Vec::<String>::new(),
            "{nik} in plain text"
        );
        assert_eq!(
            tables_holding(&pool, &nik[4..]).await,
            Vec::<String>::new(),
            "{nik} in part"
        );
    }
    let sealed: Vec<String> = sqlx::query_scalar(
        "SELECT patient_nik FROM dispatch.alerts WHERE patient_nik IS NOT NULL
         UNION ALL SELECT patient_nik FROM bridge.incidents WHERE patient_nik IS NOT NULL",
    )
    .fetch_all(&pool)
    .await
    .expect("sealed");
    assert_eq!(sealed.len(), 2);
    assert!(
        sealed.iter().all(|value| value.starts_with("v1:e2e1:")),
        "{sealed:?}"
    );

    server.terminate();
    let log = server.log_text();
    let _ = server.wait().await;
    if std::env::var_os("TEST_LOG").is_none() {
        assert!(
            log.contains("practitioner verification settled"),
            "logs at debug were kept:\n{log}"
        );
        for nik in niks {
            assert!(!log.contains(&nik[4..]), "{nik} in the log:\n{log}");
        }
    }

    // Rotation: e2e2 becomes current; the batch moves every stored NIK to it.
    let resealed = kreki()
        .args(["pii", "reseal"])
        .env("KREKI_DATABASE__URL", &url)
        .envs(pii_env("e2e2"))
        .output()
        .expect("runs");
    let said = String::from_utf8_lossy(&resealed.stdout);
    assert!(
        resealed.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&resealed.stderr)
    );
    assert!(said.contains("resealed 2 NIKs under key `e2e2`"), "{said}");
    let sealed: Vec<String> = sqlx::query_scalar(
        "SELECT patient_nik FROM dispatch.alerts WHERE patient_nik IS NOT NULL
         UNION ALL SELECT patient_nik FROM bridge.incidents WHERE patient_nik IS NOT NULL",
    )
    .fetch_all(&pool)
    .await
    .expect("sealed");
    assert!(
        sealed.iter().all(|value| value.starts_with("v1:e2e2:")),
        "{sealed:?}"
    );

    // Search-key rotation by wrapping: the verified nurse's NIK was dropped after verification,
    // only its hash is kept; the batch wraps that hash with the new search key, without the NIK.
    let stored_hash = || async {
        sqlx::query_scalar::<_, Vec<u8>>(
            "SELECT nik_hash FROM bridge.practitioners WHERE status = 'verified'",
        )
        .fetch_one(&pool)
        .await
        .expect("the nurse's hash")
    };
    let before = stored_hash().await;
    let mut rotated = pii_env("e2e2");
    rotated.push(("KREKI_PII__SEARCH_WRAP_KEYS", format!("[\"{WRAP_KEY}\"]")));
    let reseal = || {
        kreki()
            .args(["pii", "reseal"])
            .env("KREKI_DATABASE__URL", &url)
            .envs(rotated.clone())
            .output()
            .expect("runs")
    };
    let wrapped = reseal();
    let said = String::from_utf8_lossy(&wrapped.stdout);
    assert!(
        wrapped.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&wrapped.stderr)
    );
    assert!(said.contains("1 search hashes wrapped"), "{said}");
    assert_ne!(stored_hash().await, before, "wrapped");
    let again = reseal();
    let said = String::from_utf8_lossy(&again.stdout);
    assert!(said.contains("0 search hashes wrapped"), "{said}");
    // A server under the rotated keys still finds the NIK taken.
    let mut env: Vec<(&str, String)> = env
        .into_iter()
        .filter(|(name, _)| !name.starts_with("KREKI_PII__"))
        .collect();
    env.extend(rotated.clone());
    let server = Server::start(&env).await;
    let api = JsonApi::new(&server.base);
    let other = api.login("081300000202", PASSWORD).await;
    let (status, problem) = api
        .send(
            Method::POST,
            "/v1/volunteers/me/practitioner-verification",
            Some(&other),
            Some(json!({ "nik": fake::SEED_NIK_ONE })),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    server.terminate();
    let _ = server.wait().await;

    // Told to require keys, kreki refuses to start without them.
    let refused = kreki()
        .args(["serve"])
        .env("KREKI_DATABASE__URL", &url)
        .env("KREKI_PII__REQUIRE_KEYS", "true")
        .output()
        .expect("runs");
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("pii.keys"), "{said}");
}
