//! SATUSEHAT down leaves dispatch untouched while coordinators see and retry the failure; a
//! bridge in its own process follows the dispatch process.

use super::*;

#[sqlx::test(migrations = false)]
async fn a_satusehat_outage_leaves_the_dispatch_untouched_and_coordinators_see_and_retry_the_failure(
    pool: PgPool,
) {
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
    env.extend(satusehat_env(&fake, 2));
    let server = Server::start(&env).await;
    let api = Api::new(&server.base);
    cli_user(&url, "081100000001", "admin-rahasia", "Admin", "admin");
    cli_user(
        &url,
        "081100000002",
        "koordinator-rahasia",
        "Koordinator",
        "coordinator",
    );
    let admin = api.login("081100000001", "admin-rahasia").await;
    let coordinator = api.login("081100000002", "koordinator-rahasia").await;
    let volunteer = api
        .health_worker(&api, &url, &admin, fake::SEED_NIK_ONE, fake::SEED_IHS_ONE)
        .await;

    // SATUSEHAT goes down; a citizen panics and the volunteer is offered the alert and takes it,
    // as if SATUSEHAT did not exist.
    fake.faults(|faults| faults.down = true);
    let (_, citizen) = api.citizen("081399990001", "Warga Satu").await;
    let alert = api.panic(&citizen, "medical", 0.0, None).await;
    let alert_id = alert["id"].as_str().expect("id").to_owned();
    let started = Instant::now();
    let offer = api.offer_for(&volunteer, &alert_id).await;
    let assignment = api.accept(&volunteer, &offer).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "offer and accept took {:?} during the outage",
        started.elapsed()
    );
    assert_eq!(assignment["alert_id"], alert_id.as_str());
    let (status, assigned) = api
        .send(
            Method::GET,
            &format!("/v1/alerts/{alert_id}"),
            Some(&coordinator),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{assigned}");
    assert_eq!(assigned["status"], "assigned");

    // The create exhausts its two attempts against the outage and is listed for coordinators.
    let deadline = Instant::now() + Duration::from_secs(30);
    let failure = loop {
        let (status, failures) = api
            .send(
                Method::GET,
                "/v1/fhir-sync/failures",
                Some(&coordinator),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{failures}");
        if let Some(failure) = failures
            .as_array()
            .into_iter()
            .flatten()
            .find(|failure| failure["alert_id"] == alert_id.as_str())
        {
            break failure.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the failed create was never listed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(failure["action"], "create");
    assert_eq!(failure["attempts"], 2);
    assert!(
        failure["last_error"]
            .as_str()
            .is_some_and(|error| error.contains("503")),
        "{failure}"
    );
    let (status, _) = api
        .send(
            Method::GET,
            "/v1/fhir-sync/failures",
            Some(&volunteer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "only coordinators");
    assert!(fake.encounters().is_empty());
    // Operators see it too, in the metrics.
    let metrics = api
        .client
        .get(format!("{}/metrics", api.base))
        .send()
        .await
        .expect("answered")
        .text()
        .await
        .expect("text");
    assert!(
        metrics
            .lines()
            .any(|line| line.starts_with("bridge_encounter_sync_failed_total{action=\"create\"} 1")),
        "{metrics}"
    );

    // SATUSEHAT is back; the coordinator queues the change again and it goes through, once.
    fake.faults(|faults| faults.down = false);
    let id = failure["id"].as_i64().expect("id");
    let (status, retried) = api
        .send(
            Method::POST,
            &format!("/v1/fhir-sync/failures/{id}/retry"),
            Some(&coordinator),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{retried}");
    until(
        Duration::from_secs(30),
        "the Encounter after the retry",
        || !fake.encounters_with_identifier(&alert_id).is_empty(),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let encounter = only_encounter(&fake, &alert_id);
    assert_eq!(encounter["status"], "arrived");
    let (status, failures) = api
        .send(
            Method::GET,
            "/v1/fhir-sync/failures",
            Some(&coordinator),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{failures}");
    assert!(
        failures
            .as_array()
            .into_iter()
            .flatten()
            .all(|failure| failure["alert_id"] != alert_id.as_str()),
        "{failures}"
    );
}

#[sqlx::test(migrations = false)]
async fn a_bridge_in_its_own_process_follows_the_dispatch_process(pool: PgPool) {
    let fake = FakeSatusehat::start(FakeConfig::default())
        .await
        .expect("fake SATUSEHAT starts");
    let dir = TempDir::new();
    let key = signing_key(&dir.0);
    let url = database_url(&pool);
    let common = vec![
        ("KREKI_DATABASE__URL", url.clone()),
        ("KREKI_AUTH__SIGNING_KEY_FILE", key.display().to_string()),
    ];
    // Everything but the bridge here; SATUSEHAT is configured only where the bridge runs.
    let dispatch = Server::start_with(
        &[
            "serve",
            "--migrate",
            "--services",
            "auth,realtime,dispatch,lms",
        ],
        &common,
    )
    .await;
    let mut bridge_env = common.clone();
    bridge_env.extend(satusehat_env(&fake, 50));
    let bridge = Server::start_with(&["serve", "--services", "bridge"], &bridge_env).await;
    let api = Api::new(&dispatch.base);
    let bridge_api = Api::new(&bridge.base);
    // Each process serves only its own services.
    let (status, _) = bridge_api
        .send(Method::GET, "/v1/volunteers/me/offers", None, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "dispatch runs elsewhere");
    let (status, _) = api
        .send(
            Method::POST,
            "/v1/volunteers/me/practitioner-verification",
            None,
            Some(json!({"nik": fake::SEED_NIK_ONE})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the bridge runs elsewhere");

    cli_user(&url, "081100000001", "admin-rahasia", "Admin", "admin");
    let admin = api.login("081100000001", "admin-rahasia").await;
    // Medical alerts go to verified health workers only: the verdict the bridge process records
    // must reach the dispatch process through the database.
    let (status, kinds) = api
        .send(Method::GET, "/v1/dispatch/kinds", Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{kinds}");
    let mut medical = kinds
        .as_array()
        .into_iter()
        .flatten()
        .find(|entry| entry["kind"] == "medical")
        .expect("medical settings")
        .clone();
    medical["requires_verified_practitioner"] = json!(true);
    if let Some(fields) = medical.as_object_mut() {
        fields.remove("kind");
    }
    let (status, stored) = api
        .send(
            Method::PUT,
            "/v1/dispatch/kinds/medical",
            Some(&admin),
            Some(medical),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    assert_eq!(stored["requires_verified_practitioner"], true);
    // Verified at the bridge process, dispatched by the other.
    let volunteer = api
        .health_worker(
            &bridge_api,
            &url,
            &admin,
            fake::SEED_NIK_TWO,
            fake::SEED_IHS_TWO,
        )
        .await;
    let (_, citizen) = api.citizen("081399990001", "Warga Satu").await;
    let alert = api.panic(&citizen, "medical", 0.0, None).await;
    let alert_id = alert["id"].as_str().expect("id").to_owned();
    let offer = api.offer_for(&volunteer, &alert_id).await;
    api.accept(&volunteer, &offer).await;

    until(
        Duration::from_secs(30),
        "the Encounter in SATUSEHAT",
        || !fake.encounters_with_identifier(&alert_id).is_empty(),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let encounter = only_encounter(&fake, &alert_id);
    assert_eq!(creates(&fake), 1);
    assert_eq!(encounter["status"], "arrived");
    assert_eq!(
        encounter["participant"][0]["individual"]["reference"],
        format!("Practitioner/{}", fake::SEED_IHS_TWO)
    );

    // Health systems read it from the bridge process, with a token the auth process issued.
    let system = api.health_system(&admin).await;
    let (status, served) = bridge_api
        .fhir(&format!("/fhir/r4/Encounter/{alert_id}"), &system)
        .await;
    assert_eq!(status, StatusCode::OK, "{served}");
    assert_eq!(served["status"], "arrived");
}
