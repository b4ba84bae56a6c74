//! Shared helpers of the bridge's integration tests: a bridge over a fresh database and a fake
//! SATUSEHAT, a hand-fed incident feed, a recording sink, and token minting.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use kreki_auth::keys::{KeyRing, SigningKey, generate_pem};
use kreki_auth::token::Issuer;
use kreki_auth::{Role, Roles, TokenVerifier, UserId};
use kreki_bridge_satusehat::client::{ClientSettings, SatusehatClient};
use kreki_bridge_satusehat::domain::{
    BoxFuture, IncidentEvent, IncidentFeed, IncidentStatus, PractitionerStatusSink, Responder,
};
use kreki_bridge_satusehat::fake::{FakeConfig, FakeSatusehat};
use kreki_bridge_satusehat::{BridgeSettings, BridgeState};
use secrecy::SecretString;
use sqlx::PgPool;
use uuid::Uuid;

/// Records every verification result.
#[derive(Default)]
pub struct RecordingSink(pub Mutex<Vec<(Uuid, Option<String>)>>);

impl PractitionerStatusSink for RecordingSink {
    fn set_verified(&self, user: Uuid, ihs_number: Option<String>) {
        self.0
            .lock()
            .expect("not poisoned")
            .push((user, ihs_number));
    }
}

impl RecordingSink {
    pub fn results(&self) -> Vec<(Uuid, Option<String>)> {
        self.0.lock().expect("not poisoned").clone()
    }
}

/// A feed tests push events into; it can be switched to fail.
#[derive(Default)]
pub struct TestFeed {
    events: Mutex<Vec<IncidentEvent>>,
    pub failing: Mutex<bool>,
}

impl TestFeed {
    pub fn push(&self, mut event: IncidentEvent) -> i64 {
        let mut events = self.events.lock().expect("not poisoned");
        event.seq = i64::try_from(events.len()).expect("small") + 1;
        let seq = event.seq;
        events.push(event);
        seq
    }
}

impl IncidentFeed for TestFeed {
    fn next_batch(
        &self,
        after: i64,
        limit: u32,
    ) -> BoxFuture<'_, anyhow::Result<Vec<IncidentEvent>>> {
        let result = if *self.failing.lock().expect("not poisoned") {
            Err(anyhow::anyhow!("dispatch's event stream is unreachable"))
        } else {
            Ok(self
                .events
                .lock()
                .expect("not poisoned")
                .iter()
                .filter(|event| event.seq > after)
                .take(limit as usize)
                .cloned()
                .collect())
        };
        Box::pin(std::future::ready(result))
    }
}

/// Everything a test needs.
pub struct Harness {
    pub state: BridgeState,
    pub fake: FakeSatusehat,
    pub sink: Arc<RecordingSink>,
    pub feed: Arc<TestFeed>,
    pub issuer: Issuer,
    pub addr: SocketAddr,
    pub http: reqwest::Client,
}

/// Options of [`harness`].
pub struct Options {
    /// Org id the client sends (the fake's own unless changed).
    pub client_org: Option<String>,
    /// Per-request timeout of the client.
    pub timeout: Duration,
    /// Attempts before an Encounter change fails for good.
    pub max_attempts: u32,
    /// Talk to SATUSEHAT at all.
    pub with_client: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            client_org: None,
            timeout: Duration::from_secs(2),
            max_attempts: 5,
            with_client: true,
        }
    }
}

pub async fn harness(pool: PgPool, options: Options) -> Harness {
    let fake = FakeSatusehat::start(FakeConfig::default())
        .await
        .expect("fake starts");
    let pem = generate_pem().expect("key");
    let ring = Arc::new(KeyRing::new(
        Some(SigningKey::from_pem(&pem).expect("pem")),
        Vec::new(),
    ));
    let verifier = TokenVerifier::with_keys("kreki".to_owned(), &ring.public_keys());
    let issuer = Issuer::new(ring, "kreki".to_owned(), Duration::from_secs(900));
    let client = options.with_client.then(|| {
        Arc::new(
            SatusehatClient::new(ClientSettings {
                base_url: fake.base_url(),
                org_id: options
                    .client_org
                    .clone()
                    .unwrap_or_else(|| fake.config().org_id.clone()),
                client_id: SecretString::from(fake.config().client_id.clone()),
                client_secret: SecretString::from(fake.config().client_secret.clone()),
                user_agent: "kreki-test/1".to_owned(),
                request_timeout: options.timeout,
                renew_before: Duration::from_secs(60),
                rate_limit_backoff: Duration::from_secs(60),
            })
            .expect("client"),
        )
    });
    let sink = Arc::new(RecordingSink::default());
    let state = BridgeState {
        pii: kreki_platform::pii::Pii::dev(),
        pool,
        client,
        sink: sink.clone(),
        verifier,
        settings: Arc::new(BridgeSettings {
            location_id: "loc-post-1".to_owned(),
            retry_base: Duration::from_millis(10),
            retry_max: Duration::from_millis(50),
            max_attempts: options.max_attempts,
            poll: Duration::from_millis(20),
            request_timeout: options.timeout,
            fhir_base_url: None,
        }),
        fake: None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let addr = listener.local_addr().expect("addr");
    let (router, _) = kreki_bridge_satusehat::router(state.clone()).split_for_parts();
    tokio::spawn(async move { axum::serve(listener, router).await.expect("serves") });
    Harness {
        state,
        fake,
        sink,
        feed: Arc::new(TestFeed::default()),
        issuer,
        addr,
        http: reqwest::Client::new(),
    }
}

impl Harness {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn user_token(&self, id: Uuid, roles: &[Role]) -> String {
        self.issuer
            .for_user(UserId(id), &Roles::new(roles.iter().copied()), "Tester")
            .expect("signs")
    }

    pub fn client_token(&self, scope: &str) -> String {
        self.issuer.for_client("rs-tarakan", scope).expect("signs")
    }

    /// Applies everything in the feed.
    pub async fn pump(&self) {
        while kreki_bridge_satusehat::sync::pump_once(&self.state, self.feed.as_ref())
            .await
            .expect("feed applies")
            > 0
        {}
    }

    /// Works the outbox until nothing is due, waiting out short retry delays (at most ~`rounds`).
    pub async fn drain_outbox(&self, rounds: usize) {
        for _ in 0..rounds {
            kreki_bridge_satusehat::sync::work_once(&self.state)
                .await
                .expect("outbox works");
            tokio::time::sleep(Duration::from_millis(60)).await;
        }
    }
}

/// An incident event (seq is set by the feed).
pub fn event(
    alert_id: Uuid,
    status: IncidentStatus,
    occurred_at: DateTime<Utc>,
    patient_nik: Option<&str>,
    responders: Vec<Responder>,
) -> IncidentEvent {
    IncidentEvent {
        seq: 0,
        alert_id,
        kind: "cardiac_arrest".to_owned(),
        status,
        location: (-6.2, 106.816),
        occurred_at,
        changed_at: Utc::now(),
        patient_nik: patient_nik.map(|nik| kreki_platform::pii::Nik::parse(nik).expect("a NIK")),
        responders,
        drill: false,
    }
}

pub fn responder(
    volunteer_id: Uuid,
    assignment_id: Uuid,
    status: &str,
    ihs: Option<&str>,
) -> Responder {
    Responder {
        volunteer_id,
        assignment_id,
        status: status.to_owned(),
        ihs_number: ihs.map(str::to_owned),
    }
}
