//! The role matrix: every dispatch endpoint, called by every role, answers 401 without a token,
//! 403 to roles docs/API.md does not name, something else to those it does, and never a 500.

pub mod common;

use std::time::Duration;

use common::{MONAS, Person, TestApp, alert_body, offset};
use http::{Method, StatusCode};
use kreki_auth::Role;
use serde_json::{Value, json};
use sqlx::PgPool;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Citizen,
    Volunteer,
    Coordinator,
    Admin,
}

#[sqlx::test(migrations = "../migrations")]
async fn every_endpoint_checks_its_roles(pool: PgPool) {
    let mut app = TestApp::new(pool.clone()).await;
    app.start_workers();
    let (lat, lng) = offset(MONAS.0, MONAS.1, 100.0, 0.0);
    let offered = app.volunteer_at("Rina", lat, lng, &[]).await;
    let owner = app.citizen("Sari");
    let (_, alert) = app
        .panic(&owner, "m-1", alert_body("security", MONAS))
        .await;
    let offer = app
        .notifier
        .wait_for_user(offered.id, "offer", Duration::from_secs(10))
        .await
        .expect("an offer")["offer"]
        .clone();
    let alert_id = alert["id"].as_str().expect("id").to_owned();
    let offer_id = offer["id"].as_str().expect("id").to_owned();
    let assignment: Value = {
        let (status, body) = app
            .call(
                Method::POST,
                &format!("/v1/offers/{offer_id}/accept"),
                Some(&offered),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        body
    };
    let assignment_id = assignment["id"].as_str().expect("id").to_owned();

    let people = [
        (Who::Citizen, app.person("C", &[Role::Citizen])),
        (
            Who::Volunteer,
            app.person("V", &[Role::Citizen, Role::Volunteer]),
        ),
        (
            Who::Coordinator,
            app.person("K", &[Role::Citizen, Role::Coordinator]),
        ),
        (Who::Admin, app.person("A", &[Role::Citizen, Role::Admin])),
    ];
    use Who::{Admin, Coordinator, Volunteer};
    let kind = json!({"required_certifications": [], "responders_needed": 1, "waves": [{"count": 3, "radius_m": 1000, "timeout_s": 30}]});
    // (method, path, body, roles allowed by role; ownership is checked separately below)
    let endpoints: Vec<(Method, String, Option<Value>, &[Who])> = vec![
        (
            Method::PUT,
            "/v1/volunteers/me/duty".into(),
            Some(json!({"on_duty": false})),
            &[Volunteer],
        ),
        (
            Method::POST,
            "/v1/volunteers/me/location".into(),
            Some(json!({"lat": lat, "lng": lng})),
            &[Volunteer],
        ),
        (
            Method::GET,
            "/v1/volunteers".into(),
            None,
            &[Coordinator, Admin],
        ),
        (
            Method::GET,
            "/v1/volunteers/me/offers".into(),
            None,
            &[Volunteer],
        ),
        (
            Method::GET,
            "/v1/alerts".into(),
            None,
            &[Coordinator, Admin],
        ),
        (
            Method::GET,
            format!("/v1/alerts/{alert_id}"),
            None,
            &[Coordinator, Admin],
        ),
        (
            Method::GET,
            format!("/v1/alerts/{alert_id}/timeline"),
            None,
            &[Coordinator, Admin],
        ),
        (
            Method::POST,
            format!("/v1/alerts/{alert_id}/assign"),
            Some(json!({"volunteer_id": offered.id})),
            &[Coordinator, Admin],
        ),
        (
            Method::POST,
            format!("/v1/offers/{offer_id}/decline"),
            None,
            &[],
        ),
        (
            Method::POST,
            format!("/v1/offers/{offer_id}/accept"),
            None,
            &[],
        ),
        (
            Method::POST,
            format!("/v1/assignments/{assignment_id}/status"),
            Some(json!({"status": "en_route"})),
            &[],
        ),
        (
            Method::GET,
            "/v1/dispatch/kinds".into(),
            None,
            &[Coordinator, Admin],
        ),
        (
            Method::PUT,
            "/v1/dispatch/kinds/other".into(),
            Some(kind),
            &[Admin],
        ),
        (
            Method::POST,
            format!("/v1/alerts/{alert_id}/cancel"),
            Some(json!({})),
            &[Coordinator, Admin],
        ),
    ];
    for (method, path, body, allowed) in &endpoints {
        let (status, _) = app.call(method.clone(), path, None, body.clone()).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {path} without a token"
        );
        for (who, person) in &people {
            let (status, answer) = app
                .call(method.clone(), path, Some(person), body.clone())
                .await;
            assert!(
                !status.is_server_error(),
                "{method} {path} as {who:?}: {status} {answer}"
            );
            if allowed.contains(who) {
                assert!(
                    status != StatusCode::FORBIDDEN && status != StatusCode::UNAUTHORIZED,
                    "{method} {path} as {who:?} should be allowed: {status} {answer}"
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{method} {path} as {who:?}: {answer}"
                );
            }
        }
    }
    // Anyone signed in may press panic.
    for (index, (who, person)) in people.iter().enumerate() {
        let (status, answer) = app
            .panic(
                person,
                &format!("p-{index}"),
                alert_body(
                    "other",
                    offset(MONAS.0, MONAS.1, 0.0, 3000.0 * index as f64),
                ),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{who:?}: {answer}");
    }
    // Ownership: the alert's citizen and its volunteer read it; the volunteer's own assignment.
    let own: [(&Person, String); 3] = [
        (&owner, format!("/v1/alerts/{alert_id}")),
        (&offered, format!("/v1/alerts/{alert_id}/timeline")),
        (&offered, format!("/v1/alerts/{alert_id}")),
    ];
    for (person, path) in own {
        let (status, answer) = app.call(Method::GET, &path, Some(person), None).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{path} as {}: {answer}",
            person.name
        );
    }
}
