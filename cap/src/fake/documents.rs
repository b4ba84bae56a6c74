//! The CAP 1.2 documents the fake BMKG serves: an earthquake or weather warning shaped like
//! BMKG's (sender, `code`, `id-ID` and `en-US` `info` blocks, parameters, circle or polygon),
//! its updates and cancels, and the hostile and huge ones it serves on request.

use chrono::{DateTime, FixedOffset, Offset as _, Timelike as _, Utc};

use super::{Kind, SENDER};
use crate::out::escape;

/// Now in WIB, whole seconds, as BMKG writes `sent`.
pub(super) fn now_wib() -> DateTime<FixedOffset> {
    let wib = FixedOffset::east_opt(7 * 3600).unwrap_or_else(|| Utc.fix());
    let now = Utc::now().with_timezone(&wib);
    now.with_nanosecond(0).unwrap_or(now)
}

pub(super) fn cap_time(at: DateTime<FixedOffset>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

pub(super) struct Message<'a> {
    pub(super) identifier: &'a str,
    pub(super) sent: DateTime<FixedOffset>,
    pub(super) msg_type: &'a str,
    pub(super) references: Option<String>,
    pub(super) kind: Kind,
    pub(super) severity: &'a str,
    pub(super) magnitude: f64,
    pub(super) area_xml: &'a str,
    pub(super) area_desc: &'a str,
}

pub(super) fn document(message: &Message<'_>) -> String {
    let expires = cap_time(message.sent + chrono::Duration::hours(3));
    let (event_id, event_en, category, urgency) = match message.kind {
        Kind::Earthquake => ("Gempabumi", "Earthquake", "Geo", "Immediate"),
        Kind::Weather => ("Cuaca Ekstrem", "Extreme Weather", "Met", "Expected"),
    };
    let references = message
        .references
        .as_ref()
        .map(|r| format!("  <references>{}</references>\n", escape(r)))
        .unwrap_or_default();
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <alert xmlns=\"urn:oasis:names:tc:emergency:cap:1.2\">\n\
         \x20 <identifier>{}</identifier>\n\
         \x20 <sender>{SENDER}</sender>\n\
         \x20 <sent>{}</sent>\n\
         \x20 <status>Actual</status>\n\
         \x20 <msgType>{}</msgType>\n\
         \x20 <scope>Public</scope>\n\
         \x20 <code>IDN-BMKG</code>\n\
         {references}",
        escape(message.identifier),
        cap_time(message.sent),
        message.msg_type,
    );
    let wib = message.sent.format("%d-%m-%y %H:%M:%S WIB");
    for (language, event, headline, instruction) in [
        (
            "id-ID",
            event_id,
            match message.kind {
                Kind::Earthquake => format!(
                    "Gempa Mag:{:.1}, {wib}, {}",
                    message.magnitude, message.area_desc
                ),
                Kind::Weather => {
                    format!("Peringatan dini cuaca {wib}: hujan lebat disertai angin kencang")
                }
            },
            match message.kind {
                Kind::Earthquake => {
                    "Hindari bangunan yang retak atau rusak. Waspada gempa susulan."
                }
                Kind::Weather => "Waspada potensi banjir, tanah longsor dan pohon tumbang.",
            },
        ),
        (
            "en-US",
            event_en,
            match message.kind {
                Kind::Earthquake => format!(
                    "Earthquake Mag:{:.1}, {wib}, {}",
                    message.magnitude, message.area_desc
                ),
                Kind::Weather => format!("Weather warning {wib}: heavy rain with strong wind"),
            },
            match message.kind {
                Kind::Earthquake => {
                    "Stay away from cracked or damaged buildings. Expect aftershocks."
                }
                Kind::Weather => "Beware of floods, landslides and falling trees.",
            },
        ),
    ] {
        xml.push_str(&format!(
            "  <info>\n\
             \x20   <language>{language}</language>\n\
             \x20   <category>{category}</category>\n\
             \x20   <event>{event}</event>\n\
             \x20   <urgency>{urgency}</urgency>\n\
             \x20   <severity>{}</severity>\n\
             \x20   <certainty>Observed</certainty>\n\
             \x20   <eventCode><valueName>BMKG</valueName><value>{}</value></eventCode>\n\
             \x20   <expires>{expires}</expires>\n\
             \x20   <senderName>Badan Meteorologi, Klimatologi, dan Geofisika (BMKG)</senderName>\n\
             \x20   <headline>{}</headline>\n\
             \x20   <description>{}</description>\n\
             \x20   <instruction>{}</instruction>\n\
             \x20   <web>https://www.bmkg.go.id/</web>\n",
            escape(message.severity),
            match message.kind {
                Kind::Earthquake => "gempabumi",
                Kind::Weather => "nowcast",
            },
            escape(&headline),
            escape(&headline),
            escape(instruction),
        ));
        if message.kind == Kind::Earthquake {
            xml.push_str(&format!(
                "    <parameter><valueName>Magnitude</valueName><value>{:.1}</value></parameter>\n\
                 \x20   <parameter><valueName>Depth</valueName><value>10 Km</value></parameter>\n",
                message.magnitude
            ));
        }
        xml.push_str(&format!(
            "    <area>\n      <areaDesc>{}</areaDesc>\n{}    </area>\n  </info>\n",
            escape(message.area_desc),
            message.area_xml
        ));
    }
    xml.push_str("</alert>\n");
    xml
}

pub(super) fn circle_xml(lat: f64, lng: f64, radius_km: f64) -> String {
    format!("      <circle>{lat},{lng} {radius_km}</circle>\n")
}

pub(super) const HOSTILE: &str = "<?xml version=\"1.0\"?>\n<!DOCTYPE alert [\n<!ENTITY a \"aaaaaaaaaaaaaaaaaaaaaaaa\">\n<!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">\n<!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">\n<!ENTITY d \"&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;\">\n]>\n<alert xmlns=\"urn:oasis:names:tc:emergency:cap:1.2\"><identifier>&d;</identifier></alert>\n";

pub(super) fn huge_document() -> String {
    let mut points: Vec<String> = (0..5_000).map(|i| format!("-6.{i:06},106.8")).collect();
    points.push("-6.000000,106.8".to_owned());
    let polygon = format!("      <polygon>{}</polygon>\n", points.join(" "));
    document(&Message {
        identifier: "bmkg-huge",
        sent: now_wib(),
        msg_type: "Alert",
        references: None,
        kind: Kind::Weather,
        severity: "Severe",
        magnitude: 0.0,
        area_xml: &polygon,
        area_desc: "Seluruh dunia",
    })
}
