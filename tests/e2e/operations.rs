//! The coordinators' operations centre through the real `kreki` process and real WebSockets
//! (issue 14): regions with their coordinators; a new account's panic waits in triage and reaches
//! the volunteer only after a coordinator releases it, or by itself after the auto-release time
//! (3 s here); a trusted account's goes at once; the 11th panic in a minute is 429 and the
//! coordinator is told; a coordinator of one region can neither see nor act on another's alert; an
//! unmatched alert's escalation stays until acknowledged; notes, a phoned-in alert and a false
//! alarm closed from triage are on the timeline.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::support::{
    JsonApi, MONAS, Server, Socket, TempDir, create_account, database_url, frame_where, ok,
    open_socket, signing_key, square,
};

const PASSWORD: &str = "kata-sandi-aman";
const PATIENCE: Duration = Duration::from_secs(15);

/// Presses panic with a fresh key: status, body and the `Retry-After` header.
async fn panic(
    api: &JsonApi,
    token: &str,
    kind: &str,
    at: (f64, f64),
) -> (StatusCode, Value, Option<String>) {
    let response = api
        .client
        .post(format!("{}/v1/alerts", api.base))
        .bearer_auth(token)
        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
        .json(&json!({"kind": kind, "location": {"lat": at.0, "lng": at.1, "accuracy_m": 10}}))
        .send()
        .await
        .expect("answered");
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    (
        status,
        response.json().await.unwrap_or(Value::Null),
        retry_after,
    )
}

async fn offer_of(socket: &mut Socket, alert: &str, within: Duration) -> Option<Value> {
    frame_where(socket, "offer", within, |frame| {
        frame["offer"]["alert"]["id"] == alert
    })
    .await
}

#[sqlx::test(migrations = false)]
async fn triage_regions_limits_and_escalations_work_as_a_coordinator_uses_them(pool: PgPool) {
    let dir = TempDir::new();
    let key = signing_key(&dir.0);
    let url = database_url(&pool);
    let env = vec![
        ("KREKI_DATABASE__URL", url.clone()),
        ("KREKI_AUTH__SIGNING_KEY_FILE", key.display().to_string()),
        ("KREKI_DISPATCH__TRIAGE_AUTO_RELEASE_S", "3".to_owned()),
        ("KREKI_DISPATCH__POLL_INTERVAL_MS", "200".to_owned()),
    ];
    let server = Server::start(&env).await;
    let people = [
        ("081400000001", "Admin", &["admin"][..]),
        ("081400000002", "Ani Pusat", &["coordinator"][..]),
        ("081400000003", "Budi Timur", &["coordinator"][..]),
        ("081400000004", "Relawan", &["volunteer"][..]),
        ("081400000005", "Warga Baru", &[][..]),
        ("081400000006", "Warga Lain", &[][..]),
        ("081400000007", "Warga Lama", &[][..]),
    ];
    for (phone, name, roles) in people {
        create_account(&url, phone, PASSWORD, name, roles);
    }
    let api = JsonApi::new(&server.base);
    let admin = api.login("081400000001", PASSWORD).await;
    let ani = api.login("081400000002", PASSWORD).await;
    let budi = api.login("081400000003", PASSWORD).await;
    let volunteer = api.login("081400000004", PASSWORD).await;
    let newcomer = api.login("081400000005", PASSWORD).await;
    let other_newcomer = api.login("081400000006", PASSWORD).await;

    // Two regions, a coordinator each.
    let mut region_ids = Vec::new();
    for (name, lng, coordinator) in [
        ("Jakarta Pusat", 106.75, "081400000002"),
        ("Jakarta Timur", 106.87, "081400000003"),
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
        let (status, me) = api
            .send(
                Method::GET,
                "/v1/auth/me",
                Some(&api.login(coordinator, PASSWORD).await),
                None,
            )
            .await;
        ok(status, &me);
        assert_eq!(me["trust"], "new");
        assert_eq!(me["phone_verified"], false);
        let id = region["id"].as_str().expect("an id").to_owned();
        let (status, body) = api
            .send(
                Method::PUT,
                &format!("/v1/regions/{id}/coordinators"),
                Some(&admin),
                Some(json!({"user_ids": [me["id"]]})),
            )
            .await;
        ok(status, &body);
        region_ids.push(id);
    }
    // Regions reach the other instances' memory at their next poll; this one has them at once.

    let mut ani_socket = open_socket(&server.base, &ani).await;
    let mut budi_socket = open_socket(&server.base, &budi).await;
    let mut volunteer_socket = open_socket(&server.base, &volunteer).await;
    let (status, body) = api
        .send(
            Method::PUT,
            "/v1/volunteers/me/duty",
            Some(&volunteer),
            Some(json!({"on_duty": true})),
        )
        .await;
    ok(status, &body);
    let (status, body) = api
        .send(
            Method::POST,
            "/v1/volunteers/me/location",
            Some(&volunteer),
            Some(json!({"lat": MONAS.0 + 150.0 / 110_574.0, "lng": MONAS.1, "accuracy_m": 5})),
        )
        .await;
    ok(status, &body);

    // A new account's panic waits for Ani; Budi (another region) cannot touch it.
    let (status, alert, _) = panic(&api, &newcomer, "other", MONAS).await;
    assert_eq!(status, StatusCode::CREATED, "{alert}");
    assert_eq!(alert["status"], "triage");
    assert_eq!(alert["region_id"], region_ids[0].as_str());
    let id = alert["id"].as_str().expect("an id").to_owned();
    let escalation = frame_where(&mut ani_socket, "escalation", PATIENCE, |f| {
        f["escalation"]["alert_id"] == id.as_str()
    })
    .await
    .expect("Ani heard of the triage");
    assert_eq!(escalation["escalation"]["reason"], "triage_waiting");
    assert!(
        offer_of(&mut volunteer_socket, &id, Duration::from_millis(1000))
            .await
            .is_none(),
        "nobody is offered an alert in triage"
    );
    for (method, path) in [
        (Method::GET, format!("/v1/alerts/{id}")),
        (Method::POST, format!("/v1/alerts/{id}/release")),
    ] {
        let (status, problem) = api.send(method, &path, Some(&budi), None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {problem}");
    }
    let (status, released) = api
        .send(
            Method::POST,
            &format!("/v1/alerts/{id}/release"),
            Some(&ani),
            None,
        )
        .await;
    ok(status, &released);
    assert_eq!(released["status"], "dispatching");
    offer_of(&mut volunteer_socket, &id, PATIENCE)
        .await
        .expect("offered after the release");
    // The release acknowledged the triage escalation: Ani's screen hears of it.
    let acknowledged = frame_where(&mut ani_socket, "escalation", PATIENCE, |f| {
        f["escalation"]["alert_id"] == id.as_str() && !f["escalation"]["acknowledged_at"].is_null()
    })
    .await
    .expect("Ani heard the escalation was dealt with");
    assert_eq!(acknowledged["escalation"]["reason"], "triage_waiting");
    // Budi answers for another region: his socket carried none of this alert's news.
    for kind in ["escalation", "alert.updated"] {
        let heard = frame_where(&mut budi_socket, kind, Duration::from_millis(500), |f| {
            f["escalation"]["alert_id"] == id.as_str() || f["alert"]["id"] == id.as_str()
        })
        .await;
        assert!(
            heard.is_none(),
            "Budi heard {kind} of Ani's alert: {heard:?}"
        );
    }

    // Nobody releases the next one: it goes by itself after 3 s.
    let (status, alert, _) = panic(&api, &other_newcomer, "other", (MONAS.0, MONAS.1 + 0.01)).await;
    assert_eq!(status, StatusCode::CREATED, "{alert}");
    assert_eq!(alert["status"], "triage");
    let second = alert["id"].as_str().expect("an id").to_owned();
    let started = std::time::Instant::now();
    offer_of(&mut volunteer_socket, &second, PATIENCE)
        .await
        .expect("released by itself");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "released after {:?}",
        started.elapsed()
    );

    // A coordinator marks the third account trusted: once its token renews, it goes at once.
    let (status, me) = api
        .send(
            Method::GET,
            "/v1/auth/me",
            Some(&api.login("081400000007", PASSWORD).await),
            None,
        )
        .await;
    ok(status, &me);
    let (status, user) = api
        .send(
            Method::PUT,
            &format!(
                "/v1/admin/users/{}/trust",
                me["id"].as_str().expect("an id")
            ),
            Some(&ani),
            Some(json!({"trust": "trusted"})),
        )
        .await;
    ok(status, &user);
    assert_eq!(user["trust"], "trusted");
    let (status, problem) = api
        .send(
            Method::PUT,
            &format!(
                "/v1/admin/users/{}/trust",
                me["id"].as_str().expect("an id")
            ),
            Some(&ani),
            Some(json!({"trust": "vip"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "trust");
    let trusted = api.login("081400000007", PASSWORD).await;
    let (status, alert, _) = panic(&api, &trusted, "other", (MONAS.0 + 0.01, MONAS.1)).await;
    assert_eq!(status, StatusCode::CREATED, "{alert}");
    assert_eq!(alert["status"], "dispatching");

    // The 11th panic in a minute from one account: 429 with Retry-After, and Ani is told.
    for n in 0..9 {
        let at = (MONAS.0 + 0.02 + 0.01 * f64::from(n), MONAS.1);
        let (status, body, _) = panic(&api, &trusted, "other", at).await;
        assert!(status.is_success(), "press {n}: {status} {body}");
    }
    let (status, problem, retry_after) =
        panic(&api, &trusted, "other", (MONAS.0 - 0.05, MONAS.1)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{problem}");
    let retry_after: u64 = retry_after.expect("Retry-After").parse().expect("seconds");
    assert!((1..=60).contains(&retry_after));
    let limited = frame_where(&mut ani_socket, "panic.limited", PATIENCE, |_| true)
        .await
        .expect("Ani was told");
    assert_eq!(limited["citizen"]["id"], me["id"]);

    // Fire needs a certification nobody holds: unmatched, escalated until Ani acknowledges.
    let (status, alert, _) = panic(&api, &newcomer, "fire", (-6.20, 106.80)).await;
    assert_eq!(status, StatusCode::CREATED, "{alert}");
    let fire = alert["id"].as_str().expect("an id").to_owned();
    let (status, released) = api
        .send(
            Method::POST,
            &format!("/v1/alerts/{fire}/release"),
            Some(&ani),
            None,
        )
        .await;
    ok(status, &released);
    let escalation = frame_where(&mut ani_socket, "escalation", PATIENCE, |f| {
        f["escalation"]["alert_id"] == fire.as_str() && f["escalation"]["reason"] == "unmatched"
    })
    .await
    .expect("the unmatched alert escalated");
    let escalation_id = escalation["escalation"]["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    let (status, open) = api
        .send(Method::GET, "/v1/escalations?status=open", Some(&ani), None)
        .await;
    ok(status, &open);
    assert!(
        open.as_array()
            .expect("a list")
            .iter()
            .any(|e| e["id"] == escalation_id.as_str())
    );
    let (status, open_for_budi) = api
        .send(
            Method::GET,
            "/v1/escalations?status=open",
            Some(&budi),
            None,
        )
        .await;
    ok(status, &open_for_budi);
    assert!(
        open_for_budi.as_array().expect("a list").is_empty(),
        "{open_for_budi}"
    );
    let (status, acked) = api
        .send(
            Method::POST,
            &format!("/v1/escalations/{escalation_id}/ack"),
            Some(&ani),
            None,
        )
        .await;
    ok(status, &acked);
    let (_, open) = api
        .send(Method::GET, "/v1/escalations?status=open", Some(&ani), None)
        .await;
    assert!(
        !open
            .as_array()
            .expect("a list")
            .iter()
            .any(|e| e["id"] == escalation_id.as_str())
    );

    // A note, a phoned-in alert, a false alarm closed from triage: all on the timeline.
    let (status, note) = api
        .send(
            Method::POST,
            &format!("/v1/alerts/{fire}/notes"),
            Some(&ani),
            Some(json!({"text": "Damkar sudah dihubungi"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{note}");
    let response = api
        .client
        .post(format!("{}/v1/coordinator/alerts", api.base))
        .bearer_auth(&ani)
        .header("Idempotency-Key", "telepon-1")
        .json(&json!({"kind": "other", "location": {"lat": MONAS.0, "lng": MONAS.1 - 0.01}, "caller_phone": "0812 3456 7890"}))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), StatusCode::CREATED);
    let phoned: Value = response.json().await.expect("JSON");
    let phoned_id = phoned["id"].as_str().expect("an id").to_owned();
    offer_of(&mut volunteer_socket, &phoned_id, PATIENCE)
        .await
        .expect("a phoned-in alert is offered at once");
    let (_, triaged, _) = panic(&api, &other_newcomer, "medical", (MONAS.0, MONAS.1 + 0.03)).await;
    let triaged_id = triaged["id"].as_str().expect("an id").to_owned();
    let (status, closed) = api
        .send(
            Method::POST,
            &format!("/v1/alerts/{triaged_id}/resolve"),
            Some(&ani),
            Some(json!({"outcome": "false_alarm"})),
        )
        .await;
    ok(status, &closed);
    assert_eq!(closed["outcome"], "false_alarm");
    for (alert, wanted) in [
        (&fire, "note"),
        (&phoned_id, "phoned_in"),
        (&triaged_id, "resolved"),
        (&fire, "escalation_acknowledged"),
    ] {
        let (status, timeline) = api
            .send(
                Method::GET,
                &format!("/v1/alerts/{alert}/timeline"),
                Some(&ani),
                None,
            )
            .await;
        ok(status, &timeline);
        assert!(
            timeline
                .as_array()
                .expect("a list")
                .iter()
                .any(|e| e["type"] == wanted),
            "{wanted} in {timeline}"
        );
    }
}
