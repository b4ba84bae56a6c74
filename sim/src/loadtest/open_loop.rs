//! The `steady` and `surge` runs: one batch of panics at one rate, open loop, then a wait until
//! every alert is offered at a socket or unmatched, then the checks.

use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::time::Instant;

use super::report::Latency;
use super::rig::Rig;
use super::{Instance, Mode, Plan, Report, checks, host, panics, seed};

/// After every alert is dispatched, the moment given to frames of offers made just now.
const LAST_FRAMES: Duration = Duration::from_millis(500);
/// How long unprocessed outbox rows and undelivered offers get to clear at the end.
const CHECK_GRACE: Duration = Duration::from_secs(2);

/// Panics in all and their rate, per second, of a `steady` or `surge` mode.
fn batch(mode: &Mode) -> (usize, f64) {
    match mode {
        Mode::Steady {
            rate_per_s,
            duration,
        } => {
            #[expect(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "rates and durations are checked by the command, far below usize::MAX"
            )]
            let panics = (rate_per_s * duration.as_secs_f64()).round() as usize;
            (panics.max(1), *rate_per_s)
        }
        Mode::Surge { panics, within } => {
            #[expect(clippy::cast_precision_loss, reason = "at most a million panics")]
            let rate = *panics as f64 / within.as_secs_f64().max(0.001);
            (*panics, rate)
        }
        Mode::Throughput(_) => (0, 0.0),
    }
}

/// Runs a `steady` or `surge` plan.
///
/// # Errors
/// Setup failures and database failures while checking.
pub async fn run(instance: &Instance, plan: &Plan) -> anyhow::Result<Report> {
    let (panics, rate_per_s) = batch(&plan.mode);
    let mut report = Report::new(plan, panics, rate_per_s);
    let rig = Rig::start(instance, plan, panics, plan.behaviour, &mut report).await?;
    let pool = &instance.pool;
    // Panic points follow the volunteers' in the same seeded sequence.
    let mut rng = StdRng::seed_from_u64(plan.seed.wrapping_add(1));
    let points = seed::points(&mut rng, panics);

    let phase = host::Phase::start(&rig.api, plan.server_pid).await;
    let sent = panics::send(
        &rig.api,
        &rig.citizens,
        &points,
        plan.kind.as_str(),
        rate_per_s,
    )
    .await;
    phase.finish(&rig.api, &mut report).await;
    report.client_lag_ms = sent.max_lag.as_secs_f64() * 1000.0;
    report.send_window_s = sent.window_s();
    let acks = sent.acks();
    report.add_acks(&acks);
    report.ack_latency = Latency::of(acks.latencies);
    let alerts = acks.alerts;

    let unmatched =
        checks::await_dispatch(pool, &rig.tally, &alerts, Instant::now() + plan.settle).await?;
    tokio::time::sleep(LAST_FRAMES).await;

    let offered = rig.tally.first_offers();
    report.offer_latency = Latency::of(
        sent.offer_latencies(&offered)
            .into_iter()
            .map(|(_, latency)| latency)
            .collect(),
    );
    let last_offers = alerts
        .iter()
        .filter_map(|alert| offered.get(alert))
        .map(|first| first.saturating_duration_since(sent.started))
        .max()
        .unwrap_or_default();
    let run_started_utc =
        chrono::Utc::now() - chrono::Duration::from_std(sent.started.elapsed()).unwrap_or_default();
    let last_unmatched = unmatched
        .values()
        .map(|at| (*at - run_started_utc).to_std().unwrap_or_default())
        .max()
        .unwrap_or_default();
    report.last_offers_s = last_offers.as_secs_f64();
    report.last_dispatched_s = last_offers.max(last_unmatched).as_secs_f64();
    rig.conclude(pool, &alerts, &unmatched, CHECK_GRACE, &mut report)
        .await?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_and_surge_become_a_count_and_a_rate() {
        let steady = Mode::Steady {
            rate_per_s: 20.0,
            duration: Duration::from_secs(5),
        };
        assert_eq!(batch(&steady), (100, 20.0));
        let surge = Mode::Surge {
            panics: 5000,
            within: Duration::from_secs(10),
        };
        assert_eq!(batch(&surge), (5000, 500.0));
        let tiny = Mode::Steady {
            rate_per_s: 0.1,
            duration: Duration::from_secs(1),
        };
        assert_eq!(batch(&tiny).0, 1, "at least one panic");
    }
}
