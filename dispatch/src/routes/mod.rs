//! Dispatch's HTTP endpoints (docs/API.md "Volunteers and alerts", plus the admin kind settings), one
//! file per use case. Handlers check the role, parse and validate, call [`DispatchService`], and
//! shape the answer; every error goes through [`DispatchError`].
//!
//! - [`volunteers`]: duty, positions, the coordinators' map, a volunteer's offers.
//! - [`alerts`]: panic, reading and listing alerts, timelines, cancel, a coordinator's assignment.
//! - [`responders`]: accepting and declining offers, moving an assignment along.
//! - [`kinds`]: per-kind dispatch settings.
//! - [`aeds`]: the AED registry.
//! - [`checkins`]: aftercare check-ins and their answers.
//! - [`resolve`]: a coordinator resolves an alert with its outcome.
//! - [`regions`]: regions and their coordinators.
//! - [`triage`]: release from triage, notes, alerts phoned in to a coordinator.
//! - [`contacts`]: a coordinator's recorded call-back view of phones.
//! - [`escalations`]: the alarms coordinators acknowledge.

pub mod aeds;
pub mod alerts;
pub mod checkins;
pub mod contacts;
pub mod escalations;
pub mod kinds;
pub mod regions;
pub mod resolve;
pub mod responders;
pub mod triage;
pub mod volunteers;

use std::sync::Arc;

use axum::extract::FromRef;
use kreki_auth::TokenVerifier;
use kreki_platform::Problem;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{DispatchError, DispatchResult};
use crate::service::DispatchService;

/// State of the dispatch routes.
#[derive(Clone)]
pub struct DispatchState {
    /// The service.
    pub service: Arc<DispatchService>,
    /// Verifies access tokens.
    pub verifier: TokenVerifier,
}

impl FromRef<DispatchState> for TokenVerifier {
    fn from_ref(state: &DispatchState) -> Self {
        state.verifier.clone()
    }
}

/// The routes, with their OpenAPI description, ready to merge into the app.
pub fn router(state: DispatchState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(volunteers::set_duty))
        .routes(routes!(volunteers::post_location))
        .routes(routes!(volunteers::list_volunteers))
        .routes(routes!(volunteers::my_offers))
        .routes(routes!(alerts::create_alert, alerts::list_alerts))
        .routes(routes!(alerts::get_alert))
        .routes(routes!(alerts::timeline))
        .routes(routes!(alerts::cancel))
        .routes(routes!(alerts::assign))
        .routes(routes!(responders::accept))
        .routes(routes!(responders::decline))
        .routes(routes!(responders::assignment_status))
        .routes(routes!(kinds::list_kinds))
        .routes(routes!(kinds::put_kind))
        .routes(routes!(aeds::create_aed, aeds::list_aeds))
        .routes(routes!(aeds::change_aed))
        .routes(routes!(checkins::my_checkins))
        .routes(routes!(checkins::answer_checkin))
        .routes(routes!(checkins::list_answers))
        .routes(routes!(resolve::resolve))
        .routes(routes!(regions::create_region, regions::list_regions))
        .routes(routes!(regions::set_coordinators))
        .routes(routes!(triage::release))
        .routes(routes!(triage::add_note))
        .routes(routes!(triage::redispatch))
        .routes(routes!(triage::hand_off))
        .routes(routes!(triage::phone_in))
        .routes(routes!(contacts::view_contacts))
        .routes(routes!(escalations::list_escalations))
        .routes(routes!(escalations::acknowledge))
        .with_state(state)
}

const TAG: &str = "dispatch";

/// Query of the coordinators' lists.
#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// `minLng,minLat,maxLng,maxLat` in degrees.
    pub bbox: Option<String>,
    /// Only alerts with this status.
    pub status: Option<String>,
}

pub(crate) fn parse_bbox(text: Option<&str>) -> DispatchResult<Option<[f64; 4]>> {
    let Some(text) = text.filter(|text| !text.trim().is_empty()) else {
        return Ok(None);
    };
    let bad = || DispatchError::field("bbox", "must be minLng,minLat,maxLng,maxLat in degrees");
    let values: Vec<f64> = text
        .split(',')
        .map(|part| part.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    let [min_lng, min_lat, max_lng, max_lat] = values[..] else {
        return Err(bad());
    };
    let ok = [min_lng, min_lat, max_lng, max_lat]
        .iter()
        .all(|v| v.is_finite())
        && (-180.0..=180.0).contains(&min_lng)
        && (-180.0..=180.0).contains(&max_lng)
        && (-90.0..=90.0).contains(&min_lat)
        && (-90.0..=90.0).contains(&max_lat)
        && min_lng <= max_lng
        && min_lat <= max_lat;
    if ok {
        Ok(Some([min_lng, min_lat, max_lng, max_lat]))
    } else {
        Err(bad())
    }
}

/// Keeps a body rejection as the problem it is (400, 413, 415, 422).
pub(crate) fn problem_to_error(problem: Problem) -> DispatchError {
    if problem.status == 422 {
        DispatchError::Validation(problem.errors)
    } else {
        DispatchError::Rejected(problem)
    }
}

/// Body of cancel and decline.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ReasonRequest {
    /// Why (free text, at most 500 characters).
    pub reason: Option<String>,
}

/// The optional `{reason?}` body: empty is fine, otherwise it must be that JSON.
pub(crate) fn reason_of(body: &[u8]) -> DispatchResult<Option<String>> {
    let body: Option<ReasonRequest> = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        Some(kreki_platform::extract::parse_json(body).map_err(problem_to_error)?)
    };
    let reason = body
        .and_then(|body| body.reason)
        .map(|reason| reason.trim().to_owned())
        .filter(|reason| !reason.is_empty());
    if reason.as_ref().is_some_and(|r| r.chars().count() > 500) {
        return Err(DispatchError::field(
            "reason",
            "must be at most 500 characters",
        ));
    }
    Ok(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bbox_is_checked() {
        assert_eq!(
            parse_bbox(Some("106.7,-6.3,106.9,-6.1")).expect("valid"),
            Some([106.7, -6.3, 106.9, -6.1])
        );
        assert_eq!(parse_bbox(None).expect("absent"), None);
        for bad in ["1,2,3", "a,b,c,d", "10,0,5,1", "0,-91,1,0"] {
            let Err(DispatchError::Validation(errors)) = parse_bbox(Some(bad)) else {
                panic!("{bad} should be refused");
            };
            assert_eq!(errors[0].field, "bbox");
        }
    }
}
