//! The FHIR R4 resources KREKI serves to health systems and sends to SATUSEHAT, built as JSON in one
//! place so their shapes are checked together (unit tests here, and the independent validator under
//! `validation/`).
//!
//! Privacy: no citizen phone number or name appears in any resource. A patient's NIK goes to
//! SATUSEHAT only (to find the patient there); health systems reading the FHIR API see that a NIK
//! was given, masked (`NIK ************2101`), never the digits.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::client::encounter_identifier_system;
use kreki_platform::pii::Pii;

use crate::domain::IHS_SYSTEM;
use crate::store::{IncidentRow, TaskRow};

/// `Content-Type` of every FHIR answer.
pub const FHIR_JSON: &str = "application/fhir+json";
/// Identifier system of KREKI alert ids.
pub const ALERT_SYSTEM: &str = "https://kreki.id/fhir/sid/alert";
/// Identifier system of KREKI volunteer ids.
pub const VOLUNTEER_SYSTEM: &str = "https://kreki.id/fhir/sid/volunteer";
/// Code system of KREKI alert kinds.
pub const ALERT_KIND_SYSTEM: &str = "https://kreki.id/fhir/CodeSystem/alert-kind";

/// A FHIR `instant` (UTC, `Z`).
pub fn instant(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn emergency_class() -> Value {
    json!({
        "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
        "code": "EMER",
        "display": "emergency"
    })
}

fn period(incident: &IncidentRow) -> Value {
    let mut period = json!({ "start": instant(incident.occurred_at) });
    if let Some(end) = incident.ended_at {
        period["end"] = json!(instant(end));
    }
    period
}

fn meta(version: i32, updated_at: DateTime<Utc>) -> Value {
    json!({ "versionId": version.to_string(), "lastUpdated": instant(updated_at) })
}

/// The Encounter a health system reads for an alert (id = alert id).
pub fn encounter(incident: &IncidentRow, pii: &Pii) -> Value {
    let mut encounter = json!({
        "resourceType": "Encounter",
        "id": incident.alert_id.to_string(),
        "meta": meta(incident.version, incident.updated_at),
        "identifier": [{ "system": ALERT_SYSTEM, "value": incident.alert_id.to_string() }],
        "status": incident.status().encounter_status(),
        "class": emergency_class(),
        "type": [{
            "coding": [{ "system": ALERT_KIND_SYSTEM, "code": incident.kind }],
            "text": incident.kind
        }],
        "priority": { "coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActPriority",
            "code": "EM",
            "display": "emergency"
        }] },
        "period": period(incident),
        "location": [{ "location": { "reference": format!("Location/{}", incident.alert_id) } }]
    });
    if let Some(stored) = &incident.patient_nik {
        let display = pii.open_str(stored).map_or_else(
            |_| "NIK given (unreadable)".to_owned(),
            |nik| format!("NIK {}", nik.masked()),
        );
        encounter["subject"] = json!({ "type": "Patient", "display": display });
    }
    encounter
}

/// The Location of an alert (id = alert id): a point, WGS84.
pub fn location(incident: &IncidentRow) -> Value {
    json!({
        "resourceType": "Location",
        "id": incident.alert_id.to_string(),
        "meta": meta(incident.version, incident.updated_at),
        "status": "active",
        "name": format!("KREKI alert {} ({})", incident.alert_id, incident.kind),
        "mode": "instance",
        "position": { "longitude": incident.lng, "latitude": incident.lat }
    })
}

/// FHIR `Task.status` of an assignment status.
pub fn task_status(assignment_status: &str) -> &'static str {
    match assignment_status {
        "accepted" => "accepted",
        "en_route" | "on_scene" => "in-progress",
        "completed" => "completed",
        "withdrawn" => "cancelled",
        _ => "requested",
    }
}

/// The Task of an assignment (id = assignment id), owned by the volunteer: identified by IHS number
/// (a SATUSEHAT Practitioner) when verified, else by KREKI volunteer id.
pub fn task(task: &TaskRow) -> Value {
    let owner = match &task.ihs_number {
        Some(ihs) => {
            json!({ "type": "Practitioner", "identifier": { "system": IHS_SYSTEM, "value": ihs } })
        }
        None => {
            json!({ "identifier": { "system": VOLUNTEER_SYSTEM, "value": task.volunteer_id.to_string() } })
        }
    };
    json!({
        "resourceType": "Task",
        "id": task.assignment_id.to_string(),
        "meta": meta(task.version, task.updated_at),
        "status": task_status(&task.status),
        "businessStatus": { "text": task.status },
        "intent": "order",
        "code": { "text": "respond to emergency alert" },
        "focus": { "reference": format!("Encounter/{}", task.alert_id) },
        "encounter": { "reference": format!("Encounter/{}", task.alert_id) },
        "authoredOn": instant(task.created_at),
        "lastModified": instant(task.updated_at),
        "owner": owner
    })
}

/// The Encounter KREKI sends to SATUSEHAT for an alert: class EMER, the practitioner as attender
/// (ATND), the patient when their NIK resolved, our id under the org's encounter identifier system,
/// the org as service provider, all times UTC. `id` is SATUSEHAT's id, for updates.
pub fn satusehat_encounter(
    incident: &IncidentRow,
    org_id: &str,
    location_id: &str,
    practitioner_ihs: &str,
    patient_ihs: Option<&str>,
    id: Option<&str>,
) -> Value {
    let subject = match patient_ihs {
        Some(ihs) => json!({ "reference": format!("Patient/{ihs}") }),
        None => json!({ "display": "Pasien belum teridentifikasi" }),
    };
    let mut encounter = json!({
        "resourceType": "Encounter",
        "identifier": [{
            "system": encounter_identifier_system(org_id),
            "value": incident.alert_id.to_string()
        }],
        "status": incident.status().encounter_status(),
        "class": emergency_class(),
        "subject": subject,
        "participant": [{
            "type": [{ "coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                "code": "ATND",
                "display": "attender"
            }] }],
            "individual": { "reference": format!("Practitioner/{practitioner_ihs}") }
        }],
        "period": period(incident),
        "location": [{ "location": { "reference": format!("Location/{location_id}") } }],
        "serviceProvider": { "reference": format!("Organization/{org_id}") }
    });
    if let Some(id) = id {
        encounter["id"] = json!(id);
    }
    encounter
}

/// An OperationOutcome with one error issue.
pub fn operation_outcome(code: &str, text: &str) -> Value {
    json!({
        "resourceType": "OperationOutcome",
        "issue": [{ "severity": "error", "code": code, "diagnostics": text }]
    })
}

/// A searchset Bundle of `resources` (each under `{base}/{type}/{id}`), with `self` and `next` links.
pub fn searchset(
    base: &str,
    resources: Vec<Value>,
    self_url: &str,
    next_url: Option<&str>,
) -> Value {
    let mut links = vec![json!({ "relation": "self", "url": self_url })];
    if let Some(next) = next_url {
        links.push(json!({ "relation": "next", "url": next }));
    }
    let entries: Vec<Value> = resources
        .into_iter()
        .map(|resource| {
            let full_url = format!(
                "{base}/{}/{}",
                resource["resourceType"].as_str().unwrap_or_default(),
                resource["id"].as_str().unwrap_or_default()
            );
            json!({ "fullUrl": full_url, "resource": resource, "search": { "mode": "match" } })
        })
        .collect();
    json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "timestamp": instant(Utc::now()),
        "link": links,
        "entry": entries
    })
}

/// The CapabilityStatement of `/fhir/r4` (server at `base`).
pub fn capability_statement(base: &str) -> Value {
    let search = |name: &str, kind: &str, doc: &str| json!({ "name": name, "type": kind, "documentation": doc });
    let common = [
        search(
            "_lastUpdated",
            "date",
            "When the resource last changed (prefixes ge, gt, le, lt, eq)",
        ),
        search("_count", "number", "Page size, at most 100"),
    ];
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-21",
        "publisher": "KREKI",
        "kind": "instance",
        "software": { "name": "KREKI", "version": env!("CARGO_PKG_VERSION") },
        "implementation": { "description": "KREKI emergency dispatch: incidents for health systems", "url": base },
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json"],
        "rest": [{
            "mode": "server",
            "security": {
                "service": [{ "coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                    "code": "OAuth"
                }] }],
                "description": "OAuth2 client credentials from /v1/auth/token with scope system/*.read"
            },
            "resource": [
                {
                    "type": "Encounter",
                    "interaction": [{ "code": "read" }, { "code": "search-type" }],
                    "versioning": "versioned",
                    "searchParam": [
                        search("date", "date", "When the alert was raised (prefixes ge, gt, le, lt, eq)"),
                        search("status", "token", "Encounter status: arrived, in-progress, finished, cancelled"),
                        common[0].clone(), common[1].clone()
                    ]
                },
                {
                    "type": "Location",
                    "interaction": [{ "code": "read" }],
                    "versioning": "versioned"
                },
                {
                    "type": "Task",
                    "interaction": [{ "code": "read" }, { "code": "search-type" }],
                    "versioning": "versioned",
                    "searchParam": [
                        search("focus", "reference", "Encounter/{id}: the tasks of one alert"),
                        common[1].clone()
                    ]
                }
            ]
        }]
    })
}
