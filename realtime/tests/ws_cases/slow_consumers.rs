//! Slow consumers: a full queue closes with 4008, stalled writes are dropped, and both resume
//! from the ring (a module of the `ws` test binary).

use super::*;

#[tokio::test]
async fn a_slow_consumer_is_closed_with_4008_and_resumes_from_the_ring() {
    let server = Server::start(RealtimeConfig {
        outbound_queue: 4,
        ..RealtimeConfig::default()
    })
    .await;
    let volunteer = server.person(&[Role::Volunteer]);
    let mut client = server.connect_live(&volunteer).await;
    // Published faster than the socket task can drain its queue of 4 (this runtime runs one task
    // at a time and publish never yields).
    for n in 1..=50 {
        server.offer(&volunteer, n);
    }
    let (before_close, code, reason) = until_close(&mut client).await;
    assert_eq!(code, 4008);
    assert!(reason.contains("resume_after"), "{reason}");
    let last_seen = seqs(&before_close).last().copied().unwrap_or(0);
    assert!(last_seen < 50, "it was disconnected before the end");

    let mut client = server
        .connect(&volunteer, &format!("?resume_after={last_seen}"))
        .await;
    let mut rest = Vec::new();
    for _ in last_seen..50 {
        rest.push(next_json(&mut client).await);
    }
    assert_eq!(seqs(&rest), ((last_seen + 1)..=50).collect::<Vec<_>>());
    assert_eq!(
        rest.last().map(|frame| frame["offer"]["n"].clone()),
        Some(json!(50))
    );
}

/// Every data frame until the server closes or the connection ends, and the close code if a close
/// frame came.
async fn until_end(client: &mut Client) -> (Vec<Value>, Option<u16>) {
    let mut frames = Vec::new();
    loop {
        match tokio::time::timeout(PATIENCE, client.next())
            .await
            .expect("the end in time")
        {
            Some(Ok(Message::Text(text))) => {
                frames.push(serde_json::from_str(text.as_str()).expect("JSON"));
            }
            Some(Ok(Message::Close(close))) => {
                return (frames, close.map(|close| u16::from(close.code)));
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return (frames, None),
        }
    }
}

#[tokio::test]
async fn a_consumer_whose_writes_stall_is_dropped_and_resumes_from_the_ring() {
    let server = Server::start(RealtimeConfig {
        outbound_queue: 1024,
        write_timeout_ms: 50,
        ..RealtimeConfig::default()
    })
    .await;
    let volunteer = server.person(&[Role::Volunteer]);
    let mut client = server.connect_live(&volunteer).await;
    let padding = "x".repeat(64 * 1024);
    // 12.8 MB: more than the socket buffers hold while the client does not read.
    for n in 1..=200 {
        server.hub.publish(
            Audience::User(volunteer.id),
            json!({"type": "offer", "offer": {"n": n}, "pad": padding}),
        );
    }
    // Not reading meanwhile: the server's writes stall until it gives up on this client.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while server.hub.stats().connections > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stalled socket was never let go"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (received, code) = until_end(&mut client).await;
    assert!(matches!(code, None | Some(4008)), "{code:?}");
    let last_seen = seqs(&received).last().copied().unwrap_or(0);
    assert!(last_seen < 200);
    assert_eq!(seqs(&received), (1..=last_seen).collect::<Vec<_>>());

    let mut client = server
        .connect(&volunteer, &format!("?resume_after={last_seen}"))
        .await;
    let mut rest = Vec::new();
    for _ in last_seen..200 {
        rest.push(next_json(&mut client).await["seq"].as_u64().expect("a seq"));
    }
    assert_eq!(rest, ((last_seen + 1)..=200).collect::<Vec<_>>());
}
