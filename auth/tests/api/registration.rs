//! Registration and sign-in: every bad input is a 4xx problem naming the field, never a 500; one
//! person is one account whatever spelling of the phone number they type.

use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;

use crate::common::{self, PASSWORD, send};

#[sqlx::test(migrations = "../migrations")]
async fn registration_creates_a_citizen_with_a_normalised_phone(pool: PgPool) {
    let app = common::spawn(pool).await;
    let answer = app
        .register(&json!({
            "phone": "0812-3456-7890",
            "password": PASSWORD,
            "name": "  Sari Wulandari ",
            "email": "Sari@Example.ID",
        }))
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{answer:#?}");
    assert_eq!(answer.body["phone"], "+6281234567890");
    assert_eq!(answer.body["name"], "Sari Wulandari");
    assert_eq!(answer.body["email"], "sari@example.id");
    assert_eq!(answer.body["roles"], json!(["citizen"]));
    assert!(answer.body["id"].as_str().is_some_and(|id| id.len() == 36));
    assert!(
        answer.body.get("password_hash").is_none() && answer.body.get("password").is_none(),
        "no secret comes back: {answer:#?}"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn bad_registrations_name_the_field(pool: PgPool) {
    let app = common::spawn(pool).await;
    let good = json!({"phone": "081234567890", "password": PASSWORD, "name": "Sari"});
    let with = |key: &str, value: serde_json::Value| {
        let mut body = good.clone();
        body[key] = value;
        body
    };
    let without = |key: &str| {
        let mut body = good.clone();
        body.as_object_mut().expect("an object").remove(key);
        body
    };
    let cases = [
        (
            "phone too short",
            with("phone", json!("0812")),
            vec!["phone"],
        ),
        (
            "phone with letters",
            with("phone", json!("0812abc4567")),
            vec!["phone"],
        ),
        (
            "phone without trunk prefix",
            with("phone", json!("81234567890")),
            vec!["phone"],
        ),
        (
            "phone with doubled prefix",
            with("phone", json!("+62081234567890")),
            vec!["phone"],
        ),
        ("empty phone", with("phone", json!("")), vec!["phone"]),
        (
            "short password",
            with("password", json!("pendek")),
            vec!["password"],
        ),
        (
            "7 characters in 14 bytes",
            with("password", json!("ééééééé")),
            vec!["password"],
        ),
        (
            "long password",
            with("password", json!("x".repeat(129))),
            vec!["password"],
        ),
        ("empty name", with("name", json!("   ")), vec!["name"]),
        (
            "long name",
            with("name", json!("n".repeat(101))),
            vec!["name"],
        ),
        (
            "control character in name",
            with("name", json!("Sari\u{0}")),
            vec!["name"],
        ),
        (
            "bad e-mail",
            with("email", json!("sari@example")),
            vec!["email"],
        ),
        (
            "e-mail with space",
            with("email", json!("sa ri@example.id")),
            vec!["email"],
        ),
        ("missing phone", without("phone"), vec!["phone"]),
        ("missing password", without("password"), vec!["password"]),
        ("missing name", without("name"), vec!["name"]),
        (
            "phone is a number",
            with("phone", json!(81234567890_u64)),
            vec!["phone"],
        ),
        ("name is null", with("name", json!(null)), vec!["name"]),
        (
            "e-mail is a list",
            with("email", json!(["a@b.id"])),
            vec!["email"],
        ),
        (
            "everything wrong at once",
            json!({"phone": "x", "password": "y", "name": "", "email": "z"}),
            vec!["phone", "password", "name", "email"],
        ),
    ];
    for (case, body, fields) in cases {
        let answer = app.register(&body).await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{case}: {answer:#?}"
        );
        answer.assert_problem(422, "validation");
        assert_eq!(answer.fields(), fields, "{case}");
    }
    let accounts: i64 = sqlx::query_scalar("SELECT count(*) FROM auth.users")
        .fetch_one(&app.pool)
        .await
        .expect("counted");
    assert_eq!(accounts, 0, "no bad registration made an account");
}

#[sqlx::test(migrations = "../migrations")]
async fn unreadable_registrations_are_4xx_problems(pool: PgPool) {
    let app = common::spawn(pool).await;
    let post = || app.request(Method::POST, "/v1/auth/register");

    let not_json = send(
        post()
            .header("content-type", "application/json")
            .body("{phone:"),
    )
    .await;
    not_json.assert_problem(400, "bad-request");

    let not_an_object = send(
        post()
            .header("content-type", "application/json")
            .body("[1,2]"),
    )
    .await;
    assert_eq!(
        not_an_object.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{not_an_object:#?}"
    );

    let empty = send(post().header("content-type", "application/json")).await;
    assert!(empty.status.is_client_error(), "{empty:#?}");
    assert_eq!(
        empty.header("content-type"),
        Some("application/problem+json")
    );

    let form = send(post().form(&[("phone", "081234567890"), ("password", PASSWORD)])).await;
    form.assert_problem(415, "unsupported-media-type");

    let no_type = send(post().body(r#"{"phone":"081234567890"}"#)).await;
    no_type.assert_problem(415, "unsupported-media-type");

    let huge =
        json!({"phone": "081234567890", "password": PASSWORD, "name": "x".repeat(70 * 1024)});
    let oversize = app.register(&huge).await;
    oversize.assert_problem(413, "payload-too-large");

    let wrong_method = send(app.request(Method::GET, "/v1/auth/register")).await;
    assert_eq!(
        wrong_method.status,
        StatusCode::METHOD_NOT_ALLOWED,
        "{wrong_method:#?}"
    );
    assert_eq!(
        wrong_method.header("content-type"),
        Some("application/problem+json")
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn duplicates_in_any_spelling_are_409_naming_the_field(pool: PgPool) {
    let app = common::spawn(pool).await;
    let first = app
        .register(&json!({
            "phone": "081234567890", "password": PASSWORD, "name": "Sari", "email": "sari@example.id",
        }))
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{first:#?}");

    for spelling in ["+6281234567890", "+62 812-3456-7890", "6281234567890"] {
        let again = app
            .register(&json!({"phone": spelling, "password": PASSWORD, "name": "Budi"}))
            .await;
        again.assert_problem(409, "phone-taken");
        assert_eq!(again.fields(), ["phone"], "{spelling}");
    }

    let same_email = app
        .register(&json!({
            "phone": "081299990000", "password": PASSWORD, "name": "Budi", "email": " SARI@example.id",
        }))
        .await;
    same_email.assert_problem(409, "email-taken");
    assert_eq!(same_email.fields(), ["email"]);

    let blank_email_twice = app
        .register(
            &json!({"phone": "081299990001", "password": PASSWORD, "name": "Ani", "email": ""}),
        )
        .await;
    assert_eq!(
        blank_email_twice.status,
        StatusCode::CREATED,
        "{blank_email_twice:#?}"
    );
    assert_eq!(blank_email_twice.body["email"], json!(null));
    let another_blank = app
        .register(
            &json!({"phone": "081299990002", "password": PASSWORD, "name": "Eka", "email": " "}),
        )
        .await;
    assert_eq!(
        another_blank.status,
        StatusCode::CREATED,
        "a blank e-mail is no e-mail: {another_blank:#?}"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn login_by_any_phone_spelling_or_email(pool: PgPool) {
    let app = common::spawn(pool).await;
    let created = app
        .register(&json!({
            "phone": "0812-3456-7890", "password": PASSWORD, "name": "Sari", "email": "sari@example.id",
        }))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:#?}");
    let id = created.str("id");

    for login in [
        "081234567890",
        "+62 812 3456 7890",
        "6281234567890",
        "SARI@Example.id ",
    ] {
        let answer = app.login(login, PASSWORD).await;
        let tokens = common::tokens_of(&answer);
        assert_eq!(answer.body["expires_in"], 900, "{login}");
        let me = app.me(&tokens.access).await;
        assert_eq!(me.status, StatusCode::OK, "{me:#?}");
        assert_eq!(me.body["id"], id.as_str(), "{login}");
        assert_eq!(me.body["phone"], "+6281234567890");
        assert_eq!(me.body["email"], "sari@example.id");
        assert_eq!(me.body["roles"], json!(["citizen"]));
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn wrong_password_and_unknown_login_look_the_same(pool: PgPool) {
    let app = common::spawn(pool).await;
    app.create_user("081234567890", &[]).await;

    let wrong = app.login("081234567890", "salah-sandi-ini").await;
    wrong.assert_problem(401, "invalid-credentials");
    let unknown_phone = app.login("081299999999", PASSWORD).await;
    let unknown_email = app.login("nobody@example.id", PASSWORD).await;
    let not_a_login = app.login("not a phone", PASSWORD).await;
    for other in [&unknown_phone, &unknown_email, &not_a_login] {
        assert_eq!(other.status, wrong.status, "{other:#?}");
        assert_eq!(other.body, wrong.body, "an unknown login reveals nothing");
    }

    let empty_password = app.login("081234567890", "").await;
    empty_password.assert_problem(401, "invalid-credentials");
    let long_password = app.login("081234567890", &"x".repeat(10_000)).await;
    long_password.assert_problem(401, "invalid-credentials");

    let empty_login = app.login("  ", PASSWORD).await;
    empty_login.assert_problem(422, "validation");
    assert_eq!(empty_login.fields(), ["login"]);

    let missing = app
        .post_json("/v1/auth/login", &json!({"login": "081234567890"}), None)
        .await;
    missing.assert_problem(422, "validation");
    assert_eq!(missing.fields(), ["password"]);

    let wrong_type = app
        .post_json(
            "/v1/auth/login",
            &json!({"login": 812, "password": PASSWORD}),
            None,
        )
        .await;
    wrong_type.assert_problem(422, "validation");
    assert_eq!(wrong_type.fields(), ["login"]);
}

#[sqlx::test(migrations = "../migrations")]
async fn racing_registrations_of_one_phone_make_one_account(pool: PgPool) {
    let app = common::spawn(pool).await;
    let mut racers = tokio::task::JoinSet::new();
    for (n, spelling) in [
        "081234567890",
        "+6281234567890",
        "0812-3456-7890",
        "6281234567890",
    ]
    .into_iter()
    .enumerate()
    {
        let request = app.request(Method::POST, "/v1/auth/register").json(&json!({
            "phone": spelling, "password": PASSWORD, "name": format!("Pelari {n}"),
        }));
        racers.spawn(send(request));
    }
    let answers = racers.join_all().await;
    let created = answers
        .iter()
        .filter(|answer| answer.status == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1, "{answers:#?}");
    for answer in answers
        .iter()
        .filter(|answer| answer.status != StatusCode::CREATED)
    {
        answer.assert_problem(409, "phone-taken");
        assert_eq!(answer.fields(), ["phone"]);
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn malformed_bodies_are_400_not_500(pool: PgPool) {
    let app = common::spawn(pool).await;
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let bodies: [&[u8]; 6] = [
        deep.as_bytes(),
        b"{\"phone\": \"\xff\xfe\", \"password\": \"kata-sandi-aman\", \"name\": \"x\"}",
        b"{\"phone\": \"081234567890\"",
        b"null",
        b"\"just a string\"",
        b"{\"phone\": \"081234567890\", \"password\": \"kata-sandi-aman\", \"name\": \"\\ud800\"}",
    ];
    for path in ["/v1/auth/register", "/v1/auth/login", "/v1/auth/refresh"] {
        for body in bodies {
            let answer = send(
                app.request(Method::POST, path)
                    .header("content-type", "application/json")
                    .body(body.to_vec()),
            )
            .await;
            assert!(
                answer.status == StatusCode::BAD_REQUEST
                    || answer.status == StatusCode::UNPROCESSABLE_ENTITY,
                "{path} {:?}: {answer:#?}",
                String::from_utf8_lossy(&body[..body.len().min(40)])
            );
            assert_eq!(
                answer.header("content-type"),
                Some("application/problem+json")
            );
        }
    }
}
