//! Delivery: per-user numbering, every socket of a user, role audiences, resuming from the ring,
//! `resync` when it cannot, and concurrent publishers (a module of the `ws` test binary).

use super::*;

#[tokio::test]
async fn offers_to_a_user_arrive_numbered_1_2_3() {
    let server = Server::start(RealtimeConfig::default()).await;
    let volunteer = server.person(&[Role::Volunteer]);
    let mut client = server.connect_live(&volunteer).await;
    for n in 1..=3 {
        server.offer(&volunteer, n);
    }
    for n in 1..=3 {
        assert_eq!(
            next_json(&mut client).await,
            json!({"seq": n, "type": "offer", "offer": {"n": n}})
        );
    }
}

#[tokio::test]
async fn every_socket_of_a_user_gets_every_message_with_the_same_seq() {
    let server = Server::start(RealtimeConfig::default()).await;
    let volunteer = server.person(&[Role::Volunteer]);
    let mut phone = server.connect_live(&volunteer).await;
    let mut tablet = server.connect_live(&volunteer).await;
    assert_eq!(server.hub.stats().connections, 2);
    server.offer(&volunteer, 1);
    server.offer(&volunteer, 2);
    for client in [&mut phone, &mut tablet] {
        assert_eq!(
            seqs(&[next_json(client).await, next_json(client).await]),
            [1, 2]
        );
    }
}

#[tokio::test]
async fn the_coordinator_role_reaches_coordinators_and_admins_only() {
    let server = Server::start(RealtimeConfig::default()).await;
    let coordinator = server.person(&[Role::Coordinator]);
    let admin = server.person(&[Role::Admin]);
    let volunteer = server.person(&[Role::Volunteer]);
    let mut c = server.connect_live(&coordinator).await;
    let mut a = server.connect_live(&admin).await;
    let mut v = server.connect_live(&volunteer).await;
    server.hub.publish(
        Audience::Role(Role::Coordinator),
        json!({"type": "volunteer.position", "lat": -6.2, "lng": 106.8}),
    );
    for client in [&mut c, &mut a] {
        let frame = next_json(client).await;
        assert_eq!(frame["type"], "volunteer.position");
        assert_eq!(frame["seq"], 1);
    }
    // Had the volunteer been reached, its first frame would be that position with seq 1.
    server.offer(&volunteer, 9);
    assert_eq!(
        next_json(&mut v).await,
        json!({"seq": 1, "type": "offer", "offer": {"n": 9}})
    );
}

#[tokio::test]
async fn resume_after_replays_exactly_what_was_missed_then_goes_live() {
    let server = Server::start(RealtimeConfig::default()).await;
    let volunteer = server.person(&[Role::Volunteer]);
    let mut client = server.connect_live(&volunteer).await;
    for n in 1..=3 {
        server.offer(&volunteer, n);
    }
    let seen: Vec<Value> = vec![
        next_json(&mut client).await,
        next_json(&mut client).await,
        next_json(&mut client).await,
    ];
    assert_eq!(seqs(&seen), [1, 2, 3]);
    client.close(None).await.expect("closed");
    drop(client);
    // Offline: these wait in the replay ring.
    server.offer(&volunteer, 4);
    server.offer(&volunteer, 5);
    let mut client = server.connect(&volunteer, "?resume_after=3").await;
    assert_eq!(
        next_json(&mut client).await,
        json!({"seq": 4, "type": "offer", "offer": {"n": 4}})
    );
    assert_eq!(next_json(&mut client).await["seq"], 5);
    server.offer(&volunteer, 6);
    assert_eq!(next_json(&mut client).await["seq"], 6);
}

#[tokio::test]
async fn a_cursor_older_than_the_window_gets_resync_first() {
    let server = Server::start(RealtimeConfig {
        replay_messages: 3,
        ..RealtimeConfig::default()
    })
    .await;
    let volunteer = server.person(&[Role::Volunteer]);
    // Never connected: the messages create the session and wait; only the newest 3 are kept.
    for n in 1..=6 {
        server.offer(&volunteer, n);
    }
    let mut client = server.connect(&volunteer, "?resume_after=1").await;
    assert_eq!(
        next_json(&mut client).await,
        json!({"type": "resync", "seq": 6})
    );
    server.offer(&volunteer, 7);
    assert_eq!(next_json(&mut client).await["seq"], 7);

    // Within the window the kept ones are replayed instead.
    let mut other = server.connect(&volunteer, "?resume_after=4").await;
    assert_eq!(
        seqs(&[
            next_json(&mut other).await,
            next_json(&mut other).await,
            next_json(&mut other).await
        ]),
        [5, 6, 7]
    );
}

#[tokio::test]
async fn a_cursor_from_a_forgotten_session_gets_resync_not_a_partial_replay() {
    let server = Server::start(RealtimeConfig {
        session_idle_s: 0,
        ..RealtimeConfig::default()
    })
    .await;
    let volunteer = server.person(&[Role::Volunteer]);
    let mut client = server.connect_live(&volunteer).await;
    for n in 1..=3 {
        server.offer(&volunteer, n);
    }
    let mut last = Value::Null;
    for _ in 1..=3 {
        last = next_raw(&mut client).await;
    }
    let old_epoch = last["epoch"].as_u64().expect("an epoch");
    assert_eq!(last["seq"], 3);
    drop(client);
    // The sweeper forgets the idle session (within a second or two).
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while server.hub.stats().sessions > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the session was never swept"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Offers while away start a new numbering: seq 1..5.
    for n in 1..=5 {
        server.offer(&volunteer, n);
    }
    let query = format!("?resume_after=3&epoch={old_epoch}");
    let mut client = server.connect(&volunteer, &query).await;
    let resync = next_raw(&mut client).await;
    assert_eq!(resync["type"], "resync", "{resync}");
    assert_eq!(resync["seq"], 5);
    let new_epoch = resync["epoch"].as_u64().expect("an epoch");
    assert_ne!(new_epoch, old_epoch);
    // With the new cursor nothing is missing.
    let query = format!("?resume_after=4&epoch={new_epoch}");
    let mut client = server.connect(&volunteer, &query).await;
    assert_eq!(
        next_json(&mut client).await,
        json!({"seq": 5, "type": "offer", "offer": {"n": 5}})
    );

    let response = reqwest::get(format!(
        "http://{}/v1/ws?access_token={}&resume_after=4&epoch=yesterday",
        server.addr, volunteer.token
    ))
    .await
    .expect("an answer");
    assert_eq!(response.status(), reqwest::StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Value = response.json().await.expect("JSON");
    assert_eq!(problem["errors"][0]["field"], "epoch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishers_never_reorder_or_skip_a_users_seq() {
    let server = Server::start(RealtimeConfig {
        outbound_queue: 4096,
        ..RealtimeConfig::default()
    })
    .await;
    let server = Arc::new(server);
    let a = server.person(&[Role::Volunteer]);
    let b = server.person(&[Role::Coordinator]);
    let mut clients = vec![
        server.connect_live(&a).await,
        server.connect_live(&a).await,
        server.connect_live(&b).await,
    ];
    let users = vec![a.id, b.id];
    let publishers: Vec<JoinHandle<()>> = (0..4)
        .map(|publisher| {
            let hub = server.hub.clone();
            let users = users.clone();
            tokio::spawn(async move {
                for n in 0..250 {
                    hub.publish(
                        Audience::Users(users.clone()),
                        json!({"type": "alert.updated", "from": publisher, "n": n}),
                    );
                    if n % 50 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    for publisher in publishers {
        publisher.await.expect("published");
    }
    for client in &mut clients {
        let mut frames = Vec::new();
        for _ in 0..1000 {
            frames.push(next_json(client).await);
        }
        assert_eq!(seqs(&frames), (1..=1000).collect::<Vec<_>>());
        // Each publisher's own messages keep their order.
        for publisher in 0..4 {
            let ns: Vec<u64> = frames
                .iter()
                .filter(|frame| frame["from"] == publisher)
                .map(|frame| frame["n"].as_u64().expect("n"))
                .collect();
            assert_eq!(ns, (0..250).collect::<Vec<_>>());
        }
    }
}
