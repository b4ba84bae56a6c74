//! End to end through the real `kreki` process, its own database and real WebSocket clients: a
//! citizen and five volunteers at known distances; the citizen panics; the three nearest get an
//! `offer`; one accepts; the citizen sees `assigned`; the other two get `offer.withdrawn`.
//!
//! Accounts come from `kreki user create`, certifications from `kreki volunteer grant-cert`, tokens
//! from `POST /v1/auth/login`; positions arrive as WebSocket `location` frames.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sqlx::Connection;
use tokio_tungstenite::tungstenite::Message;

const BIN: &str = env!("CARGO_BIN_EXE_kreki");
const MONAS: (f64, f64) = (-6.175392, 106.827153);
const WAIT: Duration = Duration::from_secs(10);

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn admin_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database of its own, dropped at the end.
struct Database {
    name: String,
    url: String,
}

impl Database {
    async fn create() -> Self {
        let name = format!("kreki_e2e_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&admin_url())
            .await
            .expect("PostgreSQL is up");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE {name} TEMPLATE template1"
        )))
        .execute(&mut admin)
        .await
        .expect("database created");
        let base = admin_url();
        let url = match base.rfind('/') {
            Some(slash) => format!("{}/{name}", &base[..slash]),
            None => panic!("DATABASE_URL has no database name"),
        };
        Self { name, url }
    }

    async fn drop_it(&self) {
        if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url()).await {
            let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut admin)
                .await;
        }
    }
}

struct Kreki {
    child: Child,
    base: String,
}

impl Drop for Kreki {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn environment(db: &Database, key: &Path, listen: &str) -> Vec<(&'static str, String)> {
    vec![
        ("KREKI_DATABASE__URL", db.url.clone()),
        ("KREKI_AUTH__SIGNING_KEY_FILE", key.display().to_string()),
        ("KREKI_SERVER__LISTEN", listen.to_owned()),
        ("KREKI_LOG__FORMAT", "json".to_owned()),
        ("KREKI_LOG__FILTER", "warn".to_owned()),
    ]
}

fn cli(env: &[(&'static str, String)], args: &[&str]) -> String {
    let output = Command::new(BIN)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("kreki runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "kreki {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("a port")
        .local_addr()
        .expect("bound")
        .port()
}

struct Person {
    id: String,
    token: String,
}

async fn login(http: &reqwest::Client, base: &str, phone: &str) -> Person {
    let answer: Value = http
        .post(format!("{base}/v1/auth/login"))
        .json(&json!({"login": phone, "password": "kata-sandi-aman"}))
        .send()
        .await
        .expect("login answers")
        .json()
        .await
        .expect("JSON");
    let token = answer["access_token"].as_str().expect("a token").to_owned();
    let me: Value = http
        .get(format!("{base}/v1/auth/me"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("me")
        .json()
        .await
        .expect("JSON");
    Person {
        id: me["id"].as_str().expect("an id").to_owned(),
        token,
    }
}

async fn connect(base: &str, person: &Person) -> Socket {
    let url = format!(
        "{}/v1/ws?access_token={}",
        base.replace("http://", "ws://"),
        person.token
    );
    tokio_tungstenite::connect_async(url)
        .await
        .expect("upgraded")
        .0
}

/// Reads frames until one satisfies `wanted`; None after `within`.
async fn next_matching(
    socket: &mut Socket,
    within: Duration,
    wanted: impl Fn(&Value) -> bool,
) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let frame = tokio::time::timeout_at(deadline, socket.next())
            .await
            .ok()??
            .ok()?;
        if let Message::Text(text) = frame {
            let value: Value = serde_json::from_str(text.as_str()).expect("JSON frames");
            if wanted(&value) {
                return Some(value);
            }
        }
    }
}

fn north(metres: f64) -> (f64, f64) {
    (MONAS.0 + metres / 110_574.0, MONAS.1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_to_offer_to_accept_over_websockets() {
    let db = Database::create().await;
    let dir = std::env::temp_dir().join(format!("kreki-e2e-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let key: PathBuf = dir.join("signing.pem");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let env = environment(&db, &key, &format!("127.0.0.1:{port}"));

    cli(
        &env,
        &["keys", "generate", "--out", &key.display().to_string()],
    );
    cli(&env, &["migrate"]);
    let phones = [
        "081200000001",
        "081200000002",
        "081200000003",
        "081200000004",
        "081200000005",
        "081200000006",
        "081200000007",
        "081200000008",
    ];
    cli(
        &env,
        &[
            "user",
            "create",
            "--phone",
            phones[0],
            "--password",
            "kata-sandi-aman",
            "--name",
            "Sari",
        ],
    );
    cli(
        &env,
        &[
            "user",
            "create",
            "--phone",
            phones[1],
            "--password",
            "kata-sandi-aman",
            "--name",
            "Koordinator",
            "--role",
            "coordinator",
        ],
    );
    cli(
        &env,
        &[
            "user",
            "create",
            "--phone",
            phones[7],
            "--password",
            "kata-sandi-aman",
            "--name",
            "Pelatih",
            "--role",
            "trainer",
        ],
    );
    for (index, phone) in phones[2..7].iter().enumerate() {
        cli(
            &env,
            &[
                "user",
                "create",
                "--phone",
                phone,
                "--password",
                "kata-sandi-aman",
                "--name",
                &format!("Relawan {index}"),
                "--role",
                "volunteer",
            ],
        );
    }

    let child = Command::new(BIN)
        .arg("serve")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("kreki serve starts");
    let server = Kreki {
        child,
        base: base.clone(),
    };
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Ok(answer) = http.get(format!("{}/readyz", server.base)).send().await
            && answer.status().is_success()
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "kreki did not get ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let citizen = login(&http, &base, phones[0]).await;
    let coordinator = login(&http, &base, phones[1]).await;
    let mut volunteers = Vec::new();
    let trainer = login(&http, &base, phones[7]).await;
    for phone in &phones[2..7] {
        volunteers.push(login(&http, &base, phone).await);
    }
    // The nearest volunteer's first aid comes from the LMS later; the others' from the CLI.
    for volunteer in &volunteers[1..] {
        cli(
            &env,
            &[
                "volunteer",
                "grant-cert",
                "--user",
                &volunteer.id,
                "--cert",
                "first_aid",
            ],
        );
    }

    // Volunteers go on duty and report where they are over their sockets.
    let distances = [100.0, 200.0, 300.0, 600.0, 900.0];
    let mut sockets = Vec::new();
    for (volunteer, metres) in volunteers.iter().zip(distances) {
        let duty: Value = http
            .put(format!("{base}/v1/volunteers/me/duty"))
            .bearer_auth(&volunteer.token)
            .json(&json!({"on_duty": true}))
            .send()
            .await
            .expect("duty")
            .json()
            .await
            .expect("JSON");
        let medical = duty["eligible_kinds"]
            .as_array()
            .expect("kinds")
            .contains(&json!("medical"));
        assert_eq!(medical, volunteer.id != volunteers[0].id, "{duty}");
        let mut socket = connect(&base, volunteer).await;
        let (lat, lng) = north(metres);
        socket
            .send(Message::text(
                json!({"type": "location", "lat": lat, "lng": lng, "accuracy_m": 5}).to_string(),
            ))
            .await
            .expect("sent");
        // Frames of one socket are handled in order: the pong means the position is in the
        // matcher, not only in PostgreSQL.
        socket
            .send(Message::text(r#"{"type":"ping"}"#))
            .await
            .expect("sent");
        let pong = next_matching(&mut socket, WAIT, |m| {
            m["type"] == "pong" || m["type"] == "error"
        })
        .await;
        assert_eq!(
            pong.as_ref().map(|m| &m["type"]),
            Some(&json!("pong")),
            "{pong:?}"
        );
        sockets.push(socket);
    }
    // The coordinator's map shows all five before anyone panics.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let map: Value = http
            .get(format!("{base}/v1/volunteers"))
            .bearer_auth(&coordinator.token)
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("JSON");
        if map.as_array().is_some_and(|list| list.len() == 5) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "positions never arrived: {map}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A trainer records the nearest volunteer's first-aid certificate in the LMS: dispatch hears
    // of it and she becomes eligible at once, without going off and on duty.
    let recorded = http
        .post(format!("{base}/v1/lms/certificates"))
        .bearer_auth(&trainer.token)
        .json(
            &json!({"user_id": volunteers[0].id, "certification": "first_aid",
                      "issued_at": "2026-01-05T00:00:00Z", "holder_name": "Relawan 0",
                      "evidence": "Kartu PMI 123"}),
        )
        .send()
        .await
        .expect("recorded");
    assert_eq!(recorded.status(), 201, "{:?}", recorded.text().await);
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut citizen_socket = connect(&base, &citizen).await;
    let answer = http
        .post(format!("{base}/v1/alerts"))
        .bearer_auth(&citizen.token)
        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
        .json(&json!({"kind": "medical", "location": {"lat": MONAS.0, "lng": MONAS.1, "accuracy_m": 10}, "note": "pingsan"}))
        .send()
        .await
        .expect("panic answered");
    assert_eq!(answer.status(), 201);
    let alert: Value = answer.json().await.expect("JSON");
    let alert_id = alert["id"].clone();

    // Following the alert's topic: its citizen may.
    citizen_socket
        .send(Message::text(json!({"type": "subscribe", "topic": format!("alert:{}", alert_id.as_str().expect("id"))}).to_string()))
        .await
        .expect("sent");
    let subscribed = next_matching(&mut citizen_socket, WAIT, |m| {
        m["type"] == "subscribed" || m["type"] == "error"
    })
    .await;
    assert_eq!(
        subscribed.as_ref().map(|m| &m["type"]),
        Some(&json!("subscribed")),
        "{subscribed:?}"
    );
    // Location frames: only volunteers, only valid coordinates.
    citizen_socket
        .send(Message::text(
            json!({"type": "location", "lat": MONAS.0, "lng": MONAS.1}).to_string(),
        ))
        .await
        .expect("sent");
    let error = next_matching(&mut citizen_socket, WAIT, |m| m["type"] == "error")
        .await
        .expect("an error frame");
    assert_eq!(error["problem"]["status"], 403, "{error}");

    // The three nearest get the offer, nearest distances first; the two farther ones do not.
    let mut offers = Vec::new();
    for (socket, metres) in sockets.iter_mut().zip(distances).take(3) {
        let Some(offer) = next_matching(socket, WAIT, |m| m["type"] == "offer").await else {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("db");
            let offers: Vec<(String, f64, String)> = sqlx::query_as(
                "SELECT volunteer_id::text, distance_m, status FROM dispatch.offers ORDER BY distance_m",
            )
            .fetch_all(&mut conn)
            .await
            .expect("offers");
            let ids: Vec<&str> = volunteers.iter().map(|v| v.id.as_str()).collect();
            panic!("no offer at {metres} m; volunteers {ids:?}; offers {offers:?}");
        };
        assert_eq!(offer["offer"]["alert"]["id"], alert_id);
        assert!(offer["seq"].as_u64().is_some());
        let distance = offer["offer"]["distance_m"].as_f64().expect("distance");
        assert!((distance - metres).abs() < 2.0, "{distance} vs {metres}");
        offers.push(offer["offer"].clone());
    }
    for socket in sockets.iter_mut().skip(3) {
        assert!(
            next_matching(socket, Duration::from_millis(500), |m| m["type"] == "offer")
                .await
                .is_none()
        );
    }
    // A volunteer never offered the alert may not follow it; a bad position is refused.
    sockets[4]
        .send(Message::text(json!({"type": "subscribe", "topic": format!("alert:{}", alert_id.as_str().expect("id"))}).to_string()))
        .await
        .expect("sent");
    let refused = next_matching(&mut sockets[4], WAIT, |m| {
        m["type"] == "error" || m["type"] == "subscribed"
    })
    .await;
    assert_eq!(
        refused.as_ref().map(|m| &m["problem"]["status"]),
        Some(&json!(403)),
        "{refused:?}"
    );
    sockets[4]
        .send(Message::text(
            json!({"type": "location", "lat": 95.0, "lng": MONAS.1}).to_string(),
        ))
        .await
        .expect("sent");
    let error = next_matching(&mut sockets[4], WAIT, |m| m["type"] == "error")
        .await
        .expect("an error frame");
    assert_eq!(error["problem"]["errors"][0]["field"], "lat", "{error}");

    // The second nearest accepts.
    let offer_id = offers[1]["id"].as_str().expect("id");
    let answer = http
        .post(format!("{base}/v1/offers/{offer_id}/accept"))
        .bearer_auth(&volunteers[1].token)
        .send()
        .await
        .expect("accept answered");
    assert_eq!(answer.status(), 200);
    let assignment: Value = answer.json().await.expect("JSON");
    assert_eq!(assignment["volunteer"]["id"], volunteers[1].id.as_str());

    let assigned = next_matching(&mut citizen_socket, WAIT, |m| {
        m["type"] == "alert.updated" && m["alert"]["status"] == "assigned"
    })
    .await
    .expect("the citizen sees assigned");
    assert_eq!(assigned["alert"]["id"], alert_id);
    assert_eq!(
        assigned["alert"]["assignments"][0]["volunteer"]["name"],
        "Relawan 1"
    );

    for index in [0, 2] {
        let withdrawn = next_matching(&mut sockets[index], WAIT, |m| {
            m["type"] == "offer.withdrawn"
        })
        .await
        .unwrap_or_else(|| panic!("volunteer {index} not told"));
        assert_eq!(withdrawn["alert_id"], alert_id);
        assert_eq!(withdrawn["offer_id"], offers[index]["id"]);
    }
    // A late accept is told why.
    let late = http
        .post(format!(
            "{base}/v1/offers/{}/accept",
            offers[0]["id"].as_str().expect("id")
        ))
        .bearer_auth(&volunteers[0].token)
        .send()
        .await
        .expect("answered");
    assert_eq!(late.status(), 409);
    let problem: Value = late.json().await.expect("JSON");
    assert_eq!(problem["type"], "https://kreki.id/problems/alert-covered");

    drop(server);
    db.drop_it().await;
    let _ = std::fs::remove_dir_all(&dir);
}
