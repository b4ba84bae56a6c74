//! The one client of KREKI's public API that the load generator and the simulator share: HTTP
//! calls with a bearer token and an optional `Idempotency-Key` ([`Api`]), readiness, the live
//! channel `/v1/ws` ([`Api::live`]), and a signed-in person who keeps a fresh token ([`Session`]).
//! Nothing here knows dispatch internals: only paths and shapes of docs/API.md.

use std::time::Duration;

use anyhow::Context;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;

/// A WebSocket to `/v1/ws` (plain `ws://`: the platform is reached over `http://`).
pub type Live = WebSocketStream<TcpStream>;

/// Longest wait for one HTTP answer or one WebSocket upgrade, unless [`Api::new`] says otherwise.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Renew the access token this long before it runs out.
const RENEW_BEFORE: Duration = Duration::from_secs(60);
/// The client's read buffer per socket, in bytes: server messages are a few hundred bytes, and
/// the load generator holds ten thousand sockets.
const LIVE_READ_BUFFER_BYTES: usize = 4096;
/// Largest `/v1/ws` message accepted, in bytes (an alert with its assignments is a few KiB).
const LIVE_MESSAGE_MAX_BYTES: usize = 256 * 1024;
/// Idle keep-alive connections kept per host: the load generator's panics and accepts reuse them.
const IDLE_CONNECTIONS_PER_HOST: usize = 1024;

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

    /// The last segment of the problem's `type` URI (`offer-expired`, ...), for counting refusals.
    pub fn problem_slug(&self) -> &str {
        self.body["type"]
            .as_str()
            .and_then(|uri| uri.rsplit('/').next())
            .unwrap_or("no problem type")
    }
}

/// The public API of one KREKI instance at `http://host:port`. Cheap to clone (one connection pool).
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    /// A client of `base` (`http://host:port`, no trailing slash needed) whose calls give up after
    /// `timeout`.
    ///
    /// # Errors
    /// When `base` is not an `http://` URL with a host (the live channel speaks plain `ws://`), or
    /// the HTTP client cannot be built.
    pub fn new(base: &str, timeout: Duration) -> anyhow::Result<Self> {
        let base = base.trim_end_matches('/').to_owned();
        match reqwest::Url::parse(&base) {
            Ok(url) if url.scheme() == "http" && url.host().is_some() => {}
            Ok(_) => anyhow::bail!(
                "`{base}` must be an http:// address (the live channel speaks plain ws://)"
            ),
            Err(error) => anyhow::bail!("`{base}` is not a URL ({error})"),
        }
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(IDLE_CONNECTIONS_PER_HOST)
            .timeout(timeout)
            .build()
            .context("building the HTTP client")?;
        Ok(Self { http, base })
    }

    /// The instance's base URL, without a trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Calls `method path` with an optional bearer token, JSON body and `Idempotency-Key`.
    ///
    /// # Errors
    /// Network failures and timeouts; any HTTP status is an [`Answer`].
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        idempotency_key: Option<&str>,
    ) -> anyhow::Result<Answer> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
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

    /// The instance's `/metrics` text (empty when it cannot be read).
    pub async fn metrics(&self) -> String {
        match self.http.get(format!("{}/metrics", self.base)).send().await {
            Ok(answer) => answer.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Waits up to `within` for the instance to listen (`/healthz`), then to be ready (`/readyz`:
    /// dispatch's matcher is built after start). False when `stop` came first.
    ///
    /// # Errors
    /// When it is not ready within `within`.
    pub async fn wait_ready(
        &self,
        within: Duration,
        stop: &CancellationToken,
    ) -> anyhow::Result<bool> {
        let deadline = Instant::now() + within;
        // Listening first, then a moment for the services to settle before `/readyz`, whose 503
        // while starting would only add an error line to the server's log.
        let mut listening = false;
        loop {
            let path = if listening { "readyz" } else { "healthz" };
            if let Ok(answer) = self.http.get(format!("{}/{path}", self.base)).send().await
                && answer.status().is_success()
            {
                if listening {
                    return Ok(true);
                }
                listening = true;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{}/readyz did not answer 200 within {} s: is kreki running there?",
                self.base,
                within.as_secs()
            );
            let pause = Duration::from_millis(if listening { 1000 } else { 200 });
            tokio::select! {
                () = stop.cancelled() => return Ok(false),
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Opens `/v1/ws` as the person `token` names (in the `Authorization` header, as the mobile
    /// app does), with small buffers and a cap on what one message may weigh, within
    /// [`REQUEST_TIMEOUT`].
    ///
    /// # Errors
    /// When the connection or the upgrade fails or takes too long.
    pub async fn live(&self, token: &str) -> anyhow::Result<Live> {
        let url = format!("{}/v1/ws", self.base.replacen("http://", "ws://", 1));
        let mut request = url.as_str().into_client_request()?;
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse()?);
        let host = request
            .uri()
            .host()
            .context("no host in the URL")?
            .to_owned();
        let port = request.uri().port_u16().unwrap_or(80);
        let config = WebSocketConfig::default()
            .read_buffer_size(LIVE_READ_BUFFER_BYTES)
            .write_buffer_size(0)
            .max_message_size(Some(LIVE_MESSAGE_MAX_BYTES))
            .max_frame_size(Some(LIVE_MESSAGE_MAX_BYTES));
        let upgrade = async {
            let stream = TcpStream::connect((host.as_str(), port))
                .await
                .with_context(|| format!("connecting to {host}:{port}"))?;
            stream.set_nodelay(true)?;
            let (socket, _) =
                tokio_tungstenite::client_async_with_config(request, stream, Some(config))
                    .await
                    .context("GET /v1/ws")?;
            anyhow::Ok(socket)
        };
        tokio::time::timeout(REQUEST_TIMEOUT, upgrade)
            .await
            .context("GET /v1/ws timed out")?
    }
}

/// One signed-in person, keeping a fresh access token.
#[derive(Debug)]
pub struct Session {
    api: Api,
    login: String,
    password: String,
    access_token: String,
    refresh_token: String,
    renew_at: Instant,
    /// The account's id (`GET /v1/auth/me`).
    pub user_id: uuid::Uuid,
}

impl Session {
    /// Signs `login` in.
    ///
    /// # Errors
    /// Unreachable server, wrong password, or an unexpected answer.
    pub async fn sign_in(api: Api, login: &str, password: &str) -> anyhow::Result<Self> {
        let mut session = Self {
            api,
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
        let body = json!({"login": self.login, "password": self.password});
        let pair = self
            .api
            .call(Method::POST, "/v1/auth/login", None, Some(&body), None)
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
            let body = json!({"refresh_token": self.refresh_token});
            let refreshed = self
                .api
                .call(Method::POST, "/v1/auth/refresh", None, Some(&body), None)
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
        self.api
            .call(method, path, Some(&token), body, idempotency_key)
            .await
    }

    /// Opens `/v1/ws` as this person.
    ///
    /// # Errors
    /// When the upgrade fails.
    pub async fn live(&mut self) -> anyhow::Result<Live> {
        let token = self.token().await?;
        self.api.live(&token).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_addresses_with_a_host_are_taken() {
        let api = Api::new("http://127.0.0.1:8080/", REQUEST_TIMEOUT).expect("a good address");
        assert_eq!(api.base(), "http://127.0.0.1:8080");
        for wrong in ["https://kreki.example", "127.0.0.1:8080", "not a url"] {
            assert!(Api::new(wrong, REQUEST_TIMEOUT).is_err(), "{wrong}");
        }
    }

    #[test]
    fn a_problem_names_its_type_and_detail() {
        let answer = Answer {
            status: StatusCode::CONFLICT,
            body: json!({"type": "https://kreki.id/problems/offer-expired", "detail": "too late"}),
        };
        assert_eq!(answer.problem_slug(), "offer-expired");
        let error = answer.ok("accepting").expect_err("a 409");
        assert_eq!(error.to_string(), "accepting: HTTP 409 too late");
    }
}
