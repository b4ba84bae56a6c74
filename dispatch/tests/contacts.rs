//! Call-back views (`POST /v1/alerts/{id}/contacts/view`): only a coordinator of the alert's
//! region gets the numbers, with a reason; a phoned-in caller's number (typed by the coordinator,
//! no account) comes back in E.164 while the timeline keeps only its last four digits; each view
//! is in the audit log and on the timeline, and a refused one leaves no trace.

pub mod common;

use common::{MONAS, TestApp};
use http::{Method, StatusCode};
use kreki_auth::Role;
use serde_json::{Value, json};
use sqlx::PgPool;

fn square(lat: f64, lng: f64, size: f64) -> Value {
    json!({"type": "Polygon", "coordinates": [[
        [lng, lat], [lng + size, lat], [lng + size, lat + size], [lng, lat + size], [lng, lat]
    ]]})
}

async fn audit_lines(
    pool: &PgPool,
) -> Vec<(Option<uuid::Uuid>, String, Option<uuid::Uuid>, String)> {
    sqlx::query_as("SELECT actor, action, subject, reason FROM auth.audit_log ORDER BY id")
        .fetch_all(pool)
        .await
        .expect("audit")
}

#[sqlx::test(migrations = "../migrations")]
async fn a_phoned_in_callers_number_is_shown_to_the_regions_coordinator_only_and_audited(
    pool: PgPool,
) {
    let app = TestApp::new(pool.clone()).await;
    let admin = app.person("Admin", &[Role::Admin]);
    let ani = app.person("Ani", &[Role::Coordinator]);
    let budi = app.person("Budi", &[Role::Coordinator]);
    for (name, lng, coordinator) in [("Pusat", 106.75, &ani), ("Timur", 106.87, &budi)] {
        let (status, region) = app
            .call(
                Method::POST,
                "/v1/regions",
                Some(&admin),
                Some(json!({"name": name, "area": square(-6.25, lng, 0.12)})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{region}");
        let (status, body) = app
            .call(
                Method::PUT,
                &format!(
                    "/v1/regions/{}/coordinators",
                    region["id"].as_str().expect("id")
                ),
                Some(&admin),
                Some(json!({"user_ids": [coordinator.id]})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, alert) = app
        .call_with(
            Method::POST,
            "/v1/coordinator/alerts",
            Some(&ani),
            Some(
                json!({"kind": "accident", "location": {"lat": MONAS.0, "lng": MONAS.1},
                        "caller_phone": "0812-3456-7890"}),
            ),
            &[("idempotency-key", "call-1")],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{alert}");
    let id = alert["id"].as_str().expect("id").to_owned();
    let view = format!("/v1/alerts/{id}/contacts/view");

    let (status, timeline) = app
        .call(
            Method::GET,
            &format!("/v1/alerts/{id}/timeline"),
            Some(&ani),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let phoned = timeline
        .as_array()
        .expect("list")
        .iter()
        .find(|event| event["type"] == "phoned_in")
        .expect("phoned_in")
        .clone();
    assert_eq!(phoned["data"]["caller_phone"], "*******7890", "{phoned}");
    assert!(!timeline.to_string().contains("3456"), "{timeline}");

    for (who, body, expected, field) in [
        (
            &budi,
            json!({"reason": "ingin tahu"}),
            StatusCode::FORBIDDEN,
            None,
        ),
        (
            &ani,
            json!({"reason": "ab"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("reason"),
        ),
        (
            &ani,
            json!({"reason": "x".repeat(501)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("reason"),
        ),
        (
            &ani,
            json!({"why": "typo"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
        ),
        (&ani, json!([]), StatusCode::UNPROCESSABLE_ENTITY, None),
    ] {
        let (status, problem) = app.call(Method::POST, &view, Some(who), Some(body)).await;
        assert_eq!(status, expected, "{problem}");
        if let Some(field) = field {
            assert_eq!(problem["errors"][0]["field"], field, "{problem}");
        }
    }
    let (status, _) = app
        .call(
            Method::POST,
            &view,
            None,
            Some(json!({"reason": "tanpa token"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = app
        .call(
            Method::POST,
            "/v1/alerts/not-an-id/contacts/view",
            Some(&ani),
            Some(json!({"reason": "salah id"})),
        )
        .await;
    assert!(status.is_client_error(), "{status}");
    assert!(
        audit_lines(&pool).await.is_empty(),
        "refusals record nothing"
    );

    let (status, contacts) = app
        .call(
            Method::POST,
            &view,
            Some(&ani),
            Some(json!({"reason": "  telepon balik penelepon  "})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{contacts}");
    assert_eq!(
        contacts,
        json!({"caller": {"id": null, "name": null, "phone": "+6281234567890"}, "responders": []})
    );
    assert_eq!(
        audit_lines(&pool).await,
        vec![(
            Some(ani.id),
            "alert.caller_phone.view".to_owned(),
            None,
            format!("alert {id}: telepon balik penelepon")
        )]
    );
    let (_, timeline) = app
        .call(
            Method::GET,
            &format!("/v1/alerts/{id}/timeline"),
            Some(&ani),
            None,
        )
        .await;
    let viewed: Vec<&Value> = timeline
        .as_array()
        .expect("list")
        .iter()
        .filter(|event| event["type"] == "contacts_viewed")
        .collect();
    assert_eq!(viewed.len(), 1, "{timeline}");
    assert_eq!(viewed[0]["data"]["reason"], "telepon balik penelepon");
    assert_eq!(viewed[0]["data"]["by"]["name"], "Ani");
}
