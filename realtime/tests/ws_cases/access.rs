//! Who may connect and for how long: tokens before the upgrade and at expiry, connection limits,
//! pings, machine clients, shutdown (a module of the `ws` test binary).

use super::*;

#[tokio::test]
async fn no_or_bad_token_is_a_401_problem_before_the_upgrade() {
    let server = Server::start(RealtimeConfig::default()).await;
    for url in [server.url(""), server.url("?access_token=not.a.token")] {
        match connect_async(url.as_str()).await {
            Err(tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), http::StatusCode::UNAUTHORIZED, "{url}");
            }
            other => panic!("{url}: expected a 401, got {other:?}"),
        }
    }
    let response = reqwest::get(format!("http://{}/v1/ws", server.addr))
        .await
        .expect("an answer");
    assert_eq!(response.status(), reqwest::StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers()[reqwest::header::CONTENT_TYPE],
        "application/problem+json"
    );
    let problem: Value = response.json().await.expect("JSON");
    assert_eq!(problem["status"], 401);

    // Browsers put the token in the query string.
    let volunteer = server.person(&[Role::Volunteer]);
    let (mut client, _) = connect_async(server.url(&format!("?access_token={}", volunteer.token)))
        .await
        .expect("a token in the query works");
    send(&mut client, json!({"type": "ping"})).await;
    assert_eq!(next_json(&mut client).await, json!({"type": "pong"}));

    // A bad resume_after is named.
    let response = reqwest::get(format!(
        "http://{}/v1/ws?access_token={}&resume_after=soon",
        server.addr, volunteer.token
    ))
    .await
    .expect("an answer");
    assert_eq!(response.status(), reqwest::StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Value = response.json().await.expect("JSON");
    assert_eq!(problem["errors"][0]["field"], "resume_after");
}

#[tokio::test]
async fn connections_beyond_the_limit_get_503() {
    let server = Server::start(RealtimeConfig {
        max_connections: 1,
        ..RealtimeConfig::default()
    })
    .await;
    let volunteer = server.person(&[Role::Volunteer]);
    let first = server.connect_live(&volunteer).await;
    let url = server.url(&format!("?access_token={}", volunteer.token));
    match connect_async(url.as_str()).await {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), http::StatusCode::SERVICE_UNAVAILABLE);
            assert!(response.headers().contains_key(http::header::RETRY_AFTER));
        }
        other => panic!("expected a 503, got {other:?}"),
    }
    drop(first);
    // The slot comes back when the first socket is gone.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Ok((mut client, _)) = connect_async(url.as_str()).await {
            send(&mut client, json!({"type": "ping"})).await;
            assert_eq!(next_json(&mut client).await, json!({"type": "pong"}));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slot was never released"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_server_pings_and_drops_peers_that_stay_silent() {
    let server = Server::start(RealtimeConfig {
        ping_interval_ms: 50,
        idle_timeout_ms: 300,
        inbound_timeout_ms: 100,
        ..RealtimeConfig::default()
    })
    .await;
    let volunteer = server.person(&[Role::Volunteer]);
    let mut listening = server.connect_live(&volunteer).await;
    let _silent = server.connect_live(&volunteer).await;
    // A client that reads answers pings (tungstenite does it) and stays.
    let ping = tokio::time::timeout(PATIENCE, async {
        loop {
            match listening.next().await {
                Some(Ok(Message::Ping(_))) => break,
                Some(Ok(_)) => {}
                other => panic!("expected a ping, got {other:?}"),
            }
        }
    })
    .await;
    assert!(ping.is_ok(), "the server pings");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while server.hub.stats().connections > 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the silent peer was never dropped"
        );
        // Keep the listening client answering pings meanwhile.
        drop(tokio::time::timeout(Duration::from_millis(20), listening.next()).await);
    }
    server.offer(&volunteer, 1);
    assert_eq!(next_json(&mut listening).await["seq"], 1);
}

#[tokio::test]
async fn shutdown_closes_every_socket_with_1001() {
    let server = Server::start(RealtimeConfig::default()).await;
    let volunteer = server.person(&[Role::Volunteer]);
    let coordinator = server.person(&[Role::Coordinator]);
    let mut a = server.connect_live(&volunteer).await;
    let mut b = server.connect_live(&coordinator).await;
    server.shutdown.cancel();
    for client in [&mut a, &mut b] {
        let (_, code, reason) = until_close(client).await;
        assert_eq!(code, 1001);
        assert!(reason.contains("resume_after"), "{reason}");
    }
    drop((a, b));
    tokio::time::timeout(PATIENCE, server.worker)
        .await
        .expect("the worker waits for the sockets, then stops")
        .expect("the worker did not panic");
    tokio::time::timeout(PATIENCE, server.server)
        .await
        .expect("the server stops")
        .expect("the server did not panic");
    assert_eq!(server.hub.stats().connections, 0);
}

#[tokio::test]
async fn one_account_cannot_take_every_connection() {
    let server = Server::start(RealtimeConfig {
        max_connections_per_user: 2,
        ..RealtimeConfig::default()
    })
    .await;
    let volunteer = server.person(&[Role::Volunteer]);
    let _phone = server.connect_live(&volunteer).await;
    let _tablet = server.connect_live(&volunteer).await;
    let url = server.url(&format!("?access_token={}", volunteer.token));
    match connect_async(url.as_str()).await {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), http::StatusCode::TOO_MANY_REQUESTS);
        }
        other => panic!("expected a 429, got {other:?}"),
    }
    // Someone else still gets in.
    let other = server.person(&[Role::Volunteer]);
    server.connect_live(&other).await;
}

#[tokio::test]
async fn a_socket_closes_with_4001_when_its_token_expires() {
    let server = Server::start(RealtimeConfig::default()).await;
    // Tokens count whole seconds: this one has 1 to 2 s left.
    let short = Issuer::new(
        Arc::clone(&server.keys),
        "kreki".to_owned(),
        Duration::from_secs(2),
    );
    let volunteer = server.person_with(&short, &[Role::Volunteer]);
    let mut client = server.connect_live(&volunteer).await;
    let started = tokio::time::Instant::now();
    let (_, code, reason) = until_close(&mut client).await;
    assert_eq!(code, 4001);
    assert!(reason.contains("resume_after"), "{reason}");
    assert!(
        started.elapsed() <= Duration::from_millis(2500),
        "closed at expiry"
    );
}

#[tokio::test]
async fn machine_clients_are_refused_with_403() {
    let server = Server::start(RealtimeConfig::default()).await;
    let token = server
        .issuer
        .for_client("rs-cipto", "system/*.read")
        .expect("signs");
    let response = reqwest::get(format!("http://{}/v1/ws?access_token={token}", server.addr))
        .await
        .expect("an answer");
    assert_eq!(response.status(), reqwest::StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_token_just_past_its_expiry_is_refused_before_the_upgrade() {
    let server = Server::start(RealtimeConfig::default()).await;
    let short = Issuer::new(
        Arc::clone(&server.keys),
        "kreki".to_owned(),
        Duration::from_secs(1),
    );
    let volunteer = server.person_with(&short, &[Role::Volunteer]);
    // Past `exp`, but within the verifier's allowance for clock skew.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let url = server.url(&format!("?access_token={}", volunteer.token));
    match connect_async(url.as_str()).await {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), http::StatusCode::UNAUTHORIZED);
        }
        other => panic!("expected a 401, got {other:?}"),
    }
}
