//! Volunteers and kinds: duty tells the eligible kinds and certifications change eligibility at
//! once, kind settings, locations validated and kept in history, practitioner-only kinds, and
//! readiness waiting for the matcher (a module of the `operations` test binary).

use super::*;

#[sqlx::test(migrations = "../migrations")]
async fn duty_tells_eligible_kinds_and_certifications_change_eligibility_at_once(pool: PgPool) {
    let mut app = TestApp::new(pool.clone()).await;
    app.start_workers();
    let volunteer = app.person("Rina", &[Role::Citizen, Role::Volunteer]);
    let (status, duty) = app
        .call(
            Method::PUT,
            "/v1/volunteers/me/duty",
            Some(&volunteer),
            Some(json!({"on_duty": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(duty["on_duty"], true);
    let kinds: Vec<&str> = duty["eligible_kinds"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(kinds, ["disaster", "other", "security"]);
    let (lat, lng) = offset(MONAS.0, MONAS.1, 100.0, 0.0);
    let (status, _) = app
        .call(
            Method::POST,
            "/v1/volunteers/me/location",
            Some(&volunteer),
            Some(json!({"lat": lat, "lng": lng})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);

    // No bls: a cardiac arrest next door is not offered.
    let citizen = app.citizen("Sari");
    let (_, first) = app
        .panic(&citizen, "e-1", alert_body("cardiac_arrest", MONAS))
        .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(app.notifier.to_user(volunteer.id, "offer").is_empty());

    kreki_dispatch::eligibility::grant(&pool, volunteer.id, "bls", None)
        .await
        .expect("grant");
    app.service
        .eligibility_changed(volunteer.id)
        .await
        .expect("re-read");
    let budi = app.citizen("Budi");
    let (_, second) = app
        .panic(&budi, "e-2", alert_body("cardiac_arrest", MONAS))
        .await;
    let offer = offer_for(&app, &volunteer).await;
    assert_eq!(offer["alert"]["id"], second["id"]);
    assert_ne!(offer["alert"]["id"], first["id"]);

    let (_, duty) = app
        .call(
            Method::PUT,
            "/v1/volunteers/me/duty",
            Some(&volunteer),
            Some(json!({"on_duty": true})),
        )
        .await;
    assert!(
        duty["eligible_kinds"]
            .as_array()
            .expect("list")
            .contains(&json!("cardiac_arrest"))
    );

    // An expired certification does not count.
    kreki_dispatch::eligibility::grant(
        &pool,
        volunteer.id,
        "first_aid",
        Some(chrono::Utc::now() - chrono::Duration::days(1)),
    )
    .await
    .expect("grant");
    let (_, duty) = app
        .call(
            Method::PUT,
            "/v1/volunteers/me/duty",
            Some(&volunteer),
            Some(json!({"on_duty": true})),
        )
        .await;
    assert!(
        !duty["eligible_kinds"]
            .as_array()
            .expect("list")
            .contains(&json!("medical"))
    );

    // Off duty: out of the matcher.
    let (_, duty) = app
        .call(
            Method::PUT,
            "/v1/volunteers/me/duty",
            Some(&volunteer),
            Some(json!({"on_duty": false})),
        )
        .await;
    assert_eq!(duty["on_duty"], false);
    let dian = app.citizen("Dian");
    let (_, third) = app.panic(&dian, "e-3", alert_body("security", MONAS)).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        app.notifier
            .to_user(volunteer.id, "offer")
            .iter()
            .all(|o| o["offer"]["alert"]["id"] != third["id"])
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn kind_settings_are_listed_and_admins_change_them(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let admin = app.person("Admin", &[Role::Citizen, Role::Admin]);
    let (status, kinds) = app
        .call(Method::GET, "/v1/dispatch/kinds", Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let cardiac = kinds
        .as_array()
        .expect("list")
        .iter()
        .find(|k| k["kind"] == "cardiac_arrest")
        .expect("seeded");
    assert_eq!(cardiac["required_certifications"], json!(["bls"]));
    // A cardiac arrest keeps seven offers live and replaces each decliner, 500 m first.
    assert_eq!(
        cardiac["waves"][0],
        json!({"count": 7, "radius_m": 500, "timeout_s": 30})
    );
    assert_eq!(
        cardiac["policy"],
        json!({"live_offers": 7, "replace_on_decline": true, "replace_on_expiry": true, "max_alerted": 30})
    );
    assert_eq!(cardiac["roles"], json!(["cpr", "aed", "lead"]));

    let settings = json!({"required_certifications": ["bls", "first_aid"], "requires_verified_practitioner": true,
                          "responders_needed": 2, "waves": [{"count": 5, "radius_m": 1500, "timeout_s": 20}]});
    let (status, stored) = app
        .call(
            Method::PUT,
            "/v1/dispatch/kinds/cardiac_arrest",
            Some(&admin),
            Some(settings.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    let (_, kinds) = app
        .call(Method::GET, "/v1/dispatch/kinds", Some(&admin), None)
        .await;
    let cardiac = kinds
        .as_array()
        .expect("list")
        .iter()
        .find(|k| k["kind"] == "cardiac_arrest")
        .expect("kind");
    assert_eq!(cardiac["responders_needed"], 2);
    assert_eq!(cardiac["requires_verified_practitioner"], true);

    let coordinator = app.person("Kor", &[Role::Citizen, Role::Coordinator]);
    let (status, _) = app
        .call(
            Method::PUT,
            "/v1/dispatch/kinds/cardiac_arrest",
            Some(&coordinator),
            Some(settings.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, problem) = app
        .call(
            Method::PUT,
            "/v1/dispatch/kinds/flood",
            Some(&admin),
            Some(settings),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"][0]["field"], "kind");
    let (status, problem) = app
        .call(
            Method::PUT,
            "/v1/dispatch/kinds/fire",
            Some(&admin),
            Some(json!({"required_certifications": [], "responders_needed": 1, "waves": [{"count": 0, "radius_m": 100, "timeout_s": 30}]})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"][0]["field"], "waves[0].count");

    // The new needs apply to the next alert.
    let citizen = app.citizen("Sari");
    let (_, alert) = app
        .panic(&citizen, "k", alert_body("cardiac_arrest", MONAS))
        .await;
    assert_eq!(alert["responders_needed"], 2);
}

#[sqlx::test(migrations = "../migrations")]
async fn locations_are_validated_kept_in_history_and_shown_to_coordinators(pool: PgPool) {
    let mut app = TestApp::new(pool.clone()).await;
    app.start_workers();
    let volunteer = app.person("Rina", &[Role::Citizen, Role::Volunteer]);
    // Off duty: the latest position is kept, but no history and no map.
    let (status, _) = app
        .call(
            Method::POST,
            "/v1/volunteers/me/location",
            Some(&volunteer),
            Some(json!({"lat": MONAS.0, "lng": MONAS.1})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(
        app.notifier
            .to_role(Role::Coordinator, "volunteer.position")
            .is_empty()
    );
    let (status, _) = app
        .call(
            Method::PUT,
            "/v1/volunteers/me/duty",
            Some(&volunteer),
            Some(json!({"on_duty": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    for (index, north) in [0.0, 50.0, 100.0].iter().enumerate() {
        let (lat, lng) = offset(MONAS.0, MONAS.1, *north, 0.0);
        let (status, body) = app
            .call(
                Method::POST,
                "/v1/volunteers/me/location",
                Some(&volunteer),
                Some(json!({"lat": lat, "lng": lng, "accuracy_m": 4 + index, "recorded_at": chrono::Utc::now()})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    let (status, problem) = app
        .call(
            Method::POST,
            "/v1/volunteers/me/location",
            Some(&volunteer),
            Some(json!({"lat": -100, "lng": 500})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"][0]["field"], "lat");
    assert_eq!(problem["errors"][1]["field"], "lng");
    let (status, problem) = app
        .call(
            Method::POST,
            "/v1/volunteers/me/location",
            Some(&volunteer),
            Some(json!({"lat": "x", "lng": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"][0]["field"], "lat");

    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let rows: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM dispatch.location_history WHERE volunteer_id = $1",
        )
        .bind(volunteer.id)
        .fetch_one(&pool)
        .await
        .expect("count");
        if rows == 3 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "history has {rows} rows"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(app.service.history_dropped(), 0);
    let positions = app
        .notifier
        .to_role(Role::Coordinator, "volunteer.position");
    assert_eq!(positions.len(), 3);
    assert_eq!(positions[2]["volunteer_id"], volunteer.id.to_string());
    // A fix older than the stored one goes to history only: the map keeps the newest.
    let (status, _) = app
        .call(
            Method::POST,
            "/v1/volunteers/me/location",
            Some(&volunteer),
            Some(json!({"lat": MONAS.0, "lng": MONAS.1, "recorded_at": chrono::Utc::now() - chrono::Duration::minutes(5)})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    // The row follows the matcher within a flush interval (write-behind); flush now.
    app.service
        .flush_positions()
        .await
        .expect("positions written");
    let stored: f64 = sqlx::query_scalar(
        "SELECT ST_Y(location::geometry) FROM dispatch.volunteers WHERE user_id = $1",
    )
    .bind(volunteer.id)
    .fetch_one(&pool)
    .await
    .expect("row");
    assert!((stored - offset(MONAS.0, MONAS.1, 100.0, 0.0).0).abs() < 1e-9);
    assert_eq!(
        app.notifier
            .to_role(Role::Coordinator, "volunteer.position")
            .len(),
        3
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn a_full_history_queue_drops_and_counts_without_blocking(pool: PgPool) {
    let config = kreki_dispatch::DispatchConfig {
        location_history_queue: 2,
        ..Default::default()
    };
    let app = TestApp::with_config(pool.clone(), config).await; // no writer draining the queue
    let volunteer = app.person("Rina", &[Role::Citizen, Role::Volunteer]);
    let (status, _) = app
        .call(
            Method::PUT,
            "/v1/volunteers/me/duty",
            Some(&volunteer),
            Some(json!({"on_duty": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    for _ in 0..5 {
        let (status, _) = app
            .call(
                Method::POST,
                "/v1/volunteers/me/location",
                Some(&volunteer),
                Some(json!({"lat": MONAS.0, "lng": MONAS.1})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    assert_eq!(app.service.history_dropped(), 3);
}

#[sqlx::test(migrations = "../migrations")]
async fn kinds_requiring_a_practitioner_reach_only_verified_volunteers(pool: PgPool) {
    let mut app = TestApp::new(pool.clone()).await;
    app.service
        .put_kind(
            kreki_dispatch::domain::AlertKind::Medical,
            &kreki_dispatch::domain::KindSettings {
                required_certifications: Vec::new(),
                requires_verified_practitioner: true,
                responders_needed: 1,
                waves: kreki_dispatch::config::default_waves(),
                policy: kreki_dispatch::domain::OfferPolicy::default(),
                roles: Vec::new(),
            },
        )
        .await
        .expect("stored");
    app.start_workers();
    let (lat, lng) = offset(MONAS.0, MONAS.1, 100.0, 0.0);
    let plain = app.volunteer_at("Rina", lat, lng, &[]).await;
    let (lat, lng) = offset(MONAS.0, MONAS.1, 300.0, 0.0);
    let nurse = app.volunteer_at("Dewi", lat, lng, &[]).await;
    // The bridge verified her NIK with SATUSEHAT.
    app.service
        .set_practitioner_verified(nurse.id, true)
        .await
        .expect("stored");
    let verified: bool = sqlx::query_scalar(
        "SELECT practitioner_verified FROM dispatch.volunteers WHERE user_id = $1",
    )
    .bind(nurse.id)
    .fetch_one(&pool)
    .await
    .expect("row");
    assert!(verified);
    let citizen = app.citizen("Sari");
    let (_, alert) = app
        .panic(&citizen, "pr", alert_body("medical", MONAS))
        .await;
    let offer = offer_for(&app, &nurse).await;
    assert_eq!(offer["alert"]["id"], alert["id"]);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(app.notifier.to_user(plain.id, "offer").is_empty());
    let (_, duty) = app
        .call(
            Method::PUT,
            "/v1/volunteers/me/duty",
            Some(&plain),
            Some(json!({"on_duty": true})),
        )
        .await;
    assert!(
        !duty["eligible_kinds"]
            .as_array()
            .expect("list")
            .contains(&json!("medical"))
    );
    let (_, duty) = app
        .call(
            Method::PUT,
            "/v1/volunteers/me/duty",
            Some(&nurse),
            Some(json!({"on_duty": true})),
        )
        .await;
    assert!(
        duty["eligible_kinds"]
            .as_array()
            .expect("list")
            .contains(&json!("medical"))
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn readiness_waits_for_the_matcher(pool: PgPool) {
    use kreki_platform::health::ReadinessCheck;
    let (service, _queues) = kreki_dispatch::DispatchService::new(
        pool.clone(),
        kreki_dispatch::DispatchConfig::default(),
        kreki_dispatch::service::Ports {
            notifier: std::sync::Arc::new(kreki_dispatch::notify::NullNotifier),
            certs: std::sync::Arc::new(kreki_dispatch::PgCertificationSource::new(pool.clone())),
            pii: kreki_platform::pii::Pii::dev(),
        },
    );
    let check = kreki_dispatch::worker::DispatchReadiness(service.clone());
    assert!(check.check().await.is_err());
    service.prepare().await.expect("prepares");
    assert_eq!(check.check().await, Ok(()));
    let kinds: i64 = sqlx::query_scalar("SELECT count(*) FROM dispatch.kind_settings")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(kinds, 7, "every kind is seeded");
}
