//! Phone verification through the real routes and the fake Twilio: the code arrives by text, a
//! wrong one counts, five wrong ones lock, resends are throttled, and the right one verifies the
//! phone and raises trust (never lowering `trusted`).

use std::sync::Arc;

use kreki_sms::fake::{FakeTwilio, FakeTwilioConfig};
use kreki_sms::{ProviderKind, SmsConfig};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::json;
use sqlx::PgPool;

use crate::common::{self, PASSWORD, TestApp};

async fn with_sms(app: &TestApp) -> FakeTwilio {
    let fake = FakeTwilio::start(
        FakeTwilioConfig::default(),
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .expect("fake Twilio starts");
    let config = SmsConfig {
        provider: ProviderKind::Fake,
        base_url: fake.base_url(),
        account_sid: fake.config().account_sid.clone(),
        auth_token: SecretString::from(fake.config().auth_token.clone()),
        from: fake.config().number.clone(),
        ..SmsConfig::default()
    };
    let sms = kreki_sms::build(app.pool.clone(), config).expect("SMS builds");
    app.state.service.set_sms(Arc::clone(&sms.service));
    fake
}

/// Registers a citizen and signs in; answers (phone, access token).
async fn citizen(app: &TestApp, n: u32) -> (String, String) {
    let phone = common::phone(n);
    let answer = app
        .register(&json!({"phone": phone, "password": PASSWORD, "name": "Sari"}))
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{answer:#?}");
    (phone.clone(), app.tokens(&phone, PASSWORD).await.access)
}

fn last_code(fake: &FakeTwilio, phone: &str) -> String {
    let body = fake
        .messages_to(phone)
        .last()
        .expect("a text reached the phone")
        .body
        .clone();
    body.split(|c: char| !c.is_ascii_digit())
        .find(|word| word.len() == 6)
        .expect("six digits in the text")
        .to_owned()
}

fn wrong_code(right: &str) -> String {
    if right == "000000" {
        "111111"
    } else {
        "000000"
    }
    .to_owned()
}

#[sqlx::test(migrations = "../migrations")]
async fn a_phone_is_verified_by_the_texted_code(pool: PgPool) {
    let app = common::spawn(pool).await;
    let fake = with_sms(&app).await;
    let (phone, token) = citizen(&app, 1).await;
    assert_eq!(app.me(&token).await.body["phone_verified"], false);

    let sent = app
        .post_json("/v1/auth/phone/code", &json!({}), Some(&token))
        .await;
    assert_eq!(sent.status, StatusCode::ACCEPTED, "{sent:#?}");
    let code = last_code(&fake, &phone);

    // At once again: throttled, and no second text.
    let again = app
        .post_json("/v1/auth/phone/code", &json!({}), Some(&token))
        .await;
    again.assert_problem(429, "phone-code-throttled");
    assert!(again.header("retry-after").is_some());
    assert_eq!(fake.messages_to(&phone).len(), 1);

    // Not six digits: 422 naming `code`, no try counted.
    let bad = app
        .post_json(
            "/v1/auth/phone/verify",
            &json!({"code": "12a"}),
            Some(&token),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.fields(), ["code"]);

    let wrong = app
        .post_json(
            "/v1/auth/phone/verify",
            &json!({"code": wrong_code(&code)}),
            Some(&token),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY, "{wrong:#?}");

    let right = app
        .post_json(
            "/v1/auth/phone/verify",
            &json!({"code": code}),
            Some(&token),
        )
        .await;
    assert_eq!(right.status, StatusCode::OK, "{right:#?}");
    assert_eq!(
        right.body,
        json!({"phone_verified": true, "trust": "verified"})
    );
    let me = app.me(&token).await;
    assert_eq!(me.body["phone_verified"], true);
    assert_eq!(me.body["trust"], "verified");

    // The code is spent; the stored form was never the code itself.
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM auth.phone_codes")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(stored, 0);
}

#[sqlx::test(migrations = "../migrations")]
async fn five_wrong_codes_lock_verification_for_a_while(pool: PgPool) {
    let app = common::spawn(pool).await;
    let fake = with_sms(&app).await;
    let (phone, token) = citizen(&app, 2).await;
    let sent = app
        .post_json("/v1/auth/phone/code", &json!({}), Some(&token))
        .await;
    assert_eq!(sent.status, StatusCode::ACCEPTED);
    let code = last_code(&fake, &phone);
    let hash: Vec<u8> = sqlx::query_scalar("SELECT code_hash FROM auth.phone_codes")
        .fetch_one(&app.pool)
        .await
        .expect("row");
    assert!(
        !hash.windows(6).any(|w| w == code.as_bytes()),
        "stored hashed"
    );

    for n in 1..=5 {
        let wrong = app
            .post_json(
                "/v1/auth/phone/verify",
                &json!({"code": wrong_code(&code)}),
                Some(&token),
            )
            .await;
        assert_eq!(
            wrong.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "try {n}: {wrong:#?}"
        );
    }
    // Locked: even the right code is refused, and no new code is texted.
    let locked = app
        .post_json(
            "/v1/auth/phone/verify",
            &json!({"code": code}),
            Some(&token),
        )
        .await;
    locked.assert_problem(429, "phone-code-throttled");
    let retry_after: u64 = locked
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((800..=900).contains(&retry_after), "{retry_after}");
    let resend = app
        .post_json("/v1/auth/phone/code", &json!({}), Some(&token))
        .await;
    resend.assert_problem(429, "phone-code-throttled");
    assert_eq!(fake.messages_to(&phone).len(), 1);
    assert_eq!(app.me(&token).await.body["phone_verified"], false);

    // When the lock has passed, a new code works.
    sqlx::query("UPDATE auth.phone_codes SET locked_until = now() - interval '1 s', sent_at = now() - interval '1 h'")
        .execute(&app.pool)
        .await
        .expect("time passes");
    let sent = app
        .post_json("/v1/auth/phone/code", &json!({}), Some(&token))
        .await;
    assert_eq!(sent.status, StatusCode::ACCEPTED, "{sent:#?}");
    let code = last_code(&fake, &phone);
    let right = app
        .post_json(
            "/v1/auth/phone/verify",
            &json!({"code": code}),
            Some(&token),
        )
        .await;
    assert_eq!(right.status, StatusCode::OK, "{right:#?}");
}

#[sqlx::test(migrations = "../migrations")]
async fn verifying_never_lowers_trust_and_needs_a_provider(pool: PgPool) {
    let app = common::spawn(pool).await;
    let (_, token) = citizen(&app, 3).await;
    // No SMS provider wired in: 503, nothing stored.
    let unavailable = app
        .post_json("/v1/auth/phone/code", &json!({}), Some(&token))
        .await;
    assert_eq!(
        unavailable.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{unavailable:#?}"
    );

    let fake = with_sms(&app).await;
    let (phone, token) = citizen(&app, 4).await;
    sqlx::query("UPDATE auth.users SET trust = 'trusted' WHERE phone = $1")
        .bind(&phone)
        .execute(&app.pool)
        .await
        .expect("trusted");
    let sent = app
        .post_json("/v1/auth/phone/code", &json!({}), Some(&token))
        .await;
    assert_eq!(sent.status, StatusCode::ACCEPTED);
    let right = app
        .post_json(
            "/v1/auth/phone/verify",
            &json!({"code": last_code(&fake, &phone)}),
            Some(&token),
        )
        .await;
    assert_eq!(
        right.body,
        json!({"phone_verified": true, "trust": "trusted"})
    );
}
