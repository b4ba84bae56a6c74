//! Push end to end: the device routes and `/v1/ws` on a real server (127.0.0.1:0) against the
//! real PostgreSQL, the real FCM and Web Push clients against the fake FCM, real WebSocket
//! clients acknowledging offers.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures_util::SinkExt;
use kreki_realtime::push::{Acknowledgements, Fault, PushConfig, PushContent, PushWhen};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

mod push_support;

use push_support::{PATIENCE, Person, connect, next_json, quick, start, start_with};

fn offer_for(offer_id: Uuid) -> (Value, PushContent) {
    let alert_id = Uuid::now_v7();
    let expires_at = Utc::now() + chrono::Duration::seconds(30);
    // The WebSocket frame may carry what the app shows at once; the push may not.
    let frame = json!({"type": "offer", "offer": {"id": offer_id, "alert_id": alert_id,
        "citizen_name": "Siti Rahma", "citizen_phone": "+6281234567890", "lat": -6.2, "lng": 106.8}});
    let push = PushContent {
        kind: "cardiac_arrest".into(),
        distance_m: 420,
        offer_id,
        alert_id,
        expires_at,
        drill: false,
    };
    (frame, push)
}

#[sqlx::test(migrations = "../migrations")]
async fn a_user_without_a_socket_gets_a_high_priority_fcm_push_without_citizen_details(
    pool: PgPool,
) {
    let app = start(pool, quick(PushWhen::NoAck)).await;
    let person = app.person();
    let (status, device) = app
        .register(
            &person,
            json!({"platform": "android", "token": "phone-1:APA91b"}),
        )
        .await;
    assert_eq!(status, 201, "{device}");
    let (status, again) = app
        .register(
            &person,
            json!({"platform": "android", "token": "phone-1:APA91b"}),
        )
        .await;
    assert_eq!(
        (status, &again["id"]),
        (200, &device["id"]),
        "registration is idempotent"
    );

    let (frame, push) = offer_for(Uuid::now_v7());
    app.pusher.offer(person.id, frame, push.clone());
    let sent = app.pushes("fcm", 1).await;
    assert_eq!(sent[0].status, 200);
    assert!(
        sent[0]
            .header("authorization")
            .is_some_and(|auth| auth.starts_with("Bearer ya29.fake-"))
    );
    let message = &sent[0].body["message"];
    assert_eq!(message["token"], "phone-1:APA91b");
    assert_eq!(message["android"]["priority"], "HIGH");
    assert_eq!(
        message["android"]["collapse_key"],
        format!("offer-{}", push.offer_id)
    );
    let ttl_s: u64 = message["android"]["ttl"]
        .as_str()
        .and_then(|ttl| ttl.strip_suffix('s'))
        .and_then(|ttl| ttl.parse().ok())
        .expect("a ttl in seconds");
    assert!(
        (25..=30).contains(&ttl_s),
        "TTL ends at the deadline: {ttl_s}"
    );
    assert_eq!(message["data"]["kind"], "cardiac_arrest");
    assert_eq!(message["data"]["distance_m"], "420");
    assert_eq!(message["data"]["offer_id"], push.offer_id.to_string());
    let raw = String::from_utf8_lossy(&sent[0].raw).to_string();
    for secret in ["Siti", "+62812", "-6.2", "106.8"] {
        assert!(!raw.contains(secret), "the push leaks {secret}: {raw}");
    }
    assert_eq!(app.fake.token_requests(), 1);
}

#[sqlx::test(migrations = "../migrations")]
async fn under_no_ack_an_acknowledged_offer_is_not_pushed_but_an_unacknowledged_one_is(
    pool: PgPool,
) {
    let app = start(pool, quick(PushWhen::NoAck)).await;
    let person = app.person();
    app.register(&person, json!({"platform": "ios", "token": "iphone-1"}))
        .await;
    let mut socket = connect(&app, &person).await;

    let (frame, push) = offer_for(Uuid::now_v7());
    app.pusher.offer(person.id, frame, push);
    let got = next_json(&mut socket).await;
    assert_eq!(got["type"], "offer");
    socket
        .send(Message::text(
            json!({"type": "ack", "seq": got["seq"], "epoch": got["epoch"]}).to_string(),
        ))
        .await
        .expect("acks");
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(
        app.fake.requests().is_empty(),
        "an acknowledged offer is not pushed"
    );

    // Connected but silent (the app is frozen in the background): pushed after the grace, and
    // counted as an offer that needed the push although a socket was open.
    assert_eq!(app.pusher.unacknowledged_offers(), (0, 0));
    let (frame, push) = offer_for(Uuid::now_v7());
    app.pusher.offer(person.id, frame, push.clone());
    assert_eq!(next_json(&mut socket).await["type"], "offer");
    let sent = app.pushes("fcm", 1).await;
    assert_eq!(app.pusher.unacknowledged_offers(), (1, 0));
    let apns = &sent[0].body["message"]["apns"];
    assert_eq!(apns["headers"]["apns-priority"], "10");
    assert_eq!(
        apns["headers"]["apns-collapse-id"],
        format!("offer-{}", push.offer_id)
    );
    assert_eq!(
        apns["payload"]["aps"]["interruption-level"],
        "time-sensitive"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn always_pushes_even_when_the_socket_acknowledges(pool: PgPool) {
    let app = start(pool, quick(PushWhen::Always)).await;
    let person = app.person();
    app.register(&person, json!({"platform": "android", "token": "phone-2"}))
        .await;
    let mut socket = connect(&app, &person).await;
    let (frame, push) = offer_for(Uuid::now_v7());
    app.pusher.offer(person.id, frame, push);
    let got = next_json(&mut socket).await;
    socket
        .send(Message::text(
            json!({"type": "ack", "seq": got["seq"]}).to_string(),
        ))
        .await
        .expect("acks");
    assert_eq!(app.pushes("fcm", 1).await[0].status, 200);
}

#[sqlx::test(migrations = "../migrations")]
async fn tokens_fcm_calls_unregistered_or_invalid_are_pruned(pool: PgPool) {
    let app = start(pool, quick(PushWhen::Always)).await;
    let person = app.person();
    for token in ["gone-1", "bad-1", "fine-1"] {
        let (status, _) = app
            .register(&person, json!({"platform": "android", "token": token}))
            .await;
        assert_eq!(status, 201);
    }
    app.fake.unregister("gone-1");
    app.fake.invalidate("bad-1");
    let (frame, push) = offer_for(Uuid::now_v7());
    app.pusher.offer(person.id, frame, push);
    let sent = app.pushes("fcm", 3).await;
    let mut statuses: Vec<u16> = sent.iter().map(|request| request.status).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 400, 404]);
    let started = tokio::time::Instant::now();
    while app.devices(&person).await.len() != 1 {
        assert!(started.elapsed() < PATIENCE, "dead tokens are pruned");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn quota_exceeded_is_retried_after_retry_after(pool: PgPool) {
    let app = start(pool, quick(PushWhen::Always)).await;
    let person = app.person();
    app.register(&person, json!({"platform": "android", "token": "phone-3"}))
        .await;
    app.fake.fail_next([
        Fault::QuotaExceeded { retry_after_s: 1 },
        Fault::Unavailable,
    ]);
    let (frame, push) = offer_for(Uuid::now_v7());
    let started = tokio::time::Instant::now();
    app.pusher.offer(person.id, frame, push);
    let sent = app.pushes("fcm", 3).await;
    let statuses: Vec<u16> = sent.iter().map(|request| request.status).collect();
    assert_eq!(statuses, [429, 503, 200]);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was honoured"
    );
    assert_eq!(
        app.devices(&person).await.len(),
        1,
        "a busy FCM prunes nothing"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn web_push_goes_out_with_vapid_ttl_and_topic_and_gone_subscriptions_are_pruned(
    pool: PgPool,
) {
    let app = start(pool, quick(PushWhen::Always)).await;
    let person = app.person();
    let browser = p256::SecretKey::from_slice(&[9u8; 32]).expect("a key");
    let p256dh = {
        use base64::Engine;
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(browser.public_key().to_encoded_point(false))
    };
    let subscription = |id: &str| {
        json!({"platform": "web", "token": {"endpoint": app.fake.web_push_endpoint(id),
            "keys": {"p256dh": p256dh, "auth": "AQIDBAUGBwgJCgsMDQ4PEA"}}})
    };
    assert_eq!(app.register(&person, subscription("tab-1")).await.0, 201);
    assert_eq!(app.register(&person, subscription("tab-2")).await.0, 201);
    app.fake.unregister("tab-2");
    let (frame, push) = offer_for(Uuid::now_v7());
    app.pusher.offer(person.id, frame, push.clone());
    let sent = app.pushes("web_push", 2).await;
    let ok = sent
        .iter()
        .find(|request| request.status == 201)
        .expect("one delivered");
    assert!(
        ok.header("authorization")
            .is_some_and(|auth| auth.starts_with("vapid t="))
    );
    assert_eq!(ok.header("urgency"), Some("high"));
    assert_eq!(
        ok.header("topic"),
        Some(push.offer_id.simple().to_string().as_str())
    );
    assert_eq!(ok.header("content-encoding"), Some("aes128gcm"));
    let ttl: u64 = ok
        .header("ttl")
        .and_then(|ttl| ttl.parse().ok())
        .expect("a TTL");
    assert!((25..=30).contains(&ttl), "{ttl}");
    let auth = [1u8, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];
    let plain = web_push_native::decrypt(
        ok.raw.to_vec(),
        &browser,
        &web_push_native::Auth::from(auth),
    )
    .expect("the browser can decrypt it");
    let payload: Value = serde_json::from_slice(&plain).expect("JSON");
    assert_eq!(payload["kind"], "cardiac_arrest");
    assert_eq!(payload["distance_m"], 420);
    assert!(payload.get("citizen_name").is_none());
    let started = tokio::time::Instant::now();
    while app.devices(&person).await.len() != 1 {
        assert!(
            started.elapsed() < PATIENCE,
            "a gone subscription is pruned"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn bad_registrations_are_422_naming_the_field_and_devices_are_private(pool: PgPool) {
    let app = start(pool, quick(PushWhen::NoAck)).await;
    let person = app.person();
    for (body, field) in [
        (json!({"token": "x"}), "platform"),
        (json!({"platform": "nokia", "token": "x"}), "platform"),
        (json!({"platform": 5, "token": "x"}), "platform"),
        (json!({"platform": "android"}), "token"),
        (
            json!({"platform": "android", "token": "has spaces"}),
            "token",
        ),
        (json!({"platform": "ios", "token": {"a": 1}}), "token"),
        (
            json!({"platform": "web", "token": {"endpoint": "http://x", "keys": {}}}),
            "token.keys.p256dh",
        ),
    ] {
        let (status, problem) = app.register(&person, body.clone()).await;
        assert_eq!(status, 422, "{body} -> {problem}");
        let fields: Vec<&str> = problem["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .filter_map(|error| error["field"].as_str())
            .collect();
        assert!(fields.contains(&field), "{body} -> {problem}");
    }
    let (_, device) = app
        .register(&person, json!({"platform": "android", "token": "mine"}))
        .await;
    let other = app.person();
    let url = format!(
        "http://{}/v1/devices/{}",
        app.addr,
        device["id"].as_str().expect("an id")
    );
    let delete = |who: &Person| app.http.delete(&url).bearer_auth(&who.token).send();
    assert_eq!(delete(&other).await.expect("answers").status(), 404);
    assert_eq!(delete(&person).await.expect("answers").status(), 204);
    assert_eq!(delete(&person).await.expect("answers").status(), 404);
    let anonymous = app
        .http
        .post(format!("http://{}/v1/devices", app.addr))
        .json(&json!({}))
        .send()
        .await
        .expect("answers");
    assert_eq!(anonymous.status(), 401);
}

#[sqlx::test(migrations = "../migrations")]
async fn each_user_keeps_the_newest_devices_and_a_token_moves_between_accounts(pool: PgPool) {
    let app = start(
        pool,
        PushConfig {
            max_devices_per_user: 2,
            ..quick(PushWhen::NoAck)
        },
    )
    .await;
    let (a, b) = (app.person(), app.person());
    for token in ["t1", "t2", "t3"] {
        app.register(&a, json!({"platform": "android", "token": token}))
            .await;
    }
    assert_eq!(app.devices(&a).await.len(), 2);
    assert_eq!(
        app.register(&b, json!({"platform": "android", "token": "t3"}))
            .await
            .0,
        200
    );
    assert_eq!(app.devices(&a).await.len(), 1);
    assert_eq!(app.devices(&b).await.len(), 1);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_full_queue_drops_the_push_but_never_the_websocket_frame(pool: PgPool) {
    let app = start(
        pool,
        PushConfig {
            queue: 1,
            ..quick(PushWhen::NoAck)
        },
    )
    .await;
    let person = app.person();
    app.register(&person, json!({"platform": "android", "token": "phone-q"}))
        .await;
    let mut socket = connect(&app, &person).await;
    // The first offer waits out its grace holding the one queue place; the second finds none.
    let (first, push) = offer_for(Uuid::now_v7());
    app.pusher.offer(person.id, first, push);
    let (second, push) = offer_for(Uuid::now_v7());
    app.pusher.offer(person.id, second, push);
    assert_eq!(next_json(&mut socket).await["seq"], 1);
    assert_eq!(next_json(&mut socket).await["seq"], 2);
    assert_eq!(app.pushes("fcm", 1).await.len(), 1);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        app.fake.requests().len(),
        1,
        "the second offer was not pushed"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn the_per_user_device_lookup_uses_its_index(pool: PgPool) {
    let mut tx = pool.begin().await.expect("a transaction");
    sqlx::query("SET LOCAL enable_seqscan = off")
        .execute(&mut *tx)
        .await
        .expect("set");
    let plan: Vec<String> = sqlx::query_scalar(
        "EXPLAIN SELECT id FROM realtime.devices WHERE user_id = $1 ORDER BY last_seen_at DESC, id DESC",
    )
    .bind(Uuid::now_v7())
    .fetch_all(&mut *tx)
    .await
    .expect("a plan");
    let plan = plan.join("\n");
    assert!(plan.contains("devices_user_id_last_seen_idx"), "{plan}");
}

/// Acks seen on another instance, as a bus-backed implementation would report them.
struct AckedElsewhere;

impl Acknowledgements for AckedElsewhere {
    fn acknowledged(
        &self,
        _user: Uuid,
        frame: &kreki_realtime::Frame,
    ) -> kreki_realtime::BoxFuture<'_, bool> {
        let message: Value = serde_json::from_str(&frame.to_json()).expect("JSON");
        let acked = message["offer"]["citizen_name"] == "Siti Rahma";
        Box::pin(std::future::ready(acked))
    }

    fn connected(&self, _user: Uuid) -> kreki_realtime::BoxFuture<'_, bool> {
        Box::pin(std::future::ready(false))
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn the_no_ack_policy_asks_the_wired_acknowledgements(pool: PgPool) {
    let app = start_with(pool, quick(PushWhen::NoAck), Some(Arc::new(AckedElsewhere))).await;
    let person = app.person();
    app.register(&person, json!({"platform": "android", "token": "phone-b"}))
        .await;
    let (acked, push) = offer_for(Uuid::now_v7());
    app.pusher.offer(person.id, acked, push);
    let (mut other, push) = offer_for(Uuid::now_v7());
    other["offer"]["citizen_name"] = json!("someone else");
    app.pusher.offer(person.id, other, push.clone());
    let sent = app.pushes("fcm", 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        app.fake.requests().len(),
        1,
        "only the offer not acknowledged elsewhere"
    );
    assert_eq!(
        sent[0].body["message"]["data"]["offer_id"],
        push.offer_id.to_string()
    );
}
