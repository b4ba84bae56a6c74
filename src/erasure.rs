//! Account erasure across services: KREKI ID deletes the account, and each service erases its own
//! tables through KREKI ID's [`AccountErasure`] port. Only the binary knows every crate, so the
//! hooks are joined here and registered on the auth state ([`hooks`]). All services share one
//! database, so every hook runs wherever KREKI ID runs, whichever services this process serves.

use std::sync::Arc;

use kreki_auth::erasure::{AccountErasure, ErasedAccount, ErasureFuture};
use sqlx::PgPool;

/// Volunteer, positions, history (anonymised alerts, offers, assignments, check-ins).
struct Dispatch(PgPool);

impl AccountErasure for Dispatch {
    fn service(&self) -> &'static str {
        "dispatch"
    }

    fn erase<'a>(&'a self, account: &'a ErasedAccount) -> ErasureFuture<'a> {
        Box::pin(kreki_dispatch::store::erasure::erase_person(
            &self.0,
            account.id.0,
            account.pseudonym,
            &account.name,
            &account.phone,
        ))
    }
}

/// Push tokens and MQTT devices.
struct Realtime(PgPool);

impl AccountErasure for Realtime {
    fn service(&self) -> &'static str {
        "realtime"
    }

    fn erase<'a>(&'a self, account: &'a ErasedAccount) -> ErasureFuture<'a> {
        Box::pin(kreki_realtime::erasure::erase_person(&self.0, account.id.0))
    }
}

/// LMS progress; certificates revoked ("account deleted").
struct Lms(PgPool);

impl AccountErasure for Lms {
    fn service(&self) -> &'static str {
        "lms"
    }

    fn erase<'a>(&'a self, account: &'a ErasedAccount) -> ErasureFuture<'a> {
        Box::pin(kreki_lms::erasure::erase_person(
            &self.0,
            account.id.0,
            account.pseudonym,
        ))
    }
}

/// Practitioner verification (NIK, IHS number).
struct Bridge(PgPool);

impl AccountErasure for Bridge {
    fn service(&self) -> &'static str {
        "bridge"
    }

    fn erase<'a>(&'a self, account: &'a ErasedAccount) -> ErasureFuture<'a> {
        Box::pin(kreki_bridge_satusehat::erasure::erase_person(
            &self.0,
            account.id.0,
            account.pseudonym,
        ))
    }
}

/// Authorship of guidance pages.
struct Cms(PgPool);

impl AccountErasure for Cms {
    fn service(&self) -> &'static str {
        "cms"
    }

    fn erase<'a>(&'a self, account: &'a ErasedAccount) -> ErasureFuture<'a> {
        Box::pin(kreki_cms::erasure::erase_person(&self.0, account.id.0))
    }
}

/// Texts sent to the person and their STOP record (the `sms` schema holds their number).
struct Sms(PgPool);

impl AccountErasure for Sms {
    fn service(&self) -> &'static str {
        "sms"
    }

    fn erase<'a>(&'a self, account: &'a ErasedAccount) -> ErasureFuture<'a> {
        Box::pin(kreki_sms::erasure::erase_person(
            &self.0,
            account.id.0,
            &account.phone,
        ))
    }
}

/// Every service's erasure hook over `pool`, in the order they run (devices first, so nothing more
/// is pushed to the person while the rest is erased).
pub fn hooks(pool: &PgPool) -> Vec<Arc<dyn AccountErasure>> {
    vec![
        Arc::new(Realtime(pool.clone())),
        Arc::new(Dispatch(pool.clone())),
        Arc::new(Lms(pool.clone())),
        Arc::new(Bridge(pool.clone())),
        Arc::new(Cms(pool.clone())),
        Arc::new(Sms(pool.clone())),
    ]
}
