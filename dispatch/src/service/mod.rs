//! The dispatch service: one per process, shared as `Arc<DispatchService>`. Its methods are the
//! use cases, one file each:
//!
//! - [`alerts`]: raising an alert (durable, idempotent ingest with its first wave), reading
//!   alerts and timelines, cancelling, and the change feed other services follow.
//! - [`waves`]: the dispatcher's work: claim due work with its snapshots, plan each alert's wave
//!   ([`crate::wave::plan`]), write the batch, tell people.
//! - [`responders`]: accepting and declining offers, a coordinator's direct assignment, and
//!   responders moving their assignment along.
//! - [`volunteers`]: duty, positions, eligibility, and keeping this instance's matcher current.
//! - [`teams`]: co-responders of one alert seeing each other's positions.
//! - [`effects`]: what happens after a commit (messages, matcher updates, wake-ups).
//! - [`aeds`]: the AED registry, and the device an `aed` responder fetches on the way.
//! - [`checkins`]: aftercare check-ins (delivery when due, the volunteer's answer, coordinators'
//!   list).
//! - [`resolve`]: a coordinator resolves an alert and records its outcome.
//! - [`regions`]: regions, their coordinators, and where a coordinator may look and act.
//! - [`triage`]: releasing a triaged alert, notes on the timeline, alerts phoned in to a
//!   coordinator.
//! - [`contacts`]: a coordinator's recorded view of the phones of an alert's caller and responders.
//! - [`escalations`]: the alarms a region's coordinators must acknowledge.
//!
//! Every state change is one transaction (or one statement) that changes the alert row, so
//! accepts, waves, cancels and assignments of one alert serialise, and a wave planned from an
//! older snapshot never lands (its alert's `version` moved on). What follows a commit is collected
//! as effects and applied after it, so nobody hears about a change that did not happen.

pub mod aeds;
pub mod alerts;
pub mod checkins;
pub mod contacts;
pub mod effects;
pub mod escalations;
pub mod regions;
pub mod resolve;
pub mod responders;
pub mod teams;
pub mod triage;
pub mod volunteers;
pub mod waves;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use chrono::Duration;
use sqlx::PgPool;
use tokio::sync::mpsc;

use crate::config::DispatchConfig;
use crate::domain::{AlertId, AlertKind, KindSettings};
use crate::eligibility::CertificationSource;
use crate::error::{DispatchError, DispatchResult};
use crate::history::{HistoryQueue, Sample};
use crate::index::Index;
use crate::notify::Notifier;
use crate::positions::PositionWriter;
use crate::store;

pub use alerts::{AlertChange, AlertRequest, CHANGE_SETTLE_S, Ingest, changes_after};

/// Capacity of the dispatcher's wake-up queue; when full, the poller picks the work up instead.
const WAKE_QUEUE: usize = 4096;

/// Work for the dispatcher task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// An alert has an outbox row to process.
    Alert(AlertId),
    /// A timer fell due or was moved to now (a decline emptied a wave).
    Timers,
}

/// The receiving ends of dispatch's queues, for [`crate::worker::spawn`].
#[derive(Debug)]
pub struct Workers {
    /// Wake-ups for the dispatcher.
    pub wake: mpsc::Receiver<Wake>,
    /// Positions for the history writer.
    pub history: mpsc::Receiver<Sample>,
}

/// What dispatch talks to beyond PostgreSQL, each behind a port so tests and the binary choose.
pub struct Ports {
    /// Delivers messages (the realtime hub in the binary; a recorder in tests).
    pub notifier: Arc<dyn Notifier>,
    /// Valid certifications of volunteers (dispatch's own table until the LMS supplies them).
    pub certs: Arc<dyn CertificationSource>,
    /// Keys that seal patients' NIKs at rest ([`kreki_platform::pii`]); `Pii::dev()` in tests.
    pub pii: kreki_platform::pii::Pii,
}

/// The dispatch service. One per process; shared as `Arc<DispatchService>`.
pub struct DispatchService {
    pool: PgPool,
    config: DispatchConfig,
    index: Index,
    notifier: Arc<dyn Notifier>,
    certs: Arc<dyn CertificationSource>,
    pii: kreki_platform::pii::Pii,
    wake: mpsc::Sender<Wake>,
    history: HistoryQueue,
    /// Positions applied to the matcher, waiting to be written ([`crate::positions`]).
    positions: PositionWriter,
    /// Set once kind settings are seeded and the matcher is built.
    prepared: AtomicBool,
    /// Set while this instance's dispatcher runs: new alerts then get their first wave in their
    /// ingest statement. Without a dispatcher (tests, a process shutting down) they get an outbox
    /// row, and whichever dispatcher claims it sends the wave.
    dispatching: AtomicBool,
    /// Catching up on other instances' volunteer changes ([`crate::sync`]).
    sync: crate::sync::VolunteerSync,
    /// The kinds' settings as last read, for the first wave of a new alert (later waves read the
    /// row with their snapshot). Refreshed at every catch-up poll and by [`Self::put_kind`].
    kinds: RwLock<HashMap<AlertKind, KindSettings>>,
    /// Who responds with whom ([`teams`]).
    teams: teams::Teams,
    /// Every region, for locating alerts and scoping coordinators ([`regions`]). Refreshed when
    /// they change here and at every catch-up poll.
    regions: RwLock<crate::domain::regions::RegionMap>,
    /// Panic rate limits ([`crate::abuse`]).
    panic_limits: crate::abuse::PanicLimiter,
}

impl std::fmt::Debug for DispatchService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DispatchService").finish_non_exhaustive()
    }
}

impl DispatchService {
    /// A service over `pool`; nothing runs until [`crate::worker::spawn`] is given the returned
    /// [`Workers`] (which first calls [`Self::prepare`]).
    pub fn new(pool: PgPool, config: DispatchConfig, ports: Ports) -> (Arc<Self>, Workers) {
        let (wake, wake_rx) = mpsc::channel(WAKE_QUEUE);
        let (history, history_rx) = HistoryQueue::new(config.location_history_queue);
        let positions = PositionWriter::new(config.position_pending_max);
        let index = Index::new(Duration::seconds(
            i64::try_from(config.position_max_age_s).unwrap_or(600),
        ));
        let panic_limits = crate::abuse::PanicLimiter::new(
            config.panics_per_minute,
            config.panics_per_minute_per_address,
        );
        let service = Arc::new(Self {
            pool,
            config,
            index,
            notifier: ports.notifier,
            certs: ports.certs,
            pii: ports.pii,
            wake,
            history,
            positions,
            prepared: AtomicBool::new(false),
            dispatching: AtomicBool::new(false),
            sync: crate::sync::VolunteerSync::new(),
            kinds: RwLock::new(HashMap::new()),
            teams: teams::Teams::default(),
            regions: RwLock::new(crate::domain::regions::RegionMap::default()),
            panic_limits,
        });
        (
            service,
            Workers {
                wake: wake_rx,
                history: history_rx,
            },
        )
    }

    /// The pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The keys that seal NIKs.
    pub fn pii(&self) -> &kreki_platform::pii::Pii {
        &self.pii
    }

    /// The configuration.
    pub fn config(&self) -> &DispatchConfig {
        &self.config
    }

    /// Seeds per-kind settings from config (where missing), reads them, and rebuilds the matcher
    /// from PostGIS.
    ///
    /// # Errors
    /// Database or certification-source failures.
    pub async fn prepare(&self) -> anyhow::Result<()> {
        for kind in AlertKind::ALL {
            store::seed_kind(&self.pool, *kind, &self.config.kind_settings(*kind)).await?;
        }
        self.refresh_kinds().await?;
        self.refresh_regions().await?;
        self.rebuild_index().await?;
        self.prepared.store(true, Ordering::Release);
        Ok(())
    }

    /// True once [`Self::prepare`] succeeded: kind settings exist and the matcher holds the
    /// volunteers (`/readyz` waits for it).
    pub fn is_prepared(&self) -> bool {
        self.prepared.load(Ordering::Acquire)
    }

    /// Called by the dispatcher once it runs (and with `false` when it stops): see the
    /// `dispatching` field.
    pub(crate) fn set_dispatching(&self, running: bool) {
        self.dispatching.store(running, Ordering::Release);
    }

    /// True while this instance's dispatcher runs.
    pub fn is_dispatching(&self) -> bool {
        self.dispatching.load(Ordering::Acquire)
    }

    // ------------------------------------------------------------ kind settings

    /// Every kind's settings, as stored.
    ///
    /// # Errors
    /// Database failures.
    pub async fn kinds(&self) -> DispatchResult<Vec<(AlertKind, KindSettings)>> {
        Ok(store::kinds(&self.pool).await?)
    }

    /// Replaces one kind's settings; the next wave of every alert of that kind uses them (on
    /// other instances, a new alert's first wave within `poll_interval_ms`).
    ///
    /// # Errors
    /// 422 naming the field out of range.
    pub async fn put_kind(&self, kind: AlertKind, settings: &KindSettings) -> DispatchResult<()> {
        let errors = settings.validate("");
        if !errors.is_empty() {
            return Err(DispatchError::Validation(errors));
        }
        store::put_kind(&self.pool, kind, settings).await?;
        self.kinds
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(kind, settings.clone());
        Ok(())
    }

    /// Re-reads every kind's settings into the cache the first waves use.
    ///
    /// # Errors
    /// Database failures.
    pub(crate) async fn refresh_kinds(&self) -> DispatchResult<()> {
        let kinds: HashMap<AlertKind, KindSettings> =
            store::kinds(&self.pool).await?.into_iter().collect();
        *self.kinds.write().unwrap_or_else(PoisonError::into_inner) = kinds;
        Ok(())
    }

    /// The settings of `kind` as last read (the configured defaults for a kind without a row).
    pub(crate) fn kind_settings(&self, kind: AlertKind) -> KindSettings {
        self.kinds
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&kind)
            .cloned()
            .unwrap_or_else(|| self.config.kind_settings(kind))
    }
}
