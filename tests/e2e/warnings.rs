//! Warnings in and out through the real `kreki` process and a fake BMKG (issue 19): an
//! earthquake warning read from the fake's RSS of CAP 1.2 documents appears for coordinators
//! (list and socket) with its area, severity, urgency, certainty and instruction; the rule
//! "Extreme earthquake -> on-duty volunteers inside" tells the volunteer inside and not the one
//! outside; a coordinator's broadcast reaches whoever is inside its area, counted not listed, and
//! is published as CAP 1.2 (valid against the OASIS XSD) in the public Atom feed; an `Update`
//! moves the area and a `Cancel` removes it; hostile, huge and broken XML and a feed that is down
//! are refused and counted while the poller goes on; bad broadcast requests are clear 4xx.

use std::time::Duration;

use kreki_cap::fake::{Earthquake, FakeBmkg, Faults};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::support::{
    JsonApi, MONAS, Server, Socket, TempDir, create_account, database_url, frame_where, on_duty_at,
    open_socket, signing_key,
};

pub(crate) const BANDUNG: (f64, f64) = (-6.914744, 107.609810);
pub(crate) const PASSWORD: &str = "kata-sandi-aman";
pub(crate) const PATIENCE: Duration = Duration::from_secs(20);

/// Waits until `GET /v1/warnings` satisfies `wanted`; the list.
async fn warnings_until(
    api: &JsonApi,
    token: &str,
    wanted: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (status, body) = api
            .send(Method::GET, "/v1/warnings", Some(token), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let list = body.as_array().cloned().unwrap_or_default();
        if wanted(&list) {
            return list;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "warnings never became as expected: {body}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// True when the GeoJSON MultiPolygon `area` contains (lat, lng), by ray casting on outer rings.
fn contains(area: &Value, (lat, lng): (f64, f64)) -> bool {
    area["coordinates"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|polygon| {
            let ring: Vec<(f64, f64)> = polygon[0]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| Some((p[0].as_f64()?, p[1].as_f64()?)))
                .collect();
            let mut inside = false;
            for i in 0..ring.len() {
                let (x1, y1) = ring[i];
                let (x2, y2) = ring[(i + 1) % ring.len()];
                if (y1 > lat) != (y2 > lat) && lng < (x2 - x1) * (lat - y1) / (y2 - y1) + x1 {
                    inside = !inside;
                }
            }
            inside
        })
}

/// The next `broadcast` frame (of broadcast `id` when given) within `within`.
pub(crate) async fn broadcast_frame(
    socket: &mut Socket,
    id: Option<&str>,
    within: Duration,
) -> Option<Value> {
    frame_where(socket, "broadcast", within, |frame| {
        id.is_none_or(|id| frame["broadcast"]["id"] == id)
    })
    .await
}

async fn metrics(api: &JsonApi) -> String {
    api.client
        .get(format!("{}/metrics", api.base))
        .send()
        .await
        .expect("answered")
        .text()
        .await
        .expect("text")
}

/// The sum of the counter lines of `name` whose labels contain `label`.
fn counted(metrics: &str, name: &str, label: &str) -> f64 {
    metrics
        .lines()
        .filter(|line| line.starts_with(name) && line.contains(label))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[sqlx::test(migrations = false)]
async fn a_bmkg_earthquake_reaches_the_map_and_the_volunteers_inside(pool: PgPool) {
    let bmkg = FakeBmkg::start("127.0.0.1:0".parse().expect("address"))
        .await
        .expect("fake BMKG starts");
    let dir = TempDir::new();
    let key = signing_key(&dir.0);
    let url = database_url(&pool);
    let env = vec![
        ("KREKI_DATABASE__URL", url.clone()),
        ("KREKI_AUTH__SIGNING_KEY_FILE", key.display().to_string()),
        ("KREKI_DISPATCH__POSITION_FLUSH_INTERVAL_MS", "100".to_owned()),
        (
            "KREKI_CAP__FEEDS",
            format!("[{{name=\"bmkg\", url=\"{}\"}}]", bmkg.feed_url()),
        ),
        ("KREKI_CAP__POLL_INTERVAL_S", "1".to_owned()),
        ("KREKI_CAP__MAX_BACKOFF_S", "2".to_owned()),
        ("KREKI_CAP__PUBLIC_BASE_URL", "{base}".to_owned()),
        (
            "KREKI_CAP__RULES",
            "[{event=\"gempa\", min_severity=\"Extreme\", audience=\"volunteers\", message_id=\"Gempa kuat: {headline}. Periksa keadaan sekitar.\", message_en=\"Strong earthquake: {headline}. Check your surroundings.\"}]".to_owned(),
        ),
    ];
    let server = Server::start(&env).await;
    for (phone, name, roles) in [
        ("081500000001", "Koordinator", &["coordinator"][..]),
        ("081500000002", "Relawan Monas", &["volunteer"][..]),
        ("081500000003", "Relawan Bandung", &["volunteer"][..]),
        ("081500000004", "Admin", &["admin"][..]),
    ] {
        create_account(&url, phone, PASSWORD, name, roles);
    }
    let api = JsonApi::new(&server.base);
    let coordinator = api.login("081500000001", PASSWORD).await;
    let inside = api.login("081500000002", PASSWORD).await;
    let outside = api.login("081500000003", PASSWORD).await;
    let admin = api.login("081500000004", PASSWORD).await;
    // Two regions: the quake's area covers Jakarta's, not Bandung's.
    let mut regions = Vec::new();
    for (name, (lat, lng)) in [("Jakarta", MONAS), ("Bandung", BANDUNG)] {
        let (status, region) = api
            .send(
                Method::POST,
                "/v1/regions",
                Some(&admin),
                Some(
                    json!({"name": name, "area": {"type": "Polygon", "coordinates": [[
                        [lng - 0.1, lat - 0.1], [lng + 0.1, lat - 0.1], [lng + 0.1, lat + 0.1],
                        [lng - 0.1, lat + 0.1], [lng - 0.1, lat - 0.1]
                    ]]}}),
                ),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{region}");
        regions.push(region["id"].as_str().expect("id").to_owned());
    }
    on_duty_at(&api, &inside, MONAS).await;
    on_duty_at(&api, &outside, BANDUNG).await;
    let mut dashboard = open_socket(&server.base, &coordinator).await;
    let mut inside_socket = open_socket(&server.base, &inside).await;
    let mut outside_socket = open_socket(&server.base, &outside).await;
    // Positions are written behind; the rule reads them from the database.
    tokio::time::sleep(Duration::from_millis(800)).await;

    // Nothing yet: the feed is empty.
    let (status, body) = api
        .send(Method::GET, "/v1/warnings", Some(&coordinator), None)
        .await;
    assert_eq!(
        (status, body.clone()),
        (StatusCode::OK, json!([])),
        "{body}"
    );
    // Only coordinators read warnings.
    let (status, _) = api
        .send(Method::GET, "/v1/warnings", Some(&inside), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // BMKG: an M6.2 earthquake near Jakarta, 40 km around the epicentre.
    let quake = bmkg.earthquake(&Earthquake {
        lat: -6.25,
        lng: 106.85,
        radius_km: 40.0,
        magnitude: 6.2,
        severity: None,
    });
    let list = warnings_until(&api, &coordinator, |list| list.len() == 1).await;
    let warning = &list[0];
    assert_eq!(warning["identifier"], quake.as_str());
    assert_eq!(warning["sender"], "bmkg@bmkg.go.id");
    assert_eq!(warning["severity"], "Extreme");
    assert_eq!(warning["urgency"], "Immediate");
    assert_eq!(warning["certainty"], "Observed");
    assert_eq!(warning["event"], "Gempabumi");
    assert!(
        warning["instruction"]
            .as_str()
            .unwrap_or("")
            .contains("gempa susulan"),
        "{warning}"
    );
    let languages: Vec<&str> = warning["infos"]
        .as_array()
        .expect("infos")
        .iter()
        .filter_map(|i| i["language"].as_str())
        .collect();
    assert_eq!(languages, ["id-ID", "en-US"]);
    assert!(contains(&warning["area"], MONAS), "{}", warning["area"]);
    assert!(!contains(&warning["area"], BANDUNG));
    let warning_id = warning["id"].as_str().expect("id").to_owned();
    let shown = frame_where(&mut dashboard, "warning", PATIENCE, |frame| {
        frame["warning"]["id"] == warning_id.as_str()
    })
    .await;
    assert!(shown.is_some(), "the dashboard is told of the warning");
    // An Extreme warning is an escalation for the region it covers (Jakarta), not the other.
    let escalated = frame_where(&mut dashboard, "escalation", PATIENCE, |frame| {
        frame["escalation"]["reason"] == "severe_warning"
    })
    .await
    .expect("the region's coordinators are alarmed");
    assert_eq!(escalated["escalation"]["warning_id"], warning_id.as_str());
    assert_eq!(escalated["escalation"]["region_id"], regions[0].as_str());
    assert!(escalated["escalation"]["alert_id"].is_null());
    let (status, open) = api
        .send(
            Method::GET,
            "/v1/escalations?status=open",
            Some(&coordinator),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{open}");
    let severe: Vec<&Value> = open
        .as_array()
        .expect("list")
        .iter()
        .filter(|e| e["reason"] == "severe_warning")
        .collect();
    assert_eq!(severe.len(), 1, "one region covered: {open}");
    let (status, acked) = api
        .send(
            Method::POST,
            &format!(
                "/v1/escalations/{}/ack",
                severe[0]["id"].as_str().expect("id")
            ),
            Some(&coordinator),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{acked}");

    // The rule told the volunteer inside, in both languages, and not the one outside.
    let ruled = broadcast_frame(&mut inside_socket, None, PATIENCE)
        .await
        .expect("the volunteer inside gets the rule's broadcast");
    assert!(
        ruled["broadcast"]["message"]["id"]
            .as_str()
            .unwrap_or("")
            .starts_with("Gempa kuat")
    );
    assert!(
        ruled["broadcast"]["message"]["en"]
            .as_str()
            .unwrap_or("")
            .starts_with("Strong earthquake")
    );
    assert_eq!(ruled["broadcast"]["warning_id"], warning_id.as_str());
    assert!(
        ruled["broadcast"].get("area").is_none(),
        "no area or positions in the frame"
    );
    assert!(
        broadcast_frame(&mut outside_socket, None, Duration::from_secs(2))
            .await
            .is_none(),
        "the volunteer outside is not told"
    );

    // A coordinator broadcasts to the warning's area: one volunteer reached, counted not listed.
    let (status, sent) = api
        .send(
            Method::POST,
            "/v1/broadcasts",
            Some(&coordinator),
            Some(json!({
                "audience": "volunteers",
                "area": {"warning_id": warning_id},
                "message": {"id": "Berkumpul di posko Monas & tunggu arahan <segera>.", "en": "Gather at the Monas post and wait for instructions."},
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    assert_eq!(sent["reached"], json!({"volunteers": 1, "citizens": 0}));
    assert!(sent.get("recipients").is_none() && !sent.to_string().contains("Relawan"));
    let broadcast_id = sent["id"].as_str().expect("id").to_owned();
    assert!(
        broadcast_frame(&mut inside_socket, Some(&broadcast_id), PATIENCE)
            .await
            .is_some()
    );
    assert!(
        broadcast_frame(
            &mut outside_socket,
            Some(&broadcast_id),
            Duration::from_secs(1)
        )
        .await
        .is_none()
    );

    // A drawn polygon around Bandung reaches the other one only.
    let (status, sent) = api
        .send(
            Method::POST,
            "/v1/broadcasts",
            Some(&coordinator),
            Some(json!({
                "audience": "everyone",
                "area": {"polygon": {"type": "Polygon", "coordinates": [[[107.5, -7.0], [107.7, -7.0], [107.7, -6.8], [107.5, -6.8], [107.5, -7.0]]]}},
                "area_desc": "Kota Bandung",
                "message": {"id": "Uji siaran", "en": "Broadcast test"},
                "severity": "Minor",
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    assert_eq!(sent["reached"]["volunteers"], 1);
    let bandung_id = sent["id"].as_str().expect("id").to_owned();
    assert!(
        broadcast_frame(&mut outside_socket, Some(&bandung_id), PATIENCE)
            .await
            .is_some()
    );

    // CAP out: the Atom feed lists both, each document is CAP 1.2 valid against the OASIS XSD.
    let atom = api
        .client
        .get(format!("{}/cap/alerts.atom", server.base))
        .send()
        .await
        .expect("answered");
    assert_eq!(atom.status(), StatusCode::OK);
    assert!(
        atom.headers()["content-type"]
            .to_str()
            .unwrap_or("")
            .starts_with("application/atom+xml")
    );
    let atom = atom.text().await.expect("text");
    for id in [&broadcast_id, &bandung_id] {
        let link = format!("{}/cap/alerts/{id}.xml", server.base);
        assert!(atom.contains(&link), "{atom}");
        let document = api.client.get(&link).send().await.expect("answered");
        assert_eq!(document.status(), StatusCode::OK);
        assert!(
            document.headers()["content-type"]
                .to_str()
                .unwrap_or("")
                .starts_with("application/cap+xml")
        );
        let xml = document.text().await.expect("text");
        assert!(
            xml.contains("<language>id-ID</language>")
                && xml.contains("<language>en-US</language>")
        );
        assert!(
            xml.contains("&amp; tunggu arahan &lt;segera&gt;") || id == &bandung_id,
            "{xml}"
        );
        kreki_cap::xsd::assert_valid(&xml);
    }
    let missing = api
        .client
        .get(format!(
            "{}/cap/alerts/{}.xml",
            server.base,
            uuid::Uuid::new_v4()
        ))
        .send()
        .await
        .expect("answered");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    // An Update moves the area to Bandung: one warning still, now there.
    assert!(bmkg.update(&quake, BANDUNG.0, BANDUNG.1, 25.0));
    let list = warnings_until(&api, &coordinator, |list| {
        list.len() == 1 && list[0]["id"] != warning_id.as_str()
    })
    .await;
    assert_eq!(list[0]["msg_type"], "Update");
    assert!(contains(&list[0]["area"], BANDUNG) && !contains(&list[0]["area"], MONAS));
    let removed = frame_where(&mut dashboard, "warning.removed", PATIENCE, |frame| {
        frame["ids"]
            .as_array()
            .is_some_and(|ids| ids.iter().any(|id| id == warning_id.as_str()))
    })
    .await;
    assert!(removed.is_some(), "the dashboard is told the old area left");
    // A Cancel removes it.
    assert!(bmkg.cancel(&quake));
    warnings_until(&api, &coordinator, <[Value]>::is_empty).await;

    // Hostile, huge and broken XML, and an outage: refused, counted, and the poller goes on.
    bmkg.set_faults(Faults {
        hostile: true,
        huge: true,
        ..Faults::default()
    });
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let text = metrics(&api).await;
        if counted(&text, "kreki_cap_refused_total", "reason=\"dtd\"") >= 1.0
            && counted(&text, "kreki_cap_refused_total", "reason=\"area\"") >= 1.0
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "refusals not counted:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    bmkg.set_faults(Faults {
        broken: true,
        ..Faults::default()
    });
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while counted(
        &metrics(&api).await,
        "kreki_cap_refused_total",
        "reason=\"xml\"",
    ) < 1.0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "broken XML not counted"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    bmkg.set_faults(Faults {
        oversized: true,
        ..Faults::default()
    });
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while counted(
        &metrics(&api).await,
        "kreki_cap_refused_total",
        "reason=\"too_large\"",
    ) < 1.0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "an oversized feed is not counted"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    bmkg.set_faults(Faults {
        down: true,
        ..Faults::default()
    });
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while counted(
        &metrics(&api).await,
        "kreki_cap_polls_total",
        "result=\"failed\"",
    ) < 1.0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the outage is not counted"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (status, _) = api
        .send(Method::GET, "/v1/warnings", Some(&coordinator), None)
        .await;
    assert_eq!(status, StatusCode::OK, "kreki is unharmed");
    bmkg.set_faults(Faults::default());
    let weather = bmkg.weather(
        &[
            [-6.1, 106.7],
            [-6.1, 106.9],
            [-6.3, 106.9],
            [-6.3, 106.7],
            [-6.1, 106.7],
        ],
        "Moderate",
    );
    let list = warnings_until(&api, &coordinator, |list| {
        list.iter().any(|w| w["identifier"] == weather.as_str())
    })
    .await;
    assert_eq!(list.len(), 1, "nothing hostile reached the map: {list:?}");
    let (polls, not_modified) = bmkg.requests();
    assert!(
        polls > 0 && not_modified > 0,
        "the poller asks with If-None-Match ({polls}, {not_modified})"
    );

    // Bad requests are clear 4xx, never 500.
    for (body, field) in [
        (
            json!({"audience": "all", "area": {"warning_id": warning_id}, "message": {"id": "a", "en": "b"}}),
            "audience",
        ),
        (
            json!({"audience": "volunteers", "area": {}, "message": {"id": "a", "en": "b"}}),
            "area",
        ),
        (
            json!({"audience": "volunteers", "area": {"polygon": {"type": "Polygon", "coordinates": [[[1, 2], [3, 4]]]}}, "message": {"id": "a", "en": "b"}}),
            "area.polygon",
        ),
        (
            json!({"audience": "volunteers", "area": {"warning_id": warning_id}, "message": {"id": "", "en": "b"}}),
            "message.id",
        ),
        (
            // A ring of one point four times: nothing is left once PostGIS makes it valid.
            json!({"audience": "volunteers", "area": {"polygon": {"type": "Polygon", "coordinates": [[[106.8, -6.2], [106.8, -6.2], [106.8, -6.2], [106.8, -6.2]]]}}, "message": {"id": "a", "en": "b"}}),
            "area",
        ),
    ] {
        let (status, problem) = api
            .send(
                Method::POST,
                "/v1/broadcasts",
                Some(&coordinator),
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert!(
            problem["errors"]
                .as_array()
                .is_some_and(|e| e.iter().any(|e| e["field"] == field)),
            "{problem}"
        );
    }
    let (status, _) = api
        .send(
            Method::POST,
            "/v1/broadcasts",
            Some(&coordinator),
            Some(json!({"audience": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = api
        .send(
            Method::POST,
            "/v1/broadcasts",
            Some(&coordinator),
            Some(json!({"audience": "volunteers", "area": {"warning_id": uuid::Uuid::new_v4()}, "message": {"id": "a", "en": "b"}})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = api
        .send(
            Method::POST,
            "/v1/broadcasts",
            Some(&inside),
            Some(json!({"audience": "volunteers", "area": {"warning_id": warning_id}, "message": {"id": "a", "en": "b"}})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}
