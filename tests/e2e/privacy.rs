//! Erasing people through a real `kreki` process (issue 18): a volunteer who answered an alert,
//! registered a phone for push and holds a certificate deletes their account; an admin deletes the
//! citizen who raised the alert on request. Afterwards every column of every table in the database
//! is scanned for either person's phone, name and account id: none is left (only the audit log
//! keeps the erased account id, as the record that the erasure happened). The alert and its
//! assignment still count, under an opaque id; the certificate is revoked "account deleted"; both
//! phones register again as new people.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::support::{
    JsonApi, MONAS, Server, TempDir, create_account, database_url, frame_where, ok, open_socket,
    signing_key,
};

const PASSWORD: &str = "kata-sandi-aman";

/// `(schema.table, rows whose text holds `needle`)` for every table of every schema of ours.
async fn rows_holding(pool: &PgPool, needle: &str) -> Vec<(String, i64)> {
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_schema::text, table_name::text FROM information_schema.tables
         WHERE table_type = 'BASE TABLE'
           AND table_schema NOT IN ('pg_catalog', 'information_schema', 'tiger', 'tiger_data', 'topology')
         ORDER BY 1, 2",
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
            found.push((format!("{schema}.{table}"), count));
        }
    }
    found
}

async fn account_id(api: &JsonApi, token: &str) -> String {
    let (status, me) = api
        .send(Method::GET, "/v1/auth/me", Some(token), None)
        .await;
    ok(status, &me);
    me["id"].as_str().expect("an id").to_owned()
}

#[sqlx::test(migrations = false)]
async fn deleted_people_leave_no_personal_data_while_their_alerts_still_count(pool: PgPool) {
    let dir = TempDir::new();
    let key = signing_key(&dir.0);
    let url = database_url(&pool);
    let env = vec![
        ("KREKI_DATABASE__URL", url.clone()),
        ("KREKI_AUTH__SIGNING_KEY_FILE", key.display().to_string()),
        ("KREKI_DISPATCH__CHECKIN_AFTER_S", "1".to_owned()),
    ];
    let server = Server::start(&env).await;
    create_account(
        &url,
        "081300000101",
        PASSWORD,
        "Rina Relawati",
        &["volunteer"],
    );
    create_account(&url, "081300000102", PASSWORD, "Sari Pelapor", &[]);
    create_account(
        &url,
        "081300000103",
        PASSWORD,
        "Admin Kreki",
        &["admin", "trainer"],
    );
    let api = JsonApi::new(&server.base);
    let volunteer = api.login("081300000101", PASSWORD).await;
    let citizen = api.login("081300000102", PASSWORD).await;
    let admin = api.login("081300000103", PASSWORD).await;
    let volunteer_id = account_id(&api, &volunteer).await;
    let citizen_id = account_id(&api, &citizen).await;

    // The volunteer: a push device, a certificate, on duty with a position.
    let (status, body) = api
        .send(
            Method::POST,
            "/v1/devices",
            Some(&volunteer),
            Some(json!({"platform": "android", "token": "fcm-token-of-rina-0123456789"})),
        )
        .await;
    ok(status, &body);
    let (status, certificate) = api
        .send(
            Method::POST,
            "/v1/lms/certificates",
            Some(&admin),
            Some(json!({"user_id": volunteer_id, "certification": "first_aid",
                        "issued_at": "2026-01-10T00:00:00Z", "evidence": "Kartu PMI atas nama Rina Relawati", "holder_name": "Rina Relawati"})),
        )
        .await;
    ok(status, &certificate);
    // Using the LMS records the learner (their name, for certificates).
    let (status, body) = api
        .send(Method::GET, "/v1/lms/courses", Some(&volunteer), None)
        .await;
    ok(status, &body);
    let mut socket = open_socket(&server.base, &volunteer).await;
    for (path, body) in [
        ("/v1/volunteers/me/duty", json!({"on_duty": true})),
        (
            "/v1/volunteers/me/location",
            json!({"lat": MONAS.0 + 150.0 / 110_574.0, "lng": MONAS.1, "accuracy_m": 5}),
        ),
    ] {
        let method = if path.ends_with("duty") {
            Method::PUT
        } else {
            Method::POST
        };
        let (status, answer) = api.send(method, path, Some(&volunteer), Some(body)).await;
        ok(status, &answer);
    }

    // The citizen's alert, answered and completed by the volunteer.
    let response = api
        .client
        .post(format!("{}/v1/alerts", server.base))
        .bearer_auth(&citizen)
        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
        .json(
            &json!({"kind": "other", "location": {"lat": MONAS.0, "lng": MONAS.1, "accuracy_m": 10},
                      "note": "Sari Pelapor di gerbang 081300000102"}),
        )
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), StatusCode::CREATED);
    let alert: Value = response.json().await.expect("JSON");
    let alert_id = alert["id"].as_str().expect("an id").to_owned();
    let offer = frame_where(&mut socket, "offer", Duration::from_secs(15), |_| true)
        .await
        .expect("an offer");
    let offer_id = offer["offer"]["id"]
        .as_str()
        .expect("an offer id")
        .to_owned();
    let (status, assignment) = api
        .send(
            Method::POST,
            &format!("/v1/offers/{offer_id}/accept"),
            Some(&volunteer),
            None,
        )
        .await;
    ok(status, &assignment);
    let assignment_id = assignment["id"].as_str().expect("an id").to_owned();
    let (status, body) = api
        .send(
            Method::POST,
            &format!("/v1/assignments/{assignment_id}/status"),
            Some(&volunteer),
            Some(json!({"status": "completed"})),
        )
        .await;
    ok(status, &body);

    // Positions reach the history through the write-behind writer; wait for them.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let kept: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM dispatch.location_history WHERE volunteer_id::text = $1",
        )
        .bind(&volunteer_id)
        .fetch_one(&pool)
        .await
        .expect("counted");
        if kept > 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no location history written"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for needle in [volunteer_id.as_str(), "+6281300000101", "Rina Relawati"] {
        assert!(
            !rows_holding(&pool, needle).await.is_empty(),
            "{needle} was never stored?"
        );
    }

    // The volunteer deletes their account; the admin deletes the citizen's on request.
    let (status, body) = api
        .send(
            Method::DELETE,
            "/v1/auth/me",
            Some(&volunteer),
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = api
        .send(
            Method::DELETE,
            &format!("/v1/admin/users/{citizen_id}?reason=permintaan%20tertulis"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

    // Give a write-behind flush or a check-in that was in flight its chance to land, then scan.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for needle in [
        volunteer_id.as_str(),
        "+6281300000101",
        "081300000101",
        "Rina Relawati",
        citizen_id.as_str(),
        "+6281300000102",
        "081300000102",
        "Sari Pelapor",
        "fcm-token-of-rina",
    ] {
        let found: Vec<_> = rows_holding(&pool, needle)
            .await
            .into_iter()
            .filter(|(table, _)| table != "auth.audit_log")
            .collect();
        assert!(found.is_empty(), "{needle} is still in {found:?}");
    }
    // The audit log holds the erased ids (what was erased, by whom, why) and nothing else of them.
    let audit: Vec<(String, Option<uuid::Uuid>, String)> =
        sqlx::query_as("SELECT action, subject, reason FROM auth.audit_log ORDER BY id")
            .fetch_all(&pool)
            .await
            .expect("read");
    let actions: Vec<_> = audit.iter().map(|(action, _, _)| action.as_str()).collect();
    assert_eq!(actions, ["user.self_delete", "user.delete"]);
    assert_eq!(audit[1].2, "permintaan tertulis");

    // The incident still counts: the alert and its assignment, under an opaque id.
    let (alerts, assignments): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM dispatch.alerts WHERE id::text = $1),
                (SELECT count(*) FROM dispatch.assignments WHERE alert_id::text = $1 AND status = 'completed')",
    )
    .bind(&alert_id)
    .fetch_one(&pool)
    .await
    .expect("counted");
    assert_eq!((alerts, assignments), (1, 1));
    let (revoked_reason,): (Option<String>,) =
        sqlx::query_as("SELECT revoked_reason FROM lms.certificates WHERE id::text = $1")
            .bind(certificate["id"].as_str().expect("an id"))
            .fetch_one(&pool)
            .await
            .expect("kept");
    assert_eq!(revoked_reason.as_deref(), Some("account deleted"));

    // Both phones are free for new people.
    for phone in ["081300000101", "081300000102"] {
        let (status, body) = api
            .send(
                Method::POST,
                "/v1/auth/register",
                None,
                Some(json!({"phone": phone, "password": PASSWORD, "name": "Orang Baru"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
}
