//! The OpenAPI description: generated from the handlers, complete for the contract in docs/API.md, and
//! snapshot-tested so any change to the public API shows up in review (`INSTA_UPDATE=always` to accept).

use kreki::app::{self, Services};
use kreki::config::Config;
use kreki_platform::shutdown::CancellationToken;

fn spec() -> serde_json::Value {
    let mut config = Config::default();
    config.auth.signing_key_pem = Some(kreki_auth::keys::generate_pem().expect("key").into());
    // Never connected to: building the app does not touch the database.
    let pool = config.database.pool().expect("default URL parses");
    let shutdown = CancellationToken::new();
    let app = app::build(&config, &pool, &Services::all(), &shutdown).expect("app builds");
    shutdown.cancel();
    serde_json::to_value(&app.openapi).expect("spec serialises")
}

#[tokio::test]
async fn every_contract_path_is_described() {
    let spec = spec();
    assert_eq!(spec["openapi"], "3.1.0");
    let paths = spec["paths"].as_object().expect("paths");
    for (method, path) in [
        ("post", "/v1/auth/register"),
        ("post", "/v1/auth/login"),
        ("post", "/v1/auth/refresh"),
        ("post", "/v1/auth/logout"),
        ("get", "/v1/auth/me"),
        ("put", "/v1/admin/users/{id}/roles"),
        ("post", "/v1/admin/clients"),
        ("post", "/v1/auth/token"),
        ("get", "/.well-known/jwks.json"),
        ("get", "/v1/lms/certifications"),
        ("get", "/v1/lms/courses"),
        ("get", "/v1/lms/courses/{id}"),
        ("post", "/v1/lms/courses"),
        ("post", "/v1/lms/courses/{id}/enroll"),
        ("post", "/v1/lms/quizzes/{id}/attempts"),
        ("get", "/v1/lms/certificates/me"),
        ("post", "/v1/lms/certificates"),
        ("post", "/v1/lms/certificates/{id}/revoke"),
        ("get", "/v1/lms/certificates/verify/{code}"),
        ("post", "/v1/volunteers/me/practitioner-verification"),
        ("get", "/fhir/r4/metadata"),
        ("get", "/fhir/r4/Encounter"),
        ("get", "/fhir/r4/Encounter/{id}"),
        ("get", "/fhir/r4/Location/{id}"),
        ("get", "/fhir/r4/Task"),
        ("post", "/v1/aeds"),
        ("get", "/v1/aeds"),
        ("patch", "/v1/aeds/{id}"),
        ("get", "/v1/volunteers/me/checkins"),
        ("post", "/v1/checkins/{id}"),
        ("get", "/v1/checkins"),
        ("post", "/v1/alerts/{id}/resolve"),
        ("delete", "/v1/auth/me"),
        ("delete", "/v1/admin/users/{id}"),
        ("get", "/v1/admin/users/{id}"),
        ("get", "/v1/admin/audit"),
        ("get", "/v1/warnings"),
        ("get", "/v1/warnings/{id}"),
        ("post", "/v1/broadcasts"),
        ("get", "/v1/broadcasts"),
        ("get", "/cap/alerts.atom"),
        ("get", "/cap/alerts/{file}"),
    ] {
        assert!(
            paths.get(path).and_then(|item| item.get(method)).is_some(),
            "{method} {path} missing from OpenAPI"
        );
    }
}

#[tokio::test]
async fn openapi_snapshot() {
    insta::assert_json_snapshot!("openapi", spec());
}
