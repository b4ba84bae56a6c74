//! The `throughput` run: the highest rate of first waves per second the dispatcher sustains.
//!
//! A stepped ramp of open-loop panic rates, each step held for [`Ramp::step`]. A step is
//! *sustained* ([`verdict`]) when every panic of it was acknowledged, every alert of it has its
//! first offer at a socket (or is unmatched) within [`Ramp::grace`] of the step's last panic (no
//! backlog), and its offer latency did not grow over the step: the median of the panics sent in
//! its last third is at most [`GROWTH_FACTOR`] times that of its first third plus
//! [`GROWTH_FLOOR_MS`]. A queue that grows shows in both: late panics wait behind early ones.
//! The ramp stops at the first step that is not sustained.
//!
//! Volunteers only read their offers (nobody accepts, nobody rests), and each step's alerts are
//! cancelled by their citizens before the next step starts (the cancellations' outbox drained),
//! so every step meets the same candidates and does the same work: one first wave per panic.
//! Each step also reports the first waves per second the database shows: the step's alerts'
//! first offers' transaction times, (count - 1) over the span from the first to the last.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use rand::SeedableRng;
use rand::rngs::StdRng;
use reqwest::Method;
use serde_json::json;
use tokio::time::Instant;
use uuid::Uuid;

use super::panics::Sent;
use super::report::Latency;
use super::rig::Rig;
use super::volunteers::{Behaviour, HTTP_CONCURRENCY};
use super::{Instance, Plan, Report, checks, host, panics, seed};

/// The late third's median offer latency may be this many times the early third's ...
pub const GROWTH_FACTOR: f64 = 2.0;
/// ... plus this many milliseconds, before the latency counts as growing over the step.
pub const GROWTH_FLOOR_MS: f64 = 20.0;
/// After a step's alerts are dispatched, the moment given to frames of offers made just now.
const LAST_FRAMES: Duration = Duration::from_millis(500);
/// Longest wait for a step's cancellations to leave the outbox before the next step.
const QUIET_WITHIN: Duration = Duration::from_secs(30);
/// How long unprocessed outbox rows and undelivered offers get to clear at the end.
const CHECK_GRACE: Duration = Duration::from_secs(5);

/// The steps of a `throughput` run.
#[derive(Debug, Clone, PartialEq)]
pub struct Ramp {
    /// Rate of the first step, panics per second.
    pub from_per_s: f64,
    /// Rate added at each step, panics per second.
    pub step_per_s: f64,
    /// Highest rate tried, panics per second.
    pub to_per_s: f64,
    /// How long each step sends panics.
    pub step: Duration,
    /// After a step's last panic, how long its alerts have before the rest counts as a backlog.
    pub grace: Duration,
}

impl Ramp {
    /// The steps' rates, panics per second: `from`, `from + step`, ... up to `to`.
    pub fn rates(&self) -> Vec<f64> {
        let mut rates = Vec::new();
        if self.step_per_s <= 0.0 || self.from_per_s <= 0.0 {
            return rates;
        }
        let mut index = 0_u32;
        loop {
            let rate = self.from_per_s + f64::from(index) * self.step_per_s;
            // A rate within a rounding error of `to` is `to`.
            if rate > self.to_per_s + 1e-9 || index >= 1000 {
                return rates;
            }
            rates.push(rate);
            index += 1;
        }
    }

    /// Panics of a step at `rate_per_s` (at least one).
    pub fn panics_at(&self, rate_per_s: f64) -> usize {
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "rates and steps are checked by the command, far below usize::MAX"
        )]
        let panics = (rate_per_s * self.step.as_secs_f64()).round() as usize;
        panics.max(1)
    }
}

/// Whether a step was sustained, and if not, why.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// No backlog, latency flat, every panic acknowledged.
    Sustained,
    /// Panics without a 200/201.
    NotAcknowledged(usize),
    /// Alerts neither offered nor unmatched [`Ramp::grace`] after the step's last panic.
    Backlog(usize),
    /// The median offer latency of the step's last third against its first third, ms.
    LatencyGrew {
        /// Median of the first third, ms.
        early_p50_ms: f64,
        /// Median of the last third, ms.
        late_p50_ms: f64,
    },
}

impl Verdict {
    /// True for [`Verdict::Sustained`].
    pub fn sustained(&self) -> bool {
        matches!(self, Self::Sustained)
    }

    /// In a few words, for the step table.
    pub fn describe(&self) -> String {
        match self {
            Self::Sustained => "sustained".to_owned(),
            Self::NotAcknowledged(count) => format!("{count} panics not acknowledged"),
            Self::Backlog(count) => format!("backlog of {count} alerts"),
            Self::LatencyGrew {
                early_p50_ms,
                late_p50_ms,
            } => format!("latency grew: p50 {early_p50_ms:.1} -> {late_p50_ms:.1} ms"),
        }
    }
}

/// The verdict on a step: `not_acknowledged` panics, `backlog` alerts waiting after the grace,
/// and the offer latencies of its first and last thirds. Timing never fails a run; this only
/// decides where the ramp stops.
pub fn verdict(
    not_acknowledged: usize,
    backlog: usize,
    early: &Latency,
    late: &Latency,
) -> Verdict {
    if not_acknowledged > 0 {
        return Verdict::NotAcknowledged(not_acknowledged);
    }
    if backlog > 0 {
        return Verdict::Backlog(backlog);
    }
    if early.count > 0
        && late.count > 0
        && late.p50_ms > early.p50_ms * GROWTH_FACTOR + GROWTH_FLOOR_MS
    {
        return Verdict::LatencyGrew {
            early_p50_ms: early.p50_ms,
            late_p50_ms: late.p50_ms,
        };
    }
    Verdict::Sustained
}

/// The offer latencies of the panics sent in the first and in the last third of a step `step`
/// long; `samples` are (sent after the step's start, latency).
pub fn thirds(samples: &[(Duration, Duration)], step: Duration) -> (Latency, Latency) {
    let third = step / 3;
    let early = samples
        .iter()
        .filter(|(at, _)| *at < third)
        .map(|(_, latency)| *latency)
        .collect();
    let late = samples
        .iter()
        .filter(|(at, _)| *at >= step.saturating_sub(third))
        .map(|(_, latency)| *latency)
        .collect();
    (Latency::of(early), Latency::of(late))
}

/// First waves per second between the first and the last of `times`: (count - 1) / span; `None`
/// with fewer than two or no span.
pub fn waves_per_s(times: &[DateTime<Utc>]) -> Option<f64> {
    let first = times.iter().min()?;
    let last = times.iter().max()?;
    let span_s = (*last - *first).to_std().ok()?.as_secs_f64();
    #[expect(clippy::cast_precision_loss, reason = "far fewer than 2^52 alerts")]
    let waves = times.len().saturating_sub(1) as f64;
    (times.len() >= 2 && span_s > 0.0).then(|| waves / span_s)
}

/// What one step did.
#[derive(Debug, Clone)]
pub struct Step {
    /// Panics per second sent.
    pub rate_per_s: f64,
    /// Panics sent.
    pub panics: usize,
    /// Panics answered 200/201.
    pub acknowledged: usize,
    /// Alerts waiting [`Ramp::grace`] after the step's last panic.
    pub backlog: usize,
    /// Panic sent -> first `offer` frame, every panic of the step.
    pub offer: Latency,
    /// The same, panics sent in the step's first third.
    pub offer_early: Latency,
    /// The same, panics sent in the step's last third.
    pub offer_late: Latency,
    /// First waves per second the database shows for the step's alerts.
    pub waves_per_s: Option<f64>,
    /// Alerts whose cancellation after the step failed.
    pub cancel_failed: usize,
    /// The verdict.
    pub verdict: Verdict,
}

/// Runs a `throughput` plan.
///
/// # Errors
/// Setup failures and database failures while checking.
pub async fn run(instance: &Instance, plan: &Plan, ramp: &Ramp) -> anyhow::Result<Report> {
    let rates = ramp.rates();
    let most = rates
        .iter()
        .map(|rate| ramp.panics_at(*rate))
        .max()
        .unwrap_or(1);
    let mut report = Report::new(plan, 0, ramp.to_per_s);
    report.ramp = Some(ramp.clone());
    let behaviour = Behaviour {
        accepts: false,
        ..plan.behaviour
    };
    let rig = Rig::start(instance, plan, most, behaviour, &mut report).await?;
    let pool = &instance.pool;
    let mut rng = StdRng::seed_from_u64(plan.seed.wrapping_add(1));

    let phase = host::Phase::start(&rig.api, plan.server_pid).await;
    let mut alerts: Vec<Uuid> = Vec::new();
    let mut unmatched: HashMap<Uuid, DateTime<Utc>> = HashMap::new();
    let mut ack_latencies = Vec::new();
    let mut offer_latencies = Vec::new();
    for rate in rates {
        let panics = ramp.panics_at(rate);
        let points = seed::points(&mut rng, panics);
        let sent = panics::send(
            &rig.api,
            &rig.citizens[..panics],
            &points,
            plan.kind.as_str(),
            rate,
        )
        .await;
        let acks = sent.acks();
        tokio::time::sleep_until(sent.started + ramp.step + ramp.grace).await;
        let backlog = checks::waiting(pool, &rig.tally, &acks.alerts).await?.len();
        unmatched.extend(
            checks::await_dispatch(pool, &rig.tally, &acks.alerts, Instant::now() + plan.settle)
                .await?,
        );
        tokio::time::sleep(LAST_FRAMES).await;

        let samples = sent.offer_latencies(&rig.tally.first_offers());
        let since_start: Vec<(Duration, Duration)> = samples
            .iter()
            .map(|(at, latency)| (at.saturating_duration_since(sent.started), *latency))
            .collect();
        let (offer_early, offer_late) = thirds(&since_start, ramp.step);
        let firsts: Vec<DateTime<Utc>> = checks::first_waves(pool, &acks.alerts)
            .await?
            .into_values()
            .collect();
        let not_acknowledged = panics - acks.created - acks.replayed;
        let step = Step {
            rate_per_s: rate,
            panics,
            acknowledged: acks.created + acks.replayed,
            backlog,
            offer: Latency::of(samples.iter().map(|(_, latency)| *latency).collect()),
            verdict: verdict(not_acknowledged, backlog, &offer_early, &offer_late),
            offer_early,
            offer_late,
            waves_per_s: waves_per_s(&firsts),
            cancel_failed: cancel(&rig, &sent).await,
        };
        checks::await_outbox(pool, &acks.alerts, Instant::now() + QUIET_WITHIN).await?;

        report.add_acks(&acks);
        report.planned += panics;
        report.send_window_s += sent.window_s();
        report.client_lag_ms = report
            .client_lag_ms
            .max(sent.max_lag.as_secs_f64() * 1000.0);
        ack_latencies.extend(acks.latencies);
        offer_latencies.extend(samples.into_iter().map(|(_, latency)| latency));
        alerts.extend(acks.alerts);
        let sustained = step.verdict.sustained();
        report.steps.push(step);
        if !sustained {
            break;
        }
    }
    phase.finish(&rig.api, &mut report).await;
    report.ack_latency = Latency::of(ack_latencies);
    report.offer_latency = Latency::of(offer_latencies);
    rig.conclude(pool, &alerts, &unmatched, CHECK_GRACE, &mut report)
        .await?;
    Ok(report)
}

/// Cancels the step's alerts as their citizens (`citizens[i]` pressed panic `i`); answers how
/// many cancellations failed.
async fn cancel(rig: &Rig, sent: &Sent) -> usize {
    let body = json!({"reason": "uji beban: langkah selesai"});
    let (api, body) = (&rig.api, &body);
    let alerts: Vec<(Uuid, &str)> = sent
        .outcomes
        .iter()
        .zip(&rig.citizens)
        .filter_map(|(outcome, citizen)| Some((outcome.alert?, citizen.token.as_str())))
        .collect();
    let failed: Vec<usize> = futures_util::stream::iter(alerts)
        .map(|(alert, token)| async move {
            let path = format!("/v1/alerts/{alert}/cancel");
            let answer = api
                .call(Method::POST, &path, Some(token), Some(body), None)
                .await
                .and_then(|answer| answer.ok("cancelling a step's alert"));
            match answer {
                Ok(_) => 0,
                Err(error) => {
                    tracing::warn!(error = format!("{error:#}"), %alert, "not cancelled");
                    1
                }
            }
        })
        .buffer_unordered(HTTP_CONCURRENCY)
        .collect()
        .await;
    failed.into_iter().sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(values: &[u64]) -> Latency {
        Latency::of(values.iter().copied().map(Duration::from_millis).collect())
    }

    #[test]
    fn the_ramp_climbs_from_its_first_rate_to_its_last() {
        let ramp = Ramp {
            from_per_s: 100.0,
            step_per_s: 100.0,
            to_per_s: 500.0,
            step: Duration::from_secs(5),
            grace: Duration::from_secs(1),
        };
        assert_eq!(ramp.rates(), vec![100.0, 200.0, 300.0, 400.0, 500.0]);
        assert_eq!(ramp.panics_at(300.0), 1500);
        let one = Ramp {
            to_per_s: 100.0,
            ..ramp.clone()
        };
        assert_eq!(one.rates(), vec![100.0]);
        let thin = Ramp {
            from_per_s: 0.1,
            step_per_s: 0.1,
            to_per_s: 0.3,
            step: Duration::from_secs(1),
            ..ramp
        };
        assert_eq!(thin.rates().len(), 3, "0.1 + 0.1 + 0.1 is 0.3");
        assert_eq!(thin.panics_at(0.1), 1, "at least one panic a step");
    }

    #[test]
    fn a_step_is_sustained_only_without_failures_backlog_or_growing_latency() {
        let flat = ms(&[5, 6, 7, 8]);
        assert_eq!(verdict(0, 0, &flat, &ms(&[6, 7, 8, 9])), Verdict::Sustained);
        assert_eq!(
            verdict(0, 0, &flat, &ms(&[20, 25, 30])),
            Verdict::Sustained,
            "noise within twice plus 20 ms"
        );
        assert_eq!(verdict(3, 0, &flat, &flat), Verdict::NotAcknowledged(3));
        assert_eq!(verdict(0, 587, &flat, &flat), Verdict::Backlog(587));
        let grew = verdict(0, 0, &flat, &ms(&[200, 400, 800]));
        assert!(
            matches!(grew, Verdict::LatencyGrew { late_p50_ms, .. } if (late_p50_ms - 400.0).abs() < 1e-9),
            "{grew:?}"
        );
        assert!(!grew.sustained());
        assert!(grew.describe().starts_with("latency grew"));
        assert_eq!(
            verdict(0, 0, &Latency::default(), &ms(&[900])),
            Verdict::Sustained,
            "no early samples (all unmatched): nothing to compare"
        );
    }

    #[test]
    fn thirds_split_by_send_time_and_waves_per_second_by_the_database_clock() {
        let step = Duration::from_secs(3);
        let samples: Vec<(Duration, Duration)> = [(0, 5), (900, 6), (1500, 50), (2100, 70)]
            .into_iter()
            .map(|(at, latency)| (Duration::from_millis(at), Duration::from_millis(latency)))
            .collect();
        let (early, late) = thirds(&samples, step);
        assert_eq!((early.count, late.count), (2, 1));
        assert!((late.p50_ms - 70.0).abs() < 1e-9);

        let start = Utc::now();
        let times: Vec<DateTime<Utc>> = (0..101)
            .map(|i| start + chrono::Duration::milliseconds(i * 10))
            .collect();
        let rate = waves_per_s(&times).expect("a span");
        assert!((rate - 100.0).abs() < 1e-6, "{rate}");
        assert_eq!(waves_per_s(&times[..1]), None);
        assert_eq!(waves_per_s(&[]), None);
    }
}
