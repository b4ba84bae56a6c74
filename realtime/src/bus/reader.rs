//! The reader: delivers every entry of the fan-out stream to this instance's hub, in stream
//! order, and notices when it missed entries.
//!
//! Every entry carries its number `n` (one more than the entry before it). A number that jumps
//! means entries were trimmed before this reader got them (it fell more than
//! `stream_max_entries` behind); one that starts again means Redis lost its data. Either way some
//! message never reached this instance, for users it cannot name: every session here resyncs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio_util::sync::CancellationToken;

use super::backend::{Entry, Read, Stream};
use super::publisher::PROBE_INTERVAL;
use crate::hub::Hub;

/// Where the reader is in the stream.
pub(crate) struct Reader<S: Stream> {
    pub(crate) stream: S,
    pub(crate) hub: Hub,
    /// This instance's name: entries it handed over itself are only recorded.
    pub(crate) instance: String,
    /// Shared with the bus handle: true while reads succeed.
    pub(crate) reading: Arc<AtomicBool>,
    /// The id of the last entry delivered.
    pub(crate) last_id: String,
    /// The number of the last entry delivered, once one was.
    pub(crate) last_number: Option<u64>,
}

impl<S: Stream> Reader<S> {
    /// A reader starting after stream id `after`.
    pub(crate) fn new(
        stream: S,
        hub: Hub,
        instance: String,
        reading: Arc<AtomicBool>,
        after: String,
    ) -> Self {
        metrics::counter!("realtime_bus_stream_losses_total").increment(0);
        Self {
            stream,
            hub,
            instance,
            reading,
            last_id: after,
            last_number: None,
        }
    }

    /// Reads until `shutdown`.
    pub(crate) async fn run(mut self, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                ok = self.step() => if !ok {
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(PROBE_INTERVAL) => {}
                    }
                },
            }
        }
    }

    /// One read: delivers what it got. False when Redis did not answer.
    pub(crate) async fn step(&mut self) -> bool {
        match self.stream.read(&self.last_id).await {
            Ok(entries) => {
                if !self.reading.swap(true, Ordering::Relaxed) {
                    tracing::info!("realtime: reading the Redis fan-out stream");
                }
                for read in entries {
                    self.deliver(read);
                }
                true
            }
            Err(error) => {
                if self.reading.swap(false, Ordering::Relaxed) {
                    tracing::warn!(%error, "realtime: reading the Redis fan-out stream failed; retrying");
                }
                false
            }
        }
    }

    fn deliver(&mut self, read: Read) {
        let Read { id, number, entry } = read;
        if let (Some(number), Some(last)) = (number, self.last_number)
            && number != last + 1
        {
            metrics::counter!("realtime_bus_stream_losses_total").increment(1);
            tracing::warn!(
                last,
                number,
                "realtime: fan-out stream entries were lost before this instance read them; every session resyncs"
            );
            self.hub.resync_everyone();
        }
        if number.is_some() {
            self.last_number = number;
        }
        self.last_id = id;
        match entry {
            Entry::Message {
                recipients,
                body,
                origin,
                trace,
            } => {
                let send = origin.as_deref() != Some(self.instance.as_str());
                self.hub
                    .deliver_numbered(&recipients, &body, trace.as_ref(), send);
            }
            Entry::ResyncEveryone => {
                self.hub.resync_everyone();
            }
            Entry::Unreadable => {
                tracing::warn!(id = %self.last_id, "realtime: unreadable fan-out stream entry skipped");
            }
        }
    }
}
