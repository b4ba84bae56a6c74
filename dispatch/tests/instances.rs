//! Two dispatch instances over one database, as two `kreki` processes behind a load balancer
//! would run: each has its own matcher, and a volunteer whose duty, position or assignment went
//! through one instance must be matched by a wave on the other.

pub mod common;

use std::time::{Duration, Instant};

use common::{MONAS, Person, TestApp, alert_body, offset};
use http::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;

async fn put_duty(app: &TestApp, who: &Person, on_duty: bool) {
    let (status, body) = app
        .call(
            Method::PUT,
            "/v1/volunteers/me/duty",
            Some(who),
            Some(json!({"on_duty": on_duty})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn move_to(app: &TestApp, who: &Person, at: (f64, f64)) {
    let (status, body) = app
        .call(
            Method::POST,
            "/v1/volunteers/me/location",
            Some(who),
            Some(json!({"lat": at.0, "lng": at.1, "accuracy_m": 5})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

/// Runs `app`'s first wave of an alert a new citizen raises now at `at`; answers who got offers.
async fn wave(app: &TestApp, at: (f64, f64)) -> Vec<uuid::Uuid> {
    let before = app.notifier.messages().len();
    let citizen = app.citizen("Sari");
    let (status, body) = app.panic(&citizen, "k-1", alert_body("other", at)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(
        app.service.process_outbox(None).await.expect("a wave"),
        "an outbox row"
    );
    app.notifier.messages()[before..]
        .iter()
        .filter(|(_, message)| message["type"] == "offer")
        .map(|(audience, _)| match audience {
            kreki_dispatch::Audience::User(id) => *id,
            other => panic!("an offer to {other:?}"),
        })
        .collect()
}

#[sqlx::test(migrations = "../migrations")]
async fn a_wave_on_one_instance_matches_volunteers_changed_through_another(pool: PgPool) {
    let a = TestApp::new(pool.clone()).await;
    let b = TestApp::new(pool.clone()).await;
    let near = offset(MONAS.0, MONAS.1, 300.0, 0.0);

    // On duty and located through B only: A's wave offers to them.
    let volunteer = b.volunteer_at("Budi", near.0, near.1, &[]).await;
    assert!(
        !a.service.in_matcher(volunteer.id),
        "no background catch-up runs in this test"
    );
    let offered = wave(&a, MONAS).await;
    assert_eq!(offered, vec![volunteer.id], "A's wave sees B's volunteer");

    // Moved out of range through B: A's next wave no longer finds them.
    move_to(&b, &volunteer, offset(MONAS.0, MONAS.1, 20_000.0, 0.0)).await;
    let offered = wave(&a, offset(MONAS.0, MONAS.1, 0.0, 3000.0)).await;
    assert!(
        offered.is_empty(),
        "moved away on B, still offered on A: {offered:?}"
    );

    // Back, then off duty through B: nothing either.
    move_to(&b, &volunteer, near).await;
    put_duty(&b, &volunteer, false).await;
    let offered = wave(&a, offset(MONAS.0, MONAS.1, 0.0, -3000.0)).await;
    assert!(
        offered.is_empty(),
        "off duty on B, still offered on A: {offered:?}"
    );

    // On duty again through B, and busy with an assignment accepted through B.
    put_duty(&b, &volunteer, true).await;
    let offered = wave(&b, offset(MONAS.0, MONAS.1, 0.0, 6000.0)).await;
    assert!(offered.is_empty(), "too far for B's wave");
    let offered = wave(&b, near).await;
    assert_eq!(offered, vec![volunteer.id]);
    let offer = &b.notifier.to_user(volunteer.id, "offer")[0]["offer"];
    let (status, body) = b
        .call(
            Method::POST,
            &format!("/v1/offers/{}/accept", offer["id"].as_str().expect("an id")),
            Some(&volunteer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let offered = wave(&a, offset(MONAS.0, MONAS.1, 5000.0, 5000.0)).await;
    assert!(offered.is_empty(), "too far for A's wave");
    let offered = wave(&a, offset(MONAS.0, MONAS.1, 100.0, 100.0)).await;
    assert!(
        offered.is_empty(),
        "busy on B, still offered on A: {offered:?}"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn the_background_catch_up_follows_another_instance_within_the_bound(pool: PgPool) {
    let mut a = TestApp::new(pool.clone()).await;
    let mut b = TestApp::new(pool.clone()).await;
    a.start_workers();
    b.start_workers();
    let near = offset(MONAS.0, MONAS.1, 300.0, 0.0);
    // Let A's listener subscribe.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let started = Instant::now();
    let volunteer = b.volunteer_at("Budi", near.0, near.1, &[]).await;
    let joined = wait_until(|| a.service.in_matcher(volunteer.id)).await;
    let joined = joined.duration_since(started);
    // Announced within 200 ms, caught up at once; the 1 s poll is the fallback bound.
    assert!(
        joined < Duration::from_millis(1500),
        "A learnt of B's volunteer after {joined:?}"
    );

    let started = Instant::now();
    put_duty(&b, &volunteer, false).await;
    let left = wait_until(|| !a.service.in_matcher(volunteer.id)).await;
    assert!(
        left.duration_since(started) < Duration::from_millis(1500),
        "A dropped B's off-duty volunteer after {:?}",
        left.duration_since(started)
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn a_volunteer_new_to_an_instance_joins_its_matcher_with_their_certifications(pool: PgPool) {
    let a = TestApp::new(pool.clone()).await;
    let b = TestApp::new(pool.clone()).await;
    let near = offset(MONAS.0, MONAS.1, 200.0, 0.0);
    let certified = b
        .volunteer_at("certified", near.0, near.1, &["first_aid"])
        .await;
    let far = offset(MONAS.0, MONAS.1, 100.0, 0.0);
    let uncertified = b.volunteer_at("uncertified", far.0, far.1, &[]).await;
    let read = a.service.catch_up_volunteers().await.expect("a catch-up");
    assert!(read >= 2, "read {read} rows");
    assert!(a.service.in_matcher(certified.id) && a.service.in_matcher(uncertified.id));
    // A `medical` alert needs first aid: only the certified volunteer qualifies, though farther.
    let citizen = a.citizen("Sari");
    let (status, body) = a.panic(&citizen, "k-1", alert_body("medical", MONAS)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(a.service.process_outbox(None).await.expect("a wave"));
    assert_eq!(a.notifier.to_user(certified.id, "offer").len(), 1);
    assert!(a.notifier.to_user(uncertified.id, "offer").is_empty());
}

#[sqlx::test(migrations = "../migrations")]
async fn a_change_committed_after_a_catch_up_began_is_not_skipped(pool: PgPool) {
    let a = TestApp::new(pool.clone()).await;
    let b = TestApp::new(pool.clone()).await;
    let near = offset(MONAS.0, MONAS.1, 200.0, 0.0);
    let volunteer = b.volunteer_at("Budi", near.0, near.1, &[]).await;
    a.service.catch_up_volunteers().await.expect("a catch-up");
    assert!(a.service.in_matcher(volunteer.id));

    // A slow transaction takes the volunteer off duty (its id is taken now), while A catches up
    // twice and others commit changes that move A's cursor on.
    let mut slow = pool.begin().await.expect("a transaction");
    sqlx::query("UPDATE dispatch.volunteers SET on_duty = false WHERE user_id = $1")
        .bind(volunteer.id)
        .execute(&mut *slow)
        .await
        .expect("updated");
    let other = b.volunteer_at("Rina", near.0, near.1, &[]).await;
    a.service.catch_up_volunteers().await.expect("a catch-up");
    a.service.catch_up_volunteers().await.expect("a catch-up");
    assert!(a.service.in_matcher(other.id));
    assert!(a.service.in_matcher(volunteer.id), "not committed yet");
    slow.commit().await.expect("committed");

    a.service.catch_up_volunteers().await.expect("a catch-up");
    assert!(
        !a.service.in_matcher(volunteer.id),
        "the slow commit was skipped by the cursor"
    );
}

async fn wait_until(mut done: impl FnMut() -> bool) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "not within 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Instant::now()
}
