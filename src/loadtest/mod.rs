//! `kreki loadtest`: the end-to-end load generator of the dispatch hot path (issue 3), against a
//! running `kreki serve` that shares this configuration (its database and signing key).
//!
//! - `steady`: N volunteers connected by WebSocket, panics open loop at a fixed rate; measures the
//!   time from sending `POST /v1/alerts` to the first `offer` frame for that alert at any volunteer
//!   socket, and to the 201.
//! - `surge`: many panics within a few seconds; then checks, from the sockets and the database,
//!   that every panic was acknowledged and dispatched, none lost, nobody double-booked.
//!
//! Setup writes accounts and volunteer rows straight into the database ([`seed`]), mints tokens
//! with the instance's key, and has each volunteer report its position over its socket. Volunteers
//! accept every offer after a think time and complete after a busy time ([`volunteers`]); the
//! server's `dispatch.rest_period_s` decides when they are offered again.
//! `scripts/bench-dispatch.sh` runs it all on a scratch database; see BENCHMARKS.md.

pub mod panics;
pub mod report;
pub mod seed;
pub mod volunteers;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use kreki_dispatch::domain::AlertKind;
use rand::SeedableRng;
use rand::rngs::StdRng;
use sqlx::PgPool;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::Config;
pub use report::{Latency, Report};
use volunteers::{Behaviour, Tally};

/// Open files the generator needs beyond one per volunteer socket (HTTP connections, database).
const SPARE_FILES: u64 = 512;
/// Seed of the run's positions, as the matcher benchmark's.
pub const DEFAULT_SEED: u64 = 20_261_121;

/// `kreki loadtest …`
#[derive(Debug, Subcommand)]
pub enum LoadtestCommand {
    /// Panics open loop at `--rate` per second for `--duration-s`, against `--volunteers` sockets;
    /// reports panic -> offer frame and panic -> 201 percentiles.
    Steady {
        /// Panics per second.
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
        /// How long panics are sent, in seconds.
        #[arg(long, default_value_t = 30)]
        duration_s: u64,
        /// Shared options.
        #[command(flatten)]
        common: Common,
    },
    /// `--panics` panics within `--within-s` seconds; checks none lost and nobody double-booked.
    Surge {
        /// Panics in all.
        #[arg(long, default_value_t = 5000)]
        panics: usize,
        /// Seconds they are spread over.
        #[arg(long, default_value_t = 10)]
        within_s: u64,
        /// Shared options.
        #[command(flatten)]
        common: Common,
    },
}

/// Options of both runs.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// The server's base URL (default: `http://` + `server.listen` of this configuration).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Volunteers, one WebSocket each.
    #[arg(long, default_value_t = 10_000)]
    pub volunteers: usize,
    /// Alert kind of every panic (its required certifications are granted to every volunteer).
    #[arg(long, default_value = "medical")]
    pub kind: String,
    /// Seed of the positions (volunteers, then panics).
    #[arg(long, default_value_t = DEFAULT_SEED)]
    pub seed: u64,
    /// Shortest think time before a volunteer accepts an offer, in milliseconds.
    #[arg(long, default_value_t = 500)]
    pub think_min_ms: u64,
    /// Longest think time, in milliseconds.
    #[arg(long, default_value_t = 3000)]
    pub think_max_ms: u64,
    /// Seconds from a won accept to `completed`.
    #[arg(long, default_value_t = 5.0)]
    pub busy_s: f64,
    /// After the last panic, how long to wait for every alert to be offered or unmatched (the
    /// wait ends as soon as they all are); an alert still waiting then counts as lost.
    #[arg(long, default_value_t = 120)]
    pub settle_s: u64,
    /// The server's process id, to report its CPU use during the run.
    #[arg(long)]
    pub server_pid: Option<u32>,
}

/// One run, fully specified.
#[derive(Debug, Clone)]
pub struct Plan {
    /// `steady` or `surge`.
    pub mode: &'static str,
    /// Base URL of the server.
    pub url: String,
    /// Volunteer sockets.
    pub volunteers: usize,
    /// Panics in all.
    pub panics: usize,
    /// Panics per second.
    pub rate_per_s: f64,
    /// Kind of every panic.
    pub kind: AlertKind,
    /// Seed of positions.
    pub seed: u64,
    /// Volunteers' behaviour.
    pub behaviour: Behaviour,
    /// Wait for dispatch after the last panic.
    pub settle: Duration,
    /// Server pid for CPU figures.
    pub server_pid: Option<u32>,
}

impl Plan {
    /// The plan of a CLI command.
    ///
    /// # Errors
    /// Names the flag that is out of range.
    pub fn from_command(command: LoadtestCommand, config: &Config) -> anyhow::Result<Self> {
        let (mode, panics, rate_per_s, common) = match command {
            LoadtestCommand::Steady {
                rate,
                duration_s,
                common,
            } => {
                anyhow::ensure!(
                    rate > 0.0 && rate <= 10_000.0,
                    "--rate: must be above 0 and at most 10000"
                );
                anyhow::ensure!(
                    (1..=3600).contains(&duration_s),
                    "--duration-s: must be 1 to 3600"
                );
                #[expect(
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss,
                    clippy::cast_precision_loss,
                    reason = "checked ranges above"
                )]
                let panics = (rate * duration_s as f64).round() as usize;
                ("steady", panics.max(1), rate, common)
            }
            LoadtestCommand::Surge {
                panics,
                within_s,
                common,
            } => {
                anyhow::ensure!(
                    (1..=1_000_000).contains(&panics),
                    "--panics: must be 1 to 1000000"
                );
                anyhow::ensure!(
                    (1..=3600).contains(&within_s),
                    "--within-s: must be 1 to 3600"
                );
                #[expect(clippy::cast_precision_loss, reason = "checked ranges above")]
                let rate = panics as f64 / within_s as f64;
                ("surge", panics, rate, common)
            }
        };
        let kind = AlertKind::parse(&common.kind).with_context(|| {
            format!(
                "--kind: `{}` is not one of medical, cardiac_arrest, accident, fire, disaster, security, other",
                common.kind
            )
        })?;
        anyhow::ensure!(
            (1..=100_000).contains(&common.volunteers),
            "--volunteers: must be 1 to 100000"
        );
        anyhow::ensure!(
            common.think_min_ms <= common.think_max_ms,
            "--think-min-ms: must not exceed --think-max-ms"
        );
        anyhow::ensure!(
            common.busy_s.is_finite() && (0.0..=3600.0).contains(&common.busy_s),
            "--busy-s: must be 0 to 3600"
        );
        Ok(Self {
            mode,
            url: common
                .url
                .unwrap_or_else(|| format!("http://{}", config.server.listen))
                .trim_end_matches('/')
                .to_owned(),
            volunteers: common.volunteers,
            panics,
            rate_per_s,
            kind,
            seed: common.seed,
            behaviour: Behaviour {
                think_min: Duration::from_millis(common.think_min_ms),
                think_max: Duration::from_millis(common.think_max_ms),
                busy: Duration::from_secs_f64(common.busy_s),
            },
            settle: Duration::from_secs(common.settle_s),
            server_pid: common.server_pid,
        })
    }
}

/// `kreki loadtest …`: runs the plan, prints the tables, fails when a correctness check failed.
///
/// # Errors
/// Setup failures, or a run whose checks failed.
pub async fn main(config: Config, command: LoadtestCommand) -> anyhow::Result<()> {
    let plan = Plan::from_command(command, &config)?;
    let report = run(&config, &plan).await?;
    crate::cli::say(&report.render());
    let problems = report.problems();
    anyhow::ensure!(
        problems.is_empty(),
        "checks failed: {}",
        problems.join("; ")
    );
    Ok(())
}

/// Runs `plan` against the server at `plan.url`, whose database and signing key `config` names.
///
/// # Errors
/// Setup failures (database, key, sockets, open-file limit); the run's own findings are in the
/// [`Report`].
pub async fn run(config: &Config, plan: &Plan) -> anyhow::Result<Report> {
    let needed = plan.volunteers as u64 + SPARE_FILES;
    if let Some(limit) = volunteers::open_files_limit() {
        anyhow::ensure!(
            limit >= needed,
            "{} sockets need {needed} open files, `ulimit -n` is {limit}: raise it (ulimit -n {needed}; the hard limit is `ulimit -Hn`)",
            plan.volunteers
        );
    }
    let pool = config.database.pool().map_err(anyhow::Error::msg)?;
    let http = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(1024)
        .timeout(Duration::from_secs(30))
        .build()?;
    wait_ready(&http, &plan.url).await?;

    let mut report = Report {
        mode: plan.mode,
        planned: plan.panics,
        rate_per_s: plan.rate_per_s,
        ..Report::default()
    };
    let started = Instant::now();
    let seeded = seed::seed(
        config,
        &pool,
        plan.kind,
        plan.volunteers,
        plan.panics,
        plan.seed,
    )
    .await?;
    report.seed_s = started.elapsed().as_secs_f64();
    // Panic points follow the volunteers' in the same seeded sequence.
    let mut rng = StdRng::seed_from_u64(plan.seed.wrapping_add(1));
    let points = seed::points(&mut rng, plan.panics);

    let rss_before = rss_bytes();
    let started = Instant::now();
    let sockets = volunteers::connect_all(&plan.url, &seeded.volunteers).await?;
    report.connect_s = started.elapsed().as_secs_f64();
    report.volunteers = sockets.len();
    report.client_bytes_per_socket =
        rss_bytes().saturating_sub(rss_before) / (sockets.len().max(1) as u64);

    let tally = Arc::new(Tally::default());
    let stop = CancellationToken::new();
    // Whatever happens below, the sockets and the scheduler stop with this function.
    let _stop_on_return = stop.clone().drop_guard();
    let volunteers = Arc::new(seeded.volunteers);
    let mut tasks = volunteers::start(
        &plan.url,
        sockets,
        volunteers.clone(),
        plan.behaviour,
        http.clone(),
        tally.clone(),
        &stop,
    );

    let metrics_before = scrape(&http, &plan.url).await;
    let cpu_before = (
        cpu_ticks(None),
        plan.server_pid.and_then(|pid| cpu_ticks(Some(pid))),
    );
    let load_start = load_average();
    let wall_started = std::time::Instant::now();
    let sent = panics::send(
        &plan.url,
        &http,
        &seeded.citizens,
        &points,
        plan.kind.as_str(),
        plan.rate_per_s,
    )
    .await;
    let wall = wall_started.elapsed().as_secs_f64();
    report.client_cpu_pct = cpu_pct(cpu_before.0, cpu_ticks(None), wall);
    report.server_cpu_pct = plan.server_pid.and_then(|pid| {
        cpu_before
            .1
            .map(|before| cpu_pct(Some(before), cpu_ticks(Some(pid)), wall))
    });
    report.load_average = (load_start, load_average());
    let metrics_after = scrape(&http, &plan.url).await;
    report.server_commit_mean_ms = mean_ms(
        &metrics_before,
        &metrics_after,
        "kreki_dispatch_alert_commit_seconds",
        "",
    );
    report.server_post_alert_mean_ms = mean_ms(
        &metrics_before,
        &metrics_after,
        "http_request_duration_seconds",
        "/v1/alerts\"",
    );
    report.client_lag_ms = sent.max_lag.as_secs_f64() * 1000.0;
    report.send_window_s = sent
        .outcomes
        .iter()
        .filter(|outcome| outcome.sent)
        .map(|outcome| outcome.sent_at.saturating_duration_since(sent.started))
        .max()
        .unwrap_or_default()
        .as_secs_f64();

    let mut alerts: Vec<Uuid> = Vec::new();
    let mut seen = HashSet::new();
    let mut ack_latencies = Vec::new();
    for outcome in &sent.outcomes {
        report.retries += outcome.attempts.saturating_sub(1) as usize;
        if !outcome.sent {
            report.not_sent += 1;
            continue;
        }
        match (outcome.status, outcome.alert, outcome.acked_at) {
            (Some(201), Some(alert), Some(acked)) => {
                report.created += 1;
                ack_latencies.push(acked - outcome.sent_at);
                if seen.insert(alert) {
                    alerts.push(alert);
                }
            }
            (Some(200), Some(alert), Some(acked)) => {
                report.replayed += 1;
                ack_latencies.push(acked - outcome.sent_at);
                if seen.insert(alert) {
                    alerts.push(alert);
                }
            }
            (status, _, _) => {
                let key = status.map_or("none".to_owned(), |status| status.to_string());
                *report.failed.entry(key).or_default() += 1;
            }
        }
    }
    report.alerts = alerts.len();
    report.ack_latency = Latency::of(ack_latencies);

    // Wait until every alert was offered at a socket or is unmatched (or the settle time ran out).
    let deadline = Instant::now() + plan.settle;
    let unmatched = loop {
        let offered = tally.first_offers();
        let waiting: Vec<Uuid> = alerts
            .iter()
            .copied()
            .filter(|alert| !offered.contains_key(alert))
            .collect();
        let unmatched = unmatched_at(&pool, &waiting).await?;
        if unmatched.len() == waiting.len() || Instant::now() >= deadline {
            break unmatched;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    // Frames of offers made just now are still on their way: give them a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let offered = tally.first_offers();
    let mut offer_latencies = Vec::new();
    let mut last_dispatched = Duration::ZERO;
    for outcome in &sent.outcomes {
        if let Some(alert) = outcome.alert
            && let Some(first) = offered.get(&alert)
        {
            offer_latencies.push(first.saturating_duration_since(outcome.sent_at));
        }
    }
    for first in offered.values() {
        last_dispatched = last_dispatched.max(first.saturating_duration_since(sent.started));
    }
    let run_started_utc =
        chrono::Utc::now() - chrono::Duration::from_std(sent.started.elapsed()).unwrap_or_default();
    for at in unmatched.values() {
        let after = (*at - run_started_utc).to_std().unwrap_or_default();
        last_dispatched = last_dispatched.max(after);
    }
    report.offered = alerts.iter().filter(|a| offered.contains_key(a)).count();
    report.unmatched = alerts
        .iter()
        .filter(|a| !offered.contains_key(a) && unmatched.contains_key(a))
        .count();
    report.lost = report
        .alerts
        .saturating_sub(report.offered + report.unmatched);
    report.offer_latency = Latency::of(offer_latencies);
    report.last_dispatched_s = last_dispatched.as_secs_f64();

    let mut checks = check_database(
        &pool,
        &alerts,
        &tally.offer_ids(),
        &tally.first_offers_utc(),
    )
    .await?;
    if !checks.undelivered.is_empty() {
        // A later wave may have gone out just now: its frames get two more seconds.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let received = tally.offer_ids();
        checks.undelivered.retain(|id| !received.contains(id));
    }
    report.dispatch_wait = checks.dispatch_wait;
    report.wave_to_frame = checks.wave_to_frame;
    report.missing_in_db = checks.missing;
    report.undispatched = checks.undispatched;
    report.offers_in_db = checks.offers;
    report.offers_undelivered = checks.undelivered.len();
    report.outbox_pending = checks.outbox_pending;
    report.over_covered = checks.over_covered;
    report.double_booked = checks.double_booked
        + tally
            .double_accepts
            .load(std::sync::atomic::Ordering::Relaxed);

    let count =
        |counter: &std::sync::atomic::AtomicU64| counter.load(std::sync::atomic::Ordering::Relaxed);
    report.offer_frames = count(&tally.offer_frames);
    report.withdrawn_frames = count(&tally.withdrawn_frames);
    report.accepted = count(&tally.accepted);
    report.completed = count(&tally.completed);
    report.disconnects = count(&tally.disconnects);
    report.actions_dropped = count(&tally.actions_dropped);
    report.refused = tally.refused();

    stop.cancel();
    while tasks.join_next().await.is_some() {}
    off_duty(&http, &plan.url, &volunteers).await;
    pool.close().await;
    Ok(report)
}

/// Puts the run's volunteers off duty through the API (their sockets are closed now), so a later
/// run against the same server offers nothing to volunteers nobody plays.
async fn off_duty(http: &reqwest::Client, base: &str, volunteers: &[seed::Person]) {
    use futures_util::StreamExt;
    futures_util::stream::iter(volunteers)
        .for_each_concurrent(volunteers::HTTP_CONCURRENCY, |volunteer| async move {
            let answer = http
                .put(format!("{base}/v1/volunteers/me/duty"))
                .bearer_auth(&volunteer.token)
                .json(&serde_json::json!({"on_duty": false}))
                .send()
                .await;
            if let Err(error) = answer.and_then(reqwest::Response::error_for_status) {
                tracing::warn!(%error, "a load-test volunteer could not go off duty");
            }
        })
        .await;
}

/// Waits up to 60 s for `/readyz` to answer 200 (dispatch's matcher is built after start).
async fn wait_ready(http: &reqwest::Client, base: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .map(|answer| answer.status());
        match status {
            Ok(status) if status.is_success() => return Ok(()),
            _ if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(status) => anyhow::bail!("{base}/readyz still answers {status} after 60 s"),
            Err(error) => {
                return Err(error).with_context(|| format!("no server answers at {base}"));
            }
        }
    }
}

/// Of `alerts`, those `unmatched` in the database, with when they became so.
async fn unmatched_at(
    pool: &PgPool,
    alerts: &[Uuid],
) -> anyhow::Result<HashMap<Uuid, chrono::DateTime<chrono::Utc>>> {
    if alerts.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(Uuid, Option<chrono::DateTime<chrono::Utc>>)> = sqlx::query_as(
        "SELECT a.id, (SELECT max(e.at) FROM dispatch.alert_events e
                       WHERE e.alert_id = a.id AND e.type = 'unmatched')
         FROM dispatch.alerts a WHERE a.id = ANY($1) AND a.status = 'unmatched'",
    )
    .bind(alerts)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, at)| (id, at.unwrap_or_else(chrono::Utc::now)))
        .collect())
}

struct Checks {
    dispatch_wait: Latency,
    wave_to_frame: Latency,
    missing: usize,
    undispatched: usize,
    offers: usize,
    undelivered: Vec<Uuid>,
    outbox_pending: i64,
    over_covered: u64,
    double_booked: u64,
}

/// The database's view of the run's alerts.
async fn check_database(
    pool: &PgPool,
    alerts: &[Uuid],
    received: &HashSet<Uuid>,
    frames_at: &HashMap<Uuid, chrono::DateTime<chrono::Utc>>,
) -> anyhow::Result<Checks> {
    let (present, undispatched): (i64, i64) = sqlx::query_as(
        "SELECT count(*),
                count(*) FILTER (WHERE a.status <> 'unmatched'
                    AND NOT EXISTS (SELECT 1 FROM dispatch.offers o WHERE o.alert_id = a.id))
         FROM dispatch.alerts a WHERE a.id = ANY($1)",
    )
    .bind(alerts)
    .fetch_one(pool)
    .await?;
    let offers: Vec<(Uuid,)> =
        sqlx::query_as("SELECT id FROM dispatch.offers WHERE alert_id = ANY($1)")
            .bind(alerts)
            .fetch_all(pool)
            .await?;
    let (outbox_pending,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM dispatch.outbox WHERE alert_id = ANY($1) AND processed_at IS NULL",
    )
    .bind(alerts)
    .fetch_one(pool)
    .await?;
    let (over_covered,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM (
           SELECT a.id FROM dispatch.alerts a JOIN dispatch.assignments s ON s.alert_id = a.id
           WHERE a.id = ANY($1) AND s.status <> 'withdrawn'
           GROUP BY a.id, a.responders_needed HAVING count(*) > a.responders_needed) AS x",
    )
    .bind(alerts)
    .fetch_one(pool)
    .await?;
    let (double_booked,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM (
           SELECT volunteer_id FROM dispatch.assignments
           WHERE status IN ('accepted', 'en_route', 'on_scene')
           GROUP BY volunteer_id HAVING count(*) > 1) AS x",
    )
    .fetch_one(pool)
    .await?;
    // Both timestamps are `now()` of their transaction: the alert's ingest and its first wave.
    let waits: Vec<(Uuid, f64, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
        "SELECT a.id, extract(epoch FROM min(o.offered_at) - a.created_at)::float8, min(o.offered_at)
         FROM dispatch.alerts a JOIN dispatch.offers o ON o.alert_id = a.id
         WHERE a.id = ANY($1) GROUP BY a.id",
    )
    .bind(alerts)
    .fetch_all(pool)
    .await?;
    let wave_to_frame = waits
        .iter()
        .filter_map(|(id, _, offered_at)| (*frames_at.get(id)? - *offered_at).to_std().ok())
        .collect();
    let present = usize::try_from(present).unwrap_or(0);
    Ok(Checks {
        dispatch_wait: Latency::of(
            waits
                .into_iter()
                .map(|(_, seconds, _)| Duration::from_secs_f64(seconds.max(0.0)))
                .collect(),
        ),
        wave_to_frame: Latency::of(wave_to_frame),
        missing: alerts.len().saturating_sub(present),
        undispatched: usize::try_from(undispatched).unwrap_or(0),
        offers: offers.len(),
        undelivered: offers
            .into_iter()
            .map(|(id,)| id)
            .filter(|id| !received.contains(id))
            .collect(),
        outbox_pending,
        over_covered: u64::try_from(over_covered).unwrap_or(0),
        double_booked: u64::try_from(double_booked).unwrap_or(0),
    })
}

/// The server's `/metrics` text (empty when it cannot be read).
async fn scrape(http: &reqwest::Client, base: &str) -> String {
    match http.get(format!("{base}/metrics")).send().await {
        Ok(answer) => answer.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Sum of the `_sum` and `_count` series of histogram `name` whose labels contain `filter`.
fn histogram_totals(text: &str, name: &str, filter: &str) -> (f64, f64) {
    let (mut sum, mut count) = (0.0, 0.0);
    for line in text.lines() {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        if !series.contains(filter) {
            continue;
        }
        let value: f64 = value.parse().unwrap_or(0.0);
        if series.starts_with(&format!("{name}_sum")) {
            sum += value;
        } else if series.starts_with(&format!("{name}_count")) {
            count += value;
        }
    }
    (sum, count)
}

/// Mean of histogram `name` (labels containing `filter`) between two scrapes, in milliseconds.
fn mean_ms(before: &str, after: &str, name: &str, filter: &str) -> Option<f64> {
    let (sum0, count0) = histogram_totals(before, name, filter);
    let (sum1, count1) = histogram_totals(after, name, filter);
    let count = count1 - count0;
    (count > 0.0).then(|| (sum1 - sum0) / count * 1000.0)
}

/// User + system CPU of this process (None) or of `pid`, in clock ticks (1/100 s on Linux).
fn cpu_ticks(pid: Option<u32>) -> Option<u64> {
    let path = pid.map_or("/proc/self/stat".to_owned(), |pid| {
        format!("/proc/{pid}/stat")
    });
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let user: u64 = fields.get(11)?.parse().ok()?;
    let system: u64 = fields.get(12)?.parse().ok()?;
    Some(user + system)
}

fn cpu_pct(before: Option<u64>, after: Option<u64>, wall_s: f64) -> f64 {
    match (before, after) {
        #[expect(clippy::cast_precision_loss, reason = "tick counts")]
        (Some(before), Some(after)) if wall_s > 0.0 => {
            after.saturating_sub(before) as f64 / 100.0 / wall_s * 100.0
        }
        _ => 0.0,
    }
}

/// Resident memory of this process, in bytes.
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_means_come_from_the_difference_of_two_scrapes() {
        let before = "kreki_dispatch_alert_commit_seconds_sum 1.0\nkreki_dispatch_alert_commit_seconds_count 10\n";
        let after = "kreki_dispatch_alert_commit_seconds_sum 1.5\nkreki_dispatch_alert_commit_seconds_count 20\n";
        let mean = mean_ms(before, after, "kreki_dispatch_alert_commit_seconds", "")
            .expect("ten new samples");
        assert!((mean - 50.0).abs() < 1e-9, "{mean}");
        assert_eq!(
            mean_ms(before, before, "kreki_dispatch_alert_commit_seconds", ""),
            None
        );
    }

    #[test]
    fn this_process_has_cpu_ticks_and_an_open_file_limit() {
        assert!(cpu_ticks(None).is_some());
        assert!(volunteers::open_files_limit().is_some_and(|limit| limit > 0));
    }
}
