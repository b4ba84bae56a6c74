//! This machine as the run sees it: CPU of the client and the server, the client's memory, the
//! load average, the open-file limit; and means of the server's histograms between two scrapes of
//! its `/metrics`. Linux `/proc` only; a figure that cannot be read is zero or `None`.

use super::Report;
use crate::client::Api;

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
pub fn mean_ms(before: &str, after: &str, name: &str, filter: &str) -> Option<f64> {
    let (sum0, count0) = histogram_totals(before, name, filter);
    let (sum1, count1) = histogram_totals(after, name, filter);
    let count = count1 - count0;
    (count > 0.0).then(|| (sum1 - sum0) / count * 1000.0)
}

/// User + system CPU of this process (None) or of `pid`, in clock ticks (1/100 s on Linux).
pub fn cpu_ticks(pid: Option<u32>) -> Option<u64> {
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

/// CPU between two [`cpu_ticks`] readings `wall_s` seconds apart, in % of one core (0 when
/// either is missing).
pub fn cpu_pct(before: Option<u64>, after: Option<u64>, wall_s: f64) -> f64 {
    match (before, after) {
        #[expect(clippy::cast_precision_loss, reason = "tick counts")]
        (Some(before), Some(after)) if wall_s > 0.0 => {
            after.saturating_sub(before) as f64 / 100.0 / wall_s * 100.0
        }
        _ => 0.0,
    }
}

/// Resident memory of this process, in bytes.
pub fn rss_bytes() -> u64 {
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

/// The load average over 1, 5 and 15 minutes (zeros where `/proc/loadavg` cannot be read).
pub fn load_averages() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut fields = text
        .split_whitespace()
        .map(|field| field.parse().unwrap_or(0.0));
    std::array::from_fn(|_| fields.next().unwrap_or(0.0))
}

/// The load average over the last minute.
pub fn load_average() -> f64 {
    load_averages()[0]
}

/// The soft limit of open files of this process, from `/proc/self/limits`.
pub fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// The measuring window of the panic phase: CPU, load and the server's histograms at its start,
/// compared at its end.
#[derive(Debug)]
pub struct Phase {
    metrics: String,
    client_ticks: Option<u64>,
    server_ticks: Option<u64>,
    server_pid: Option<u32>,
    load: f64,
    started: std::time::Instant,
}

impl Phase {
    /// Takes the readings at the start.
    pub async fn start(api: &Api, server_pid: Option<u32>) -> Self {
        Self {
            metrics: api.metrics().await,
            client_ticks: cpu_ticks(None),
            server_ticks: server_pid.and_then(|pid| cpu_ticks(Some(pid))),
            server_pid,
            load: load_average(),
            started: std::time::Instant::now(),
        }
    }

    /// Takes the readings at the end and writes the differences into `report`.
    pub async fn finish(self, api: &Api, report: &mut Report) {
        let wall_s = self.started.elapsed().as_secs_f64();
        report.client_cpu_pct = cpu_pct(self.client_ticks, cpu_ticks(None), wall_s);
        report.server_cpu_pct = self.server_pid.and_then(|pid| {
            self.server_ticks
                .map(|before| cpu_pct(Some(before), cpu_ticks(Some(pid)), wall_s))
        });
        report.load_average = (self.load, load_average());
        let metrics = api.metrics().await;
        report.server_commit_mean_ms = mean_ms(
            &self.metrics,
            &metrics,
            "kreki_dispatch_alert_commit_seconds",
            "",
        );
        report.server_post_alert_mean_ms = mean_ms(
            &self.metrics,
            &metrics,
            "http_request_duration_seconds",
            "/v1/alerts\"",
        );
    }
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
    fn this_process_has_cpu_ticks_an_open_file_limit_and_a_load() {
        assert!(cpu_ticks(None).is_some());
        assert!(open_files_limit().is_some_and(|limit| limit > 0));
        assert!(load_averages().iter().all(|load| *load >= 0.0));
    }
}
