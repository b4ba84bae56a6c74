//! [`HubBus`]: the [`Bus`] the hub of an instance with the Redis bus talks to. What the hub
//! publishes and what its connections do go into the outbox (never waiting); the one question
//! the hub asks (where a user's numbering is, when a connection arrives at an instance without
//! a session for them) goes to Redis, bounded in time.

use std::sync::Arc;
use std::time::Duration;

use kreki_auth::Roles;
use uuid::Uuid;

use super::backend::Numberings;
use super::outbox::{Command, Outbox};
use crate::hub::{Bus, Envelope, Numbering};
use crate::ports::BoxFuture;

/// Longest [`Bus::flush`] waits for the publisher to carry what is left and say goodbye.
const FLUSH_WAIT: Duration = Duration::from_millis(1500);

/// The outbox, and where users' numberings are looked up.
pub(crate) struct HubBus {
    pub(crate) outbox: Arc<Outbox>,
    pub(crate) numberings: Arc<dyn Numberings>,
    /// Longest a numbering lookup may take (`response_timeout_ms`).
    pub(crate) lookup_timeout: Duration,
}

impl Bus for HubBus {
    fn send(&self, envelope: Envelope) {
        self.outbox.publish(envelope);
    }

    fn attached(&self, user: Uuid, roles: &Roles) {
        self.outbox.notify(Command::Attached(user, roles.clone()));
    }

    fn detached(&self, user: Uuid) {
        self.outbox.notify(Command::Detached(user));
    }

    fn subscribed(&self, user: Uuid, topic: &str) {
        self.outbox
            .notify(Command::Subscribed(user, topic.to_owned()));
    }

    fn unsubscribed(&self, user: Uuid, topic: &str) {
        self.outbox
            .notify(Command::Unsubscribed(user, topic.to_owned()));
    }

    fn acked(&self, user: Uuid, epoch: u64, seq: u64) {
        self.outbox.notify(Command::Acked(user, epoch, seq));
    }

    fn flush(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.outbox.finish.cancel();
            self.outbox.wake();
            if tokio::time::timeout(FLUSH_WAIT, self.outbox.finished.cancelled())
                .await
                .is_err()
            {
                tracing::warn!("realtime: the Redis bus did not finish within 1.5 s");
            }
        })
    }

    fn numbering(&self, user: Uuid) -> BoxFuture<'_, Numbering> {
        Box::pin(async move {
            match tokio::time::timeout(self.lookup_timeout, self.numberings.numbering(user)).await {
                Ok(Ok(numbering)) => numbering,
                Ok(Err(error)) => {
                    tracing::debug!(%error, "realtime: a user's numbering could not be read");
                    Numbering::Unknown
                }
                Err(_) => Numbering::Unknown,
            }
        })
    }
}
