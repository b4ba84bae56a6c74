//! The `kreki` binary serves dispatch as the `dispatch` service: its routes are in the OpenAPI
//! description, and its `[dispatch]` section (with per-kind waves) is read and checked.

use std::time::Duration;

use kreki::app::{self, Services};
use kreki::config::Config;
use kreki_dispatch::domain::AlertKind;
use kreki_platform::shutdown::CancellationToken;
use secrecy::SecretString;

#[tokio::test]
async fn the_openapi_description_has_every_dispatch_endpoint() {
    let mut config = Config::default();
    config.auth.signing_key_pem = Some(SecretString::from(
        kreki_auth::keys::generate_pem().expect("a key"),
    ));
    // The pool connects lazily; describing the API needs no database.
    let pool = config.database.pool().expect("a pool");
    let shutdown = CancellationToken::new();
    let services = Services::parse(["dispatch", "auth"]).expect("known services");
    let built = app::build(&config, &pool, &services, &shutdown).expect("builds");
    let spec = serde_json::to_value(&built.openapi).expect("serialises");
    let expected = [
        ("/v1/volunteers/me/duty", "put"),
        ("/v1/volunteers/me/location", "post"),
        ("/v1/volunteers", "get"),
        ("/v1/volunteers/me/offers", "get"),
        ("/v1/alerts", "post"),
        ("/v1/alerts", "get"),
        ("/v1/alerts/{id}", "get"),
        ("/v1/alerts/{id}/timeline", "get"),
        ("/v1/alerts/{id}/cancel", "post"),
        ("/v1/alerts/{id}/assign", "post"),
        ("/v1/offers/{id}/accept", "post"),
        ("/v1/offers/{id}/decline", "post"),
        ("/v1/assignments/{id}/status", "post"),
        ("/v1/dispatch/kinds", "get"),
        ("/v1/dispatch/kinds/{kind}", "put"),
    ];
    for (path, method) in expected {
        let operation = &spec["paths"][path][method];
        assert!(operation.is_object(), "{method} {path} is not described");
        assert!(
            operation["responses"].get("403").is_some()
                || operation["responses"].get("400").is_some()
                || path == "/v1/alerts/{id}",
            "{method} {path} documents no error answer"
        );
    }
    let create = &spec["paths"]["/v1/alerts"]["post"];
    assert!(
        create["parameters"]
            .as_array()
            .is_some_and(|params| params.iter().any(|p| p["name"] == "Idempotency-Key")),
        "{create}"
    );
    assert!(spec["components"]["schemas"].get("Alert").is_some());
    shutdown.cancel();
    for worker in built.workers {
        let _ = tokio::time::timeout(Duration::from_secs(5), worker).await;
    }
}

#[test]
fn the_dispatch_section_is_read_and_checked() {
    let dir = std::env::temp_dir().join(format!("kreki-dispatch-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let good = dir.join("good.toml");
    std::fs::write(
        &good,
        r#"
[dispatch]
rest_period_s = 120
poll_interval_ms = 500

[dispatch.kinds.fire]
required_certifications = ["fire_basic"]
responders_needed = 2
waves = [{ count = 4, radius_m = 1500, timeout_s = 30 }, { count = 10, radius_m = 5000, timeout_s = 45 }]
"#,
    )
    .expect("written");
    let config = Config::load(Some(&good)).expect("valid");
    assert_eq!(config.dispatch.rest_period_s, 120);
    assert_eq!(
        config.dispatch.position_max_age_s, 600,
        "unset keys keep their defaults"
    );
    let fire = config.dispatch.kind_settings(AlertKind::Fire);
    assert_eq!(fire.responders_needed, 2);
    assert_eq!(fire.waves[1].radius_m, 5000);
    assert_eq!(
        config
            .dispatch
            .kind_settings(AlertKind::CardiacArrest)
            .required_certifications,
        ["bls"]
    );

    let wrong = dir.join("wrong.toml");
    std::fs::write(
        &wrong,
        "[dispatch.kinds.fire]\nrequired_certifications = []\nresponders_needed = 1\nwaves = [{ count = 1, radius_m = 1, timeout_s = 30 }]\n",
    )
    .expect("written");
    let error = Config::load(Some(&wrong)).expect_err("out of range");
    assert!(
        error.contains("dispatch.kinds.fire.waves[0].radius_m"),
        "{error}"
    );

    let unknown = dir.join("unknown.toml");
    std::fs::write(
        &unknown,
        "[dispatch.kinds.flood]\nrequired_certifications = []\nresponders_needed = 1\nwaves = []\n",
    )
    .expect("written");
    let error = Config::load(Some(&unknown)).expect_err("an unknown kind");
    assert!(error.contains("flood"), "{error}");
    std::fs::remove_dir_all(&dir).expect("cleaned up");
}

#[test]
fn the_service_is_named_dispatch() {
    assert!(Services::parse(["dispatch"]).is_ok());
    assert!(Services::all().contains(app::Service::Dispatch));
}
