//! MQTT over TLS as production runs it: the broker's configuration is the shipped
//! `deploy/k8s/base/mosquitto/mosquitto.conf` (devices on a TLS listener, its certificate from a
//! fleet CA made here with `openssl`), `kreki`'s consumer connects to that listener checking the
//! broker's certificate against `mqtt.tls_ca_file`, and a panic button registered over HTTP is told
//! to use TLS and which CA to trust. Its press travels over TLS and its acknowledgement comes back
//! the same way; a client without the CA, or trusting another one, gets nowhere.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::mqtt::Mosquitto;
use crate::support::{
    JsonApi, Server, TempDir, create_account, database_url, free_port, kreki, signing_key,
};

const PATIENCE: Duration = Duration::from_secs(30);

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A CA named `name` in `dir` (`{name}.pem`, `{name}.key`).
fn certificate_authority(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
        ],
    );
}

/// The broker's key and certificate for `localhost`, signed by the CA `ca`: `tls.key`, `tls.crt`.
fn broker_certificate(dir: &Path, ca: &str) {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "tls.key",
            "-out",
            "tls.csr",
        ],
    );
    std::fs::write(
        dir.join("tls.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .expect("written");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "tls.csr",
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "tls.ext",
            "-out",
            "tls.crt",
        ],
    );
}

/// Mosquitto from the shipped production configuration: its plain listener on `plain_port`, its
/// devices' TLS listener on `tls_port`, its files in `dir` (`auth/` and `tls/`), no persistence.
fn start_production_mosquitto(dir: &Path, plain_port: u16, tls_port: u16) -> Mosquitto {
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/k8s/base/mosquitto/mosquitto.conf"),
    )
    .expect("the shipped config");
    let config: String = shipped
        .lines()
        .filter(|line| !line.starts_with("log_dest") && !line.starts_with("persistence_location"))
        .map(|line| match line {
            "listener 1883" => format!("listener {plain_port} 127.0.0.1\n"),
            "listener 8883" => format!("listener {tls_port} 127.0.0.1\n"),
            "persistence true" => "persistence false\n".to_owned(),
            _ => format!(
                "{}\n",
                line.replace("/mosquitto/", &format!("{}/", dir.display()))
            ),
        })
        .collect();
    assert!(config.contains("certfile"), "the shipped config has TLS");
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

/// `mosquitto_pub` (QoS 1) over TLS to `localhost:port`, trusting `ca` (none: plain MQTT).
fn publish(port: u16, ca: Option<&Path>, login: (&str, &str), topic: &str, payload: &str) -> bool {
    let mut command = Command::new("mosquitto_pub");
    command.args(["-h", "localhost", "-p", &port.to_string(), "-q", "1"]);
    if let Some(ca) = ca {
        command.arg("--cafile").arg(ca);
    }
    command
        .args(["-u", login.0, "-P", login.1, "-t", topic, "-m", payload])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

#[sqlx::test(migrations = false)]
async fn buttons_and_the_consumer_speak_mqtt_over_tls_with_the_fleets_ca(pool: PgPool) {
    let dir = TempDir::new();
    let key = signing_key(&dir.0);
    let tls = dir.0.join("tls");
    let auth = dir.0.join("auth");
    std::fs::create_dir_all(&tls).expect("a directory");
    std::fs::create_dir_all(&auth).expect("a directory");
    certificate_authority(&tls, "fleet-ca");
    certificate_authority(&tls, "other-ca");
    broker_certificate(&tls, "fleet-ca");
    let ca = tls.join("fleet-ca.pem");
    let (plain_port, tls_port) = (free_port(), free_port());
    let url = database_url(&pool);
    let env = vec![
        ("KREKI_DATABASE__URL", url.clone()),
        ("KREKI_AUTH__SIGNING_KEY_FILE", key.display().to_string()),
        ("KREKI_MQTT__PASSWORD", "service-secret".to_owned()),
        ("KREKI_MQTT__HOST", "localhost".to_owned()),
        ("KREKI_MQTT__PORT", tls_port.to_string()),
        ("KREKI_MQTT__TLS_CA_FILE", ca.display().to_string()),
        ("KREKI_MQTT__DEVICE_HOST", "localhost".to_owned()),
        ("KREKI_MQTT__DEVICE_PORT", tls_port.to_string()),
        ("KREKI_MQTT__DEVICE_TLS", "true".to_owned()),
        ("KREKI_MQTT__DEVICE_CA_FILE", ca.display().to_string()),
    ];
    let mut consumer_env = env.clone();
    consumer_env.push(("KREKI_MQTT__ENABLED", "true".to_owned()));
    consumer_env.push(("KREKI_MQTT__RECONNECT_MAX_MS", "500".to_owned()));
    let server = Server::start(&consumer_env).await;
    create_account(&url, "081255550301", "kata-sandi-aman", "Sari", &[]);
    let api = JsonApi::new(&server.base);
    let citizen = api.login("081255550301", "kata-sandi-aman").await;
    let (status, device) = api
        .send(
            Method::POST,
            "/v1/mqtt/devices",
            Some(&citizen),
            Some(json!({"kind": "panic", "label": "dapur"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{device}");
    // The button is told where and how to connect, and which CA to trust.
    assert_eq!(device["mqtt"]["host"], "localhost");
    assert_eq!(device["mqtt"]["port"], tls_port);
    assert_eq!(device["mqtt"]["tls"], true);
    assert_eq!(
        device["mqtt"]["ca_certificate"].as_str(),
        Some(std::fs::read_to_string(&ca).expect("the CA").as_str())
    );
    let username = device["mqtt"]["username"].as_str().expect("a username");
    let password = device["mqtt"]["password"].as_str().expect("a password");

    // The operator's sync writes the broker's files, then the broker starts.
    let synced = kreki()
        .args(["mqtt", "sync-credentials", "--password-file"])
        .arg(auth.join("passwd"))
        .arg("--acl-file")
        .arg(auth.join("acl"))
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("runs");
    assert!(
        synced.status.success(),
        "{}",
        String::from_utf8_lossy(&synced.stderr)
    );
    let _broker = start_production_mosquitto(&dir.0, plain_port, tls_port);
    let deadline = Instant::now() + PATIENCE;
    while std::net::TcpStream::connect(("127.0.0.1", tls_port)).is_err() {
        assert!(Instant::now() < deadline, "mosquitto listens");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A press over TLS is acknowledged over TLS (pressed again until the consumer, reconnecting
    // with back-off, has subscribed: the same msg_id is one alert).
    let panic_topic = format!("kreki/v1/panic/{username}");
    let ack_topic = format!("{panic_topic}/ack");
    let payload = r#"{"lat":-6.1754,"lng":106.8272,"kind":"medical","msg_id":"press-tls-1"}"#;
    let ack = loop {
        let listener = Command::new("mosquitto_sub")
            .args(["-h", "localhost", "-p", &tls_port.to_string(), "-q", "1"])
            .arg("--cafile")
            .arg(&ca)
            .args(["-u", username, "-P", password, "-t", &ack_topic])
            .args(["-C", "1", "-W", "3"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto_sub starts");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            publish(
                tls_port,
                Some(&ca),
                (username, password),
                &panic_topic,
                payload
            ),
            "the button's press over TLS is accepted by the broker"
        );
        let output = tokio::task::spawn_blocking(move || listener.wait_with_output())
            .await
            .expect("joined")
            .expect("mosquitto_sub ends");
        let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        if !text.is_empty() {
            break serde_json::from_str::<Value>(&text).expect("a JSON ack");
        }
        assert!(
            Instant::now() < deadline,
            "the press was never acknowledged"
        );
    };
    assert_eq!(ack["status"], "accepted", "{ack}");
    assert_eq!(ack["msg_id"], "press-tls-1");
    let alert_id = ack["alert_id"].as_str().expect("an alert id");
    let (status, alert) = api
        .send(
            Method::GET,
            &format!("/v1/alerts/{alert_id}"),
            Some(&citizen),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{alert}");
    assert_eq!(alert["kind"], "medical");

    // Without the CA, or trusting another one, a client gets nowhere; plain MQTT on the TLS port
    // neither.
    let login = (username, password);
    assert!(!publish(tls_port, None, login, &panic_topic, payload));
    assert!(!publish(
        tls_port,
        Some(&tls.join("other-ca.pem")),
        login,
        &panic_topic,
        payload
    ));
}
