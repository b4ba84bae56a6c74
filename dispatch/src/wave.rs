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
//! The rules:
//! 0. An alert in `triage` waits for a coordinator: nothing goes out until it is released. Its
//!    triage timer (the deadline of wave 0) releases it by itself: it becomes `dispatching`
//!    (`released` by nobody) and its first wave goes out in the same plan, so triage can never
//!    leave a real emergency waiting longer than the region's auto-release time.
//! 1. Only an alert that is `dispatching`, `assigned` or `on_scene` gets waves (a cancelled,
//!    resolved or `unmatched` one never does).
//! 2. A [`Trigger::Deadline`] of a wave other than the alert's current one does nothing (a late
//!    timer of an old wave). A [`Trigger::NeedsWave`] does nothing while an offer is still live.
//! 3. An alert with all the responders it needs gets no offers.
//! 4. A wave starts with the nearest eligible volunteers within its `radius_m` who were never
//!    offered this alert: at most its `count`, at most the policy's `live_offers` pending at once,
//!    at most `max_alerted` ever. A wave that finds nobody is recorded (`wave_empty`) and the next,
//!    wider one is tried at once. Its offers expire `timeout_s` after they are made.
//! 5. Plain waves (the default policy): at a wave's deadline every pending offer expires and the
//!    next wave starts.
//! 6. With `replace_on_decline`, a decline ([`Trigger::Replace`]) offers the next nearest
//!    volunteers within the current wave's radius at once, keeping `live_offers` pending; with
//!    `replace_on_expiry`, an offer that lapses is replaced the same way, offers keep their own
//!    deadlines, and at the wave's end the next, wider wave tops the live offers up without
//!    withdrawing any. A replacing policy short of live offers because nobody is left within the
//!    radius widens at once, wave by wave, to fill them (a wider wave with nobody in it either is
//!    not started); without replacement, the next wave starts at once only when nothing is live.
//! 7. When no wave is left (or `max_alerted` is reached) and nothing is live, the alert records
//!    `waves_exhausted`; if nobody is active on it, it becomes `unmatched` (coordinators are
//!    told). With someone active it stays as it is: they are on their way, just fewer than hoped.

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
    /// When the current wave ends and the next, wider one starts (`None`: no wave yet, or
    /// recorded before waves had ends: over at its deadline).
    pub wave_ends_at: Option<DateTime<Utc>>,
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
                wave_ends_at: None,
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

    /// The wave under way, if the alert has started one its settings still know.
    fn current_wave(&self) -> Option<&WaveSpec> {
        let index = usize::try_from(self.alert.wave.checked_sub(1)?).ok()?;
        self.settings.waves.get(index)
    }

    /// How many more volunteers this alert may disturb (`max_alerted`).
    fn budget(&self) -> u32 {
        let offered = u32::try_from(self.offered.len()).unwrap_or(u32::MAX);
        self.settings.policy.max_alerted.saturating_sub(offered)
    }

    /// What to ask the matcher for before [`plan`]: the nearest `count` eligible volunteers
    /// within `radius_m` who were never offered this alert. It covers everything [`plan`] may
    /// offer (replacements within the current wave, the waves still to come: the widest radius,
    /// the largest number), because the nearest `c` within a smaller radius are the first of the
    /// nearest overall. `None` when nothing may be offered any more.
    pub fn candidate_query(&self) -> Option<CandidateQuery> {
        let policy = &self.settings.policy;
        let current = self
            .current_wave()
            .filter(|_| policy.replaces())
            .map(|spec| (spec.radius_m, policy.live_offers));
        let query = self
            .waves_left()
            .map(|(_, spec)| (spec.radius_m, spec.count.min(policy.live_offers)))
            .chain(current)
            .fold(None, |query: Option<CandidateQuery>, (radius_m, count)| {
                let known = query.unwrap_or(CandidateQuery {
                    radius_m: 0,
                    count: 0,
                });
                Some(CandidateQuery {
                    radius_m: known.radius_m.max(radius_m),
                    count: known.count.max(count),
                })
            })?;
        let count = query.count.min(self.budget());
        (count > 0).then_some(CandidateQuery { count, ..query })
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
    /// live any more (all declined, or their volunteers took other alerts). With replacement on
    /// expiry it also falls due when one of the wave's offers lapses.
    Deadline {
        /// The wave whose deadline it is.
        wave: u32,
    },
    /// Offers were declined (or their volunteers took other alerts): under a policy that replaces
    /// decliners, top the live offers up within the current wave. Under one that does not, the
    /// same as [`Trigger::NeedsWave`].
    Replace,
}

/// Why a plan changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// The alert is not dispatching any more (cancelled, resolved, unmatched).
    NotDispatching(AlertStatus),
    /// The alert waits in triage for a coordinator.
    InTriage,
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
    /// As many offers are live as the policy keeps, or nobody is left to ask: wait.
    Full,
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
    /// When that wave ends (the next starts then, or the alert is exhausted).
    pub wave_ends_at: Option<DateTime<Utc>>,
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

/// Decides the alert's next offers (see the module documentation for the rules). `candidates`
/// answers [`Snapshot::candidate_query`] (the caller asks its matcher; tests give a list); it is
/// called only when something may be offered, at most once. Its answer may come in any order,
/// and volunteers already offered are left out here too.
pub fn plan(
    snapshot: &Snapshot,
    trigger: Trigger,
    now: DateTime<Utc>,
    candidates: impl FnOnce(CandidateQuery) -> Vec<Candidate>,
) -> Plan {
    let alert = &snapshot.alert;
    let policy = snapshot.settings.policy;
    // Triage's timer is the deadline of wave 0: it releases the alert by itself.
    let auto_release =
        alert.status == AlertStatus::Triage && trigger == Trigger::Deadline { wave: 0 };
    if alert.status == AlertStatus::Triage && !auto_release {
        return Plan::Nothing(Skip::InTriage);
    }
    if !auto_release
        && !matches!(
            alert.status,
            AlertStatus::Dispatching | AlertStatus::Assigned | AlertStatus::OnScene
        )
    {
        return Plan::Nothing(Skip::NotDispatching(alert.status));
    }
    let trigger = match trigger {
        Trigger::Replace if !policy.replaces() => Trigger::NeedsWave,
        other => other,
    };
    let live: Vec<PendingOffer> = snapshot
        .pending
        .iter()
        .copied()
        .filter(|offer| offer.expires_at > now)
        .collect();
    match trigger {
        Trigger::Deadline { wave } if wave != alert.wave => {
            return Plan::Nothing(Skip::StaleDeadline {
                deadline: wave,
                current: alert.wave,
            });
        }
        Trigger::NeedsWave if !live.is_empty() => return Plan::Nothing(Skip::OfferLive),
        _ => {}
    }
    if snapshot.active >= alert.responders_needed {
        return Plan::Nothing(Skip::Covered);
    }

    // Does the next wave start now, or do offers go out (or wait) within the current one?
    let mut wave_over = alert.wave == 0
        || snapshot.current_wave().is_none()
        || match trigger {
            Trigger::NeedsWave => true,
            Trigger::Deadline { .. } => {
                !policy.replace_on_expiry || alert.wave_ends_at.is_none_or(|end| end <= now)
            }
            // A replacement after the wave's end is the next wave.
            Trigger::Replace => alert.wave_ends_at.is_some_and(|end| end <= now),
        };
    // Plain waves withdraw every pending offer when they end; otherwise only lapsed ones expire.
    let keep: Vec<PendingOffer> = if wave_over && !policy.replace_on_expiry {
        Vec::new()
    } else {
        live
    };
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
    let budget = snapshot.budget();
    let room = policy
        .live_offers
        .saturating_sub(u32::try_from(keep.len()).unwrap_or(u32::MAX))
        .min(budget);
    // Volunteers are taken nearest first; `taken` of them are already picked by this plan.
    let mut taken = 0;
    let mut pick = |radius_m: u32, most: u32| -> Vec<Candidate> {
        let picks: Vec<Candidate> = nearest[taken..]
            .iter()
            .take_while(|candidate| candidate.distance_m <= f64::from(radius_m))
            .take(most as usize)
            .map(|candidate| **candidate)
            .collect();
        taken += picks.len();
        picks
    };

    let mut changes = Changes {
        expire: snapshot
            .pending
            .iter()
            .copied()
            .filter(|offer| !keep.contains(offer))
            .collect(),
        offers: Vec::new(),
        wave: alert.wave,
        wave_ends_at: alert.wave_ends_at,
        status: None,
        timer: None,
        events: Vec::new(),
    };
    // Room left for offers after those made so far in this plan.
    let mut room = room;
    // Widening only to fill up (offers are live or were just made): a wider wave with nobody in
    // it is not started, and nothing is recorded.
    let mut filling = false;
    if let (false, Some(spec)) = (wave_over, snapshot.current_wave()) {
        let picks = pick(spec.radius_m, room);
        room -= u32::try_from(picks.len()).unwrap_or(room);
        if !picks.is_empty() {
            // Offers of a plain wave all lapse at its end; with replacement on expiry each has
            // its own deadline.
            let own = now + Duration::seconds(i64::from(spec.timeout_s));
            let expires_at = match alert.wave_ends_at {
                Some(end) if !policy.replace_on_expiry => own.min(end),
                _ => own,
            };
            changes.offers = offers(&picks, alert.wave, expires_at);
            changes.events.push(Event::ReplacementsSent {
                wave: alert.wave,
                radius_m: spec.radius_m,
                volunteers: picks.iter().map(|candidate| candidate.id).collect(),
                expires_at,
            });
        }
        // Nobody more within this radius: a replacing policy widens now to keep its offers live
        // (and with nothing live at all, any policy does).
        let short = room > 0 && (policy.replaces() || (picks.is_empty() && keep.is_empty()));
        if short && (keep.len() + changes.offers.len() < policy.live_offers as usize) {
            wave_over = true;
            filling = !keep.is_empty() || !changes.offers.is_empty();
        }
    }
    let mut started = !wave_over || !changes.offers.is_empty() || filling;
    if wave_over {
        for (wave, spec) in snapshot.waves_left() {
            if snapshot.budget() <= u32::try_from(changes.offers.len()).unwrap_or(u32::MAX) {
                break;
            }
            let most = spec.count.min(room);
            let picks = pick(spec.radius_m, most);
            if picks.is_empty() && most > 0 {
                if filling {
                    // Nobody in the wider radius either: stay where offers are.
                    break;
                }
                changes.wave = wave;
                changes.events.push(Event::WaveEmpty {
                    wave,
                    radius_m: spec.radius_m,
                });
                continue;
            }
            changes.wave = wave;
            filling = true;
            let ends_at = now + Duration::seconds(i64::from(spec.timeout_s));
            changes.wave_ends_at = Some(ends_at);
            started = true;
            if picks.is_empty() {
                // The live offers fill the policy: the wave widens the radius for replacements.
                changes.events.push(Event::WaveWidened {
                    wave,
                    radius_m: spec.radius_m,
                });
                break;
            }
            changes.offers.extend(offers(&picks, wave, ends_at));
            changes.events.push(Event::OffersSent {
                wave,
                radius_m: spec.radius_m,
                volunteers: picks.iter().map(|candidate| candidate.id).collect(),
                expires_at: ends_at,
            });
            room -= u32::try_from(picks.len()).unwrap_or(room);
            // A plain wave is one batch; a replacing policy widens on while it is short of live
            // offers because this wave ran out of volunteers in reach.
            let ran_out = picks.len() < most as usize;
            if !policy.replaces() || room == 0 || !ran_out {
                break;
            }
        }
    }
    // A plain wave's offers all lapse at its end, also those this plan made in narrower waves.
    if let (false, Some(end)) = (policy.replace_on_expiry, changes.wave_ends_at) {
        for offer in &mut changes.offers {
            offer.expires_at = offer.expires_at.min(end);
        }
        for event in &mut changes.events {
            if let Event::OffersSent { expires_at, .. }
            | Event::ReplacementsSent { expires_at, .. } = event
            {
                *expires_at = (*expires_at).min(end);
            }
        }
    }
    if !started {
        // No wave is left to start: what is live may still be accepted until it lapses.
        changes.wave = changes.wave.max(alert.wave);
        changes.wave_ends_at = None;
    }
    if !started && keep.is_empty() {
        // Every wave is spent (or every volunteer the alert may disturb was asked). The alert
        // keeps the number of the last one tried.
        changes.events.push(Event::WavesExhausted {
            waves: changes.wave,
        });
        if snapshot.active == 0 {
            changes.status = Some(AlertStatus::Unmatched);
            changes.events.push(Event::Unmatched);
        }
    }
    // The next look: the wave's end, or sooner when an offer with its own deadline lapses first
    // (or, with no wave left, when the last live offers lapse).
    let lapses = keep
        .iter()
        .map(|offer| offer.expires_at)
        .chain(changes.offers.iter().map(|offer| offer.expires_at))
        .filter(|_| policy.replace_on_expiry)
        .min();
    let due_at = match (changes.wave_ends_at, lapses) {
        (Some(end), Some(lapse)) => Some(end.min(lapse)),
        (end, lapse) => end.or(lapse),
    };
    if auto_release {
        changes.events.insert(0, Event::Released { by: None });
        changes.status.get_or_insert(AlertStatus::Dispatching);
    }
    changes.timer = due_at
        .filter(|_| !changes.unmatched())
        .map(|due_at| WaveDeadline {
            wave: changes.wave,
            due_at,
        });
    let unchanged = changes.expire.is_empty()
        && changes.offers.is_empty()
        && changes.events.is_empty()
        && changes.wave == alert.wave
        && changes.wave_ends_at == alert.wave_ends_at;
    if unchanged && trigger == Trigger::Replace {
        return Plan::Nothing(Skip::Full);
    }
    Plan::Write(changes)
}

fn offers(picks: &[Candidate], wave: u32, expires_at: DateTime<Utc>) -> Vec<NewOffer> {
    picks
        .iter()
        .map(|candidate| NewOffer {
            volunteer: candidate.id,
            distance_m: candidate.distance_m,
            wave,
            expires_at,
        })
        .collect()
}

#[cfg(test)]
mod tests;
