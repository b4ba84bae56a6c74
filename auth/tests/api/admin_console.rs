//! What the admin console uses: finding accounts by phone or name, and looking after OAuth2
//! clients (list, rotate the secret, change scopes, revoke). Admins only.

use kreki_auth::Role;
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;

use crate::common::{self, send};

const GRANT: (&str, &str) = ("grant_type", "client_credentials");

#[sqlx::test(migrations = "../migrations")]
async fn admins_find_accounts_by_phone_or_name(pool: PgPool) {
    let app = common::spawn(pool).await;
    let (_, admin) = app.user_with(&common::phone(1), &[Role::Admin]).await;
    let (_, citizen) = app.user_with(&common::phone(2), &[]).await;
    let number = common::phone(2);
    let local: String = number.chars().filter(char::is_ascii_digit).collect();

    let found = send(
        app.request(
            Method::GET,
            &format!("/v1/admin/users?q=%2B62%20{}", &local[1..]),
        )
        .bearer_auth(&admin.access),
    )
    .await;
    assert_eq!(found.status, StatusCode::OK, "{found:#?}");
    let phones: Vec<&str> = found
        .body
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|u| u["phone"].as_str())
        .collect();
    assert_eq!(phones.len(), 1, "{phones:?}");
    assert!(phones[0].ends_with(&local[1..]), "{phones:?} for {number}");
    assert!(
        found.body[0].get("password_hash").is_none(),
        "no hash leaves KREKI ID"
    );

    let name = found.body[0]["name"].as_str().expect("a name").to_owned();
    let by_name = send(
        app.request(
            Method::GET,
            &format!("/v1/admin/users?q={}", name.to_uppercase()),
        )
        .bearer_auth(&admin.access),
    )
    .await;
    assert!(
        by_name
            .body
            .as_array()
            .expect("a list")
            .iter()
            .any(|u| u["name"] == name.as_str()),
        "{by_name:#?}"
    );

    let short = send(
        app.request(Method::GET, "/v1/admin/users?q=a")
            .bearer_auth(&admin.access),
    )
    .await;
    short.assert_problem(422, "validation");
    assert_eq!(short.fields(), ["q"]);
    let refused = send(
        app.request(Method::GET, "/v1/admin/users?q=sari")
            .bearer_auth(&citizen.access),
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    // `%` and `_` are letters here, not patterns.
    let literal = send(
        app.request(Method::GET, "/v1/admin/users?q=%25%25")
            .bearer_auth(&admin.access),
    )
    .await;
    assert_eq!(literal.body, json!([]));
}

#[sqlx::test(migrations = "../migrations")]
async fn admins_rotate_secrets_change_scopes_and_revoke_clients(pool: PgPool) {
    let app = common::spawn(pool).await;
    let (_, admin) = app.user_with(&common::phone(1), &[Role::Admin]).await;
    let created = app
        .create_client(
            &admin.access,
            "RSUD Tarakan",
            &json!(["system/Encounter.read"]),
        )
        .await;
    let client_id = created.str("client_id");
    let old_secret = created.str("client_secret");

    let listed = send(
        app.request(Method::GET, "/v1/admin/clients")
            .bearer_auth(&admin.access),
    )
    .await;
    assert_eq!(listed.body[0]["client_id"], client_id.as_str());
    assert_eq!(listed.body[0]["name"], "RSUD Tarakan");
    assert!(listed.body[0].get("secret_hash").is_none());

    let rotated = send(
        app.request(
            Method::POST,
            &format!("/v1/admin/clients/{client_id}/secret"),
        )
        .bearer_auth(&admin.access),
    )
    .await;
    assert_eq!(rotated.status, StatusCode::OK, "{rotated:#?}");
    let new_secret = rotated.str("client_secret");
    assert_ne!(new_secret, old_secret);
    let old = app
        .client_token(&[
            GRANT,
            ("client_id", &client_id),
            ("client_secret", &old_secret),
        ])
        .await;
    assert_eq!(
        old.status,
        StatusCode::UNAUTHORIZED,
        "the old secret stops working"
    );
    let new = app
        .client_token(&[
            GRANT,
            ("client_id", &client_id),
            ("client_secret", &new_secret),
        ])
        .await;
    assert_eq!(new.status, StatusCode::OK);

    let bad = send(
        app.request(
            Method::PUT,
            &format!("/v1/admin/clients/{client_id}/scopes"),
        )
        .bearer_auth(&admin.access)
        .json(&json!({"scopes": ["system/Task.read", "patient/*.write"]})),
    )
    .await;
    bad.assert_problem(422, "validation");
    assert_eq!(bad.fields(), ["scopes[1]"]);
    let scoped = send(
        app.request(
            Method::PUT,
            &format!("/v1/admin/clients/{client_id}/scopes"),
        )
        .bearer_auth(&admin.access)
        .json(&json!({"scopes": ["system/Task.read", "system/Encounter.read"]})),
    )
    .await;
    assert_eq!(scoped.status, StatusCode::OK, "{scoped:#?}");
    assert_eq!(
        scoped.body["scopes"],
        json!(["system/Encounter.read", "system/Task.read"])
    );
    let token = app
        .client_token(&[
            GRANT,
            ("client_id", &client_id),
            ("client_secret", &new_secret),
        ])
        .await;
    assert_eq!(
        token.body["scope"],
        "system/Encounter.read system/Task.read"
    );

    let revoked = send(
        app.request(Method::DELETE, &format!("/v1/admin/clients/{client_id}"))
            .bearer_auth(&admin.access),
    )
    .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    let after = app
        .client_token(&[
            GRANT,
            ("client_id", &client_id),
            ("client_secret", &new_secret),
        ])
        .await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    let gone = send(
        app.request(
            Method::POST,
            &format!("/v1/admin/clients/{client_id}/secret"),
        )
        .bearer_auth(&admin.access),
    )
    .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    let unknown = send(
        app.request(Method::DELETE, "/v1/admin/clients/kc_nope")
            .bearer_auth(&admin.access),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}
