//! What the bus needs from Redis, as two small traits: [`Backend`] (the publisher's side: run a
//! batch of commands, ping, refresh presence and liveness, say goodbye) and [`Stream`] (the
//! reader's side: read the fan-out stream in order, tell when it lost entries). The Redis
//! implementation is in [`super::redis_bus`]; the model test of the bus (`bus/model.rs`) runs the
//! same publisher and reader against an in-memory one.

use std::future::Future;

use axum::extract::ws::Utf8Bytes;
use kreki_auth::Roles;
use uuid::Uuid;

use super::outbox::Command;
use crate::frame::Traceparent;
use crate::hub::{Numbered, Numbering};
use crate::ports::BoxFuture;

/// Why Redis could not do what was asked (a command failed, timed out, or the connection is
/// down). The bus treats it as Redis being unreachable.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Unreachable(pub String);

impl From<redis::RedisError> for Unreachable {
    fn from(error: redis::RedisError) -> Self {
        Self(error.to_string())
    }
}

/// The publisher's side of Redis.
pub(crate) trait Backend: Send + 'static {
    /// Runs `batch` in order, in one round trip: numbers and appends each message, writes each
    /// presence change. On error none of it may be assumed done (a timed-out batch may have run:
    /// its messages may then arrive twice, never not at all).
    fn run(&mut self, batch: &[Command]) -> impl Future<Output = Result<(), Unreachable>> + Send;

    /// Whether Redis answers.
    fn ping(&mut self) -> impl Future<Output = Result<(), Unreachable>> + Send;

    /// Writes the presence, roles and topics of the users connected here, keeps their numbering
    /// alive, records that this instance is alive, and reaps instances that stopped refreshing
    /// without a goodbye (they may have died with messages in their outbox): for those, every
    /// instance is told to resync every session. On the `first` refresh since this instance
    /// started, a liveness record of its own name still there is such an instance too (it
    /// restarted under a configured `instance_id`). Returns how many instances were reaped.
    fn refresh(
        &mut self,
        users: &[(Uuid, Roles, Vec<String>)],
        first: bool,
    ) -> impl Future<Output = Result<usize, Unreachable>> + Send;

    /// This instance stops with nothing owed: it is no longer alive, and its users' presence here
    /// ends. Not reaped, so nobody resyncs for it.
    fn goodbye(&mut self, users: &[Uuid]) -> impl Future<Output = Result<(), Unreachable>> + Send;
}

/// Where users' shared numberings are (asked when a connection arrives at an instance without a
/// session for the user).
pub(crate) trait Numberings: Send + Sync + 'static {
    /// `user`'s numbering now: [`Numbering::Current`] or [`Numbering::Fresh`].
    fn numbering(&self, user: Uuid) -> BoxFuture<'_, Result<Numbering, Unreachable>>;
}

/// One entry of the fan-out stream, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Entry {
    /// A numbered message: `body` (a frame's) for each recipient; `origin` is the instance that
    /// delivered it to its own sockets already, when it was handed over after an outage.
    Message {
        /// Each recipient with their `epoch` and `seq`.
        recipients: Vec<Numbered>,
        /// The shared body.
        body: Utf8Bytes,
        /// Set on messages handed over after an outage.
        origin: Option<String>,
        /// The trace of the work that published it (`t`), when traces are exported.
        trace: Option<Traceparent>,
    },
    /// Some instance lost messages it had not numbered yet: every session resyncs.
    ResyncEveryone,
    /// Not readable (written by a newer version, or damaged): skipped.
    Unreadable,
}

/// One entry of the fan-out stream with its place: `id` (the stream's, `ms-seq`) and `number`
/// (one more than the entry before it; `None` from a version that did not number entries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Read {
    /// The stream id, to read on after.
    pub id: String,
    /// The entry's number (`n`).
    pub number: Option<u64>,
    /// What it says.
    pub entry: Entry,
}

/// The reader's side of Redis: the fan-out stream.
pub(crate) trait Stream: Send + 'static {
    /// The entries after `after` (a stream id), oldest first, waiting a while for new ones.
    fn read(&mut self, after: &str) -> impl Future<Output = Result<Vec<Read>, Unreachable>> + Send;
}

/// The recipients of an entry: `users` (`user,user,…`) and their `numbers` (`epoch:seq:epoch:seq:…`,
/// in the same order), or `None` when any part does not read or the counts differ.
pub(crate) fn parse_recipients(users: &str, numbers: &str) -> Option<Vec<Numbered>> {
    let mut numbers = numbers.split(':');
    let recipients = users
        .split(',')
        .map(|user| {
            let user = Uuid::parse_str(user).ok()?;
            let epoch = numbers.next()?.parse::<u64>().ok()?;
            let seq = numbers.next()?.parse::<u64>().ok()?;
            Some(Numbered { user, epoch, seq })
        })
        .collect::<Option<Vec<_>>>()?;
    numbers.next().is_none().then_some(recipients)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_read_or_refuse_as_a_whole() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        assert_eq!(
            parse_recipients(&format!("{a},{b}"), "7:3:9:4"),
            Some(vec![
                Numbered {
                    user: a,
                    epoch: 7,
                    seq: 3
                },
                Numbered {
                    user: b,
                    epoch: 9,
                    seq: 4
                },
            ])
        );
        assert_eq!(parse_recipients(&format!("{a},{b}"), "7:3"), None);
        assert_eq!(parse_recipients(&format!("{a}"), "7:3:9:4"), None);
        assert_eq!(parse_recipients(&format!("{a}"), "7"), None);
        assert_eq!(parse_recipients("x", "7:3"), None);
        assert_eq!(parse_recipients(&format!("{a}"), "7:x"), None);
    }
}
