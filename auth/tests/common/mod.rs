//! Test harness of KREKI ID: runs the real auth routes, behind the real middleware stack, on a real
//! socket (`127.0.0.1:0`) over the per-test PostgreSQL database of `#[sqlx::test]`, and talks to it
//! with a real HTTP client, so every assertion is about what a user of the API would see.

use std::net::SocketAddr;

use kreki_auth::domain::{Email, NewPassword, PersonName, Phone};
use kreki_auth::service::NewAccount;
use kreki_auth::{AuthConfig, AuthState, Role, Roles, UserId};
use kreki_platform::http::{Limits, finish};
use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use sqlx::PgPool;

/// The password of every account the harness creates.
pub const PASSWORD: &str = "kata-sandi-aman";

/// Base URI of problem `type`s.
pub const PROBLEM_BASE: &str = "https://kreki.id/problems/";

/// The settings tests run with: short locks so throttling can be watched expire, a forwarded-for
/// header trusted so one test can speak from several client addresses.
pub fn config() -> AuthConfig {
    AuthConfig {
        trust_forwarded_for: true,
        ip_max_failures: 20,
        account_max_failures: 3,
        throttle_window_s: 60,
        account_lock_base_s: 2,
        account_lock_max_s: 3,
        max_concurrent_hashes: 2,
        ..AuthConfig::default()
    }
}

/// A fresh Ed25519 signing key as PKCS#8 PEM.
pub fn new_key_pem() -> String {
    kreki_auth::keys::generate_pem().expect("a key is generated")
}

/// One running KREKI ID instance.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// A client without proxies.
    pub http: reqwest::Client,
    /// The state the routes run on (its service lets a test create staff accounts directly).
    pub state: AuthState,
    /// The database of this test.
    pub pool: PgPool,
    /// The settings in force.
    pub config: AuthConfig,
    /// The private key this instance signs with.
    pub signing_pem: String,
}

/// What the server answered: status, headers and the JSON body (`Value::Null` when empty).
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// The body as JSON; a non-JSON body is kept as a string so a failure shows it.
    pub body: Value,
}

impl Answer {
    /// A response header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// Asserts the status and that the body is a problem of kind `slug` (problem+json, `type`,
    /// `status` repeated in the body).
    #[track_caller]
    pub fn assert_problem(&self, status: u16, slug: &str) {
        assert_eq!(self.status.as_u16(), status, "status of {self:#?}");
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "content type of {self:#?}"
        );
        assert_eq!(
            self.body["type"],
            format!("{PROBLEM_BASE}{slug}"),
            "problem type of {self:#?}"
        );
        assert_eq!(self.body["status"], status, "problem status of {self:#?}");
    }

    /// The `field`s named in the problem's `errors`.
    pub fn fields(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .filter_map(|error| error["field"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A string member of the JSON body.
    #[track_caller]
    pub fn str(&self, key: &str) -> String {
        self.body[key]
            .as_str()
            .unwrap_or_else(|| panic!("`{key}` is not a string in {self:#?}"))
            .to_owned()
    }
}

/// An access token and its refresh token.
#[derive(Debug, Clone)]
pub struct Tokens {
    /// The EdDSA JWT.
    pub access: String,
    /// The opaque refresh token.
    pub refresh: String,
}

/// Starts KREKI ID with [`config`] and a new key.
pub async fn spawn(pool: PgPool) -> TestApp {
    spawn_with(pool, config()).await
}

/// Starts KREKI ID with `config`; a signing key is generated when the config has none.
pub async fn spawn_with(pool: PgPool, mut config: AuthConfig) -> TestApp {
    let signing_pem = match &config.signing_key_pem {
        Some(pem) => pem.expose_secret().to_owned(),
        None => {
            let pem = new_key_pem();
            config.signing_key_pem = Some(SecretString::from(pem.clone()));
            pem
        }
    };
    assert_eq!(
        config.validate(),
        Vec::<String>::new(),
        "test config is valid"
    );
    let state = kreki_auth::build(pool.clone(), config.clone()).expect("KREKI ID builds");
    let (router, _openapi) = kreki_auth::routes::router(state.clone()).split_for_parts();
    let app = finish(router, Limits::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let addr = listener.local_addr().expect("bound address");
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("the test server runs");
    });
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("an HTTP client");
    TestApp {
        base: format!("http://{addr}"),
        http,
        state,
        pool,
        config,
        signing_pem,
    }
}

/// Sends `request` and reads the answer.
pub async fn send(request: RequestBuilder) -> Answer {
    let response = request.send().await.expect("the server answers");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("a body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    Answer {
        status,
        headers,
        body,
    }
}

/// A valid Indonesian mobile number, distinct for each `n`.
pub fn phone(n: u32) -> String {
    format!("+62812{n:08}")
}

impl TestApp {
    /// A request to `path` on this instance.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base))
    }

    /// POSTs `body` as JSON, with a bearer token when given.
    pub async fn post_json(&self, path: &str, body: &Value, bearer: Option<&str>) -> Answer {
        let mut request = self.request(Method::POST, path).json(body);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        send(request).await
    }

    /// `POST /v1/auth/register`.
    pub async fn register(&self, body: &Value) -> Answer {
        self.post_json("/v1/auth/register", body, None).await
    }

    /// `POST /v1/auth/login` from the test's own address.
    pub async fn login(&self, login: &str, password: &str) -> Answer {
        self.post_json(
            "/v1/auth/login",
            &json!({"login": login, "password": password}),
            None,
        )
        .await
    }

    /// `POST /v1/auth/login` from client address `ip` (via `X-Forwarded-For`).
    pub async fn login_from(&self, ip: &str, login: &str, password: &str) -> Answer {
        send(
            self.request(Method::POST, "/v1/auth/login")
                .header("x-forwarded-for", ip)
                .json(&json!({"login": login, "password": password})),
        )
        .await
    }

    /// Signs in and returns the pair, asserting success.
    pub async fn tokens(&self, login: &str, password: &str) -> Tokens {
        let answer = self.login(login, password).await;
        tokens_of(&answer)
    }

    /// `POST /v1/auth/refresh`.
    pub async fn refresh(&self, refresh_token: &str) -> Answer {
        self.post_json(
            "/v1/auth/refresh",
            &json!({"refresh_token": refresh_token}),
            None,
        )
        .await
    }

    /// `GET /v1/auth/me` with `bearer`.
    pub async fn me(&self, bearer: &str) -> Answer {
        send(self.request(Method::GET, "/v1/auth/me").bearer_auth(bearer)).await
    }

    /// `PUT /v1/admin/users/{id}/roles`.
    pub async fn set_roles(&self, bearer: &str, user: &str, roles: &Value) -> Answer {
        send(
            self.request(Method::PUT, &format!("/v1/admin/users/{user}/roles"))
                .bearer_auth(bearer)
                .json(&json!({ "roles": roles })),
        )
        .await
    }

    /// `POST /v1/admin/clients`.
    pub async fn create_client(&self, bearer: &str, name: &str, scopes: &Value) -> Answer {
        self.post_json(
            "/v1/admin/clients",
            &json!({"name": name, "scopes": scopes}),
            Some(bearer),
        )
        .await
    }

    /// `POST /v1/auth/token` with `form` fields.
    pub async fn client_token(&self, form: &[(&str, &str)]) -> Answer {
        send(self.request(Method::POST, "/v1/auth/token").form(form)).await
    }

    /// Creates an account holding `roles` (plus `citizen`) directly through the service, as the
    /// `kreki user create` CLI does, and returns its id.
    pub async fn create_user(&self, phone: &str, roles: &[Role]) -> UserId {
        let row = self
            .state
            .service
            .register(NewAccount {
                phone: Phone::parse(phone).expect("a valid phone"),
                password: NewPassword::parse(PASSWORD).expect("a valid password"),
                name: PersonName::parse("Staf KREKI").expect("a valid name"),
                email: None::<Email>,
                roles: Roles::new(roles.iter().copied()),
            })
            .await
            .expect("the account is created");
        UserId(row.id)
    }

    /// Creates an account holding `roles` and signs it in over HTTP.
    pub async fn user_with(&self, phone: &str, roles: &[Role]) -> (UserId, Tokens) {
        let id = self.create_user(phone, roles).await;
        (id, self.tokens(phone, PASSWORD).await)
    }
}

/// The pair of a successful login or refresh answer.
#[track_caller]
pub fn tokens_of(answer: &Answer) -> Tokens {
    assert_eq!(answer.status, StatusCode::OK, "sign-in of {answer:#?}");
    assert_eq!(answer.body["token_type"], "Bearer");
    Tokens {
        access: answer.str("access_token"),
        refresh: answer.str("refresh_token"),
    }
}
