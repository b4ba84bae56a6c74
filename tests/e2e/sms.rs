//! Text messages through a real `kreki` process and the fake Twilio: a phone verified by its
//! texted code, five wrong codes locking verification, forged webhooks refused without a change,
//! and an outage of the provider that delays a text but never sends it twice.

use std::time::Duration;

use kreki_sms::fake::{FakeTwilio, FakeTwilioConfig};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;

use crate::support::{JsonApi, MONAS, Server, TempDir, create_account, database_url, signing_key};

const PASSWORD: &str = "kata-sandi-aman";

/// A `kreki serve` whose `[sms]` points at `fake`, the fake's replies pointed back at it.
async fn start(pool: &PgPool, fake: &FakeTwilio, dir: &TempDir) -> (Server, String) {
    start_with(pool, fake, dir, &[]).await
}

/// [`start`] with more settings.
async fn start_with(
    pool: &PgPool,
    fake: &FakeTwilio,
    dir: &TempDir,
    more: &[(&'static str, &str)],
) -> (Server, String) {
    let key = signing_key(&dir.0);
    let url = database_url(pool);
    let env = vec![
        ("KREKI_DATABASE__URL", url.clone()),
        ("KREKI_AUTH__SIGNING_KEY_FILE", key.display().to_string()),
        ("KREKI_SMS__PROVIDER", "twilio".to_owned()),
        ("KREKI_SMS__BASE_URL", fake.base_url()),
        ("KREKI_SMS__ACCOUNT_SID", fake.config().account_sid.clone()),
        ("KREKI_SMS__AUTH_TOKEN", fake.config().auth_token.clone()),
        ("KREKI_SMS__FROM", fake.config().number.clone()),
        ("KREKI_SMS__PUBLIC_BASE_URL", "{base}".to_owned()),
        ("KREKI_SMS__RETRY_BASE_MS", "200".to_owned()),
        ("KREKI_SMS__MAX_ATTEMPTS", "5".to_owned()),
    ];
    let env: Vec<(&str, String)> = env
        .into_iter()
        .chain(more.iter().map(|(key, value)| (*key, (*value).to_owned())))
        .collect();
    let server = Server::start(&env).await;
    fake.set_inbound_url(format!("{}/v1/sms/inbound", server.base));
    (server, url)
}

async fn fake() -> FakeTwilio {
    FakeTwilio::start(
        FakeTwilioConfig::default(),
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .expect("fake Twilio starts")
}

fn code_in(fake: &FakeTwilio, phone: &str) -> String {
    let text = fake.messages_to(phone).last().expect("a text").body.clone();
    text.split(|c: char| !c.is_ascii_digit())
        .find(|word| word.len() == 6)
        .expect("six digits")
        .to_owned()
}

#[sqlx::test(migrations = false)]
async fn a_phone_is_verified_by_code_and_five_wrong_codes_lock_it(pool: PgPool) {
    let dir = TempDir::new();
    let fake = fake().await;
    let (server, url) = start_with(
        &pool,
        &fake,
        &dir,
        &[("KREKI_DISPATCH__REQUIRE_VERIFIED_PHONE", "true")],
    )
    .await;
    create_account(&url, "081500000001", PASSWORD, "Sari", &["volunteer"]);
    create_account(&url, "081500000002", PASSWORD, "Budi", &[]);
    let api = JsonApi::new(&server.base);
    let sari = api.login("081500000001", PASSWORD).await;
    let budi = api.login("081500000002", PASSWORD).await;
    let on_duty = Some(json!({"on_duty": true}));
    // With dispatch.require_verified_phone, no duty before the phone is verified.
    let (status, body) = api
        .send(
            Method::PUT,
            "/v1/volunteers/me/duty",
            Some(&sari),
            on_duty.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    let (status, _) = api
        .send(
            Method::POST,
            "/v1/auth/phone/code",
            Some(&sari),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let code = code_in(&fake, "+6281500000001");
    let (status, body) = api
        .send(
            Method::POST,
            "/v1/auth/phone/verify",
            Some(&sari),
            Some(json!({"code": code})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"phone_verified": true, "trust": "verified"}));
    let (_, me) = api
        .send(Method::GET, "/v1/auth/me", Some(&sari), None)
        .await;
    assert_eq!(me["phone_verified"], true);
    assert_eq!(me["trust"], "verified");
    // A new token carries the new trust level: now Sari may go on duty.
    let sari = api.login("081500000001", PASSWORD).await;
    let (status, body) = api
        .send(Method::PUT, "/v1/volunteers/me/duty", Some(&sari), on_duty)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Budi guesses five times: each is 422, then even his right code is 429 for a while.
    let (status, _) = api
        .send(
            Method::POST,
            "/v1/auth/phone/code",
            Some(&budi),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let right = code_in(&fake, "+6281500000002");
    let wrong = if right == "999999" {
        "000000"
    } else {
        "999999"
    };
    for n in 1..=5 {
        let (status, body) = api
            .send(
                Method::POST,
                "/v1/auth/phone/verify",
                Some(&budi),
                Some(json!({"code": wrong})),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "try {n}: {body}");
        assert_eq!(body["errors"][0]["field"], "code", "{body}");
    }
    let (status, body) = api
        .send(
            Method::POST,
            "/v1/auth/phone/verify",
            Some(&budi),
            Some(json!({"code": right})),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let (_, me) = api
        .send(Method::GET, "/v1/auth/me", Some(&budi), None)
        .await;
    assert_eq!(me["phone_verified"], false);
    assert_eq!(me["trust"], "new");

    // The texts' delivery statuses came back through the signed callback.
    let mut delivered = 0;
    for _ in 0..300 {
        delivered = sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM sms.messages WHERE status = 'delivered'",
        )
        .fetch_one(&pool)
        .await
        .expect("count");
        if delivered == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(delivered, 2, "{:?}", fake.callbacks());
    let metrics = reqwest::get(format!("{}/metrics", server.base))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(metrics.contains("sms_sent_total"), "{metrics}");
    assert!(metrics.contains("sms_delivered_total"), "{metrics}");
}

#[sqlx::test(migrations = false)]
async fn forged_webhooks_are_refused_and_change_nothing(pool: PgPool) {
    let dir = TempDir::new();
    let fake = fake().await;
    let (server, url) = start(&pool, &fake, &dir).await;
    create_account(&url, "081500000003", PASSWORD, "Citra", &[]);
    let api = JsonApi::new(&server.base);
    let citra = api.login("081500000003", PASSWORD).await;
    let (status, _) = api
        .send(
            Method::POST,
            "/v1/auth/phone/code",
            Some(&citra),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let sid = fake.messages_to("+6281500000003")[0].sid.clone();
    let status_of = || async {
        sqlx::query_scalar::<_, String>("SELECT status FROM sms.messages WHERE sid = $1")
            .bind(&sid)
            .fetch_one(&pool)
            .await
            .expect("row")
    };
    for _ in 0..300 {
        if status_of().await == "delivered" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status_of().await, "delivered");

    let http = reqwest::Client::new();
    let forged = [
        ("MessageSid", sid.as_str()),
        ("MessageStatus", "undelivered"),
        ("ErrorCode", "30003"),
    ];
    // Unsigned, signed with another token, and signed for another URL: all 403.
    let signatures = [
        None,
        Some(kreki_sms::signature::sign(
            "not-the-token",
            &format!("{}/v1/sms/status", server.base),
            &owned(&forged),
        )),
        Some(kreki_sms::signature::sign(
            &fake.config().auth_token,
            "https://elsewhere.example/v1/sms/status",
            &owned(&forged),
        )),
    ];
    for signature in signatures {
        let mut request = http
            .post(format!("{}/v1/sms/status", server.base))
            .form(&forged);
        if let Some(signature) = &signature {
            request = request.header("X-Twilio-Signature", signature);
        }
        let answer = request.send().await.expect("answered");
        assert_eq!(answer.status(), StatusCode::FORBIDDEN, "{signature:?}");
        let inbound = http
            .post(format!("{}/v1/sms/inbound", server.base))
            .form(&[("From", "+6281500000003"), ("Body", "STOP")])
            .send()
            .await
            .expect("answered");
        assert_eq!(inbound.status(), StatusCode::FORBIDDEN);
    }
    assert_eq!(status_of().await, "delivered");
    let opted_out: i64 = sqlx::query_scalar("SELECT count(*) FROM sms.opt_outs")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(opted_out, 0, "a forged STOP changed nothing");

    // The same STOP, signed by the provider, is taken.
    assert_eq!(
        fake.reply("+6281500000003", "STOP").await.expect("posted"),
        200
    );
    let opted_out: i64 = sqlx::query_scalar("SELECT count(*) FROM sms.opt_outs")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(opted_out, 1);
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[sqlx::test(migrations = false)]
async fn an_outage_of_the_provider_delays_a_text_but_never_duplicates_it(pool: PgPool) {
    let dir = TempDir::new();
    let fake = fake().await;
    let (server, url) = start(&pool, &fake, &dir).await;
    create_account(&url, "081500000004", PASSWORD, "Dewi", &[]);
    create_account(&url, "081500000005", PASSWORD, "Eko", &[]);
    let api = JsonApi::new(&server.base);
    let dewi = api.login("081500000004", PASSWORD).await;
    let eko = api.login("081500000005", PASSWORD).await;

    // Three failures, then the provider is back: the code arrives once, later.
    fake.faults(|faults| faults.fail_next_5xx = 3);
    let started = std::time::Instant::now();
    let (status, body) = api
        .send(
            Method::POST,
            "/v1/auth/phone/code",
            Some(&dewi),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert!(started.elapsed() >= Duration::from_millis(200 + 400 + 800));
    assert_eq!(fake.messages_to("+6281500000004").len(), 1);
    assert_eq!(fake.refused().len(), 3);

    // A longer outage: 503 and nothing sent; when it ends, asking again works at once, one text.
    fake.faults(|faults| faults.down = true);
    let (status, body) = api
        .send(
            Method::POST,
            "/v1/auth/phone/code",
            Some(&eko),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(fake.messages_to("+6281500000005").is_empty());
    fake.faults(|faults| faults.down = false);
    let (status, body) = api
        .send(
            Method::POST,
            "/v1/auth/phone/code",
            Some(&eko),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(fake.messages_to("+6281500000005").len(), 1);
    let code = code_in(&fake, "+6281500000005");
    let (status, _) = api
        .send(
            Method::POST,
            "/v1/auth/phone/verify",
            Some(&eko),
            Some(json!({"code": code})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

/// The offer code of the latest offer text to `phone`, waiting up to 20 s for it.
async fn offer_code_for(fake: &FakeTwilio, phone: &str) -> String {
    for _ in 0..200 {
        if let Some(text) = fake
            .messages_to(phone)
            .into_iter()
            .find(|message| message.body.contains("Balas 1 "))
        {
            let after = text.body.split("Balas 1 ").nth(1).expect("a code");
            return after.chars().take(4).collect();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no offer text reached {phone}: {:?}", fake.messages());
}

#[sqlx::test(migrations = false)]
async fn an_offer_no_socket_took_is_texted_and_accepted_by_reply(pool: PgPool) {
    let dir = TempDir::new();
    let fake = fake().await;
    let key = signing_key(&dir.0);
    let url = database_url(&pool);
    let env = vec![
        ("KREKI_DATABASE__URL", url.clone()),
        ("KREKI_AUTH__SIGNING_KEY_FILE", key.display().to_string()),
        ("KREKI_SMS__PROVIDER", "twilio".to_owned()),
        ("KREKI_SMS__BASE_URL", fake.base_url()),
        ("KREKI_SMS__ACCOUNT_SID", fake.config().account_sid.clone()),
        ("KREKI_SMS__AUTH_TOKEN", fake.config().auth_token.clone()),
        ("KREKI_SMS__FROM", fake.config().number.clone()),
        ("KREKI_SMS__PUBLIC_BASE_URL", "{base}".to_owned()),
        ("KREKI_SMS__OFFER_AFTER_S", "1".to_owned()),
    ];
    // Push goes to a fake FCM that fails every send: only a text can reach the volunteers.
    drop(rustls::crypto::aws_lc_rs::default_provider().install_default());
    let fcm =
        kreki_realtime::push::FakeFcm::start("kreki-e2e", "127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("the fake FCM starts");
    fcm.fail_next(vec![kreki_realtime::push::Fault::Unavailable; 100]);
    let account_file = dir.0.join("fcm-service-account.json");
    std::fs::write(&account_file, fcm.service_account_json()).expect("written");
    let mut env = env;
    env.extend([
        (
            "KREKI_PUSH__FCM__SERVICE_ACCOUNT_FILE",
            account_file.display().to_string(),
        ),
        ("KREKI_PUSH__FCM__BASE_URL", fcm.base_url()),
        ("KREKI_PUSH__FCM__TOKEN_URL", fcm.token_url()),
        ("KREKI_PUSH__PUSH_GRACE_MS", "0".to_owned()),
    ]);
    let server = Server::start(&env).await;
    fake.set_inbound_url(format!("{}/v1/sms/inbound", server.base));
    create_account(
        &url,
        "081600000001",
        PASSWORD,
        "Relawan Satu",
        &["volunteer"],
    );
    create_account(
        &url,
        "081600000002",
        PASSWORD,
        "Relawan Dua",
        &["volunteer"],
    );
    create_account(&url, "081600000003", PASSWORD, "Warga", &[]);
    let api = JsonApi::new(&server.base);
    // Neither volunteer has a socket; their phones are registered for push, which fails.
    for (n, phone) in [(1.0, "081600000001"), (2.0, "081600000002")] {
        let token = api.login(phone, PASSWORD).await;
        let (status, body) = api
            .send(
                Method::POST,
                "/v1/devices",
                Some(&token),
                Some(json!({"platform": "android", "token": format!("fcm-{phone}")})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, body) = api
            .send(
                Method::PUT,
                "/v1/volunteers/me/duty",
                Some(&token),
                Some(json!({"on_duty": true})),
            )
            .await;
        assert!(status.is_success(), "{body}");
        let (status, body) = api
            .send(
                Method::POST,
                "/v1/volunteers/me/location",
                Some(&token),
                Some(json!({"lat": MONAS.0 + n * 100.0 / 110_574.0, "lng": MONAS.1, "accuracy_m": 5})),
            )
            .await;
        assert!(status.is_success(), "{body}");
    }
    let citizen = api.login("081600000003", PASSWORD).await;
    let response = api
        .client
        .post(format!("{}/v1/alerts", api.base))
        .bearer_auth(&citizen)
        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
        .json(&json!({"kind": "other", "location": {"lat": MONAS.0, "lng": MONAS.1, "accuracy_m": 10}}))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), StatusCode::CREATED);
    let alert: serde_json::Value = response.json().await.expect("json");

    let one = offer_code_for(&fake, "+6281600000001").await;
    let two = offer_code_for(&fake, "+6281600000002").await;
    let text = fake.messages_to("+6281600000001")[0].body.clone();
    assert!(text.contains("osm.org/?mlat=-6.17"), "{text}");
    assert!(
        text.contains("reply 1 ") && text.contains("to accept"),
        "{text}"
    );

    // The first reply wins, through the same accept as the app; the second hears "covered".
    assert_eq!(
        fake.reply("+6281600000001", &format!("1 {one}"))
            .await
            .expect("posted"),
        200
    );
    let answer = fake
        .messages_to("+6281600000001")
        .last()
        .expect("answer")
        .body
        .clone();
    assert!(answer.contains("Accepted"), "{answer}");
    assert_eq!(
        fake.reply("+6281600000002", &format!("1 {two}"))
            .await
            .expect("posted"),
        200
    );
    let answer = fake
        .messages_to("+6281600000002")
        .last()
        .expect("answer")
        .body
        .clone();
    assert!(answer.contains("Already covered"), "{answer}");

    let (status, detail) = api
        .send(
            Method::GET,
            &format!("/v1/alerts/{}", alert["id"].as_str().expect("id")),
            Some(&citizen),
            None,
        )
        .await;
    assert!(status.is_success(), "{detail}");
    assert_eq!(detail["status"], "assigned", "{detail}");

    // Push was tried and failed (the fake FCM answered 503).
    assert!(
        fcm.requests().iter().any(|request| request.status == 503),
        "{:?}",
        fcm.requests().iter().map(|r| r.status).collect::<Vec<_>>()
    );
    // At most one text per offer, however long we wait.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for phone in ["+6281600000001", "+6281600000002"] {
        let offers = fake
            .messages_to(phone)
            .into_iter()
            .filter(|message| message.body.contains("Balas 1 "))
            .count();
        assert_eq!(offers, 1, "{phone}: {:?}", fake.messages_to(phone));
    }
}

#[sqlx::test(migrations = false)]
async fn an_escalation_nobody_acknowledged_is_texted_to_the_regions_coordinators(pool: PgPool) {
    let dir = TempDir::new();
    let fake = fake().await;
    let key = signing_key(&dir.0);
    let url = database_url(&pool);
    let env = vec![
        ("KREKI_DATABASE__URL", url.clone()),
        ("KREKI_AUTH__SIGNING_KEY_FILE", key.display().to_string()),
        ("KREKI_SMS__PROVIDER", "twilio".to_owned()),
        ("KREKI_SMS__BASE_URL", fake.base_url()),
        ("KREKI_SMS__ACCOUNT_SID", fake.config().account_sid.clone()),
        ("KREKI_SMS__AUTH_TOKEN", fake.config().auth_token.clone()),
        ("KREKI_SMS__FROM", fake.config().number.clone()),
        ("KREKI_SMS__PUBLIC_BASE_URL", "{base}".to_owned()),
        ("KREKI_SMS__ESCALATION_AFTER_S", "1".to_owned()),
    ];
    let server = Server::start(&env).await;
    create_account(&url, "081700000001", PASSWORD, "Admin", &["admin"]);
    create_account(
        &url,
        "081700000002",
        PASSWORD,
        "Ani Pusat",
        &["coordinator"],
    );
    create_account(&url, "081700000003", PASSWORD, "Warga", &[]);
    let api = JsonApi::new(&server.base);
    let admin = api.login("081700000001", PASSWORD).await;
    let ani = api.login("081700000002", PASSWORD).await;
    let (lat, lng, size) = (MONAS.0 - 0.1, MONAS.1 - 0.1, 0.2);
    let area = json!({"type": "Polygon", "coordinates": [[
        [lng, lat], [lng + size, lat], [lng + size, lat + size], [lng, lat + size], [lng, lat]
    ]]});
    let (status, region) = api
        .send(
            Method::POST,
            "/v1/regions",
            Some(&admin),
            Some(json!({"name": "Jakarta Pusat", "area": area})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{region}");
    let (_, me) = api.send(Method::GET, "/v1/auth/me", Some(&ani), None).await;
    let (status, body) = api
        .send(
            Method::PUT,
            &format!(
                "/v1/regions/{}/coordinators",
                region["id"].as_str().expect("id")
            ),
            Some(&admin),
            Some(json!({"user_ids": [me["id"]]})),
        )
        .await;
    assert!(status.is_success(), "{body}");

    // A new account's panic waits for triage in the region: an escalation nobody acknowledges.
    let citizen = api.login("081700000003", PASSWORD).await;
    let response = api
        .client
        .post(format!("{}/v1/alerts", api.base))
        .bearer_auth(&citizen)
        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
        .json(&json!({"kind": "fire", "location": {"lat": MONAS.0, "lng": MONAS.1, "accuracy_m": 10}}))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), StatusCode::CREATED);
    let mut texts = Vec::new();
    for _ in 0..300 {
        texts = fake.messages_to("+6281700000002");
        if !texts.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(texts.len(), 1, "{:?}", fake.messages());
    assert!(texts[0].body.contains("ESKALASI"), "{}", texts[0].body);
    assert!(
        fake.messages_to("+6281700000001").is_empty(),
        "only the region's coordinators"
    );
}

#[sqlx::test(migrations = false)]
async fn an_offer_answered_in_the_app_in_time_is_never_texted(pool: PgPool) {
    let dir = TempDir::new();
    let fake = fake().await;
    let (server, url) = start_with(&pool, &fake, &dir, &[("KREKI_SMS__OFFER_AFTER_S", "3")]).await;
    create_account(
        &url,
        "081800000001",
        PASSWORD,
        "Relawan Satu",
        &["volunteer"],
    );
    create_account(
        &url,
        "081800000002",
        PASSWORD,
        "Relawan Dua",
        &["volunteer"],
    );
    create_account(&url, "081800000003", PASSWORD, "Warga", &[]);
    let api = JsonApi::new(&server.base);
    let mut tokens = Vec::new();
    for (n, phone) in [(1.0, "081800000001"), (2.0, "081800000002")] {
        let token = api.login(phone, PASSWORD).await;
        let (status, body) = api
            .send(
                Method::PUT,
                "/v1/volunteers/me/duty",
                Some(&token),
                Some(json!({"on_duty": true})),
            )
            .await;
        assert!(status.is_success(), "{body}");
        let (status, body) = api
            .send(
                Method::POST,
                "/v1/volunteers/me/location",
                Some(&token),
                Some(json!({"lat": MONAS.0 + n * 100.0 / 110_574.0, "lng": MONAS.1, "accuracy_m": 5})),
            )
            .await;
        assert!(status.is_success(), "{body}");
        tokens.push(token);
    }
    let citizen = api.login("081800000003", PASSWORD).await;
    let response = api
        .client
        .post(format!("{}/v1/alerts", api.base))
        .bearer_auth(&citizen)
        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
        .json(&json!({"kind": "other", "location": {"lat": MONAS.0, "lng": MONAS.1, "accuracy_m": 10}}))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), StatusCode::CREATED);
    // The first volunteer accepts in the app at once: the second's offer is withdrawn.
    let (status, offers) = api
        .send(
            Method::GET,
            "/v1/volunteers/me/offers",
            Some(&tokens[0]),
            None,
        )
        .await;
    assert!(status.is_success(), "{offers}");
    let offer = offers[0]["id"].as_str().expect("an offer").to_owned();
    let (status, body) = api
        .send(
            Method::POST,
            &format!("/v1/offers/{offer}/accept"),
            Some(&tokens[0]),
            None,
        )
        .await;
    assert!(status.is_success(), "{body}");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(fake.messages().is_empty(), "{:?}", fake.messages());
}
