//! The Twilio client against the fake Twilio, and the webhooks through a real socket over a
//! per-test database: what a deployment would see.

use std::sync::Arc;
use std::time::Duration;

use kreki_sms::config::{ProviderKind, SmsConfig};
use kreki_sms::fake::{FakeTwilio, FakeTwilioConfig};
use kreki_sms::twilio::TwilioClient;
use kreki_sms::{E164, OutboundSms, Purpose, SmsError, SmsProvider, Text};
use secrecy::SecretString;

fn config_for(fake: &FakeTwilio) -> SmsConfig {
    SmsConfig {
        provider: ProviderKind::Fake,
        base_url: fake.base_url(),
        account_sid: fake.config().account_sid.clone(),
        auth_token: SecretString::from(fake.config().auth_token.clone()),
        from: fake.config().number.clone(),
        retry_base_ms: 20,
        max_retry_after_s: 1,
        ..SmsConfig::default()
    }
}

async fn fake(max_per_second: u32) -> FakeTwilio {
    FakeTwilio::start(
        FakeTwilioConfig {
            max_per_second,
            ..FakeTwilioConfig::default()
        },
        "127.0.0.1:0".parse().expect("address"),
    )
    .await
    .expect("fake starts")
}

fn text(to: &str, body: &str) -> OutboundSms {
    OutboundSms {
        to: E164::parse(to).expect("E.164"),
        body: body.to_owned(),
        status_callback: None,
    }
}

#[tokio::test]
async fn sends_and_refuses_like_twilio() {
    let fake = fake(100).await;
    let client = TwilioClient::new(&config_for(&fake)).expect("client");
    let sent = client
        .send(&text("+6281234567890", "Halo"))
        .await
        .expect("sent");
    assert!(sent.sid.starts_with("SM"));
    assert_eq!(sent.status, "queued");
    assert_eq!(fake.messages_to("+6281234567890")[0].body, "Halo");

    // Too long is caught before any request; a number Twilio refuses is final, not retried.
    let long = "x".repeat(1601);
    assert!(matches!(
        client.send(&text("+6281234567890", &long)).await,
        Err(SmsError::Invalid(_))
    ));
    let before = fake.refused().len();
    // E.164 in shape, so it reaches the fake; the fake refuses what Twilio would (+62 then 0).
    let wrong_credentials = TwilioClient::new(&SmsConfig {
        auth_token: SecretString::from("wrong"),
        ..config_for(&fake)
    })
    .expect("client");
    match wrong_credentials
        .send(&text("+6281234567890", "Halo"))
        .await
    {
        Err(SmsError::Rejected {
            status: 401, code, ..
        }) => assert_eq!(code, Some(20003)),
        other => panic!("expected 401 20003, got {other:?}"),
    }
    assert_eq!(fake.refused().len(), before + 1, "a 4xx is not retried");
}

#[tokio::test]
async fn unsubscribed_number_is_21610_and_rate_limit_is_429_then_retried() {
    let fake = fake(2).await;
    fake.set_inbound_url("http://127.0.0.1:9/unused");
    let client = TwilioClient::new(&config_for(&fake)).expect("client");
    // A STOP reply opts the number out even if the webhook is unreachable.
    let _ = fake.reply("+6281111111111", "STOP").await;
    match client.send(&text("+6281111111111", "Halo")).await {
        Err(error @ SmsError::Rejected { .. }) => assert_eq!(error.reason(), "unsubscribed"),
        other => panic!("expected 21610, got {other:?}"),
    }
    // Three sends in the same second with a limit of two: the third is throttled, retried after
    // the back-off, and lands exactly once.
    for n in 0..3 {
        client
            .send(&text("+6282222222222", &format!("pesan {n}")))
            .await
            .expect("sent, after a retry when throttled");
    }
    assert_eq!(fake.messages_to("+6282222222222").len(), 3);
    assert!(
        fake.refused()
            .iter()
            .any(|(status, code, _)| *status == 429 && *code == Some(20429)),
        "{:?}",
        fake.refused()
    );
}

#[tokio::test]
async fn an_outage_delays_but_never_duplicates() {
    let fake = fake(100).await;
    let client = TwilioClient::new(&SmsConfig {
        max_attempts: 6,
        ..config_for(&fake)
    })
    .expect("client");
    fake.faults(|faults| faults.fail_next_5xx = 3);
    client
        .send(&text("+6283333333333", "Tawaran"))
        .await
        .expect("sent after the outage");
    assert_eq!(fake.messages_to("+6283333333333").len(), 1);
    assert_eq!(fake.refused().len(), 3);

    // An outage longer than the attempts: the error says so, and nothing was stored.
    fake.faults(|faults| faults.down = true);
    let started = std::time::Instant::now();
    match client.send(&text("+6284444444444", "Tawaran")).await {
        Err(SmsError::Unavailable { attempts: 6, .. }) => {}
        other => panic!("expected unavailable, got {other:?}"),
    }
    assert!(started.elapsed() >= Duration::from_millis(20 * (1 + 2 + 4 + 8 + 16)));
    assert!(fake.messages_to("+6284444444444").is_empty());
}

/// The webhooks through a real socket: statuses reach the outbound log, a forged one is 403 and
/// changes nothing, STOP opts out.
#[sqlx::test(migrations = "../migrations")]
async fn webhooks_are_verified_and_recorded(pool: sqlx::PgPool) {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let fake = fake(100).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let config = SmsConfig {
        public_base_url: base.clone(),
        ..config_for(&fake)
    };
    let state = kreki_sms::build(pool.clone(), config).expect("builds");
    let service = Arc::clone(&state.service);
    let (router, _) = kreki_sms::routes::router(state).split_for_parts();
    tokio::spawn(async move { axum::serve(listener, router).await });
    fake.set_inbound_url(format!("{base}/v1/sms/inbound"));

    let to = E164::parse("+6285555555555").expect("E.164");
    let sent = service
        .send(Text {
            to: to.clone(),
            body: "Kode KREKI Anda: 123456".to_owned(),
            purpose: Purpose::VerificationCode,
            user_id: None,
            dedupe_key: Some("test:1".to_owned()),
            reference: None,
        })
        .await
        .expect("sent")
        .expect("first time");
    // The same key again: not sent.
    let again = service
        .send(Text {
            to: to.clone(),
            body: "again".to_owned(),
            purpose: Purpose::VerificationCode,
            user_id: None,
            dedupe_key: Some("test:1".to_owned()),
            reference: None,
        })
        .await
        .expect("no error");
    assert!(again.is_none());
    assert_eq!(fake.messages_to(to.as_str()).len(), 1);
    let mut status = None;
    // Up to 20 s: the callbacks come from another task, and the suite runs on two busy cores.
    for _ in 0..400 {
        status = service.status_of(&sent.sid).await.expect("status");
        if status.as_deref() == Some("delivered") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        status.as_deref(),
        Some("delivered"),
        "{:?}",
        fake.callbacks()
    );

    // A forged status (no signature, then a wrong one): 403, nothing changed.
    let http = reqwest::Client::new();
    let forged = [
        ("MessageSid", sent.sid.as_str()),
        ("MessageStatus", "undelivered"),
    ];
    let unsigned = http
        .post(format!("{base}/v1/sms/status"))
        .form(&forged)
        .send()
        .await
        .expect("answered");
    assert_eq!(unsigned.status(), 403);
    let wrong = http
        .post(format!("{base}/v1/sms/status"))
        .header("X-Twilio-Signature", "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
        .form(&forged)
        .send()
        .await
        .expect("answered");
    assert_eq!(wrong.status(), 403);
    assert_eq!(
        service
            .status_of(&sent.sid)
            .await
            .expect("status")
            .as_deref(),
        Some("delivered")
    );

    // STOP by reply: the next text to that number is refused before it reaches the provider.
    assert_eq!(fake.reply(to.as_str(), "stop").await.expect("posted"), 200);
    let refused = service
        .send(Text {
            to: to.clone(),
            body: "Tawaran".to_owned(),
            purpose: Purpose::Offer,
            user_id: None,
            dedupe_key: None,
            reference: None,
        })
        .await;
    assert!(
        matches!(refused, Err(SmsError::Rejected { .. })),
        "{refused:?}"
    );
    assert_eq!(fake.messages_to(to.as_str()).len(), 1);
}

#[sqlx::test(migrations = "../migrations")]
async fn per_day_caps_stop_texts(pool: sqlx::PgPool) {
    let fake = fake(100).await;
    let config = SmsConfig {
        daily_cap_per_recipient: 2,
        daily_cap_total: 3,
        cap_warning_ratio: 0.6,
        ..config_for(&fake)
    };
    let service = kreki_sms::build(pool, config).expect("builds").service;
    let warned = Arc::new(Warnings::default());
    service.set_cap_warning(warned.clone());
    let send = |to: &'static str| {
        let service = Arc::clone(&service);
        async move {
            service
                .send(Text {
                    to: E164::parse(to).expect("E.164"),
                    body: "Tawaran".to_owned(),
                    purpose: Purpose::Offer,
                    user_id: None,
                    dedupe_key: None,
                    reference: None,
                })
                .await
        }
    };
    send("+6286000000001").await.expect("1st");
    send("+6286000000001").await.expect("2nd");
    assert!(matches!(
        send("+6286000000001").await,
        Err(SmsError::CapReached { scope: "recipient" })
    ));
    send("+6286000000002").await.expect("3rd of the deployment");
    assert!(matches!(
        send("+6286000000003").await,
        Err(SmsError::CapReached {
            scope: "deployment"
        })
    ));
    assert_eq!(fake.messages().len(), 3);
    // Warned once, at the second text of three (2/3 >= 0.6), not again that day.
    assert_eq!(*warned.0.lock().expect("lock"), vec![(2, 3)]);
}

#[derive(Default)]
struct Warnings(std::sync::Mutex<Vec<(u32, u32)>>);

impl kreki_sms::CapWarning for Warnings {
    fn near_cap(&self, used: u32, cap: u32) {
        self.0.lock().expect("lock").push((used, cap));
    }
}

/// Twilio answers the send and calls back at once: a callback may come before the send recorded
/// the sid, and callbacks come in any order. None is lost, and none moves a message back.
#[sqlx::test(migrations = "../migrations")]
async fn early_and_out_of_order_status_callbacks_end_at_the_latest_status(pool: sqlx::PgPool) {
    let fake = fake(100).await;
    let state = kreki_sms::build(pool.clone(), config_for(&fake)).expect("builds");
    let service = Arc::clone(&state.service);
    let id = uuid::Uuid::now_v7();
    sqlx::query(
        "INSERT INTO sms.messages (id, purpose, to_phone, status) VALUES ($1, 'broadcast', '+6285555555501', 'sending')",
    )
    .bind(id)
    .execute(&pool)
    .await
    .expect("a text being sent");
    // `delivered` arrives while the send has not recorded the sid yet.
    let early = tokio::spawn({
        let service = Arc::clone(&service);
        async move { service.record_status("SMearly", "delivered", None).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    sqlx::query("UPDATE sms.messages SET sid = 'SMearly', status = 'queued' WHERE id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .expect("the send's answer recorded");
    assert!(
        early.await.expect("joined").expect("recorded"),
        "applied once the sid was known"
    );
    // `sent` and `queued` arriving after it change nothing.
    for late in ["sent", "queued"] {
        assert!(
            !service
                .record_status("SMearly", late, None)
                .await
                .expect("answered")
        );
    }
    assert_eq!(
        service.status_of("SMearly").await.expect("read").as_deref(),
        Some("delivered")
    );

    // Out of order before any final status: `sent`, then a late `queued`.
    sqlx::query(
        "INSERT INTO sms.messages (id, purpose, to_phone, status, sid) VALUES ($1, 'broadcast', '+6285555555502', 'queued', 'SMorder')",
    )
    .bind(uuid::Uuid::now_v7())
    .execute(&pool)
    .await
    .expect("a text sent");
    service
        .record_status("SMorder", "sent", None)
        .await
        .expect("recorded");
    service
        .record_status("SMorder", "queued", None)
        .await
        .expect("answered");
    assert_eq!(
        service.status_of("SMorder").await.expect("read").as_deref(),
        Some("sent")
    );
}
