//! OAuth2 client-credentials clients for health systems: created by an admin with the secret shown
//! once, tokens by form fields or HTTP Basic, scopes narrowed on request, RFC 6749 error codes.

use kreki_auth::Role;
use kreki_auth::token::SubjectKind;
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;

use crate::common::{self, send};

const GRANT: (&str, &str) = ("grant_type", "client_credentials");

#[sqlx::test(migrations = "../migrations")]
async fn client_credentials_flow_and_scopes(pool: PgPool) {
    let app = common::spawn(pool).await;
    let (_, admin) = app.user_with(&common::phone(1), &[Role::Admin]).await;
    let created = app
        .create_client(
            &admin.access,
            "RSUD Tarakan",
            &json!(["system/Task.read", "system/*.read", "system/Task.read"]),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:#?}");
    let client_id = created.str("client_id");
    let secret = created.str("client_secret");
    assert!(
        client_id.starts_with("kc_") && secret.starts_with("kcs_"),
        "{created:#?}"
    );
    assert_eq!(
        created.body["scopes"],
        json!(["system/*.read", "system/Task.read"])
    );
    let stored: String =
        sqlx::query_scalar("SELECT secret_hash FROM auth.clients WHERE client_id = $1")
            .bind(&client_id)
            .fetch_one(&app.pool)
            .await
            .expect("the client is stored");
    assert!(
        stored.starts_with("$argon2id$") && !stored.contains(&secret),
        "only a hash is kept"
    );

    // Form fields, every granted scope.
    let token = app
        .client_token(&[GRANT, ("client_id", &client_id), ("client_secret", &secret)])
        .await;
    assert_eq!(token.status, StatusCode::OK, "{token:#?}");
    assert_eq!(token.header("cache-control"), Some("no-store"));
    assert_eq!(token.header("pragma"), Some("no-cache"));
    assert_eq!(token.body["token_type"], "Bearer");
    assert_eq!(token.body["expires_in"], 900);
    assert_eq!(token.body["scope"], "system/*.read system/Task.read");
    let claims = app
        .state
        .service
        .verifier()
        .verify(&token.str("access_token"))
        .await
        .expect("a valid token");
    assert_eq!(claims.kind, SubjectKind::Client);
    assert_eq!(claims.sub, client_id);
    assert_eq!(
        claims.scope.as_deref(),
        Some("system/*.read system/Task.read")
    );
    assert!(claims.roles.is_empty());

    // HTTP Basic, narrowed to one scope the wildcard covers.
    let basic = send(
        app.request(Method::POST, "/v1/auth/token")
            .basic_auth(&client_id, Some(&secret))
            .form(&[GRANT, ("scope", "system/Encounter.read")]),
    )
    .await;
    assert_eq!(basic.status, StatusCode::OK, "{basic:#?}");
    assert_eq!(basic.body["scope"], "system/Encounter.read");
    assert_eq!(basic.header("cache-control"), Some("no-store"));
    let narrowed = app
        .client_token(&[
            GRANT,
            ("client_id", &client_id),
            ("client_secret", &secret),
            ("scope", "  system/Task.read   system/Location.read "),
        ])
        .await;
    assert_eq!(narrowed.status, StatusCode::OK, "{narrowed:#?}");
    assert_eq!(
        narrowed.body["scope"],
        "system/Task.read system/Location.read"
    );

    for wanted in [
        "system/Encounter.write",
        "user/*.read",
        "system/*.read system/*.write",
    ] {
        let answer = app
            .client_token(&[
                GRANT,
                ("client_id", &client_id),
                ("client_secret", &secret),
                ("scope", wanted),
            ])
            .await;
        answer.assert_problem(400, "invalid-scope");
        assert_eq!(answer.body["error"], "invalid_scope", "{wanted}");
        assert_eq!(answer.fields(), ["scope"]);
    }

    // A client token is no person: the person-only and admin endpoints refuse it.
    let access = token.str("access_token");
    app.me(&access).await.assert_problem(403, "forbidden");
    app.create_client(&access, "Anak", &json!(["system/*.read"]))
        .await
        .assert_problem(403, "forbidden");
}

#[sqlx::test(migrations = "../migrations")]
async fn bad_token_requests_get_oauth_errors(pool: PgPool) {
    let app = common::spawn(pool).await;
    let (_, admin) = app.user_with(&common::phone(1), &[Role::Admin]).await;
    let created = app
        .create_client(
            &admin.access,
            "Dinkes DKI",
            &json!(["system/Encounter.read"]),
        )
        .await;
    let client_id = created.str("client_id");
    let secret = created.str("client_secret");

    let wrong_secret = app
        .client_token(&[
            GRANT,
            ("client_id", &client_id),
            ("client_secret", "kcs_salah"),
        ])
        .await;
    wrong_secret.assert_problem(401, "invalid-client");
    assert_eq!(wrong_secret.body["error"], "invalid_client");
    assert!(
        wrong_secret
            .header("www-authenticate")
            .is_some_and(|value| value.starts_with("Basic")),
        "{wrong_secret:#?}"
    );
    let wrong_basic = send(
        app.request(Method::POST, "/v1/auth/token")
            .basic_auth(&client_id, Some("kcs_salah"))
            .form(&[GRANT]),
    )
    .await;
    wrong_basic.assert_problem(401, "invalid-client");
    let unknown = app
        .client_token(&[
            GRANT,
            ("client_id", "kc_nobody"),
            ("client_secret", &secret),
        ])
        .await;
    unknown.assert_problem(401, "invalid-client");
    assert_eq!(
        unknown.body, wrong_secret.body,
        "unknown ids reveal nothing"
    );

    let password_grant = app
        .client_token(&[
            ("grant_type", "password"),
            ("client_id", &client_id),
            ("client_secret", &secret),
        ])
        .await;
    password_grant.assert_problem(400, "unsupported-grant-type");
    assert_eq!(password_grant.body["error"], "unsupported_grant_type");
    assert_eq!(password_grant.fields(), ["grant_type"]);

    let no_grant = app
        .client_token(&[("client_id", &client_id), ("client_secret", &secret)])
        .await;
    no_grant.assert_problem(400, "bad-request");
    assert_eq!(no_grant.body["error"], "invalid_request");
    let no_secret = app.client_token(&[GRANT, ("client_id", &client_id)]).await;
    no_secret.assert_problem(400, "bad-request");
    assert_eq!(no_secret.body["error"], "invalid_request");
    let empty = app.client_token(&[]).await;
    empty.assert_problem(400, "bad-request");

    let json_body = app
        .post_json(
            "/v1/auth/token",
            &json!({"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}),
            None,
        )
        .await;
    json_body.assert_problem(415, "unsupported-media-type");
}

#[sqlx::test(migrations = "../migrations")]
async fn bad_client_definitions_name_the_field(pool: PgPool) {
    let app = common::spawn(pool).await;
    let (_, admin) = app.user_with(&common::phone(1), &[Role::Admin]).await;
    let cases = [
        (
            json!({"name": "RSUD", "scopes": ["system/*.write"]}),
            vec!["scopes[0]"],
        ),
        (
            json!({"name": "RSUD", "scopes": ["system/*.read", "patient/*.read"]}),
            vec!["scopes[1]"],
        ),
        (json!({"name": "RSUD", "scopes": []}), vec!["scopes"]),
        (
            json!({"name": " ", "scopes": ["system/*.read"]}),
            vec!["name"],
        ),
        (json!({"name": "RSUD"}), vec!["scopes"]),
        (json!({"scopes": ["system/*.read"]}), vec!["name"]),
        (
            json!({"name": "RSUD", "scopes": "system/*.read"}),
            vec!["scopes"],
        ),
        (json!({"name": "RSUD", "scopes": [1]}), vec!["scopes[0]"]),
    ];
    for (body, fields) in cases {
        let answer = app
            .post_json("/v1/admin/clients", &body, Some(&admin.access))
            .await;
        answer.assert_problem(422, "validation");
        assert_eq!(answer.fields(), fields, "{body}");
    }
    let clients: i64 = sqlx::query_scalar("SELECT count(*) FROM auth.clients")
        .fetch_one(&app.pool)
        .await
        .expect("counted");
    assert_eq!(clients, 0);
}
