//! `kreki loadtest`: the end-to-end load generator of the dispatch hot path, against a running
//! `kreki serve` whose database and signing key it shares ([`Instance`]).
//!
//! - `steady`: N volunteers connected by WebSocket, panics open loop at a fixed rate; measures the
//!   time from sending `POST /v1/alerts` to the first `offer` frame for that alert at any volunteer
//!   socket, and to the 201.
//! - `surge`: many panics within a few seconds; then checks, from the sockets and the database,
//!   that every panic was acknowledged and dispatched, none lost, nobody double-booked, and says
//!   when the last offers went out after the first panic.
//! - `throughput`: a stepped ramp of open-loop panic rates; the highest step the dispatcher
//!   sustains (no backlog left, offer latency not growing over the step) and the first waves per
//!   second the database shows.
//!
//! Files:
//! - [`command`]: the CLI's flags and their checks, into a [`Plan`].
//! - [`rig`]: setup and teardown shared by every mode: seeded people, volunteer sockets, the
//!   volunteers' behaviour.
//! - [`seed`]: accounts and volunteer rows written straight into the database, tokens minted with
//!   the instance's key.
//! - [`volunteers`]: one socket per volunteer; accepts and completes through a bounded scheduler.
//! - [`panics`]: citizens' panics, open loop, and what became of each.
//! - [`open_loop`]: the `steady` and `surge` runs (one batch of panics at one rate).
//! - [`throughput`]: the `throughput` ramp and the pure verdict on each step.
//! - [`checks`]: what the database says about the run's alerts (lost, double-booked, ...).
//! - [`host`]: CPU, memory and load of this machine, and means from the server's `/metrics`.
//! - [`report`]: what a run found, printed as the tables of BENCHMARKS.md.
//!
//! Volunteers accept every offer after a think time and complete after a busy time (except in
//! `throughput`); the server's `dispatch.rest_period_s` decides when they are offered again.
//! `scripts/bench-dispatch.sh` runs it all on a scratch database, and A/B against an older
//! build; see BENCHMARKS.md.

pub mod checks;
pub mod command;
pub mod host;
pub mod open_loop;
pub mod panics;
pub mod report;
pub mod rig;
pub mod seed;
pub mod throughput;
pub mod volunteers;

use std::time::Duration;

use kreki_dispatch::domain::AlertKind;

pub use command::{Common, LoadtestCommand};
pub use report::{Latency, Report};
pub use throughput::Ramp;
use volunteers::Behaviour;

/// Seed of the run's positions, as the matcher benchmark's.
pub const DEFAULT_SEED: u64 = 20_261_121;

/// The instance under test, as far as the load generator reaches into it: its database (to seed
/// people and to check the run), its signing key (to mint tokens), and its dispatch defaults (the
/// certifications a kind requires when the database has no settings for it yet).
#[derive(Debug)]
pub struct Instance {
    /// The instance's database; closed when the run ends.
    pub pool: sqlx::PgPool,
    /// The instance's `[auth]`: signing key and issuer.
    pub auth: kreki_auth::AuthConfig,
    /// The instance's `[dispatch]`.
    pub dispatch: kreki_dispatch::config::DispatchConfig,
}

/// Which run, and its shape.
#[derive(Debug, Clone)]
pub enum Mode {
    /// Panics open loop at `rate_per_s` for `duration`.
    Steady {
        /// Panics per second.
        rate_per_s: f64,
        /// How long panics are sent.
        duration: Duration,
    },
    /// `panics` panics spread evenly over `within`.
    Surge {
        /// Panics in all.
        panics: usize,
        /// The time they are spread over.
        within: Duration,
    },
    /// Open-loop steps of rising rate until one is not sustained.
    Throughput(Ramp),
}

impl Mode {
    /// `steady`, `surge` or `throughput`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Steady { .. } => "steady",
            Self::Surge { .. } => "surge",
            Self::Throughput(_) => "throughput",
        }
    }
}

/// One run, fully specified.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Which run.
    pub mode: Mode,
    /// Base URL of the server (`http://host:port`).
    pub url: String,
    /// Volunteer sockets.
    pub volunteers: usize,
    /// Kind of every panic.
    pub kind: AlertKind,
    /// Seed of positions.
    pub seed: u64,
    /// Volunteers' behaviour (`throughput` runs never accept, whatever it says).
    pub behaviour: Behaviour,
    /// After the last panic (of a step), how long to wait for every alert to be offered or
    /// unmatched; an alert still waiting then counts as lost.
    pub settle: Duration,
    /// Server pid for CPU figures.
    pub server_pid: Option<u32>,
    /// The server build's commit, printed with the report.
    pub commit: Option<String>,
}

/// Runs `plan` against the server at `plan.url`, whose database and signing key `instance` names,
/// and closes the instance's pool at the end.
///
/// # Errors
/// Setup failures (database, key, sockets, open-file limit); the run's own findings are in the
/// [`Report`] ([`Report::problems`]).
pub async fn run(instance: Instance, plan: &Plan) -> anyhow::Result<Report> {
    let report = match &plan.mode {
        Mode::Steady { .. } | Mode::Surge { .. } => open_loop::run(&instance, plan).await,
        Mode::Throughput(ramp) => throughput::run(&instance, plan, ramp).await,
    };
    instance.pool.close().await;
    report
}
