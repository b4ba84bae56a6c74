//! The AED registry: admins add devices and bad input is a 422 naming the field; custodians and
//! admins change them and only admins verify; anyone signed in lists the ones near a point,
//! nearest first, with `available_now`; hours are judged in Asia/Jakarta time (across midnight
//! too); routing an `aed` responder picks the shortest walk via a device available at that
//! instant and never one outside its hours, out of service or unverified.

pub mod common;

use chrono::{DateTime, Duration, Utc};
use common::{MONAS, Person, TestApp, offset};
use http::{Method, StatusCode};
use kreki_auth::Role;
use kreki_dispatch::LatLng;
use kreki_dispatch::domain::aeds::jakarta_day_and_minute;
use kreki_dispatch::service::aeds::aed_route;
use kreki_dispatch::store;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

/// Every day, all day.
fn always() -> Value {
    json!(
        (0..=6)
            .map(|day| json!({"day": day, "open": "00:00", "close": "24:00"}))
            .collect::<Vec<_>>()
    )
}

/// One window, all day, on a day three days away from today in Jakarta: closed now whatever the
/// hour the test runs at.
fn closed_today() -> Value {
    let (today, _) = jakarta_day_and_minute(Utc::now());
    json!([{"day": (today + 3) % 7, "open": "00:00", "close": "24:00"}])
}

fn at(north_m: f64, east_m: f64) -> (f64, f64) {
    offset(MONAS.0, MONAS.1, north_m, east_m)
}

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("an instant")
        .with_timezone(&Utc)
}

fn fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|error| error["field"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Adds an AED as `admin`; its JSON.
async fn add(
    app: &TestApp,
    admin: &Person,
    position: (f64, f64),
    hours: Value,
    custodians: &[&Person],
) -> Value {
    let custodian_ids: Vec<Uuid> = custodians.iter().map(|person| person.id).collect();
    let (status, aed) = app
        .call(
            Method::POST,
            "/v1/aeds",
            Some(admin),
            Some(
                json!({"lat": position.0, "lng": position.1, "description": "Lobi, samping lift",
                        "hours": hours, "custodian_ids": custodian_ids}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{aed}");
    aed
}

async fn patch(app: &TestApp, who: &Person, aed: &Value, body: Value) -> (StatusCode, Value) {
    let id = aed["id"].as_str().expect("an id");
    app.call(
        Method::PATCH,
        &format!("/v1/aeds/{id}"),
        Some(who),
        Some(body),
    )
    .await
}

/// Adds an AED and verifies it (admin).
async fn add_verified(app: &TestApp, admin: &Person, position: (f64, f64), hours: Value) -> Value {
    let aed = add(app, admin, position, hours, &[]).await;
    let (status, verified) = patch(app, admin, &aed, json!({"verified": true})).await;
    assert_eq!(status, StatusCode::OK, "{verified}");
    assert_eq!(verified["verified"], true);
    verified
}

async fn near(app: &TestApp, who: &Person, query: &str) -> (StatusCode, Value) {
    app.call(Method::GET, &format!("/v1/aeds?{query}"), Some(who), None)
        .await
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|aed| aed["id"].as_str().expect("an id").to_owned())
        .collect()
}

fn id(aed: &Value) -> String {
    aed["id"].as_str().expect("an id").to_owned()
}

#[sqlx::test(migrations = "../migrations")]
async fn admins_add_aeds_and_bad_input_names_the_field(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let admin = app.person("Admin", &[Role::Citizen, Role::Admin]);
    let custodian = app.citizen("Pak Budi");
    let aed = add(&app, &admin, at(100.0, 0.0), always(), &[&custodian]).await;
    assert_eq!(aed["description"], "Lobi, samping lift");
    assert_eq!(aed["verified"], false);
    assert_eq!(aed["out_of_service"], false);
    // Open now, but not verified yet: not available.
    assert_eq!(aed["available_now"], false);
    assert_eq!(aed["hours"].as_array().map(Vec::len), Some(7));
    assert_eq!(aed["custodian_ids"], json!([custodian.id]));
    assert!((aed["lat"].as_f64().expect("lat") - at(100.0, 0.0).0).abs() < 1e-9);

    // (body, the fields named)
    let good = |changes: Value| {
        let mut body = json!({"lat": MONAS.0, "lng": MONAS.1, "description": "Pos satpam",
                              "hours": [{"day": 1, "open": "08:00", "close": "17:00"}]});
        for (key, value) in changes.as_object().expect("an object") {
            body[key] = value.clone();
        }
        body
    };
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (good(json!({"lat": 1.29, "lng": 151.0})), vec!["lng"]),
        (
            good(json!({"lat": -33.9, "lng": 151.2})),
            vec!["lat", "lng"],
        ),
        (good(json!({"lat": 95.0})), vec!["lat"]),
        (
            good(json!({"hours": [{"day": 1, "open": "17:00", "close": "08:00"}]})),
            vec!["hours[0].close"],
        ),
        (
            good(
                json!({"hours": [{"day": 1, "open": "08:00", "close": "12:00"},
                                  {"day": 1, "open": "11:30", "close": "13:00"}]}),
            ),
            vec!["hours[1]"],
        ),
        (
            good(
                json!({"hours": [{"day": 1, "open": "08:00", "close": "12:00"},
                                  {"day": 2, "open": "12:00", "close": "11:00"}]}),
            ),
            vec!["hours[1].close"],
        ),
        (
            good(json!({"hours": [{"day": 9, "open": "8am", "close": "17:00"}]})),
            vec!["hours[0].day", "hours[0].open"],
        ),
        (
            good(json!({"hours": [{"day": "monday", "open": "08:00", "close": "17:00"}]})),
            vec!["hours[0].day"],
        ),
        (good(json!({"description": "  "})), vec!["description"]),
        (
            good(json!({"custodian_ids": (0..21).map(|_| Uuid::now_v7()).collect::<Vec<_>>()})),
            vec!["custodian_ids"],
        ),
        (
            json!({"lat": MONAS.0, "lng": MONAS.1, "hours": []}),
            vec!["description"],
        ),
    ];
    for (body, expected) in cases {
        let (status, problem) = app
            .call(Method::POST, "/v1/aeds", Some(&admin), Some(body.clone()))
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {problem}"
        );
        assert_eq!(fields(&problem), expected, "{body}: {problem}");
    }

    // Only admins add.
    for person in [
        app.citizen("Warga"),
        app.person("Relawan", &[Role::Citizen, Role::Volunteer]),
        app.person("Koordinator", &[Role::Citizen, Role::Coordinator]),
        custodian,
    ] {
        let (status, problem) = app
            .call(
                Method::POST,
                "/v1/aeds",
                Some(&person),
                Some(good(json!({}))),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{}: {problem}", person.name);
    }
    let (status, _) = app
        .call(Method::POST, "/v1/aeds", None, Some(good(json!({}))))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM dispatch.aeds")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(count, 1, "refused requests store nothing");
}

#[sqlx::test(migrations = "../migrations")]
async fn the_list_is_nearest_first_and_says_which_are_available_now(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let admin = app.person("Admin", &[Role::Citizen, Role::Admin]);
    let custodian = app.citizen("Bu Sari");
    let citizen = app.citizen("Warga");
    let open = add_verified(&app, &admin, at(300.0, 0.0), always()).await;
    let far = add_verified(&app, &admin, at(2000.0, 0.0), always()).await;
    let closed = add_verified(&app, &admin, at(0.0, 100.0), closed_today()).await;
    let broken = add_verified(&app, &admin, at(-200.0, 0.0), always()).await;
    let (status, broken) = patch(&app, &admin, &broken, json!({"out_of_service": true})).await;
    assert_eq!(status, StatusCode::OK, "{broken}");
    let unverified = add(&app, &admin, at(50.0, 0.0), always(), &[&custodian]).await;

    let query = format!("near={},{}&radius_m=1000", MONAS.0, MONAS.1);
    let (status, list) = near(&app, &citizen, &query).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(ids(&list), [id(&closed), id(&broken), id(&open)]);
    let available: Vec<bool> = list
        .as_array()
        .expect("a list")
        .iter()
        .map(|aed| aed["available_now"].as_bool().expect("a flag"))
        .collect();
    assert_eq!(available, [false, false, true]);
    assert!(
        list[0].get("custodian_ids").is_none(),
        "custodians are not shown to everyone: {}",
        list[0]
    );

    // Its custodian sees the unverified device too (not available); admins see every one.
    let (_, mine) = near(&app, &custodian, &query).await;
    assert_eq!(
        ids(&mine),
        [id(&unverified), id(&closed), id(&broken), id(&open)]
    );
    assert_eq!(mine[0]["available_now"], false);
    assert_eq!(mine[0]["custodian_ids"], json!([custodian.id]));
    let (_, all) = near(
        &app,
        &admin,
        &format!("near={},{}&radius_m=3000", MONAS.0, MONAS.1),
    )
    .await;
    assert_eq!(
        ids(&all),
        [
            id(&unverified),
            id(&closed),
            id(&broken),
            id(&open),
            id(&far)
        ]
    );
    // The default radius is 1 km.
    let (_, default) = near(&app, &citizen, &format!("near={},{}", MONAS.0, MONAS.1)).await;
    assert_eq!(ids(&default), ids(&list));

    for (query, field) in [
        ("radius_m=500", "near"),
        ("near=abc", "near"),
        ("near=-6.2", "near"),
        ("near=-96,106.8", "near"),
        ("near=-6.2,106.8&radius_m=0", "radius_m"),
        ("near=-6.2,106.8&radius_m=20000", "radius_m"),
        ("near=-6.2,106.8&radius_m=lots", "radius_m"),
    ] {
        let (status, problem) = near(&app, &citizen, query).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{query}: {problem}"
        );
        assert_eq!(fields(&problem), [field], "{query}");
    }
    let (status, _) = app
        .call(Method::GET, &format!("/v1/aeds?{query}"), None, None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[sqlx::test(migrations = "../migrations")]
async fn custodians_change_their_aeds_and_only_admins_verify(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let admin = app.person("Admin", &[Role::Citizen, Role::Admin]);
    let custodian = app.person("Pak Budi", &[Role::Citizen, Role::Volunteer]);
    let stranger = app.citizen("Orang lain");
    let coordinator = app.person("Koordinator", &[Role::Citizen, Role::Coordinator]);
    let aed = add(&app, &admin, at(100.0, 0.0), always(), &[&custodian]).await;

    // A custodian may not verify; nobody but custodians and admins may change anything.
    let (status, problem) = patch(&app, &custodian, &aed, json!({"verified": true})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    for person in [&stranger, &coordinator] {
        let (status, problem) = patch(&app, person, &aed, json!({"out_of_service": true})).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{}: {problem}", person.name);
    }
    let (status, _) = app
        .call(
            Method::PATCH,
            &format!("/v1/aeds/{}", id(&aed)),
            None,
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, problem) = patch(
        &app,
        &admin,
        &json!({"id": Uuid::now_v7()}),
        json!({"out_of_service": true}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");

    // An admin verifies: who and when are recorded.
    let before = Utc::now();
    let (status, verified) = patch(&app, &admin, &aed, json!({"verified": true})).await;
    assert_eq!(status, StatusCode::OK, "{verified}");
    assert_eq!(
        (
            verified["verified"].clone(),
            verified["available_now"].clone()
        ),
        (json!(true), json!(true))
    );
    let (by, when): (Option<Uuid>, Option<DateTime<Utc>>) =
        sqlx::query_as("SELECT verified_by, verified_at FROM dispatch.aeds WHERE id = $1")
            .bind(Uuid::parse_str(&id(&aed)).expect("uuid"))
            .fetch_one(&pool)
            .await
            .expect("the row");
    assert_eq!(by, Some(admin.id));
    assert!(when.is_some_and(|when| when >= before - Duration::seconds(1)));

    // The custodian changes hours and takes it out of service and back; bad input is named.
    let (status, changed) = patch(
        &app,
        &custodian,
        &aed,
        json!({"hours": [{"day": 1, "open": "08:00", "close": "17:00"}], "out_of_service": true}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["out_of_service"], true);
    assert_eq!(changed["available_now"], false);
    assert_eq!(changed["verified"], true, "new hours keep the verification");
    assert_eq!(
        changed["hours"],
        json!([{"day": 1, "open": "08:00", "close": "17:00"}])
    );
    for (body, field) in [
        (
            json!({"hours": [{"day": 1, "open": "08:00", "close": "12:00"},
                             {"day": 3, "open": "18:00", "close": "09:00"}]}),
            "hours[1].close",
        ),
        (json!({"lat": -6.2}), "lng"),
        (json!({"lat": 10.0, "lng": 106.8}), "lat"),
        (json!({"description": ""}), "description"),
        (json!({"out_of_service": "yes"}), "out_of_service"),
        (json!({"colour": "red"}), "colour"),
    ] {
        let (status, problem) = patch(&app, &custodian, &aed, body.clone()).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {problem}"
        );
        assert_eq!(fields(&problem), [field], "{body}: {problem}");
    }
    let (status, back) = patch(
        &app,
        &custodian,
        &aed,
        json!({"hours": always(), "out_of_service": false}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{back}");
    assert_eq!(back["available_now"], true);

    // Moving the device clears its verification: an admin checks it again.
    let moved_to = at(150.0, 20.0);
    let (status, moved) = patch(
        &app,
        &custodian,
        &aed,
        json!({"lat": moved_to.0, "lng": moved_to.1}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(
        (moved["verified"].clone(), moved["available_now"].clone()),
        (json!(false), json!(false))
    );
    assert!((moved["lat"].as_f64().expect("lat") - moved_to.0).abs() < 1e-9);
    let (_, again) = patch(&app, &admin, &aed, json!({"verified": true})).await;
    assert_eq!(again["verified"], true);

    // An admin hands the device to someone else: the former custodian may no longer change it.
    let (status, handed) = patch(
        &app,
        &admin,
        &aed,
        json!({"custodian_ids": [stranger.id, stranger.id]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{handed}");
    assert_eq!(handed["custodian_ids"], json!([stranger.id]));
    let (status, _) = patch(&app, &custodian, &aed, json!({"out_of_service": true})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = patch(&app, &stranger, &aed, json!({"out_of_service": true})).await;
    assert_eq!(status, StatusCode::OK);
}

#[sqlx::test(migrations = "../migrations")]
async fn hours_across_midnight_are_judged_in_jakarta_time(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let admin = app.person("Admin", &[Role::Citizen, Role::Admin]);
    // Saturday 22:00 to Sunday 06:00, Jakarta time.
    let night = json!([{"day": 6, "open": "22:00", "close": "24:00"},
                       {"day": 0, "open": "00:00", "close": "06:00"}]);
    let aed = add_verified(&app, &admin, at(200.0, 0.0), night).await;
    let alert = LatLng::new(MONAS.0, MONAS.1).expect("valid");
    let (lat, lng) = at(400.0, 0.0);
    let volunteer = LatLng::new(lat, lng).expect("valid");
    // 2026-12-05 is a Saturday. (instant in UTC, what it is in Jakarta, routed via the AED?)
    let cases = [
        ("2026-12-05T14:59:00Z", "Sat 21:59", false),
        ("2026-12-05T15:00:00Z", "Sat 22:00", true),
        ("2026-12-05T16:59:00Z", "Sat 23:59", true),
        (
            "2026-12-05T17:00:00Z",
            "Sun 00:00, still Saturday in UTC",
            true,
        ),
        ("2026-12-05T22:59:00Z", "Sun 05:59", true),
        ("2026-12-05T23:00:00Z", "Sun 06:00", false),
        ("2026-12-06T15:30:00Z", "Sun 22:30", false),
        ("2026-12-04T17:30:00Z", "Sat 00:30, Friday in UTC", false),
    ];
    let mut conn = pool.acquire().await.expect("a connection");
    for (instant, local, expected) in cases {
        let route = aed_route(&mut conn, alert, volunteer, utc(instant), 1000.0)
            .await
            .expect("read");
        assert_eq!(route.is_some(), expected, "{instant} ({local} in Jakarta)");
        if let Some(route) = route {
            assert_eq!(route.aed.id.to_string(), id(&aed));
            assert!(route.aed.available_now);
            // 200 m from the volunteer to the device, 200 m on to the alert.
            assert!(
                (route.distance_via_m - 400.0).abs() < 2.0,
                "{}",
                route.distance_via_m
            );
        }
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn jakarta_time_agrees_with_the_tz_database(pool: PgPool) {
    // PostgreSQL's own Asia/Jakarta, at instants across decades, midnights and the new year.
    let mut instants: Vec<DateTime<Utc>> = [
        "1970-01-01T00:00:00Z",
        "1999-12-31T16:59:59Z",
        "1999-12-31T17:00:00Z",
        "2026-03-29T01:30:00Z",
        "2026-10-25T01:30:00Z",
        "2026-12-05T16:59:00Z",
        "2026-12-05T17:00:00Z",
        "2038-01-19T03:14:07Z",
    ]
    .iter()
    .map(|text| utc(text))
    .collect();
    let start = utc("2026-01-01T00:00:00Z");
    instants.extend((0..400).map(|n| start + Duration::minutes(n * 1307)));
    for instant in instants {
        let (day, minute): (f64, f64) = sqlx::query_as(
            "SELECT extract(dow FROM $1 AT TIME ZONE 'Asia/Jakarta')::float8,
                    (extract(hour FROM $1 AT TIME ZONE 'Asia/Jakarta') * 60
                     + extract(minute FROM $1 AT TIME ZONE 'Asia/Jakarta'))::float8",
        )
        .bind(instant)
        .fetch_one(&pool)
        .await
        .expect("PostgreSQL converts");
        let (ours_day, ours_minute) = jakarta_day_and_minute(instant);
        assert_eq!(
            (f64::from(ours_day), f64::from(ours_minute)),
            (day, minute),
            "{instant}"
        );
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn routing_takes_the_shortest_walk_via_an_aed_available_now(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let admin = app.person("Admin", &[Role::Citizen, Role::Admin]);
    let alert = LatLng::new(MONAS.0, MONAS.1).expect("valid");
    let (lat, lng) = at(600.0, 0.0);
    let volunteer = LatLng::new(lat, lng).expect("valid");
    // On the way (a 600 m walk) but closed today.
    let on_the_way = add_verified(&app, &admin, at(300.0, 0.0), closed_today()).await;
    // Behind the alert: 700 m + 100 m, open.
    let behind = add_verified(&app, &admin, at(-100.0, 0.0), always()).await;
    // Shorter walks, but out of service or not verified.
    let broken = add_verified(&app, &admin, at(50.0, 0.0), always()).await;
    patch(&app, &admin, &broken, json!({"out_of_service": true})).await;
    add(&app, &admin, at(400.0, 0.0), always(), &[]).await;
    // A short walk from the volunteer, but beyond the radius around the alert.
    add_verified(&app, &admin, at(1100.0, 0.0), always()).await;

    let route = app
        .service
        .aed_route(alert, volunteer, Utc::now())
        .await
        .expect("read")
        .expect("an AED");
    assert_eq!(route.aed.id.to_string(), id(&behind));
    assert!(
        (route.distance_via_m - 800.0).abs() < 2.0,
        "{}",
        route.distance_via_m
    );
    assert!(route.aed.available_now);

    // Open the one on the way: it wins; out of service again, it is never chosen.
    let (status, _) = patch(&app, &admin, &on_the_way, json!({"hours": always()})).await;
    assert_eq!(status, StatusCode::OK);
    let route = app
        .service
        .aed_route(alert, volunteer, Utc::now())
        .await
        .expect("read")
        .expect("an AED");
    assert_eq!(route.aed.id.to_string(), id(&on_the_way));
    assert!(
        (route.distance_via_m - 600.0).abs() < 2.0,
        "{}",
        route.distance_via_m
    );
    patch(&app, &admin, &on_the_way, json!({"out_of_service": true})).await;
    patch(&app, &admin, &behind, json!({"hours": closed_today()})).await;
    let route = app
        .service
        .aed_route(alert, volunteer, Utc::now())
        .await
        .expect("read");
    assert!(route.is_none(), "every device left is closed: {route:?}");
}

#[sqlx::test(migrations = "../migrations")]
async fn the_route_and_the_checkin_claim_use_their_indexes(pool: PgPool) {
    let mut conn = pool.acquire().await.expect("a connection");
    sqlx::query("SET enable_seqscan = off")
        .execute(&mut *conn)
        .await
        .expect("set");
    let route: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "EXPLAIN {}",
        store::AED_ROUTE_SQL
    )))
    .bind(106.8_f64)
    .bind(-6.2_f64)
    .bind(106.81_f64)
    .bind(-6.19_f64)
    .bind(1000.0_f64)
    .bind(200_i64)
    .fetch_all(&mut *conn)
    .await
    .expect("explained");
    let route = route.join("\n");
    assert!(route.contains("aeds_location_gix"), "{route}");
    let claim: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "EXPLAIN {}",
        store::CLAIM_DUE_CHECKINS_SQL
    )))
    .bind(100_i64)
    .fetch_all(&mut *conn)
    .await
    .expect("explained");
    let claim = claim.join("\n");
    assert!(claim.contains("checkins_due_idx"), "{claim}");
}
