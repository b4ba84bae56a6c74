//! What KREKI writes and what the fake BMKG serves are CAP 1.2 valid against the official OASIS
//! XSD (vendored in `cap/schema/`, checked by xmllint), including text that needs escaping and
//! areas from circles and drawn polygons; and a document the XSD refuses is refused here too, so
//! the check can fail.

use chrono::{TimeZone, Utc};
use kreki_cap::out;
use kreki_cap::store::BroadcastRow;
use kreki_cap::xsd;
use sqlx::types::Json;

fn row(message_id: &str, area: serde_json::Value) -> BroadcastRow {
    BroadcastRow {
        id: uuid::Uuid::from_u128(7),
        sent_at: Utc
            .with_ymd_and_hms(2026, 12, 5, 14, 0, 0)
            .single()
            .expect("time")
            + chrono::Duration::milliseconds(123),
        sender_id: None,
        audience: "volunteers".to_owned(),
        message_id: message_id.to_owned(),
        message_en: "Gather at the post & wait".to_owned(),
        area: Json(area),
        area_desc: "Jakarta <Pusat>".to_owned(),
        warning_id: None,
        severity: "Extreme".to_owned(),
        urgency: "Immediate".to_owned(),
        event: "Gempabumi".to_owned(),
        volunteers: 3,
        citizens: 0,
        expires_at: Utc
            .with_ymd_and_hms(2026, 12, 5, 20, 0, 0)
            .single()
            .expect("time"),
    }
}

#[test]
fn outgoing_documents_are_valid_cap_1_2() {
    let square = serde_json::json!({"type": "MultiPolygon", "coordinates": [
        [[[106.8, -6.1], [106.9, -6.1], [106.9, -6.2], [106.8, -6.2], [106.8, -6.1]]],
        [[[107.5, -7.0], [107.7, -7.0], [107.7, -6.8], [107.5, -7.0]]]
    ]});
    let document = out::document(
        &row("Berkumpul di posko & tunggu <arahan> \"segera\"", square),
        "kreki@kreki.id",
        "https://kreki.example.id/",
    );
    xsd::assert_valid(&document);
    assert!(document.contains("<sent>2026-12-05T14:00:00+00:00</sent>"));
    assert_eq!(
        document.matches("<polygon>").count(),
        4,
        "two polygons in each of two infos"
    );
    // What KREKI writes, KREKI reads back.
    let read =
        kreki_cap::parse::alert(&document, &Default::default(), &|_, _| None).expect("reads");
    assert_eq!(read.infos.len(), 2);
    assert_eq!(read.area.polygons.len(), 4);
}

#[test]
fn the_validator_refuses_what_the_xsd_refuses() {
    let document = out::document(
        &row(
            "x",
            serde_json::json!({"type": "Polygon", "coordinates": []}),
        ),
        "kreki@kreki.id",
        "https://kreki.example.id",
    );
    xsd::assert_valid(&document);
    let wrong = document.replace("<status>Actual</status>", "<status>Real</status>");
    assert!(xsd::validate(&wrong).is_err());
    let zulu = document.replace("+00:00</sent>", "Z</sent>");
    assert!(xsd::validate(&zulu).is_err(), "CAP 1.2 forbids Z in sent");
}

#[tokio::test]
async fn the_fake_bmkg_serves_valid_cap_1_2() {
    let bmkg = kreki_cap::fake::FakeBmkg::start("127.0.0.1:0".parse().expect("address"))
        .await
        .expect("starts");
    let quake = bmkg.earthquake(&kreki_cap::fake::Earthquake {
        lat: -6.25,
        lng: 106.85,
        radius_km: 40.0,
        magnitude: 6.2,
        severity: None,
    });
    bmkg.weather(
        &[[-6.1, 106.7], [-6.1, 106.9], [-6.3, 106.9], [-6.1, 106.7]],
        "Severe",
    );
    assert!(bmkg.update(&quake, -6.9, 107.6, 20.0));
    assert!(bmkg.cancel(&quake));
    let client = reqwest::Client::new();
    let feed = client
        .get(bmkg.feed_url())
        .send()
        .await
        .expect("answers")
        .text()
        .await
        .expect("text");
    let entries = kreki_cap::feed::entries(&feed, &Default::default(), 50, &|_, _| None)
        .expect("an RSS feed");
    assert_eq!(entries.len(), 4);
    for entry in entries {
        let kreki_cap::feed::Entry::Link(url) = entry else {
            panic!("the fake links its documents")
        };
        let xml = client
            .get(&url)
            .send()
            .await
            .expect("answers")
            .text()
            .await
            .expect("text");
        xsd::assert_valid(&xml);
        kreki_cap::parse::alert(&xml, &Default::default(), &|_, _| None).expect("KREKI reads it");
    }
}
