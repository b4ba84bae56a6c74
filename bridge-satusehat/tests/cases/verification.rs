//! Practitioner verification by NIK against the fake SATUSEHAT: the outcomes, bad input, and
//! retries in the background (a module of the `bridge` test binary).

use std::time::Duration;

use kreki_auth::Role;
use kreki_bridge_satusehat::fake;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::{self, Options, harness};

pub(crate) async fn verify(h: &support::Harness, user: Uuid, nik: &str) -> (StatusCode, Value) {
    let response = h
        .http
        .post(h.url("/v1/volunteers/me/practitioner-verification"))
        .bearer_auth(h.user_token(user, &[Role::Volunteer]))
        .json(&json!({ "nik": nik }))
        .send()
        .await
        .expect("answers");
    let status = response.status();
    (status, response.json().await.expect("json"))
}

#[sqlx::test(migrations = "../migrations")]
async fn practitioner_verification_outcomes(pool: PgPool) {
    let h = harness(pool, Options::default()).await;
    let (one, several, none) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());

    let (status, body) = verify(&h, one, fake::SEED_NIK_ONE).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({ "status": "verified", "ihs_number": fake::SEED_IHS_ONE })
    );

    let (status, body) = verify(&h, several, fake::SEED_NIK_SEVERAL).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({ "status": "ambiguous" }))
    );

    let (status, body) = verify(&h, none, fake::SEED_NIK_NONE).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({ "status": "not_found" }))
    );

    assert_eq!(
        h.sink.results(),
        vec![
            (one, Some(fake::SEED_IHS_ONE.to_owned())),
            (several, None),
            (none, None)
        ]
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn a_bad_nik_is_a_422_naming_nik_and_only_volunteers_may_ask(pool: PgPool) {
    let h = harness(pool, Options::default()).await;
    for bad in ["123", "31710123456789012", "317101234567890x"] {
        let (status, body) = verify(&h, Uuid::new_v4(), bad).await;
        assert_eq!(status, 422, "{bad}");
        assert_eq!(body["errors"][0]["field"], "nik", "{body}");
    }
    let response = h
        .http
        .post(h.url("/v1/volunteers/me/practitioner-verification"))
        .bearer_auth(h.user_token(Uuid::new_v4(), &[Role::Citizen]))
        .json(&json!({ "nik": fake::SEED_NIK_ONE }))
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), 403);
    let response = h
        .http
        .post(h.url("/v1/volunteers/me/practitioner-verification"))
        .json(&json!({ "nik": fake::SEED_NIK_ONE }))
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), 401);
    assert!(h.fake.requests().is_empty(), "nothing reached SATUSEHAT");

    // Asking again at once is refused without bothering SATUSEHAT.
    let user = Uuid::new_v4();
    assert_eq!(verify(&h, user, fake::SEED_NIK_ONE).await.0, 200);
    let sent = h.fake.requests().len();
    let (status, body) = verify(&h, user, fake::SEED_NIK_NONE).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(h.fake.requests().len(), sent);
}

#[sqlx::test(migrations = "../migrations")]
async fn an_unavailable_satusehat_is_retried_in_the_background(pool: PgPool) {
    let h = harness(pool, Options::default()).await;
    let user = Uuid::new_v4();
    h.fake.faults(|faults| faults.down = true);
    let (status, body) = verify(&h, user, fake::SEED_NIK_ONE).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({ "status": "unavailable" }))
    );
    assert!(h.sink.results().is_empty());

    // Still down: the retry fails and is scheduled again.
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(
        kreki_bridge_satusehat::verify::retry_due(&h.state)
            .await
            .expect("runs"),
        1
    );
    assert!(h.sink.results().is_empty());

    h.fake.faults(|faults| faults.down = false);
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(
        kreki_bridge_satusehat::verify::retry_due(&h.state)
            .await
            .expect("runs"),
        1
    );
    assert_eq!(
        h.sink.results(),
        vec![(user, Some(fake::SEED_IHS_ONE.to_owned()))]
    );
    let row = kreki_bridge_satusehat::store::practitioner(&h.state.pool, user)
        .await
        .expect("reads")
        .expect("stored");
    assert_eq!(row.status, "verified");
    assert_eq!(row.nik, None, "the NIK is not kept once SATUSEHAT answered");
    assert_eq!(
        kreki_bridge_satusehat::verify::retry_due(&h.state)
            .await
            .expect("runs"),
        0
    );
}
