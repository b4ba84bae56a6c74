//! Keeping every instance's matcher in agreement (several `kreki` instances, issue 7).
//!
//! Each instance's matcher lives in its memory. The changes an instance handles itself (duty,
//! positions, assignments, rest, verification) reach its matcher at once; the others reach it by
//! **catching up from PostgreSQL**, which every change reaches first:
//!
//! - every write of a `dispatch.volunteers` row stamps it with the writing transaction's id
//!   (`change_xid`, a trigger; an assignment becoming active or not stamps its volunteer too);
//! - a catch-up reads, in one statement (one snapshot, one round trip; more only when thousands
//!   changed), the rows stamped at or above the `xmin` of the previous catch-up's snapshot,
//!   applies them ([`crate::index::Index::sync_row`]), and keeps this snapshot's `xmin` as the
//!   next cursor. A transaction that was still running when the
//!   previous snapshot was taken has an id at or above its `xmin`, so a slow commit is never
//!   skipped; the price is re-reading the few rows written by transactions in flight;
//! - catch-ups run every `dispatch.poll_interval_ms` (1 s by default), early when another instance
//!   announces changes (`NOTIFY kreki_dispatch_volunteers`, sent by an instance at most every
//!   [`ANNOUNCE_INTERVAL`] while it has changed volunteers: a tracker fleet sending tens of
//!   thousands of positions a second costs a few notifications a second, not one per row), and
//!   **before every wave**, so a wave sees every volunteer change committed before it started,
//!   whichever instance made it.
//!
//! Staleness bound: at wave time, none for committed changes (the wave catches up first; if that
//! read fails, the wave uses the matcher as it is, at most one poll interval plus a query behind
//! while the database answers). Between waves (what `nearest` would answer at an arbitrary
//! moment): about [`ANNOUNCE_INTERVAL`] plus one query after a commit while notifications flow,
//! and at most `poll_interval_ms` plus one query without them. Positions are committed by the
//! write-behind flusher ([`crate::positions`]) up to `position_flush_interval_ms` after the instance
//! that took them applied them, which adds to both bounds for positions. Nothing here needs Redis.
//!
//! Load: one indexed range read per catch-up returning the volunteers changed since the last one
//! (each at most once per catch-up, in pages of [`PAGE`]); certifications are read only for
//! volunteers this instance did not know yet (they change through the LMS change feed). A
//! transaction held open for long anywhere in the cluster holds every snapshot's `xmin` back, so
//! each catch-up re-reads the volunteers changed since it began: keep
//! `idle_in_transaction_session_timeout` set.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::service::DispatchService;
use crate::store::VOLUNTEER_CHANGES_CHANNEL;

/// Rows read per page of a catch-up.
pub const PAGE: i64 = 5000;

/// Shortest time between two announcements of this instance's changes.
pub const ANNOUNCE_INTERVAL: Duration = Duration::from_millis(200);

/// Longest wait between attempts to (re)connect the listener.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The catch-up cursor and this instance's pending announcement.
#[derive(Debug)]
pub struct VolunteerSync {
    /// Names this instance in announcements (so it ignores its own).
    pub(crate) instance: Uuid,
    /// Volunteers changed here since the last announcement.
    pub(crate) dirty: AtomicBool,
    pub(crate) state: tokio::sync::Mutex<Cursor>,
}

/// Where the next catch-up starts.
#[derive(Debug, Default)]
pub(crate) struct Cursor {
    /// The `xmin` of the snapshot the matcher is known to be current with; `None` before the
    /// first rebuild.
    pub(crate) xmin: Option<u64>,
    /// When the last completed catch-up started (its snapshot is younger).
    pub(crate) started: Option<Instant>,
}

impl VolunteerSync {
    pub(crate) fn new() -> Self {
        Self {
            instance: Uuid::new_v4(),
            dirty: AtomicBool::new(false),
            state: tokio::sync::Mutex::new(Cursor::default()),
        }
    }

    /// Notes that this instance changed volunteers; [`run`] announces it.
    pub(crate) fn changed(&self) {
        self.dirty.store(true, Ordering::Relaxed);
    }
}

/// Catches up every `dispatch.poll_interval_ms` and whenever another instance announces changes,
/// and announces this instance's own, until `shutdown`. Reconnects the listener with capped
/// back-off; while it is away the poll alone keeps the bound.
pub async fn run(service: Arc<DispatchService>, shutdown: CancellationToken) {
    let announcer = tokio::spawn(announce(service.clone(), shutdown.clone()));
    let poll = Duration::from_millis(service.config().poll_interval_ms);
    let mut backoff = Duration::from_millis(250);
    let mut listener: Option<PgListener> = None;
    let mut next_connect = Instant::now();
    let mut tick = tokio::time::interval(poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !shutdown.is_cancelled() {
        if listener.is_none() && Instant::now() >= next_connect {
            match subscribe(&service).await {
                Ok(connected) => {
                    listener = Some(connected);
                    backoff = Duration::from_millis(250);
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for volunteer changes; polling only");
                    next_connect = Instant::now() + backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        let heard = tokio::select! {
            () = shutdown.cancelled() => break,
            _ = tick.tick() => None,
            received = recv(&mut listener) => Some(received),
        };
        let woken = match heard {
            None => {
                // The poll also refreshes the kinds' settings new alerts' first waves use.
                if service.is_prepared()
                    && let Err(error) = service.refresh_kinds().await
                {
                    tracing::warn!(%error, "kind settings not refreshed; retrying at the next poll");
                }
                // And the regions (another instance may have added one or changed coordinators).
                if service.is_prepared()
                    && let Err(error) = service.refresh_regions().await
                {
                    tracing::warn!(%error, "regions not refreshed; retrying at the next poll");
                }
                true
            }
            Some(Ok(Some(from))) => from != service.sync_instance(),
            // Reconnected inside sqlx: announcements may have been missed; catch up anyway.
            Some(Ok(None)) => true,
            Some(Err(error)) => {
                tracing::warn!(%error, "lost the volunteer change listener; reconnecting");
                listener = None;
                next_connect = Instant::now() + backoff;
                true
            }
        };
        if woken
            && service.is_prepared()
            && let Err(error) = service.catch_up_volunteers().await
        {
            tracing::warn!(%error, "volunteer catch-up failed; retrying at the next poll");
        }
    }
    announcer.abort();
}

/// The next announcement's sender (`None`: the connection was re-established), or never while
/// there is no listener.
async fn recv(listener: &mut Option<PgListener>) -> Result<Option<Uuid>, sqlx::Error> {
    let Some(connection) = listener else {
        return std::future::pending().await;
    };
    loop {
        match connection.try_recv().await? {
            None => return Ok(None),
            Some(notification) => match notification.payload().parse::<Uuid>() {
                Ok(from) => return Ok(Some(from)),
                Err(_) => tracing::warn!(
                    payload = notification.payload(),
                    "unexpected volunteer change payload"
                ),
            },
        }
    }
}

async fn subscribe(service: &DispatchService) -> Result<PgListener, sqlx::Error> {
    let mut connection = PgListener::connect_with(service.pool()).await?;
    connection.listen(VOLUNTEER_CHANGES_CHANNEL).await?;
    Ok(connection)
}

/// Announces this instance's volunteer changes, at most every [`ANNOUNCE_INTERVAL`].
async fn announce(service: Arc<DispatchService>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(ANNOUNCE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if service.take_volunteer_changes()
            && let Err(error) =
                crate::store::announce_volunteer_changes(service.pool(), service.sync_instance())
                    .await
        {
            // The others' poll picks the changes up anyway.
            tracing::debug!(%error, "volunteer changes not announced");
        }
    }
}
