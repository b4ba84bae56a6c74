//! Area broadcasts: a short message in Bahasa Indonesia and English to everyone, volunteers only
//! or citizens only inside an area (a drawn polygon, a region, or a warning's area). The area
//! is stored first (PostGIS makes it valid), the recipients are found on the server from it, each
//! gets the message on their socket (and push/SMS where wired), and only their number is kept
//! and answered. Every broadcast is also a CAP 1.2 document in the public feed ([`crate::out`]).

use chrono::{DateTime, Utc};
use kreki_platform::FieldError;
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{CapError, CapResult};
use crate::geometry::Area;
use crate::service::CapService;
use crate::store::{self, AreaSource, NewBroadcast};
use crate::views::{Broadcast, BroadcastMessage, Texts};

/// Longest text of a broadcast per language, characters (two SMS segments' worth stays readable).
pub const MAX_TEXT_CHARS: usize = 320;
/// Longest a broadcast holds, hours.
pub const MAX_HOURS: u32 = 72;

/// Who a broadcast is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Volunteers and citizens.
    Everyone,
    /// On-duty volunteers.
    Volunteers,
    /// Citizens.
    Citizens,
}

impl Audience {
    /// Parses `everyone`, `volunteers` or `citizens`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "everyone" => Some(Self::Everyone),
            "volunteers" => Some(Self::Volunteers),
            "citizens" => Some(Self::Citizens),
            _ => None,
        }
    }

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Everyone => "everyone",
            Self::Volunteers => "volunteers",
            Self::Citizens => "citizens",
        }
    }
}

/// Where to send: exactly one of the three.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AreaInput {
    /// A drawn area: GeoJSON Polygon or MultiPolygon (`[lng, lat]`).
    #[schema(value_type = Option<Object>)]
    pub polygon: Option<serde_json::Value>,
    /// A region's area.
    pub region_id: Option<Uuid>,
    /// An active warning's area.
    pub warning_id: Option<Uuid>,
}

/// Body of `POST /v1/broadcasts`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BroadcastRequest {
    /// `everyone`, `volunteers` or `citizens`.
    pub audience: String,
    /// Where.
    pub area: AreaInput,
    /// The area in words for people (`Jakarta Selatan`); default from the region or warning.
    pub area_desc: Option<String>,
    /// The text: `{id, en}`, each 1 to 320 characters.
    pub message: Texts,
    /// CAP severity of the outgoing document (default `Severe`).
    pub severity: Option<String>,
    /// Hours it holds (1 to 72, default 6).
    pub expires_in_h: Option<u32>,
}

/// A validated request.
#[derive(Debug, Clone)]
pub struct Checked {
    /// Who.
    pub audience: Audience,
    /// Where.
    pub area: CheckedArea,
    /// Area in words (may still be empty: filled from the region or warning).
    pub area_desc: String,
    /// Text in Bahasa Indonesia.
    pub message_id: String,
    /// Text in English.
    pub message_en: String,
    /// CAP severity.
    pub severity: crate::model::Severity,
    /// Until when.
    pub expires_at: DateTime<Utc>,
}

/// A validated area.
#[derive(Debug, Clone)]
pub enum CheckedArea {
    /// Drawn shapes.
    Shapes(Area),
    /// A region.
    Region(Uuid),
    /// A warning.
    Warning(Uuid),
}

fn text(field: &str, value: &str, errors: &mut Vec<FieldError>) -> String {
    let trimmed = value.trim();
    let chars = trimmed.chars().count();
    if chars == 0 || chars > MAX_TEXT_CHARS {
        errors.push(FieldError::new(
            field,
            format!("must be 1 to {MAX_TEXT_CHARS} characters"),
        ));
    } else if trimmed.chars().any(|c| c.is_control() && c != '\n') {
        errors.push(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    trimmed.to_owned()
}

impl BroadcastRequest {
    /// Checks every field, naming each that is wrong.
    ///
    /// # Errors
    /// [`CapError::Validation`].
    pub fn check(&self, max_points: usize, now: DateTime<Utc>) -> CapResult<Checked> {
        let mut errors = Vec::new();
        let audience = Audience::parse(&self.audience);
        if audience.is_none() {
            errors.push(FieldError::new(
                "audience",
                "must be everyone, volunteers or citizens",
            ));
        }
        let given = [
            self.area.polygon.is_some(),
            self.area.region_id.is_some(),
            self.area.warning_id.is_some(),
        ];
        let area = match (
            &self.area.polygon,
            self.area.region_id,
            self.area.warning_id,
        ) {
            _ if given.iter().filter(|g| **g).count() != 1 => {
                errors.push(FieldError::new(
                    "area",
                    "give exactly one of polygon, region_id, warning_id",
                ));
                None
            }
            (Some(polygon), _, _) => match Area::from_geojson(polygon, max_points) {
                Ok(area) => Some(CheckedArea::Shapes(area)),
                Err(why) => {
                    errors.push(FieldError::new("area.polygon", why));
                    None
                }
            },
            (_, Some(region), _) => Some(CheckedArea::Region(region)),
            (_, _, Some(warning)) => Some(CheckedArea::Warning(warning)),
            _ => None,
        };
        let message_id = text("message.id", &self.message.id, &mut errors);
        let message_en = text("message.en", &self.message.en, &mut errors);
        let area_desc = self.area_desc.as_deref().unwrap_or("").trim().to_owned();
        if area_desc.chars().count() > 200 {
            errors.push(FieldError::new(
                "area_desc",
                "must be at most 200 characters",
            ));
        }
        let severity = match self.severity.as_deref() {
            None => Some(crate::model::Severity::Severe),
            Some(text) => crate::model::Severity::parse(text),
        };
        if severity.is_none() {
            errors.push(FieldError::new(
                "severity",
                "must be Extreme, Severe, Moderate, Minor or Unknown",
            ));
        }
        let hours = self.expires_in_h.unwrap_or(6);
        if !(1..=MAX_HOURS).contains(&hours) {
            errors.push(FieldError::new(
                "expires_in_h",
                format!("must be 1 to {MAX_HOURS}"),
            ));
        }
        match (audience, area, severity) {
            (Some(audience), Some(area), Some(severity)) if errors.is_empty() => Ok(Checked {
                audience,
                area,
                area_desc,
                message_id,
                message_en,
                severity,
                expires_at: now + chrono::Duration::hours(i64::from(hours)),
            }),
            _ => Err(CapError::Validation(errors)),
        }
    }
}

impl CapService {
    /// Sends a checked broadcast from `sender` (none for a rule): stores it, finds and counts
    /// the recipients, delivers, and answers it with the counts.
    ///
    /// # Errors
    /// 404 for an unknown region or warning (or one without area); database and port failures.
    pub async fn broadcast(&self, sender: Option<Uuid>, checked: Checked) -> CapResult<Broadcast> {
        let mut area_desc = checked.area_desc.clone();
        let mut warning_id = None;
        let mut event = "Broadcast".to_owned();
        let mut urgency = "Immediate".to_owned();
        let shapes;
        let source = match &checked.area {
            CheckedArea::Shapes(area) => AreaSource::Shapes(area),
            CheckedArea::Region(region) => {
                let geojson = self
                    .people
                    .region_area(*region)
                    .await?
                    .ok_or(CapError::NotFound("region"))?;
                shapes = Area::from_geojson(&geojson, usize::MAX)
                    .map_err(|why| CapError::field("area.region_id", why))?;
                AreaSource::Shapes(&shapes)
            }
            CheckedArea::Warning(id) => {
                let warning = store::warning(&self.pool, *id)
                    .await?
                    .filter(|w| w.area.is_some())
                    .ok_or(CapError::NotFound("warning"))?;
                if area_desc.is_empty() {
                    area_desc = warning
                        .infos
                        .0
                        .first()
                        .and_then(|i| i.area_desc.clone())
                        .unwrap_or_default();
                }
                warning_id = Some(*id);
                event = warning.event.clone();
                urgency = warning.urgency.clone();
                AreaSource::Warning(*id)
            }
        };
        if area_desc.is_empty() {
            area_desc = "Area".to_owned();
        }
        area_desc = area_desc.chars().take(200).collect();
        let new = NewBroadcast {
            sender_id: sender,
            audience: checked.audience.as_str(),
            message_id: &checked.message_id,
            message_en: &checked.message_en,
            area_desc: &area_desc,
            warning_id,
            severity: checked.severity.as_str(),
            urgency: &urgency,
            event: &event,
            expires_at: checked.expires_at,
        };
        let row = store::insert_broadcast(&self.pool, &new, &source)
            .await?
            .ok_or(CapError::field("area", "the area is empty"))?;
        let area_text = row.area.0.to_string();
        let volunteers = if checked.audience != Audience::Citizens {
            self.people.volunteers_inside(&area_text).await?
        } else {
            Vec::new()
        };
        let citizens = if checked.audience != Audience::Volunteers {
            self.people.citizens_inside(&area_text).await?
        } else {
            Vec::new()
        };
        let message = BroadcastMessage {
            id: row.id,
            message: Texts {
                id: row.message_id.clone(),
                en: row.message_en.clone(),
            },
            area_desc: row.area_desc.clone(),
            severity: row.severity.clone(),
            warning_id: row.warning_id,
            sent_at: row.sent_at,
            expires_at: row.expires_at,
        };
        let mut recipients = volunteers.clone();
        recipients.extend(citizens.iter().copied());
        recipients.sort();
        recipients.dedup();
        self.announcer.broadcast(&recipients, &message);
        let counts = (
            i32::try_from(volunteers.len()).unwrap_or(i32::MAX),
            i32::try_from(citizens.len()).unwrap_or(i32::MAX),
        );
        store::set_reached(&self.pool, row.id, counts.0, counts.1).await?;
        metrics::counter!("kreki_cap_broadcasts_total", "audience" => checked.audience.as_str())
            .increment(1);
        tracing::info!(broadcast = %row.id, audience = checked.audience.as_str(), volunteers = counts.0, citizens = counts.1, "broadcast sent");
        let mut row = row;
        row.volunteers = counts.0;
        row.citizens = counts.1;
        Ok(Broadcast::from_row(row, &self.config.public_base_url))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: serde_json::Value) -> BroadcastRequest {
        serde_json::from_value(body).expect("shape")
    }

    #[test]
    fn every_wrong_field_is_named() {
        let now = Utc::now();
        let bad = request(serde_json::json!({
            "audience": "aliens", "area": {}, "message": {"id": "", "en": "x"}, "expires_in_h": 500
        }));
        let Err(CapError::Validation(errors)) = bad.check(100, now) else {
            panic!("refused")
        };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["audience", "area", "message.id", "expires_in_h"]);
        let good = request(serde_json::json!({
            "audience": "volunteers", "area": {"region_id": uuid::Uuid::nil()},
            "message": {"id": "Gempa", "en": "Earthquake"}
        }));
        assert!(good.check(100, now).is_ok());
    }
}
