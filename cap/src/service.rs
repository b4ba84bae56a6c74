//! [`CapService`]: applying the CAP messages the poller reads (store, announce, escalate, run the
//! rules), and what the routes ask of it. Decisions about a message (is it for the map, is it
//! severe, which rules fire) are pure functions here; the store applies a message in one transaction.

use std::collections::BTreeMap;
use std::sync::Arc;

use sqlx::PgPool;
use uuid::Uuid;

use crate::broadcast::{Audience, Checked, CheckedArea};
use crate::config::{CapConfig, RuleConfig};
use crate::geometry::Area;
use crate::model::{CapAlert, MsgType, Severity, Status};
use crate::parse::Limits;
use crate::ports::{Announcer, People};
use crate::store;
use crate::views::Warning;

/// The CAP service: its database, settings and ports.
pub struct CapService {
    pub(crate) pool: PgPool,
    pub(crate) config: CapConfig,
    pub(crate) people: Arc<dyn People>,
    pub(crate) announcer: Arc<dyn Announcer>,
    geocodes: BTreeMap<String, Area>,
}

/// What applying one message did, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Already read (same sender, identifier and sent).
    Duplicate,
    /// Stored; on the map when `shown`.
    Stored {
        /// On the map now.
        shown: bool,
        /// How many earlier warnings it retired.
        retired: usize,
    },
}

/// True when a message of this status and type is shown on the map (an `Actual` `Alert` or
/// `Update`); exercises, tests, drafts and cancellations are stored but not shown.
pub fn is_shown(status: Status, msg_type: MsgType) -> bool {
    status == Status::Actual && matches!(msg_type, MsgType::Alert | MsgType::Update)
}

/// True when a shown warning of `severity` raises escalations: a Severe or Extreme `Alert`, or an
/// `Update` that made a warning Severe or Extreme (an Update of one already escalated does not
/// alarm the regions again; its escalations stay open until acknowledged).
pub fn needs_escalation(severity: Severity, msg_type: MsgType, replaced_severe: bool) -> bool {
    severity.is_severe() && (msg_type == MsgType::Alert || !replaced_severe)
}

/// The rules that fire for a shown warning of `severity` whose events are `events`.
pub fn rules_firing<'a>(
    rules: &'a [RuleConfig],
    severity: Severity,
    events: &[&str],
) -> Vec<&'a RuleConfig> {
    rules
        .iter()
        .filter(|rule| {
            Severity::parse(&rule.min_severity).is_some_and(|min| severity.at_least(min))
                && (rule.event.is_empty()
                    || events
                        .iter()
                        .any(|e| e.to_lowercase().contains(&rule.event.to_lowercase())))
        })
        .collect()
}

impl CapService {
    /// A service over `pool` with `config` (checked by [`CapConfig::validate`]) and its ports.
    pub fn new(
        pool: PgPool,
        config: CapConfig,
        people: Arc<dyn People>,
        announcer: Arc<dyn Announcer>,
    ) -> Arc<Self> {
        let geocodes = config
            .geocodes
            .iter()
            .filter_map(|(code, text)| {
                Area::from_geojson_text(text)
                    .ok()
                    .map(|area| (code.clone(), area))
            })
            .collect();
        Arc::new(Self {
            pool,
            config,
            people,
            announcer,
            geocodes,
        })
    }

    /// Its settings.
    pub fn config(&self) -> &CapConfig {
        &self.config
    }

    /// The document limits of the settings.
    pub fn limits(&self) -> Limits {
        Limits {
            max_bytes: self.config.max_document_bytes,
            max_polygon_points: self.config.max_polygon_points,
            max_areas: self.config.max_areas,
        }
    }

    /// The configured area of a `geocode` (by its value; the name is not needed to tell them apart
    /// in one deployment).
    pub fn geocode(&self, _name: &str, value: &str) -> Option<Area> {
        self.geocodes.get(value).cloned()
    }

    /// Applies one parsed message from `feed`: stores it (de-duplicated), retires what it updates or
    /// cancels, tells the dashboards, escalates a severe one and runs the rules.
    ///
    /// # Errors
    /// Database failures (the poller logs them and reads the message again next time).
    pub async fn apply(&self, feed: &str, alert: &CapAlert) -> Result<Outcome, sqlx::Error> {
        let applied = store::apply(&self.pool, feed, alert, self.config.default_expiry_h).await?;
        let Some(row) = applied.stored else {
            return Ok(Outcome::Duplicate);
        };
        if !applied.retired.is_empty() {
            self.announcer.warnings_removed(&applied.retired);
        }
        let shown = is_shown(alert.status, alert.msg_type)
            && row.expires_at > chrono::Utc::now()
            && store::active_one(&self.pool, row.id).await?;
        metrics::counter!("kreki_cap_messages_total", "feed" => feed.to_owned(), "msg_type" => alert.msg_type.as_str())
            .increment(1);
        tracing::info!(feed, sender = %alert.sender, identifier = %alert.identifier, msg_type = alert.msg_type.as_str(), shown, retired = applied.retired.len(), "CAP message applied");
        if shown {
            let warning = Warning::from(row);
            self.announcer.warning_changed(&warning);
            let severity = alert.severity();
            if needs_escalation(severity, alert.msg_type, applied.retired_severe)
                && warning.area.is_some()
            {
                self.announcer.severe_warning(&warning);
            }
            if alert.msg_type == MsgType::Alert {
                self.run_rules(alert, &warning).await;
            }
        }
        Ok(Outcome::Stored {
            shown,
            retired: applied.retired.len(),
        })
    }

    async fn run_rules(&self, alert: &CapAlert, warning: &Warning) {
        if warning.area.is_none() {
            return;
        }
        let events: Vec<&str> = alert.infos.iter().map(|i| i.event.as_str()).collect();
        let headline = warning.headline.clone().unwrap_or_default();
        let english = alert
            .infos
            .iter()
            .find(|i| i.language.starts_with("en"))
            .and_then(|i| i.headline.clone())
            .unwrap_or_else(|| headline.clone());
        for rule in rules_firing(&self.config.rules, alert.severity(), &events) {
            let Some(audience) = Audience::parse(&rule.audience) else {
                continue;
            };
            let checked = Checked {
                audience,
                area: CheckedArea::Warning(warning.id),
                area_desc: String::new(),
                message_id: clip(&rule.message_id.replace("{headline}", &headline)),
                message_en: clip(&rule.message_en.replace("{headline}", &english)),
                severity: alert.severity(),
                expires_at: warning.expires_at,
            };
            match self.broadcast(None, checked).await {
                Ok(sent) => {
                    tracing::info!(warning = %warning.id, broadcast = %sent.id, "rule broadcast sent")
                }
                Err(error) => {
                    tracing::warn!(warning = %warning.id, %error, "rule broadcast failed")
                }
            }
        }
    }

    /// The active warnings, most severe first.
    ///
    /// # Errors
    /// Database failures.
    pub async fn warnings(&self) -> Result<Vec<Warning>, sqlx::Error> {
        Ok(store::active(&self.pool, 500)
            .await?
            .into_iter()
            .map(Warning::from)
            .collect())
    }

    /// One warning by id.
    ///
    /// # Errors
    /// Database failures.
    pub async fn warning(&self, id: Uuid) -> Result<Option<Warning>, sqlx::Error> {
        Ok(store::warning(&self.pool, id).await?.map(Warning::from))
    }
}

fn clip(text: &str) -> String {
    text.chars()
        .take(crate::broadcast::MAX_TEXT_CHARS)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(event: &str, min: &str) -> RuleConfig {
        RuleConfig {
            event: event.to_owned(),
            min_severity: min.to_owned(),
            audience: "volunteers".to_owned(),
            message_id: "x".to_owned(),
            message_en: "y".to_owned(),
        }
    }

    #[test]
    fn rules_fire_on_event_and_severity() {
        let rules = [rule("gempa", "Extreme"), rule("", "Severe")];
        assert_eq!(
            rules_firing(&rules, Severity::Extreme, &["Gempabumi"]).len(),
            2
        );
        assert_eq!(
            rules_firing(&rules, Severity::Severe, &["Gempabumi"]).len(),
            1
        );
        assert_eq!(
            rules_firing(&rules, Severity::Moderate, &["Gempabumi"]).len(),
            0
        );
        assert_eq!(
            rules_firing(&rules, Severity::Extreme, &["Banjir"]).len(),
            1
        );
        assert_eq!(
            rules_firing(&rules, Severity::Unknown, &["Gempabumi"]).len(),
            0
        );
    }

    #[test]
    fn severe_alerts_and_updates_that_turn_severe_escalate() {
        assert!(needs_escalation(Severity::Extreme, MsgType::Alert, false));
        assert!(needs_escalation(Severity::Severe, MsgType::Update, false));
        assert!(!needs_escalation(Severity::Extreme, MsgType::Update, true));
        assert!(!needs_escalation(Severity::Moderate, MsgType::Alert, false));
    }

    #[test]
    fn only_actual_alerts_and_updates_are_shown() {
        assert!(is_shown(Status::Actual, MsgType::Alert));
        assert!(is_shown(Status::Actual, MsgType::Update));
        assert!(!is_shown(Status::Actual, MsgType::Cancel));
        assert!(!is_shown(Status::Exercise, MsgType::Alert));
    }
}
