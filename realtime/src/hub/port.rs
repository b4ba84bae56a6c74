//! The hub's side of a bus between instances: the [`Envelope`] a published message travels in,
//! the [`Bus`] trait an implementation (Redis: [`crate::bus`]) fulfils, and what it answers about
//! a user's shared numbering ([`Numbering`], [`Numbered`]).

use kreki_auth::Roles;
use uuid::Uuid;

use super::Audience;
use crate::frame::Frame;
use crate::ports::BoxFuture;

/// A message on its way to the hubs: what [`Bus`] implementations carry between instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Who it is for.
    pub audience: Audience,
    /// The message, encoded once; each hub numbers it per recipient.
    pub frame: Frame,
}

/// Carries published messages to every instance's hub (several instances: [`crate::bus`]).
///
/// `send` must not block. The bus numbers each message once for every instance and brings the
/// numbered message to [`Hub::deliver_numbered`] on every instance, this one included. When it
/// cannot carry a message now (its queue is full, its backend is down), it must still never lose
/// it silently: it delivers it here with [`Hub::deliver`] and hands it to the other instances
/// later, or it tells every recipient with a numbered `resync` (so they refetch). A message
/// numbered only here must never be mistaken for a position in the shared numbering: the hub
/// keeps it under an epoch of its own.
///
/// The other methods tell the bus what this instance's connections do, so it can keep presence
/// and role and topic audiences across instances; they must not block either. By default they do
/// nothing.
pub trait Bus: Send + Sync + 'static {
    /// Takes `envelope` for delivery everywhere (see the trait's rules when it cannot).
    fn send(&self, envelope: Envelope);

    /// `user` attached a connection to this instance, with the roles of its token.
    fn attached(&self, _user: Uuid, _roles: &Roles) {}

    /// The last connection of `user` on this instance closed (the session stays).
    fn detached(&self, _user: Uuid) {}

    /// `user` now follows `topic`.
    fn subscribed(&self, _user: Uuid, _topic: &str) {}

    /// `user` no longer follows `topic`.
    fn unsubscribed(&self, _user: Uuid, _topic: &str) {}

    /// A connection of `user` here acknowledged every message up to `seq` of `epoch`, so other
    /// instances can tell that an offer reached the user (the pusher's `no_ack` policy).
    fn acked(&self, _user: Uuid, _epoch: u64, _seq: u64) {}

    /// The process is stopping and this instance's sockets have closed: carry what is left and
    /// stop (bounded in time).
    fn flush(&self) -> BoxFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }

    /// `user`'s shared numbering now, asked when a connection of theirs arrives at an instance
    /// with no session for them (after a restart, say), so the session starts where the user is
    /// rather than replaying older messages as if they were new. Bounded in time; by default
    /// [`Numbering::Unknown`].
    fn numbering(&self, _user: Uuid) -> BoxFuture<'_, Numbering> {
        Box::pin(std::future::ready(Numbering::Unknown))
    }
}

/// What a bus knows of a user's shared numbering (see [`Bus::numbering`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Numbering {
    /// The newest message numbered for the user is `seq` of `epoch`.
    Current {
        /// The user's numbering.
        epoch: u64,
        /// Its newest number.
        seq: u64,
    },
    /// The user has no numbering (nothing was published to them lately).
    Fresh,
    /// The bus could not tell (its backend is unreachable): the session starts at the client's
    /// cursor, or, without one, takes the first shared message it gets as a `resync` point
    /// rather than news.
    Unknown,
}

/// One recipient of a message the bus numbered: message `seq` of `user`'s numbering `epoch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Numbered {
    /// The recipient.
    pub user: Uuid,
    /// Their shared numbering.
    pub epoch: u64,
    /// The message's number in it.
    pub seq: u64,
}
