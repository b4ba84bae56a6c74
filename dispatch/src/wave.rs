//! The wave: which volunteers an alert offers next, decided purely.
//!
//! [`plan`] takes a [`Snapshot`] of one alert (its status, last wave, responders needed, pending
//! offers, who was ever offered it, how many responders are active, its kind's settings), what
//! asked for a wave ([`Trigger`]), the matcher's [`Candidate`]s and the time, and answers a
//! [`Plan`]: nothing (and why), or the changes to write: offers to expire, offers to make with
//! their deadline, the alert's new wave and status, the timeline events and the next timer. It
//! does no I/O, so every rule below is tested with tables and properties and no database
//! (`wave/tests.rs`); the store reads a snapshot in one statement and writes a plan in one
//! (`store::waves`).
//!
//! The rules, as dispatch has always followed them:
//! 1. Only an alert that is `dispatching`, `assigned` or `on_scene` gets waves (a cancelled,
//!    resolved or `unmatched` one never does).
//! 2. A [`Trigger::Deadline`] of a wave other than the alert's current one does nothing (a late
//!    timer of an old wave). A [`Trigger::NeedsWave`] does nothing while an offer is still live.
//! 3. An alert with all the responders it needs gets no offers.
//! 4. Otherwise every pending offer expires, and the waves after the current one are tried in
//!    order: each asks the nearest `count` eligible volunteers within `radius_m` who were never
//!    offered this alert. A wave that finds nobody is recorded (`wave_empty`) and the next, wider
//!    one is tried at once. The first wave that finds someone sends its offers, all expiring
//!    `timeout_s` from now, and sets the timer for that instant.
//! 5. When no wave is left, the alert records `waves_exhausted`; if nobody is active on it, it
//!    becomes `unmatched` (coordinators are told). With someone active it stays as it is: they are
//!    on their way, just fewer than hoped.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::domain::{AlertId, AlertStatus, KindSettings, OfferId, WaveSpec};
use crate::matcher::Candidate;
use crate::timeline::Event;

/// What the policy knows of the alert itself.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertState {
    /// The alert.
    pub id: AlertId,
    /// Where it is in its life.
    pub status: AlertStatus,
    /// The last wave sent (0: none yet).
    pub wave: u32,
    /// Responders it needs (fixed when it was raised).
    pub responders_needed: u32,
}

/// An offer of the alert that nobody answered yet (it may be past its deadline).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PendingOffer {
    /// The offer.
    pub id: OfferId,
    /// Who was asked.
    pub volunteer: Uuid,
    /// The wave it belongs to.
    pub wave: u32,
    /// Its answer deadline (UTC).
    pub expires_at: DateTime<Utc>,
}

/// Everything a wave decision depends on, read at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The alert.
    pub alert: AlertState,
    /// Its offers still `pending`.
    pub pending: Vec<PendingOffer>,
    /// Every volunteer ever offered it (nobody is asked twice).
    pub offered: Vec<Uuid>,
    /// Its active assignments (`accepted`, `en_route`, `on_scene`).
    pub active: u32,
    /// Its kind's settings as they are now.
    pub settings: KindSettings,
}

impl Snapshot {
    /// The snapshot of an alert just raised: dispatching, no wave yet, nobody offered or active.
    pub fn new_alert(id: AlertId, responders_needed: u32, settings: KindSettings) -> Self {
        Self {
            alert: AlertState {
                id,
                status: AlertStatus::Dispatching,
                wave: 0,
                responders_needed,
            },
            pending: Vec::new(),
            offered: Vec::new(),
            active: 0,
            settings,
        }
    }

    /// The waves not sent yet, in order, with their numbers (1-based).
    fn waves_left(&self) -> impl Iterator<Item = (u32, &WaveSpec)> {
        (self.alert.wave + 1..).zip(self.settings.waves.iter().skip(self.alert.wave as usize))
    }

    /// What to ask the matcher for before [`plan`]: the nearest `count` eligible volunteers
    /// within `radius_m` who were never offered this alert. It covers every wave [`plan`] may
    /// send (the widest radius and the largest count still to come), because the nearest `c`
    /// within a smaller radius are the first of the nearest overall. `None` when no wave is left.
    pub fn candidate_query(&self) -> Option<CandidateQuery> {
        self.waves_left().fold(None, |query, (_, spec)| {
            let CandidateQuery { radius_m, count } = query.unwrap_or(CandidateQuery {
                radius_m: 0,
                count: 0,
            });
            Some(CandidateQuery {
                radius_m: radius_m.max(spec.radius_m),
                count: count.max(spec.count),
            })
        })
    }
}

/// The matcher query that feeds [`plan`] (see [`Snapshot::candidate_query`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CandidateQuery {
    /// Search radius, metres.
    pub radius_m: u32,
    /// Most candidates needed.
    pub count: u32,
}

/// What asked for a wave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The alert may need its next wave: it was just raised, or a responder withdrew. Nothing
    /// happens while one of its offers is still live.
    NeedsWave,
    /// The deadline of wave `wave` passed, or was brought forward because none of its offers is
    /// live any more (all declined, or their volunteers took other alerts).
    Deadline {
        /// The wave whose deadline it is.
        wave: u32,
    },
}

/// Why a plan changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// The alert is not dispatching any more (cancelled, resolved, unmatched).
    NotDispatching(AlertStatus),
    /// The deadline of an older wave than the current one.
    StaleDeadline {
        /// The deadline's wave.
        deadline: u32,
        /// The alert's current wave.
        current: u32,
    },
    /// An offer is still live: its volunteer may yet accept.
    OfferLive,
    /// The alert has the responders it needs.
    Covered,
}

/// An offer to make.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NewOffer {
    /// Who is asked.
    pub volunteer: Uuid,
    /// Their distance to the alert, metres.
    pub distance_m: f64,
    /// The wave it belongs to.
    pub wave: u32,
    /// Answer before this (UTC).
    pub expires_at: DateTime<Utc>,
}

/// When a wave's deadline falls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaveDeadline {
    /// The wave.
    pub wave: u32,
    /// When it falls due (UTC).
    pub due_at: DateTime<Utc>,
}

/// What a wave changes, to be written at once.
#[derive(Debug, Clone, PartialEq)]
pub struct Changes {
    /// Pending offers that expire now (told to their volunteers as `offer.withdrawn`, reason
    /// `expired`).
    pub expire: Vec<PendingOffer>,
    /// Offers to make, nearest volunteer first.
    pub offers: Vec<NewOffer>,
    /// The alert's wave afterwards.
    pub wave: u32,
    /// The alert's new status, when it changes.
    pub status: Option<AlertStatus>,
    /// The deadline of the wave sent, when one was sent.
    pub timer: Option<WaveDeadline>,
    /// Timeline entries, in order.
    pub events: Vec<Event>,
}

impl Changes {
    /// True when the plan makes the alert `unmatched` (coordinators must be told).
    pub fn unmatched(&self) -> bool {
        self.status == Some(AlertStatus::Unmatched)
    }
}

/// The decision for one alert.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Nothing to write; whatever asked is done.
    Nothing(Skip),
    /// Changes to write.
    Write(Changes),
}

/// Decides the alert's next wave (see the module documentation for the rules). `candidates`
/// answers [`Snapshot::candidate_query`] (the caller asks its matcher; tests give a list); it is
/// called only when a wave may go out, at most once. Its answer may come in any order, and
/// volunteers already offered are left out here too.
pub fn plan(
    snapshot: &Snapshot,
    trigger: Trigger,
    now: DateTime<Utc>,
    candidates: impl FnOnce(CandidateQuery) -> Vec<Candidate>,
) -> Plan {
    let alert = &snapshot.alert;
    if !matches!(
        alert.status,
        AlertStatus::Dispatching | AlertStatus::Assigned | AlertStatus::OnScene
    ) {
        return Plan::Nothing(Skip::NotDispatching(alert.status));
    }
    match trigger {
        Trigger::Deadline { wave } if wave != alert.wave => {
            return Plan::Nothing(Skip::StaleDeadline {
                deadline: wave,
                current: alert.wave,
            });
        }
        Trigger::NeedsWave if snapshot.pending.iter().any(|offer| offer.expires_at > now) => {
            return Plan::Nothing(Skip::OfferLive);
        }
        _ => {}
    }
    if snapshot.active >= alert.responders_needed {
        return Plan::Nothing(Skip::Covered);
    }

    let offered: HashSet<Uuid> = snapshot.offered.iter().copied().collect();
    let candidates = snapshot
        .candidate_query()
        .map(candidates)
        .unwrap_or_default();
    let mut nearest: Vec<&Candidate> = candidates
        .iter()
        .filter(|candidate| !offered.contains(&candidate.id))
        .collect();
    nearest.sort_by(|a, b| a.distance_m.total_cmp(&b.distance_m));

    let mut changes = Changes {
        expire: snapshot.pending.clone(),
        offers: Vec::new(),
        wave: alert.wave,
        status: None,
        timer: None,
        events: Vec::new(),
    };
    for (wave, spec) in snapshot.waves_left() {
        let radius_m = f64::from(spec.radius_m);
        let picks: Vec<&Candidate> = nearest
            .iter()
            .copied()
            .take_while(|candidate| candidate.distance_m <= radius_m)
            .take(spec.count as usize)
            .collect();
        if picks.is_empty() {
            changes.events.push(Event::WaveEmpty {
                wave,
                radius_m: spec.radius_m,
            });
            changes.wave = wave;
            continue;
        }
        let expires_at = now + Duration::seconds(i64::from(spec.timeout_s));
        changes.offers = picks
            .iter()
            .map(|candidate| NewOffer {
                volunteer: candidate.id,
                distance_m: candidate.distance_m,
                wave,
                expires_at,
            })
            .collect();
        changes.wave = wave;
        changes.timer = Some(WaveDeadline {
            wave,
            due_at: expires_at,
        });
        changes.events.push(Event::OffersSent {
            wave,
            radius_m: spec.radius_m,
            volunteers: picks.iter().map(|candidate| candidate.id).collect(),
            expires_at,
        });
        return Plan::Write(changes);
    }
    // Every wave is spent. The alert keeps the number of the last one tried.
    changes.wave = changes.wave.max(alert.wave);
    changes.events.push(Event::WavesExhausted {
        waves: changes.wave,
    });
    if snapshot.active == 0 {
        changes.status = Some(AlertStatus::Unmatched);
        changes.events.push(Event::Unmatched);
    }
    Plan::Write(changes)
}

#[cfg(test)]
mod tests;
