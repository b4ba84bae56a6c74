//! What a run measured and what it checked, printed as the tables of BENCHMARKS.md.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use super::checks::Checks;
use super::panics::Acks;
use super::throughput::{Ramp, Step};
use super::{Plan, host};

/// Percentiles of a set of durations.
#[derive(Debug, Clone, Copy, Default)]
pub struct Latency {
    /// Samples.
    pub count: usize,
    /// Median, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile, milliseconds.
    pub p99_ms: f64,
    /// 99.9th percentile, milliseconds.
    pub p999_ms: f64,
    /// Largest, milliseconds.
    pub max_ms: f64,
}

impl Latency {
    /// Nearest-rank percentiles of `samples`.
    pub fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        let at = |q: f64| -> f64 {
            if samples.is_empty() {
                return 0.0;
            }
            #[expect(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss,
                reason = "a rank within the sample count"
            )]
            let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
            samples[rank - 1].as_secs_f64() * 1000.0
        };
        Self {
            count: samples.len(),
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            p999_ms: at(0.999),
            max_ms: at(1.0),
        }
    }
}

/// Everything a run found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// `steady`, `surge` or `throughput`.
    pub mode: &'static str,
    /// The server build's commit, when the caller said (`--commit`).
    pub commit: Option<String>,
    /// The machine's load average over 1, 5 and 15 minutes when the run started.
    pub load_at_start: [f64; 3],
    /// The machine's cores.
    pub cores: usize,
    /// Volunteers with a socket at the start.
    pub volunteers: usize,
    /// Seconds to seed accounts and rows.
    pub seed_s: f64,
    /// Seconds to connect every socket (and have its position in the matcher).
    pub connect_s: f64,
    /// Client memory growth per connected socket, bytes.
    pub client_bytes_per_socket: u64,
    /// Panics planned.
    pub planned: usize,
    /// Panics scheduled per second.
    pub rate_per_s: f64,
    /// Panics not sent because of the client's in-flight limit.
    pub not_sent: usize,
    /// Answered 201.
    pub created: usize,
    /// Answered 200 (a retry that found its alert, or a press attached to an open alert).
    pub replayed: usize,
    /// Not acknowledged, by last status (`none` = no answer).
    pub failed: BTreeMap<String, usize>,
    /// Retries made (attempts beyond the first).
    pub retries: usize,
    /// Distinct alerts acknowledged.
    pub alerts: usize,
    /// Alerts whose offer reached a volunteer socket.
    pub offered: usize,
    /// Alerts `unmatched` in the database without any offer (nobody eligible in reach).
    pub unmatched: usize,
    /// Acknowledged alerts with neither an offer frame nor `unmatched` by the end.
    pub lost: usize,
    /// Panic sent -> first `offer` frame for its alert at any socket.
    pub offer_latency: Latency,
    /// Panic sent -> 200/201 received.
    pub ack_latency: Latency,
    /// The alert's ingest transaction start -> its first offer's transaction start, on the
    /// database's clock: the part of the offer latency spent waiting for and in the dispatcher.
    pub dispatch_wait: Latency,
    /// The first wave's transaction start (database clock) -> the first `offer` frame at a socket
    /// (wall clock of the same machine): the wave's transaction, the publish and the hub.
    pub wave_to_frame: Latency,
    /// From the first panic's send to the last alert's first `offer` frame at a socket, seconds:
    /// when the last offers went out after the first panic.
    pub last_offers_s: f64,
    /// From the first panic's send to the last alert's first offer (or `unmatched`), seconds.
    pub last_dispatched_s: f64,
    /// Seconds from the first to the last panic sent.
    pub send_window_s: f64,
    /// Largest lag of the client's schedule, milliseconds.
    pub client_lag_ms: f64,
    /// `offer` frames received.
    pub offer_frames: u64,
    /// Offers the database holds for the run's alerts.
    pub offers_in_db: usize,
    /// Offers in the database that never reached their volunteer's socket.
    pub offers_undelivered: usize,
    /// `offer.withdrawn` frames received.
    pub withdrawn_frames: u64,
    /// Accepts answered 200.
    pub accepted: u64,
    /// Accepts refused, by status and problem type.
    pub refused: BTreeMap<String, u64>,
    /// Assignments completed.
    pub completed: u64,
    /// Volunteer sockets lost during the run.
    pub disconnects: u64,
    /// Volunteer actions dropped by the generator's bounded queue.
    pub actions_dropped: u64,
    /// Volunteers holding more than one active assignment (database), plus accepts that succeeded
    /// while the client held another assignment for that volunteer.
    pub double_booked: u64,
    /// Alerts with more non-withdrawn assignments than they need (database).
    pub over_covered: u64,
    /// Acknowledged alerts the database does not hold.
    pub missing_in_db: usize,
    /// Alerts in the database neither offered nor `unmatched`.
    pub undispatched: usize,
    /// Outbox rows of the run's alerts still unprocessed at the end.
    pub outbox_pending: i64,
    /// Client process CPU during the panic phase, in % of one core.
    pub client_cpu_pct: f64,
    /// Server process CPU during the panic phase, in % of one core (when its pid was given).
    pub server_cpu_pct: Option<f64>,
    /// Load average (1 min) at the start and end of the panic phase.
    pub load_average: (f64, f64),
    /// Server-side means over the panic phase from its `/metrics`, milliseconds: the alert's
    /// commit, and the whole `POST /v1/alerts` handling.
    pub server_commit_mean_ms: Option<f64>,
    /// See [`Self::server_commit_mean_ms`].
    pub server_post_alert_mean_ms: Option<f64>,
    /// `throughput`: its ramp.
    pub ramp: Option<Ramp>,
    /// `throughput`: the steps run, the last one the first not sustained (unless all were).
    pub steps: Vec<Step>,
    /// `throughput`: cancellations of steps' alerts that failed.
    pub cancel_failed: usize,
}

impl Report {
    /// An empty report of `plan`, `planned` panics at `rate_per_s`, with the machine's load now.
    pub fn new(plan: &Plan, planned: usize, rate_per_s: f64) -> Self {
        Self {
            mode: plan.mode.name(),
            commit: plan.commit.clone(),
            load_at_start: host::load_averages(),
            cores: std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
            planned,
            rate_per_s,
            ..Self::default()
        }
    }

    /// Adds the answers to a batch of panics (not their latencies).
    pub fn add_acks(&mut self, acks: &Acks) {
        self.not_sent += acks.not_sent;
        self.created += acks.created;
        self.replayed += acks.replayed;
        self.retries += acks.retries;
        self.alerts += acks.alerts.len();
        for (status, count) in &acks.failed {
            *self.failed.entry(status.clone()).or_default() += count;
        }
    }

    /// Takes the database's checks at the end of the run.
    pub fn add_checks(&mut self, checks: &Checks) {
        self.dispatch_wait = checks.dispatch_wait;
        self.wave_to_frame = checks.wave_to_frame;
        self.missing_in_db = checks.missing;
        self.undispatched = checks.undispatched;
        self.offers_in_db = checks.offers;
        self.offers_undelivered = checks.undelivered.len();
        self.outbox_pending = checks.outbox_pending;
        self.over_covered = checks.over_covered;
        self.double_booked = checks.double_booked;
    }

    /// `throughput`: the last sustained step (the highest, as the ramp stops at the first that
    /// is not).
    pub fn sustained(&self) -> Option<&Step> {
        self.steps
            .iter()
            .rev()
            .find(|step| step.verdict.sustained())
    }

    /// The correctness failures of the run (empty: none lost, nothing double-booked, every
    /// panic acknowledged and dispatched). Timing is not judged here.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut check = |ok: bool, what: String| {
            if !ok {
                problems.push(what);
            }
        };
        check(
            self.not_sent == 0,
            format!("{} panics not sent (client in-flight limit)", self.not_sent),
        );
        let failed: usize = self.failed.values().sum();
        check(
            failed == 0,
            format!("{failed} panics not acknowledged: {:?}", self.failed),
        );
        check(
            self.lost == 0,
            format!("{} alerts lost (no offer, not unmatched)", self.lost),
        );
        check(
            self.missing_in_db == 0,
            format!(
                "{} acknowledged alerts missing in the database",
                self.missing_in_db
            ),
        );
        check(
            self.undispatched == 0,
            format!("{} alerts neither offered nor unmatched", self.undispatched),
        );
        check(
            self.offers_undelivered == 0,
            format!(
                "{} offers never reached their socket",
                self.offers_undelivered
            ),
        );
        check(
            self.double_booked == 0,
            format!("{} volunteers double-booked", self.double_booked),
        );
        check(
            self.over_covered == 0,
            format!(
                "{} alerts with more responders than needed",
                self.over_covered
            ),
        );
        check(
            self.outbox_pending == 0,
            format!("{} outbox rows unprocessed", self.outbox_pending),
        );
        check(
            self.disconnects == 0,
            format!("{} volunteer sockets dropped", self.disconnects),
        );
        check(
            self.actions_dropped == 0,
            format!(
                "{} volunteer actions dropped by the generator",
                self.actions_dropped
            ),
        );
        let cancel_failed: usize = self.steps.iter().map(|step| step.cancel_failed).sum();
        check(
            cancel_failed == 0,
            format!("{cancel_failed} cancellations of a step's alerts failed"),
        );
        problems
    }

    /// The tables, as Markdown.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let failed: usize = self.failed.values().sum();
        match &self.ramp {
            Some(ramp) => {
                let _ = writeln!(
                    out,
                    "## {} run: {} volunteer sockets, steps of {:.0} s from {:.0} to {:.0} panics/s by {:.0} ({} panics sent)\n",
                    self.mode,
                    self.volunteers,
                    ramp.step.as_secs_f64(),
                    ramp.from_per_s,
                    ramp.to_per_s,
                    ramp.step_per_s,
                    self.planned
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "## {} run: {} volunteer sockets, {} panics at {:.0}/s (sent over {:.1} s)\n",
                    self.mode, self.volunteers, self.planned, self.rate_per_s, self.send_window_s
                );
            }
        }
        let [one, five, fifteen] = self.load_at_start;
        let _ = writeln!(
            out,
            "Server commit {}; {} cores; load average {one:.2} {five:.2} {fifteen:.2} (1, 5, 15 min) at the start.\n",
            self.commit.as_deref().unwrap_or("not given (--commit)"),
            self.cores
        );
        if let Some(ramp) = &self.ramp {
            self.render_steps(&mut out, ramp);
        }
        let _ = writeln!(
            out,
            "| measure | p50 ms | p99 ms | p99.9 ms | max ms | samples |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|");
        for (name, latency) in [
            (
                "panic sent -> first `offer` frame at a volunteer",
                &self.offer_latency,
            ),
            ("panic sent -> 201/200 received", &self.ack_latency),
            (
                "server: alert transaction start -> first wave's transaction start (database clock)",
                &self.dispatch_wait,
            ),
            (
                "first wave's transaction start -> `offer` frame at the socket (wave, commit, hub)",
                &self.wave_to_frame,
            ),
        ] {
            let _ = writeln!(
                out,
                "| {name} | {:.1} | {:.1} | {:.1} | {:.1} | {} |",
                latency.p50_ms, latency.p99_ms, latency.p999_ms, latency.max_ms, latency.count
            );
        }
        let _ = writeln!(out, "\n| count | value |\n|---|---|");
        let mut rows: Vec<(&str, String)> = vec![
            ("panics planned", self.planned.to_string()),
            ("sent", (self.planned - self.not_sent).to_string()),
            (
                "acknowledged 201 / 200",
                format!("{} / {}", self.created, self.replayed),
            ),
            ("not acknowledged", format!("{failed} {:?}", self.failed)),
            ("retries (same key)", self.retries.to_string()),
            ("distinct alerts", self.alerts.to_string()),
            (
                "alerts offered (frame at a socket)",
                self.offered.to_string(),
            ),
            (
                "alerts unmatched without offers",
                self.unmatched.to_string(),
            ),
            ("alerts lost", self.lost.to_string()),
            (
                "acknowledged alerts missing in the database",
                self.missing_in_db.to_string(),
            ),
            (
                "alerts neither offered nor unmatched (database)",
                self.undispatched.to_string(),
            ),
            ("outbox rows unprocessed", self.outbox_pending.to_string()),
            (
                "offers in the database / `offer` frames / undelivered",
                format!(
                    "{} / {} / {}",
                    self.offers_in_db, self.offer_frames, self.offers_undelivered
                ),
            ),
            (
                "`offer.withdrawn` frames",
                self.withdrawn_frames.to_string(),
            ),
            ("accepts 200", self.accepted.to_string()),
            ("accepts refused", format!("{:?}", self.refused)),
            ("assignments completed", self.completed.to_string()),
            ("volunteers double-booked", self.double_booked.to_string()),
            ("alerts over-covered", self.over_covered.to_string()),
            ("volunteer sockets dropped", self.disconnects.to_string()),
            (
                "volunteer actions dropped (client queue)",
                self.actions_dropped.to_string(),
            ),
        ];
        // A ramp's steps each have their own first panic: these belong to one batch.
        if self.ramp.is_none() {
            rows.push((
                "last offers out after the first panic",
                format!("{:.2} s", self.last_offers_s),
            ));
            rows.push((
                "first panic -> last alert dispatched (offers out or unmatched)",
                format!("{:.2} s", self.last_dispatched_s),
            ));
        }
        for (name, value) in rows {
            let _ = writeln!(out, "| {name} | {value} |");
        }
        let _ = writeln!(out, "\n| run | value |\n|---|---|");
        let ms = |value: Option<f64>| value.map_or("n/a".to_owned(), |v| format!("{v:.2} ms"));
        let rows: Vec<(&str, String)> = vec![
            ("seeding", format!("{:.1} s", self.seed_s)),
            (
                "connecting sockets (position in the matcher)",
                format!("{:.1} s", self.connect_s),
            ),
            (
                "client memory per socket",
                format!("{} bytes", self.client_bytes_per_socket),
            ),
            (
                "client CPU during the panics",
                format!("{:.0} % of one core", self.client_cpu_pct),
            ),
            (
                "client schedule lag, max",
                format!("{:.1} ms", self.client_lag_ms),
            ),
            (
                "server CPU during the panics",
                self.server_cpu_pct
                    .map_or("n/a (no --server-pid)".to_owned(), |v| {
                        format!("{v:.0} % of one core")
                    }),
            ),
            ("server: mean alert commit", ms(self.server_commit_mean_ms)),
            (
                "server: mean POST /v1/alerts",
                ms(self.server_post_alert_mean_ms),
            ),
            (
                "load average (1 min), start -> end",
                format!("{:.2} -> {:.2}", self.load_average.0, self.load_average.1),
            ),
        ];
        for (name, value) in rows {
            let _ = writeln!(out, "| {name} | {value} |");
        }
        let problems = self.problems();
        if problems.is_empty() {
            let _ = writeln!(
                out,
                "\nChecks: every panic acknowledged and dispatched, none lost, no volunteer double-booked: OK"
            );
        } else {
            let _ = writeln!(out, "\nChecks FAILED:");
            for problem in problems {
                let _ = writeln!(out, "- {problem}");
            }
        }
        out
    }
}

impl Report {
    /// `throughput`: one row per step, then the highest sustained step.
    fn render_steps(&self, out: &mut String, ramp: &Ramp) {
        let _ = writeln!(
            out,
            "| panics/s sent | panics | acknowledged | first waves/s (database) | offer p50 ms, first third | offer p50 ms, last third | offer p99 ms | backlog {} ms after the step | verdict |",
            ramp.grace.as_millis()
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
        for step in &self.steps {
            let _ = writeln!(
                out,
                "| {:.0} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {} | {} |",
                step.rate_per_s,
                step.panics,
                step.acknowledged,
                step.waves_per_s
                    .map_or("n/a".to_owned(), |w| format!("{w:.0}")),
                step.offer_early.p50_ms,
                step.offer_late.p50_ms,
                step.offer.p99_ms,
                step.backlog,
                step.verdict.describe()
            );
        }
        let all_sustained =
            !self.steps.is_empty() && self.steps.iter().all(|s| s.verdict.sustained());
        let _ = match self.sustained() {
            Some(step) => writeln!(
                out,
                "\nHighest sustained step: {:.0} panics/s ({} first waves/s in the database){}.\n",
                step.rate_per_s,
                step.waves_per_s
                    .map_or("n/a".to_owned(), |w| format!("{w:.0}")),
                if all_sustained {
                    "; every step was sustained: raise --to-rate to find the limit"
                } else {
                    ""
                }
            ),
            None => writeln!(out, "\nNo step was sustained: lower --from-rate.\n"),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let samples = (1..=1000).map(Duration::from_millis).collect();
        let latency = Latency::of(samples);
        assert_eq!(latency.count, 1000);
        assert!((latency.p50_ms - 500.0).abs() < 1e-9);
        assert!((latency.p99_ms - 990.0).abs() < 1e-9);
        assert!((latency.p999_ms - 999.0).abs() < 1e-9);
        assert!((latency.max_ms - 1000.0).abs() < 1e-9);
        assert_eq!(Latency::of(Vec::new()).count, 0);
    }

    #[test]
    fn a_clean_report_has_no_problems_and_a_dirty_one_names_them() {
        let clean = Report::default();
        assert!(clean.problems().is_empty());
        let dirty = Report {
            lost: 2,
            double_booked: 1,
            ..Report::default()
        };
        let problems = dirty.problems();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(dirty.render().contains("Checks FAILED"));
    }

    #[test]
    fn the_report_names_the_commit_the_load_and_the_last_offers() {
        let report = Report {
            mode: "surge",
            commit: Some("5b8a837".to_owned()),
            load_at_start: [1.5, 2.0, 2.25],
            last_offers_s: 11.25,
            ..Report::default()
        };
        let text = report.render();
        assert!(text.contains("Server commit 5b8a837;"), "{text}");
        assert!(text.contains("load average 1.50 2.00 2.25"), "{text}");
        assert!(
            text.contains("| last offers out after the first panic | 11.25 s |"),
            "{text}"
        );
    }

    #[test]
    fn a_throughput_report_shows_its_steps_and_the_highest_sustained() {
        use super::super::throughput::Verdict;
        let step = |rate: f64, verdict: Verdict| Step {
            rate_per_s: rate,
            panics: 10,
            acknowledged: 10,
            backlog: 0,
            offer: Latency::default(),
            offer_early: Latency::default(),
            offer_late: Latency::default(),
            waves_per_s: Some(rate - 1.0),
            cancel_failed: 0,
            verdict,
        };
        let report = Report {
            mode: "throughput",
            ramp: Some(Ramp {
                from_per_s: 100.0,
                step_per_s: 100.0,
                to_per_s: 300.0,
                step: Duration::from_secs(5),
                grace: Duration::from_secs(1),
            }),
            steps: vec![
                step(100.0, Verdict::Sustained),
                step(200.0, Verdict::Sustained),
                step(300.0, Verdict::Backlog(587)),
            ],
            ..Report::default()
        };
        assert_eq!(report.sustained().map(|s| s.rate_per_s), Some(200.0));
        let text = report.render();
        assert!(text.contains("| 300 | 10 | 10 | 299 |"), "{text}");
        assert!(text.contains("backlog of 587 alerts"), "{text}");
        assert!(
            text.contains(
                "Highest sustained step: 200 panics/s (199 first waves/s in the database)."
            ),
            "{text}"
        );
        assert!(report.problems().is_empty(), "timing never fails a run");
        assert!(
            !text.contains("last offers out"),
            "no single first panic: {text}"
        );
    }
}
