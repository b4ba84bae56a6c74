//! Call-back with an audit of each view through a real `kreki` process (issues 14 and 18): the
//! phones of an alert's caller and responder appear in no alert, list or timeline a coordinator
//! reads; a coordinator of the alert's region asks for them with a reason and gets them; a
//! coordinator of another region gets 403; each number shown is a line of the audit log an admin
//! reads (who, whose, when, why), and the view is on the alert's timeline.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::support::{
    JsonApi, MONAS, Server, TempDir, create_account, database_url, frame_where, ok, open_socket,
    signing_key, square,
};

const PASSWORD: &str = "kata-sandi-aman";
const PATIENCE: Duration = Duration::from_secs(15);

async fn me(api: &JsonApi, token: &str) -> Value {
    let (status, me) = api
        .send(Method::GET, "/v1/auth/me", Some(token), None)
        .await;
    ok(status, &me);
    me
}

#[sqlx::test(migrations = false)]
async fn a_call_back_shows_phones_only_to_the_regions_coordinator_and_every_view_is_audited(
    pool: PgPool,
) {
    let dir = TempDir::new();
    let key = signing_key(&dir.0);
    let url = database_url(&pool);
    let server = Server::start(&[
        ("KREKI_DATABASE__URL", url.clone()),
        ("KREKI_AUTH__SIGNING_KEY_FILE", key.display().to_string()),
    ])
    .await;
    for (phone, name, roles) in [
        ("081500000001", "Admin", &["admin"][..]),
        ("081500000002", "Ani Pusat", &["coordinator"][..]),
        ("081500000003", "Budi Timur", &["coordinator"][..]),
        ("081500000004", "Rudi Relawan", &["volunteer"][..]),
        ("081500000005", "Sari Pelapor", &[][..]),
    ] {
        create_account(&url, phone, PASSWORD, name, roles);
    }
    let api = JsonApi::new(&server.base);
    let admin = api.login("081500000001", PASSWORD).await;
    let ani = api.login("081500000002", PASSWORD).await;
    let budi = api.login("081500000003", PASSWORD).await;
    let volunteer = api.login("081500000004", PASSWORD).await;
    let citizen = api.login("081500000005", PASSWORD).await;
    let (ani_me, volunteer_me, citizen_me) = (
        me(&api, &ani).await,
        me(&api, &volunteer).await,
        me(&api, &citizen).await,
    );

    for (name, lng, coordinator) in [
        ("Jakarta Pusat", 106.75, &ani),
        ("Jakarta Timur", 106.87, &budi),
    ] {
        let (status, region) = api
            .send(
                Method::POST,
                "/v1/regions",
                Some(&admin),
                Some(json!({"name": name, "area": square(-6.25, lng, 0.12)})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{region}");
        let coordinator_id = me(&api, coordinator).await["id"].clone();
        let (status, body) = api
            .send(
                Method::PUT,
                &format!(
                    "/v1/regions/{}/coordinators",
                    region["id"].as_str().expect("id")
                ),
                Some(&admin),
                Some(json!({"user_ids": [coordinator_id]})),
            )
            .await;
        ok(status, &body);
    }

    // Sari's panic near Monas (Jakarta Pusat); Rudi takes it.
    let mut socket = open_socket(&server.base, &volunteer).await;
    for (method, path, body) in [
        (
            Method::PUT,
            "/v1/volunteers/me/duty",
            json!({"on_duty": true}),
        ),
        (
            Method::POST,
            "/v1/volunteers/me/location",
            json!({"lat": MONAS.0 + 150.0 / 110_574.0, "lng": MONAS.1, "accuracy_m": 5}),
        ),
    ] {
        let (status, answer) = api.send(method, path, Some(&volunteer), Some(body)).await;
        ok(status, &answer);
    }
    let response = api
        .client
        .post(format!("{}/v1/alerts", server.base))
        .bearer_auth(&citizen)
        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
        .json(&json!({"kind": "other", "location": {"lat": MONAS.0, "lng": MONAS.1, "accuracy_m": 10}}))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), StatusCode::CREATED);
    let alert: Value = response.json().await.expect("JSON");
    let id = alert["id"].as_str().expect("id").to_owned();
    if alert["status"] == "triage" {
        let (status, body) = api
            .send(
                Method::POST,
                &format!("/v1/alerts/{id}/release"),
                Some(&ani),
                None,
            )
            .await;
        ok(status, &body);
    }
    let offer = frame_where(&mut socket, "offer", PATIENCE, |frame| {
        frame["offer"]["alert"]["id"] == id.as_str()
    })
    .await
    .expect("Rudi is offered the alert");
    let (status, body) = api
        .send(
            Method::POST,
            &format!(
                "/v1/offers/{}/accept",
                offer["offer"]["id"].as_str().expect("id")
            ),
            Some(&volunteer),
            None,
        )
        .await;
    ok(status, &body);

    // Nothing Ani reads about the alert carries a phone.
    let phones = ["81500000005", "81500000004"];
    for path in [
        format!("/v1/alerts/{id}"),
        format!("/v1/alerts/{id}/timeline"),
        "/v1/alerts".to_owned(),
    ] {
        let (status, body) = api.send(Method::GET, &path, Some(&ani), None).await;
        ok(status, &body);
        for phone in phones {
            assert!(!body.to_string().contains(phone), "{path}: {body}");
        }
    }

    // Budi answers for another region; a view needs a reason.
    let view = format!("/v1/alerts/{id}/contacts/view");
    let (status, problem) = api
        .send(
            Method::POST,
            &view,
            Some(&budi),
            Some(json!({"reason": "checking"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    let (status, problem) = api
        .send(
            Method::POST,
            &view,
            Some(&volunteer),
            Some(json!({"reason": "checking"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    for body in [json!({}), json!({"reason": "  "}), json!({"reason": 7})] {
        let (status, problem) = api.send(Method::POST, &view, Some(&ani), Some(body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert_eq!(problem["errors"][0]["field"], "reason", "{problem}");
    }
    let (status, problem) = api
        .send(
            Method::POST,
            &format!("/v1/alerts/{}/contacts/view", uuid::Uuid::new_v4()),
            Some(&ani),
            Some(json!({"reason": "calling back"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
    let (status, audit) = api
        .send(Method::GET, "/v1/admin/audit", Some(&admin), None)
        .await;
    ok(status, &audit);
    assert!(
        !audit.to_string().contains("phone.view"),
        "refused views show nothing and record nothing: {audit}"
    );

    // Ani calls back.
    let reason = "Sari tidak menjawab di aplikasi; telepon balik";
    let (status, contacts) = api
        .send(
            Method::POST,
            &view,
            Some(&ani),
            Some(json!({"reason": reason})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{contacts}");
    assert_eq!(contacts["caller"]["phone"], "+6281500000005", "{contacts}");
    assert_eq!(contacts["caller"]["name"], "Sari Pelapor");
    assert_eq!(
        contacts["responders"][0]["phone"], "+6281500000004",
        "{contacts}"
    );
    assert_eq!(contacts["responders"][0]["id"], volunteer_me["id"]);

    // The audit log has one line per number shown: who, whose, when, why.
    let (status, audit) = api
        .send(
            Method::GET,
            &format!(
                "/v1/admin/audit?actor={}",
                ani_me["id"].as_str().expect("id")
            ),
            Some(&admin),
            None,
        )
        .await;
    ok(status, &audit);
    let lines = audit.as_array().expect("a list");
    let line = |action: &str| {
        lines
            .iter()
            .find(|line| line["action"] == action)
            .unwrap_or_else(|| panic!("no {action} in {audit}"))
            .clone()
    };
    let caller = line("alert.caller_phone.view");
    assert_eq!(caller["subject"], citizen_me["id"]);
    assert_eq!(caller["actor"], ani_me["id"]);
    assert_eq!(caller["reason"], format!("alert {id}: {reason}"));
    assert!(caller["at"].is_string());
    let responder = line("alert.responder_phone.view");
    assert_eq!(responder["subject"], volunteer_me["id"]);
    assert_eq!(lines.len(), 2, "{audit}");

    // And the view is on the timeline, without the numbers.
    let (status, timeline) = api
        .send(
            Method::GET,
            &format!("/v1/alerts/{id}/timeline"),
            Some(&ani),
            None,
        )
        .await;
    ok(status, &timeline);
    let viewed = timeline
        .as_array()
        .expect("a list")
        .iter()
        .find(|event| event["type"] == "contacts_viewed")
        .unwrap_or_else(|| panic!("no contacts_viewed in {timeline}"))
        .clone();
    assert_eq!(viewed["data"]["reason"], reason);
    assert_eq!(viewed["data"]["by"]["id"], ani_me["id"]);
    for phone in phones {
        assert!(!timeline.to_string().contains(phone), "{timeline}");
    }
}
