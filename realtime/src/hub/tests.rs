//! The hub without a network: numbering, replay, resync, audiences, acknowledgements, budget.

use serde_json::{Value, json};

use super::*;

fn hub(config: RealtimeConfig) -> Hub {
    Hub::new(config, CancellationToken::new())
}

fn frame(message: Value) -> Frame {
    Frame::from_value(message).expect("a valid message")
}

fn envelope(audience: Audience, message: Value) -> Envelope {
    Envelope {
        audience,
        frame: frame(message),
    }
}

/// A frame as JSON, without its `epoch` (checked to be there).
fn parse(frame: &Outgoing) -> Value {
    let text = frame.encode();
    let mut value: Value = serde_json::from_str(text.as_str()).expect("frames are JSON");
    let epoch = value
        .as_object_mut()
        .and_then(|object| object.remove("epoch"));
    assert!(epoch.is_some_and(|epoch| epoch.is_u64()), "{text}");
    value
}

fn epoch_of(frame: &Outgoing) -> u64 {
    frame.cursor().0
}

fn after(seq: u64) -> Option<Cursor> {
    Some(Cursor {
        after: seq,
        epoch: None,
    })
}

fn drain(attachment: &mut Attachment) -> Vec<Value> {
    let mut frames = Vec::new();
    while let Ok(frame) = attachment.outbound.try_recv() {
        frames.push(parse(&frame));
    }
    frames
}

fn body(text: &'static str) -> Utf8Bytes {
    Utf8Bytes::from_static(text)
}

fn numbered(user: Uuid, epoch: u64, seq: u64) -> [Numbered; 1] {
    [Numbered { user, epoch, seq }]
}

#[test]
fn seq_is_per_user_and_replaces_any_given_seq() {
    let hub = hub(RealtimeConfig::default());
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let mut conn_a = hub.attach(a, &Roles::default(), None);
    hub.publish(
        Audience::User(a),
        json!({"type": "offer", "seq": 99, "epoch": 7}),
    );
    hub.publish(
        Audience::Users(vec![a, b, a]),
        json!({"type": "alert.updated"}),
    );
    let first = conn_a.outbound.try_recv().expect("the offer");
    assert_eq!(first.encode().as_str().matches("\"epoch\"").count(), 1);
    assert_ne!(epoch_of(&first), 7);
    assert_eq!(parse(&first), json!({"seq": 1, "type": "offer"}));
    let frames = drain(&mut conn_a);
    assert_eq!(frames, vec![json!({"seq": 2, "type": "alert.updated"})]);
    let conn_b = hub.attach(b, &Roles::default(), after(0));
    let replayed: Vec<Value> = conn_b.backlog.iter().map(parse).collect();
    assert_eq!(replayed, vec![json!({"seq": 1, "type": "alert.updated"})]);
}

#[test]
fn one_encoding_is_shared_by_every_ring_and_socket() {
    let hub = hub(RealtimeConfig::default());
    let users: Vec<Uuid> = (0..50).map(|_| Uuid::new_v4()).collect();
    let mut connections: Vec<Attachment> = users
        .iter()
        .map(|user| hub.attach(*user, &Roles::default(), None))
        .collect();
    let offer = frame(json!({"type": "alert.updated", "note": "x".repeat(500)}));
    hub.publish_frame(Audience::Users(users.clone()), &offer);
    let address = offer.body().as_str().as_ptr();
    for connection in &mut connections {
        match connection.outbound.try_recv().expect("a frame") {
            Outgoing::Message { body, .. } => assert_eq!(body.as_str().as_ptr(), address),
            other => panic!("{other:?}"),
        }
    }
    let state = hub.lock();
    for user in &users {
        assert_eq!(
            state.sessions[user]
                .ring
                .iter()
                .next()
                .map(|(_, body)| body.as_str().as_ptr()),
            Some(address),
            "rings hold the publisher's bytes, not copies"
        );
    }
}

#[test]
fn messages_too_long_to_write_are_dropped() {
    let hub = hub(RealtimeConfig::default());
    let user = Uuid::new_v4();
    let limit = RealtimeConfig::default().max_outbound_frame_bytes();
    hub.publish(
        Audience::User(user),
        json!({"type": "offer", "note": "x".repeat(limit - 100)}),
    );
    assert_eq!(hub.stats().sessions, 1);
    let other = Uuid::new_v4();
    hub.publish(
        Audience::User(other),
        json!({"type": "offer", "note": "x".repeat(limit)}),
    );
    for message in [
        json!("offer"),
        json!({"kind": "offer"}),
        json!({"type": ""}),
    ] {
        hub.publish(Audience::User(other), message);
    }
    assert_eq!(hub.stats().sessions, 1);
}

/// Keeps what it is given, like a bus whose other side is not running.
#[derive(Default)]
struct Captured(Mutex<Vec<Envelope>>);

impl Bus for Arc<Captured> {
    fn send(&self, envelope: Envelope) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(envelope);
    }
}

#[test]
fn with_a_bus_publish_goes_through_it_and_nothing_is_numbered_here() {
    let bus = Arc::new(Captured::default());
    let hub = Hub::with_bus(
        RealtimeConfig::default(),
        CancellationToken::new(),
        Arc::new(Arc::clone(&bus)),
    );
    let user = Uuid::new_v4();
    let mut conn = hub.attach(user, &Roles::default(), None);
    hub.publish(Audience::User(user), json!({"type": "offer"}));
    assert!(
        drain(&mut conn).is_empty(),
        "nothing is delivered until the bus brings it"
    );
    let carried = std::mem::take(&mut *bus.0.lock().unwrap_or_else(PoisonError::into_inner));
    assert_eq!(carried.len(), 1);
    assert_eq!(carried[0].frame.to_json(), r#"{"type":"offer"}"#);
    assert_eq!(
        hub.deliver_numbered(&numbered(user, 40, 1), carried[0].frame.body(), None, true),
        1
    );
    assert_eq!(drain(&mut conn), vec![json!({"seq": 1, "type": "offer"})]);
}

#[test]
fn roles_reach_holders_and_admins_but_not_others() {
    let hub = hub(RealtimeConfig::default());
    let coordinator = Uuid::new_v4();
    let admin = Uuid::new_v4();
    let volunteer = Uuid::new_v4();
    let mut c = hub.attach(coordinator, &Roles::new([Role::Coordinator]), None);
    let mut a = hub.attach(admin, &Roles::new([Role::Admin]), None);
    let mut v = hub.attach(volunteer, &Roles::new([Role::Volunteer]), None);
    assert_eq!(
        hub.deliver(envelope(
            Audience::Role(Role::Coordinator),
            json!({"type": "volunteer.position"})
        )),
        2
    );
    assert_eq!(drain(&mut c).len(), 1);
    assert_eq!(drain(&mut a).len(), 1);
    assert!(drain(&mut v).is_empty());
    // A region's news leaves out the coordinators of other regions.
    assert_eq!(
        hub.deliver(envelope(
            Audience::RoleExcept(Role::Coordinator, vec![coordinator]),
            json!({"type": "escalation"})
        )),
        1
    );
    assert!(drain(&mut c).is_empty());
    assert_eq!(drain(&mut a).len(), 1);
    // A new token without the role takes the user out of the audience.
    let _c2 = hub.attach(coordinator, &Roles::new([Role::Volunteer]), None);
    hub.publish(
        Audience::Role(Role::Coordinator),
        json!({"type": "volunteer.position"}),
    );
    assert!(drain(&mut c).is_empty());
}

#[test]
fn a_full_queue_kicks_the_connection_and_the_ring_keeps_everything() {
    let hub = hub(RealtimeConfig {
        outbound_queue: 2,
        ..RealtimeConfig::default()
    });
    let user = Uuid::new_v4();
    let conn = hub.attach(user, &Roles::default(), None);
    for _ in 0..3 {
        hub.publish(Audience::User(user), json!({"type": "offer"}));
    }
    assert!(conn.kicked.is_cancelled());
    assert_eq!(hub.stats().connections, 0);
    let again = hub.attach(user, &Roles::default(), after(1));
    let seqs: Vec<Value> = again
        .backlog
        .iter()
        .map(|f| parse(f)["seq"].clone())
        .collect();
    assert_eq!(seqs, vec![json!(2), json!(3)]);
}

#[test]
fn resume_replays_after_the_cursor_or_asks_for_a_resync() {
    let hub = hub(RealtimeConfig {
        replay_messages: 3,
        ..RealtimeConfig::default()
    });
    let user = Uuid::new_v4();
    for _ in 0..5 {
        hub.publish(Audience::User(user), json!({"type": "offer"}));
    }
    let backlog = |seq| {
        hub.attach(user, &Roles::default(), after(seq))
            .backlog
            .iter()
            .map(parse)
            .collect::<Vec<_>>()
    };
    // Kept: 3, 4, 5.
    assert_eq!(backlog(2).len(), 3);
    assert_eq!(backlog(4), vec![json!({"seq": 5, "type": "offer"})]);
    assert!(backlog(5).is_empty());
    assert_eq!(backlog(1), vec![json!({"type": "resync", "seq": 5})]);
    // A cursor from a session this hub no longer has.
    assert_eq!(backlog(77), vec![json!({"type": "resync", "seq": 5})]);
}

#[test]
fn a_cursor_of_a_forgotten_session_gets_resync_even_when_its_seq_fits() {
    let hub = hub(RealtimeConfig {
        session_idle_s: 60,
        ..RealtimeConfig::default()
    });
    let user = Uuid::new_v4();
    let mut first = hub.attach(user, &Roles::default(), None);
    for _ in 0..3 {
        hub.publish(Audience::User(user), json!({"type": "offer"}));
    }
    let old_epoch = first
        .outbound
        .try_recv()
        .map(|frame| epoch_of(&frame))
        .expect("a frame");
    hub.detach(user, first.id);
    assert_eq!(hub.sweep_at(Instant::now() + Duration::from_secs(61)), 1);
    // The user's next messages start a new session: seq 1..5 under a new epoch.
    for _ in 0..5 {
        hub.publish(Audience::User(user), json!({"type": "offer"}));
    }
    let stale = Some(Cursor {
        after: 3,
        epoch: Some(old_epoch),
    });
    let backlog = hub.attach(user, &Roles::default(), stale).backlog;
    assert_eq!(backlog.len(), 1);
    assert_eq!(parse(&backlog[0]), json!({"type": "resync", "seq": 5}));
    let new_epoch = epoch_of(&backlog[0]);
    assert_ne!(new_epoch, old_epoch);
    // With the right epoch, the same seq replays.
    let current = Some(Cursor {
        after: 3,
        epoch: Some(new_epoch),
    });
    let backlog = hub.attach(user, &Roles::default(), current).backlog;
    assert_eq!(
        backlog.iter().map(parse).collect::<Vec<_>>(),
        vec![
            json!({"seq": 4, "type": "offer"}),
            json!({"seq": 5, "type": "offer"}),
        ]
    );
}

#[test]
fn local_epochs_are_unique_across_hubs_and_apart_from_shared_ones() {
    let mut epochs = HashSet::new();
    for _ in 0..50 {
        // Hubs made in the same millisecond: a restart, or two instances.
        let hub = hub(RealtimeConfig::default());
        for _ in 0..100 {
            let epoch = hub.next_epoch();
            assert!((1 << 52..1 << 53).contains(&epoch), "{epoch}");
            assert!(epochs.insert(epoch), "{epoch} twice");
        }
    }
}

#[test]
fn old_frames_leave_the_ring_and_idle_sessions_expire() {
    let hub = hub(RealtimeConfig {
        replay_window_s: 60,
        session_idle_s: 120,
        ..RealtimeConfig::default()
    });
    let user = Uuid::new_v4();
    let start = Instant::now();
    let offer = frame(json!({"type": "offer"}));
    hub.deliver_at(&Audience::User(user), offer.body(), None, start);
    hub.deliver_at(
        &Audience::User(user),
        offer.body(),
        None,
        start + Duration::from_secs(50),
    );
    let later = start + Duration::from_secs(70);
    let attachment = hub.attach_at(user, &Roles::default(), after(0), Numbering::Fresh, later);
    assert_eq!(
        attachment.backlog.iter().map(parse).collect::<Vec<_>>(),
        vec![json!({"type": "resync", "seq": 2})]
    );
    let attachment = hub.attach_at(user, &Roles::default(), after(1), Numbering::Fresh, later);
    assert_eq!(attachment.backlog.len(), 1);
    // Connected sessions never expire; idle ones do after session_idle_s.
    assert_eq!(hub.sweep_at(later + Duration::from_secs(1000)), 0);
    let ids: Vec<u64> = {
        let state = hub.lock();
        state.sessions[&user]
            .connections
            .iter()
            .map(|c| c.id)
            .collect()
    };
    for id in ids {
        hub.detach(user, id);
    }
    assert_eq!(hub.sweep_at(Instant::now() + Duration::from_secs(60)), 0);
    assert_eq!(hub.sweep_at(Instant::now() + Duration::from_secs(121)), 1);
    assert_eq!(hub.stats().sessions, 0);
    assert_eq!(hub.stats().replay_bytes, 0, "charges leave with the window");
    assert!(hub.lock().by_role.values().all(HashSet::is_empty));
}

#[test]
fn topics_reach_subscribers_within_their_limit() {
    let hub = hub(RealtimeConfig {
        max_topics_per_session: 1,
        ..RealtimeConfig::default()
    });
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let mut conn_a = hub.attach(a, &Roles::default(), None);
    let mut conn_b = hub.attach(b, &Roles::default(), None);
    assert_eq!(hub.subscribe(a, "alert:1"), Ok(()));
    assert_eq!(hub.subscribe(a, "alert:1"), Ok(()));
    assert_eq!(hub.subscribe(a, "alert:2"), Err(SubscribeError::TooMany(1)));
    hub.publish(
        Audience::Topic("alert:1".into()),
        json!({"type": "alert.updated"}),
    );
    assert_eq!(drain(&mut conn_a).len(), 1);
    assert!(drain(&mut conn_b).is_empty());
    hub.unsubscribe(a, "alert:1");
    hub.publish(
        Audience::Topic("alert:1".into()),
        json!({"type": "alert.updated"}),
    );
    assert!(drain(&mut conn_a).is_empty());
}

#[test]
fn new_sessions_stop_at_max_sessions_but_connections_still_get_one() {
    let hub = hub(RealtimeConfig {
        max_sessions: 1,
        ..RealtimeConfig::default()
    });
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    hub.publish(Audience::User(a), json!({"type": "offer"}));
    hub.publish(Audience::User(b), json!({"type": "offer"}));
    assert_eq!(hub.stats().sessions, 1);
    let _conn = hub.attach(b, &Roles::default(), None);
    assert_eq!(hub.stats().sessions, 2);
}

#[test]
fn acks_are_cumulative_per_epoch_and_match_messages_by_their_bytes() {
    let hub = hub(RealtimeConfig::default());
    let user = Uuid::new_v4();
    let mut conn = hub.attach(user, &Roles::default(), None);
    let offer = frame(json!({"type": "offer", "offer": {"id": 1}}));
    let other = frame(json!({"type": "offer", "offer": {"id": 2}}));
    hub.publish_frame(Audience::User(user), &offer);
    hub.publish_frame(Audience::User(user), &other);
    let epoch = conn
        .outbound
        .try_recv()
        .map(|f| epoch_of(&f))
        .expect("a frame");
    assert!(!hub.acknowledged(user, &offer));
    hub.ack(user, Some(epoch + 1), 2);
    assert!(
        !hub.acknowledged(user, &offer),
        "another epoch's ack counts for nothing"
    );
    hub.ack(user, Some(epoch), 1);
    assert!(hub.acknowledged(user, &offer));
    // The same bytes encoded again (the pusher holds its own copy) match too.
    assert!(hub.acknowledged(user, &frame(json!({"type": "offer", "offer": {"id": 1}}))));
    assert!(!hub.acknowledged(user, &other));
    hub.ack(user, None, 99);
    assert!(hub.acknowledged(user, &other));
    let later = frame(json!({"type": "offer", "offer": {"id": 3}}));
    hub.publish_frame(Audience::User(user), &later);
    assert!(
        !hub.acknowledged(user, &later),
        "an ack ahead of seq does not cover later messages"
    );
    assert!(!hub.acknowledged(Uuid::new_v4(), &offer));
    assert_eq!(hub.numbered(user, &later), Some((epoch, 3)));
}

#[test]
fn the_bus_numbering_skips_duplicates_and_a_jump_is_told_to_open_sockets() {
    let hub = hub(RealtimeConfig::default());
    let user = Uuid::new_v4();
    let mut connection = hub.attach(user, &Roles::default(), None);
    let offer = body(r#""type":"offer"}"#);
    assert_eq!(
        hub.deliver_numbered(&numbered(user, 7, 1), &offer, None, true),
        1
    );
    assert_eq!(
        hub.deliver_numbered(&numbered(user, 7, 2), &offer, None, true),
        1
    );
    assert_eq!(
        hub.deliver_numbered(&numbered(user, 7, 2), &offer, None, true),
        0
    );
    assert_eq!(
        hub.deliver_numbered(&numbered(user, 7, 1), &offer, None, true),
        0
    );
    // 3 never came: the socket is told before 4, and resuming from 2 cannot be served.
    assert_eq!(
        hub.deliver_numbered(&numbered(user, 7, 4), &offer, None, true),
        1
    );
    let frames: Vec<String> = std::iter::from_fn(|| connection.outbound.try_recv().ok())
        .map(|frame| frame.encode().to_string())
        .collect();
    assert_eq!(
        frames,
        vec![
            r#"{"seq":1,"epoch":7,"type":"offer"}"#,
            r#"{"seq":2,"epoch":7,"type":"offer"}"#,
            r#"{"type":"resync","seq":3,"epoch":7}"#,
            r#"{"seq":4,"epoch":7,"type":"offer"}"#,
        ]
    );
    let cursor = |after| {
        Some(Cursor {
            after,
            epoch: Some(7),
        })
    };
    assert_eq!(
        hub.attach(user, &Roles::default(), cursor(2)).backlog,
        vec![Outgoing::Resync { epoch: 7, seq: 4 }]
    );
    assert_eq!(
        hub.attach(user, &Roles::default(), cursor(3)).backlog.len(),
        1
    );
    // Another epoch (Redis restarted empty) replaces the numbering, told likewise.
    assert_eq!(
        hub.deliver_numbered(&numbered(user, 9, 1), &offer, None, true),
        1
    );
    assert_eq!(hub.numbering_of(user), Some((9, 1)));
    assert_eq!(
        connection.outbound.try_recv().ok(),
        Some(Outgoing::Resync { epoch: 9, seq: 0 })
    );
}

#[test]
fn a_connection_made_before_its_first_message_is_not_resynced() {
    let hub = hub(RealtimeConfig::default());
    let user = Uuid::new_v4();
    let mut connection = hub.attach(user, &Roles::default(), None);
    assert_eq!(
        hub.deliver_numbered(
            &numbered(user, 7, 12),
            &body(r#""type":"offer"}"#),
            None,
            true
        ),
        1
    );
    assert_eq!(
        drain(&mut connection),
        vec![json!({"seq": 12, "type": "offer"})]
    );
}

#[test]
fn local_numbering_after_the_shared_one_starts_a_new_epoch_and_says_so() {
    let hub = hub(RealtimeConfig::default());
    let user = Uuid::new_v4();
    let mut connection = hub.attach(user, &Roles::default(), None);
    assert_eq!(
        hub.deliver_numbered(
            &numbered(user, 7, 5),
            &body(r#""type":"offer"}"#),
            None,
            true
        ),
        1
    );
    hub.deliver(envelope(Audience::User(user), json!({"type": "offer"})));
    let (epoch, seq) = hub.numbering_of(user).expect("a session");
    assert_ne!(epoch, 7);
    assert_eq!(seq, 1);
    let frames: Vec<Outgoing> =
        std::iter::from_fn(|| connection.outbound.try_recv().ok()).collect();
    assert_eq!(frames.len(), 3, "{frames:?}");
    assert_eq!(frames[1], Outgoing::Resync { epoch, seq: 0 });
    assert_eq!(frames[2].cursor(), (epoch, 1));
    let backlog = hub
        .attach(
            user,
            &Roles::default(),
            Some(Cursor {
                after: 5,
                epoch: Some(7),
            }),
        )
        .backlog;
    assert_eq!(backlog, vec![Outgoing::Resync { epoch, seq: 1 }]);
}

#[test]
fn a_message_recorded_without_sending_moves_open_sockets_past_it_with_a_resync() {
    let hub = hub(RealtimeConfig::default());
    let user = Uuid::new_v4();
    let offer = body(r#""type":"offer"}"#);
    hub.deliver_numbered(&numbered(user, 7, 1), &offer, None, true);
    let mut connection = hub.attach(user, &Roles::default(), None);
    assert_eq!(
        hub.deliver_numbered(&numbered(user, 7, 2), &offer, None, false),
        1
    );
    assert_eq!(
        connection.outbound.try_recv().ok(),
        Some(Outgoing::Resync { epoch: 7, seq: 2 })
    );
    // It is replayed to a cursor from before it (that client never saw it).
    let backlog = hub
        .attach(
            user,
            &Roles::default(),
            Some(Cursor {
                after: 1,
                epoch: Some(7),
            }),
        )
        .backlog;
    assert_eq!(backlog.len(), 1);
    assert_eq!(backlog[0].cursor(), (7, 2));
}

#[test]
fn a_message_lost_elsewhere_resyncs_every_session_here() {
    let hub = hub(RealtimeConfig::default());
    let (connected, away) = (Uuid::new_v4(), Uuid::new_v4());
    let offer = body(r#""type":"offer"}"#);
    for user in [connected, away] {
        hub.deliver_numbered(&numbered(user, 7, 1), &offer, None, true);
    }
    let mut connection = hub.attach(connected, &Roles::default(), None);
    assert_eq!(hub.resync_everyone(), 2);
    assert_eq!(
        connection.outbound.try_recv().ok(),
        Some(Outgoing::Resync { epoch: 7, seq: 1 })
    );
    let cursor = |after| {
        Some(Cursor {
            after,
            epoch: Some(7),
        })
    };
    // `away` had message 1 and nothing was lost *for it* that the hub can tell: it must refetch.
    assert_eq!(
        hub.attach(away, &Roles::default(), cursor(1)).backlog,
        vec![Outgoing::Resync { epoch: 7, seq: 1 }]
    );
    // Messages after the loss replay as usual.
    hub.deliver_numbered(&numbered(away, 7, 2), &offer, None, true);
    assert_eq!(
        hub.attach(away, &Roles::default(), cursor(1)).backlog,
        vec![Outgoing::Resync { epoch: 7, seq: 2 }]
    );
    assert_eq!(
        hub.attach(away, &Roles::default(), cursor(2)).backlog,
        vec![]
    );
}

#[test]
fn over_the_replay_budget_old_messages_go_and_their_cursors_get_resync() {
    let offer = frame(json!({"type": "offer"}));
    let share = budget::share(offer.body().len(), 1);
    let hub = hub(RealtimeConfig {
        replay_budget_bytes: 10 * share,
        ..RealtimeConfig::default()
    });
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let start = Instant::now();
    for _ in 0..8 {
        hub.deliver_at(&Audience::User(a), offer.body(), None, start);
    }
    for _ in 0..8 {
        hub.deliver_at(
            &Audience::User(b),
            offer.body(),
            None,
            start + Duration::from_secs(2),
        );
    }
    // Over ten shares, down to nine: a's oldest go first (six of them), then b's none.
    let stats = hub.stats();
    assert_eq!(stats.replay_messages, 10);
    assert_eq!(stats.replay_bytes, 10 * share);
    let resumed = hub.attach(a, &Roles::default(), after(5)).backlog;
    assert_eq!(
        resumed.iter().map(parse).collect::<Vec<_>>(),
        vec![json!({"type": "resync", "seq": 8})]
    );
    assert_eq!(hub.attach(a, &Roles::default(), after(6)).backlog.len(), 2);
    assert_eq!(hub.attach(b, &Roles::default(), after(0)).backlog.len(), 8);
}
