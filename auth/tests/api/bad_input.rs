//! Hostile or odd input anywhere in KREKI ID: whatever arrives, the answer is a 4xx problem, never a
//! 500 (which would mean the input reached somewhere it should not).

use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;

use crate::common::{self, PASSWORD, send};

#[sqlx::test(migrations = "../migrations")]
async fn odd_logins_are_refused_not_crashed_on(pool: PgPool) {
    let app = common::spawn(pool).await;
    app.create_user("081234567890", &[]).await;
    let long = "0".repeat(20_000);
    let long_email = format!("{}@example.id", "a".repeat(20_000));
    let odd = [
        "0812\u{0}34567890",
        "sari\u{0}@example.id",
        "\u{0}",
        long.as_str(),
        long_email.as_str(),
        "'; DROP TABLE auth.users; --",
        "ﾟ･✿ヾ╲(｡◕‿◕｡)╱✿･ﾟ",
    ];
    for login in odd {
        // Twice: the second attempt meets the throttle counter the first one left.
        for _ in 0..2 {
            let answer = app.login(login, PASSWORD).await;
            answer.assert_problem(401, "invalid-credentials");
        }
    }
    let still_there = app.login("081234567890", PASSWORD).await;
    assert_eq!(still_there.status, StatusCode::OK, "{still_there:#?}");
}

#[sqlx::test(migrations = "../migrations")]
async fn odd_client_credentials_are_invalid_client(pool: PgPool) {
    let app = common::spawn(pool).await;
    let long = "k".repeat(20_000);
    for client_id in ["kc_\u{0}", long.as_str(), "' OR 1=1 --"] {
        let form = app
            .client_token(&[
                ("grant_type", "client_credentials"),
                ("client_id", client_id),
                ("client_secret", "kcs_x"),
            ])
            .await;
        form.assert_problem(401, "invalid-client");
        let basic = send(
            app.request(Method::POST, "/v1/auth/token")
                .basic_auth(client_id, Some("kcs_\u{0}"))
                .form(&[("grant_type", "client_credentials")]),
        )
        .await;
        basic.assert_problem(401, "invalid-client");
    }
    let bad_basic = send(
        app.request(Method::POST, "/v1/auth/token")
            .header("authorization", "Basic !!!not-base64")
            .form(&[("grant_type", "client_credentials")]),
    )
    .await;
    bad_basic.assert_problem(400, "bad-request");
    assert_eq!(bad_basic.body["error"], "invalid_request");
}

#[sqlx::test(migrations = "../migrations")]
async fn odd_refresh_tokens_and_headers_are_refused(pool: PgPool) {
    let app = common::spawn(pool).await;
    for token in ["", "krt_\u{0}", &"r".repeat(50_000)] {
        let answer = app.refresh(token).await;
        answer.assert_problem(401, "invalid-refresh-token");
    }
    let missing = app.post_json("/v1/auth/refresh", &json!({}), None).await;
    missing.assert_problem(422, "validation");
    assert_eq!(missing.fields(), ["refresh_token"]);
    let wrong_type = app
        .post_json("/v1/auth/refresh", &json!({"refresh_token": 42}), None)
        .await;
    wrong_type.assert_problem(422, "validation");
    assert_eq!(wrong_type.fields(), ["refresh_token"]);

    for (n, forwarded) in ["not an address", "", "999.1.1.1", "1.2.3.4, ::ffff:zz"]
        .into_iter()
        .enumerate()
    {
        let answer = send(
            app.request(Method::POST, "/v1/auth/login")
                .header("x-forwarded-for", forwarded)
                .json(&json!({"login": format!("user{n}@example.id"), "password": PASSWORD})),
        )
        .await;
        answer.assert_problem(401, "invalid-credentials");
    }

    let authorizations: [&[u8]; 7] = [
        b"Bearer",
        b"Bearer ",
        b"Bearer a.b.c",
        b"Bearer \xff\xfe",
        b"Token abc",
        b"bearer x.y",
        b"Basic a29kZTpzYW5kaQ==",
    ];
    for authorization in authorizations {
        let value =
            reqwest::header::HeaderValue::from_bytes(authorization).expect("a header value");
        let authorization = String::from_utf8_lossy(authorization);
        let answer = send(
            app.request(Method::GET, "/v1/auth/me")
                .header("authorization", value),
        )
        .await;
        assert_eq!(
            answer.status,
            StatusCode::UNAUTHORIZED,
            "{authorization}: {answer:#?}"
        );
        assert_eq!(
            answer.header("content-type"),
            Some("application/problem+json")
        );
        assert!(
            answer
                .header("www-authenticate")
                .is_some_and(|value| value.starts_with("Bearer")),
            "{authorization}: {answer:#?}"
        );
    }

    let unknown = send(app.request(Method::GET, "/v1/auth/nowhere")).await;
    unknown.assert_problem(404, "not-found");
}
