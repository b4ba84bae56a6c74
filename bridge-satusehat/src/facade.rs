//! The FHIR R4 API for health systems at `/fhir/r4`: CapabilityStatement, Encounter / Location / Task
//! read and search over the bridge's projection.
//!
//! - Callers are OAuth2 clients (`/v1/auth/token`) holding `system/{Type}.read` (or `system/*.read`);
//!   people's tokens are refused. `metadata` is open.
//! - Answers are `application/fhir+json`; errors are OperationOutcomes with the right status.
//! - Reads carry `meta.versionId`, an `ETag` (`W/"<version>"`) and honour `If-None-Match`.
//! - Encounter search: `date` and `_lastUpdated` (prefixes `eq`, `ge`, `gt`, `le`, `lt`; may repeat),
//!   `status` (comma-separated), `_count` (default 20, capped at 100). Pages follow insertion order
//!   with a keyset cursor in the `next` link, so paging returns every incident exactly once even while
//!   incidents change.

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use kreki_auth::{AuthError, Caller};
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::fhir::{self, FHIR_JSON};
use crate::state::BridgeState;
use crate::store::{self, IncidentFilter};

/// Default page size.
pub const DEFAULT_COUNT: i64 = 20;
/// Largest page size; larger `_count` values are capped (as FHIR allows).
pub const MAX_COUNT: i64 = 100;

/// The `/fhir/r4` routes.
pub fn router(state: BridgeState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(metadata))
        .routes(routes!(search_encounters))
        .routes(routes!(read_encounter))
        .routes(routes!(read_location))
        .routes(routes!(search_tasks))
        .routes(routes!(read_task))
        .with_state(state)
}

/// An error answered as an OperationOutcome.
#[derive(Debug)]
pub struct FhirError {
    status: StatusCode,
    code: &'static str,
    text: String,
    www_authenticate: Option<String>,
}

impl FhirError {
    fn new(status: StatusCode, code: &'static str, text: impl Into<String>) -> Self {
        Self {
            status,
            code,
            text: text.into(),
            www_authenticate: None,
        }
    }

    fn invalid(param: &str, why: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            format!("search parameter {param}: {why}"),
        )
    }

    fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("{what} not found"),
        )
    }
}

impl From<AuthError> for FhirError {
    fn from(error: AuthError) -> Self {
        let problem = error.to_problem();
        let status = problem.status_code();
        let code = match status {
            StatusCode::UNAUTHORIZED => "login",
            StatusCode::FORBIDDEN => "forbidden",
            _ => "exception",
        };
        let mut fhir = Self::new(status, code, problem.detail.unwrap_or(problem.title));
        fhir.www_authenticate = problem.www_authenticate;
        fhir
    }
}

impl From<sqlx::Error> for FhirError {
    fn from(error: sqlx::Error) -> Self {
        let problem = kreki_platform::problem::from_sqlx(&error);
        Self::new(
            problem.status_code(),
            "exception",
            problem.detail.unwrap_or(problem.title),
        )
    }
}

impl IntoResponse for FhirError {
    fn into_response(self) -> Response {
        let mut response =
            fhir_response(self.status, &fhir::operation_outcome(self.code, &self.text));
        if let Some(value) = self
            .www_authenticate
            .and_then(|value| HeaderValue::from_str(&value).ok())
        {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

fn fhir_response(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    response
}

/// A versioned resource: ETag + Last-Modified, or 304 when the client has this version.
fn versioned(
    headers: &HeaderMap,
    resource: &Value,
    version: i32,
    updated_at: DateTime<Utc>,
) -> Response {
    let etag = format!("W/\"{version}\"");
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value
                .split(',')
                .any(|tag| tag.trim() == etag || tag.trim() == "*")
        });
    let mut response = if unchanged {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        fhir_response(StatusCode::OK, resource)
    };
    if let Ok(value) = HeaderValue::from_str(&etag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    if let Ok(value) =
        HeaderValue::from_str(&updated_at.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
    {
        response.headers_mut().insert(header::LAST_MODIFIED, value);
    }
    response
}

/// Ok when the caller is a client with `system/{resource}.read`.
fn authorize(caller: Result<Caller, AuthError>, resource: &str) -> Result<(), FhirError> {
    match caller? {
        Caller::Client(client) => Ok(client.require_scope(&format!("system/{resource}.read"))?),
        Caller::User(_) => Err(FhirError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the FHIR API is for OAuth2 clients with scope system/*.read (POST /v1/auth/token)",
        )),
    }
}

/// The public base of this API: configured, or from the request's `Host`.
fn base_url(state: &BridgeState, headers: &HeaderMap) -> String {
    if let Some(base) = &state.settings.fhir_base_url {
        return base.clone();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .filter(|host| {
            host.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        })
        .unwrap_or("localhost");
    format!("http://{host}/fhir/r4")
}

fn parse_id(id: &str, what: &str) -> Result<Uuid, FhirError> {
    Uuid::parse_str(id).map_err(|_| FhirError::not_found(what))
}

/// The server's CapabilityStatement.
#[utoipa::path(get, path = "/fhir/r4/metadata", tag = "fhir",
    responses((status = 200, description = "CapabilityStatement (`application/fhir+json`)")))]
async fn metadata(State(state): State<BridgeState>, headers: HeaderMap) -> Response {
    fhir_response(
        StatusCode::OK,
        &fhir::capability_statement(&base_url(&state, &headers)),
    )
}

/// Parses a FHIR date/dateTime search value into the instants `[from, before)` it covers.
fn parse_fhir_date(value: &str) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    if value.contains('T') {
        let at = DateTime::parse_from_rfc3339(value)
            .ok()?
            .with_timezone(&Utc);
        return Some((at, at + Duration::seconds(1)));
    }
    let parts: Vec<&str> = value.split('-').collect();
    let number = |text: &str, digits: usize| {
        (text.len() == digits && text.bytes().all(|b| b.is_ascii_digit()))
            .then(|| text.parse::<u32>().ok())
            .flatten()
    };
    let (start, end) = match parts.as_slice() {
        [year] => {
            let year = i32::try_from(number(year, 4)?).ok()?;
            (
                NaiveDate::from_ymd_opt(year, 1, 1)?,
                NaiveDate::from_ymd_opt(year + 1, 1, 1)?,
            )
        }
        [year, month] => {
            let year = i32::try_from(number(year, 4)?).ok()?;
            let start = NaiveDate::from_ymd_opt(year, number(month, 2)?, 1)?;
            let end = if start.month() == 12 {
                NaiveDate::from_ymd_opt(year + 1, 1, 1)?
            } else {
                NaiveDate::from_ymd_opt(year, start.month() + 1, 1)?
            };
            (start, end)
        }
        [year, month, day] => {
            let start = NaiveDate::from_ymd_opt(
                i32::try_from(number(year, 4)?).ok()?,
                number(month, 2)?,
                number(day, 2)?,
            )?;
            (start, start.succ_opt()?)
        }
        _ => return None,
    };
    let at = |date: NaiveDate| {
        date.and_hms_opt(0, 0, 0)
            .map(|naive| Utc.from_utc_datetime(&naive))
    };
    Some((at(start)?, at(end)?))
}

/// Narrows `[from, before)` by one `date`-type search value with its prefix.
fn apply_date(
    param: &str,
    raw: &str,
    from: &mut Option<DateTime<Utc>>,
    before: &mut Option<DateTime<Utc>>,
) -> Result<(), FhirError> {
    let (prefix, value) = match raw.get(..2) {
        Some(prefix @ ("eq" | "ge" | "gt" | "le" | "lt")) => (prefix, &raw[2..]),
        Some("ne" | "sa" | "eb" | "ap") => {
            return Err(FhirError::invalid(
                param,
                "supported prefixes are eq, ge, gt, le, lt",
            ));
        }
        _ => ("eq", raw),
    };
    let (lo, hi) = parse_fhir_date(value).ok_or_else(|| {
        FhirError::invalid(
            param,
            "must be a FHIR date or dateTime (2026-11-21, 2026-11-21T05:00:00Z)",
        )
    })?;
    let (lower, upper) = match prefix {
        "ge" => (Some(lo), None),
        "gt" => (Some(hi), None),
        "le" => (None, Some(hi)),
        "lt" => (None, Some(lo)),
        _ => (Some(lo), Some(hi)),
    };
    if let Some(lower) = lower {
        *from = Some(from.map_or(lower, |current| current.max(lower)));
    }
    if let Some(upper) = upper {
        *before = Some(before.map_or(upper, |current| current.min(upper)));
    }
    Ok(())
}

/// Alert statuses of a FHIR Encounter status.
fn alert_statuses(encounter_status: &str) -> Option<&'static [&'static str]> {
    Some(match encounter_status {
        "arrived" => &["dispatching", "assigned"],
        "in-progress" => &["on_scene"],
        "finished" => &["resolved"],
        "cancelled" => &["cancelled", "unmatched"],
        "planned" | "triaged" | "onleave" | "entered-in-error" | "unknown" => &[],
        _ => return None,
    })
}

fn parse_pairs(query: Option<&str>) -> Result<Vec<(String, String)>, FhirError> {
    serde_urlencoded::from_str(query.unwrap_or_default()).map_err(|_| {
        FhirError::new(
            StatusCode::BAD_REQUEST,
            "structure",
            "the query string is not valid",
        )
    })
}

fn page_size(pairs: &[(String, String)]) -> Result<i64, FhirError> {
    match pairs.iter().rfind(|(key, _)| key == "_count") {
        None => Ok(DEFAULT_COUNT),
        Some((_, value)) => value
            .parse::<i64>()
            .ok()
            .filter(|count| *count >= 1)
            .map(|count| count.min(MAX_COUNT))
            .ok_or_else(|| FhirError::invalid("_count", "must be a whole number of at least 1")),
    }
}

/// Searches Encounters (alerts).
#[utoipa::path(get, path = "/fhir/r4/Encounter", tag = "fhir", security(("bearer" = [])),
    params(
        ("date" = Option<String>, Query, description = "When the alert was raised, with prefix eq/ge/gt/le/lt; may repeat"),
        ("status" = Option<String>, Query, description = "arrived, in-progress, finished, cancelled (comma-separated)"),
        ("_lastUpdated" = Option<String>, Query, description = "When the Encounter last changed, with prefix; may repeat"),
        ("_count" = Option<i64>, Query, description = "Page size (default 20, at most 100)"),
    ),
    responses(
        (status = 200, description = "searchset Bundle with a `next` link while more remain (`application/fhir+json`)"),
        (status = 400, description = "Bad search parameter (OperationOutcome)"),
        (status = 401, description = "No valid client token (OperationOutcome)"),
        (status = 403, description = "Token without system/Encounter.read (OperationOutcome)"),
    ))]
async fn search_encounters(
    State(state): State<BridgeState>,
    caller: Result<Caller, AuthError>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, FhirError> {
    authorize(caller, "Encounter")?;
    let pairs = parse_pairs(query.as_deref())?;
    let count = page_size(&pairs)?;
    let mut filter = IncidentFilter::default();
    for (key, value) in &pairs {
        match key.as_str() {
            "date" => apply_date(
                "date",
                value,
                &mut filter.occurred_from,
                &mut filter.occurred_before,
            )?,
            "_lastUpdated" => apply_date(
                "_lastUpdated",
                value,
                &mut filter.updated_from,
                &mut filter.updated_before,
            )?,
            "status" => {
                let mut wanted: Vec<String> = Vec::new();
                for status in value.split(',') {
                    let names = alert_statuses(status.trim())
                        .ok_or_else(|| FhirError::invalid("status", "must be an Encounter status (arrived, in-progress, finished, cancelled)"))?;
                    wanted.extend(names.iter().map(|name| (*name).to_owned()));
                }
                // Repeated `status` parameters must all match (FHIR AND semantics).
                filter.statuses = Some(match filter.statuses.take() {
                    None => wanted,
                    Some(previous) => previous
                        .into_iter()
                        .filter(|name| wanted.contains(name))
                        .collect(),
                });
            }
            "_cursor" => {
                filter.after_row = value
                    .parse()
                    .ok()
                    .filter(|row: &i64| *row >= 0)
                    .ok_or_else(|| FhirError::invalid("_cursor", "must come from a next link"))?;
            }
            _ => {}
        }
    }
    let mut rows = store::search_incidents(&state.pool, &filter, count + 1).await?;
    let more = i64::try_from(rows.len()).unwrap_or(i64::MAX) > count;
    rows.truncate(usize::try_from(count).unwrap_or(usize::MAX));
    let base = base_url(&state, &headers);
    let kept: Vec<(String, String)> = pairs
        .into_iter()
        .filter(|(key, _)| key != "_cursor" && key != "_count")
        .collect();
    let link = |cursor: Option<i64>| {
        let mut params = kept.clone();
        params.push(("_count".to_owned(), count.to_string()));
        if let Some(cursor) = cursor {
            params.push(("_cursor".to_owned(), cursor.to_string()));
        }
        format!(
            "{base}/Encounter?{}",
            serde_urlencoded::to_string(&params).unwrap_or_default()
        )
    };
    let self_url = link((filter.after_row > 0).then_some(filter.after_row));
    let next_url = more.then(|| link(rows.last().map(|row| row.row_id)));
    let resources = rows
        .iter()
        .map(|row| fhir::encounter(row, &state.pii))
        .collect();
    Ok(fhir_response(
        StatusCode::OK,
        &fhir::searchset(&base, resources, &self_url, next_url.as_deref()),
    ))
}

/// Reads one Encounter (id = alert id).
#[utoipa::path(get, path = "/fhir/r4/Encounter/{id}", tag = "fhir", security(("bearer" = [])),
    params(("id" = String, Path, description = "Encounter id (the alert id)")),
    responses(
        (status = 200, description = "Encounter with ETag (`application/fhir+json`)"),
        (status = 304, description = "Unchanged since the ETag in If-None-Match"),
        (status = 404, description = "No such Encounter (OperationOutcome)"),
    ))]
async fn read_encounter(
    State(state): State<BridgeState>,
    caller: Result<Caller, AuthError>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, FhirError> {
    authorize(caller, "Encounter")?;
    let incident = store::incident(&state.pool, parse_id(&id, "Encounter")?)
        .await?
        .ok_or_else(|| FhirError::not_found("Encounter"))?;
    Ok(versioned(
        &headers,
        &fhir::encounter(&incident, &state.pii),
        incident.version,
        incident.updated_at,
    ))
}

/// Reads one Location (id = alert id): where the alert was raised.
#[utoipa::path(get, path = "/fhir/r4/Location/{id}", tag = "fhir", security(("bearer" = [])),
    params(("id" = String, Path, description = "Location id (the alert id)")),
    responses(
        (status = 200, description = "Location with ETag (`application/fhir+json`)"),
        (status = 404, description = "No such Location (OperationOutcome)"),
    ))]
async fn read_location(
    State(state): State<BridgeState>,
    caller: Result<Caller, AuthError>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, FhirError> {
    authorize(caller, "Location")?;
    let incident = store::incident(&state.pool, parse_id(&id, "Location")?)
        .await?
        .ok_or_else(|| FhirError::not_found("Location"))?;
    Ok(versioned(
        &headers,
        &fhir::location(&incident),
        incident.version,
        incident.updated_at,
    ))
}

/// Searches Tasks (assignments) by `focus=Encounter/{id}`.
#[utoipa::path(get, path = "/fhir/r4/Task", tag = "fhir", security(("bearer" = [])),
    params(("focus" = String, Query, description = "Encounter/{id}: the tasks of one alert")),
    responses(
        (status = 200, description = "searchset Bundle (`application/fhir+json`)"),
        (status = 400, description = "Missing or bad `focus` (OperationOutcome)"),
    ))]
async fn search_tasks(
    State(state): State<BridgeState>,
    caller: Result<Caller, AuthError>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, FhirError> {
    authorize(caller, "Task")?;
    let pairs = parse_pairs(query.as_deref())?;
    let focus = pairs
        .iter()
        .find(|(key, _)| key == "focus")
        .map(|(_, value)| value.as_str())
        .ok_or_else(|| FhirError::invalid("focus", "is required (focus=Encounter/{id})"))?;
    let alert_id = focus
        .strip_prefix("Encounter/")
        .unwrap_or(focus)
        .parse::<Uuid>()
        .map_err(|_| FhirError::invalid("focus", "must be Encounter/{id}"))?;
    let tasks = store::tasks_of(&state.pool, alert_id).await?;
    let base = base_url(&state, &headers);
    let self_url = format!(
        "{base}/Task?{}",
        serde_urlencoded::to_string([("focus", format!("Encounter/{alert_id}"))])
            .unwrap_or_default()
    );
    let resources = tasks.iter().map(fhir::task).collect();
    Ok(fhir_response(
        StatusCode::OK,
        &fhir::searchset(&base, resources, &self_url, None),
    ))
}

/// Reads one Task (id = assignment id).
#[utoipa::path(get, path = "/fhir/r4/Task/{id}", tag = "fhir", security(("bearer" = [])),
    params(("id" = String, Path, description = "Task id (the assignment id)")),
    responses(
        (status = 200, description = "Task with ETag (`application/fhir+json`)"),
        (status = 404, description = "No such Task (OperationOutcome)"),
    ))]
async fn read_task(
    State(state): State<BridgeState>,
    caller: Result<Caller, AuthError>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, FhirError> {
    authorize(caller, "Task")?;
    let task = store::task(&state.pool, parse_id(&id, "Task")?)
        .await?
        .ok_or_else(|| FhirError::not_found("Task"))?;
    Ok(versioned(
        &headers,
        &fhir::task(&task),
        task.version,
        task.updated_at,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    type Bounds = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

    fn bounds(values: &[&str]) -> Result<Bounds, FhirError> {
        let (mut from, mut before) = (None, None);
        for value in values {
            apply_date("date", value, &mut from, &mut before)?;
        }
        Ok((from, before))
    }

    fn at(text: &str) -> Option<DateTime<Utc>> {
        Some(
            DateTime::parse_from_rfc3339(text)
                .expect("valid")
                .with_timezone(&Utc),
        )
    }

    #[test]
    fn date_prefixes_become_half_open_ranges() {
        let (from, before) = bounds(&["2026-11-21"]).expect("valid");
        assert_eq!(
            (from, before),
            (at("2026-11-21T00:00:00Z"), at("2026-11-22T00:00:00Z"))
        );
        let (from, before) = bounds(&["ge2026-11-01", "lt2026-12"]).expect("valid");
        assert_eq!(
            (from, before),
            (at("2026-11-01T00:00:00Z"), at("2026-12-01T00:00:00Z"))
        );
        let (from, before) = bounds(&["gt2026-11-21T05:00:00+07:00"]).expect("valid");
        assert_eq!((from, before), (at("2026-11-20T22:00:01Z"), None));
        let (from, before) = bounds(&["le2026"]).expect("valid");
        assert_eq!((from, before), (None, at("2027-01-01T00:00:00Z")));
        assert!(bounds(&["2026-13-01"]).is_err());
        assert!(bounds(&["sa2026-11-01"]).is_err());
        assert!(bounds(&["yesterday"]).is_err());
    }

    #[test]
    fn count_is_capped_and_checked() {
        let pairs = |value: &str| vec![("_count".to_owned(), value.to_owned())];
        assert_eq!(page_size(&[]).expect("default"), DEFAULT_COUNT);
        assert_eq!(page_size(&pairs("5")).expect("ok"), 5);
        assert_eq!(page_size(&pairs("100000")).expect("capped"), MAX_COUNT);
        assert!(page_size(&pairs("0")).is_err());
        assert!(page_size(&pairs("ten")).is_err());
    }
}
