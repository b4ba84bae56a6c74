//! `kreki simulate`: synthetic citizens and moving volunteers against a running platform, so a
//! demo comes alive and coordinators can drill.
//!
//! It acts only through the public HTTP and WebSocket API, exactly as the apps do: simulated
//! volunteers sign in, go on duty, move around central Jakarta along straight legs at walking or
//! motorbike speed and report their positions, get offers over `/v1/ws`, accept after a
//! human-like delay (some decline, some let the offer expire), then report en route, on scene and
//! completed while travelling to the alert. Simulated citizens press panic at a configurable rate
//! with a mix of kinds; every simulated alert is sent with `"drill": true`, so coordinators see it
//! is a drill and it never becomes a health record. Simulated volunteers answer drills only (by
//! that flag): an offer of a real alert is declined at once and a real alert assigned to one is
//! handed back, so a drill on a live platform never holds up a real emergency.
//!
//! The accounts exist beforehand: `kreki demo` creates them ([`seed_accounts`]) with the
//! certifications the kinds need; `kreki simulate --url ... --password ...` signs them in.
//!
//! - [`geo`]: positions, distances, straight-leg movement.
//! - [`volunteer`]: one volunteer's state machine, without I/O.
//! - [`agents`]: the async tasks that drive volunteers and citizens.
//! - [`accounts`]: the simulated accounts, their phones and certifications.
//!
//! Sign-in, token renewal, HTTP calls and `/v1/ws` are the shared [`crate::client`].

pub mod accounts;
pub mod agents;
pub mod geo;
pub mod volunteer;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_util::sync::CancellationToken;

pub use accounts::{
    MAX_CITIZENS, MAX_VOLUNTEERS, PASSWORD, citizen_phone, seed_accounts, volunteer_certifications,
    volunteer_phone,
};
pub use agents::Stats;

use self::geo::{JAKARTA, Travel};
use self::volunteer::{Behaviour, Volunteer};
use crate::client::{Api, REQUEST_TIMEOUT, Session};

/// How big and how busy the simulation is (flags of `kreki simulate` and `kreki demo`).
#[derive(Debug, Clone, clap::Args)]
pub struct SimulateOptions {
    /// Simulated volunteers (on duty, moving around central Jakarta).
    #[arg(long = "sim-volunteers", default_value_t = 30, value_name = "N",
          value_parser = clap::value_parser!(u16).range(0..=MAX_VOLUNTEERS as i64))]
    pub volunteers: u16,
    /// Simulated citizens who press panic.
    #[arg(long = "sim-citizens", default_value_t = 10, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=MAX_CITIZENS as i64))]
    pub citizens: u16,
    /// Panic presses per minute, on average (a Poisson process); 0 for none.
    #[arg(long = "sim-alerts-per-minute", default_value_t = 2.0, value_name = "RATE",
          value_parser = parse_rate)]
    pub alerts_per_minute: f64,
    /// Seed of every random choice (positions, speeds, kinds, decisions), for a repeatable drill.
    #[arg(long = "sim-seed", default_value_t = 2026, value_name = "SEED")]
    pub seed: u64,
    /// How often each volunteer reports its position, in seconds.
    #[arg(long = "sim-position-every-s", default_value_t = 3, value_name = "S",
          value_parser = clap::value_parser!(u64).range(1..=300))]
    pub position_every_s: u64,
    /// An alert still dispatching or unmatched this long after the press is cancelled by its
    /// citizen, so long demos do not pile up, in seconds.
    #[arg(long = "sim-cancel-after-s", default_value_t = 600, value_name = "S",
          value_parser = clap::value_parser!(u64).range(10..=86_400))]
    pub cancel_after_s: u64,
}

impl Default for SimulateOptions {
    fn default() -> Self {
        Self {
            volunteers: 30,
            citizens: 10,
            alerts_per_minute: 2.0,
            seed: 2026,
            position_every_s: 3,
            cancel_after_s: 600,
        }
    }
}

/// How long [`run`] waits for the platform to be ready, so it can start beside the server.
const READY_WITHIN: Duration = Duration::from_secs(60);

fn parse_rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number"))?;
    if rate.is_finite() && (0.0..=600.0).contains(&rate) {
        Ok(rate)
    } else {
        Err("must be between 0 and 600 presses a minute".to_owned())
    }
}

/// Runs the simulation against `base` (`http://host:port`) until `stop` is cancelled, then sends
/// the volunteers off duty and answers what happened.
///
/// Waits (up to a minute) for the platform's `/readyz` first, so it can start beside the server.
///
/// # Errors
/// When the platform never becomes ready, or no simulated account can sign in (wrong password,
/// accounts missing: `kreki demo` creates them).
pub async fn run(
    base: &str,
    password: &str,
    options: &SimulateOptions,
    stop: CancellationToken,
) -> anyhow::Result<Arc<Stats>> {
    let api = Api::new(base, REQUEST_TIMEOUT).context("--url")?;
    let stats = Arc::new(Stats::default());
    if !api.wait_ready(READY_WITHIN, &stop).await? {
        return Ok(stats);
    }
    let mut rng = StdRng::seed_from_u64(options.seed);
    let mut tasks = tokio::task::JoinSet::new();

    let mut signed_in = 0_usize;
    for index in 0..usize::from(options.volunteers) {
        if stop.is_cancelled() {
            break;
        }
        let phone = volunteer_phone(index);
        let session = match Session::sign_in(api.clone(), &phone, password).await {
            Ok(session) => session,
            Err(error) if index == 0 => {
                return Err(error.context(format!(
                    "simulated volunteer {phone} cannot sign in: do the simulated accounts exist (`kreki demo` creates them) and is --password right?"
                )));
            }
            Err(error) => {
                tracing::warn!(
                    phone,
                    error = format!("{error:#}"),
                    "simulated volunteer left out"
                );
                continue;
            }
        };
        let travel = if rng.random_bool(0.6) {
            Travel::Motorbike
        } else {
            Travel::Walking
        };
        let mind = Volunteer::new(
            StdRng::seed_from_u64(rng.random()),
            JAKARTA.random_point(&mut rng),
            travel.random_speed_mps(&mut rng),
            JAKARTA,
            Behaviour::default(),
        );
        tasks.spawn(agents::volunteer(
            session,
            mind,
            Duration::from_secs(options.position_every_s),
            stats.clone(),
            stop.clone(),
        ));
        signed_in += 1;
    }

    let mut citizens = Vec::new();
    for index in 0..usize::from(options.citizens) {
        let phone = citizen_phone(index);
        match Session::sign_in(api.clone(), &phone, password).await {
            Ok(session) => citizens.push(session),
            Err(error) if index == 0 => {
                return Err(error.context(format!(
                    "simulated citizen {phone} cannot sign in: do the simulated accounts exist (`kreki demo` creates them) and is --password right?"
                )));
            }
            Err(error) => {
                tracing::warn!(
                    phone,
                    error = format!("{error:#}"),
                    "simulated citizen left out"
                );
            }
        }
    }
    tracing::info!(
        volunteers = signed_in,
        citizens = citizens.len(),
        alerts_per_minute = options.alerts_per_minute,
        seed = options.seed,
        "simulation running"
    );
    tasks.spawn(agents::citizens(
        citizens,
        StdRng::seed_from_u64(rng.random()),
        options.alerts_per_minute,
        JAKARTA,
        Duration::from_secs(options.cancel_after_s),
        stats.clone(),
        stop.clone(),
    ));
    while tasks.join_next().await.is_some() {}
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_checked() {
        assert_eq!(parse_rate("2.5"), Ok(2.5));
        assert!(parse_rate("-1").is_err());
        assert!(parse_rate("NaN").is_err());
        assert!(parse_rate("lots").is_err());
    }
}
