//! KREKI warnings in and out. BMKG (Indonesia's weather and geophysics agency) publishes
//! earthquake and weather warnings as OASIS CAP 1.2; KREKI reads them so coordinators see the
//! warned area on their map before the panics arrive, lets coordinators (and rules) send short
//! messages to the people inside an area, and publishes those as CAP 1.2 for other agencies.
//!
//! - [`config`]: `[cap]`: feeds, limits, geocode mapping, rules (off while no feed is set).
//! - [`parse`]: strict CAP 1.2 reading (no DTDs, namespace, mandatory fields, closed value lists,
//!   bounded areas); [`parse::Refusal`] says why a document was refused.
//! - [`feed`]: a source's body: one alert, Atom (inline or linked entries) or RSS (linked).
//! - [`geometry`]: polygons and circles, checked, for PostGIS.
//! - [`model`]: the CAP values KREKI keeps.
//! - [`poller`]: one polite poller per feed (conditional GET, size limit, backoff with jitter).
//! - [`service`]: applying a message (store, announce, escalate, rules); pure decisions.
//! - [`broadcast`]: area broadcasts (validation, recipients counted, delivery through ports).
//! - [`out`]: CAP 1.2 documents and the Atom feed of broadcasts.
//! - [`store`]: the SQL (schema `cap`).
//! - [`routes`]: `GET /v1/warnings`, `POST /v1/broadcasts`, `/cap/alerts.atom`, `/cap/alerts/{id}.xml`.
//! - [`ports`]: [`ports::People`] and [`ports::Announcer`], wired by the binary to dispatch and
//!   the realtime hub.
//! - [`fake`]: a fake BMKG for tests and the demo.
//! - [`xsd`] (tests and CI only): documents checked against the vendored OASIS CAP 1.2 XSD.
//! - [`views`], [`error`]: JSON shapes and WebSocket messages; [`CapError`].
//!
//! ## Decisions
//! - **roxmltree, not `oasiscap`.** `oasiscap` has not been released since 2022 and brings its own
//!   XML stack; roxmltree refuses DTDs (so entity expansion, external entities) by default, has a
//!   node limit, and is maintained. The checks of [`parse`] cover what the XSD says about every
//!   element KREKI reads; the XSD itself checks what KREKI writes (`tests/xsd.rs`).
//! - **De-duplication in the database**: `UNIQUE (sender, identifier, sent)` on `cap.warnings`, so
//!   two instances polling the same feed store one warning.
//! - **Expiry is a predicate, not a job**: active means `expires_at > now()` (default
//!   `default_expiry_h` after `sent` when the document gives none), so an expired warning leaves
//!   every map by itself.
//! - **Positions stay on the server**: a broadcast's recipients are found by dispatch inside the
//!   stored area; only their count is kept and answered.

pub mod broadcast;
pub mod config;
pub mod error;
pub mod fake;
pub mod feed;
pub mod geometry;
pub mod model;
pub mod out;
pub mod parse;
pub mod poller;
pub mod ports;
pub mod routes;
pub mod service;
pub mod store;
pub mod views;
pub mod xsd;

pub use config::CapConfig;
pub use error::CapError;
pub use routes::{CapState, router};
pub use service::CapService;
