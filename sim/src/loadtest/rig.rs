//! Setup and teardown every mode shares: the open-file check, the server's readiness, seeded
//! volunteers and citizens, one socket per volunteer with its position in the matcher, and the
//! volunteers' tasks; at the end the sockets close and the run's volunteers go off duty.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use reqwest::Method;
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};
use uuid::Uuid;

use super::seed::{self, Person};
use super::volunteers::{self, Behaviour, Tally};
use super::{Instance, Plan, Report, checks, host};
use crate::client::Api;

/// Open files the generator needs beyond one per volunteer socket (HTTP connections, database).
const SPARE_FILES: u64 = 512;
/// Longest wait for one HTTP answer: under overload the 201 may be slow, and a slow answer is a
/// measurement, not a failure.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for the server's `/readyz`.
const READY_WITHIN: Duration = Duration::from_secs(60);

/// A run's people, connected and acting.
pub struct Rig {
    /// The server's public API.
    pub api: Api,
    /// Citizens, one per panic of a batch (steps of `throughput` reuse them).
    pub citizens: Vec<Person>,
    /// What the volunteers saw and did.
    pub tally: Arc<Tally>,
    volunteers: Arc<Vec<Person>>,
    stop: CancellationToken,
    tasks: tokio::task::JoinSet<()>,
    /// Whatever happens, the sockets and the scheduler stop with the rig.
    _stop_on_drop: DropGuard,
}

impl Rig {
    /// Seeds `plan.volunteers` volunteers and `citizens` citizens, connects the volunteers with
    /// `behaviour`, and writes the setup's figures into `report`.
    ///
    /// # Errors
    /// Setup failures (database, key, sockets, open-file limit, a server that is not ready).
    pub async fn start(
        instance: &Instance,
        plan: &Plan,
        citizens: usize,
        behaviour: Behaviour,
        report: &mut Report,
    ) -> anyhow::Result<Self> {
        let needed = plan.volunteers as u64 + SPARE_FILES;
        if let Some(limit) = host::open_files_limit() {
            anyhow::ensure!(
                limit >= needed,
                "{} sockets need {needed} open files, `ulimit -n` is {limit}: raise it (ulimit -n {needed}; the hard limit is `ulimit -Hn`)",
                plan.volunteers
            );
        }
        let api = Api::new(&plan.url, REQUEST_TIMEOUT)?;
        api.wait_ready(READY_WITHIN, &CancellationToken::new())
            .await?;

        let started = Instant::now();
        let seeded = seed::seed(instance, plan.kind, plan.volunteers, citizens, plan.seed).await?;
        report.seed_s = started.elapsed().as_secs_f64();

        let rss_before = host::rss_bytes();
        let started = Instant::now();
        let sockets = volunteers::connect_all(&api, &seeded.volunteers).await?;
        report.connect_s = started.elapsed().as_secs_f64();
        report.volunteers = sockets.len();
        report.client_bytes_per_socket =
            host::rss_bytes().saturating_sub(rss_before) / (sockets.len().max(1) as u64);

        let tally = Arc::new(Tally::default());
        let stop = CancellationToken::new();
        let volunteers = Arc::new(seeded.volunteers);
        let tasks = volunteers::start(
            &api,
            sockets,
            volunteers.clone(),
            behaviour,
            tally.clone(),
            &stop,
        );
        Ok(Self {
            api,
            citizens: seeded.citizens,
            tally,
            volunteers,
            _stop_on_drop: stop.clone().drop_guard(),
            stop,
            tasks,
        })
    }

    /// Ends the run: counts the run's `alerts` offered at a socket, `unmatched` (the database's
    /// answer) and lost; runs the database's checks, giving undelivered offers and unprocessed
    /// outbox rows `grace` to clear; adds what the volunteers counted; then tears down
    /// ([`Self::finish`]).
    ///
    /// # Errors
    /// Database failures while checking.
    pub async fn conclude(
        self,
        pool: &sqlx::PgPool,
        alerts: &[Uuid],
        unmatched: &HashMap<Uuid, DateTime<Utc>>,
        grace: Duration,
        report: &mut Report,
    ) -> anyhow::Result<()> {
        let offered = self.tally.first_offers();
        report.offered = alerts.iter().filter(|a| offered.contains_key(a)).count();
        report.unmatched = alerts
            .iter()
            .filter(|a| !offered.contains_key(a) && unmatched.contains_key(a))
            .count();
        report.lost = report
            .alerts
            .saturating_sub(report.offered + report.unmatched);
        let checks = checks::database(pool, &self.tally, alerts, grace).await?;
        report.add_checks(&checks);
        self.count_into(report);
        self.finish().await;
        Ok(())
    }

    /// Writes what the volunteers counted into `report` (double-booking adds to what the
    /// database found).
    fn count_into(&self, report: &mut Report) {
        use std::sync::atomic::Ordering::Relaxed;
        let tally = &self.tally;
        report.double_booked += tally.double_accepts.load(Relaxed);
        report.offer_frames = tally.offer_frames.load(Relaxed);
        report.withdrawn_frames = tally.withdrawn_frames.load(Relaxed);
        report.accepted = tally.accepted.load(Relaxed);
        report.completed = tally.completed.load(Relaxed);
        report.disconnects = tally.disconnects.load(Relaxed);
        report.actions_dropped = tally.actions_dropped.load(Relaxed);
        report.refused = tally.refused();
    }

    /// Closes the sockets, stops the scheduler, and puts the run's volunteers off duty through
    /// the API, so a later run against the same server offers nothing to volunteers nobody plays.
    async fn finish(mut self) {
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
        let api = &self.api;
        futures_util::stream::iter(self.volunteers.iter())
            .for_each_concurrent(volunteers::HTTP_CONCURRENCY, |volunteer| async move {
                let answer = api
                    .call(
                        Method::PUT,
                        "/v1/volunteers/me/duty",
                        Some(&volunteer.token),
                        Some(&serde_json::json!({"on_duty": false})),
                        None,
                    )
                    .await
                    .and_then(|answer| answer.ok("going off duty"));
                if let Err(error) = answer {
                    tracing::warn!(
                        error = format!("{error:#}"),
                        "a load-test volunteer could not go off duty"
                    );
                }
            })
            .await;
    }
}
