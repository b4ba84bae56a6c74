//! The SATUSEHAT bridge and the FHIR R4 API for health systems.
//!
//! - [`domain`]: `Nik`, incident events, and the ports: [`IncidentFeed`] (incidents in, fed by the
//!   binary from dispatch's events) and [`PractitionerStatusSink`] (verification results out).
//! - [`config`]: `[satusehat]` settings.
//! - [`client`]: the SATUSEHAT client (token cache, FHIR calls, typed errors).
//! - [`fake`]: a fake SATUSEHAT server with fault injection, for tests and demos.

pub mod client;
pub mod config;
pub mod domain;
pub mod fake;

pub use client::{SatusehatClient, SatusehatError};
pub use config::SatusehatConfig;
pub use domain::{
    IncidentEvent, IncidentFeed, IncidentStatus, Nik, PractitionerStatusSink, Responder,
};
