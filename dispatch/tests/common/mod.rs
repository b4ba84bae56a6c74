//! Test harness: a dispatch service over a fresh database, its router, tokens for any role, and a
//! recording notifier standing in for the realtime transport.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http::{Method, Request, StatusCode};
use kreki_auth::keys::{KeyRing, SigningKey};
use kreki_auth::token::Issuer;
use kreki_auth::{Role, Roles, TokenVerifier, UserId};
use kreki_dispatch::config::DispatchConfig;
use kreki_dispatch::service::{Ports, Workers};
use kreki_dispatch::{DispatchService, DispatchState, PgCertificationSource, RecordingNotifier};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use uuid::Uuid;

const ISSUER: &str = "https://id.kreki.test";

/// A person with a token.
#[derive(Debug, Clone)]
pub struct Person {
    /// Account id.
    pub id: Uuid,
    /// Display name (in the token).
    pub name: String,
    /// Access token.
    pub token: String,
}

/// One dispatch instance under test.
pub struct TestApp {
    /// The test's database.
    pub pool: PgPool,
    /// The service.
    pub service: Arc<DispatchService>,
    /// Everything published.
    pub notifier: Arc<RecordingNotifier>,
    /// The HTTP routes.
    pub router: axum::Router,
    /// Stops the workers (on drop too).
    pub shutdown: CancellationToken,
    workers: Option<Workers>,
    issuer: Issuer,
}

impl TestApp {
    /// A prepared service (kinds seeded, matcher built) with no dispatcher running yet.
    pub async fn new(pool: PgPool) -> Self {
        Self::with_config(pool, DispatchConfig::default()).await
    }

    /// As [`TestApp::new`] with `config`.
    pub async fn with_config(pool: PgPool, config: DispatchConfig) -> Self {
        let pem = kreki_auth::keys::generate_pem().expect("a key");
        let key = SigningKey::from_pem(&pem).expect("a signing key");
        let keys = Arc::new(KeyRing::new(Some(key), Vec::new()));
        let verifier = TokenVerifier::with_keys(ISSUER.to_owned(), &keys.public_keys());
        let issuer = Issuer::new(keys, ISSUER.to_owned(), Duration::from_secs(900));
        let notifier = Arc::new(RecordingNotifier::default());
        let (service, workers) = DispatchService::new(
            pool.clone(),
            config,
            Ports {
                notifier: notifier.clone(),
                certs: Arc::new(PgCertificationSource::new(pool.clone())),
                pii: kreki_platform::pii::Pii::dev(),
            },
        );
        service.prepare().await.expect("dispatch prepares");
        let router = kreki_dispatch::routes::router(DispatchState {
            service: service.clone(),
            verifier,
        });
        let (router, _) = router.split_for_parts();
        Self {
            pool,
            service,
            notifier,
            router,
            shutdown: CancellationToken::new(),
            workers: Some(workers),
            issuer,
        }
    }

    /// Starts the dispatcher and history writer.
    pub fn start_workers(&mut self) {
        let workers = self.workers.take().expect("workers start once");
        kreki_dispatch::worker::spawn(self.service.clone(), workers, self.shutdown.clone());
    }

    /// A person with `roles` and a valid token.
    pub fn person(&self, name: &str, roles: &[Role]) -> Person {
        let id = Uuid::now_v7();
        let token = self
            .issuer
            .for_user(UserId(id), &Roles::new(roles.iter().copied()), name)
            .expect("a token");
        Person {
            id,
            name: name.to_owned(),
            token,
        }
    }

    /// A person with `roles` whose token carries a trust level (as KREKI ID issues them).
    pub fn person_trusted(&self, name: &str, roles: &[Role], trust: kreki_auth::Trust) -> Person {
        let id = Uuid::now_v7();
        let token = self
            .issuer
            .for_person(UserId(id), &Roles::new(roles.iter().copied()), name, trust)
            .expect("a token");
        Person {
            id,
            name: name.to_owned(),
            token,
        }
    }

    /// A citizen.
    pub fn citizen(&self, name: &str) -> Person {
        self.person(name, &[Role::Citizen])
    }

    /// A volunteer on duty at (lat, lng) holding `certs`.
    pub async fn volunteer_at(&self, name: &str, lat: f64, lng: f64, certs: &[&str]) -> Person {
        let person = self.person(name, &[Role::Citizen, Role::Volunteer]);
        for cert in certs {
            kreki_dispatch::eligibility::grant(&self.pool, person.id, cert, None)
                .await
                .expect("grant");
        }
        let (status, body) = self
            .call(
                Method::PUT,
                "/v1/volunteers/me/duty",
                Some(&person),
                Some(json!({"on_duty": true})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, body) = self
            .call(
                Method::POST,
                "/v1/volunteers/me/location",
                Some(&person),
                Some(json!({"lat": lat, "lng": lng, "accuracy_m": 5})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        person
    }

    /// Sends a request; answers the status and the JSON body (Null when empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        who: Option<&Person>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call_with(method, path, who, body, &[]).await
    }

    /// As [`TestApp::call`] with extra headers.
    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        who: Option<&Person>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(who) = who {
            request = request.header("authorization", format!("Bearer {}", who.token));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = match body {
            Some(body) => request
                .header("content-type", "application/json")
                .body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        }
        .expect("a request");
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("an answer");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("a body");
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        (status, value)
    }

    /// `POST /v1/alerts` with a key.
    pub async fn panic(&self, who: &Person, key: &str, body: Value) -> (StatusCode, Value) {
        self.call_with(
            Method::POST,
            "/v1/alerts",
            Some(who),
            Some(body),
            &[("idempotency-key", key)],
        )
        .await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A point `north_m` metres north and `east_m` metres east of (lat, lng), good to a few
/// centimetres at these distances.
pub fn offset(lat: f64, lng: f64, north_m: f64, east_m: f64) -> (f64, f64) {
    let dlat = north_m / 110_574.0;
    let dlng = east_m / (111_320.0 * lat.to_radians().cos());
    (lat + dlat, lng + dlng)
}

/// Monas, central Jakarta (lat, lng).
pub const MONAS: (f64, f64) = (-6.175392, 106.827153);

/// A `POST /v1/alerts` body of `kind` at (lat, lng).
pub fn alert_body(kind: &str, at: (f64, f64)) -> Value {
    json!({"kind": kind, "location": {"lat": at.0, "lng": at.1, "accuracy_m": 8}, "note": "di depan toko"})
}
