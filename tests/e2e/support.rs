//! Starting and stopping a real `kreki` process on its own database and port.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use sqlx::PgPool;

/// The URL of the database `pool` is connected to (a fresh one per test, made by `#[sqlx::test]`).
pub fn database_url(pool: &PgPool) -> String {
    let base = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let name = pool
        .connect_options()
        .get_database()
        .unwrap_or("postgres")
        .to_owned();
    let (server, _) = base.rsplit_once('/').unwrap_or((base.as_str(), ""));
    format!("{server}/{name}")
}

/// A free TCP port on the loopback interface.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("the loopback interface has a free port")
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let path = std::env::temp_dir().join(format!("kreki-e2e-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&path).expect("temp dir is creatable");
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        drop(std::fs::remove_dir_all(&self.0));
    }
}

/// The `kreki` binary built for this test run.
pub fn kreki() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kreki"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    command
}

/// Makes a signing key file in `dir` with `kreki keys generate`.
pub fn signing_key(dir: &Path) -> PathBuf {
    let path = dir.join("signing-key.pem");
    let status = kreki()
        .args(["keys", "generate", "--out"])
        .arg(&path)
        .status()
        .expect("kreki runs");
    assert!(status.success(), "kreki keys generate failed");
    path
}

/// A running `kreki serve`.
pub struct Server {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// Where the process writes its logs (shown when it fails to start).
    log: PathBuf,
}

impl Server {
    /// Starts `kreki serve --migrate` with `env` and waits until `/healthz` answers.
    pub async fn start(env: &[(&str, String)]) -> Self {
        Self::start_with(&["serve", "--migrate"], env).await
    }

    /// Starts `kreki` with `args` and `env` and waits until `/healthz` answers. Logs go to a file that
    /// is printed if it never comes up (`TEST_LOG=1` shows them live instead).
    pub async fn start_with(args: &[&str], env: &[(&str, String)]) -> Self {
        // `free_port` cannot reserve the port: under load another process may take it before
        // kreki binds it. That start fails with "Address already in use"; try another port.
        for _ in 0..3 {
            let mut server = Self::spawn(args, env);
            match server.wait_until_up().await {
                Ok(()) => return server,
                Err(log) if log.contains("Address already in use") => continue,
                Err(log) => panic!("kreki did not come up:\n{log}"),
            }
        }
        panic!("kreki found no free port in three tries");
    }

    fn spawn(args: &[&str], env: &[(&str, String)]) -> Self {
        let port = free_port();
        let log =
            std::env::temp_dir().join(format!("kreki-e2e-{port}-{}.log", uuid::Uuid::new_v4()));
        // Logs go to stdout (`telemetry::init_logging`), panics to stderr: both into the one file.
        let (stdout, stderr) = if std::env::var_os("TEST_LOG").is_some() {
            (Stdio::inherit(), Stdio::inherit())
        } else {
            let file = std::fs::File::create(&log).expect("log file is creatable");
            let second = file.try_clone().expect("log file handle is clonable");
            (Stdio::from(second), Stdio::from(file))
        };
        let mut command = kreki();
        command
            .args(args)
            .env("KREKI_SERVER__LISTEN", format!("127.0.0.1:{port}"))
            .env("KREKI_LOG__FILTER", "warn")
            // The suite runs many servers and creates many databases at once on two cores; a
            // request waiting for a pooled connection then may wait longer than in service.
            // Tests that are about the timeout set their own value.
            .env("KREKI_DATABASE__ACQUIRE_TIMEOUT_MS", "15000")
            .stdout(stdout)
            .stderr(stderr);
        // `{base}` in a value is this server's own URL (known only once its port is picked), for
        // settings such as `sms.public_base_url` that name the server itself.
        let base = format!("http://127.0.0.1:{port}");
        for (key, value) in env {
            command.env(key, value.replace("{base}", &base));
        }
        let child = command.spawn().expect("kreki serve starts");
        Self {
            child: Some(child),
            base: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    /// Waits until `/healthz` answers; on failure, the process's log (and exit status).
    async fn wait_until_up(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = reqwest::Client::new();
        while Instant::now() < deadline {
            if client
                .get(format!("{}/healthz", self.base))
                .send()
                .await
                .is_ok()
            {
                return Ok(());
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten())
            {
                return Err(format!("kreki exited with {status}:\n{}", self.log_text()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!(
            "no answer on /healthz within 30 s:\n{}",
            self.log_text()
        ))
    }

    /// What the process logged so far (empty with `TEST_LOG=1`, which shows it live instead).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM, as Kubernetes does.
    pub fn terminate(&self) {
        if let Some(child) = &self.child {
            let status = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .expect("kill runs");
            assert!(status.success());
        }
    }

    /// Waits for the process to exit (at most 30 s) and returns its status.
    pub async fn wait(mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().expect("status is readable") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "kreki did not exit within 30 s of SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            drop(child.kill());
            drop(child.wait());
        }
        drop(std::fs::remove_file(&self.log));
    }
}

/// A JSON client of one `kreki` server, speaking to it as the apps do. Each test file wraps it
/// (`Deref`) and adds the calls its story needs.
pub struct JsonApi {
    /// One connection pool for the whole test.
    pub client: reqwest::Client,
    /// `http://127.0.0.1:PORT` of the server.
    pub base: String,
}

impl JsonApi {
    /// A client of the server at `base`.
    pub fn new(base: &str) -> Self {
        Self {
            client: reqwest::Client::new(),
            base: base.to_owned(),
        }
    }

    /// One request with an optional bearer token and JSON body: the status and the JSON answer
    /// (`Null` when the answer is not JSON).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("answered");
        let status = response.status();
        (
            status,
            response.json().await.unwrap_or(serde_json::Value::Null),
        )
    }

    /// Signs in; the access token.
    pub async fn login(&self, login: &str, password: &str) -> String {
        let (status, body) = self
            .send(
                reqwest::Method::POST,
                "/v1/auth/login",
                None,
                Some(serde_json::json!({"login": login, "password": password})),
            )
            .await;
        assert_eq!(status, reqwest::StatusCode::OK, "{body}");
        body["access_token"].as_str().expect("a token").to_owned()
    }
}

/// A WebSocket to a `kreki` server.
pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Creates an account with the CLI, with extra `roles` beyond citizen.
pub fn create_account(url: &str, phone: &str, password: &str, name: &str, roles: &[&str]) {
    let mut command = kreki();
    command
        .args(["user", "create", "--phone", phone, "--password", password])
        .args(["--name", name])
        .env("KREKI_DATABASE__URL", url);
    for role in roles {
        command.args(["--role", role]);
    }
    let created = command.output().expect("runs");
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
}

/// Opens `/v1/ws` with `token`.
pub async fn open_socket(base: &str, token: &str) -> Socket {
    let url = format!(
        "{}/v1/ws?access_token={token}",
        base.replacen("http://", "ws://", 1)
    );
    let (socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("upgraded");
    socket
}

/// The next frame of type `kind` that satisfies `wanted` within `patience`, skipping others;
/// `None` when none came.
pub async fn frame_where(
    socket: &mut Socket,
    kind: &str,
    patience: Duration,
    wanted: impl Fn(&serde_json::Value) -> bool,
) -> Option<serde_json::Value> {
    use futures_util::StreamExt;
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let message = tokio::time::timeout_at(deadline, socket.next())
            .await
            .ok()?
            .expect("open")
            .expect("a valid frame");
        if let tokio_tungstenite::tungstenite::Message::Text(text) = message {
            let frame: serde_json::Value = serde_json::from_str(text.as_str()).expect("JSON");
            if frame["type"] == kind && wanted(&frame) {
                return Some(frame);
            }
        }
    }
}

/// The National Monument in Jakarta: where the end-to-end stories happen.
pub const MONAS: (f64, f64) = (-6.175392, 106.827153);

/// A GeoJSON square polygon with its south-west corner at (`lat`, `lng`), `size` degrees wide.
pub fn square(lat: f64, lng: f64, size: f64) -> serde_json::Value {
    serde_json::json!({"type": "Polygon", "coordinates": [[
        [lng, lat], [lng + size, lat], [lng + size, lat + size], [lng, lat + size], [lng, lat]
    ]]})
}

/// Asserts a 2xx answer, showing the body when not.
pub fn ok(status: reqwest::StatusCode, body: &serde_json::Value) {
    assert!(status.is_success(), "{status}: {body}");
}

/// Puts the volunteer of `token` on duty at `at` (lat, lng).
pub async fn on_duty_at(api: &JsonApi, token: &str, at: (f64, f64)) {
    let (status, body) = api
        .send(
            reqwest::Method::PUT,
            "/v1/volunteers/me/duty",
            Some(token),
            Some(serde_json::json!({"on_duty": true})),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    let (status, body) = api
        .send(
            reqwest::Method::POST,
            "/v1/volunteers/me/location",
            Some(token),
            Some(serde_json::json!({"lat": at.0, "lng": at.1, "accuracy_m": 10})),
        )
        .await;
    assert!(status.is_success(), "{status}: {body}");
}
