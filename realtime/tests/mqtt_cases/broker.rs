//! The real Mosquitto with the registry's password file and ACL: each device publishes only its
//! own topic (a module of the `mqtt` test binary).

use super::*;

#[sqlx::test(migrations = "../migrations")]
async fn the_broker_lets_each_device_publish_only_its_own_topic(pool: PgPool) {
    let api = Api::new(pool.clone(), MqttConfig::default());
    let citizen = api.person(&[Role::Citizen]);
    let volunteer = api.person(&[Role::Citizen, Role::Volunteer]);
    let (button, button_password) = api.register(&citizen, "panic").await;
    let (other_button, _) = api.register(&citizen, "panic").await;
    let (tracker, tracker_password) = api.register(&volunteer, "tracker").await;
    let (revoked, revoked_password) = api.register(&citizen, "panic").await;
    let (status, _) = api
        .call(
            "DELETE",
            &format!("/v1/mqtt/devices/{revoked}"),
            Some(&citizen),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let broker = Broker::sync_and_start(&pool).await;

    // Wrong passwords, revoked devices and anonymous clients are refused.
    assert!(connect(broker.port, &button, "wrong").await.is_err());
    assert!(
        connect(broker.port, &revoked, &revoked_password)
            .await
            .is_err()
    );
    assert!(connect(broker.port, "", "").await.is_err());

    let mut service = connect(broker.port, SERVICE_USER, SERVICE_PASSWORD)
        .await
        .expect("the service account connects");
    service.subscribe("kreki/v1/panic/+").await;
    service.subscribe("kreki/v1/location/+").await;

    // A button writes its own topic, not another's (the refused publish is sent first, so had it
    // passed, it would arrive first).
    let mut device = connect(broker.port, &button, &button_password)
        .await
        .expect("the button connects");
    device
        .publish(&format!("kreki/v1/panic/{other_button}"), "forged")
        .await;
    device
        .publish(&format!("kreki/v1/location/{}", volunteer.id), "forged")
        .await;
    device
        .publish(&format!("kreki/v1/panic/{button}"), "mine")
        .await;
    assert_eq!(
        service.next().await,
        (format!("kreki/v1/panic/{button}"), b"mine".to_vec())
    );

    // A tracker writes its owner's location topic only.
    let tracker_client = connect(broker.port, &tracker, &tracker_password)
        .await
        .expect("the tracker connects");
    tracker_client
        .publish(&format!("kreki/v1/location/{}", citizen.id), "forged")
        .await;
    tracker_client
        .publish(&format!("kreki/v1/location/{}", volunteer.id), "here")
        .await;
    assert_eq!(
        service.next().await,
        (
            format!("kreki/v1/location/{}", volunteer.id),
            b"here".to_vec()
        )
    );

    // The button reads its own acks and nobody else's.
    device
        .subscribe(&format!("kreki/v1/panic/{other_button}/ack"))
        .await;
    device
        .subscribe(&format!("kreki/v1/panic/{button}/ack"))
        .await;
    service
        .publish(&format!("kreki/v1/panic/{other_button}/ack"), "theirs")
        .await;
    service
        .publish(&format!("kreki/v1/panic/{button}/ack"), "yours")
        .await;
    assert_eq!(
        device.next().await,
        (format!("kreki/v1/panic/{button}/ack"), b"yours".to_vec())
    );
}

// ---------------------------------------------------------------- the consumer
