//! The flags of `kreki loadtest …` and their checks: each out-of-range value is refused with the
//! flag's name before anything is seeded.

use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use kreki_dispatch::domain::AlertKind;

use super::throughput::Ramp;
use super::volunteers::Behaviour;
use super::{DEFAULT_SEED, Mode, Plan};

/// Highest panic rate any mode sends, per second.
const MAX_RATE_PER_S: f64 = 10_000.0;

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
    /// `--panics` panics within `--within-s` seconds; checks none lost and nobody double-booked,
    /// and reports when the last offers went out after the first panic.
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
    /// The highest sustained rate of first waves: open-loop steps from `--from-rate` up by
    /// `--step-rate` to `--to-rate` panics per second, each held `--step-s` seconds, until a step
    /// leaves a backlog `--grace-ms` after its last panic or its offer latency grows over the
    /// step. Volunteers do not accept, and each step's alerts are cancelled before the next, so
    /// every step does the same work.
    Throughput {
        /// Rate of the first step, panics per second.
        #[arg(long, default_value_t = 100.0)]
        from_rate: f64,
        /// Rate added at each step, panics per second.
        #[arg(long, default_value_t = 100.0)]
        step_rate: f64,
        /// Highest rate tried, panics per second.
        #[arg(long, default_value_t = 2000.0)]
        to_rate: f64,
        /// Seconds each step sends panics.
        #[arg(long, default_value_t = 5)]
        step_s: u64,
        /// After a step's last panic, how long its alerts have to be offered (or unmatched)
        /// before the rest counts as a backlog, in milliseconds.
        #[arg(long, default_value_t = 1000)]
        grace_ms: u64,
        /// Shared options.
        #[command(flatten)]
        common: Common,
    },
}

/// Options of every run.
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
    /// After the last panic (of a step), how long to wait for every alert to be offered or
    /// unmatched (the wait ends as soon as they all are); an alert still waiting then counts as
    /// lost.
    #[arg(long, default_value_t = 120)]
    pub settle_s: u64,
    /// The server's process id, to report its CPU use during the run.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// The server build's commit, printed with the report (`scripts/bench-dispatch.sh` fills it).
    #[arg(long, value_name = "COMMIT")]
    pub commit: Option<String>,
}

impl Plan {
    /// The plan of a CLI command; `default_url` when `--url` is not given.
    ///
    /// # Errors
    /// Names the flag that is out of range.
    pub fn from_command(command: LoadtestCommand, default_url: &str) -> anyhow::Result<Self> {
        let (mode, common) = match command {
            LoadtestCommand::Steady {
                rate,
                duration_s,
                common,
            } => {
                check_rate("--rate", rate)?;
                check_seconds("--duration-s", duration_s)?;
                let mode = Mode::Steady {
                    rate_per_s: rate,
                    duration: Duration::from_secs(duration_s),
                };
                (mode, common)
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
                check_seconds("--within-s", within_s)?;
                let mode = Mode::Surge {
                    panics,
                    within: Duration::from_secs(within_s),
                };
                (mode, common)
            }
            LoadtestCommand::Throughput {
                from_rate,
                step_rate,
                to_rate,
                step_s,
                grace_ms,
                common,
            } => {
                check_rate("--from-rate", from_rate)?;
                check_rate("--step-rate", step_rate)?;
                check_rate("--to-rate", to_rate)?;
                anyhow::ensure!(
                    to_rate >= from_rate,
                    "--to-rate: must be at least --from-rate"
                );
                anyhow::ensure!(
                    (to_rate - from_rate) / step_rate < 1000.0,
                    "--step-rate: at most 1000 steps from --from-rate to --to-rate"
                );
                anyhow::ensure!((1..=600).contains(&step_s), "--step-s: must be 1 to 600");
                anyhow::ensure!(
                    (1..=600_000).contains(&grace_ms),
                    "--grace-ms: must be 1 to 600000"
                );
                let mode = Mode::Throughput(Ramp {
                    from_per_s: from_rate,
                    step_per_s: step_rate,
                    to_per_s: to_rate,
                    step: Duration::from_secs(step_s),
                    grace: Duration::from_millis(grace_ms),
                });
                (mode, common)
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
                .unwrap_or_else(|| default_url.to_owned())
                .trim_end_matches('/')
                .to_owned(),
            volunteers: common.volunteers,
            kind,
            seed: common.seed,
            behaviour: Behaviour {
                accepts: true,
                think_min: Duration::from_millis(common.think_min_ms),
                think_max: Duration::from_millis(common.think_max_ms),
                busy: Duration::from_secs_f64(common.busy_s),
            },
            settle: Duration::from_secs(common.settle_s),
            server_pid: common.server_pid,
            commit: common.commit,
        })
    }
}

fn check_rate(flag: &str, rate: f64) -> anyhow::Result<()> {
    anyhow::ensure!(
        rate > 0.0 && rate <= MAX_RATE_PER_S,
        "{flag}: must be above 0 and at most {MAX_RATE_PER_S}"
    );
    Ok(())
}

fn check_seconds(flag: &str, seconds: u64) -> anyhow::Result<()> {
    anyhow::ensure!((1..=3600).contains(&seconds), "{flag}: must be 1 to 3600");
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: LoadtestCommand,
    }

    fn plan(args: &[&str]) -> anyhow::Result<Plan> {
        let cli = Cli::try_parse_from(std::iter::once("loadtest").chain(args.iter().copied()))?;
        Plan::from_command(cli.command, "http://127.0.0.1:8080")
    }

    #[test]
    fn each_mode_becomes_its_plan() {
        let steady = plan(&["steady", "--rate", "20", "--duration-s", "5"]).expect("valid");
        assert!(matches!(steady.mode, Mode::Steady { rate_per_s, duration }
            if (rate_per_s - 20.0).abs() < f64::EPSILON && duration == Duration::from_secs(5)));
        assert_eq!(steady.url, "http://127.0.0.1:8080");
        let surge = plan(&["surge", "--panics", "50", "--url", "http://h:1/"]).expect("valid");
        assert!(matches!(surge.mode, Mode::Surge { panics: 50, .. }));
        assert_eq!(surge.url, "http://h:1");
        let ramp = plan(&[
            "throughput",
            "--from-rate",
            "50",
            "--to-rate",
            "200",
            "--step-rate",
            "50",
            "--commit",
            "abc1234",
        ])
        .expect("valid");
        assert_eq!(ramp.commit.as_deref(), Some("abc1234"));
        let Mode::Throughput(ramp) = ramp.mode else {
            panic!("a throughput plan")
        };
        assert_eq!(ramp.rates(), vec![50.0, 100.0, 150.0, 200.0]);
    }

    #[test]
    fn out_of_range_flags_are_named() {
        for (args, flag) in [
            (&["steady", "--rate", "0"][..], "--rate"),
            (&["steady", "--duration-s", "0"][..], "--duration-s"),
            (&["surge", "--panics", "0"][..], "--panics"),
            (&["throughput", "--to-rate", "50"][..], "--to-rate"),
            (&["throughput", "--step-s", "0"][..], "--step-s"),
            (&["steady", "--kind", "flood"][..], "--kind"),
            (&["steady", "--think-min-ms", "9000"][..], "--think-min-ms"),
        ] {
            let error = plan(args).expect_err("refused").to_string();
            assert!(error.starts_with(flag), "{args:?}: {error}");
        }
    }
}
