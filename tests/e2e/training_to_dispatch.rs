//! Issue 4's "done when", through the real `kreki` process and nothing but its HTTP API: a volunteer
//! signs up, passes a trainer's BLS course, and receives a `cardiac_arrest` offer; once the
//! certificate is revoked, and again once an externally earned one lapses, `cardiac_arrest` alerts no
//! longer reach them while `other` alerts still do. Only the admin and the trainer come from the CLI.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::support::{JsonApi, MONAS, Server, TempDir, database_url, kreki, signing_key};

const WAIT: Duration = Duration::from_secs(5);

struct Api(JsonApi);

impl std::ops::Deref for Api {
    type Target = JsonApi;
    fn deref(&self) -> &JsonApi {
        &self.0
    }
}

impl Api {
    /// Signs up over HTTP; the new user's id.
    async fn register(&self, phone: &str, name: &str) -> String {
        let (status, body) = self
            .send(
                Method::POST,
                "/v1/auth/register",
                None,
                Some(json!({"phone": phone, "password": "kata-sandi-aman", "name": name})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().expect("an id").to_owned()
    }

    /// A citizen's panic at Monas; the alert's id.
    async fn panic(&self, citizen: &str, kind: &str) -> String {
        let response = self
            .client
            .post(format!("{}/v1/alerts", self.base))
            .bearer_auth(citizen)
            .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
            .json(&json!({"kind": kind, "location": {"lat": MONAS.0, "lng": MONAS.1, "accuracy_m": 10}}))
            .send()
            .await
            .expect("panic answered");
        assert_eq!(response.status(), StatusCode::CREATED, "a new alert");
        let alert: Value = response.json().await.expect("JSON");
        assert_eq!(alert["kind"], kind);
        alert["id"].as_str().expect("an id").to_owned()
    }

    async fn cancel(&self, citizen: &str, alert: &str) {
        let (status, body) = self
            .send(
                Method::POST,
                &format!("/v1/alerts/{alert}/cancel"),
                Some(citizen),
                Some(json!({"reason": "tes"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["status"], "cancelled");
    }

    async fn offers(&self, volunteer: &str) -> Vec<Value> {
        let (status, body) = self
            .send(
                Method::GET,
                "/v1/volunteers/me/offers",
                Some(volunteer),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body.as_array().expect("a list").clone()
    }

    /// The volunteer's pending offer for `alert`, waiting at most `WAIT`.
    async fn offer_for(&self, volunteer: &str, alert: &str) -> Option<Value> {
        let deadline = Instant::now() + WAIT;
        loop {
            let offers = self.offers(volunteer).await;
            if let Some(offer) = offers.into_iter().find(|o| o["alert"]["id"] == alert) {
                return Some(offer);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn decline(&self, volunteer: &str, offer: &Value) {
        let id = offer["id"].as_str().expect("an offer id");
        let (status, body) = self
            .send(
                Method::POST,
                &format!("/v1/offers/{id}/decline"),
                Some(volunteer),
                Some(json!({"reason": "tes"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    /// Waits (bounded) until none of `volunteers` has a pending offer.
    async fn settled(&self, volunteers: &[&str]) {
        let deadline = Instant::now() + WAIT;
        for volunteer in volunteers {
            loop {
                let offers = self.offers(volunteer).await;
                if offers.is_empty() {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "offers still pending: {offers:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// Waits (bounded) until the volunteer's certificate `id` satisfies `done`, as they see it.
    async fn certificate_until(&self, volunteer: &str, id: &str, done: impl Fn(&Value) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (status, mine) = self
                .send(
                    Method::GET,
                    "/v1/lms/certificates/me",
                    Some(volunteer),
                    None,
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{mine}");
            if mine
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["id"] == id && done(c))
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "certificate {id} never did: {mine}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn north(metres: f64) -> (f64, f64) {
    (MONAS.0 + metres / 110_574.0, MONAS.1)
}

fn cli_user(url: &str, phone: &str, password: &str, name: &str, role: &str) {
    let created = kreki()
        .args(["user", "create", "--phone", phone, "--password", password])
        .args(["--name", name, "--role", role])
        .env("KREKI_DATABASE__URL", url)
        .output()
        .expect("runs");
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
}

#[sqlx::test(migrations = false)]
async fn a_volunteer_trains_for_bls_gets_cardiac_arrest_offers_and_loses_them_on_revocation_and_lapse(
    pool: PgPool,
) {
    let dir = TempDir::new();
    let key = signing_key(&dir.0);
    let url = database_url(&pool);
    let env = vec![
        ("KREKI_DATABASE__URL", url.clone()),
        ("KREKI_AUTH__SIGNING_KEY_FILE", key.display().to_string()),
    ];
    let server = Server::start(&env).await;
    // The bootstrap: the only accounts the CLI makes.
    cli_user(&url, "081100000001", "admin-rahasia", "Admin", "admin");
    cli_user(
        &url,
        "081100000002",
        "pelatih-rahasia",
        "Pelatih",
        "trainer",
    );
    let api = Api(JsonApi::new(&server.base));
    let admin = api.login("081100000001", "admin-rahasia").await;
    let trainer = api.login("081100000002", "pelatih-rahasia").await;

    // Everyone else signs up over HTTP: the volunteer under test, a second volunteer who holds BLS
    // throughout (showing each wave went out), and citizens who panic.
    let volunteer_id = api.register("081277770001", "Sari Wulandari").await;
    let control_id = api.register("081277770002", "Budi Santoso").await;
    for id in [&volunteer_id, &control_id] {
        let (status, body) = api
            .send(
                Method::PUT,
                &format!("/v1/admin/users/{id}/roles"),
                Some(&admin),
                Some(json!({"roles": ["citizen", "volunteer"]})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let volunteer = api.login("081277770001", "kata-sandi-aman").await;
    let control = api.login("081277770002", "kata-sandi-aman").await;
    let mut citizens = Vec::new();
    for n in 1..=4 {
        let phone = format!("08139999000{n}");
        api.register(&phone, &format!("Warga {n}")).await;
        citizens.push(api.login(&phone, "kata-sandi-aman").await);
    }

    // The trainer's BLS course; the volunteer enrolls and passes its quiz.
    let (status, course) = api
        .send(
            Method::POST,
            "/v1/lms/courses",
            Some(&trainer),
            Some(json!({
                "title": "Bantuan Hidup Dasar", "certification": "bls",
                "modules": [{"title": "RJP", "quizzes": [{"title": "Kuis RJP", "pass_mark_pct": 100, "questions": [
                    {"kind": "single", "prompt": "Kecepatan kompresi dada?", "options": [
                        {"text": "60/menit"}, {"text": "100-120/menit", "correct": true}]}
                ]}]}]
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{course}");
    let course_id = course["id"].as_str().expect("id");
    let quiz_id = course["modules"][0]["quizzes"][0]["id"]
        .as_str()
        .expect("quiz id");
    let (status, body) = api
        .send(
            Method::POST,
            &format!("/v1/lms/courses/{course_id}/enroll"),
            Some(&volunteer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, attempt) = api
        .send(
            Method::POST,
            &format!("/v1/lms/quizzes/{quiz_id}/attempts/start"),
            Some(&volunteer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{attempt}");
    let answers: Vec<Value> = attempt["questions"]
        .as_array()
        .expect("questions")
        .iter()
        .map(|q| json!({"question_id": q["id"], "selected": ["b"]}))
        .collect();
    let (status, result) = api
        .send(
            Method::POST,
            &format!("/v1/lms/quizzes/{quiz_id}/attempts"),
            Some(&volunteer),
            Some(json!({"attempt_id": attempt["attempt_id"], "answers": answers})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!(result["passed"], true, "{result}");
    let course_cert = result["certificate"]["id"]
        .as_str()
        .expect("a certificate")
        .to_owned();
    api.certificate_until(&volunteer, &course_cert, |c| {
        c["certification"] == "bls" && c["status"] == "valid"
    })
    .await;

    // The control volunteer's BLS card earned elsewhere, recorded by the trainer.
    let (status, body) = api
        .send(
            Method::POST,
            "/v1/lms/certificates",
            Some(&trainer),
            Some(json!({"user_id": control_id, "certification": "bls",
                        "issued_at": chrono::Utc::now() - chrono::Duration::days(30),
                        "holder_name": "Budi Santoso", "evidence": "Kartu PMI 001"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Both go on duty near Monas and say where they are.
    for (token, metres) in [(&volunteer, 100.0), (&control, 200.0)] {
        let (status, duty) = api
            .send(
                Method::PUT,
                "/v1/volunteers/me/duty",
                Some(token),
                Some(json!({"on_duty": true})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{duty}");
        assert!(
            duty["eligible_kinds"]
                .as_array()
                .expect("kinds")
                .contains(&json!("cardiac_arrest")),
            "{duty}"
        );
        let (lat, lng) = north(metres);
        let (status, body) = api
            .send(
                Method::POST,
                "/v1/volunteers/me/location",
                Some(token),
                Some(json!({"lat": lat, "lng": lng, "accuracy_m": 5})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }

    // 1. Certified by the course: a cardiac arrest reaches the volunteer.
    let alert = api.panic(&citizens[0], "cardiac_arrest").await;
    let offer = api
        .offer_for(&volunteer, &alert)
        .await
        .expect("the BLS-certified volunteer is offered the cardiac arrest");
    assert_eq!(offer["alert"]["kind"], "cardiac_arrest");
    assert_eq!(offer["status"], "pending");
    let distance = offer["distance_m"].as_f64().expect("distance");
    assert!((distance - 100.0).abs() < 5.0, "{distance}");
    api.decline(&volunteer, &offer).await;
    api.cancel(&citizens[0], &alert).await;
    api.settled(&[&volunteer, &control]).await;

    // 2. Revocation: the trainer revokes the course certificate.
    let (status, body) = api
        .send(
            Method::POST,
            &format!("/v1/lms/certificates/{course_cert}/revoke"),
            Some(&trainer),
            Some(json!({"reason": "Sertifikat dicabut"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    api.certificate_until(&volunteer, &course_cert, |c| !c["revoked_at"].is_null())
        .await;
    // The contract: a revocation reaches the matcher within a second.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let alert = api.panic(&citizens[1], "cardiac_arrest").await;
    let wave = api
        .offer_for(&control, &alert)
        .await
        .expect("the first wave went out to the control volunteer");
    assert!(
        api.offers(&volunteer)
            .await
            .iter()
            .all(|o| o["alert"]["id"] != alert.as_str()),
        "a revoked certificate still brought a cardiac-arrest offer"
    );
    // ...even once the control declines and the next wave goes out.
    api.decline(&control, &wave).await;
    api.cancel(&citizens[1], &alert).await;
    assert!(api.offers(&volunteer).await.is_empty());
    api.settled(&[&volunteer, &control]).await;
    // An `other` alert still reaches them.
    let alert = api.panic(&citizens[1], "other").await;
    let offer = api
        .offer_for(&volunteer, &alert)
        .await
        .expect("an `other` alert still reaches the revoked volunteer");
    assert_eq!(offer["alert"]["kind"], "other");
    api.decline(&volunteer, &offer).await;
    api.cancel(&citizens[1], &alert).await;
    api.settled(&[&volunteer, &control]).await;

    // 3. Lapse: a BLS card earned elsewhere, valid a few seconds more, makes them eligible again.
    let expires_at = chrono::Utc::now() + chrono::Duration::seconds(5);
    let (status, card) = api
        .send(
            Method::POST,
            "/v1/lms/certificates",
            Some(&trainer),
            Some(json!({"user_id": volunteer_id, "certification": "bls",
                        "issued_at": chrono::Utc::now() - chrono::Duration::days(700),
                        "expires_at": expires_at, "evidence": "Kartu PMI 002"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{card}");
    let card_id = card["id"].as_str().expect("an id").to_owned();
    api.certificate_until(&volunteer, &card_id, |c| c["status"] == "valid")
        .await;
    // The issue reaches the matcher within a second.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let alert = api.panic(&citizens[2], "cardiac_arrest").await;
    let offer = api
        .offer_for(&volunteer, &alert)
        .await
        .expect("the recorded BLS card brings cardiac-arrest offers");
    assert!(
        chrono::Utc::now() < expires_at,
        "the card lapsed before the offer could be checked; the test is too slow"
    );
    api.decline(&volunteer, &offer).await;
    api.cancel(&citizens[2], &alert).await;
    api.settled(&[&volunteer, &control]).await;

    // The card lapses; the volunteer sees it expired.
    api.certificate_until(&volunteer, &card_id, |c| c["status"] == "expired")
        .await;
    // The sweep acts within a second of the expiry, and the matcher within a second of that.
    let acted_by = expires_at + chrono::Duration::seconds(2);
    if let Ok(left) = (acted_by - chrono::Utc::now()).to_std() {
        tokio::time::sleep(left).await;
    }
    let alert = api.panic(&citizens[3], "cardiac_arrest").await;
    let wave = api
        .offer_for(&control, &alert)
        .await
        .expect("the first wave went out to the control volunteer");
    assert!(
        api.offers(&volunteer)
            .await
            .iter()
            .all(|o| o["alert"]["id"] != alert.as_str()),
        "a lapsed certificate still brought a cardiac-arrest offer"
    );
    api.decline(&control, &wave).await;
    api.cancel(&citizens[3], &alert).await;
    assert!(api.offers(&volunteer).await.is_empty());
    api.settled(&[&volunteer, &control]).await;
    // And `other` still reaches them.
    let alert = api.panic(&citizens[3], "other").await;
    let offer = api
        .offer_for(&volunteer, &alert)
        .await
        .expect("an `other` alert still reaches the lapsed volunteer");
    assert_eq!(offer["alert"]["kind"], "other");
}
