//! The bridge end to end over a fresh database and the fake SATUSEHAT: practitioner verification,
//! the incident feed, the Encounter outbox under faults, and the FHIR API for health systems. One
//! binary; the cases are in `cases/` by use case.

#[path = "cases/encounters.rs"]
mod encounters;
#[path = "cases/fhir_api.rs"]
mod fhir_api;
mod support;
#[path = "cases/verification.rs"]
mod verification;
