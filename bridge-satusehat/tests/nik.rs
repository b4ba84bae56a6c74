//! NIKs in the bridge: sealed in `bridge.practitioners` and `bridge.incidents` (never plain digits
//! in any of its tables), found by keyed hash only (one NIK, one verified health worker), sent to
//! SATUSEHAT in the clear (it needs them), and masked for health systems.

#[expect(
    dead_code,
    reason = "the harness serves several test files; this one uses part of it"
)]
mod support;

use chrono::Utc;
use kreki_auth::Role;
use kreki_bridge_satusehat::{IncidentStatus, fake};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use support::{Options, event, harness, responder};
use uuid::Uuid;

async fn verify(h: &support::Harness, user: Uuid, nik: &str) -> (StatusCode, Value) {
    let response = h
        .http
        .post(h.url("/v1/volunteers/me/practitioner-verification"))
        .bearer_auth(h.user_token(user, &[Role::Volunteer]))
        .json(&json!({ "nik": nik }))
        .send()
        .await
        .expect("answers");
    let status = response.status();
    (status, response.json().await.expect("json"))
}

/// Every row of every table of schema `bridge`, as text.
async fn bridge_tables_as_text(pool: &PgPool) -> String {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT format('%I.%I', table_schema, table_name) FROM information_schema.tables
         WHERE table_schema = 'bridge' AND table_type = 'BASE TABLE'",
    )
    .fetch_all(pool)
    .await
    .expect("tables");
    let mut all = String::new();
    for table in tables {
        let dump: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT string_agg(t::text, E'\\n') FROM {table} AS t"
        )))
        .fetch_one(pool)
        .await
        .expect("dump");
        all.push_str(&format!("{table}:\n{}\n", dump.unwrap_or_default()));
    }
    all
}

#[sqlx::test(migrations = "../migrations")]
async fn niks_are_sealed_found_by_keyed_hash_and_masked_for_health_systems(pool: PgPool) {
    let h = harness(pool.clone(), Options::default()).await;
    let (nurse, impostor) = (Uuid::new_v4(), Uuid::new_v4());
    let (status, body) = verify(&h, nurse, fake::SEED_NIK_ONE).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("verified")),
        "{body}"
    );

    // The hash is kept after the NIK itself is dropped, and it is what finds the practitioner.
    let nik = kreki_platform::pii::Nik::parse(fake::SEED_NIK_ONE).expect("nik");
    let (stored_nik, stored_hash): (Option<String>, Option<Vec<u8>>) =
        sqlx::query_as("SELECT nik, nik_hash FROM bridge.practitioners WHERE user_id = $1")
            .bind(nurse)
            .fetch_one(&pool)
            .await
            .expect("row");
    assert_eq!(stored_nik, None);
    assert_eq!(
        stored_hash.as_deref(),
        Some(h.state.pii.hash(&nik).as_bytes())
    );
    assert_eq!(
        kreki_bridge_satusehat::store::verified_practitioner_by_nik(
            &pool,
            &h.state.pii.lookup_hashes(&nik),
            impostor
        )
        .await
        .expect("lookup"),
        Some(nurse)
    );
    // A second account cannot verify with the same NIK.
    let (status, problem) = verify(&h, impostor, "3171-0123-4567-8901").await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert!(
        !problem.to_string().contains(&fake::SEED_NIK_ONE[4..]),
        "{problem}"
    );

    // A patient's NIK through the feed, to SATUSEHAT and to health systems.
    let alert = Uuid::new_v4();
    h.feed.push(event(
        alert,
        IncidentStatus::OnScene,
        Utc::now(),
        Some(fake::SEED_PATIENT_NIK),
        vec![responder(nurse, Uuid::new_v4(), "on_scene", None)],
    ));
    h.pump().await;
    h.drain_outbox(2).await;
    let stored: String =
        sqlx::query_scalar("SELECT patient_nik FROM bridge.incidents WHERE alert_id = $1")
            .bind(alert)
            .fetch_one(&pool)
            .await
            .expect("incident");
    assert!(stored.starts_with("v1:dev:"), "{stored}");
    let sent = h.fake.encounters();
    assert_eq!(sent.len(), 1, "SATUSEHAT got the Encounter");
    assert_eq!(
        sent[0]["subject"]["reference"],
        format!("Patient/{}", fake::SEED_PATIENT_IHS),
        "the NIK was decrypted to find the patient"
    );
    let encounter: Value = h
        .http
        .get(h.url(&format!("/fhir/r4/Encounter/{alert}")))
        .bearer_auth(h.client_token("system/*.read"))
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("json");
    assert_eq!(encounter["subject"]["display"], "NIK ************2101");

    // A pending verification keeps its NIK sealed for the retries.
    let waiting = Uuid::new_v4();
    h.fake.faults(|faults| faults.down = true);
    let (status, body) = verify(&h, waiting, fake::SEED_NIK_TWO).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("unavailable")),
        "{body}"
    );
    let pending: String =
        sqlx::query_scalar("SELECT nik FROM bridge.practitioners WHERE user_id = $1")
            .bind(waiting)
            .fetch_one(&pool)
            .await
            .expect("pending");
    assert_eq!(
        h.state
            .pii
            .open_str(&pending)
            .map(|nik| nik.expose().to_owned()),
        Ok(fake::SEED_NIK_TWO.to_owned())
    );

    let dump = bridge_tables_as_text(&pool).await;
    for plain in [
        fake::SEED_NIK_ONE,
        fake::SEED_NIK_TWO,
        fake::SEED_PATIENT_NIK,
    ] {
        assert!(!dump.contains(plain), "{plain} in plain text:\n{dump}");
        assert!(!dump.contains(&plain[4..]), "{plain} in part:\n{dump}");
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn garbage_niks_are_422_naming_the_field(pool: PgPool) {
    let h = harness(pool, Options::default()).await;
    for garbage in [
        json!("123"),
        json!("x".repeat(16)),
        json!(3_171_012_345_678_901_u64),
        json!(null),
    ] {
        let response = h
            .http
            .post(h.url("/v1/volunteers/me/practitioner-verification"))
            .bearer_auth(h.user_token(Uuid::new_v4(), &[Role::Volunteer]))
            .json(&json!({ "nik": garbage }))
            .send()
            .await
            .expect("answers");
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{garbage}"
        );
        let problem: Value = response.json().await.expect("json");
        assert_eq!(problem["errors"][0]["field"], "nik", "{problem}");
        assert!(
            !problem.to_string().contains("3171012345678901"),
            "never quoted back: {problem}"
        );
    }
}
