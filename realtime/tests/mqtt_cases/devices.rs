//! Device registration: users register, list and revoke their own panic buttons and trackers
//! (a module of the `mqtt` test binary).

use super::*;

#[sqlx::test(migrations = "../migrations")]
async fn users_register_list_and_revoke_their_own_devices(pool: PgPool) {
    let api = Api::new(
        pool,
        MqttConfig {
            max_devices_per_user: 2,
            ..MqttConfig::default()
        },
    );
    let citizen = api.person(&[Role::Citizen]);
    let volunteer = api.person(&[Role::Citizen, Role::Volunteer]);

    let (status, _) = api.call("GET", "/v1/mqtt/devices", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, body) = api
        .call(
            "POST",
            "/v1/mqtt/devices",
            Some(&citizen),
            Some(json!({"kind": "panic", "label": "Tombol di dapur"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["device"]["id"].as_str().expect("an id").to_owned();
    assert!(id.starts_with("pb-"), "{id}");
    assert_eq!(body["mqtt"]["username"], id.as_str());
    assert_eq!(body["mqtt"]["password"].as_str().map(str::len), Some(32));
    assert_eq!(
        body["device"]["publish_topic"],
        format!("kreki/v1/panic/{id}")
    );
    assert_eq!(
        body["device"]["ack_topic"],
        format!("kreki/v1/panic/{id}/ack")
    );

    // Only a hash is kept, and it is Mosquitto's format for exactly that password.
    let hash: String =
        sqlx::query_scalar("SELECT credentials_hash FROM realtime.mqtt_devices WHERE id = $1")
            .bind(&id)
            .fetch_one(&api.pool)
            .await
            .expect("the row");
    let password = body["mqtt"]["password"].as_str().expect("a password");
    assert!(!hash.contains(password));
    assert!(kreki_realtime::mqtt::credentials::verify_mosquitto_hash(
        password, &hash
    ));

    // Trackers are for volunteers.
    let (status, problem) = api
        .call(
            "POST",
            "/v1/mqtt/devices",
            Some(&citizen),
            Some(json!({"kind": "tracker"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    assert_eq!(fields(&problem), ["kind"]);
    let (status, body) = api
        .call(
            "POST",
            "/v1/mqtt/devices",
            Some(&volunteer),
            Some(json!({"kind": "tracker"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        body["device"]["publish_topic"],
        format!("kreki/v1/location/{}", volunteer.id)
    );
    assert_eq!(body["device"]["ack_topic"], Value::Null);

    // Bad input names the field.
    let (status, problem) = api
        .call(
            "POST",
            "/v1/mqtt/devices",
            Some(&citizen),
            Some(json!({"kind": "toaster"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(fields(&problem), ["kind"]);
    let (status, problem) = api
        .call(
            "POST",
            "/v1/mqtt/devices",
            Some(&citizen),
            Some(json!({"kind": "panic", "label": "x".repeat(101)})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(fields(&problem), ["label"]);

    // The limit counts live devices only.
    api.register(&citizen, "panic").await;
    let (status, problem) = api
        .call(
            "POST",
            "/v1/mqtt/devices",
            Some(&citizen),
            Some(json!({"kind": "panic"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");

    // Nobody revokes someone else's device; revoking is idempotent and frees a place.
    let path = format!("/v1/mqtt/devices/{id}");
    let (status, _) = api.call("DELETE", &path, Some(&volunteer), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = api
        .call("DELETE", "/v1/mqtt/devices/nonsense", Some(&citizen), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for _ in 0..2 {
        let (status, body) = api.call("DELETE", &path, Some(&citizen), None).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    }
    let (status, list) = api
        .call("GET", "/v1/mqtt/devices", Some(&citizen), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let list = list.as_array().expect("a list");
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["id"], id.as_str());
    assert!(list[0]["revoked_at"].is_string());
    assert!(list[1]["revoked_at"].is_null());
    assert!(list.iter().all(|device| device.get("password").is_none()));
    api.register(&citizen, "panic").await;
}

// ---------------------------------------------------------------- a real Mosquitto
