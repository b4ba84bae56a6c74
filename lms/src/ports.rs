//! What the LMS needs from the rest of the platform, as traits the binary implements: it never
//! depends on dispatch or realtime, and tests plug in recorders.

use std::future::Future;
use std::pin::Pin;

use uuid::Uuid;

/// A boxed future, for the async methods of the ports.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Who an account is, from KREKI ID (the binary wires it to auth's service; the LMS never reads
/// auth's tables). Used for the name printed on a certificate a trainer records for someone who
/// never used the LMS.
pub trait AccountNames: Send + Sync + 'static {
    /// The account's current display name; `Ok(None)` when no account has this id; `Err` (with
    /// why) when KREKI ID could not be asked.
    fn name_of(&self, user: Uuid) -> BoxFuture<'_, Result<Option<String>, String>>;
}

/// Hears that a user's set of valid certifications may have changed (a certificate was issued,
/// revoked, or found expired by the sweep). Dispatch re-reads the user's eligibility.
///
/// Called synchronously after the change is committed, so it must not block: hand the id to a
/// channel or set a flag. It may be called when nothing changed for the listener (harmless).
pub trait CertificationListener: Send + Sync + 'static {
    /// `user`'s valid certifications may differ from what the listener last read.
    fn changed(&self, user: Uuid);

    /// Changes may have been missed (the connection [`crate::changes::forward`] listens on was
    /// lost and re-established): re-read everything (`all_valid_certifications`). Does nothing
    /// unless implemented; never called for a listener given to [`crate::build`] directly.
    fn resync(&self) {}
}

/// Delivers a message to a user now, if they are connected (the binary wires it to the WebSocket
/// hub). Stored notifications are the record; this is only the live copy, so it may drop.
pub trait Notifier: Send + Sync + 'static {
    /// Sends `message` (a JSON object with a `type`) to `user`. Must not block.
    fn notify_user(&self, user: Uuid, message: serde_json::Value);
}

/// For a process in which nothing listens: no dispatch and no WebSocket hub run beside the LMS.
/// Changes are still stored and acted on by whichever process runs those.
#[derive(Debug, Clone, Copy, Default)]
pub struct NobodyListens;

impl CertificationListener for NobodyListens {
    fn changed(&self, user: Uuid) {
        tracing::debug!(%user, "certifications changed; no listener in this process");
    }
}

/// Where no KREKI ID can be asked (tests of other parts): every account is unknown.
impl AccountNames for NobodyListens {
    fn name_of(&self, _user: Uuid) -> BoxFuture<'_, Result<Option<String>, String>> {
        Box::pin(std::future::ready(Ok(None)))
    }
}

impl Notifier for NobodyListens {
    fn notify_user(&self, user: Uuid, _message: serde_json::Value) {
        tracing::debug!(%user, "notification stored; no live delivery in this process");
    }
}
