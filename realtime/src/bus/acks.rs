//! [`SharedAcknowledgements`]: the pusher's view of acknowledgements across instances.

use uuid::Uuid;

use super::RedisBus;
use crate::frame::Frame;
use crate::hub::Hub;
use crate::ports::BoxFuture;

/// The pusher's [`Acknowledgements`](crate::push::Acknowledgements) with several instances: an
/// offer counts as acknowledged when a socket on this instance acknowledged it, or when a socket
/// on any instance acknowledged its `seq` in the shared numbering (recorded in Redis by
/// `ack.lua`, in the user's numbering hash, so it lives as long as the numbering does). When
/// Redis does not answer, only this instance's acknowledgements count (a push too many rather
/// than an offer missed). A user counts as connected when a socket of theirs is open here or
/// presence lists them on another instance.
#[derive(Clone, Debug)]
pub struct SharedAcknowledgements {
    hub: Hub,
    bus: RedisBus,
}

impl SharedAcknowledgements {
    /// Acknowledgements seen by `hub` here and, through `bus`, on every instance.
    pub fn new(hub: Hub, bus: RedisBus) -> Self {
        Self { hub, bus }
    }
}

impl crate::push::Acknowledgements for SharedAcknowledgements {
    fn acknowledged(&self, user: Uuid, frame: &Frame) -> BoxFuture<'_, bool> {
        let frame = frame.clone();
        Box::pin(async move {
            if self.hub.acknowledged(user, &frame) {
                return true;
            }
            let Some((epoch, seq)) = self.hub.numbered(user, &frame) else {
                return false;
            };
            match self.bus.acknowledged_seq(user, epoch).await {
                Ok(acked) => acked >= seq,
                Err(error) => {
                    tracing::debug!(%error, "realtime: acknowledgements of other instances unknown");
                    false
                }
            }
        })
    }

    fn connected(&self, user: Uuid) -> BoxFuture<'_, bool> {
        Box::pin(async move {
            if self.hub.connections_of(user) > 0 {
                return true;
            }
            self.bus
                .instances_of(user)
                .await
                .is_ok_and(|instances| !instances.is_empty())
        })
    }
}
