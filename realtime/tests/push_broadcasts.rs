//! Area broadcasts by push, end to end: the real pusher publishes the broadcast to the
//! recipients' sockets and pushes it to their registered devices through the real FCM and Web
//! Push clients against the fake FCM; people who saw it in the app (their socket acknowledged it)
//! and people who are not recipients get no push.

mod push_support;

use std::time::Duration;

use chrono::Utc;
use futures_util::SinkExt;
use kreki_realtime::Frame;
use kreki_realtime::push::{BroadcastContent, PushWhen};
use push_support::{connect, next_json, quick, start};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

fn broadcast(severity: &str) -> (Frame, BroadcastContent) {
    let content = BroadcastContent {
        broadcast_id: Uuid::now_v7(),
        severity: severity.to_owned(),
        urgent: matches!(severity, "Extreme" | "Severe"),
        text_id: "Gempa M6,1 di Jakarta. Jauhi bangunan tinggi.".into(),
        text_en: "M6.1 earthquake in Jakarta. Keep away from tall buildings.".into(),
        area_desc: "Jakarta".into(),
        expires_at: Utc::now() + chrono::Duration::hours(2),
    };
    let frame = Frame::from_value(json!({"type": "broadcast", "broadcast": {
        "id": content.broadcast_id, "message": {"id": content.text_id, "en": content.text_en},
        "area_desc": "Jakarta", "severity": severity}}))
    .expect("a typed message");
    (frame, content)
}

#[sqlx::test(migrations = "../migrations")]
async fn recipients_devices_get_the_broadcast_unless_they_saw_it_in_the_app(pool: PgPool) {
    let app = start(pool, quick(PushWhen::NoAck)).await;
    let in_app = app.person();
    let closed = app.person();
    let outside = app.person();
    for (person, token) in [
        (&in_app, "phone-in-app"),
        (&closed, "phone-closed"),
        (&outside, "phone-outside"),
    ] {
        let (status, _) = app
            .register(person, json!({"platform": "android", "token": token}))
            .await;
        assert_eq!(status, 201);
    }
    let mut socket = connect(&app, &in_app).await;

    let (frame, content) = broadcast("Extreme");
    app.pusher
        .broadcast_frame(vec![in_app.id, closed.id], &frame, content.clone());
    let got = next_json(&mut socket).await;
    assert_eq!(got["type"], "broadcast");
    socket
        .send(Message::text(
            json!({"type": "ack", "seq": got["seq"], "epoch": got["epoch"]}).to_string(),
        ))
        .await
        .expect("acks");

    let sent = app.pushes("fcm", 1).await;
    let message = &sent[0].body["message"];
    assert_eq!(sent[0].status, 200);
    assert_eq!(message["token"], "phone-closed");
    assert_eq!(message["android"]["priority"], "HIGH");
    assert_eq!(message["android"]["collapse_key"], content.collapse_key());
    let data = &message["data"];
    assert_eq!(data["type"], "broadcast");
    assert_eq!(data["text_id"], content.text_id);
    assert_eq!(data["text_en"], content.text_en);
    assert_eq!(data["broadcast_id"], content.broadcast_id.to_string());
    let ttl: i64 = message["android"]["ttl"]
        .as_str()
        .and_then(|ttl| ttl.strip_suffix('s'))
        .and_then(|ttl| ttl.parse().ok())
        .expect("a TTL");
    assert!(
        (7000..=7200).contains(&ttl),
        "lives until the broadcast ends: {ttl}"
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    let tokens: Vec<Value> = app
        .fake
        .requests()
        .iter()
        .map(|request| request.body["message"]["token"].clone())
        .collect();
    assert_eq!(
        tokens,
        vec![json!("phone-closed")],
        "not to who saw it in the app, not to who was not a recipient"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn a_minor_broadcast_goes_at_normal_priority_to_every_device_and_browser(pool: PgPool) {
    let app = start(pool, quick(PushWhen::Always)).await;
    let person = app.person();
    let browser = p256::SecretKey::from_slice(&[7u8; 32]).expect("a key");
    let p256dh = {
        use base64::Engine;
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(browser.public_key().to_encoded_point(false))
    };
    app.register(&person, json!({"platform": "ios", "token": "iphone-b"}))
        .await;
    app.register(
        &person,
        json!({"platform": "web", "token": {"endpoint": app.fake.web_push_endpoint("tab-b"),
            "keys": {"p256dh": p256dh, "auth": "AQIDBAUGBwgJCgsMDQ4PEA"}}}),
    )
    .await;
    let (frame, content) = broadcast("Minor");
    app.pusher
        .broadcast_frame(vec![person.id], &frame, content.clone());

    let ios = app.pushes("fcm", 1).await;
    let apns = &ios[0].body["message"]["apns"];
    assert_eq!(apns["headers"]["apns-priority"], "5");
    assert_eq!(apns["payload"]["aps"]["interruption-level"], "active");
    assert_eq!(apns["payload"]["aps"]["alert"]["body"], content.text_id);

    let web = app.pushes("web_push", 1).await;
    assert_eq!(web[0].header("urgency"), Some("normal"));
    assert_eq!(
        web[0].header("topic"),
        Some(content.broadcast_id.simple().to_string().as_str())
    );
    let auth = [1u8, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];
    let plain = web_push_native::decrypt(
        web[0].raw.to_vec(),
        &browser,
        &web_push_native::Auth::from(auth),
    )
    .expect("the browser can decrypt it");
    let payload: Value = serde_json::from_slice(&plain).expect("JSON");
    assert_eq!(payload["type"], "broadcast");
    assert_eq!(payload["text_en"], content.text_en);
    assert_eq!(payload["urgent"], false);
}

#[sqlx::test(migrations = "../migrations")]
async fn an_ended_broadcast_is_not_pushed(pool: PgPool) {
    let app = start(pool, quick(PushWhen::Always)).await;
    let person = app.person();
    app.register(
        &person,
        json!({"platform": "android", "token": "phone-late"}),
    )
    .await;
    let (frame, mut content) = broadcast("Severe");
    content.expires_at = Utc::now() - chrono::Duration::seconds(1);
    app.pusher.broadcast_frame(vec![person.id], &frame, content);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(app.fake.requests().is_empty());
}

/// FCM takes at most 4,096 bytes of data: the fake refuses more as FCM does, and the client reads
/// that as a failure another attempt will not fix (broadcast texts are bounded well below it).
#[tokio::test]
async fn the_fake_fcm_refuses_a_payload_over_4_kb_as_fcm_does() {
    use kreki_realtime::push::{FakeFcm, FcmClient, FcmConfig, Outcome, Payload, Platform};
    drop(rustls::crypto::aws_lc_rs::default_provider().install_default());
    let fake = FakeFcm::start("kreki-test", "127.0.0.1:0".parse().expect("an address"))
        .await
        .expect("the fake starts");
    let config = FcmConfig {
        base_url: fake.base_url(),
        token_url: Some(fake.token_url()),
        ..FcmConfig::default()
    };
    let client = FcmClient::from_service_account_json(
        &fake.service_account_json(),
        &config,
        Duration::from_secs(5),
    )
    .expect("usable");
    let token = kreki_realtime::push::device::FcmToken::parse("phone-big").expect("a token");
    let (_, mut content) = broadcast("Severe");
    let fits = client
        .send(
            Platform::Android,
            &token,
            Payload::Broadcast(&content),
            Utc::now(),
        )
        .await;
    assert_eq!(fits, Outcome::Sent);
    content.text_en = "x".repeat(4_100);
    let too_big = client
        .send(
            Platform::Android,
            &token,
            Payload::Broadcast(&content),
            Utc::now(),
        )
        .await;
    assert!(
        matches!(&too_big, Outcome::Failed(why) if why.contains("too big")),
        "{too_big:?}"
    );
}
