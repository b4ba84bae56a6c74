//! The publisher: the task that carries the outbox to Redis, a batch per round trip, and decides
//! what happens when Redis is not there (design in [`crate::bus`]).
//!
//! Its link to Redis is *connecting* at start (messages wait in the outbox: an instance that has
//! just started delivers nothing locally, so nothing it publishes right after a restart is
//! stranded on it), *up* (batches go to Redis; the gaps owed go first), or *down* (a command
//! failed: each message is delivered here under a local numbering and held for the other
//! instances; probed every 250 ms; on its return the held messages are handed over, then the
//! gaps paid).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::backend::Backend;
use super::outbox::{Command, Outbox};
use crate::hub::Hub;

/// How often a bus that lost Redis tries it again.
pub(crate) const PROBE_INTERVAL: Duration = Duration::from_millis(250);

/// Commands per round trip to Redis.
pub(crate) const BATCH: usize = 256;

/// Longest the publisher keeps carrying messages after shutdown when nobody asks it to finish
/// (the binary's realtime worker asks as soon as its sockets closed).
const FINISH_AFTER_SHUTDOWN: Duration = Duration::from_secs(8);

/// The publisher's view of Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Link {
    /// Not tried yet: messages wait.
    Connecting,
    /// The last command succeeded.
    Up,
    /// The last command failed.
    Down,
}

/// Carries the outbox to Redis (or, Redis down, delivers here and holds).
pub(crate) struct Publisher<B: Backend> {
    pub(crate) backend: B,
    pub(crate) hub: Hub,
    pub(crate) outbox: Arc<Outbox>,
    /// Shared with the bus handle: true while the link is up.
    pub(crate) publishing: Arc<AtomicBool>,
    pub(crate) link: Link,
    /// The next refresh is the first since this instance started.
    pub(crate) first_refresh: bool,
}

impl<B: Backend> Publisher<B> {
    /// A publisher whose link is still to be tried.
    pub(crate) fn new(
        backend: B,
        hub: Hub,
        outbox: Arc<Outbox>,
        publishing: Arc<AtomicBool>,
    ) -> Self {
        Self {
            backend,
            hub,
            outbox,
            publishing,
            link: Link::Connecting,
            first_refresh: true,
        }
    }

    /// Runs until asked to `finish` (or `FINISH_AFTER_SHUTDOWN` after `shutdown`), then carries
    /// what is left and says goodbye when nothing is owed; cancels `finished` at the end.
    pub(crate) async fn run(
        mut self,
        refresh_every: Duration,
        shutdown: CancellationToken,
        finish: CancellationToken,
        finished: CancellationToken,
    ) {
        let mut refresh = tokio::time::interval(refresh_every);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut probe = tokio::time::interval(PROBE_INTERVAL);
        probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let deadline = async {
            shutdown.cancelled().await;
            tokio::time::sleep(FINISH_AFTER_SHUTDOWN).await;
        };
        tokio::pin!(deadline);
        loop {
            let link = self.link;
            tokio::select! {
                biased;
                () = finish.cancelled() => break,
                () = &mut deadline => break,
                _ = probe.tick(), if link != Link::Up => {
                    self.probe().await;
                }
                _ = refresh.tick(), if link == Link::Up => self.refresh().await,
                () = self.outbox.ready(link == Link::Up), if link != Link::Connecting => {
                    self.step().await;
                }
            }
        }
        self.finish().await;
        finished.cancel();
    }

    fn set_link(&mut self, link: Link) {
        let was = self.link;
        self.link = link;
        self.publishing.store(link == Link::Up, Ordering::Relaxed);
        metrics::gauge!("realtime_bus_connected").set(if link == Link::Up { 1.0 } else { 0.0 });
        if was != link {
            match link {
                Link::Up => tracing::info!("realtime: Redis bus connected"),
                Link::Down => {
                    tracing::warn!("realtime: Redis unreachable; delivering on this instance only");
                }
                Link::Connecting => {}
            }
        }
    }

    /// Tries Redis; when it answers, refreshes presence and liveness and hands over what was held.
    pub(crate) async fn probe(&mut self) {
        match self.backend.ping().await {
            Ok(()) => {
                self.set_link(Link::Up);
                self.refresh().await;
                self.hand_over_held().await;
            }
            Err(error) => {
                if self.link == Link::Connecting {
                    tracing::warn!(%error, "realtime: Redis does not answer at start");
                }
                self.set_link(Link::Down);
            }
        }
    }

    /// Carries one batch (the gaps owed first) to Redis, or handles it here when Redis is down.
    /// Returns how many commands it took.
    pub(crate) async fn step(&mut self) -> usize {
        let up = self.link == Link::Up;
        let batch = self.outbox.take_batch(BATCH, up);
        if batch.is_empty() {
            return 0;
        }
        let taken = batch.len();
        if up {
            match self.backend.run(&batch).await {
                Ok(()) => return taken,
                Err(error) => {
                    tracing::warn!(%error, "realtime: publish through Redis failed; delivering here");
                    self.set_link(Link::Down);
                }
            }
        }
        self.handle_here(batch);
        taken
    }

    /// Redis is down: each message is delivered here under a local numbering and held for the
    /// other instances; `resync`s owed stay owed; presence changes are dropped (the refresh
    /// writes them again).
    fn handle_here(&self, batch: Vec<Command>) {
        for command in batch {
            match command {
                Command::Publish {
                    envelope,
                    delivered_here,
                } => {
                    if !delivered_here {
                        metrics::counter!("realtime_bus_local_deliveries_total").increment(1);
                        self.hub.deliver(envelope.clone());
                    }
                    self.outbox.hold(envelope);
                }
                Command::Resync(audience) => self.outbox.owe(&audience),
                Command::ResyncEveryone => self.outbox.gap_everyone(),
                Command::Attached(..)
                | Command::Detached(_)
                | Command::Subscribed(..)
                | Command::Unsubscribed(..)
                | Command::Acked(..) => {}
            }
        }
    }

    /// Writes presence, roles, topics and liveness; reaps dead instances.
    pub(crate) async fn refresh(&mut self) {
        let users = self.hub.connected_users();
        match self.backend.refresh(&users, self.first_refresh).await {
            Ok(reaped) => {
                self.first_refresh = false;
                if reaped > 0 {
                    tracing::warn!(
                        reaped,
                        "realtime: an instance stopped without a goodbye (it may have lost messages); every session resyncs"
                    );
                }
            }
            Err(error) => {
                tracing::debug!(%error, "realtime: presence refresh failed");
                self.set_link(Link::Down);
            }
        }
    }

    /// Hands the messages delivered here only while Redis was away to the other instances: each
    /// is numbered and appended marked with this instance as its origin, so this instance's
    /// reader records it in the replay rings without sending it to its sockets again. What fails
    /// goes back on hold for the next reconnection.
    pub(crate) async fn hand_over_held(&mut self) {
        let held = self.outbox.take_held();
        if held.is_empty() {
            return;
        }
        let count = held.len();
        let mut rest = held.as_slice();
        while !rest.is_empty() {
            let (chunk, later) = rest.split_at(rest.len().min(BATCH));
            let commands: Vec<Command> = chunk
                .iter()
                .map(|envelope| Command::Publish {
                    envelope: envelope.clone(),
                    delivered_here: true,
                })
                .collect();
            if let Err(error) = self.backend.run(&commands).await {
                tracing::warn!(%error, "realtime: handing over held messages failed; kept for later");
                self.set_link(Link::Down);
                self.outbox.hold_again(rest.to_vec());
                return;
            }
            rest = later;
        }
        tracing::info!(
            messages = count,
            "realtime: messages delivered here while Redis was away handed to the other instances"
        );
    }

    /// Carries what is left (while Redis answers), then says goodbye when nothing is owed. When
    /// something is (Redis down), no goodbye: the other instances reap this one once its liveness
    /// expires, and every session resyncs.
    pub(crate) async fn finish(&mut self) {
        while self.link == Link::Up && !self.outbox.is_drained() {
            self.step().await;
        }
        if self.link == Link::Up && self.outbox.is_idle() {
            let users: Vec<_> = self
                .hub
                .connected_users()
                .into_iter()
                .map(|(user, _, _)| user)
                .collect();
            if self.outbox.close() {
                match self.backend.goodbye(&users).await {
                    Ok(()) => tracing::info!("realtime: Redis bus stopped; nothing undelivered"),
                    Err(error) => tracing::warn!(
                        %error,
                        "realtime: Redis bus stopped without its goodbye; the other instances resync their sessions once this one's liveness expires"
                    ),
                }
                return;
            }
        }
        self.outbox.close();
        tracing::warn!(
            "realtime: Redis bus stopped with messages undelivered; the other instances resync their sessions once this one's liveness expires"
        );
    }
}
