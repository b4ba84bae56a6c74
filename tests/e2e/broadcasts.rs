//! Area broadcasts through the real `kreki` process (issue 19, item 3): a coordinator's message
//! reaches the people inside its area on every channel they have, and nobody outside: on the
//! socket of an open app, by push (the fake FCM, through the real FCM client) to the phones of
//! those who did not see it in the app, and by SMS (the fake Twilio) to those with no app open.

use std::time::Duration;

use futures_util::SinkExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::support::{
    JsonApi, MONAS, Server, Socket, TempDir, create_account, database_url, on_duty_at, open_socket,
    signing_key, square,
};
use crate::warnings::{BANDUNG, PASSWORD, PATIENCE, broadcast_frame};

/// A citizen's panic at `at`: the citizen counts as inside an area around it for 12 hours.
async fn panic_at(api: &JsonApi, token: &str, at: (f64, f64)) {
    let panic = api
        .client
        .post(format!("{}/v1/alerts", api.base))
        .bearer_auth(token)
        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
        .json(&json!({"kind": "other", "location": {"lat": at.0, "lng": at.1, "accuracy_m": 10}}))
        .send()
        .await
        .expect("answered");
    assert_eq!(panic.status(), StatusCode::CREATED);
}

/// Five people around a running `kreki`: a coordinator; two volunteers on duty at Monas, one whose
/// app is closed and one whose app is open (its socket is `open_app`); a volunteer on duty in
/// Bandung; a citizen who raised a panic at Monas (so inside an area around it).
struct Scene {
    _server: Server,
    api: JsonApi,
    coordinator: String,
    closed: String,
    open: String,
    outside: String,
    citizen: String,
    open_app: Socket,
    _dir: TempDir,
}

/// Starts `kreki` with `env` added (a closure of the scene's directory, for files it needs) and
/// sets the scene; `phones` is the prefix of the five phone numbers (`{prefix}1` to `{prefix}5`).
async fn scene(
    pool: &PgPool,
    phones: &str,
    env: impl FnOnce(&std::path::Path) -> Vec<(&'static str, String)>,
) -> Scene {
    let dir = TempDir::new();
    let key = signing_key(&dir.0);
    let url = database_url(pool);
    let mut all = vec![
        ("KREKI_DATABASE__URL", url.clone()),
        ("KREKI_AUTH__SIGNING_KEY_FILE", key.display().to_string()),
        (
            "KREKI_DISPATCH__POSITION_FLUSH_INTERVAL_MS",
            "100".to_owned(),
        ),
    ];
    all.extend(env(&dir.0));
    let server = Server::start(&all).await;
    let people = [
        ("Koordinator", &["coordinator"][..]),
        ("Relawan Aplikasi Tertutup", &["volunteer"][..]),
        ("Relawan Aplikasi Terbuka", &["volunteer"][..]),
        ("Relawan Bandung", &["volunteer"][..]),
        ("Warga Monas", &[][..]),
    ];
    let api = JsonApi::new(&server.base);
    let mut tokens = Vec::new();
    for (n, (name, roles)) in people.into_iter().enumerate() {
        let phone = format!("{phones}{}", n + 1);
        create_account(&url, &phone, PASSWORD, name, roles);
        tokens.push(api.login(&phone, PASSWORD).await);
    }
    let [coordinator, closed, open, outside, citizen] =
        <[String; 5]>::try_from(tokens).expect("five people");
    panic_at(&api, &citizen, MONAS).await;
    on_duty_at(&api, &closed, MONAS).await;
    on_duty_at(&api, &open, MONAS).await;
    on_duty_at(&api, &outside, BANDUNG).await;
    let open_app = open_socket(&server.base, &open).await;
    Scene {
        _server: server,
        api,
        coordinator,
        closed,
        open,
        outside,
        citizen,
        open_app,
        _dir: dir,
    }
}

/// The coordinator broadcasts `body` (with the area around Monas); the answer.
async fn broadcast(scene: &Scene, mut body: Value) -> Value {
    // A square of about 20 km around Monas.
    body["area"] = json!({"polygon": square(-6.3, 106.7, 0.2)});
    let (status, sent) = scene
        .api
        .send(
            Method::POST,
            "/v1/broadcasts",
            Some(&scene.coordinator),
            Some(body),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    sent
}

/// Phones and a browser inside get the broadcast by push, in both languages, at the priority its
/// severity asks; the volunteer who saw it in the open app (the socket acknowledged it) is not
/// buzzed again; the volunteer outside gets nothing.
#[sqlx::test(migrations = false)]
async fn a_broadcast_is_pushed_to_phones_inside_that_did_not_show_it(pool: PgPool) {
    drop(rustls::crypto::aws_lc_rs::default_provider().install_default());
    let fcm = kreki_realtime::push::FakeFcm::start(
        "kreki-e2e",
        "127.0.0.1:0".parse().expect("an address"),
    )
    .await
    .expect("the fake FCM starts");
    let mut scene = scene(&pool, "08150000002", |dir| {
        let account_file = dir.join("fcm-service-account.json");
        std::fs::write(&account_file, fcm.service_account_json()).expect("written");
        vec![
            (
                "KREKI_PUSH__FCM__SERVICE_ACCOUNT_FILE",
                account_file.display().to_string(),
            ),
            ("KREKI_PUSH__FCM__BASE_URL", fcm.base_url()),
            ("KREKI_PUSH__FCM__TOKEN_URL", fcm.token_url()),
            ("KREKI_PUSH__PUSH_WHEN", "no_ack".to_owned()),
            ("KREKI_PUSH__PUSH_GRACE_MS", "700".to_owned()),
        ]
    })
    .await;
    for (token, platform, device) in [
        (&scene.closed, "android", "fcm-closed"),
        (&scene.open, "android", "fcm-open"),
        (&scene.outside, "android", "fcm-bandung"),
        (&scene.citizen, "ios", "fcm-warga"),
    ] {
        let (status, body) = scene
            .api
            .send(
                Method::POST,
                "/v1/devices",
                Some(token),
                Some(json!({"platform": platform, "token": device})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    tokio::time::sleep(Duration::from_millis(800)).await;

    let sent = broadcast(
        &scene,
        json!({
            "audience": "everyone",
            "severity": "Extreme",
            "message": {"id": "Gempa kuat. Keluar dari bangunan.", "en": "Strong earthquake. Leave buildings."},
        }),
    )
    .await;
    assert_eq!(sent["reached"]["volunteers"], 2, "{sent}");
    assert_eq!(sent["reached"]["citizens"], 1, "{sent}");
    let id = sent["id"].as_str().expect("id").to_owned();
    let shown = broadcast_frame(&mut scene.open_app, Some(&id), PATIENCE)
        .await
        .expect("the open app shows it");
    scene
        .open_app
        .send(tokio_tungstenite::tungstenite::Message::text(
            json!({"type": "ack", "seq": shown["seq"], "epoch": shown["epoch"]}).to_string(),
        ))
        .await
        .expect("acknowledged");

    let broadcasts = || -> Vec<Value> {
        fcm.requests()
            .into_iter()
            .filter(|request| request.body["message"]["data"]["type"] == "broadcast")
            .map(|request| request.body["message"].clone())
            .collect()
    };
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while broadcasts().len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "two broadcast pushes expected: {:?}",
            fcm.requests()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pushed = broadcasts();
    let mut tokens: Vec<&str> = pushed
        .iter()
        .filter_map(|message| message["token"].as_str())
        .collect();
    tokens.sort_unstable();
    assert_eq!(
        tokens,
        ["fcm-closed", "fcm-warga"],
        "inside and not seen in the app; nobody outside"
    );
    let android = pushed
        .iter()
        .find(|message| message["token"] == "fcm-closed")
        .expect("the closed app's phone");
    assert_eq!(android["android"]["priority"], "HIGH");
    assert_eq!(android["data"]["broadcast_id"], id);
    assert_eq!(
        android["data"]["text_id"],
        "Gempa kuat. Keluar dari bangunan."
    );
    assert_eq!(
        android["data"]["text_en"],
        "Strong earthquake. Leave buildings."
    );
    let iphone = pushed
        .iter()
        .find(|message| message["token"] == "fcm-warga")
        .expect("the citizen's phone");
    assert_eq!(
        iphone["apns"]["payload"]["aps"]["interruption-level"],
        "time-sensitive"
    );
    for message in &pushed {
        let text = message.to_string();
        assert!(
            !text.contains("106.8") && !text.contains("0815"),
            "no position or phone in a push: {text}"
        );
    }
}

/// A broadcast reaches an on-duty volunteer inside whose app is closed by SMS (both languages),
/// the one whose app is open on the socket only, and nobody outside.
#[sqlx::test(migrations = false)]
async fn a_broadcast_is_texted_to_volunteers_inside_without_an_open_app(pool: PgPool) {
    use kreki_sms::fake::{FakeTwilio, FakeTwilioConfig};
    let twilio = FakeTwilio::start(
        FakeTwilioConfig::default(),
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .expect("fake Twilio starts");
    let mut scene = scene(&pool, "08150000001", |_| {
        vec![
            ("KREKI_SMS__PROVIDER", "twilio".to_owned()),
            ("KREKI_SMS__BASE_URL", twilio.base_url()),
            (
                "KREKI_SMS__ACCOUNT_SID",
                twilio.config().account_sid.clone(),
            ),
            ("KREKI_SMS__AUTH_TOKEN", twilio.config().auth_token.clone()),
            ("KREKI_SMS__FROM", twilio.config().number.clone()),
            ("KREKI_SMS__PUBLIC_BASE_URL", "{base}".to_owned()),
        ]
    })
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;

    let sent = broadcast(
        &scene,
        json!({
            "audience": "volunteers",
            "message": {"id": "Banjir di Monas, hindari area.", "en": "Flooding at Monas, avoid the area."},
        }),
    )
    .await;
    assert_eq!(sent["reached"]["volunteers"], 2);
    let id = sent["id"].as_str().expect("id").to_owned();
    assert!(
        broadcast_frame(&mut scene.open_app, Some(&id), PATIENCE)
            .await
            .is_some()
    );
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let text = loop {
        if let Some(text) = twilio.messages_to("+6281500000012").pop() {
            break text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no text: {:?}",
            twilio.messages()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        text.body.contains("Banjir di Monas") && text.body.contains("Flooding at Monas"),
        "{}",
        text.body
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        twilio.messages_to("+6281500000013").is_empty(),
        "the open app got it on its socket"
    );
    assert!(
        twilio.messages_to("+6281500000014").is_empty(),
        "nobody outside"
    );
}
