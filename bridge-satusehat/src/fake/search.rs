//! `Practitioner` and `Patient` searches by NIK, over the seeded people (masked names, zero, one
//! or several matches).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::token::authorize;
use super::{
    SEED_IHS_ONE, SEED_IHS_TWO, SEED_NIK_ONE, SEED_NIK_SEVERAL, SEED_NIK_TWO, SEED_PATIENT_IHS,
    SEED_PATIENT_NIK, Shared, fhir_json, outcome,
};
use crate::domain::{IHS_SYSTEM, NIK_SYSTEM, PATIENT_IHS_SYSTEM};

pub(super) fn seed_practitioners() -> HashMap<String, Vec<(String, String)>> {
    HashMap::from([
        (
            SEED_NIK_ONE.to_owned(),
            vec![(SEED_IHS_ONE.to_owned(), "Sa**i Wu*****ri".to_owned())],
        ),
        (
            SEED_NIK_TWO.to_owned(),
            vec![(SEED_IHS_TWO.to_owned(), "Bu*i Sa****o".to_owned())],
        ),
        (
            SEED_NIK_SEVERAL.to_owned(),
            vec![
                ("10001354453".to_owned(), "Ra**a".to_owned()),
                ("10006926842".to_owned(), "Ra**a Pu**i".to_owned()),
                ("10009880729".to_owned(), "R**a".to_owned()),
            ],
        ),
    ])
}

pub(super) fn seed_patients() -> HashMap<String, Vec<(String, String)>> {
    HashMap::from([(
        SEED_PATIENT_NIK.to_owned(),
        vec![(SEED_PATIENT_IHS.to_owned(), "Wa**a De**o".to_owned())],
    )])
}

pub(super) fn nik_from(query: &HashMap<String, String>) -> Result<String, Response> {
    let identifier = query.get("identifier").ok_or_else(|| {
        outcome(
            StatusCode::BAD_REQUEST,
            "required",
            None,
            "search parameter identifier is required",
        )
    })?;
    match identifier.split_once('|') {
        Some((system, value)) if system == NIK_SYSTEM => Ok(value.to_owned()),
        _ => Err(outcome(
            StatusCode::BAD_REQUEST,
            "invalid",
            None,
            "identifier must be https://fhir.kemkes.go.id/id/nik|{nik}",
        )),
    }
}

pub(super) fn searchset(resources: Vec<Value>) -> Value {
    json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": resources.len(),
        "entry": resources.into_iter().map(|resource| {
            let url = format!("https://api-satusehat-stg.dto.kemkes.go.id/fhir-r4/v1/{}/{}",
                resource["resourceType"].as_str().unwrap_or(""), resource["id"].as_str().unwrap_or(""));
            json!({ "fullUrl": url, "resource": resource, "search": { "mode": "match" } })
        }).collect::<Vec<_>>()
    })
}

pub(super) async fn search_practitioner(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(response) = authorize(&shared, &headers) {
        return response;
    }
    let nik = match nik_from(&query) {
        Ok(nik) => nik,
        Err(response) => return response,
    };
    let matches = shared
        .lock()
        .practitioners
        .get(&nik)
        .cloned()
        .unwrap_or_default();
    let resources = matches
        .into_iter()
        .map(|(ihs, name)| {
            json!({
                "resourceType": "Practitioner",
                "id": ihs,
                "identifier": [
                    { "use": "official", "system": IHS_SYSTEM, "value": ihs },
                    { "use": "official", "system": NIK_SYSTEM, "value": format!("{}********", &nik[..8]) }
                ],
                "name": [{ "use": "official", "text": name }],
                "meta": { "versionId": "1", "lastUpdated": "2023-06-01T00:00:00+00:00" }
            })
        })
        .collect();
    fhir_json(StatusCode::OK, searchset(resources))
}

pub(super) async fn search_patient(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(response) = authorize(&shared, &headers) {
        return response;
    }
    let nik = match nik_from(&query) {
        Ok(nik) => nik,
        Err(response) => return response,
    };
    let matches = shared
        .lock()
        .patients
        .get(&nik)
        .cloned()
        .unwrap_or_default();
    let resources = matches
        .into_iter()
        .map(|(ihs, name)| {
            json!({
                "resourceType": "Patient",
                "id": ihs,
                "identifier": [{ "use": "official", "system": PATIENT_IHS_SYSTEM, "value": ihs }],
                "name": [{ "use": "official", "text": name }],
                "meta": { "versionId": "1", "lastUpdated": "2023-06-01T00:00:00+00:00" }
            })
        })
        .collect();
    fhir_json(StatusCode::OK, searchset(resources))
}
