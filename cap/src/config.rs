//! `[cap]` of the `kreki` config (`KREKI_CAP__*` in the environment): the CAP feeds polled, the
//! limits a document must stay within, and the rules that broadcast by themselves. Off (nothing
//! polled) while `feeds` is empty; the outgoing feed and broadcasts work either way.

use std::collections::BTreeMap;

use serde::Deserialize;

/// Settings of warnings in and out.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CapConfig {
    /// CAP sources: Atom or RSS feeds whose entries are (or link to) CAP 1.2 alerts, or single
    /// CAP documents. Empty: nothing is polled.
    pub feeds: Vec<FeedConfig>,
    /// Seconds between two polls of a feed that answered.
    pub poll_interval_s: u64,
    /// Longest wait after failures, in seconds (the wait doubles per failure from
    /// `poll_interval_s`, with up to a fifth of it as jitter).
    pub max_backoff_s: u64,
    /// Longest one request may take, in milliseconds.
    pub request_timeout_ms: u64,
    /// Largest body read from a feed or a document, in bytes; a larger one is refused.
    pub max_document_bytes: usize,
    /// Most points in one polygon; a warning with a larger one is refused.
    pub max_polygon_points: usize,
    /// Most `area` blocks (and polygons and circles in all) in one warning.
    pub max_areas: usize,
    /// Most linked documents fetched per poll of a feed (the newest first).
    pub max_entries_per_poll: usize,
    /// Hours a warning without `expires` stays on the map.
    pub default_expiry_h: u32,
    /// `geocode` values (such as BMKG's or BPS's district codes) with the area they stand for,
    /// as GeoJSON Polygon or MultiPolygon text. Geocodes without a mapping are ignored.
    pub geocodes: BTreeMap<String, String>,
    /// `sender` of the CAP documents KREKI publishes.
    pub sender: String,
    /// Base URL of this deployment in the outgoing feed's links (`https://kreki.example.id`).
    pub public_base_url: String,
    /// Rules that broadcast to an area by themselves when a warning arrives.
    pub rules: Vec<RuleConfig>,
}

impl Default for CapConfig {
    fn default() -> Self {
        Self {
            feeds: Vec::new(),
            poll_interval_s: 60,
            max_backoff_s: 900,
            request_timeout_ms: 10_000,
            max_document_bytes: 1024 * 1024,
            max_polygon_points: 2000,
            max_areas: 50,
            max_entries_per_poll: 20,
            default_expiry_h: 6,
            geocodes: BTreeMap::new(),
            sender: "kreki@kreki.id".to_owned(),
            public_base_url: "http://127.0.0.1:8080".to_owned(),
            rules: Vec::new(),
        }
    }
}

/// One CAP source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedConfig {
    /// A short name for logs and metrics (`bmkg-gempa`).
    pub name: String,
    /// The feed's or document's URL.
    pub url: String,
}

/// "A `min_severity` (or worse) warning whose event contains `event` -> tell `audience` inside."
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Case-insensitive text the warning's event (any language) must contain (`gempa`,
    /// `earthquake`); empty matches every event.
    #[serde(default)]
    pub event: String,
    /// `Extreme`, `Severe`, `Moderate`, `Minor` or `Unknown`: the least severe that triggers.
    pub min_severity: String,
    /// `everyone`, `volunteers` or `citizens`.
    pub audience: String,
    /// The message in Bahasa Indonesia (`{headline}` is replaced by the warning's headline).
    pub message_id: String,
    /// The message in English (`{headline}` likewise).
    pub message_en: String,
}

impl CapConfig {
    /// What is wrong with these settings, one line per key.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (index, feed) in self.feeds.iter().enumerate() {
            if feed.name.trim().is_empty() {
                problems.push(format!("cap.feeds[{index}].name: must not be empty"));
            }
            if !(feed.url.starts_with("http://") || feed.url.starts_with("https://")) {
                problems.push(format!("cap.feeds[{index}].url: must be an http(s) URL"));
            }
        }
        if self.poll_interval_s == 0 {
            problems.push("cap.poll_interval_s: must be at least 1".to_owned());
        }
        if self.max_backoff_s < self.poll_interval_s {
            problems.push("cap.max_backoff_s: must be at least cap.poll_interval_s".to_owned());
        }
        if self.max_document_bytes < 1024 {
            problems.push("cap.max_document_bytes: must be at least 1024".to_owned());
        }
        if self.max_polygon_points < 4 {
            problems.push("cap.max_polygon_points: must be at least 4".to_owned());
        }
        for (code, area) in &self.geocodes {
            if crate::geometry::Area::from_geojson_text(area).is_err() {
                problems.push(format!(
                    "cap.geocodes.{code}: must be a GeoJSON Polygon or MultiPolygon"
                ));
            }
        }
        for (index, rule) in self.rules.iter().enumerate() {
            if crate::model::Severity::parse(&rule.min_severity).is_none() {
                problems.push(format!(
                    "cap.rules[{index}].min_severity: must be Extreme, Severe, Moderate, Minor or Unknown"
                ));
            }
            if crate::broadcast::Audience::parse(&rule.audience).is_none() {
                problems.push(format!(
                    "cap.rules[{index}].audience: must be everyone, volunteers or citizens"
                ));
            }
            if rule.message_id.trim().is_empty() || rule.message_en.trim().is_empty() {
                problems.push(format!(
                    "cap.rules[{index}].message_id/message_en: both languages are needed"
                ));
            }
        }
        problems
    }
}
