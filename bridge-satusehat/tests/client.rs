//! The SATUSEHAT client against the fake SATUSEHAT: token cache, retries, back-off, error shapes.

use std::sync::Arc;
use std::time::Duration;

use kreki_bridge_satusehat::client::{ClientSettings, SatusehatClient, SatusehatError};
use kreki_bridge_satusehat::domain::Nik;
use kreki_bridge_satusehat::fake::{self, FakeConfig, FakeSatusehat};
use secrecy::SecretString;
use serde_json::json;

fn settings(fake: &FakeSatusehat) -> ClientSettings {
    ClientSettings {
        base_url: fake.base_url(),
        org_id: fake.config().org_id.clone(),
        client_id: SecretString::from(fake.config().client_id.clone()),
        client_secret: SecretString::from(fake.config().client_secret.clone()),
        user_agent: "kreki-test/1".to_owned(),
        request_timeout: Duration::from_secs(2),
        renew_before: Duration::from_secs(60),
        rate_limit_backoff: Duration::from_secs(60),
    }
}

async fn fake_and_client(config: FakeConfig) -> (FakeSatusehat, Arc<SatusehatClient>) {
    let fake = FakeSatusehat::start(config).await.expect("fake starts");
    let client = SatusehatClient::new(settings(&fake)).expect("client builds");
    (fake, Arc::new(client))
}

fn nik(text: &str) -> Nik {
    Nik::parse(text).expect("valid NIK")
}

#[tokio::test]
async fn fifty_concurrent_callers_cause_one_token_request() {
    let (fake, client) = fake_and_client(FakeConfig::default()).await;
    fake.faults(|faults| faults.delay = Duration::from_millis(50));
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.search_practitioners(&nik(fake::SEED_NIK_ONE)).await })
        })
        .collect();
    for call in calls {
        let matches = call.await.expect("task runs").expect("search succeeds");
        assert_eq!(matches.len(), 1);
        assert_eq!(matches[0].ihs_number.as_deref(), Some(fake::SEED_IHS_ONE));
    }
    assert_eq!(fake.token_requests(), 1);
    assert!(
        fake.requests()
            .iter()
            .all(|request| request.user_agent.as_deref() == Some("kreki-test/1")),
        "every request carries the User-Agent"
    );
}

#[tokio::test]
async fn a_gateway_401_renews_the_token_and_retries_once() {
    let (fake, client) = fake_and_client(FakeConfig::default()).await;
    client.access_token().await.expect("first token");
    fake.faults(|faults| faults.fhir_401 = 1);
    let matches = client
        .search_practitioners(&nik(fake::SEED_NIK_ONE))
        .await
        .expect("succeeds after one retry");
    assert_eq!(matches.len(), 1);
    assert_eq!(fake.token_requests(), 2);
    let statuses: Vec<u16> = fake
        .requests()
        .iter()
        .filter(|request| request.path.ends_with("/Practitioner"))
        .map(|request| request.status)
        .collect();
    assert_eq!(statuses, vec![401, 200]);

    // Two 401s in a row: retried once only, then the fault is reported.
    fake.faults(|faults| faults.fhir_401 = 2);
    let error = client
        .search_practitioners(&nik(fake::SEED_NIK_ONE))
        .await
        .expect_err("second 401 is reported");
    assert!(
        matches!(error, SatusehatError::Fault { status: 401, .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn an_expired_token_is_renewed() {
    let (fake, client) = fake_and_client(FakeConfig::default()).await;
    client
        .search_patients(&nik(fake::SEED_PATIENT_NIK))
        .await
        .expect("works");
    fake.expire_tokens();
    let patients = client
        .search_patients(&nik(fake::SEED_PATIENT_NIK))
        .await
        .expect("works after renewal");
    assert_eq!(patients, vec![fake::SEED_PATIENT_IHS.to_owned()]);
    assert_eq!(fake.token_requests(), 2);
}

#[tokio::test]
async fn the_token_is_renewed_sixty_seconds_before_it_expires() {
    // A token valid for 61 s is due for renewal after 1 s.
    let (fake, client) = fake_and_client(FakeConfig {
        token_ttl_s: 61,
        ..FakeConfig::default()
    })
    .await;
    client.access_token().await.expect("token");
    client.access_token().await.expect("cached");
    assert_eq!(fake.token_requests(), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    client.access_token().await.expect("renewed");
    assert_eq!(fake.token_requests(), 2);
}

#[tokio::test]
async fn a_429_without_retry_after_silences_the_client_for_sixty_seconds() {
    let (fake, client) = fake_and_client(FakeConfig::default()).await;
    fake.faults(|faults| faults.token_429 = 1);
    let error = client
        .search_practitioners(&nik(fake::SEED_NIK_ONE))
        .await
        .expect_err("rate limited");
    match error {
        SatusehatError::RateLimited { retry_after_s } => {
            assert!(retry_after_s >= 59, "{retry_after_s}")
        }
        other => panic!("not a rate limit: {other:?}"),
    }
    let sent = fake.requests().len();
    for _ in 0..5 {
        let error = client
            .search_practitioners(&nik(fake::SEED_NIK_ONE))
            .await
            .expect_err("still backing off");
        assert!(
            matches!(error, SatusehatError::RateLimited { .. }),
            "{error:?}"
        );
    }
    assert_eq!(
        fake.requests().len(),
        sent,
        "nothing is sent during the back-off"
    );
}

#[tokio::test]
async fn the_fake_locks_out_a_client_that_hammers_the_token_endpoint() {
    let fake = FakeSatusehat::start(FakeConfig {
        token_burst: 3,
        ..FakeConfig::default()
    })
    .await
    .expect("fake starts");
    // Fresh clients (no shared cache) asking again and again.
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let client = SatusehatClient::new(settings(&fake)).expect("client");
        statuses.push(client.access_token().await.map(drop));
    }
    assert!(statuses[..3].iter().all(Result::is_ok));
    assert!(
        statuses[3..]
            .iter()
            .all(|status| matches!(status, Err(SatusehatError::RateLimited { .. })))
    );
}

#[tokio::test]
async fn wrong_credentials_missing_user_agent_and_outages_have_typed_errors() {
    let fake = FakeSatusehat::start(FakeConfig::default())
        .await
        .expect("fake");
    let mut wrong = settings(&fake);
    wrong.client_secret = SecretString::from("nope".to_owned());
    let error = SatusehatClient::new(wrong)
        .expect("client")
        .access_token()
        .await
        .expect_err("refused");
    assert!(
        matches!(error, SatusehatError::Fault { status: 401, .. }),
        "{error:?}"
    );

    let raw = reqwest::Client::builder().build().expect("client");
    let response = raw
        .post(format!(
            "{}/oauth2/v1/accesstoken?grant_type=client_credentials",
            fake.base_url()
        ))
        .form(&[
            ("client_id", "kreki-fake-client"),
            ("client_secret", "kreki-fake-secret"),
        ])
        .send()
        .await
        .expect("answers");
    assert_eq!(
        response.status(),
        400,
        "no User-Agent breaks the token call"
    );

    let client = SatusehatClient::new(settings(&fake)).expect("client");
    fake.faults(|faults| faults.fhir_5xx = 1);
    let error = client
        .search_practitioners(&nik(fake::SEED_NIK_ONE))
        .await
        .expect_err("502");
    assert!(
        matches!(error, SatusehatError::Server { status: 502, .. }),
        "{error:?}"
    );
    assert!(error.is_transient());
}

#[tokio::test]
async fn search_results_are_lists_zero_one_or_several() {
    let (_fake, client) = fake_and_client(FakeConfig::default()).await;
    assert_eq!(
        client
            .search_practitioners(&nik(fake::SEED_NIK_NONE))
            .await
            .expect("ok")
            .len(),
        0
    );
    assert_eq!(
        client
            .search_practitioners(&nik(fake::SEED_NIK_ONE))
            .await
            .expect("ok")
            .len(),
        1
    );
    let several = client
        .search_practitioners(&nik(fake::SEED_NIK_SEVERAL))
        .await
        .expect("ok");
    assert!(several.len() > 1);
    assert!(
        several
            .iter()
            .all(|m| m.name.as_deref().is_some_and(|name| name.contains('*'))),
        "names are masked"
    );
}

fn encounter(org: &str, alert: &str, start: &str) -> serde_json::Value {
    json!({
        "resourceType": "Encounter",
        "identifier": [{"system": format!("http://sys-ids.kemkes.go.id/encounter/{org}"), "value": alert}],
        "status": "arrived",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "EMER", "display": "emergency"},
        "subject": {"display": "Unidentified patient"},
        "participant": [{"type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "ATND", "display": "attender"}]}],
                          "individual": {"reference": format!("Practitioner/{}", fake::SEED_IHS_ONE)}}],
        "period": {"start": start},
        "location": [{"location": {"reference": "Location/abc"}}],
        "serviceProvider": {"reference": format!("Organization/{org}")}
    })
}

#[tokio::test]
async fn encounter_rules_are_enforced() {
    let (fake, client) = fake_and_client(FakeConfig::default()).await;
    let org = fake.config().org_id.clone();
    let id = client
        .create_encounter(&encounter(&org, "a-1", "2026-11-21T05:00:00Z"))
        .await
        .expect("a valid Encounter is created");
    assert_eq!(
        client.find_encounters("a-1").await.expect("found"),
        vec![id.clone()]
    );

    let mut wrong_org = encounter("99999999", "a-2", "2026-11-21T05:00:00Z");
    wrong_org["serviceProvider"] = json!({"reference": format!("Organization/{org}")});
    let error = client
        .create_encounter(&wrong_org)
        .await
        .expect_err("rule 10117");
    assert_eq!(error.rules(), vec!["10117"], "{error:?}");

    let local_time = client
        .create_encounter(&encounter(&org, "a-3", "2026-11-21T12:00:00+07:00"))
        .await
        .expect_err("not UTC");
    assert!(matches!(
        local_time,
        SatusehatError::OperationOutcome { status: 400, .. }
    ));

    let mut no_attender = encounter(&org, "a-4", "2026-11-21T05:00:00Z");
    no_attender["participant"][0]["type"][0]["coding"][0]["code"] = json!("PPRF");
    assert!(client.create_encounter(&no_attender).await.is_err());

    let mut class_as_concept = encounter(&org, "a-5", "2026-11-21T05:00:00Z");
    class_as_concept["class"] = json!([{"coding": [{"code": "EMER"}]}]);
    assert!(client.create_encounter(&class_as_concept).await.is_err());

    let mut finished = encounter(&org, "a-1", "2026-11-21T05:00:00Z");
    finished["id"] = json!(id);
    finished["status"] = json!("finished");
    client
        .update_encounter(&id, &finished)
        .await
        .expect("updated");
    assert_eq!(
        fake.encounters_with_identifier("a-1")[0]["status"],
        "finished"
    );
    assert_eq!(fake.encounters().len(), 1);
}

#[tokio::test]
async fn transport_errors_do_not_carry_the_nik() {
    let (fake, client) = fake_and_client(FakeConfig::default()).await;
    client.access_token().await.expect("token cached");
    // SATUSEHAT goes away between the token and the search, whose URL carries the NIK.
    drop(fake);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let error = client
        .search_practitioners(&nik(fake::SEED_NIK_ONE))
        .await
        .expect_err("nobody answers");
    assert!(matches!(error, SatusehatError::Transport(_)), "{error:?}");
    assert!(
        !error.to_string().contains(&fake::SEED_NIK_ONE[4..]),
        "{error}"
    );
}
