//! Dispatch that follows the evidence, through a real `kreki` process and real sockets: a cardiac
//! arrest keeps seven offers live and a decline is replaced before its answer returns; the first
//! three accepts become the CPR, AED and lead responders; co-responders see each other's positions
//! while they are assigned, and stop seeing them after.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::support::{JsonApi, MONAS, Server, TempDir, database_url, kreki, signing_key};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

const PATIENCE: Duration = Duration::from_secs(10);

fn north(metres: f64) -> (f64, f64) {
    (MONAS.0 + metres / 110_574.0, MONAS.1)
}

/// Runs a `kreki` command against the test's database.
fn cli(url: &str, args: &[&str]) -> String {
    let output = kreki()
        .args(args)
        .env("KREKI_DATABASE__URL", url)
        .output()
        .expect("kreki runs");
    assert!(
        output.status.success(),
        "kreki {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A signed-in volunteer with a socket.
struct Volunteer {
    id: String,
    token: String,
    socket: Socket,
}

async fn connect(server: &Server, token: &str) -> Socket {
    let url = format!(
        "{}/v1/ws?access_token={token}",
        server.base.replacen("http://", "ws://", 1)
    );
    tokio_tungstenite::connect_async(url)
        .await
        .expect("upgraded")
        .0
}

/// The next frame of `kind` within `within`, skipping others; `None` when none came.
async fn next_of(socket: &mut Socket, kind: &str, within: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let message = match tokio::time::timeout_at(deadline, socket.next()).await {
            Err(_) => return None,
            Ok(message) => message.expect("open").expect("a valid frame"),
        };
        if let Message::Text(text) = message {
            let frame: Value = serde_json::from_str(text.as_str()).expect("JSON");
            if frame["type"] == kind {
                return Some(frame);
            }
        }
    }
}

async fn volunteer(
    api: &JsonApi,
    server: &Server,
    url: &str,
    index: usize,
    at: (f64, f64),
) -> Volunteer {
    let phone = format!("0812555500{index:02}");
    cli(
        url,
        &[
            "user",
            "create",
            "--phone",
            &phone,
            "--password",
            "kata-sandi-aman",
            "--name",
            &format!("Relawan {index}"),
            "--role",
            "volunteer",
        ],
    );
    let token = api.login(&phone, "kata-sandi-aman").await;
    let (_, me) = api
        .send(Method::GET, "/v1/auth/me", Some(&token), None)
        .await;
    let id = me["id"].as_str().expect("an id").to_owned();
    cli(
        url,
        &["volunteer", "grant-cert", "--user", &id, "--cert", "bls"],
    );
    let (status, body) = api
        .send(
            Method::PUT,
            "/v1/volunteers/me/duty",
            Some(&token),
            Some(json!({"on_duty": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = api
        .send(
            Method::POST,
            "/v1/volunteers/me/location",
            Some(&token),
            Some(json!({"lat": at.0, "lng": at.1, "accuracy_m": 5})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let socket = connect(server, &token).await;
    Volunteer { id, token, socket }
}

#[sqlx::test(migrations = false)]
async fn a_cardiac_arrest_gets_cpr_aed_and_lead_with_decliners_replaced_and_the_team_in_touch(
    pool: PgPool,
) {
    let dir = TempDir::new();
    let url = database_url(&pool);
    let server = Server::start(&[
        ("KREKI_DATABASE__URL", url.clone()),
        (
            "KREKI_AUTH__SIGNING_KEY_FILE",
            signing_key(&dir.0).display().to_string(),
        ),
    ])
    .await;
    let api = JsonApi::new(&server.base);
    let mut team = Vec::new();
    for index in 0..9 {
        let at = north(40.0 * (index as f64 + 1.0));
        team.push(volunteer(&api, &server, &url, index, at).await);
    }
    cli(
        &url,
        &[
            "user",
            "create",
            "--phone",
            "081355550001",
            "--password",
            "kata-sandi-aman",
            "--name",
            "Sari",
        ],
    );
    let citizen = api.login("081355550001", "kata-sandi-aman").await;
    let response = api
        .client
        .post(format!("{}/v1/alerts", api.base))
        .bearer_auth(&citizen)
        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
        .json(&json!({"kind": "cardiac_arrest", "location": {"lat": MONAS.0, "lng": MONAS.1, "accuracy_m": 10}}))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), StatusCode::CREATED);
    let alert: Value = response.json().await.expect("JSON");

    // Seven live at once: the seven nearest get their offer on their socket.
    let mut offers = Vec::new();
    for member in &mut team[..7] {
        let frame = next_of(&mut member.socket, "offer", PATIENCE)
            .await
            .expect("an offer on the socket");
        assert_eq!(frame["offer"]["alert"]["id"], alert["id"]);
        offers.push(frame["offer"].clone());
    }
    assert!(
        next_of(&mut team[7].socket, "offer", Duration::from_millis(300))
            .await
            .is_none()
    );

    // The nearest declines: the eighth nearest is offered before the decline is answered.
    let started = Instant::now();
    let (status, body) = api
        .send(
            Method::POST,
            &format!(
                "/v1/offers/{}/decline",
                offers[0]["id"].as_str().expect("id")
            ),
            Some(&team[0].token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let answered = started.elapsed();
    let replacement = next_of(&mut team[7].socket, "offer", PATIENCE)
        .await
        .expect("the replacement's offer");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "replaced in {:?} (decline answered in {answered:?})",
        started.elapsed()
    );
    assert_eq!(replacement["offer"]["alert"]["id"], alert["id"]);

    // Three accept, in turn: CPR, AED, lead.
    let mut roles = Vec::new();
    for (member, offer) in team[1..4].iter().zip(&offers[1..4]) {
        let (status, assignment) = api
            .send(
                Method::POST,
                &format!("/v1/offers/{}/accept", offer["id"].as_str().expect("id")),
                Some(&member.token),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{assignment}");
        roles.push((assignment["role"].clone(), assignment["id"].clone()));
    }
    let names: Vec<&Value> = roles.iter().map(|(role, _)| role).collect();
    assert_eq!(names, [&json!("cpr"), &json!("aed"), &json!("lead")]);

    // The CPR responder moves: the AED and lead responders see it on their sockets.
    let cpr_at = north(10.0);
    team[1]
        .socket
        .send(Message::text(
            json!({"type": "location", "lat": cpr_at.0, "lng": cpr_at.1, "accuracy_m": 5})
                .to_string(),
        ))
        .await
        .expect("sent");
    let cpr_id = team[1].id.clone();
    for member in &mut team[2..4] {
        let seen = next_of(&mut member.socket, "responder.position", PATIENCE)
            .await
            .expect("a co-responder's position");
        assert_eq!(seen["volunteer"]["id"], cpr_id.as_str());
        assert_eq!(seen["role"], "cpr");
        assert_eq!(seen["alert_id"], alert["id"]);
    }
    assert!(
        next_of(
            &mut team[5].socket,
            "responder.position",
            Duration::from_millis(300)
        )
        .await
        .is_none(),
        "a volunteer who is not on the team sees nothing"
    );

    // The CPR responder completes: their next position reaches nobody.
    let (status, body) = api
        .send(
            Method::POST,
            &format!(
                "/v1/assignments/{}/status",
                roles[0].1.as_str().expect("id")
            ),
            Some(&team[1].token),
            Some(json!({"status": "completed"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let later = north(5.0);
    team[1]
        .socket
        .send(Message::text(
            json!({"type": "location", "lat": later.0, "lng": later.1}).to_string(),
        ))
        .await
        .expect("sent");
    assert!(
        next_of(
            &mut team[2].socket,
            "responder.position",
            Duration::from_millis(800)
        )
        .await
        .is_none(),
        "a responder who completed is no longer on the team"
    );
    server.terminate();
}
