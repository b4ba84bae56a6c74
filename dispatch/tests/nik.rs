//! Patients' NIKs at rest: sealed in `dispatch.alerts`, never in any table in plain digits,
//! re-sealed by the batch when a new key becomes current, a tampered value an error (not a panic),
//! garbage refused with a 422 naming the field, and a plain write refused by the database itself.

pub mod common;

use common::{MONAS, TestApp, alert_body};
use kreki_platform::pii::{Nik, Pii, reseal};
use serde_json::json;
use sqlx::PgPool;

const NIK: &str = "3171234567890001";

/// Every text-like value of every row of schema `dispatch`, as one string per table.
async fn dispatch_tables_as_text(pool: &PgPool) -> Vec<(String, String)> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT format('%I.%I', table_schema, table_name) FROM information_schema.tables
         WHERE table_schema = 'dispatch' AND table_type = 'BASE TABLE'",
    )
    .fetch_all(pool)
    .await
    .expect("tables");
    let mut dumps = Vec::new();
    for table in tables {
        let dump: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT string_agg(t::text, E'\\n') FROM {table} AS t"
        )))
        .fetch_one(pool)
        .await
        .expect("dump");
        dumps.push((table, dump.unwrap_or_default()));
    }
    dumps
}

#[sqlx::test(migrations = "../migrations")]
async fn a_patients_nik_is_sealed_in_every_table_and_garbage_is_a_422(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let ani = app.citizen("Ani");
    let mut body = alert_body("medical", MONAS);
    body["patient"] = json!({"nik": "3171-2345-6789-0001"});
    let (status, alert) = app.panic(&ani, "nik-1", body.clone()).await;
    assert_eq!(status, 201, "{alert}");
    // The same key again with the same body is the same alert (the request digest keys the NIK).
    let (status, again) = app.panic(&ani, "nik-1", body).await;
    assert_eq!((status.as_u16(), &again["id"]), (200, &alert["id"]));
    assert!(!alert.to_string().contains(&NIK[4..]), "{alert}");

    let stored: String =
        sqlx::query_scalar("SELECT patient_nik FROM dispatch.alerts WHERE id = $1::uuid")
            .bind(alert["id"].as_str())
            .fetch_one(&pool)
            .await
            .expect("stored");
    assert!(stored.starts_with("v1:dev:"), "{stored}");
    assert_eq!(
        Pii::dev()
            .open_str(&stored)
            .map(|nik| nik.expose().to_owned()),
        Ok(NIK.to_owned())
    );
    for (table, dump) in dispatch_tables_as_text(&pool).await {
        for needle in [NIK, &NIK[4..], "3171-2345-6789-0001"] {
            assert!(!dump.contains(needle), "{table} holds the NIK: {dump}");
        }
    }

    for garbage in [
        json!("123"),
        json!("31712345678900011"),
        json!("3171abcd67890001"),
        json!(3171234567890001_u64),
        json!({"x": 1}),
    ] {
        let mut body = alert_body("medical", MONAS);
        body["patient"] = json!({"nik": garbage});
        let (status, problem) = app.panic(&ani, "nik-garbage", body).await;
        assert_eq!(status, 422, "{garbage}: {problem}");
        assert_eq!(problem["errors"][0]["field"], "patient.nik", "{problem}");
        assert!(
            !problem.to_string().contains("3171234567890001"),
            "{problem}"
        );
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn the_database_refuses_plain_digits(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let ani = app.citizen("Ani");
    let mut body = alert_body("medical", MONAS);
    body["patient"] = json!({"nik": NIK});
    let (_, alert) = app.panic(&ani, "nik-1", body).await;
    let refused = sqlx::query("UPDATE dispatch.alerts SET patient_nik = $1 WHERE id = $2::uuid")
        .bind(NIK)
        .bind(alert["id"].as_str())
        .execute(&pool)
        .await
        .expect_err("plain digits are refused");
    assert!(refused.to_string().contains("must be sealed"), "{refused}");
    // Other columns of the row still change (a row waiting for the reseal batch is not stuck).
    sqlx::query("UPDATE dispatch.alerts SET note = 'x' WHERE id = $1::uuid")
        .bind(alert["id"].as_str())
        .execute(&pool)
        .await
        .expect("other columns");
}

/// `sealed` with one character of its ciphertext changed.
fn tampered(sealed: &str) -> String {
    let mut bytes = sealed.as_bytes().to_vec();
    let at = bytes.len() - 5;
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).expect("ascii")
}

#[sqlx::test(migrations = "../migrations")]
async fn rotation_and_old_plaintext_rows_are_resealed_and_tampering_is_reported(pool: PgPool) {
    let target = kreki_dispatch::NIK_COLUMNS[0];
    let old = Pii::from_raw("k1", &[("k1", [1; 32])], [7; 32]);
    let new = Pii::from_raw("k2", &[("k1", [1; 32]), ("k2", [2; 32])], [7; 32]);
    let app = TestApp::new(pool.clone()).await;
    let mut ids = Vec::new();
    for key in ["a", "b", "c", "d", "e"] {
        // One citizen each: a second press nearby would attach to the first alert.
        let citizen = app.citizen(key);
        let mut body = alert_body("medical", MONAS);
        body["patient"] = json!({"nik": NIK});
        let (_, alert) = app.panic(&citizen, key, body).await;
        ids.push(alert["id"].as_str().expect("id").to_owned());
    }
    // Rows as an older KREKI left them: two under k1, one in plain digits (written with the
    // guard switched off, as the rows from before the migration are), one tampered with.
    let sealed_k1 = old.seal(&Nik::parse(NIK).expect("nik"));
    let mut conn = pool.acquire().await.expect("conn");
    sqlx::query("SET session_replication_role = replica")
        .execute(&mut *conn)
        .await
        .expect("guard off");
    for (id, value) in [
        (&ids[0], sealed_k1.as_str().to_owned()),
        (
            &ids[1],
            old.seal(&Nik::parse(NIK).expect("nik")).as_str().to_owned(),
        ),
        (&ids[2], NIK.to_owned()),
        (&ids[3], tampered(sealed_k1.as_str())),
    ] {
        sqlx::query("UPDATE dispatch.alerts SET patient_nik = $1 WHERE id = $2::uuid")
            .bind(value)
            .bind(id)
            .execute(&mut *conn)
            .await
            .expect("old row");
    }
    drop(conn);

    // Batches of 2 over five rows: the loop pages on.
    let count = reseal(&pool, &new, target, 2).await.expect("reseal");
    // The fifth row was sealed by the test app's development keys, which `new` does not hold.
    assert_eq!((count.resealed, count.unreadable), (3, 2), "{count:?}");
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT id::text, patient_nik FROM dispatch.alerts ORDER BY id")
            .fetch_all(&pool)
            .await
            .expect("rows");
    for (id, stored) in &rows {
        if id == &ids[3] {
            assert!(
                matches!(
                    new.open_str(stored),
                    Err(kreki_platform::pii::PiiError::Tampered { .. })
                ),
                "the tampered row is left as it is"
            );
            continue;
        }
        if id == &ids[4] {
            assert!(
                stored.starts_with("v1:dev:"),
                "an unknown key's row is left as it is"
            );
            continue;
        }
        assert!(stored.starts_with("v1:k2:"), "{stored}");
        assert_eq!(
            new.open_str(stored).map(|n| n.expose().to_owned()),
            Ok(NIK.to_owned())
        );
    }
    assert_eq!(
        reseal(&pool, &new, target, 2)
            .await
            .expect("again")
            .resealed,
        0
    );

    // The change feed reads what it can and leaves the tampered NIK out, without failing.
    tokio::time::sleep(std::time::Duration::from_secs_f64(
        kreki_dispatch::service::CHANGE_SETTLE_S + 0.5,
    ))
    .await;
    let changes = kreki_dispatch::service::changes_after(&pool, &new, 0, 100)
        .await
        .expect("feed");
    let by_id = |id: &str| {
        changes
            .iter()
            .find(|change| change.alert.id.to_string() == id)
            .expect("changed")
    };
    assert_eq!(by_id(&ids[0]).patient_nik, Nik::parse(NIK).ok());
    assert_eq!(by_id(&ids[3]).patient_nik, None);
}
