//! Reading CAP 1.2 strictly. A document is text of at most the configured size; it is parsed by
//! roxmltree with DTDs refused (so no entity expansion, external or recursive) and a node limit;
//! the root must be `alert` in the CAP 1.2 namespace; every mandatory element of CAP 1.2 §3.2
//! must be there with a value of its closed list; areas are checked point by point. Anything else
//! is a [`Refusal`], which the poller logs and counts and which never stops it.
//!
//! The XSD is not run here (no maintained XSD validator in Rust); these checks are a superset of
//! what it says about the elements KREKI reads, and the vendored XSD validates what KREKI writes.

use chrono::{DateTime, FixedOffset, Utc};
use roxmltree::{Document, Node, ParsingOptions};

use crate::geometry::Area;
use crate::model::{
    CapAlert, Certainty, Info, MsgType, Reference, Scope, Severity, Status, Urgency,
};

/// The CAP 1.2 namespace.
pub const CAP_NS: &str = "urn:oasis:names:tc:emergency:cap:1.2";
/// The Atom namespace.
pub const ATOM_NS: &str = "http://www.w3.org/2005/Atom";

/// Most XML nodes in one document (a CAP alert has dozens; a feed a few thousand).
const NODES_LIMIT: u32 = 200_000;
/// Longest text of a free-text element read, in characters (longer is cut, not refused).
const MAX_TEXT_CHARS: usize = 4000;

/// Bounds a document must stay within.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest document, bytes.
    pub max_bytes: usize,
    /// Most points in one polygon.
    pub max_polygon_points: usize,
    /// Most area shapes (polygons, circles, geocodes) in one alert.
    pub max_areas: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: 1024 * 1024,
            max_polygon_points: 2000,
            max_areas: 50,
        }
    }
}

/// Why a document was refused. `reason()` is a short stable label for the metric.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Larger than `max_bytes`.
    #[error("the document is larger than {0} bytes")]
    TooLarge(usize),
    /// Has a DTD or entity declaration.
    #[error("the document declares a DTD or entities")]
    Dtd,
    /// Not well-formed XML (or over the node limit).
    #[error("not well-formed XML: {0}")]
    Xml(String),
    /// The root is not a CAP 1.2 `alert` (wrong element or namespace).
    #[error("not a CAP 1.2 alert: {0}")]
    NotCap(String),
    /// A mandatory element is missing, or a value is outside its list or form.
    #[error("invalid CAP: {0}")]
    Invalid(String),
    /// A polygon, circle or the number of areas is beyond the limits.
    #[error("invalid area: {0}")]
    Area(String),
}

impl Refusal {
    /// A short label for `kreki_cap_refused_total{reason}`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TooLarge(_) => "too_large",
            Self::Dtd => "dtd",
            Self::Xml(_) => "xml",
            Self::NotCap(_) => "not_cap",
            Self::Invalid(_) => "invalid",
            Self::Area(_) => "area",
        }
    }
}

/// Parses XML text with DTDs refused, within the size and node limits.
///
/// # Errors
/// [`Refusal::TooLarge`], [`Refusal::Dtd`] or [`Refusal::Xml`].
pub fn document<'a>(text: &'a str, limits: &Limits) -> Result<Document<'a>, Refusal> {
    if text.len() > limits.max_bytes {
        return Err(Refusal::TooLarge(limits.max_bytes));
    }
    // roxmltree refuses DTDs with declarations; an empty `<!DOCTYPE x>` it accepts, and KREKI
    // has no use for one either.
    if text.contains("<!DOCTYPE") || text.contains("<!ENTITY") {
        return Err(Refusal::Dtd);
    }
    let options = ParsingOptions {
        allow_dtd: false,
        nodes_limit: NODES_LIMIT,
        ..ParsingOptions::default()
    };
    Document::parse_with_options(text, options).map_err(|error| match error {
        roxmltree::Error::DtdDetected => Refusal::Dtd,
        other => Refusal::Xml(other.to_string()),
    })
}

/// Parses one CAP 1.2 document.
///
/// # Errors
/// A [`Refusal`] saying why.
pub fn alert(
    text: &str,
    limits: &Limits,
    geocodes: &dyn Fn(&str, &str) -> Option<Area>,
) -> Result<CapAlert, Refusal> {
    let doc = document(text, limits)?;
    alert_from_node(doc.root_element(), limits, geocodes)
}

fn child<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    node.children()
        .find(|c| c.is_element() && c.has_tag_name((CAP_NS, name)))
}

fn children<'a, 'i>(node: Node<'a, 'i>, name: &'a str) -> impl Iterator<Item = Node<'a, 'i>> {
    node.children()
        .filter(move |c| c.is_element() && c.has_tag_name((CAP_NS, name)))
}

fn text_of(node: Node<'_, '_>) -> String {
    let text: String = node
        .descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .collect();
    text.trim().chars().take(MAX_TEXT_CHARS).collect()
}

fn optional(node: Node<'_, '_>, name: &str) -> Option<String> {
    child(node, name)
        .map(text_of)
        .filter(|text| !text.is_empty())
}

fn required(node: Node<'_, '_>, name: &str) -> Result<String, Refusal> {
    optional(node, name).ok_or_else(|| Refusal::Invalid(format!("`{name}` is missing or empty")))
}

fn enumerated<T>(
    node: Node<'_, '_>,
    name: &str,
    parse: fn(&str) -> Option<T>,
) -> Result<T, Refusal> {
    let text = required(node, name)?;
    parse(&text).ok_or_else(|| {
        Refusal::Invalid(format!(
            "`{name}` value `{}` is not one CAP 1.2 allows",
            text.chars().take(40).collect::<String>()
        ))
    })
}

/// A CAP `dateTime`: `YYYY-MM-DDThh:mm:ss±hh:mm` (CAP 1.2 forbids `Z`; it is accepted on input).
fn date_time(text: &str, name: &str) -> Result<DateTime<FixedOffset>, Refusal> {
    DateTime::parse_from_rfc3339(text.trim())
        .map_err(|_| Refusal::Invalid(format!("`{name}` is not a date and time with an offset")))
}

/// Parses the `alert` element `root`.
///
/// # Errors
/// A [`Refusal`] saying why.
pub fn alert_from_node(
    root: Node<'_, '_>,
    limits: &Limits,
    geocodes: &dyn Fn(&str, &str) -> Option<Area>,
) -> Result<CapAlert, Refusal> {
    if !root.has_tag_name((CAP_NS, "alert")) {
        return Err(Refusal::NotCap(format!(
            "the root is `{}` in namespace `{}`",
            root.tag_name().name(),
            root.tag_name().namespace().unwrap_or("")
        )));
    }
    let identifier = required(root, "identifier")?;
    let sender = required(root, "sender")?;
    for (name, value) in [("identifier", &identifier), ("sender", &sender)] {
        if value.len() > 256 || value.contains([' ', ',', '<', '&']) {
            return Err(Refusal::Invalid(format!(
                "`{name}` must be at most 256 characters without spaces, commas, < or &"
            )));
        }
    }
    let sent = date_time(&required(root, "sent")?, "sent")?;
    let status = enumerated(root, "status", Status::parse)?;
    let msg_type = enumerated(root, "msgType", MsgType::parse)?;
    let scope = enumerated(root, "scope", Scope::parse)?;
    let references = match optional(root, "references") {
        Some(text) => text
            .split_ascii_whitespace()
            .take(100)
            .map(|reference| {
                let mut parts = reference.splitn(3, ',');
                match (parts.next(), parts.next(), parts.next()) {
                    (Some(sender), Some(identifier), Some(sent)) => Ok(Reference {
                        sender: sender.to_owned(),
                        identifier: identifier.to_owned(),
                        sent: date_time(sent, "references")?,
                    }),
                    _ => Err(Refusal::Invalid(
                        "`references` must be sender,identifier,sent triples".to_owned(),
                    )),
                }
            })
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    if matches!(msg_type, MsgType::Update | MsgType::Cancel) && references.is_empty() {
        return Err(Refusal::Invalid(format!(
            "a `{}` needs `references`",
            msg_type.as_str()
        )));
    }
    let mut infos = Vec::new();
    let mut area = Area::default();
    let mut shapes = 0usize;
    for info in children(root, "info").take(20) {
        let mut descriptions = Vec::new();
        for block in children(info, "area") {
            descriptions.push(required(block, "areaDesc")?);
            for polygon in children(block, "polygon") {
                shapes += 1;
                if shapes > limits.max_areas {
                    return Err(Refusal::Area(format!(
                        "more than {} shapes",
                        limits.max_areas
                    )));
                }
                let ring = Area::parse_cap_polygon(&text_of(polygon), limits.max_polygon_points)
                    .map_err(Refusal::Area)?;
                area.polygons.push(ring);
            }
            for circle in children(block, "circle") {
                shapes += 1;
                if shapes > limits.max_areas {
                    return Err(Refusal::Area(format!(
                        "more than {} shapes",
                        limits.max_areas
                    )));
                }
                area.circles
                    .push(Area::parse_cap_circle(&text_of(circle)).map_err(Refusal::Area)?);
            }
            for geocode in children(block, "geocode") {
                shapes += 1;
                if shapes > limits.max_areas {
                    return Err(Refusal::Area(format!(
                        "more than {} shapes",
                        limits.max_areas
                    )));
                }
                let name = required(geocode, "valueName")?;
                let value = required(geocode, "value")?;
                if let Some(mapped) = geocodes(&name, &value) {
                    area.extend(mapped);
                }
            }
        }
        let expires = optional(info, "expires")
            .map(|text| date_time(&text, "expires").map(|at| at.with_timezone(&Utc)))
            .transpose()?;
        let event = required(info, "event")?;
        if children(info, "category").next().is_none() {
            return Err(Refusal::Invalid("`category` is missing".to_owned()));
        }
        infos.push(Info {
            language: optional(info, "language").unwrap_or_else(|| "en-US".to_owned()),
            event,
            urgency: enumerated(info, "urgency", Urgency::parse)?,
            severity: enumerated(info, "severity", Severity::parse)?,
            certainty: enumerated(info, "certainty", Certainty::parse)?,
            headline: optional(info, "headline"),
            description: optional(info, "description"),
            instruction: optional(info, "instruction"),
            expires,
            web: optional(info, "web"),
            area_desc: (!descriptions.is_empty()).then(|| descriptions.join("; ")),
        });
    }
    Ok(CapAlert {
        identifier,
        sender,
        sent,
        status,
        msg_type,
        scope,
        references,
        infos,
        area,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_geocodes(_: &str, _: &str) -> Option<Area> {
        None
    }

    const GOOD: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>bmkg-gempa-1</identifier><sender>bmkg@bmkg.go.id</sender>
  <sent>2026-12-05T21:00:00+07:00</sent><status>Actual</status><msgType>Alert</msgType><scope>Public</scope>
  <info><language>id-ID</language><category>Geo</category><event>Gempabumi</event>
    <urgency>Immediate</urgency><severity>Extreme</severity><certainty>Observed</certainty>
    <headline>Gempa M6.1</headline><instruction>Hindari bangunan retak</instruction>
    <expires>2026-12-06T21:00:00+07:00</expires>
    <area><areaDesc>Jakarta</areaDesc><circle>-6.2,106.8 30</circle>
      <polygon>-6.1,106.8 -6.1,106.9 -6.2,106.9 -6.1,106.8</polygon></area></info>
</alert>"#;

    #[test]
    fn a_good_alert_is_read() {
        let alert = alert(GOOD, &Limits::default(), &no_geocodes).expect("valid");
        assert_eq!(alert.identifier, "bmkg-gempa-1");
        assert_eq!(alert.severity(), Severity::Extreme);
        assert_eq!(alert.area.shapes(), 2);
        assert_eq!(
            alert.infos[0].instruction.as_deref(),
            Some("Hindari bangunan retak")
        );
    }

    #[test]
    fn hostile_and_broken_documents_are_refused() {
        let limits = Limits::default();
        let laughs = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]><alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">&lol2;</alert>"#;
        assert_eq!(
            alert(laughs, &limits, &no_geocodes).expect_err("refused"),
            Refusal::Dtd
        );
        let external = r#"<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>"#;
        assert_eq!(
            alert(external, &limits, &no_geocodes).expect_err("refused"),
            Refusal::Dtd
        );
        let wrong_ns = GOOD.replace("cap:1.2", "cap:1.1");
        assert_eq!(
            alert(&wrong_ns, &limits, &no_geocodes)
                .expect_err("refused")
                .reason(),
            "not_cap"
        );
        let broken = &GOOD[..GOOD.len() / 2];
        assert_eq!(
            alert(broken, &limits, &no_geocodes)
                .expect_err("refused")
                .reason(),
            "xml"
        );
        let bad_severity = GOOD.replace("<severity>Extreme", "<severity>Apocalyptic");
        assert_eq!(
            alert(&bad_severity, &limits, &no_geocodes)
                .expect_err("refused")
                .reason(),
            "invalid"
        );
        let small = Limits {
            max_bytes: 100,
            ..limits
        };
        assert_eq!(
            alert(GOOD, &small, &no_geocodes)
                .expect_err("refused")
                .reason(),
            "too_large"
        );
        let points: Vec<String> = (0..3000).map(|i| format!("-6.{i},106.8")).collect();
        let huge = GOOD.replace(
            "-6.1,106.8 -6.1,106.9 -6.2,106.9 -6.1,106.8",
            &format!("{} -6.0,106.8", points.join(" ")),
        );
        assert_eq!(
            alert(&huge, &limits, &no_geocodes)
                .expect_err("refused")
                .reason(),
            "area"
        );
        let cancel_without_reference = GOOD.replace("<msgType>Alert", "<msgType>Cancel");
        assert_eq!(
            alert(&cancel_without_reference, &limits, &no_geocodes)
                .expect_err("refused")
                .reason(),
            "invalid"
        );
    }

    #[test]
    fn geocodes_use_the_configured_mapping() {
        let with_geocode = GOOD.replace(
            "<circle>-6.2,106.8 30</circle>",
            "<geocode><valueName>BPS</valueName><value>3171</value></geocode>",
        );
        let map = |name: &str, value: &str| {
            (name == "BPS" && value == "3171").then(|| Area {
                polygons: vec![vec![(1.0, 1.0), (2.0, 1.0), (2.0, 2.0), (1.0, 1.0)]],
                circles: Vec::new(),
            })
        };
        let alert = alert(&with_geocode, &Limits::default(), &map).expect("valid");
        assert_eq!(alert.area.polygons.len(), 2);
    }
}
