//! The `kreki` binary as a library, so tests drive exactly what operators run.
//!
//! - [`cli`]: the command line (`serve`, `migrate`, `user create`, `keys generate`, `demo`, ...);
//!   `loadtest` and `simulate` call into the `kreki-sim` crate.
//! - [`config`]: the one typed configuration (file + `KREKI_*` environment), validated at start.
//! - [`app`]: wires the service crates into one HTTP server with shared middleware and shutdown.
//! - [`wiring`]: adapters that connect one service's ports to another service.
//! - [`erasure`]: each service's part of deleting an account, registered on KREKI ID.
//! - [`pii`]: which keys seal NIKs, and the batch that reseals stored ones.
//! - [`demo`]: a local platform with a persistent signing key and demo accounts.
//! - [`web`]: the coordinator dashboard and the citizen and volunteer web apps, compiled in.
//! - [`wiring`]: the adapters joining dispatch and the realtime hub.
//! - [`cap_wiring`]: the CAP service's ports (who is inside an area, the hub).
//! - [`sms_offers`]: offers by text when no socket took them, and the replies that answer them.

pub mod app;
pub mod basemap;
pub mod cap_wiring;
pub mod cli;
pub mod config;
pub mod demo;
pub mod erasure;
pub mod lms_names;
pub mod pii;
pub mod sms_offers;
pub mod web;
pub mod wiring;
