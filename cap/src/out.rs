//! CAP 1.2 out: each broadcast as a CAP 1.2 document (`/cap/alerts/{id}.xml`) and the public Atom
//! feed of the newest (`/cap/alerts.atom`), so other agencies' systems can ingest KREKI's
//! warnings. The documents follow the element order and value forms of the OASIS CAP 1.2 XSD
//! (vendored in `cap/schema/CAP-v1.2.xsd`, checked against it by `cap/tests/xsd.rs`): `sent` and
//! `expires` as `YYYY-MM-DDThh:mm:ss+00:00` (CAP forbids `Z`), polygons as `lat,lng` pairs, one
//! `info` in Bahasa Indonesia and one in English.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use crate::store::BroadcastRow;

/// Escapes text for XML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 cannot carry at all are dropped.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => {}
            c => out.push(c),
        }
    }
    out
}

/// A CAP `dateTime` in UTC: `2026-12-05T14:00:00+00:00`.
pub fn cap_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
}

/// The CAP `identifier` of a broadcast.
pub fn identifier(row: &BroadcastRow) -> String {
    format!("kreki-broadcast-{}", row.id)
}

/// The outer rings of a GeoJSON (Multi)Polygon as CAP polygons (`lat,lng` pairs, closed).
pub fn cap_polygons(geojson: &serde_json::Value) -> Vec<String> {
    let coordinates = geojson.get("coordinates");
    let polygons: Vec<&serde_json::Value> = match geojson.get("type").and_then(|t| t.as_str()) {
        Some("Polygon") => coordinates.into_iter().collect(),
        Some("MultiPolygon") => coordinates
            .and_then(|c| c.as_array())
            .map(|all| all.iter().collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    polygons
        .into_iter()
        .filter_map(|polygon| polygon.get(0).and_then(|ring| ring.as_array()))
        .map(|ring| {
            ring.iter()
                .filter_map(|point| Some((point.get(1)?.as_f64()?, point.get(0)?.as_f64()?)))
                .map(|(lat, lng)| format!("{lat},{lng}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|ring| ring.split(' ').count() >= 4)
        .collect()
}

/// A broadcast as a CAP 1.2 alert.
pub fn document(row: &BroadcastRow, sender: &str, base_url: &str) -> String {
    let mut xml = String::with_capacity(4096);
    let sent = cap_time(row.sent_at);
    let expires = cap_time(row.expires_at);
    let polygons = cap_polygons(&row.area.0);
    let base = base_url.trim_end_matches('/');
    // `write!` into a String cannot fail.
    let _ = write!(
        xml,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <alert xmlns=\"urn:oasis:names:tc:emergency:cap:1.2\">\n\
         \x20 <identifier>{}</identifier>\n\
         \x20 <sender>{}</sender>\n\
         \x20 <sent>{sent}</sent>\n\
         \x20 <status>Actual</status>\n\
         \x20 <msgType>Alert</msgType>\n\
         \x20 <source>KREKI</source>\n\
         \x20 <scope>Public</scope>\n",
        escape(&identifier(row)),
        escape(sender),
    );
    for (language, text) in [("id-ID", &row.message_id), ("en-US", &row.message_en)] {
        let headline: String = text.chars().take(160).collect();
        let _ = write!(
            xml,
            "  <info>\n\
             \x20   <language>{language}</language>\n\
             \x20   <category>Safety</category>\n\
             \x20   <event>{}</event>\n\
             \x20   <urgency>{}</urgency>\n\
             \x20   <severity>{}</severity>\n\
             \x20   <certainty>Observed</certainty>\n\
             \x20   <expires>{expires}</expires>\n\
             \x20   <senderName>KREKI</senderName>\n\
             \x20   <headline>{}</headline>\n\
             \x20   <description>{}</description>\n\
             \x20   <web>{}</web>\n\
             \x20   <area>\n\
             \x20     <areaDesc>{}</areaDesc>\n",
            escape(&row.event),
            escape(cap_urgency(&row.urgency)),
            escape(&row.severity),
            escape(&headline),
            escape(text),
            escape(&format!("{base}/cap/alerts/{}.xml", row.id)),
            escape(&row.area_desc),
        );
        for polygon in &polygons {
            let _ = writeln!(xml, "      <polygon>{polygon}</polygon>");
        }
        xml.push_str("    </area>\n  </info>\n");
    }
    xml.push_str("</alert>\n");
    xml
}

fn cap_urgency(urgency: &str) -> &str {
    match urgency {
        "Immediate" | "Expected" | "Future" | "Past" | "Unknown" => urgency,
        _ => "Unknown",
    }
}

/// The Atom feed of broadcasts (newest first), each entry linking its CAP document.
pub fn atom(rows: &[BroadcastRow], base_url: &str) -> String {
    let base = base_url.trim_end_matches('/');
    let updated = rows.first().map_or_else(
        || cap_time(DateTime::<Utc>::UNIX_EPOCH),
        |row| cap_time(row.sent_at),
    );
    let mut xml = String::with_capacity(1024 + rows.len() * 512);
    let _ = write!(
        xml,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <feed xmlns=\"http://www.w3.org/2005/Atom\">\n\
         \x20 <id>{}</id>\n\
         \x20 <title>KREKI warnings (CAP 1.2)</title>\n\
         \x20 <updated>{updated}</updated>\n\
         \x20 <author><name>KREKI</name></author>\n\
         \x20 <link rel=\"self\" type=\"application/atom+xml\" href=\"{}\"/>\n",
        escape(&format!("{base}/cap/alerts.atom")),
        escape(&format!("{base}/cap/alerts.atom")),
    );
    for row in rows {
        let _ = write!(
            xml,
            "  <entry>\n\
             \x20   <id>urn:uuid:{}</id>\n\
             \x20   <title>{}</title>\n\
             \x20   <updated>{}</updated>\n\
             \x20   <summary>{}</summary>\n\
             \x20   <link rel=\"alternate\" type=\"application/cap+xml\" href=\"{}\"/>\n\
             \x20 </entry>\n",
            row.id,
            escape(&format!("{}: {}", row.area_desc, row.message_id)),
            cap_time(row.sent_at),
            escape(&row.message_en),
            escape(&format!("{base}/cap/alerts/{}.xml", row.id)),
        );
    }
    xml.push_str("</feed>\n");
    xml
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_times_have_an_offset() {
        assert_eq!(escape("a<b & \"c\"\u{1}"), "a&lt;b &amp; &quot;c&quot;");
        let at = DateTime::parse_from_rfc3339("2026-12-05T14:00:00.123Z")
            .expect("time")
            .with_timezone(&Utc);
        assert_eq!(cap_time(at), "2026-12-05T14:00:00+00:00");
    }

    #[test]
    fn polygons_are_lat_lng() {
        let area = serde_json::json!({"type": "MultiPolygon", "coordinates": [[[[106.8, -6.1], [106.9, -6.1], [106.9, -6.2], [106.8, -6.1]]]]});
        assert_eq!(
            cap_polygons(&area),
            ["-6.1,106.8 -6.1,106.9 -6.2,106.9 -6.1,106.8"]
        );
    }
}
