//! MQTT devices as operators run them: a citizen registers a panic button over HTTP on the real
//! `kreki`, `deploy/mosquitto/sync-credentials.sh` (hence `kreki mqtt sync-credentials`) writes the
//! broker's files, and a Mosquitto of our own, started from `deploy/mosquitto/mosquitto.conf` on a
//! free port, lets the button in with the password it was shown, and only on its own topic.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::support::{Server, TempDir, database_url, free_port, signing_key};

pub(crate) struct Mosquitto(pub(crate) Child);

impl Drop for Mosquitto {
    fn drop(&mut self) {
        drop(self.0.kill());
        drop(self.0.wait());
    }
}

pub(crate) fn start_mosquitto(dir: &Path, port: u16) -> Mosquitto {
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/mosquitto/mosquitto.conf"),
    )
    .expect("the shipped config");
    let config: String = shipped
        .lines()
        .map(|line| {
            if line.starts_with("listener ") {
                format!("listener {port} 127.0.0.1\n")
            } else if line.starts_with("persistence ") {
                "persistence false\n".to_owned()
            } else {
                format!(
                    "{}\n",
                    line.replace("/etc/mosquitto/kreki", &dir.display().to_string())
                )
            }
        })
        .collect();
    let path = dir.join("mosquitto.conf");
    std::fs::write(&path, format!("{config}user root\n")).expect("config written");
    Mosquitto(
        Command::new("mosquitto")
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto starts"),
    )
}

/// `mosquitto_pub` with QoS 1: true when the broker accepted the login.
fn publish(port: u16, user: &str, password: &str, topic: &str) -> bool {
    Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
        .args([
            "-u",
            user,
            "-P",
            password,
            "-t",
            topic,
            "-m",
            r#"{"lat":-6.2,"lng":106.8}"#,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

#[sqlx::test(migrations = false)]
async fn a_registered_button_logs_into_mosquitto_after_sync(pool: PgPool) {
    let dir = TempDir::new();
    let key = signing_key(&dir.0);
    let env = vec![
        ("KREKI_DATABASE__URL", database_url(&pool)),
        ("KREKI_AUTH__SIGNING_KEY_FILE", key.display().to_string()),
        ("KREKI_MQTT__PASSWORD", "service-secret".to_owned()),
    ];
    let server = Server::start(&env).await;
    let client = reqwest::Client::new();
    let registered = client
        .post(format!("{}/v1/auth/register", server.base))
        .json(&json!({"phone": "0812-5555-0001", "password": "kata-sandi-aman", "name": "Sari"}))
        .send()
        .await
        .expect("answered");
    assert_eq!(registered.status(), StatusCode::CREATED);
    let login: Value = client
        .post(format!("{}/v1/auth/login", server.base))
        .json(&json!({"login": "0812-5555-0001", "password": "kata-sandi-aman"}))
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("JSON");
    let token = login["access_token"].as_str().expect("a token");
    let device = client
        .post(format!("{}/v1/mqtt/devices", server.base))
        .bearer_auth(token)
        .json(&json!({"kind": "panic", "label": "dapur"}))
        .send()
        .await
        .expect("answered");
    assert_eq!(device.status(), StatusCode::CREATED);
    let device: Value = device.json().await.expect("JSON");
    let username = device["mqtt"]["username"].as_str().expect("a username");
    let password = device["mqtt"]["password"].as_str().expect("a password");

    // The operator's script, with this test's kreki, directory and (absent) broker pid file.
    let files = dir.0.join("mosquitto");
    let status = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/mosquitto/sync-credentials.sh"))
        .arg(&files)
        .arg(dir.0.join("no-broker.pid"))
        .arg(env!("CARGO_BIN_EXE_kreki"))
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("KREKI_LOG__FILTER", "warn")
        .stdout(Stdio::null())
        .status()
        .expect("the script runs");
    assert!(status.success());
    let passwd = std::fs::read_to_string(files.join("passwd")).expect("passwd written");
    assert!(
        passwd.contains(&format!("\n{username}:$7$101$")),
        "{passwd}"
    );
    assert!(passwd.contains("\nkreki:$7$101$"), "{passwd}");
    assert!(!passwd.contains(password));

    let port = free_port();
    let _broker = start_mosquitto(&files, port);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "mosquitto did not listen");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let own_topic = format!("kreki/v1/panic/{username}");
    assert!(publish(port, username, password, &own_topic));
    assert!(!publish(port, username, "not-the-password", &own_topic));
    assert!(!publish(port, "nobody", "nothing", &own_topic));
}
