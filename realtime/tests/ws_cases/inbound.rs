//! What clients send: garbage and oversized frames, invalid UTF-8, topic subscriptions through
//! the authorizer, and the inbound handler, slow or not (a module of the `ws` test binary).

use super::*;

#[tokio::test]
async fn garbage_frames_get_error_frames_and_the_socket_stays_usable() {
    let server = Server::start(RealtimeConfig::default()).await;
    let volunteer = server.person(&[Role::Volunteer]);
    let mut client = server.connect_live(&volunteer).await;
    let garbage = [
        (Message::text("this is not json"), 400, None),
        (Message::text("{\"type\":"), 400, None),
        (Message::binary(vec![0_u8, 159, 146, 150]), 400, None),
        (Message::text("[1,2,3]"), 422, Some("type")),
        (Message::text(r#"{"kind":"ping"}"#), 422, Some("type")),
        (Message::text(r#"{"type":"teleport"}"#), 422, Some("type")),
        (Message::text(r#"{"type":"subscribe"}"#), 422, Some("topic")),
        (
            Message::text(r#"{"type":"subscribe","topic":"with space"}"#),
            422,
            Some("topic"),
        ),
    ];
    for (frame, status, field) in garbage {
        let shown = format!("{frame:?}");
        client.send(frame).await.expect("sent");
        let answer = next_json(&mut client).await;
        assert_eq!(answer["type"], "error", "{shown}: {answer}");
        assert!(answer.get("seq").is_none(), "{shown}: {answer}");
        let problem: Problem =
            serde_json::from_value(answer["problem"].clone()).expect("a problem");
        assert_eq!(problem.status, status, "{shown}: {answer}");
        if let Some(field) = field {
            assert_eq!(problem.errors[0].field, field, "{shown}: {answer}");
        }
    }
    send(&mut client, json!({"type": "ping"})).await;
    assert_eq!(next_json(&mut client).await, json!({"type": "pong"}));
    server.offer(&volunteer, 1);
    assert_eq!(next_json(&mut client).await["seq"], 1);
}

#[tokio::test]
async fn a_message_over_the_limit_closes_with_1009_and_the_server_carries_on() {
    let server = Server::start(RealtimeConfig {
        max_message_bytes: 1024,
        max_frame_bytes: 1024,
        ..RealtimeConfig::default()
    })
    .await;
    let volunteer = server.person(&[Role::Volunteer]);
    let mut client = server.connect_live(&volunteer).await;
    let huge = json!({"type": "location", "note": "x".repeat(4096)});
    send(&mut client, huge).await;
    let (frames, code, _) = until_close(&mut client).await;
    assert_eq!(code, 1009);
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0]["problem"]["status"], 413);
    // Just under the limit is fine, on a new socket.
    let mut client = server.connect_live(&volunteer).await;
    send(&mut client, json!({"type": "ping", "pad": "x".repeat(900)})).await;
    assert_eq!(next_json(&mut client).await, json!({"type": "pong"}));
}

/// Coordinators may follow any `alert:` topic; nobody else may follow anything.
struct AlertsForCoordinators;

impl TopicAuthorizer for AlertsForCoordinators {
    fn may_subscribe(&self, user: &CurrentUser, topic: &str) -> BoxFuture<'_, bool> {
        let allowed = topic.starts_with("alert:") && user.roles.grants(Role::Coordinator);
        Box::pin(async move { allowed })
    }
}

#[tokio::test]
async fn subscriptions_go_through_the_authorizer() {
    let server = Server::start(RealtimeConfig::default()).await;
    let citizen = server.person(&[]);
    let mut client = server.connect_live(&citizen).await;
    send(
        &mut client,
        json!({"type": "subscribe", "topic": "alert:42"}),
    )
    .await;
    let refused = next_json(&mut client).await;
    assert_eq!(refused["type"], "error");
    assert_eq!(refused["problem"]["status"], 403);
    assert_eq!(refused["problem"]["errors"][0]["field"], "topic");
    server.hub.publish(
        Audience::Topic("alert:42".into()),
        json!({"type": "alert.updated"}),
    );

    // The default authorizer lets a user follow their own topic.
    let own = format!("user:{}", citizen.id);
    send(&mut client, json!({"type": "subscribe", "topic": own})).await;
    assert_eq!(
        next_json(&mut client).await,
        json!({"type": "subscribed", "topic": own})
    );
    server.hub.publish(
        Audience::Topic(own.clone()),
        json!({"type": "alert.updated"}),
    );
    // Seq 1: the alert:42 message never reached this user.
    assert_eq!(
        next_json(&mut client).await,
        json!({"seq": 1, "type": "alert.updated"})
    );
}

#[tokio::test]
async fn a_wired_authorizer_decides_and_topics_reach_only_subscribers() {
    let server = Server::start_with(RealtimeConfig::default(), |state| {
        state.with_authorizer(Arc::new(AlertsForCoordinators))
    })
    .await;
    let coordinator = server.person(&[Role::Coordinator]);
    let volunteer = server.person(&[Role::Volunteer]);
    let mut c = server.connect_live(&coordinator).await;
    let mut v = server.connect_live(&volunteer).await;
    for client in [&mut c, &mut v] {
        send(client, json!({"type": "subscribe", "topic": "alert:7"})).await;
    }
    assert_eq!(next_json(&mut c).await["type"], "subscribed");
    assert_eq!(next_json(&mut v).await["problem"]["status"], 403);
    server.hub.publish(
        Audience::Topic("alert:7".into()),
        json!({"type": "alert.updated", "id": 7}),
    );
    assert_eq!(
        next_json(&mut c).await,
        json!({"seq": 1, "type": "alert.updated", "id": 7})
    );
    send(&mut c, json!({"type": "unsubscribe", "topic": "alert:7"})).await;
    assert_eq!(next_json(&mut c).await["type"], "unsubscribed");
    server.hub.publish(
        Audience::Topic("alert:7".into()),
        json!({"type": "alert.updated", "id": 7}),
    );
    server
        .hub
        .publish(Audience::User(coordinator.id), json!({"type": "marker"}));
    assert_eq!(next_json(&mut c).await, json!({"seq": 2, "type": "marker"}));
}

/// Hands every message to the test, and refuses those without `lat`.
struct Recorder(mpsc::UnboundedSender<(Uuid, Value)>);

impl InboundHandler for Recorder {
    fn handle(&self, user: &CurrentUser, message: Value) -> BoxFuture<'_, Result<(), Problem>> {
        let user = user.id.0;
        Box::pin(async move {
            if message.get("lat").is_none() {
                return Err(Problem::validation(vec![kreki_platform::FieldError::new(
                    "lat",
                    "is required",
                )]));
            }
            self.0
                .send((user, message))
                .map_err(|_| Problem::bad_request("test over"))
        })
    }
}

#[tokio::test]
async fn other_messages_go_to_the_inbound_handler() {
    let (sender, mut received) = mpsc::unbounded_channel();
    let server = Server::start_with(RealtimeConfig::default(), |state| {
        state.with_inbound(Arc::new(Recorder(sender)))
    })
    .await;
    let volunteer = server.person(&[Role::Volunteer]);
    let mut client = server.connect_live(&volunteer).await;
    let location = json!({"type": "location", "lat": -6.2, "lng": 106.8, "accuracy_m": 12});
    send(&mut client, location.clone()).await;
    let (user, message) = tokio::time::timeout(PATIENCE, received.recv())
        .await
        .expect("in time")
        .expect("a message");
    assert_eq!((user, message), (volunteer.id, location));
    send(&mut client, json!({"type": "location", "lng": 106.8})).await;
    let refused = next_json(&mut client).await;
    assert_eq!(refused["problem"]["errors"][0]["field"], "lat");
}

/// Takes its time over every message.
struct Sluggish(Duration);

impl InboundHandler for Sluggish {
    fn handle(&self, _user: &CurrentUser, _message: Value) -> BoxFuture<'_, Result<(), Problem>> {
        Box::pin(async move {
            tokio::time::sleep(self.0).await;
            Ok(())
        })
    }
}

#[tokio::test]
async fn a_slow_inbound_handler_never_delays_offers() {
    let server = Server::start_with(RealtimeConfig::default(), |state| {
        state.with_inbound(Arc::new(Sluggish(Duration::from_secs(2))))
    })
    .await;
    let volunteer = server.person(&[Role::Volunteer]);
    let mut client = server.connect_live(&volunteer).await;
    send(
        &mut client,
        json!({"type": "location", "lat": -6.2, "lng": 106.8}),
    )
    .await;
    // Let the socket task pick the location up and start on it.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let published = tokio::time::Instant::now();
    server.offer(&volunteer, 1);
    assert_eq!(next_json(&mut client).await["seq"], 1);
    assert!(
        published.elapsed() < Duration::from_secs(1),
        "the offer waited for the handler: {:?}",
        published.elapsed()
    );
}

#[tokio::test]
async fn an_inbound_handler_over_its_time_gets_a_503_error_frame() {
    let server = Server::start_with(
        RealtimeConfig {
            inbound_timeout_ms: 100,
            ..RealtimeConfig::default()
        },
        |state| state.with_inbound(Arc::new(Sluggish(Duration::from_secs(30)))),
    )
    .await;
    let volunteer = server.person(&[Role::Volunteer]);
    let mut client = server.connect_live(&volunteer).await;
    send(
        &mut client,
        json!({"type": "location", "lat": -6.2, "lng": 106.8}),
    )
    .await;
    let answer = next_json(&mut client).await;
    assert_eq!(answer["type"], "error");
    assert_eq!(answer["problem"]["status"], 503);
    send(&mut client, json!({"type": "ping"})).await;
    assert_eq!(next_json(&mut client).await, json!({"type": "pong"}));
}

#[tokio::test]
async fn a_text_frame_that_is_not_utf8_closes_with_1007() {
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

    let server = Server::start(RealtimeConfig::default()).await;
    let volunteer = server.person(&[Role::Volunteer]);
    let mut client = server.connect_live(&volunteer).await;
    let broken = Frame::message(
        vec![0x7b_u8, 0xff, 0xfe, 0x7d],
        OpCode::Data(Data::Text),
        true,
    );
    client.send(Message::Frame(broken)).await.expect("sent");
    let (_, code, _) = until_close(&mut client).await;
    assert_eq!(code, 1007);
    server.connect_live(&volunteer).await;
}
