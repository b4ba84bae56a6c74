//! KREKI dispatch: from a citizen's panic to the nearest eligible volunteers, and on to an
//! accepted assignment.
//!
//! - [`geo`]: validated positions ([`LatLng`]) and distances in metres.
//! - [`matcher`]: the in-memory H3 index of volunteers that answers "the nearest N eligible within
//!   R metres" in microseconds.
//! - [`domain`]: typed ids, alert kinds and statuses, offer and assignment statuses, the
//!   idempotency key, checked positions, per-kind wave settings.
//! - [`config`]: `[dispatch]` configuration and the default waves.
//! - [`wave`]: **the wave policy**, a pure function from an alert's snapshot to its next wave's
//!   plan (start here to change who gets offers and when).
//! - [`timeline`]: every kind of timeline entry and its data.
//! - [`messages`]: [`Message`], the one typed enum dispatch emits.
//! - [`service`]: [`DispatchService`], one file per use case: alerts (ingest with the first
//!   wave), waves (the dispatcher's batches), responders (accept, decline, assign, status),
//!   volunteers (duty, positions, the matcher's sync), effects (what follows a commit), aeds (the
//!   AED registry and routing via a device), checkins (aftercare), resolve (outcomes), regions
//!   (areas, coordinators, scope), triage (release, notes, phoned-in alerts), escalations.
//! - [`abuse`]: the panic rate limits per account and address.
//! - [`index`]: the service's handle on the [`Matcher`] (locking, rebuild from PostGIS rows).
//! - [`sync`]: how every instance's matcher catches up on the volunteer changes other instances made.
//! - [`worker`]: the dispatcher (outbox, timers, poller) and the location-history writer.
//! - [`aftercare`]: the loop that delivers aftercare check-ins when they fall due.
//! - [`escalate`]: the loop that raises escalations no status change raises (stalled responders,
//!   alerts open too long).
//! - [`history`]: the bounded, batched location history.
//! - [`positions`]: write-behind volunteer positions (matcher at once, PostgreSQL in batches).
//! - [`eligibility`]: the [`CertificationSource`] port and its PostgreSQL implementation.
//! - [`notify`]: the [`Notifier`] port to the realtime transport.
//! - [`store`]: the SQL (schema `dispatch`), one file per use case.
//! - [`views`]: the JSON shapes of docs/API.md (Alert, Offer, Assignment, ...).
//! - [`routes`]: the HTTP endpoints and their OpenAPI description, one file per use case.
//! - [`error`]: [`DispatchError`] and its mapping to problem+json.

pub mod abuse;
pub mod aftercare;
pub mod config;
pub mod domain;
pub mod eligibility;
pub mod error;
pub mod escalate;
pub mod geo;
pub mod history;
pub mod index;
pub mod matcher;
pub mod messages;
pub mod notify;
pub mod positions;
pub mod retention;
pub mod routes;
pub mod service;
pub mod store;
pub mod sync;
pub mod timeline;
pub mod views;
pub mod wave;
pub mod worker;

pub use config::DispatchConfig;
pub use eligibility::{CertificationSource, PgCertificationSource};
pub use error::DispatchError;
pub use geo::{GeoError, LatLng};
pub use matcher::{Candidate, CertSet, MatchQuery, Matcher, MatcherConfig, VolunteerState};
pub use messages::Message;
pub use notify::{Audience, Notifier, RecordingNotifier};
pub use routes::DispatchState;
pub use service::DispatchService;

/// Dispatch's columns of NIKs, for the reseal batch ([`kreki_platform::pii::reseal`]).
pub const NIK_COLUMNS: &[kreki_platform::pii::ResealTarget] =
    &[kreki_platform::pii::ResealTarget {
        table: "dispatch.alerts",
        key: "id",
        column: "patient_nik",
        hash_column: None,
    }];
