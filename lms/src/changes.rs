//! Eligibility changes across instances. The [`CertificationListener`] given to
//! [`crate::build`] hears only the changes made by this process; with several instances (or the
//! LMS and dispatch in different processes, `kreki serve --services`), each dispatch instance must
//! also hear the others'. Every change is therefore also announced with PostgreSQL `NOTIFY` on
//! [`CHANGES_CHANNEL`] inside its transaction, and [`forward`] relays those announcements to a
//! local listener, whichever instance made them.
//!
//! Wire one or the other per listener: in a process running dispatch, [`forward`] covers every
//! instance including this one; calling both only repeats calls, which listeners must tolerate.

use std::sync::Arc;
use std::time::Duration;

use kreki_platform::shutdown::CancellationToken;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use uuid::Uuid;

use crate::ports::CertificationListener;
pub use crate::store::CHANGES_CHANNEL;

/// Longest wait between attempts to (re)connect.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Relays every announced change to `listener` until `shutdown`. Calls
/// [`CertificationListener::resync`] each time it starts listening (the first time too, which
/// closes the gap between a consumer's initial load and the subscription) and after every
/// reconnect, because announcements made while disconnected are lost. Reconnects with capped
/// backoff while the database is away.
pub async fn forward(
    pool: PgPool,
    listener: Arc<dyn CertificationListener>,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_millis(250);
    while !shutdown.is_cancelled() {
        let mut connection = match subscribe(&pool).await {
            Ok(connection) => connection,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for certification changes; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        listener.resync();
        backoff = Duration::from_millis(250);
        loop {
            let next = tokio::select! {
                () = shutdown.cancelled() => return,
                next = connection.try_recv() => next,
            };
            match next {
                Ok(Some(notification)) => match notification.payload().parse::<Uuid>() {
                    Ok(user) => listener.changed(user),
                    Err(_) => tracing::warn!(
                        payload = notification.payload(),
                        "unexpected certification change payload"
                    ),
                },
                // The connection was lost and has been re-established: some may be missed.
                Ok(None) => listener.resync(),
                Err(error) => {
                    tracing::warn!(%error, "lost the certification change listener; reconnecting");
                    break;
                }
            }
        }
    }
}

async fn subscribe(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut connection = PgListener::connect_with(pool).await?;
    connection.listen(CHANGES_CHANNEL).await?;
    Ok(connection)
}
