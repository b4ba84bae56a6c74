//! The query: walk the rings of cells around the alert nearest first, skip the cells the bounds
//! rule out (ring bound, cell bound, cell summary; see the module above), read the volunteers of
//! the rest, and stop when no further ring can improve the answer.

use h3o::CellIndex;

use super::cell::CellGeometry;
use super::{BUSY, Candidate, Entry, MAX_RADIUS_M, MatchQuery, Matcher, ON_DUTY, VERIFIED};
use crate::geo::LocalMetric;

impl Matcher {
    /// The nearest `query.limit` eligible volunteers within `query.radius_m` of `query.point`,
    /// nearest first, with their distances. Allocates only the result (and, near one of H3's
    /// twelve pentagons, a list of cells). Equal distances come in no particular order.
    pub fn nearest(&self, query: &MatchQuery<'_>) -> Vec<Candidate> {
        let mut out = Vec::new();
        if query.limit == 0
            || self.slots.is_empty()
            || query.radius_m.is_nan()
            || query.radius_m < 0.0
        {
            return out;
        }
        out.reserve_exact(query.limit.min(256));
        let search = Search {
            metric: LocalMetric::new(query.point),
            radius_m: query.radius_m.min(MAX_RADIUS_M),
            query,
            fresh_after_us: query
                .now
                .timestamp_micros()
                .saturating_sub(self.position_max_age_us),
            now_us: query.now.timestamp_micros(),
        };
        let origin = query.point.to_cell(self.resolution);
        let step_m = match self.buckets.get(&origin) {
            Some(bucket) => bucket.step_m,
            None => CellGeometry::of(origin).step_m,
        };
        // Degenerate geometry (a pole, the antimeridian) must not stall the walk: a smaller step
        // only makes the walk longer, never wrong.
        let step_m = if step_m.is_finite() && step_m > 0.0 {
            step_m
        } else {
            1.0
        };
        if !self.walk_rings_fast(&search, origin, step_m, &mut out) {
            // A pentagon's distortion broke the fast ring walk: start again the slow, safe way.
            out.clear();
            self.walk_rings_safe(&search, origin, step_m, &mut out);
        }
        out
    }

    /// Ring by ring with `grid_ring_fast`; `false` when it hit pentagon distortion.
    fn walk_rings_fast(
        &self,
        search: &Search<'_>,
        origin: CellIndex,
        step_m: f64,
        out: &mut Vec<Candidate>,
    ) -> bool {
        // Every cell holding a point within the radius is within this many rings (ring bound);
        // it also caps the walk whatever the cut-off.
        let k_max = (search.radius_m / step_m).floor() as u32 + 1;
        let mut k: u32 = 0;
        loop {
            let cutoff = search.cutoff_m(out);
            if k > k_max || f64::from(k.saturating_sub(1)) * step_m > cutoff {
                return true;
            }
            for cell in origin.grid_ring_fast(k) {
                let Some(cell) = cell else {
                    return false;
                };
                self.scan(search, cell, out);
            }
            k += 1;
        }
    }

    /// The same walk over `grid_disk_distances_safe`, which copes with pentagons.
    fn walk_rings_safe(
        &self,
        search: &Search<'_>,
        origin: CellIndex,
        step_m: f64,
        out: &mut Vec<Candidate>,
    ) {
        // Every cell holding a point within the radius is within this many rings (ring bound).
        let k_max = (search.radius_m / step_m).floor() as u32 + 1;
        let mut cells: Vec<(CellIndex, u32)> = origin.grid_disk_distances_safe(k_max).collect();
        cells.sort_unstable_by_key(|&(_, k)| k);
        for (cell, k) in cells {
            if f64::from(k.saturating_sub(1)) * step_m > search.cutoff_m(out) {
                break;
            }
            self.scan(search, cell, out);
        }
    }

    /// Checks the volunteers of one cell, keeping `out` sorted and at most `limit` long.
    #[inline]
    fn scan(&self, search: &Search<'_>, cell: CellIndex, out: &mut Vec<Candidate>) {
        let Some(bucket) = self.buckets.get(&cell) else {
            return;
        };
        if bucket.available == 0 || !bucket.certs_any.contains_all(*search.query.required) {
            return;
        }
        let cutoff = search.cutoff_m(out);
        let center_m = search
            .metric
            .distance_rad_m(bucket.center_lat_rad, bucket.center_lng_rad);
        if center_m - bucket.radius_m > cutoff {
            return;
        }
        let limit = search.query.limit;
        let radius_m2 = search.radius_m * search.radius_m;
        // Entries at a squared distance above this cannot enter `out`; equal ones only while it
        // is not full (the radius is inclusive, ties with the worst kept do not displace it).
        let mut cutoff_m2 = cutoff * cutoff;
        for (&[lat_rad, lng_rad], entry) in bucket.coords.iter().zip(&bucket.entries) {
            // Cheapest test first: once `out` is full the cut-off rules out nearly everyone by
            // distance alone; until then, with the whole radius open, eligibility rules out more
            // (rare certifications, people off duty) than distance does.
            let distance_m2 = if out.len() >= limit {
                let distance_m2 = search.metric.distance_squared_rad_m2(lat_rad, lng_rad);
                if distance_m2 >= cutoff_m2 || !search.eligible(entry) {
                    continue;
                }
                distance_m2
            } else {
                if !search.eligible(entry) {
                    continue;
                }
                let distance_m2 = search.metric.distance_squared_rad_m2(lat_rad, lng_rad);
                if distance_m2 > cutoff_m2 {
                    continue;
                }
                distance_m2
            };
            // Looked up only for a volunteer who would make the list.
            if !search.query.exclude.is_empty() && search.query.exclude.contains(&entry.id) {
                continue;
            }
            if out.len() >= limit {
                out.pop();
            }
            let distance_m = distance_m2.sqrt();
            let at = out.partition_point(|c| c.distance_m <= distance_m);
            out.insert(
                at,
                Candidate {
                    id: entry.id,
                    distance_m,
                },
            );
            if out.len() >= limit {
                cutoff_m2 = out
                    .last()
                    .map_or(radius_m2, |worst| worst.distance_m * worst.distance_m);
            }
        }
    }
}

/// One query, prepared.
struct Search<'a> {
    metric: LocalMetric,
    radius_m: f64,
    query: &'a MatchQuery<'a>,
    fresh_after_us: i64,
    now_us: i64,
}

impl Search<'_> {
    /// Nothing farther than this can enter the answer.
    #[inline]
    fn cutoff_m(&self, out: &[Candidate]) -> f64 {
        if out.len() >= self.query.limit {
            out.last().map_or(self.radius_m, |worst| worst.distance_m)
        } else {
            self.radius_m
        }
    }

    #[inline]
    fn eligible(&self, entry: &Entry) -> bool {
        entry.flags & (ON_DUTY | BUSY) == ON_DUTY
            && (!self.query.requires_verified || entry.flags & VERIFIED != 0)
            && entry.position_at_us > self.fresh_after_us
            && entry.rest_until_us <= self.now_us
            && entry.certs.contains_all(*self.query.required)
    }
}
