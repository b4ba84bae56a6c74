//! The simulator's side of the public API: sign in (and stay signed in), call `/v1/...` with the
//! person's token, and open `/v1/ws` as the apps do. Nothing here knows dispatch internals.

use std::time::Duration;

use anyhow::Context;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A WebSocket to `/v1/ws`.
pub type Live = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Renew the access token this long before it runs out.
const RENEW_BEFORE: Duration = Duration::from_secs(60);
/// Largest `/v1/ws` message accepted, in bytes (an alert with its assignments is a few KiB).
const LIVE_MESSAGE_MAX_BYTES: usize = 256 * 1024;
/// Longest wait for one HTTP answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// An HTTP answer: status and JSON body (`null` when empty or not JSON).
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: StatusCode,
    /// Parsed body.
    pub body: Value,
}

impl Answer {
    /// The body when the status is 2xx, else an error naming the call and the problem's detail.
    ///
    /// # Errors
    /// Any non-2xx status.
    pub fn ok(self, what: &str) -> anyhow::Result<Value> {
        if self.status.is_success() {
            Ok(self.body)
        } else {
            let detail = self.body["detail"]
                .as_str()
                .or_else(|| self.body["title"].as_str())
                .unwrap_or("");
            anyhow::bail!("{what}: HTTP {} {detail}", self.status.as_u16())
        }
    }
}

/// One signed-in person, keeping a fresh access token.
#[derive(Debug)]
pub struct Session {
    http: reqwest::Client,
    base: String,
    login: String,
    password: String,
    access_token: String,
    refresh_token: String,
    renew_at: Instant,
    /// The account's id (`GET /v1/auth/me`).
    pub user_id: uuid::Uuid,
}

impl Session {
    /// Signs `login` in at `base` (`http://host:port`).
    ///
    /// # Errors
    /// Unreachable server, wrong password, or an unexpected answer.
    pub async fn sign_in(
        http: reqwest::Client,
        base: &str,
        login: &str,
        password: &str,
    ) -> anyhow::Result<Self> {
        let mut session = Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            login: login.to_owned(),
            password: password.to_owned(),
            access_token: String::new(),
            refresh_token: String::new(),
            renew_at: Instant::now(),
            user_id: uuid::Uuid::nil(),
        };
        session.login().await?;
        let me = session
            .call(Method::GET, "/v1/auth/me", None, None)
            .await?
            .ok("GET /v1/auth/me")?;
        session.user_id = me["id"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .context("GET /v1/auth/me: no id")?;
        Ok(session)
    }

    async fn login(&mut self) -> anyhow::Result<()> {
        let pair = self
            .send(
                Method::POST,
                "/v1/auth/login",
                Some(&json!({"login": self.login, "password": self.password})),
                None,
                None,
            )
            .await?
            .ok(&format!("signing in as {}", self.login))?;
        self.keep(&pair)
    }

    fn keep(&mut self, pair: &Value) -> anyhow::Result<()> {
        self.access_token = pair["access_token"]
            .as_str()
            .context("no access_token")?
            .to_owned();
        self.refresh_token = pair["refresh_token"]
            .as_str()
            .context("no refresh_token")?
            .to_owned();
        let ttl = Duration::from_secs(pair["expires_in"].as_u64().unwrap_or(300));
        self.renew_at = Instant::now() + ttl.saturating_sub(RENEW_BEFORE);
        Ok(())
    }

    /// A current access token: refreshed (or, failing that, signed in again) when near expiry.
    ///
    /// # Errors
    /// When neither refresh nor sign-in works.
    pub async fn token(&mut self) -> anyhow::Result<String> {
        if Instant::now() >= self.renew_at {
            let refreshed = self
                .send(
                    Method::POST,
                    "/v1/auth/refresh",
                    Some(&json!({"refresh_token": self.refresh_token})),
                    None,
                    None,
                )
                .await
                .and_then(|answer| answer.ok("refresh"));
            match refreshed {
                Ok(pair) => self.keep(&pair)?,
                Err(_) => self.login().await?,
            }
        }
        Ok(self.access_token.clone())
    }

    /// Calls `method path` with the person's token, an optional JSON body and an optional
    /// `Idempotency-Key`.
    ///
    /// # Errors
    /// Network failures and timeouts (any HTTP status is an [`Answer`]).
    pub async fn call(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        idempotency_key: Option<&str>,
    ) -> anyhow::Result<Answer> {
        let token = self.token().await?;
        self.send(method, path, body, Some(&token), idempotency_key)
            .await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        token: Option<&str>,
        idempotency_key: Option<&str>,
    ) -> anyhow::Result<Answer> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .timeout(REQUEST_TIMEOUT);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(key) = idempotency_key {
            request = request.header("idempotency-key", key);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .with_context(|| format!("{method} {path}: reading the answer"))?;
        Ok(Answer {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
        })
    }

    /// Opens `/v1/ws` with the token in the query, as browsers do.
    ///
    /// # Errors
    /// When the upgrade fails.
    pub async fn live(&mut self) -> anyhow::Result<Live> {
        let token = self.token().await?;
        let url = format!(
            "{}/v1/ws?access_token={token}",
            self.base
                .replacen("https://", "wss://", 1)
                .replacen("http://", "ws://", 1)
        );
        // Server messages are small JSON objects: small buffers, and a cap on what one may weigh.
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .read_buffer_size(16 * 1024)
            .write_buffer_size(0)
            .max_message_size(Some(LIVE_MESSAGE_MAX_BYTES))
            .max_frame_size(Some(LIVE_MESSAGE_MAX_BYTES));
        let (socket, _) = tokio::time::timeout(
            REQUEST_TIMEOUT,
            tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), true),
        )
        .await
        .context("GET /v1/ws timed out")?
        .context("GET /v1/ws")?;
        Ok(socket)
    }
}
