//! The consumer: a panic over MQTT becomes one alert and is acknowledged; revoked devices and
//! garbage are dropped; work in flight is bounded; slow sinks and broker restarts never stall it
//! (a module of the `mqtt` test binary).

use super::*;

/// (citizen, device, lat, lng, kind) of one panic call.
type PanicCall = (Uuid, String, f64, f64, Option<String>);
/// (user, lat, lng, accuracy_m, recorded_at) of one location call.
type LocationCall = (Uuid, f64, f64, Option<f64>, DateTime<Utc>);

/// A fake of dispatch: idempotent on the key like its ingest, recording every call.
#[derive(Default)]
struct Dispatch {
    alerts: Mutex<HashMap<String, Uuid>>,
    panic_calls: Mutex<Vec<PanicCall>>,
    locations: Mutex<Vec<LocationCall>>,
    /// Answer this many panic calls with a 503 first.
    fail_first: AtomicUsize,
    /// Hold each location call this long.
    location_delay: Mutex<Duration>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

impl PanicSink for Dispatch {
    fn panic(
        &self,
        citizen: Uuid,
        device_id: &str,
        idempotency_key: String,
        lat: f64,
        lng: f64,
        _accuracy_m: Option<f64>,
        kind: Option<String>,
    ) -> BoxFuture<'_, Result<Uuid, Problem>> {
        let device = device_id.to_owned();
        Box::pin(async move {
            if self
                .fail_first
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                return Err(Problem::unavailable("the database is restarting"));
            }
            if let Ok(mut calls) = self.panic_calls.lock() {
                calls.push((citizen, device, lat, lng, kind));
            }
            let mut alerts = self.alerts.lock().expect("not poisoned");
            Ok(*alerts.entry(idempotency_key).or_insert_with(Uuid::now_v7))
        })
    }
}

impl LocationSink for Dispatch {
    fn location(
        &self,
        user: Uuid,
        lat: f64,
        lng: f64,
        accuracy_m: Option<f64>,
        recorded_at: DateTime<Utc>,
    ) -> BoxFuture<'_, Result<(), Problem>> {
        Box::pin(async move {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_in_flight.fetch_max(now, Ordering::SeqCst);
            let delay = *self.location_delay.lock().expect("not poisoned");
            tokio::time::sleep(delay).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            if let Ok(mut locations) = self.locations.lock() {
                locations.push((user, lat, lng, accuracy_m, recorded_at));
            }
            if lat == 66.6 {
                // A sink that fails must not stop the consumer.
                return Err(Problem::unavailable("matcher busy"));
            }
            Ok(())
        })
    }
}

impl Dispatch {
    fn alert_count(&self) -> usize {
        self.alerts.lock().map(|a| a.len()).unwrap_or(0)
    }

    fn location_count(&self) -> usize {
        self.locations.lock().map(|l| l.len()).unwrap_or(0)
    }

    async fn wait_for_locations(&self, n: usize) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while self.location_count() < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} of {n} locations arrived",
                self.location_count()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

struct Running {
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("the consumer stops")
            .expect("the consumer did not panic");
    }
}

fn consumer_config(port: u16) -> MqttConfig {
    MqttConfig {
        enabled: true,
        port,
        client_id: format!("kreki-test-{}", Uuid::now_v7()),
        username: SERVICE_USER.to_owned(),
        password: SERVICE_PASSWORD.to_owned().into(),
        reconnect_max_ms: 200,
        ..MqttConfig::default()
    }
}

async fn start_consumer(pool: &PgPool, config: &MqttConfig, dispatch: Arc<Dispatch>) -> Running {
    let shutdown = CancellationToken::new();
    let (transport, mut events, _driver) =
        connect_rumqttc(TransportOptions::from_config(config), shutdown.clone());
    // Wait for the first connect (and its subscriptions) before handing the events over.
    let first = tokio::time::timeout(PATIENCE, events.recv())
        .await
        .expect("an event in time");
    assert!(
        matches!(first, Some(kreki_realtime::mqtt::TransportEvent::Connected)),
        "{first:?}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let consumer = Consumer::new(
        config,
        transport,
        pool.clone(),
        dispatch.clone(),
        dispatch.clone(),
    );
    let task = tokio::spawn(consumer.run(events, shutdown.clone()));
    Running { shutdown, task }
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("an ack is JSON")
}

#[sqlx::test(migrations = "../migrations")]
async fn a_panic_over_mqtt_becomes_one_alert_and_is_acknowledged(pool: PgPool) {
    let api = Api::new(pool.clone(), MqttConfig::default());
    let citizen = api.person(&[Role::Citizen]);
    let (button, password) = api.register(&citizen, "panic").await;
    let broker = Broker::sync_and_start(&pool).await;
    let dispatch = Arc::new(Dispatch::default());
    let running = start_consumer(&pool, &consumer_config(broker.port), dispatch.clone()).await;

    let mut device = connect(broker.port, &button, &password)
        .await
        .expect("the button connects");
    let ack_topic = format!("kreki/v1/panic/{button}/ack");
    device.subscribe(&ack_topic).await;
    let topic = format!("kreki/v1/panic/{button}");

    // The same press delivered twice (a device retry, or the broker's redelivery) is one alert,
    // and both copies are acknowledged with its id.
    let press = r#"{"lat":-6.2001,"lng":106.8167,"accuracy_m":8,"kind":"medical"}"#;
    device.publish(&topic, press).await;
    device.publish(&topic, press).await;
    let (first_topic, first) = device.next().await;
    let (_, second) = device.next().await;
    assert_eq!(first_topic, ack_topic);
    let (first, second) = (json_of(&first), json_of(&second));
    assert_eq!(first["status"], "accepted", "{first}");
    assert_eq!(first["alert_id"], second["alert_id"]);
    assert_eq!(dispatch.alert_count(), 1);
    {
        let calls = dispatch.panic_calls.lock().expect("not poisoned");
        assert_eq!(calls[0].0, citizen.id, "the alert is the owner's");
        assert_eq!(calls[0].1, button);
        assert_eq!((calls[0].2, calls[0].3), (-6.2001, 106.8167));
        assert_eq!(calls[0].4.as_deref(), Some("medical"));
    }

    // Malformed payloads are refused with the field named, and the consumer carries on.
    device.publish(&topic, r#"{"lat":123,"lng":106.8}"#).await;
    let (_, refused) = device.next().await;
    let refused = json_of(&refused);
    assert_eq!(refused["status"], "rejected", "{refused}");
    assert_eq!(refused["problem"]["errors"][0]["field"], "lat");
    device.publish(&topic, b"\xff\xfe not json".to_vec()).await;
    let (_, garbage) = device.next().await;
    assert_eq!(json_of(&garbage)["problem"]["status"], 400);

    // A device numbering its presses gets exactly one alert per number; dispatch down for a moment
    // is retried, not lost.
    dispatch.fail_first.store(2, Ordering::SeqCst);
    let numbered = r#"{"lat":-6.3,"lng":106.9,"msg_id":"press-7"}"#;
    device.publish(&topic, numbered).await;
    let (_, ack) = device.next().await;
    let ack = json_of(&ack);
    assert_eq!(ack["status"], "accepted", "{ack}");
    assert_eq!(ack["msg_id"], "press-7");
    device
        .publish(
            &topic,
            r#"{"lat":-6.3,"lng":106.9,"accuracy_m":50,"msg_id":"press-7"}"#,
        )
        .await;
    let (_, again) = device.next().await;
    assert_eq!(json_of(&again)["alert_id"], ack["alert_id"]);
    assert_eq!(dispatch.alert_count(), 2);
    assert_ne!(ack["alert_id"], first["alert_id"]);

    running.stop().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn revoked_devices_and_garbage_are_dropped_without_stopping_the_consumer(pool: PgPool) {
    let api = Api::new(pool.clone(), MqttConfig::default());
    let citizen = api.person(&[Role::Citizen]);
    let volunteer = api.person(&[Role::Citizen, Role::Volunteer]);
    let (button, password) = api.register(&citizen, "panic").await;
    let (tracker, tracker_password) = api.register(&volunteer, "tracker").await;
    let broker = Broker::sync_and_start(&pool).await;
    let dispatch = Arc::new(Dispatch::default());
    let running = start_consumer(&pool, &consumer_config(broker.port), dispatch.clone()).await;

    let device = connect(broker.port, &button, &password)
        .await
        .expect("connects");
    let tracker_client = connect(broker.port, &tracker, &tracker_password)
        .await
        .expect("connects");
    // Revoked in the registry, not yet synced to the broker: the consumer refuses it anyway.
    let (status, _) = api
        .call(
            "DELETE",
            &format!("/v1/mqtt/devices/{button}"),
            Some(&citizen),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    device
        .publish(&format!("kreki/v1/panic/{button}"), r#"{"lat":1,"lng":1}"#)
        .await;

    let topic = format!("kreki/v1/location/{}", volunteer.id);
    for bad in [
        &b"{"[..],
        b"[]",
        br#"{"lat":-6.2}"#,
        br#"{"lat":-6.2,"lng":700}"#,
        &[0xff; 5000][..],
    ] {
        tracker_client.publish(&topic, bad.to_vec()).await;
    }
    tracker_client
        .publish(&topic, r#"{"lat":66.6,"lng":1}"#)
        .await;
    tracker_client
        .publish(
            &topic,
            r#"{"lat":-6.2,"lng":106.8,"accuracy_m":5,"recorded_at":"2026-11-21T06:00:00Z"}"#,
        )
        .await;
    dispatch.wait_for_locations(2).await;
    {
        let locations = dispatch.locations.lock().expect("not poisoned");
        let last = locations
            .iter()
            .find(|l| l.1 == -6.2)
            .expect("the good position");
        assert_eq!(last.0, volunteer.id);
        assert_eq!(last.3, Some(5.0));
        assert_eq!(last.4.to_rfc3339(), "2026-11-21T06:00:00+00:00");
    }
    assert_eq!(
        dispatch.alert_count(),
        0,
        "the revoked button made no alert"
    );
    assert_eq!(dispatch.location_count(), 2, "garbage reached no sink");
    running.stop().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn in_flight_work_is_bounded(pool: PgPool) {
    let api = Api::new(pool.clone(), MqttConfig::default());
    let volunteer = api.person(&[Role::Citizen, Role::Volunteer]);
    let (tracker, password) = api.register(&volunteer, "tracker").await;
    let broker = Broker::sync_and_start(&pool).await;
    let dispatch = Arc::new(Dispatch::default());
    *dispatch.location_delay.lock().expect("not poisoned") = Duration::from_millis(30);
    let config = MqttConfig {
        max_in_flight: 3,
        queue: 4,
        ..consumer_config(broker.port)
    };
    let running = start_consumer(&pool, &config, dispatch.clone()).await;
    let client = connect(broker.port, &tracker, &password)
        .await
        .expect("connects");
    let topic = format!("kreki/v1/location/{}", volunteer.id);
    for i in 0..40 {
        client
            .publish(&topic, format!(r#"{{"lat":-6.{i},"lng":106.8}}"#))
            .await;
    }
    dispatch.wait_for_locations(40).await;
    let max = dispatch.max_in_flight.load(Ordering::SeqCst);
    assert!(
        (2..=3).contains(&max),
        "at most 3 at once, and concurrently: {max}"
    );
    running.stop().await;
}

/// A slow sink must slow the consumer down, never stop it: with QoS 1 the broker keeps at most its
/// `max_inflight_messages` window unacknowledged, so the PUBACKs of handled messages have to reach
/// it while the consumer's queue is full, or the window stays full and nothing more arrives.
#[sqlx::test(migrations = "../migrations")]
async fn a_slow_sink_under_qos_1_load_never_stalls_the_consumer(pool: PgPool) {
    const MESSAGES: usize = 3_000;
    let api = Api::new(pool.clone(), MqttConfig::default());
    let volunteer = api.person(&[Role::Citizen, Role::Volunteer]);
    let (tracker, password) = api.register(&volunteer, "tracker").await;
    let broker = Broker::sync_and_start(&pool).await;
    let dispatch = Arc::new(Dispatch::default());
    *dispatch.location_delay.lock().expect("not poisoned") = Duration::from_millis(3);
    let config = MqttConfig {
        max_in_flight: 4,
        queue: 8,
        ..consumer_config(broker.port)
    };
    let running = start_consumer(&pool, &config, dispatch.clone()).await;
    let client = connect(broker.port, &tracker, &password)
        .await
        .expect("connects");
    let topic = format!("kreki/v1/location/{}", volunteer.id);
    let publisher = {
        let client = client.client.clone();
        tokio::spawn(async move {
            for i in 0..MESSAGES {
                client
                    .publish(
                        topic.as_str(),
                        QoS::AtLeastOnce,
                        false,
                        format!(r#"{{"lat":-6.{i},"lng":106.8}}"#),
                    )
                    .await
                    .expect("publish is queued");
            }
        })
    };
    // Progress, not just completion: a stall is a stretch with no new message at all.
    let stall = Duration::from_secs(3);
    let mut seen = 0;
    let mut last_progress = tokio::time::Instant::now();
    while seen < MESSAGES {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = dispatch.location_count();
        if now > seen {
            seen = now;
            last_progress = tokio::time::Instant::now();
        }
        assert!(
            last_progress.elapsed() < stall,
            "stalled: {seen} of {MESSAGES} locations arrived, then none for {stall:?} \
             (handlers running: {})",
            dispatch.in_flight.load(Ordering::SeqCst)
        );
    }
    publisher.await.expect("the publisher finished");
    assert_eq!(dispatch.location_count(), MESSAGES, "none lost");
    let max = dispatch.max_in_flight.load(Ordering::SeqCst);
    assert!(max <= 4, "at most 4 at once: {max}");
    running.stop().await;
}

/// A panic (QoS 1) that arrives while the consumer is full of QoS 0 positions must reach dispatch
/// as soon as the consumer has room, not when the connection next has traffic (the keep-alive
/// ping, 30 s here): QoS 0 positions send no PUBACK that would wake the transport.
#[sqlx::test(migrations = "../migrations")]
async fn a_panic_behind_qos_0_positions_is_not_held_until_the_next_ping(pool: PgPool) {
    let api = Api::new(pool.clone(), MqttConfig::default());
    let citizen = api.person(&[Role::Citizen, Role::Volunteer]);
    let (button, button_password) = api.register(&citizen, "panic").await;
    let (tracker, tracker_password) = api.register(&citizen, "tracker").await;
    let broker = Broker::sync_and_start(&pool).await;
    let dispatch = Arc::new(Dispatch::default());
    *dispatch.location_delay.lock().expect("not poisoned") = Duration::from_millis(200);
    let config = MqttConfig {
        max_in_flight: 1,
        queue: 2,
        keep_alive_s: 30,
        ..consumer_config(broker.port)
    };
    let running = start_consumer(&pool, &config, dispatch.clone()).await;
    let positions = connect(broker.port, &tracker, &tracker_password)
        .await
        .expect("the tracker connects");
    let button_client = connect(broker.port, &button, &button_password)
        .await
        .expect("the button connects");
    let topic = format!("kreki/v1/location/{}", citizen.id);
    for i in 0..4 {
        positions
            .client
            .publish(
                topic.as_str(),
                QoS::AtMostOnce,
                false,
                format!(r#"{{"lat":-6.{i},"lng":106.8}}"#),
            )
            .await
            .expect("publish is queued");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let pressed = tokio::time::Instant::now();
    button_client
        .publish(
            &format!("kreki/v1/panic/{button}"),
            r#"{"lat":-6.2001,"lng":106.8167}"#,
        )
        .await;
    // Four positions at 200 ms one at a time are about 0.8 s of work ahead of it.
    while dispatch.alert_count() == 0 {
        assert!(
            pressed.elapsed() < Duration::from_secs(5),
            "the panic waited more than 5 s behind {} handled positions",
            dispatch.location_count()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    running.stop().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn the_consumer_resubscribes_after_the_broker_restarts(pool: PgPool) {
    let api = Api::new(pool.clone(), MqttConfig::default());
    let volunteer = api.person(&[Role::Citizen, Role::Volunteer]);
    let (tracker, password) = api.register(&volunteer, "tracker").await;
    let mut broker = Broker::sync_and_start(&pool).await;
    let dispatch = Arc::new(Dispatch::default());
    let running = start_consumer(&pool, &consumer_config(broker.port), dispatch.clone()).await;
    let topic = format!("kreki/v1/location/{}", volunteer.id);
    let client = connect(broker.port, &tracker, &password)
        .await
        .expect("connects");
    client.publish(&topic, r#"{"lat":-6.1,"lng":106.8}"#).await;
    dispatch.wait_for_locations(1).await;

    // A restart without persistence forgets every session and subscription.
    broker.restart().await;

    // Once the consumer is back and subscribed again, positions flow again.
    let client = connect(broker.port, &tracker, &password)
        .await
        .expect("connects again");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while dispatch.location_count() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no position after the restart"
        );
        client.publish(&topic, r#"{"lat":-6.2,"lng":106.8}"#).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    running.stop().await;
}
