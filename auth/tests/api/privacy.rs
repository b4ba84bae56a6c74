//! Personal data in KREKI ID: an admin opening an account is audited, the audit log is readable by
//! admins only and cannot be rewritten even in SQL, and an account can be erased by its owner (with
//! the password) or by an admin, after which its phone registers again as a new person.

use kreki_auth::Role;
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::common::{self, Answer, PASSWORD, send};

async fn audit(app: &common::TestApp, bearer: &str, query: &str) -> Answer {
    send(
        app.request(Method::GET, &format!("/v1/admin/audit{query}"))
            .bearer_auth(bearer),
    )
    .await
}

#[sqlx::test(migrations = "../migrations")]
async fn an_admin_viewing_an_account_is_audited_and_the_log_cannot_be_rewritten(pool: PgPool) {
    let app = common::spawn(pool.clone()).await;
    let (admin_id, admin) = app.user_with(&common::phone(1), &[Role::Admin]).await;
    let (member_id, member) = app.user_with(&common::phone(2), &[]).await;

    let view = send(
        app.request(
            Method::GET,
            &format!("/v1/admin/users/{member_id}?reason=ticket%2042"),
        )
        .bearer_auth(&admin.access),
    )
    .await;
    assert_eq!(view.status, 200, "{view:#?}");
    assert_eq!(view.body["phone"], common::phone(2));

    // Only admins view accounts or read the log.
    send(
        app.request(Method::GET, &format!("/v1/admin/users/{admin_id}"))
            .bearer_auth(&member.access),
    )
    .await
    .assert_problem(403, "forbidden");
    audit(&app, &member.access, "")
        .await
        .assert_problem(403, "forbidden");
    let bad = audit(&app, &admin.access, "?subject=someone").await;
    bad.assert_problem(422, "validation");
    assert_eq!(bad.fields(), ["subject"]);

    let lines = audit(&app, &admin.access, &format!("?subject={member_id}")).await;
    assert_eq!(lines.status, 200, "{lines:#?}");
    let lines = lines.body.as_array().expect("a list").clone();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["action"], "user.view");
    assert_eq!(lines[0]["actor"], admin_id.to_string());
    assert_eq!(lines[0]["subject"], member_id.to_string());
    assert_eq!(lines[0]["reason"], "ticket 42");
    assert!(lines[0]["at"].is_string());
    let by_member = audit(&app, &admin.access, &format!("?actor={member_id}")).await;
    assert_eq!(by_member.body, json!([]));

    // An account search shows accounts too: each one found is a line.
    let found = send(
        app.request(
            Method::GET,
            &format!(
                "/v1/admin/users?q={}",
                common::phone(2).trim_start_matches('+')
            ),
        )
        .bearer_auth(&admin.access),
    )
    .await;
    assert_eq!(found.status, 200, "{found:#?}");
    assert_eq!(found.body[0]["id"], member_id.to_string());
    let lines = audit(&app, &admin.access, &format!("?subject={member_id}")).await;
    assert_eq!(lines.body[0]["action"], "user.search", "{lines:#?}");
    assert_eq!(lines.body.as_array().map(Vec::len), Some(2));

    // Append-only in the database itself.
    for statement in [
        "UPDATE auth.audit_log SET reason = 'nothing to see'",
        "DELETE FROM auth.audit_log",
        "TRUNCATE auth.audit_log",
    ] {
        let refused = sqlx::query(statement).execute(&pool).await;
        assert!(refused.is_err(), "{statement} was allowed");
    }
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM auth.audit_log")
        .fetch_one(&pool)
        .await
        .expect("counted");
    assert_eq!(kept, 2);
}

async fn delete_me(app: &common::TestApp, bearer: &str, body: &Value) -> Answer {
    send(
        app.request(Method::DELETE, "/v1/auth/me")
            .bearer_auth(bearer)
            .json(body),
    )
    .await
}

#[sqlx::test(migrations = "../migrations")]
async fn a_person_erases_their_account_and_the_phone_registers_again(pool: PgPool) {
    let app = common::spawn(pool.clone()).await;
    let (admin_id, admin) = app.user_with(&common::phone(1), &[Role::Admin]).await;
    let registered = app
        .register(&json!({"phone": "0812-9999-0001", "password": PASSWORD, "name": "Sari Wulandari", "email": "sari@example.id"}))
        .await;
    assert_eq!(registered.status, 201, "{registered:#?}");
    let id = registered.str("id");
    let tokens = app.tokens("+6281299990001", PASSWORD).await;

    let wrong = delete_me(
        &app,
        &tokens.access,
        &json!({"password": "not-my-password"}),
    )
    .await;
    wrong.assert_problem(422, "validation");
    assert_eq!(wrong.fields(), ["password"]);
    delete_me(&app, &tokens.access, &json!({}))
        .await
        .assert_problem(422, "validation");

    let erased = delete_me(&app, &tokens.access, &json!({"password": PASSWORD})).await;
    assert_eq!(erased.status, 204, "{erased:#?}");
    app.refresh(&tokens.refresh)
        .await
        .assert_problem(401, "invalid-refresh-token");
    app.login("+6281299990001", PASSWORD)
        .await
        .assert_problem(401, "invalid-credentials");
    for (table, column) in [
        ("auth.users", "id"),
        ("auth.refresh_tokens", "user_id"),
        ("auth.login_sources", "user_id"),
    ] {
        let left: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {table} WHERE {column}::text = $1"
        )))
        .bind(&id)
        .fetch_one(&pool)
        .await
        .expect("counted");
        assert_eq!(left, 0, "{table} still holds the account");
    }

    // The same phone and e-mail are a new person now.
    let again = app
        .register(&json!({"phone": "081299990001", "password": PASSWORD, "name": "Orang Baru", "email": "sari@example.id"}))
        .await;
    assert_eq!(again.status, 201, "{again:#?}");
    assert_ne!(again.str("id"), id);

    let lines = audit(&app, &admin.access, &format!("?subject={id}")).await;
    assert_eq!(lines.body[0]["action"], "user.self_delete", "{lines:#?}");
    assert_eq!(lines.body[0]["actor"], id);
    let _ = admin_id;
}

#[sqlx::test(migrations = "../migrations")]
async fn an_admin_erases_an_account_on_request_but_never_the_last_admin(pool: PgPool) {
    let app = common::spawn(pool).await;
    let (admin_id, admin) = app.user_with(&common::phone(1), &[Role::Admin]).await;
    let (member_id, member) = app.user_with(&common::phone(2), &[]).await;

    send(
        app.request(Method::DELETE, &format!("/v1/admin/users/{admin_id}"))
            .bearer_auth(&member.access),
    )
    .await
    .assert_problem(403, "forbidden");
    send(
        app.request(Method::DELETE, &format!("/v1/admin/users/{admin_id}"))
            .bearer_auth(&admin.access),
    )
    .await
    .assert_problem(409, "last-admin");
    let erased = send(
        app.request(
            Method::DELETE,
            &format!("/v1/admin/users/{member_id}?reason=request%20by%20letter"),
        )
        .bearer_auth(&admin.access),
    )
    .await;
    assert_eq!(erased.status, 204, "{erased:#?}");
    send(
        app.request(Method::DELETE, &format!("/v1/admin/users/{member_id}"))
            .bearer_auth(&admin.access),
    )
    .await
    .assert_problem(404, "not-found");
    app.refresh(&member.refresh)
        .await
        .assert_problem(401, "invalid-refresh-token");
    let lines = audit(&app, &admin.access, &format!("?actor={admin_id}")).await;
    assert_eq!(lines.body[0]["action"], "user.delete", "{lines:#?}");
    assert_eq!(lines.body[0]["subject"], member_id.to_string());
    assert_eq!(lines.body[0]["reason"], "request by letter");
}
