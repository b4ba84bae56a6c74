//! The poller: one task per configured feed. Each poll is a conditional GET (`If-None-Match` /
//! `If-Modified-Since` from the last answer), a body read up to `max_document_bytes`, the feed's
//! entries applied in order (linked documents fetched once each, the newest `max_entries_per_poll`
//! first). A failure (network, HTTP status, a hostile or broken body) is logged and counted and
//! the next poll waits longer: the interval doubled per failure up to `max_backoff_s`, plus up to
//! a fifth as jitter so many instances do not poll in step. Nothing a feed serves stops the task.
//!
//! Metrics: `kreki_cap_polls_total{feed,result}`, `kreki_cap_refused_total{feed,reason}`,
//! `kreki_cap_messages_total{feed,msg_type}`.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use reqwest::StatusCode;
use reqwest::header::{ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::FeedConfig;
use crate::feed::{self, Entry};
use crate::model::CapAlert;
use crate::parse::{self, Refusal};
use crate::service::CapService;

/// Links remembered per feed as already applied (the oldest are forgotten first).
const SEEN_LINKS: usize = 2000;

/// Starts one poller per configured feed.
pub fn spawn(service: &Arc<CapService>, shutdown: &CancellationToken) -> Vec<JoinHandle<()>> {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_millis(service.config().request_timeout_ms))
        .user_agent(concat!(
            "KREKI/",
            env!("CARGO_PKG_VERSION"),
            " (CAP ingest)"
        ))
        .redirect(reqwest::redirect::Policy::limited(3))
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "CAP poller: no HTTP client; feeds are not polled");
            return Vec::new();
        }
    };
    service
        .config()
        .feeds
        .iter()
        .cloned()
        .map(|feed| {
            let poller = Poller {
                service: service.clone(),
                client: client.clone(),
                feed,
                etag: None,
                last_modified: None,
                seen: VecDeque::new(),
                seen_set: HashSet::new(),
            };
            tokio::spawn(poller.run(shutdown.clone()))
        })
        .collect()
}

/// The wait before the next poll after `failures` failures in a row, without jitter.
pub fn backoff(interval_s: u64, max_s: u64, failures: u32) -> Duration {
    let factor = 1u64 << failures.min(16);
    Duration::from_secs(interval_s.saturating_mul(factor).min(max_s.max(interval_s)))
}

struct Poller {
    service: Arc<CapService>,
    client: reqwest::Client,
    feed: FeedConfig,
    etag: Option<String>,
    last_modified: Option<String>,
    seen: VecDeque<String>,
    seen_set: HashSet<String>,
}

/// Why a poll failed.
#[derive(Debug, thiserror::Error)]
enum PollError {
    #[error("request failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("answered {0}")]
    Status(StatusCode),
    #[error("refused: {0}")]
    Refused(Refusal),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

impl Poller {
    async fn run(mut self, shutdown: CancellationToken) {
        let config = self.service.config().clone();
        let mut failures: u32 = 0;
        tracing::info!(feed = %self.feed.name, url = %self.feed.url, "polling CAP feed");
        loop {
            let result = tokio::select! {
                () = shutdown.cancelled() => return,
                result = self.poll() => result,
            };
            let label = match &result {
                Ok(()) => "ok",
                Err(PollError::Refused(_)) => "refused",
                Err(_) => "failed",
            };
            metrics::counter!("kreki_cap_polls_total", "feed" => self.feed.name.clone(), "result" => label)
                .increment(1);
            match result {
                Ok(()) => failures = 0,
                Err(error) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(feed = %self.feed.name, %error, failures, "CAP poll failed; backing off");
                }
            }
            let base = backoff(config.poll_interval_s, config.max_backoff_s, failures);
            let jitter_ms = if failures > 0 {
                let fifth = u64::try_from(base.as_millis() / 5).unwrap_or(0);
                rand::rng().random_range(0..=fifth)
            } else {
                0
            };
            let wait = base + Duration::from_millis(jitter_ms);
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn poll(&mut self) -> Result<(), PollError> {
        let mut request = self.client.get(&self.feed.url);
        if let Some(etag) = &self.etag {
            request = request.header(IF_NONE_MATCH, etag);
        }
        if let Some(since) = &self.last_modified {
            request = request.header(IF_MODIFIED_SINCE, since);
        }
        let response = request.send().await?;
        if response.status() == StatusCode::NOT_MODIFIED {
            return Ok(());
        }
        if !response.status().is_success() {
            return Err(PollError::Status(response.status()));
        }
        let etag = header(&response, ETAG);
        let last_modified = header(&response, LAST_MODIFIED);
        let text = self.body(response).await?;
        let limits = self.service.limits();
        let service = self.service.clone();
        let geocodes = move |name: &str, value: &str| service.geocode(name, value);
        let entries = feed::entries(
            &text,
            &limits,
            self.service.config().max_entries_per_poll,
            &geocodes,
        )
        .map_err(|refusal| self.refused(refusal))?;
        // Oldest first, so an Update follows its Alert.
        for entry in entries.into_iter().rev() {
            match entry {
                Entry::Inline(alert) => match *alert {
                    Ok(alert) => self.apply(&alert).await?,
                    Err(refusal) => {
                        self.refused(refusal);
                    }
                },
                Entry::Link(url) => {
                    if self.seen_set.contains(&url) {
                        continue;
                    }
                    match self.document(&url).await {
                        Ok(Some(alert)) => {
                            self.apply(&alert).await?;
                            self.remember(url);
                        }
                        Ok(None) => self.remember(url),
                        Err(error) => {
                            tracing::warn!(feed = %self.feed.name, %url, %error, "CAP document not read; trying again next poll");
                        }
                    }
                }
            }
        }
        // Only a fully applied answer is remembered: a failure above polls it whole again.
        self.etag = etag;
        self.last_modified = last_modified;
        Ok(())
    }

    /// One linked document: the alert, `None` when it was refused (counted, not retried).
    async fn document(&self, url: &str) -> Result<Option<CapAlert>, PollError> {
        let response = self.client.get(url).send().await?;
        if !response.status().is_success() {
            return Err(PollError::Status(response.status()));
        }
        let text = self.body(response).await?;
        let service = self.service.clone();
        let geocodes = move |name: &str, value: &str| service.geocode(name, value);
        match parse::alert(&text, &self.service.limits(), &geocodes) {
            Ok(alert) => Ok(Some(alert)),
            Err(refusal) => {
                self.refused(refusal);
                Ok(None)
            }
        }
    }

    async fn apply(&self, alert: &CapAlert) -> Result<(), PollError> {
        self.service.apply(&self.feed.name, alert).await?;
        Ok(())
    }

    /// Reads a body up to the limit; a larger one is refused before it is all read.
    async fn body(&self, mut response: reqwest::Response) -> Result<String, PollError> {
        let limit = self.service.config().max_document_bytes;
        if response
            .content_length()
            .is_some_and(|length| length > limit as u64)
        {
            return Err(self.refused(Refusal::TooLarge(limit)));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > limit {
                return Err(self.refused(Refusal::TooLarge(limit)));
            }
            body.extend_from_slice(&chunk);
        }
        String::from_utf8(body).map_err(|_| self.refused(Refusal::Xml("not UTF-8".to_owned())))
    }

    /// Logs and counts a refusal; answers it.
    fn refused(&self, refusal: Refusal) -> PollError {
        metrics::counter!("kreki_cap_refused_total", "feed" => self.feed.name.clone(), "reason" => refusal.reason())
            .increment(1);
        tracing::warn!(feed = %self.feed.name, reason = refusal.reason(), %refusal, "CAP document refused");
        PollError::Refused(refusal)
    }

    fn remember(&mut self, url: String) {
        if self.seen_set.insert(url.clone()) {
            self.seen.push_back(url);
            if self.seen.len() > SEEN_LINKS
                && let Some(old) = self.seen.pop_front()
            {
                self.seen_set.remove(&old);
            }
        }
    }
}

fn header(response: &reqwest::Response, name: reqwest::header::HeaderName) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        assert_eq!(backoff(60, 900, 0), Duration::from_secs(60));
        assert_eq!(backoff(60, 900, 1), Duration::from_secs(120));
        assert_eq!(backoff(60, 900, 3), Duration::from_secs(480));
        assert_eq!(backoff(60, 900, 30), Duration::from_secs(900));
    }
}
