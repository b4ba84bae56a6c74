//! Certificates earned elsewhere, revocation and public verification (a module of the `api` test
//! binary).

use chrono::Utc;
use http::StatusCode;
use kreki_auth::Role;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::problem_fields;
use crate::support::{self, TestApp};

/// Records a certificate earned elsewhere, as a trainer, and answers it.
pub(crate) async fn record(app: &TestApp, trainer: &support::Person, body: Value) -> Value {
    let (status, certificate) = app
        .call("POST", "/v1/lms/certificates", Some(trainer), Some(body))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{certificate}");
    certificate
}

#[sqlx::test(migrations = "../migrations")]
async fn trainers_record_certificates_earned_elsewhere(pool: PgPool) {
    let app = TestApp::new(pool);
    let trainer = app.person("Pelatih", &[Role::Trainer]);
    let volunteer = app.person("Budi", &[Role::Volunteer]);
    let issued_at = Utc::now() - chrono::Duration::days(10);
    let body = json!({
        "user_id": volunteer.id, "certification": "bls", "issued_at": issued_at,
        "evidence": "Kartu BLS PMI No. 12345", "holder_name": "Budi Santoso"
    });
    let (status, _) = app
        .call(
            "POST",
            "/v1/lms/certificates",
            Some(&volunteer),
            Some(body.clone()),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "volunteers cannot certify themselves"
    );

    let mut unknown = body.clone();
    unknown["certification"] = "astronaut".into();
    unknown["issued_at"] = json!(Utc::now() + chrono::Duration::days(2));
    let (status, problem) = app
        .call(
            "POST",
            "/v1/lms/certificates",
            Some(&trainer),
            Some(unknown),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem_fields(&problem), vec!["issued_at", "certification"]);

    // Someone with no KREKI ID account cannot be certified: the field says which.
    let mut stranger = body.clone();
    stranger["user_id"] = json!(uuid::Uuid::now_v7());
    stranger
        .as_object_mut()
        .expect("object")
        .remove("holder_name");
    let (status, problem) = app
        .call(
            "POST",
            "/v1/lms/certificates",
            Some(&trainer),
            Some(stranger),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem_fields(&problem), vec!["user_id"]);

    app.recorder.clear();
    let certificate = record(&app, &trainer, body).await;
    assert_eq!(certificate["source"], "external");
    assert_eq!(certificate["evidence"], "Kartu BLS PMI No. 12345");
    assert_eq!(
        certificate["holder_name"], "Budi Santoso",
        "a given name is printed"
    );
    assert_eq!(app.recorder.changes_of(volunteer.id), 1);
    assert_eq!(
        app.service.valid_certifications(volunteer.id).await.ok(),
        Some(vec!["bls".to_owned()])
    );
}

/// Exactly the body docs/API.md names (`user_id`, `certification`, `issued_at`, `expires_at`,
/// `evidence`) for someone who never opened the LMS: the name comes from KREKI ID.
#[sqlx::test(migrations = "../migrations")]
async fn the_contract_body_records_a_certificate_for_someone_new_to_the_lms(pool: PgPool) {
    let app = TestApp::new(pool);
    let trainer = app.person("Pelatih", &[Role::Trainer]);
    let newcomer = app.person("Siti Rahayu", &[Role::Volunteer]);
    let issued_at = Utc::now() - chrono::Duration::days(30);
    let expires_at = Utc::now() + chrono::Duration::days(700);
    let (status, certificate) = app
        .call(
            "POST",
            "/v1/lms/certificates",
            Some(&trainer),
            Some(json!({
                "user_id": newcomer.id, "certification": "bls", "issued_at": issued_at,
                "expires_at": expires_at, "evidence": "Sertifikat BLS RS Cipto No. 88/2026"
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{certificate}");
    assert_eq!(certificate["holder_name"], "Siti Rahayu");
    assert_eq!(certificate["status"], "valid");
    let code = certificate["code"].as_str().unwrap_or_default();
    let (status, verified) = app
        .call(
            "GET",
            &format!("/v1/lms/certificates/verify/{code}"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(verified["holder_name"], "Siti Rahayu");
    assert_eq!(verified["valid"], true);
}

#[sqlx::test(migrations = "../migrations")]
async fn revocation_removes_eligibility_at_once(pool: PgPool) {
    let app = TestApp::new(pool);
    let trainer = app.person("Pelatih", &[Role::Trainer]);
    let volunteer = app.person("Budi", &[Role::Volunteer]);
    let certificate = record(
        &app,
        &trainer,
        json!({"user_id": volunteer.id, "certification": "bls", "issued_at": Utc::now() - chrono::Duration::days(1), "holder_name": "Budi"}),
    )
    .await;
    let code = certificate["code"].as_str().unwrap_or_default();
    // The trainer finds the certificate among the volunteer's.
    let listing = format!("/v1/lms/users/{}/certificates", volunteer.id);
    let (status, _) = app.call("GET", &listing, Some(&volunteer), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, listed) = app.call("GET", &listing, Some(&trainer), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed[0]["code"], code);
    let id = listed[0]["id"].as_str().unwrap_or_default();
    let path = format!("/v1/lms/certificates/{id}/revoke");
    app.recorder.clear();

    let (status, _) = app
        .call(
            "POST",
            &path,
            Some(&volunteer),
            Some(json!({"reason": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, problem) = app
        .call("POST", &path, Some(&trainer), Some(json!({"reason": "  "})))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem_fields(&problem), vec!["reason"]);
    assert_eq!(app.recorder.changes_of(volunteer.id), 0);

    let (status, revoked) = app
        .call(
            "POST",
            &path,
            Some(&trainer),
            Some(json!({"reason": "Kartu palsu"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert_eq!(revoked["status"], "revoked");
    assert_eq!(revoked["revoked_reason"], "Kartu palsu");
    assert_eq!(app.recorder.changes_of(volunteer.id), 1);
    assert_eq!(
        app.service.valid_certifications(volunteer.id).await.ok(),
        Some(vec![])
    );
    assert!(
        app.service
            .all_valid_certifications()
            .await
            .expect("all")
            .is_empty()
    );

    let (status, _) = app
        .call(
            "POST",
            &path,
            Some(&trainer),
            Some(json!({"reason": "lagi"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let unknown = uuid::Uuid::now_v7();
    let (status, _) = app
        .call(
            "POST",
            &format!("/v1/lms/certificates/{unknown}/revoke"),
            Some(&trainer),
            Some(json!({"reason": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, verify) = app
        .call(
            "GET",
            &format!("/v1/lms/certificates/verify/{code}"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(verify["valid"], false);
    assert_eq!(verify["status"], "revoked");
    assert!(
        !verify.to_string().contains("Kartu palsu"),
        "the reason stays private"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn verify_tells_valid_expired_revoked_and_unknown_apart(pool: PgPool) {
    let app = TestApp::new(pool);
    let trainer = app.person("Pelatih", &[Role::Trainer]);
    let volunteer = app.person("Budi", &[Role::Volunteer]);
    let now = Utc::now();
    let valid = record(
        &app,
        &trainer,
        json!({"user_id": volunteer.id, "certification": "bls", "issued_at": now - chrono::Duration::days(1),
               "holder_name": "Budi <Santoso>", "evidence": "rahasia"}),
    )
    .await;
    let expired = record(
        &app,
        &trainer,
        json!({"user_id": volunteer.id, "certification": "first_aid", "issued_at": now - chrono::Duration::days(800),
               "expires_at": now - chrono::Duration::days(70), "holder_name": "Budi"}),
    )
    .await;
    let code = valid["code"].as_str().unwrap_or_default();
    let (status, body) = app
        .call(
            "GET",
            &format!("/v1/lms/certificates/verify/{code}"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["valid"], true);
    assert_eq!(body["status"], "valid");
    assert_eq!(body["certification"], "bls");
    assert_eq!(body["holder_name"], "Budi <Santoso>");
    let mut keys: Vec<&String> = body
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    keys.sort();
    assert_eq!(
        keys,
        [
            "certification",
            "certification_name",
            "expires_at",
            "holder_name",
            "issued_at",
            "status",
            "valid"
        ]
    );
    // Typed from paper: lower case, spaces, O for 0 and I for 1.
    let typed = code
        .to_lowercase()
        .replace('0', "o")
        .replace('1', "i")
        .replace('-', " - ");
    let (status, body) = app
        .call(
            "GET",
            &format!("/v1/lms/certificates/verify/{}", typed.replace(' ', "%20")),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{typed}");
    assert_eq!(body["valid"], true);

    let code = expired["code"].as_str().unwrap_or_default();
    let (status, body) = app
        .call(
            "GET",
            &format!("/v1/lms/certificates/verify/{code}"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["valid"], false);
    assert_eq!(body["status"], "expired");

    let (status, body) = app
        .call(
            "GET",
            "/v1/lms/certificates/verify/AAAAAA-BBBBBB-CCCCCC-DDDDDD",
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["status"], 404);

    // Opened in a browser, the verify link answers a page.
    let (status, _, headers, html) = app
        .call_html(&format!(
            "/v1/lms/certificates/verify/{}",
            valid["code"].as_str().unwrap_or_default()
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers[http::header::CONTENT_TYPE]
            .to_str()
            .unwrap_or_default()
            .starts_with("text/html")
    );
    assert!(
        html.contains("SAH / VALID") && html.contains("Budi &lt;Santoso&gt;"),
        "{html}"
    );
    let (status, _, _, html) = app
        .call_html("/v1/lms/certificates/verify/AAAAAA-BBBBBB-CCCCCC-DDDDDD")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains("Unknown code"));

    // The printable page: for the holder and trainers, escaped, with the verify link.
    let id = valid["id"].as_str().unwrap_or_default();
    let (status, _, headers, html) = app
        .call_full(
            "GET",
            &format!("/v1/lms/certificates/{id}/print"),
            Some(&volunteer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers[http::header::CONTENT_TYPE]
            .to_str()
            .unwrap_or_default()
            .starts_with("text/html")
    );
    let code = valid["code"].as_str().unwrap_or_default();
    assert!(html.contains(&format!(
        "https://kreki.example.id/v1/lms/certificates/verify/{code}"
    )));
    assert!(html.contains("Budi &lt;Santoso&gt;") && !html.contains("<Santoso>"));
    assert!(
        html.contains("<svg"),
        "the QR code of the verify link is printed"
    );
    let stranger = app.person("Orang lain", &[Role::Volunteer]);
    let (status, _) = app
        .call(
            "GET",
            &format!("/v1/lms/certificates/{id}/print"),
            Some(&stranger),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .call(
            "GET",
            &format!("/v1/lms/certificates/{id}/print"),
            Some(&trainer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}
