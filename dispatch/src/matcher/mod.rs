//! The in-memory matcher: which eligible volunteers are nearest to an alert, in microseconds.
//!
//! Volunteers are kept in buckets keyed by the H3 cell (`h3o`) of their last position. A query walks
//! the rings of cells around the alert's cell, nearest ring first, skips cells that cannot hold a
//! point within the current cut-off, checks eligibility and the distance of each volunteer in the
//! others, and stops as soon as no further ring can improve the answer:
//!
//! - *Ring bound.* Getting from the alert's cell to a cell at grid distance `k` crosses `k - 1`
//!   whole rings of cells, each at least about one edge long, so every point of ring `k` is at
//!   least `(k - 1) × step` away, with `step` three quarters of the shortest edge of the alert's
//!   cell (the slack covers H3's distortion over the distances searched).
//! - *Cell bound.* Every bucket stores its cell's centre and the largest centre-to-vertex distance
//!   (plus a margin); a cell whose centre is farther than cut-off + that radius is skipped.
//! - *Cell summary.* Every bucket counts its volunteers on duty and not busy and knows which
//!   certifications they hold; a cell with nobody available or lacking a required certification
//!   is skipped without reading its volunteers.
//! - *Cut-off.* The radius, then, once `limit` candidates are held, the distance of the worst one.
//!
//! Distances are measured with [`LocalMetric`](crate::geo::LocalMetric), the WGS84 ellipsoid flattened around the alert:
//! within half a millimetre up to 5 km of the geodesic distance PostGIS `geography` computes (see
//! [`crate::geo`]), so the matcher and the database agree on who is within a radius and in which
//! order (`tests/matcher_oracle.rs` checks it against PostGIS).
//!
//! Location updates are the most frequent change: one that stays within a disc surely inside the
//! volunteer's cell (most GPS updates do) costs two hash lookups and no `h3o` call.
//!
//! Eligibility (see [`MatchQuery`]): on duty, position fresher than
//! [`MatcherConfig::position_max_age`], not busy, not resting, holding every required
//! certification, verified when required, not excluded, within the radius.
//!
//! Files: this one holds the index (entries in H3-cell buckets) and its changes; `search.rs` the
//! query; `cell.rs` a cell's geometry and the ring-bound step; `cert.rs` certification sets.
//!
//! # Concurrency
//! A [`Matcher`] is a plain value with no lock inside: `&mut self` to change, `&self` to query.
//! The dispatch service owns one behind a `std::sync::RwLock` (or `parking_lot::RwLock`), e.g.
//! `Arc<RwLock<Matcher>>`: location and duty updates take the write lock for about a microsecond,
//! queries take the read lock and run in parallel. Never hold the guard across an `.await`.
//!
//! ```
//! use std::collections::HashSet;
//! use std::sync::{Arc, RwLock};
//!
//! use chrono::Utc;
//! use kreki_dispatch::geo::LatLng;
//! use kreki_dispatch::matcher::{CertSet, MatchQuery, Matcher, MatcherConfig, VolunteerState};
//! use uuid::Uuid;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let matcher = Arc::new(RwLock::new(Matcher::new(MatcherConfig::default())));
//! let volunteer = Uuid::new_v4();
//! let bls = CertSet::from_codes(&["bls"])?;
//! matcher.write().map_err(|_| "poisoned")?.upsert(VolunteerState {
//!     id: volunteer,
//!     position: LatLng::new(-6.1760, 106.8270)?,
//!     position_at: Utc::now(),
//!     on_duty: true,
//!     busy: false,
//!     rest_until: None,
//!     certifications: bls,
//!     verified_practitioner: false,
//! });
//! let already_offered = HashSet::new();
//! let candidates = matcher.read().map_err(|_| "poisoned")?.nearest(&MatchQuery {
//!     point: LatLng::new(-6.1754, 106.8272)?,
//!     radius_m: 1_000.0,
//!     limit: 3,
//!     required: &bls,
//!     requires_verified: false,
//!     exclude: &already_offered,
//!     now: Utc::now(),
//! });
//! assert_eq!(candidates.len(), 1);
//! assert_eq!(candidates[0].id, volunteer);
//! assert!((60.0..75.0).contains(&candidates[0].distance_m));
//! # Ok(())
//! # }
//! ```

mod cell;
mod cert;
mod search;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use h3o::{CellIndex, Resolution};
use uuid::Uuid;

use self::cell::CellGeometry;
use crate::geo::LatLng;

pub use cert::{CertError, CertSet, MAX_CERT_CODE_LEN, MAX_CERT_CODES};

/// Largest radius a query searches, in metres; larger radii (and infinity) are treated as this.
/// Dispatch waves reach 5 km; this bounds the work a wrong value can cause.
pub const MAX_RADIUS_M: f64 = 50_000.0;

/// The H3 resolution used when none is configured (cells of about 0.1 km², edges of about 200 m):
/// see BENCHMARKS.md for the measurement that chose it.
pub const DEFAULT_H3_RESOLUTION: u8 = 9;

/// How old a position may be by default before its volunteer stops being offered alerts.
pub const DEFAULT_POSITION_MAX_AGE: Duration = Duration::from_secs(10 * 60);

/// How the matcher indexes and what it calls fresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatcherConfig {
    /// H3 resolution of the buckets, 0..=15 (default [`DEFAULT_H3_RESOLUTION`]). Finer cells mean
    /// fewer points checked per query but more cells walked; 8 to 10 suit 1 to 5 km queries. An
    /// invalid value falls back to the default (see [`MatcherConfig::validate`]).
    pub h3_resolution: u8,
    /// A position older than this at query time makes its volunteer ineligible (default 10 min).
    pub position_max_age: Duration,
}

impl Default for MatcherConfig {
    fn default() -> Self {
        Self {
            h3_resolution: DEFAULT_H3_RESOLUTION,
            position_max_age: DEFAULT_POSITION_MAX_AGE,
        }
    }
}

impl MatcherConfig {
    /// Problems with this configuration, each naming its key under `prefix` (e.g. `dispatch`), for
    /// the start-up config check. Empty when valid.
    pub fn validate(&self, prefix: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if Resolution::try_from(self.h3_resolution).is_err() {
            problems.push(format!(
                "{prefix}.h3_resolution: must be an H3 resolution from 0 to 15, got {}",
                self.h3_resolution
            ));
        }
        if self.position_max_age.is_zero() {
            problems.push(format!(
                "{prefix}.position_max_age: must be more than zero, or no volunteer is ever eligible"
            ));
        }
        problems
    }
}

/// Everything the matcher needs to know about one volunteer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VolunteerState {
    /// The volunteer's user id.
    pub id: Uuid,
    /// Last known position.
    pub position: LatLng,
    /// When that position was taken; it is stale after [`MatcherConfig::position_max_age`].
    pub position_at: DateTime<Utc>,
    /// On duty: willing to receive offers.
    pub on_duty: bool,
    /// Holding an active assignment (or an offer the caller wants to keep exclusive).
    pub busy: bool,
    /// Resting until this instant (exclusive): no offers while `now < rest_until`.
    pub rest_until: Option<DateTime<Utc>>,
    /// Valid certifications held.
    pub certifications: CertSet,
    /// Verified as a health practitioner (e.g. by SATUSEHAT).
    pub verified_practitioner: bool,
}

/// One question to the matcher: the nearest `limit` eligible volunteers within `radius_m` of
/// `point`.
#[derive(Debug, Clone, Copy)]
pub struct MatchQuery<'a> {
    /// Where the alert is.
    pub point: LatLng,
    /// Search radius in metres (inclusive). NaN or negative finds nobody; above [`MAX_RADIUS_M`]
    /// it is treated as [`MAX_RADIUS_M`]. When fewer than `limit` eligible volunteers are near,
    /// the whole radius is walked, so the cost grows with (radius / cell edge)²: about 20 µs for
    /// 5 km at resolution 9 with sparse eligibility (BENCHMARKS.md).
    pub radius_m: f64,
    /// Most candidates to return.
    pub limit: usize,
    /// Certifications a candidate must all hold ([`CertSet::EMPTY`] for none).
    pub required: &'a CertSet,
    /// Only verified practitioners.
    pub requires_verified: bool,
    /// Volunteers never to return (already offered, declined).
    pub exclude: &'a HashSet<Uuid>,
    /// The instant eligibility is judged at (freshness and rest periods).
    pub now: DateTime<Utc>,
}

/// A volunteer the matcher proposes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// The volunteer's user id.
    pub id: Uuid,
    /// Ellipsoidal distance from the query point, metres: within 0.5 mm of PostGIS
    /// `ST_Distance` on `geography` up to 5 km (see [`LocalMetric`](crate::geo::LocalMetric) for larger distances).
    pub distance_m: f64,
}

/// The hasher of the matcher's maps. Keys are H3 cells and server-made UUIDs, not attacker-chosen
/// strings; foldhash is several times faster than SipHash and still seeded per map.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

const ON_DUTY: u8 = 1;
const BUSY: u8 = 2;
const VERIFIED: u8 = 4;

/// Microseconds since the Unix epoch (PostgreSQL's own precision) for "never".
const NO_REST: i64 = i64::MIN;

/// One volunteer as stored in its bucket: everything a query checks, in one cache line.
#[derive(Debug, Clone, Copy)]
struct Entry {
    lat_rad: f64,
    lng_rad: f64,
    certs: CertSet,
    position_at_us: i64,
    rest_until_us: i64,
    id: Uuid,
    flags: u8,
}

impl Entry {
    fn from_state(state: &VolunteerState) -> Self {
        let mut flags = 0;
        if state.on_duty {
            flags |= ON_DUTY;
        }
        if state.busy {
            flags |= BUSY;
        }
        if state.verified_practitioner {
            flags |= VERIFIED;
        }
        Self {
            lat_rad: state.position.lat().to_radians(),
            lng_rad: state.position.lng().to_radians(),
            certs: state.certifications,
            position_at_us: state.position_at.timestamp_micros(),
            rest_until_us: state.rest_until.map_or(NO_REST, |t| t.timestamp_micros()),
            id: state.id,
            flags,
        }
    }

    /// On duty and not busy: counted in [`Bucket::available`].
    #[inline]
    fn available(&self) -> bool {
        self.flags & (ON_DUTY | BUSY) == ON_DUTY
    }

    fn set_flag(&mut self, flag: u8, on: bool) {
        if on {
            self.flags |= flag;
        } else {
            self.flags &= !flag;
        }
    }
}

/// The volunteers of one H3 cell, with the cell's geometry and a summary for pruning.
#[derive(Debug)]
struct Bucket {
    center_lat_rad: f64,
    center_lng_rad: f64,
    /// Largest distance from the centre to a point of the cell, metres, with margin.
    radius_m: f64,
    /// The ring bound's step for queries starting in this cell, metres (see [`ring_step_m`]).
    step_m: f64,
    /// Square of the radius of a disc around the centre surely inside the cell, m² (see
    /// [`Bucket::surely_contains`]).
    inner_m2: f64,
    /// Metres per radian of latitude and of longitude at the centre.
    center_scale_m: (f64, f64),
    /// How many entries are on duty and not busy: a cell without any is skipped.
    available: u32,
    /// Every certification some entry holds: a cell lacking a required one is skipped.
    certs_any: CertSet,
    /// `[lat_rad, lng_rad]` of each entry, in the same order: a query first measures distances,
    /// which rules out most entries, over this dense array, and reads the entry only for the few
    /// that are close enough.
    coords: Vec<[f64; 2]>,
    entries: Vec<Entry>,
}

impl Bucket {
    fn new(cell: CellIndex) -> Self {
        let geometry = CellGeometry::of(cell);
        Self {
            center_lat_rad: geometry.center_lat_rad,
            center_lng_rad: geometry.center_lng_rad,
            radius_m: geometry.radius_m,
            step_m: geometry.step_m,
            inner_m2: geometry.inner_m * geometry.inner_m,
            center_scale_m: geometry.center_scale_m,
            available: 0,
            certs_any: CertSet::EMPTY,
            coords: Vec::new(),
            entries: Vec::new(),
        }
    }

    /// True when the point is certainly in this bucket's cell, so a location update can skip
    /// `h3o`'s point-to-cell conversion (a few hundred nanoseconds). False means "maybe not".
    #[inline]
    fn surely_contains(&self, lat_rad: f64, lng_rad: f64) -> bool {
        let north_m = (lat_rad - self.center_lat_rad) * self.center_scale_m.0;
        let east_m = (lng_rad - self.center_lng_rad) * self.center_scale_m.1;
        north_m * north_m + east_m * east_m < self.inner_m2
    }

    fn push(&mut self, entry: Entry) -> u32 {
        self.available += u32::from(entry.available());
        self.certs_any = self.certs_any.union(entry.certs);
        let index = self.entries.len() as u32;
        self.coords.push([entry.lat_rad, entry.lng_rad]);
        self.entries.push(entry);
        index
    }

    fn swap_remove(&mut self, index: usize) -> Entry {
        self.coords.swap_remove(index);
        let entry = self.entries.swap_remove(index);
        self.available -= u32::from(entry.available());
        if !entry.certs.is_empty() {
            self.recount_certs();
        }
        entry
    }

    fn recount_certs(&mut self) {
        self.certs_any = self
            .entries
            .iter()
            .fold(CertSet::EMPTY, |all, e| all.union(e.certs));
    }
}

/// Where a volunteer's entry is.
#[derive(Debug, Clone, Copy)]
struct Slot {
    cell: CellIndex,
    index: u32,
}

/// The in-memory index of volunteers (see the module documentation). Not internally locked.
#[derive(Debug)]
pub struct Matcher {
    resolution: Resolution,
    position_max_age_us: i64,
    buckets: FastMap<CellIndex, Bucket>,
    slots: FastMap<Uuid, Slot>,
}

impl Matcher {
    /// An empty index. An invalid `h3_resolution` falls back to [`DEFAULT_H3_RESOLUTION`]
    /// (check with [`MatcherConfig::validate`] at start-up); a `position_max_age` beyond
    /// `i64::MAX` microseconds is treated as that.
    pub fn new(config: MatcherConfig) -> Self {
        let resolution = Resolution::try_from(config.h3_resolution).unwrap_or(Resolution::Nine);
        Self {
            resolution,
            position_max_age_us: i64::try_from(config.position_max_age.as_micros())
                .unwrap_or(i64::MAX),
            buckets: FastMap::default(),
            slots: FastMap::default(),
        }
    }

    /// The H3 resolution in use.
    pub fn resolution(&self) -> u8 {
        u8::from(self.resolution)
    }

    /// Adds a volunteer, or replaces everything known about them.
    pub fn upsert(&mut self, state: VolunteerState) {
        let entry = Entry::from_state(&state);
        let cell = state.position.to_cell(self.resolution);
        match self.slots.get(&state.id).copied() {
            Some(slot) if slot.cell == cell => {
                self.modify(state.id, |stored| *stored = entry);
            }
            Some(slot) => {
                self.take(state.id, slot);
                self.put(cell, entry);
            }
            None => self.put(cell, entry),
        }
    }

    /// Records a new position of a known volunteer. Returns `false` (and changes nothing) for an
    /// unknown id: the caller then loads the volunteer and calls [`Matcher::upsert`].
    pub fn update_position(&mut self, id: Uuid, position: LatLng, at: DateTime<Utc>) -> bool {
        let Some(slot) = self.slots.get(&id).copied() else {
            return false;
        };
        let lat_rad = position.lat().to_radians();
        let lng_rad = position.lng().to_radians();
        let position_at_us = at.timestamp_micros();
        let Some(bucket) = self.buckets.get_mut(&slot.cell) else {
            return false;
        };
        // Most updates move a few metres and stay well inside the cell: no h3o call then.
        let cell = if bucket.surely_contains(lat_rad, lng_rad) {
            slot.cell
        } else {
            position.to_cell(self.resolution)
        };
        if slot.cell == cell {
            // Neither availability nor certifications change: no summary to maintain.
            let index = slot.index as usize;
            if let (Some(entry), Some(coords)) =
                (bucket.entries.get_mut(index), bucket.coords.get_mut(index))
            {
                entry.lat_rad = lat_rad;
                entry.lng_rad = lng_rad;
                entry.position_at_us = position_at_us;
                *coords = [lat_rad, lng_rad];
            }
        } else if let Some(mut entry) = self.take(id, slot) {
            entry.lat_rad = lat_rad;
            entry.lng_rad = lng_rad;
            entry.position_at_us = position_at_us;
            self.put(cell, entry);
        }
        true
    }

    /// Sets whether a known volunteer is on duty; `false` for an unknown id.
    pub fn set_on_duty(&mut self, id: Uuid, on_duty: bool) -> bool {
        self.modify(id, |entry| entry.set_flag(ON_DUTY, on_duty))
    }

    /// Sets whether a known volunteer is busy (holds an assignment); `false` for an unknown id.
    pub fn set_busy(&mut self, id: Uuid, busy: bool) -> bool {
        self.modify(id, |entry| entry.set_flag(BUSY, busy))
    }

    /// Sets or clears a known volunteer's rest period; `false` for an unknown id.
    pub fn set_rest_until(&mut self, id: Uuid, until: Option<DateTime<Utc>>) -> bool {
        self.modify(id, |entry| {
            entry.rest_until_us = until.map_or(NO_REST, |t| t.timestamp_micros());
        })
    }

    /// Replaces a known volunteer's certifications; `false` for an unknown id.
    pub fn set_certifications(&mut self, id: Uuid, certs: CertSet) -> bool {
        self.modify(id, |entry| entry.certs = certs)
    }

    /// Sets whether a known volunteer is a verified practitioner; `false` for an unknown id.
    pub fn set_verified_practitioner(&mut self, id: Uuid, verified: bool) -> bool {
        self.modify(id, |entry| entry.set_flag(VERIFIED, verified))
    }

    /// Forgets a volunteer; `false` if they were not known.
    pub fn remove(&mut self, id: Uuid) -> bool {
        match self.slots.get(&id).copied() {
            Some(slot) => self.take(id, slot).is_some(),
            None => false,
        }
    }

    /// Number of volunteers known (eligible or not).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when no volunteer is known.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Whether a volunteer is known.
    pub fn contains(&self, id: Uuid) -> bool {
        self.slots.contains_key(&id)
    }

    /// When the known position of volunteer `id` was recorded; `None` for an unknown id. Lets a
    /// caller holding a position from elsewhere keep the newer of the two.
    pub fn position_at(&self, id: Uuid) -> Option<DateTime<Utc>> {
        let slot = self.slots.get(&id)?;
        let entry = self
            .buckets
            .get(&slot.cell)?
            .entries
            .get(slot.index as usize)?;
        DateTime::from_timestamp_micros(entry.position_at_us)
    }

    /// Where the volunteer was last seen, when known.
    pub fn position(&self, id: Uuid) -> Option<LatLng> {
        let slot = self.slots.get(&id)?;
        let entry = self
            .buckets
            .get(&slot.cell)?
            .entries
            .get(slot.index as usize)?;
        LatLng::new(entry.lat_rad.to_degrees(), entry.lng_rad.to_degrees()).ok()
    }

    /// True when the volunteer is known and holds an assignment.
    pub fn is_busy(&self, id: Uuid) -> bool {
        self.slots
            .get(&id)
            .and_then(|slot| {
                self.buckets
                    .get(&slot.cell)?
                    .entries
                    .get(slot.index as usize)
            })
            .is_some_and(|entry| entry.flags & BUSY != 0)
    }

    fn put(&mut self, cell: CellIndex, entry: Entry) {
        let bucket = self
            .buckets
            .entry(cell)
            .or_insert_with(|| Bucket::new(cell));
        let index = bucket.push(entry);
        self.slots.insert(entry.id, Slot { cell, index });
    }

    /// Removes and returns the entry at `slot`, fixing the slot of the entry moved into its place.
    fn take(&mut self, id: Uuid, slot: Slot) -> Option<Entry> {
        self.slots.remove(&id);
        let bucket = self.buckets.get_mut(&slot.cell)?;
        let index = slot.index as usize;
        if index >= bucket.entries.len() {
            return None;
        }
        let entry = bucket.swap_remove(index);
        if let Some(moved) = bucket.entries.get(index) {
            let moved_id = moved.id;
            if let Some(moved_slot) = self.slots.get_mut(&moved_id) {
                moved_slot.index = slot.index;
            }
        }
        if bucket.entries.is_empty() {
            self.buckets.remove(&slot.cell);
        }
        Some(entry)
    }

    /// Applies `change` to a known volunteer's entry in place, keeping its bucket's summary
    /// right; `false` for an unknown id.
    fn modify(&mut self, id: Uuid, change: impl FnOnce(&mut Entry)) -> bool {
        let Some(slot) = self.slots.get(&id).copied() else {
            return false;
        };
        let Some(bucket) = self.buckets.get_mut(&slot.cell) else {
            return false;
        };
        let index = slot.index as usize;
        let (Some(entry), Some(coords)) =
            (bucket.entries.get_mut(index), bucket.coords.get_mut(index))
        else {
            return false;
        };
        let (was_available, old_certs) = (entry.available(), entry.certs);
        change(entry);
        *coords = [entry.lat_rad, entry.lng_rad];
        let (available, certs) = (entry.available(), entry.certs);
        bucket.available = bucket.available + u32::from(available) - u32::from(was_available);
        if certs != old_certs {
            if old_certs.contains_all(certs) {
                bucket.recount_certs();
            } else {
                bucket.certs_any = bucket.certs_any.union(certs);
            }
        }
        true
    }
}
