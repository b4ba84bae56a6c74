//! Test harness: the LMS routes over a fresh database, real access tokens, and recording ports.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use http::{Request, StatusCode, header};
use kreki_auth::keys::{KeyRing, SigningKey};
use kreki_auth::token::Issuer;
use kreki_auth::{Role, Roles, TokenVerifier, UserId};
use kreki_lms::{CertificationListener, LmsConfig, LmsService, Notifier};
use serde_json::{Value, json};
use sqlx::PgPool;
use tower::ServiceExt;
use uuid::Uuid;

/// Records what the LMS told the rest of the platform.
#[derive(Default)]
pub struct Recorder {
    pub changed: Mutex<Vec<Uuid>>,
    pub notified: Mutex<Vec<(Uuid, Value)>>,
    pub resyncs: std::sync::atomic::AtomicUsize,
    /// KREKI ID as the LMS sees it through `AccountNames`: every `person()` is an account.
    pub accounts: Mutex<std::collections::HashMap<Uuid, String>>,
}

impl Recorder {
    pub fn changes_of(&self, user: Uuid) -> usize {
        self.changed
            .lock()
            .map(|changed| changed.iter().filter(|id| **id == user).count())
            .unwrap_or(0)
    }

    pub fn clear(&self) {
        if let Ok(mut changed) = self.changed.lock() {
            changed.clear();
        }
    }

    pub fn notes_of(&self, user: Uuid) -> Vec<Value> {
        self.notified
            .lock()
            .map(|notes| {
                notes
                    .iter()
                    .filter(|(id, _)| *id == user)
                    .map(|(_, message)| message.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl CertificationListener for Recorder {
    fn changed(&self, user: Uuid) {
        if let Ok(mut changed) = self.changed.lock() {
            changed.push(user);
        }
    }

    fn resync(&self) {
        self.resyncs
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl kreki_lms::AccountNames for Recorder {
    fn name_of(
        &self,
        user: Uuid,
    ) -> kreki_lms::ports::BoxFuture<'_, Result<Option<String>, String>> {
        let name = self
            .accounts
            .lock()
            .map_err(|_| "poisoned".to_owned())
            .map(|accounts| accounts.get(&user).cloned());
        Box::pin(std::future::ready(name))
    }
}

impl Notifier for Recorder {
    fn notify_user(&self, user: Uuid, message: Value) {
        if let Ok(mut notes) = self.notified.lock() {
            notes.push((user, message));
        }
    }
}

/// A person with a token.
#[derive(Clone)]
pub struct Person {
    pub id: Uuid,
    pub token: String,
}

pub struct TestApp {
    pub pool: PgPool,
    pub router: axum::Router,
    pub service: Arc<LmsService>,
    pub recorder: Arc<Recorder>,
    issuer: Issuer,
}

impl TestApp {
    pub fn new(pool: PgPool) -> Self {
        let pem = kreki_auth::keys::generate_pem().expect("a key is generated");
        let key = SigningKey::from_pem(&pem).expect("the generated key parses");
        let ring = Arc::new(KeyRing::new(Some(key), Vec::new()));
        let verifier = TokenVerifier::with_keys("kreki".into(), &ring.public_keys());
        let issuer = Issuer::new(ring, "kreki".into(), Duration::from_secs(900));
        let recorder = Arc::new(Recorder::default());
        let state = kreki_lms::build(
            pool.clone(),
            LmsConfig {
                public_base_url: "https://kreki.example.id".into(),
                ..LmsConfig::default()
            },
            verifier,
            kreki_lms::Ports {
                listener: recorder.clone(),
                notifier: recorder.clone(),
                names: recorder.clone(),
            },
        );
        let service = state.service.clone();
        let (router, _) = kreki_lms::routes::router(state).split_for_parts();
        Self {
            pool,
            router,
            service,
            recorder,
            issuer,
        }
    }

    pub fn person(&self, name: &str, roles: &[Role]) -> Person {
        let id = Uuid::now_v7();
        if let Ok(mut accounts) = self.recorder.accounts.lock() {
            accounts.insert(id, name.to_owned());
        }
        let token = self
            .issuer
            .for_user(UserId(id), &Roles::new(roles.iter().copied()), name)
            .expect("tokens are signed");
        Person { id, token }
    }

    /// Sends a request; answers the status, the body as JSON (Null when empty or not JSON) and
    /// the headers.
    pub async fn call_full(
        &self,
        method: &str,
        path: &str,
        who: Option<&Person>,
        body: Option<Value>,
    ) -> (StatusCode, Value, http::HeaderMap, String) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(person) = who {
            request = request.header(header::AUTHORIZATION, format!("Bearer {}", person.token));
        }
        let request = match body {
            Some(body) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        }
        .expect("the request builds");
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router answers");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 4 * 1024 * 1024)
            .await
            .expect("the body is read");
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, json, headers, text)
    }

    /// A GET as a browser sends it (`Accept: text/html`).
    pub async fn call_html(&self, path: &str) -> (StatusCode, Value, http::HeaderMap, String) {
        let request = Request::builder()
            .uri(path)
            .header(header::ACCEPT, "text/html,application/xhtml+xml,*/*;q=0.8")
            .body(Body::empty())
            .expect("the request builds");
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("answered");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 1024 * 1024)
            .await
            .expect("the body is read");
        let text = String::from_utf8_lossy(&bytes).into_owned();
        (status, Value::Null, headers, text)
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        who: Option<&Person>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (status, json, _, _) = self.call_full(method, path, who, body).await;
        (status, json)
    }

    /// Creates a course as `trainer`; answers its JSON.
    pub async fn course(&self, trainer: &Person, definition: Value) -> Value {
        let (status, course) = self
            .call("POST", "/v1/lms/courses", Some(trainer), Some(definition))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{course}");
        course
    }

    pub async fn enroll(&self, who: &Person, course_id: &str) {
        let (status, body) = self
            .call(
                "POST",
                &format!("/v1/lms/courses/{course_id}/enroll"),
                Some(who),
                None,
            )
            .await;
        assert!(status.is_success(), "{status} {body}");
    }

    /// Starts an attempt; answers (attempt id, questions).
    pub async fn start(&self, who: &Person, quiz_id: &str) -> (String, Vec<Value>) {
        let (status, body) = self
            .call(
                "POST",
                &format!("/v1/lms/quizzes/{quiz_id}/attempts/start"),
                Some(who),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        (
            body["attempt_id"]
                .as_str()
                .expect("an attempt id")
                .to_owned(),
            body["questions"].as_array().cloned().unwrap_or_default(),
        )
    }

    pub async fn submit(
        &self,
        who: &Person,
        quiz_id: &str,
        attempt_id: Option<&str>,
        answers: Value,
    ) -> (StatusCode, Value) {
        let mut body = json!({"answers": answers});
        if let Some(id) = attempt_id {
            body["attempt_id"] = id.into();
        }
        self.call(
            "POST",
            &format!("/v1/lms/quizzes/{quiz_id}/attempts"),
            Some(who),
            Some(body),
        )
        .await
    }
}

/// A course with one quiz: q0 single (correct `b`, 1 point), q1 multiple (correct `a` and `c` of
/// four, 2 points). Pass mark 60.
pub fn small_course(certification: Option<&str>, max_attempts: i32, cooldown_s: i32) -> Value {
    json!({
        "title": "Kursus uji",
        "title_en": "Test course",
        "certification": certification,
        "modules": [{
            "title": "Modul",
            "lessons": [{"title": "Bacaan", "body_md": "Teks"}, {"title": "Bacaan 2", "body_md": "Teks"}],
            "quizzes": [{
                "title": "Kuis",
                "pass_mark_pct": 60,
                "max_attempts": max_attempts,
                "cooldown_s": cooldown_s,
                "questions": [
                    {"kind": "single", "prompt": "Q0", "options": [{"text": "x"}, {"text": "y", "correct": true}, {"text": "z"}]},
                    {"kind": "multiple", "prompt": "Q1", "points": 2, "options": [
                        {"text": "a", "correct": true}, {"text": "b"}, {"text": "c", "correct": true}, {"text": "d"}
                    ]}
                ]
            }]
        }]
    })
}

/// Ids of the quizzes of a course JSON, in order.
pub fn quiz_ids(course: &Value) -> Vec<String> {
    course["modules"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|module| module["quizzes"].as_array().cloned().unwrap_or_default())
        .filter_map(|quiz| quiz["id"].as_str().map(str::to_owned))
        .collect()
}

/// Id of the question with `prompt` among `questions`.
pub fn question_id(questions: &[Value], prompt: &str) -> String {
    questions
        .iter()
        .find(|question| question["prompt"] == prompt)
        .and_then(|question| question["id"].as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("a question {prompt}"))
}

/// Answers to the small course's quiz: `q0` and `q1` are the options chosen.
pub fn small_answers(questions: &[Value], q0: &[&str], q1: &[&str]) -> Value {
    json!([
        {"question_id": question_id(questions, "Q0"), "selected": q0},
        {"question_id": question_id(questions, "Q1"), "selected": q1},
    ])
}
