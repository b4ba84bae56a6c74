//! Refresh tokens: single use, rotated, and a re-used one ends its whole sign-in; logout ends it too.

use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;

use crate::common::{self, PASSWORD, send, tokens_of};

#[sqlx::test(migrations = "../migrations")]
async fn rotation_and_reuse_detection(pool: PgPool) {
    let app = common::spawn(pool).await;
    let phone = common::phone(1);
    let id = app.create_user(&phone, &[]).await.to_string();
    let first = app.tokens(&phone, PASSWORD).await;
    // Another sign-in of the same person (another phone): its family must survive what follows.
    let other_device = app.tokens(&phone, PASSWORD).await;

    let second = tokens_of(&app.refresh(&first.refresh).await);
    assert_ne!(second.refresh, first.refresh);
    let me = app.me(&second.access).await;
    assert_eq!(me.status, StatusCode::OK, "{me:#?}");
    assert_eq!(me.body["id"], id.as_str());
    let third = tokens_of(&app.refresh(&second.refresh).await);

    // The first token, spent, comes back: someone copied it. That sign-in ends.
    let reused = app.refresh(&first.refresh).await;
    reused.assert_problem(401, "refresh-token-reused");
    let newest = app.refresh(&third.refresh).await;
    newest.assert_problem(401, "invalid-refresh-token");
    let again = app.refresh(&second.refresh).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED, "{again:#?}");

    // Access tokens already issued stay valid until they expire (they are checked with public
    // keys only); the other device's sign-in is untouched.
    assert_eq!(app.me(&third.access).await.status, StatusCode::OK);
    let elsewhere = tokens_of(&app.refresh(&other_device.refresh).await);
    assert_eq!(app.me(&elsewhere.access).await.status, StatusCode::OK);

    let unknown = app.refresh("krt_not-a-token-we-issued").await;
    unknown.assert_problem(401, "invalid-refresh-token");
}

#[sqlx::test(migrations = "../migrations")]
async fn an_expired_refresh_token_is_refused(pool: PgPool) {
    let app = common::spawn(pool).await;
    let phone = common::phone(1);
    let (_, tokens) = app.user_with(&phone, &[]).await;
    sqlx::query("UPDATE auth.refresh_tokens SET expires_at = now() - interval '1 second'")
        .execute(&app.pool)
        .await
        .expect("expired");
    let answer = app.refresh(&tokens.refresh).await;
    answer.assert_problem(401, "invalid-refresh-token");
}

#[sqlx::test(migrations = "../migrations")]
async fn logout_ends_the_sign_in_and_only_its_own(pool: PgPool) {
    let app = common::spawn(pool).await;
    let (_, sari) = app.user_with(&common::phone(1), &[]).await;
    let (_, budi) = app.user_with(&common::phone(2), &[]).await;

    let anonymous = app
        .post_json(
            "/v1/auth/logout",
            &json!({"refresh_token": sari.refresh}),
            None,
        )
        .await;
    anonymous.assert_problem(401, "unauthorized");

    // Budi cannot end Sari's sign-in with a token he got hold of: nothing happens.
    let meddling = app
        .post_json(
            "/v1/auth/logout",
            &json!({"refresh_token": sari.refresh}),
            Some(&budi.access),
        )
        .await;
    assert_eq!(meddling.status, StatusCode::NO_CONTENT, "{meddling:#?}");
    let sari = tokens_of(&app.refresh(&sari.refresh).await);

    let logout = app
        .post_json(
            "/v1/auth/logout",
            &json!({"refresh_token": sari.refresh}),
            Some(&sari.access),
        )
        .await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT, "{logout:#?}");
    assert_eq!(logout.body, serde_json::Value::Null);
    let after = app.refresh(&sari.refresh).await;
    after.assert_problem(401, "invalid-refresh-token");
    // Logging out twice, or with a token that never existed, is harmless.
    for token in [sari.refresh.as_str(), "krt_unknown"] {
        let again = app
            .post_json(
                "/v1/auth/logout",
                &json!({"refresh_token": token}),
                Some(&sari.access),
            )
            .await;
        assert_eq!(again.status, StatusCode::NO_CONTENT, "{again:#?}");
    }
    let missing = app
        .post_json("/v1/auth/logout", &json!({}), Some(&sari.access))
        .await;
    missing.assert_problem(422, "validation");
    assert_eq!(missing.fields(), ["refresh_token"]);
    assert_eq!(
        app.refresh(&budi.refresh).await.status,
        StatusCode::OK,
        "Budi's sign-in is his own"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn concurrent_refreshes_of_one_token_let_at_most_one_through(pool: PgPool) {
    let app = common::spawn(pool).await;
    let phone = common::phone(1);
    let (_, tokens) = app.user_with(&phone, &[]).await;
    let mut attempts = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let request = app
            .request(Method::POST, "/v1/auth/refresh")
            .json(&json!({"refresh_token": tokens.refresh}));
        attempts.spawn(send(request));
    }
    let answers = attempts.join_all().await;
    let winners: Vec<_> = answers
        .iter()
        .filter(|answer| answer.status == StatusCode::OK)
        .collect();
    assert!(winners.len() <= 1, "{answers:#?}");
    for answer in &answers {
        assert!(
            answer.status == StatusCode::OK || answer.status == StatusCode::UNAUTHORIZED,
            "{answer:#?}"
        );
    }
    // The losers presented a spent token, so the family is revoked: even the winner's new refresh
    // token no longer works.
    for winner in winners {
        let next = app.refresh(&winner.str("refresh_token")).await;
        next.assert_problem(401, "invalid-refresh-token");
    }
}
