//! Dispatch's handle on the [`Matcher`]: one matcher behind a `RwLock`, fed with what the service
//! knows (rows from PostgreSQL, certification codes), asked in the service's own terms.
//!
//! Guards are never held across an `.await`: each method takes the lock, does microseconds of work
//! and releases it.
//!
//! A rebuild reads PostgreSQL while requests keep changing volunteers. So that a change made during
//! the read is not lost when the fresh matcher replaces the old one, the index records which
//! volunteers changed while a rebuild runs; the service re-reads those from PostgreSQL (which every
//! change reaches before the index does) right after the swap.
//!
//! A catch-up ([`crate::sync`]) has the same race on a smaller scale: the rows it reads may have
//! been read before a change this instance then applied (an accept making a volunteer busy
//! commits, its effect reaches the index, and only then does the catch-up apply the older row).
//! So every availability change made here is stamped ([`Index::read_mark`] tells where the
//! stamps are when a read begins), [`Index::sync_row`] does not let a row read before such a
//! change undo it, and the caller re-reads that volunteer instead.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::geo::LatLng;
use crate::matcher::{Candidate, CertSet, MatchQuery, Matcher, MatcherConfig, VolunteerState};
use crate::store::VolunteerRow;

/// Builds matcher state from a stored volunteer row and their valid certification codes.
pub struct VolunteerFacts;

impl VolunteerFacts {
    /// The matcher's state of `row`; `None` while the volunteer has no position (they join the
    /// matcher with their first location update).
    pub fn from_row(row: &VolunteerRow, codes: &[String]) -> Option<VolunteerState> {
        let position = LatLng::new(row.lat?, row.lng?).ok()?;
        Some(VolunteerState {
            id: row.user_id,
            position,
            position_at: row.location_at?,
            on_duty: row.on_duty,
            busy: row.busy,
            rest_until: row.rest_until,
            certifications: cert_set(codes),
            verified_practitioner: row.practitioner_verified,
        })
    }
}

/// The volunteer's codes as a set; codes the matcher cannot hold are logged and left out (the
/// volunteer then does not qualify for kinds needing them, which is the safe side).
fn cert_set(codes: &[String]) -> CertSet {
    codes.iter().fold(CertSet::EMPTY, |set, code| {
        match CertSet::from_codes(std::slice::from_ref(code)) {
            Ok(one) => set.union(one),
            Err(error) => {
                tracing::warn!(%error, "certification code left out of the matcher");
                set
            }
        }
    })
}

/// What [`Index::advance_position`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advance {
    /// The volunteer moved.
    Moved,
    /// The matcher holds a newer position; nothing changed.
    Older,
    /// The matcher does not know the volunteer (off duty, or not located yet).
    Unknown,
}

/// What [`Index::sync_row`] did with a row read back from PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synced {
    /// Applied (or nothing to apply).
    Applied,
    /// On duty with a position but unknown here: load them with their certifications and
    /// [`Index::upsert`] them.
    Unknown,
    /// Not applied: this instance changed the volunteer's availability after the row was read.
    /// Re-read the row and apply it with a fresh mark.
    ChangedHere,
}

/// The locked matcher.
#[derive(Debug)]
pub struct Index {
    matcher: RwLock<Matcher>,
    config: MatcherConfig,
    /// While a rebuild runs: the volunteers changed since it started.
    touched: Mutex<Option<HashSet<Uuid>>>,
    /// The last stamp given to an availability change made here.
    stamp: AtomicU64,
    /// Each volunteer's last availability change made here, by stamp (kept until no read that
    /// began before it can still be applied: [`Index::forget_marks`]).
    changed_here: Mutex<HashMap<Uuid, u64>>,
}

impl Index {
    /// An empty index whose positions go stale after `position_max_age`.
    pub fn new(position_max_age: Duration) -> Self {
        let config = MatcherConfig {
            position_max_age: position_max_age
                .to_std()
                .unwrap_or(crate::matcher::DEFAULT_POSITION_MAX_AGE),
            ..MatcherConfig::default()
        };
        Self {
            matcher: RwLock::new(Matcher::new(config)),
            config,
            touched: Mutex::new(None),
            stamp: AtomicU64::new(0),
            changed_here: Mutex::new(HashMap::new()),
        }
    }

    /// Where the stamps of changes made here are now: take it before reading rows to apply with
    /// [`Self::sync_row`].
    pub fn read_mark(&self) -> u64 {
        self.stamp.load(Ordering::SeqCst)
    }

    /// Forgets the stamps at or below `mark`: no read that began at or before `mark` will be
    /// applied any more (the caller's catch-ups run one at a time and are done with it).
    pub fn forget_marks(&self, mark: u64) {
        self.changed_here
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, stamp| *stamp > mark);
    }

    /// Stamps an availability change of `id` made here.
    fn stamp(&self, id: Uuid) {
        let stamp = self.stamp.fetch_add(1, Ordering::SeqCst) + 1;
        self.changed_here
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, stamp);
    }

    /// True when `id`'s availability changed here after `mark`.
    fn changed_after(&self, id: Uuid, mark: u64) -> bool {
        self.changed_here
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .is_some_and(|stamp| *stamp > mark)
    }

    /// Changes volunteer `id` (recording it when a rebuild runs). Lock order: matcher, then
    /// `touched`, as in [`Self::finish_rebuild`].
    fn write<R>(&self, id: Uuid, change: impl FnOnce(&mut Matcher) -> R) -> R {
        let mut guard = self.matcher.write().unwrap_or_else(PoisonError::into_inner);
        let result = change(&mut guard);
        if let Some(touched) = self
            .touched
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            touched.insert(id);
        }
        result
    }

    /// Starts recording changed volunteers; call before reading the rebuild's snapshot.
    pub fn begin_rebuild(&self) {
        *self.touched.lock().unwrap_or_else(PoisonError::into_inner) = Some(HashSet::new());
    }

    /// Replaces the whole contents with `states` (read after [`Self::begin_rebuild`]) and returns
    /// the volunteers changed meanwhile, whom the caller must re-read and [`Self::upsert`] or
    /// [`Self::remove`].
    pub fn finish_rebuild(&self, states: Vec<VolunteerState>) -> HashSet<Uuid> {
        let mut fresh = Matcher::new(self.config);
        for state in states {
            fresh.upsert(state);
        }
        let mut guard = self.matcher.write().unwrap_or_else(PoisonError::into_inner);
        *guard = fresh;
        self.touched
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .unwrap_or_default()
    }

    /// Adds or replaces one volunteer.
    pub fn upsert(&self, state: VolunteerState) {
        self.stamp(state.id);
        self.write(state.id, |matcher| matcher.upsert(state));
    }

    /// Forgets a volunteer (off duty).
    pub fn remove(&self, id: Uuid) {
        self.stamp(id);
        self.write(id, |matcher| matcher.remove(id));
    }

    /// Moves a known volunteer; false when the matcher does not know them.
    pub fn update_position(&self, id: Uuid, at: LatLng, recorded_at: DateTime<Utc>) -> bool {
        self.write(id, |matcher| matcher.update_position(id, at, recorded_at))
    }

    /// Moves a known volunteer unless the matcher holds a position recorded after `recorded_at`
    /// (checked and applied under one lock, so concurrent positions never move them back).
    pub fn advance_position(&self, id: Uuid, at: LatLng, recorded_at: DateTime<Utc>) -> Advance {
        self.write(id, |matcher| {
            if !matcher.contains(id) {
                Advance::Unknown
            } else if matcher
                .position_at(id)
                .is_some_and(|known| known > recorded_at)
            {
                Advance::Older
            } else if matcher.update_position(id, at, recorded_at) {
                Advance::Moved
            } else {
                Advance::Unknown
            }
        })
    }

    /// Marks a volunteer busy (active assignment) or free.
    pub fn set_busy(&self, id: Uuid, busy: bool) {
        self.stamp(id);
        self.write(id, |matcher| matcher.set_busy(id, busy));
    }

    /// Starts a rest period.
    pub fn set_rest_until(&self, id: Uuid, until: DateTime<Utc>) {
        self.stamp(id);
        self.write(id, |matcher| matcher.set_rest_until(id, Some(until)));
    }

    /// Replaces a volunteer's certifications.
    pub fn set_certifications(&self, id: Uuid, codes: &[String]) {
        let set = cert_set(codes);
        self.write(id, |matcher| matcher.set_certifications(id, set));
    }

    /// Sets practitioner verification.
    pub fn set_verified_practitioner(&self, id: Uuid, verified: bool) {
        self.stamp(id);
        self.write(id, |matcher| {
            matcher.set_verified_practitioner(id, verified)
        });
    }

    /// Applies a volunteer row read back from PostgreSQL (another instance may have written it)
    /// after `read_mark` ([`Self::read_mark`], taken before the read): off duty leaves the matcher;
    /// a known volunteer takes the row's availability and the newer of the two positions (a
    /// position this instance applied after the row was read is kept); certifications are left as
    /// they are (they change through their own feed). A row read before an availability change
    /// made here is not applied ([`Synced::ChangedHere`]).
    pub fn sync_row(&self, row: &VolunteerRow, read_mark: u64) -> Synced {
        let id = row.user_id;
        if self.changed_after(id, read_mark) {
            return Synced::ChangedHere;
        }
        let unknown = self.write(id, |matcher| {
            if !row.on_duty {
                matcher.remove(id);
                return false;
            }
            let position = match (row.lat, row.lng, row.location_at) {
                (Some(lat), Some(lng), Some(at)) => LatLng::new(lat, lng).ok().map(|p| (p, at)),
                _ => None,
            };
            if !matcher.contains(id) {
                return position.is_some();
            }
            if let Some((position, at)) = position
                && matcher.position_at(id).is_none_or(|known| known <= at)
            {
                matcher.update_position(id, position, at);
            }
            matcher.set_busy(id, row.busy);
            matcher.set_rest_until(id, row.rest_until);
            matcher.set_verified_practitioner(id, row.practitioner_verified);
            false
        });
        if unknown {
            Synced::Unknown
        } else {
            Synced::Applied
        }
    }

    /// When `id`'s position was recorded (`None`: unknown here).
    pub fn position_at(&self, id: Uuid) -> Option<DateTime<Utc>> {
        self.matcher
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .position_at(id)
    }

    /// Where the matcher last saw `id`.
    pub fn position(&self, id: Uuid) -> Option<LatLng> {
        self.matcher
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .position(id)
    }

    /// True when the matcher knows `id` and they hold an assignment.
    pub fn is_busy(&self, id: Uuid) -> bool {
        self.matcher
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_busy(id)
    }

    /// True when the matcher knows `id`.
    pub fn contains(&self, id: Uuid) -> bool {
        self.matcher
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(id)
    }

    /// The nearest `count` eligible volunteers within `radius_m` of `at`, nearest first, with
    /// their distances in metres, leaving out `excluded`. A required code the matcher cannot hold
    /// means nobody qualifies.
    pub fn nearest(
        &self,
        at: LatLng,
        radius_m: f64,
        count: usize,
        required: &[String],
        requires_verified: bool,
        excluded: &HashSet<Uuid>,
    ) -> Vec<Candidate> {
        let required = match CertSet::from_codes(required) {
            Ok(set) => set,
            Err(error) => {
                tracing::error!(%error, "required certification cannot be matched; nobody qualifies");
                return Vec::new();
            }
        };
        let query = MatchQuery {
            point: at,
            radius_m,
            limit: count,
            required: &required,
            requires_verified,
            exclude: excluded,
            now: Utc::now(),
        };
        self.matcher
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .nearest(&query)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: Uuid, busy: bool) -> VolunteerRow {
        let now = Utc::now();
        VolunteerRow {
            user_id: id,
            name: "Relawan".into(),
            on_duty: true,
            lat: Some(-6.1754),
            lng: Some(106.8272),
            location_at: Some(now),
            practitioner_verified: false,
            rest_until: None,
            busy,
            updated_at: now,
        }
    }

    /// The race a catch-up has with this instance's own changes: the row was read (free), then
    /// an accept committed and made the volunteer busy here, then the catch-up applies the row.
    #[test]
    fn a_row_read_before_a_change_made_here_does_not_undo_it() {
        let index = Index::new(Duration::minutes(10));
        let id = Uuid::new_v4();
        let state = VolunteerFacts::from_row(&row(id, false), &[]).expect("located");
        index.upsert(state);

        let mark = index.read_mark();
        let stale = row(id, false);
        index.set_busy(id, true);
        assert_eq!(index.sync_row(&stale, mark), Synced::ChangedHere);
        assert!(index.is_busy(id), "the accept's effect stands");

        // Read again after the change: applied, whatever it says (here another instance freed
        // the volunteer after the accept).
        let mark = index.read_mark();
        assert_eq!(index.sync_row(&row(id, false), mark), Synced::Applied);
        assert!(!index.is_busy(id));
        index.forget_marks(mark);
        assert!(index.changed_here.lock().expect("unpoisoned").is_empty());
    }

    #[test]
    fn a_row_of_someone_unknown_here_asks_to_be_loaded() {
        let index = Index::new(Duration::minutes(10));
        let id = Uuid::new_v4();
        assert_eq!(
            index.sync_row(&row(id, false), index.read_mark()),
            Synced::Unknown
        );
    }
}
