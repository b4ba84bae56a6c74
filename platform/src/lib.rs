//! What every KREKI service shares at its edge, written once so the services stay small.
//!
//! - [`problem`]: the one error shape of the API (`application/problem+json`, RFC 9457).
//! - [`extract`]: `Json`/`Query`/`Form`/`Path` extractors whose rejections are problems naming the field.
//! - [`http`]: the middleware stack (request ids, JSON access logs, metrics, timeouts, body limits,
//!   panic catching) and the fallback that turns any bare error status into a problem.
//! - [`telemetry`]: JSON `tracing` logs and the Prometheus recorder.
//! - [`health`]: `/healthz` (the process answers) and `/readyz` (its dependencies answer).
//! - [`db`]: PostgreSQL pool, migrations and constraint helpers.
//! - [`pii`]: NIKs sealed with AES-256-GCM under named keys, their keyed search hash, masking.
//! - [`shutdown`]: SIGTERM/SIGINT handling shared by the server and background workers.

pub mod db;
pub mod extract;
pub mod health;
pub mod http;
pub mod pii;
pub mod problem;
pub mod shutdown;
pub mod telemetry;

pub use problem::{FieldError, Problem};
