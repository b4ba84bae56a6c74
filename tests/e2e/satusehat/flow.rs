//! A verified health worker's incident reaches SATUSEHAT once under faults, and health systems
//! page through it.

use super::*;

#[sqlx::test(migrations = false)]
async fn a_verified_health_worker_s_incident_reaches_satusehat_once_under_faults_and_health_systems_page_through_it(
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
    env.extend(satusehat_env(&fake, 50));
    let server = Server::start(&env).await;
    let api = Api::new(&server.base);
    cli_user(&url, "081100000001", "admin-rahasia", "Admin", "admin");
    let admin = api.login("081100000001", "admin-rahasia").await;
    let volunteer = api
        .health_worker(&api, &url, &admin, fake::SEED_NIK_ONE, fake::SEED_IHS_ONE)
        .await;

    // The first create is committed but answered only after the client gave up; before it the
    // gateway answers a plain-text 502 and a 401 fault.
    fake.faults(|faults| {
        faults.create_commit_then_hang = 1;
        faults.hang = Duration::from_secs(3);
        faults.fhir_5xx = 1;
        faults.fhir_401 = 1;
    });
    let (_, citizen) = api.citizen("081399990001", "Warga Satu").await;
    let alert = api
        .panic(&citizen, "medical", 0.0, Some(fake::SEED_PATIENT_NIK))
        .await;
    let alert_id = alert["id"].as_str().expect("id").to_owned();
    let offer = api.offer_for(&volunteer, &alert_id).await;
    let assignment = api.accept(&volunteer, &offer).await;
    let assignment_id = assignment["id"].as_str().expect("id").to_owned();

    // The Encounter appears, and the bridge finds it (search by our identifier) after the timeout
    // instead of creating it again.
    until(
        Duration::from_secs(30),
        "the Encounter in SATUSEHAT",
        || !fake.encounters_with_identifier(&alert_id).is_empty(),
    )
    .await;
    until(
        Duration::from_secs(30),
        "the search that finds the timed-out create",
        || {
            let log = fake.requests();
            let Some(post) = log.iter().position(|request| {
                request.method == "POST" && request.path == "/fhir-r4/v1/Encounter"
            }) else {
                return false;
            };
            log[post + 1..].iter().any(|request| {
                request.method == "GET"
                    && request.path == "/fhir-r4/v1/Encounter"
                    && request.status == 200
            })
        },
    )
    .await;
    // Several retry periods later there is still one, and only one create was ever sent.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let encounter = only_encounter(&fake, &alert_id);
    assert_eq!(creates(&fake), 1, "a second create was sent");
    let statuses: Vec<u16> = fake
        .requests()
        .iter()
        .filter(|request| request.path.starts_with("/fhir-r4/"))
        .map(|request| request.status)
        .collect();
    assert!(
        statuses.contains(&502) && statuses.contains(&401),
        "{statuses:?}"
    );
    assert_eq!(encounter["status"], "arrived", "{encounter:#}");
    assert_eq!(encounter["class"]["code"], "EMER");
    assert_eq!(
        encounter["subject"]["reference"],
        format!("Patient/{}", fake::SEED_PATIENT_IHS),
        "the citizen's NIK resolved to one patient"
    );
    assert_eq!(
        encounter["participant"][0]["individual"]["reference"],
        format!("Practitioner/{}", fake::SEED_IHS_ONE)
    );
    assert_eq!(
        encounter["serviceProvider"]["reference"],
        format!("Organization/{}", fake.config().org_id)
    );

    // The alert resolves while SATUSEHAT rate-limits (429 without Retry-After) and fails once
    // more: the Encounter still follows, once the 60 s silence after the 429 is over.
    fake.faults(|faults| {
        faults.fhir_429 = 1;
        faults.fhir_5xx = 1;
    });
    for status in ["en_route", "on_scene", "completed"] {
        api.assignment_status(&volunteer, &assignment_id, status)
            .await;
    }
    let (status, resolved) = api
        .send(
            Method::GET,
            &format!("/v1/alerts/{alert_id}"),
            Some(&citizen),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{resolved}");
    assert_eq!(resolved["status"], "resolved");
    until(
        Duration::from_secs(150),
        "the Encounter to be finished",
        || {
            fake.encounters_with_identifier(&alert_id)
                .iter()
                .any(|encounter| encounter["status"] == "finished")
        },
    )
    .await;
    let finished = only_encounter(&fake, &alert_id);
    assert_eq!(creates(&fake), 1, "a second create was sent");
    assert!(
        fake.requests().iter().any(|request| request.status == 429),
        "the 429 was never hit"
    );
    keep_sample("e2e-satusehat-encounter", &finished);

    // More incidents today: three citizens, one of whom calls it off.
    let mut incidents = HashSet::from([alert_id.clone()]);
    for n in 2..=4 {
        let (_, citizen) = api
            .citizen(&format!("08139999000{n}"), &format!("Warga {n}"))
            .await;
        let alert = api
            .panic(&citizen, "other", 300.0 * f64::from(n), None)
            .await;
        let id = alert["id"].as_str().expect("id").to_owned();
        if n == 4 {
            let (status, body) = api
                .send(
                    Method::POST,
                    &format!("/v1/alerts/{id}/cancel"),
                    Some(&citizen),
                    Some(json!({"reason": "salah tekan"})),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        incidents.insert(id);
    }

    // A health system lists today's Encounters, two per page.
    let system = api.health_system(&admin).await;
    let (status, capability) = api.fhir("/fhir/r4/metadata", &system).await;
    assert_eq!(status, StatusCode::OK, "{capability}");
    assert_eq!(capability["fhirVersion"], "4.0.1");
    keep_sample("e2e-capability-statement", &capability);
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let all = format!("/fhir/r4/Encounter?date=ge{today}&_count=100");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // The bridge follows dispatch's change feed a few seconds behind.
        let (ids, _) = every_page(&api, &all, &system).await;
        if ids.len() == incidents.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the FHIR API never showed every incident: {ids:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (ids, pages) = every_page(
        &api,
        &format!("/fhir/r4/Encounter?date=ge{today}&_count=2"),
        &system,
    )
    .await;
    assert_eq!(pages.len(), 2, "four incidents, two per page");
    assert_eq!(
        ids.len(),
        incidents.len(),
        "an incident was repeated: {ids:?}"
    );
    assert_eq!(ids.iter().cloned().collect::<HashSet<_>>(), incidents);
    for (index, page) in pages.iter().enumerate() {
        keep_sample(&format!("e2e-encounter-searchset-{}", index + 1), page);
    }

    // The incident's resources, as the health system reads them.
    let (status, encounter) = api
        .fhir(&format!("/fhir/r4/Encounter/{alert_id}"), &system)
        .await;
    assert_eq!(status, StatusCode::OK, "{encounter}");
    assert_eq!(encounter["status"], "finished");
    assert_eq!(encounter["class"]["code"], "EMER");
    keep_sample("e2e-encounter", &encounter);
    let (status, location) = api
        .fhir(&format!("/fhir/r4/Location/{alert_id}"), &system)
        .await;
    assert_eq!(status, StatusCode::OK, "{location}");
    keep_sample("e2e-location", &location);
    let (status, tasks) = api
        .fhir(
            &format!("/fhir/r4/Task?focus=Encounter/{alert_id}"),
            &system,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{tasks}");
    assert_eq!(tasks["entry"].as_array().map(Vec::len), Some(1), "{tasks}");
    assert_eq!(
        tasks["entry"][0]["resource"]["owner"]["identifier"]["value"],
        fake::SEED_IHS_ONE,
        "the task is owned by the verified practitioner"
    );
    keep_sample("e2e-task-searchset", &tasks);
    let (status, task) = api
        .fhir(&format!("/fhir/r4/Task/{assignment_id}"), &system)
        .await;
    assert_eq!(status, StatusCode::OK, "{task}");
    assert_eq!(task["status"], "completed");
    keep_sample("e2e-task", &task);
    let (status, outcome) = api.fhir("/fhir/r4/Encounter?date=kemarin", &system).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{outcome}");
    assert_eq!(outcome["resourceType"], "OperationOutcome");
    keep_sample("e2e-operation-outcome", &outcome);

    // Nothing personal beyond the patient's NIK: no names, no phone numbers.
    for resource in pages.iter().chain([&encounter, &location, &tasks, &task]) {
        let text = resource.to_string();
        for personal in ["Warga", "Sari", "0813", "0812"] {
            assert!(!text.contains(personal), "{personal} served: {text}");
        }
    }
    // A volunteer's token is no health system's.
    let (status, refused) = api.fhir("/fhir/r4/Encounter", &volunteer).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert_eq!(refused["resourceType"], "OperationOutcome");
}
