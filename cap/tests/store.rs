//! Applying CAP messages against PostgreSQL + PostGIS: a message read twice is stored once; an
//! Update replaces what it references and a Cancel removes it, also when they arrive before the
//! message they name; an expired warning is not active; circles and polygons become one valid
//! area; a broadcast over a warning takes its area, and one whose area is empty is refused.

use std::sync::Arc;

use chrono::{Duration, Utc};
use kreki_cap::model::CapAlert;
use kreki_cap::parse::{self, Limits};
use kreki_cap::ports::{NobodyKnown, Silent};
use kreki_cap::service::Outcome;
use kreki_cap::{CapConfig, CapService, store};
use sqlx::PgPool;

fn document(
    identifier: &str,
    msg_type: &str,
    sent: &str,
    references: &str,
    area: &str,
    expires: &str,
) -> String {
    let references = if references.is_empty() {
        String::new()
    } else {
        format!("<references>{references}</references>")
    };
    format!(
        r#"<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>{identifier}</identifier>
        <sender>bmkg@bmkg.go.id</sender><sent>{sent}</sent><status>Actual</status>
        <msgType>{msgType}</msgType><scope>Public</scope>{references}
        <info><language>id-ID</language><category>Geo</category><event>Gempabumi</event>
        <urgency>Immediate</urgency><severity>Severe</severity><certainty>Observed</certainty>
        <expires>{expires}</expires><headline>Gempa</headline>
        <area><areaDesc>Jakarta</areaDesc>{area}</area></info></alert>"#,
        msgType = msg_type
    )
}

fn read(xml: &str) -> CapAlert {
    parse::alert(xml, &Limits::default(), &|_, _| None).expect("valid CAP")
}

fn later(hours: i64) -> String {
    (Utc::now() + Duration::hours(hours))
        .format("%Y-%m-%dT%H:%M:%S+00:00")
        .to_string()
}

fn service(pool: &PgPool) -> Arc<CapService> {
    CapService::new(
        pool.clone(),
        CapConfig::default(),
        Arc::new(NobodyKnown),
        Arc::new(Silent),
    )
}

const CIRCLE: &str = "<circle>-6.2,106.8 20</circle>";
const SQUARE: &str = "<polygon>-6.9,107.5 -6.9,107.7 -6.7,107.7 -6.7,107.5 -6.9,107.5</polygon>";

#[sqlx::test(migrations = "../migrations")]
async fn duplicates_updates_cancels_and_expiry(pool: PgPool) {
    let cap = service(&pool);
    let first = read(&document(
        "q1",
        "Alert",
        "2026-12-05T21:00:00+07:00",
        "",
        &format!("{CIRCLE}{SQUARE}"),
        &later(3),
    ));
    assert_eq!(
        cap.apply("bmkg", &first).await.expect("stored"),
        Outcome::Stored {
            shown: true,
            retired: 0
        }
    );
    // The same message again (another poll, another instance): stored once.
    assert_eq!(
        cap.apply("bmkg", &first).await.expect("read"),
        Outcome::Duplicate
    );
    let active = store::active(&pool, 10).await.expect("active");
    assert_eq!(active.len(), 1);
    let area = active[0].area.as_ref().expect("an area").0.clone();
    assert_eq!(area["type"], "MultiPolygon");
    assert_eq!(
        area["coordinates"].as_array().map(Vec::len),
        Some(2),
        "circle and square, apart"
    );

    // An Update replaces it.
    let update = read(&document(
        "q2",
        "Update",
        "2026-12-05T21:05:00+07:00",
        "bmkg@bmkg.go.id,q1,2026-12-05T21:00:00+07:00",
        CIRCLE,
        &later(3),
    ));
    assert_eq!(
        cap.apply("bmkg", &update).await.expect("stored"),
        Outcome::Stored {
            shown: true,
            retired: 1
        }
    );
    let active = store::active(&pool, 10).await.expect("active");
    assert_eq!(
        active
            .iter()
            .map(|w| w.identifier.as_str())
            .collect::<Vec<_>>(),
        ["q2"]
    );
    // A Cancel of the update removes it.
    let cancel = read(&document(
        "q3",
        "Cancel",
        "2026-12-05T21:10:00+07:00",
        "bmkg@bmkg.go.id,q2,2026-12-05T14:05:00+00:00",
        "",
        &later(3),
    ));
    assert_eq!(
        cap.apply("bmkg", &cancel).await.expect("stored"),
        Outcome::Stored {
            shown: false,
            retired: 1
        }
    );
    assert!(store::active(&pool, 10).await.expect("active").is_empty());

    // Out of order: the Cancel of r1 arrives first; r1 then never shows.
    let cancel_first = read(&document(
        "r2",
        "Cancel",
        "2026-12-05T22:10:00+07:00",
        "bmkg@bmkg.go.id,r1,2026-12-05T22:00:00+07:00",
        "",
        &later(3),
    ));
    cap.apply("bmkg", &cancel_first).await.expect("stored");
    let late = read(&document(
        "r1",
        "Alert",
        "2026-12-05T22:00:00+07:00",
        "",
        CIRCLE,
        &later(3),
    ));
    assert_eq!(
        cap.apply("bmkg", &late).await.expect("stored"),
        Outcome::Stored {
            shown: false,
            retired: 0
        }
    );
    // The Update of s1 arrives first; s1 is stored replaced, the Update shows.
    let update_first = read(&document(
        "s2",
        "Update",
        "2026-12-05T23:10:00+07:00",
        "bmkg@bmkg.go.id,s1,2026-12-05T23:00:00+07:00",
        SQUARE,
        &later(3),
    ));
    cap.apply("bmkg", &update_first).await.expect("stored");
    let late = read(&document(
        "s1",
        "Alert",
        "2026-12-05T23:00:00+07:00",
        "",
        CIRCLE,
        &later(3),
    ));
    assert_eq!(
        cap.apply("bmkg", &late).await.expect("stored"),
        Outcome::Stored {
            shown: false,
            retired: 1
        }
    );
    let active = store::active(&pool, 10).await.expect("active");
    assert_eq!(
        active
            .iter()
            .map(|w| w.identifier.as_str())
            .collect::<Vec<_>>(),
        ["s2"]
    );

    // Expired: stored, never shown.
    let expired = read(&document(
        "t1",
        "Alert",
        "2026-12-01T21:00:00+07:00",
        "",
        CIRCLE,
        &later(-1),
    ));
    assert_eq!(
        cap.apply("bmkg", &expired).await.expect("stored"),
        Outcome::Stored {
            shown: false,
            retired: 0
        }
    );
    assert_eq!(store::active(&pool, 10).await.expect("active").len(), 1);
    // The map's query reads a partial index of active warnings, not the whole history.
    let plan: Vec<String> = sqlx::query_scalar(
        "EXPLAIN SELECT id FROM cap.warnings WHERE replaced_by IS NULL AND cancelled_at IS NULL AND expires_at > now()",
    )
    .fetch_all(&pool)
    .await
    .expect("explain");
    let plan = plan.join("\n");
    assert!(
        plan.contains("warnings_active_idx") || plan.contains("warnings_area_gix"),
        "a partial index of active warnings serves the map: {plan}"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn broadcasts_take_a_warnings_area_and_refuse_an_empty_one(pool: PgPool) {
    let cap = service(&pool);
    let quake = read(&document(
        "b1",
        "Alert",
        "2026-12-05T21:00:00+07:00",
        "",
        CIRCLE,
        &later(3),
    ));
    cap.apply("bmkg", &quake).await.expect("stored");
    let warning = store::active(&pool, 1).await.expect("active").remove(0);
    let request: kreki_cap::broadcast::BroadcastRequest =
        serde_json::from_value(serde_json::json!({
            "audience": "everyone", "area": {"warning_id": warning.id},
            "message": {"id": "Tetap tenang", "en": "Stay calm"}
        }))
        .expect("shape");
    let sent = cap
        .broadcast(None, request.check(100, Utc::now()).expect("valid"))
        .await
        .expect("sent");
    assert_eq!(sent.warning_id, Some(warning.id));
    assert_eq!(sent.area_desc, "Jakarta");
    assert_eq!(sent.reached.volunteers, 0);
    let stored = store::broadcast(&pool, sent.id)
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(stored.area.0, warning.area.expect("area").0);
    // A warning without area (only unmapped geocodes) cannot be broadcast to.
    let no_area = read(&document(
        "b2",
        "Alert",
        "2026-12-05T21:30:00+07:00",
        "",
        "<geocode><valueName>BPS</valueName><value>3171</value></geocode>",
        &later(3),
    ));
    cap.apply("bmkg", &no_area).await.expect("stored");
    let bare = store::active(&pool, 10)
        .await
        .expect("active")
        .into_iter()
        .find(|w| w.identifier == "b2")
        .expect("listed without area");
    assert!(bare.area.is_none());
    let request: kreki_cap::broadcast::BroadcastRequest =
        serde_json::from_value(serde_json::json!({
            "audience": "everyone", "area": {"warning_id": bare.id},
            "message": {"id": "x", "en": "y"}
        }))
        .expect("shape");
    let refused = cap
        .broadcast(None, request.check(100, Utc::now()).expect("valid"))
        .await;
    assert!(
        matches!(refused, Err(kreki_cap::CapError::NotFound("warning"))),
        "{refused:?}"
    );
}
