//! Integration tests of the guidance service against the real PostgreSQL (a fresh database with
//! every migration per test), over HTTP with real access tokens.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http::{Request, StatusCode, header};
use kreki_auth::keys::{KeyRing, SigningKey};
use kreki_auth::token::Issuer;
use kreki_auth::{Role, Roles, TokenVerifier, UserId};
use serde_json::{Value, json};
use sqlx::PgPool;
use tower::ServiceExt;
use uuid::Uuid;

struct App {
    router: axum::Router,
    issuer: Issuer,
}

impl App {
    fn new(pool: PgPool) -> Self {
        let pem = kreki_auth::keys::generate_pem().expect("a key is generated");
        let key = SigningKey::from_pem(&pem).expect("the key parses");
        let ring = Arc::new(KeyRing::new(Some(key), Vec::new()));
        let verifier = TokenVerifier::with_keys("kreki".into(), &ring.public_keys());
        let issuer = Issuer::new(ring, "kreki".into(), Duration::from_secs(900));
        let (router, _) =
            kreki_cms::router(kreki_cms::CmsState { pool, verifier }).split_for_parts();
        Self { router, issuer }
    }

    fn token(&self, roles: &[Role]) -> String {
        self.issuer
            .for_user(
                UserId(Uuid::now_v7()),
                &Roles::new(roles.iter().copied()),
                "Uji",
            )
            .expect("signed")
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = match body {
            Some(body) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        }
        .expect("request");
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("answered");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
}

fn fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["field"].as_str().map(str::to_owned))
        .collect()
}

#[sqlx::test(migrations = "../migrations")]
async fn demo_pages_are_listed_by_language_and_kind(pool: PgPool) {
    assert_eq!(kreki_cms::demo::load(&pool).await.expect("loads"), 12);
    assert_eq!(
        kreki_cms::demo::load(&pool).await.expect("again"),
        0,
        "loading twice adds nothing"
    );
    let app = App::new(pool);

    let (status, list) = app.call("GET", "/v1/guidance?lang=id", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let slugs: Vec<&str> = list
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|p| p["slug"].as_str())
        .collect();
    assert_eq!(
        slugs,
        [
            "bleeding",
            "burns",
            "choking",
            "cpr",
            "seizures",
            "while-waiting"
        ]
    );
    assert!(
        list.as_array()
            .expect("list")
            .iter()
            .all(|p| p["lang"] == "id")
    );

    let (_, cardiac) = app
        .call(
            "GET",
            "/v1/guidance?lang=en&kind=cardiac_arrest",
            None,
            None,
        )
        .await;
    let titles: Vec<&str> = cardiac
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|p| p["title"].as_str())
        .collect();
    assert_eq!(titles, ["CPR: push hard and fast", "While help is coming"]);

    let (status, page) = app
        .call("GET", "/v1/guidance/cpr?lang=en", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["version"], 1);
    assert!(
        page["body_html"]
            .as_str()
            .expect("html")
            .contains("<strong>Call 112"),
        "{page}"
    );
    assert!(
        page["body_markdown"]
            .as_str()
            .expect("md")
            .starts_with("**Call 112")
    );

    let (status, problem) = app.call("GET", "/v1/guidance?lang=fr", None, None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(fields(&problem), ["lang"]);
    let (status, problem) = app.call("GET", "/v1/guidance?kind=flood", None, None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(fields(&problem), ["kind"]);
    for missing in [
        "/v1/guidance/nope",
        "/v1/guidance/CPR",
        "/v1/guidance/cpr?version=9",
    ] {
        let (status, _) = app.call("GET", missing, None, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn trainers_write_versions_and_everyone_reads_the_newest(pool: PgPool) {
    let app = App::new(pool);
    let trainer = app.token(&[Role::Trainer]);
    let admin = app.token(&[Role::Admin]);
    let citizen = app.token(&[]);
    let page = json!({"lang": "id", "title": "Tenggelam", "body_markdown": "Tarik ke darat.", "kinds": ["disaster"]});

    let (status, _) = app
        .call("PUT", "/v1/guidance/drowning", None, Some(page.clone()))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = app
        .call(
            "PUT",
            "/v1/guidance/drowning",
            Some(&citizen),
            Some(page.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, first) = app
        .call(
            "PUT",
            "/v1/guidance/drowning",
            Some(&trainer),
            Some(page.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["version"], 1);
    let (_, again) = app
        .call(
            "PUT",
            "/v1/guidance/drowning",
            Some(&trainer),
            Some(page.clone()),
        )
        .await;
    assert_eq!(again["version"], 1, "an unchanged edit adds no version");

    let edited = json!({"lang": "id", "title": "Tenggelam", "body_markdown": "Jangan ikut masuk air. **Lempar** pelampung.", "kinds": ["disaster", "other"]});
    let (_, second) = app
        .call("PUT", "/v1/guidance/drowning", Some(&admin), Some(edited))
        .await;
    assert_eq!(second["version"], 2);
    assert!(
        second["body_html"]
            .as_str()
            .expect("html")
            .contains("<strong>Lempar</strong>")
    );

    let (_, newest) = app.call("GET", "/v1/guidance/drowning", None, None).await;
    assert_eq!(newest["version"], 2);
    let (_, old) = app
        .call("GET", "/v1/guidance/drowning?version=1", None, None)
        .await;
    assert_eq!(old["body_markdown"], "Tarik ke darat.");
    let (_, history) = app
        .call("GET", "/v1/guidance/drowning/versions?lang=id", None, None)
        .await;
    let versions: Vec<i64> = history
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|v| v["version"].as_i64())
        .collect();
    assert_eq!(versions, [2, 1]);

    // Not written in English yet: the Indonesian page answers, saying so.
    let (status, fallback) = app
        .call("GET", "/v1/guidance/drowning?lang=en", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fallback["lang"], "id");
    let (_, listed) = app.call("GET", "/v1/guidance?lang=en", None, None).await;
    assert_eq!(listed[0]["lang"], "id");

    let (status, problem) = app
        .call(
            "PUT",
            "/v1/guidance/Bad%20Slug",
            Some(&trainer),
            Some(json!({"lang": "xx", "title": "", "body_markdown": "", "kinds": ["flood"]})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        fields(&problem),
        ["slug", "lang", "title", "body_markdown", "kinds[0]"]
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn script_in_markdown_is_never_served(pool: PgPool) {
    let app = App::new(pool);
    let trainer = app.token(&[Role::Trainer]);
    let evil = "Aman.\n\n<script>alert('x')</script>\n\n<img src=x onerror=alert(1)>\n\n[klik](javascript:alert(1))\n\n<a href=\"https://ok.example\" onclick=\"alert(1)\">ok</a>";
    let (status, page) = app
        .call(
            "PUT",
            "/v1/guidance/test-xss",
            Some(&trainer),
            Some(json!({"lang": "en", "title": "<b>T</b>", "body_markdown": evil})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, read) = app
        .call("GET", "/v1/guidance/test-xss?lang=en", None, None)
        .await;
    for html in [page["body_html"].as_str(), read["body_html"].as_str()] {
        let html = html.expect("html").to_lowercase();
        for bad in ["<script", "onerror", "onclick", "javascript:"] {
            assert!(!html.contains(bad), "{bad} in {html}");
        }
        assert!(html.contains("href=\"https://ok.example\""), "{html}");
    }
    assert_eq!(
        read["body_markdown"], evil,
        "the Markdown is kept as written"
    );
}
