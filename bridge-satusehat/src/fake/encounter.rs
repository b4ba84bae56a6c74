//! Encounters: the rules SATUSEHAT enforces on create and update (OperationOutcomes with its rule
//! numbers), read, and search by identifier.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use super::search::searchset;
use super::token::authorize;
use super::{Shared, fhir_json, outcome, take};

/// Checks an Encounter against SATUSEHAT's rules for our organization `org_id`.
fn validate_encounter(encounter: &Value, org_id: &str) -> Result<(), Response> {
    let invalid = |code: &str, text: &str| outcome(StatusCode::BAD_REQUEST, code, None, text);
    if encounter.get("resourceType").and_then(Value::as_str) != Some("Encounter") {
        return Err(invalid("invalid", "resourceType must be Encounter"));
    }
    const STATUSES: &[&str] = &[
        "planned",
        "arrived",
        "triaged",
        "in-progress",
        "onleave",
        "finished",
        "cancelled",
        "entered-in-error",
        "unknown",
    ];
    match encounter.get("status").and_then(Value::as_str) {
        None => return Err(invalid("required", "Encounter.status is required")),
        Some(status) if !STATUSES.contains(&status) => {
            return Err(invalid(
                "code-invalid",
                "Encounter.status is not a valid code",
            ));
        }
        Some(_) => {}
    }
    let class = encounter.get("class");
    let class_ok = class.is_some_and(|class| {
        class.is_object()
            && class.get("system").and_then(Value::as_str)
                == Some("http://terminology.hl7.org/CodeSystem/v3-ActCode")
            && class
                .get("code")
                .and_then(Value::as_str)
                .is_some_and(|code| {
                    ["AMB", "EMER", "IMP", "HH", "VR", "SS", "ACUTE", "NONAC"].contains(&code)
                })
    });
    if class.is_none() {
        return Err(invalid("required", "Encounter.class is required"));
    }
    if !class_ok {
        return Err(invalid(
            "code-invalid",
            "Encounter.class must be a Coding from http://terminology.hl7.org/CodeSystem/v3-ActCode",
        ));
    }
    let subject_ok = encounter.get("subject").is_some_and(|subject| {
        subject
            .get("reference")
            .and_then(Value::as_str)
            .is_some_and(|reference| reference.starts_with("Patient/"))
            || subject.get("display").and_then(Value::as_str).is_some()
    });
    if !subject_ok {
        return Err(invalid(
            "required",
            "Encounter.subject is required (a Patient reference or display)",
        ));
    }
    let participants = encounter.get("participant").and_then(Value::as_array);
    let participant_ok = participants.is_some_and(|participants| {
        !participants.is_empty()
            && participants.iter().all(|participant| {
                let attender = participant
                    .pointer("/type/0/coding")
                    .and_then(Value::as_array)
                    .is_some_and(|codings| {
                        codings.iter().any(|coding| {
                        coding.get("code").and_then(Value::as_str) == Some("ATND")
                            && coding.get("system").and_then(Value::as_str)
                                == Some(
                                    "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                )
                    })
                    });
                let practitioner = participant
                    .pointer("/individual/reference")
                    .and_then(Value::as_str)
                    .is_some_and(|reference| reference.starts_with("Practitioner/"));
                attender && practitioner
            })
    });
    if !participant_ok {
        return Err(invalid(
            "required",
            "Encounter.participant needs type ATND (v3-ParticipationType) and a Practitioner individual",
        ));
    }
    let location_ok = encounter
        .pointer("/location/0/location/reference")
        .and_then(Value::as_str)
        .is_some_and(|reference| reference.starts_with("Location/"));
    if !location_ok {
        return Err(invalid(
            "required",
            "Encounter.location needs a Location reference",
        ));
    }
    let provider = encounter
        .pointer("/serviceProvider/reference")
        .and_then(Value::as_str);
    match provider {
        None => return Err(invalid("required", "Encounter.serviceProvider is required")),
        Some(reference) if reference != format!("Organization/{org_id}") => {
            return Err(outcome(
                StatusCode::BAD_REQUEST,
                "business-rule",
                Some("10117"),
                "serviceProvider must be the organization of the credentials",
            ));
        }
        Some(_) => {}
    }
    let identifiers = encounter.get("identifier").and_then(Value::as_array);
    let ours = identifiers.into_iter().flatten().find_map(|identifier| {
        identifier
            .get("system")
            .and_then(Value::as_str)
            .and_then(|system| system.strip_prefix("http://sys-ids.kemkes.go.id/encounter/"))
            .map(|org| {
                (
                    org.to_owned(),
                    identifier.get("value").and_then(Value::as_str),
                )
            })
    });
    match ours {
        None => {
            return Err(invalid(
                "required",
                "Encounter.identifier needs system http://sys-ids.kemkes.go.id/encounter/{org_id}",
            ));
        }
        Some((org, _)) if org != org_id => {
            return Err(outcome(
                StatusCode::BAD_REQUEST,
                "business-rule",
                Some("10117"),
                "the organization in the identifier system is not the organization of the credentials",
            ));
        }
        Some((_, None)) => {
            return Err(invalid(
                "required",
                "Encounter.identifier.value is required",
            ));
        }
        Some(_) => {}
    }
    let mut times = Vec::new();
    collect_times(encounter, &mut times);
    if !encounter
        .pointer("/period/start")
        .is_some_and(Value::is_string)
    {
        return Err(invalid("required", "Encounter.period.start is required"));
    }
    for time in times {
        let utc = DateTime::parse_from_rfc3339(&time)
            .is_ok_and(|parsed| parsed.offset().local_minus_utc() == 0);
        if !utc {
            return Err(invalid(
                "invalid",
                &format!("time {time} must be UTC (…Z or +00:00)"),
            ));
        }
    }
    Ok(())
}

/// Every `start`/`end` string in the resource (period and statusHistory times).
fn collect_times(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("start" | "end", Value::String(text)) => out.push(text.clone()),
                    _ => collect_times(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_times(item, out)),
        _ => {}
    }
}

pub(super) fn has_identifier_value(encounter: &Value, value: &str) -> bool {
    encounter
        .get("identifier")
        .and_then(Value::as_array)
        .is_some_and(|identifiers| {
            identifiers
                .iter()
                .any(|identifier| identifier.get("value").and_then(Value::as_str) == Some(value))
        })
}

fn stamp(encounter: &mut Value, id: &str, version: u64) {
    encounter["id"] = json!(id);
    encounter["meta"] = json!({
        "versionId": version.to_string(),
        "lastUpdated": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    });
}

fn parse_body(body: &Bytes) -> Result<Value, Response> {
    serde_json::from_slice(body).map_err(|error| {
        outcome(
            StatusCode::BAD_REQUEST,
            "structure",
            None,
            &format!("body is not JSON: {error}"),
        )
    })
}

pub(super) async fn create_encounter(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(response) = authorize(&shared, &headers) {
        return response;
    }
    let mut encounter = match parse_body(&body) {
        Ok(encounter) => encounter,
        Err(response) => return response,
    };
    if let Err(response) = validate_encounter(&encounter, &shared.config.org_id) {
        return response;
    }
    let id = Uuid::new_v4().to_string();
    stamp(&mut encounter, &id, 1);
    let hang = {
        let mut inner = shared.lock();
        inner.encounters.push(encounter.clone());
        take(&mut inner.faults.create_commit_then_hang).then_some(inner.faults.hang)
    };
    if let Some(hang) = hang {
        tokio::time::sleep(hang).await;
    }
    fhir_json(StatusCode::CREATED, encounter)
}

pub(super) async fn update_encounter(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(response) = authorize(&shared, &headers) {
        return response;
    }
    let mut encounter = match parse_body(&body) {
        Ok(encounter) => encounter,
        Err(response) => return response,
    };
    if encounter.get("id").and_then(Value::as_str) != Some(id.as_str()) {
        return outcome(
            StatusCode::BAD_REQUEST,
            "invalid",
            None,
            "Encounter.id must match the id in the URL",
        );
    }
    if let Err(response) = validate_encounter(&encounter, &shared.config.org_id) {
        return response;
    }
    let mut inner = shared.lock();
    let Some(stored) = inner
        .encounters
        .iter_mut()
        .find(|stored| stored.get("id").and_then(Value::as_str) == Some(id.as_str()))
    else {
        return outcome(
            StatusCode::NOT_FOUND,
            "not-found",
            None,
            "Encounter not found",
        );
    };
    let version = stored
        .pointer("/meta/versionId")
        .and_then(Value::as_str)
        .and_then(|version| version.parse::<u64>().ok())
        .unwrap_or(1);
    stamp(&mut encounter, &id, version + 1);
    *stored = encounter.clone();
    fhir_json(StatusCode::OK, encounter)
}

pub(super) async fn read_encounter(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(response) = authorize(&shared, &headers) {
        return response;
    }
    let found = shared
        .lock()
        .encounters
        .iter()
        .find(|stored| stored.get("id").and_then(Value::as_str) == Some(id.as_str()))
        .cloned();
    match found {
        Some(encounter) => fhir_json(StatusCode::OK, encounter),
        None => outcome(
            StatusCode::NOT_FOUND,
            "not-found",
            None,
            "Encounter not found",
        ),
    }
}

pub(super) async fn search_encounter(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(response) = authorize(&shared, &headers) {
        return response;
    }
    let Some((system, value)) = query
        .get("identifier")
        .and_then(|identifier| identifier.split_once('|'))
    else {
        return outcome(
            StatusCode::BAD_REQUEST,
            "required",
            None,
            "search by identifier=system|value",
        );
    };
    let found = shared
        .lock()
        .encounters
        .iter()
        .filter(|encounter| {
            encounter
                .get("identifier")
                .and_then(Value::as_array)
                .is_some_and(|identifiers| {
                    identifiers.iter().any(|identifier| {
                        identifier.get("system").and_then(Value::as_str) == Some(system)
                            && identifier.get("value").and_then(Value::as_str) == Some(value)
                    })
                })
        })
        .cloned()
        .collect();
    fhir_json(StatusCode::OK, searchset(found))
}
