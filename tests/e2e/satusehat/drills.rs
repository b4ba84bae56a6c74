//! A drill never reaches SATUSEHAT nor health systems.

use super::*;

/// Drills are not health records: a verified health worker who accepts a drill leaves SATUSEHAT
/// without an Encounter and `/fhir/r4` without the incident, through the real chain (dispatch's
/// change feed, the bridge's consumer, its Encounter worker); the same worker's real incident right
/// after is recorded, so the chain is shown to work here.
#[sqlx::test(migrations = false)]
async fn a_drill_never_reaches_satusehat_nor_health_systems(pool: PgPool) {
    let fake = FakeSatusehat::start(FakeConfig::default())
        .await
        .expect("fake SATUSEHAT starts");
    let dir = TempDir::new();
    let key = signing_key(&dir.0);
    let url = database_url(&pool);
    let mut env = vec![
        ("KREKI_DATABASE__URL", url.clone()),
        ("KREKI_AUTH__SIGNING_KEY_FILE", key.display().to_string()),
    ];
    env.extend(satusehat_env(&fake, 5));
    let server = Server::start(&env).await;
    let api = Api::new(&server.base);
    cli_user(&url, "081100000001", "admin-rahasia", "Admin", "admin");
    let admin = api.login("081100000001", "admin-rahasia").await;
    let health_system = api.health_system(&admin).await;
    let volunteer = api
        .health_worker(&api, &url, &admin, fake::SEED_NIK_ONE, fake::SEED_IHS_ONE)
        .await;
    let (_, citizen) = api.citizen("081399990003", "Warga Tiga").await;

    let response = api
        .client
        .post(format!("{}/v1/alerts", api.base))
        .bearer_auth(&citizen)
        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
        .json(&json!({"kind": "medical", "location": {"lat": MONAS.0, "lng": MONAS.1, "accuracy_m": 10},
            "patient": {"nik": fake::SEED_PATIENT_NIK}, "drill": true}))
        .send()
        .await
        .expect("panic answered");
    assert_eq!(response.status(), StatusCode::CREATED);
    let drill: Value = response.json().await.expect("JSON");
    assert_eq!(drill["drill"], true);
    let drill_id = drill["id"].as_str().expect("id").to_owned();
    let offer = api.offer_for(&volunteer, &drill_id).await;
    assert_eq!(offer["alert"]["drill"], true, "{offer}");
    let assignment = api.accept(&volunteer, &offer).await;

    // The bridge has read past every event of the drill (its assignment included) ...
    let drill_uuid = uuid::Uuid::parse_str(&drill_id).expect("uuid");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (cursor, newest): (i64, Option<i64>) = sqlx::query_as(
            "SELECT (SELECT last_seq FROM bridge.feed_cursor),
                    (SELECT max(id) FROM dispatch.alert_events WHERE alert_id = $1)",
        )
        .bind(drill_uuid)
        .fetch_one(&pool)
        .await
        .expect("cursor");
        if newest.is_some_and(|newest| cursor >= newest) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the bridge did not read the drill's events"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // ... and gave the Encounter worker time to act, were there anything queued.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        fake.encounters_with_identifier(&drill_id).is_empty(),
        "no Encounter for a drill"
    );
    assert_eq!(creates(&fake), 0, "nothing was sent");
    let (status, outcome) = api
        .fhir(&format!("/fhir/r4/Encounter/{drill_id}"), &health_system)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{outcome}");
    let (ids, _) = every_page(&api, "/fhir/r4/Encounter", &health_system).await;
    assert!(!ids.contains(&drill_id), "{ids:?}");

    // The worker hands the drill back (no rest period after a withdrawal) and takes a real one.
    api.assignment_status(
        &volunteer,
        assignment["id"].as_str().expect("id"),
        "withdrawn",
    )
    .await;
    let real = api.panic(&citizen, "medical", 0.0, None).await;
    let real_id = real["id"].as_str().expect("id").to_owned();
    assert_ne!(real_id, drill_id, "a real press never joins the open drill");
    assert_eq!(real["drill"], false);
    let offer = api.offer_for(&volunteer, &real_id).await;
    api.accept(&volunteer, &offer).await;
    until(Duration::from_secs(20), "the real Encounter", || {
        !fake.encounters_with_identifier(&real_id).is_empty()
    })
    .await;
    let (status, served) = api
        .fhir(&format!("/fhir/r4/Encounter/{real_id}"), &health_system)
        .await;
    assert_eq!(status, StatusCode::OK, "{served}");
    assert!(fake.encounters_with_identifier(&drill_id).is_empty());
}
