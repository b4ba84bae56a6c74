//! The geometry of one H3 cell as the matcher's bounds use it: its centre and reach measured with
//! the query's local metric, and the ring-bound step (why each is a safe lower bound is said at
//! each).

use h3o::CellIndex;

use crate::geo::LocalMetric;

/// Ring-bound step: three quarters of the shortest edge of the cell the query starts in.
///
/// Why it is a lower bound: to reach a cell at grid distance `k`, a straight line from the query
/// point crosses every ring `1..k-1` from its inner to its outer side; those sides share no point
/// (a vertex touches cells whose grid distances differ by at most one), and in a hexagon with
/// angles near 120° they are at least one edge apart. The quarter of slack covers H3's change of
/// cell size over the searched distance and the sphere-versus-ellipsoid difference.
pub(super) fn ring_step_m(min_edge_m: f64) -> f64 {
    0.75 * min_edge_m
}

/// Geometry of one cell, measured with the same local metric the queries use.
pub(super) struct CellGeometry {
    pub(super) center_lat_rad: f64,
    pub(super) center_lng_rad: f64,
    /// Circumradius around the centre, with a 2 % + 1 m margin, metres.
    pub(super) radius_m: f64,
    /// [`ring_step_m`] of the cell's shortest edge, metres.
    pub(super) step_m: f64,
    /// Nine tenths of the distance from the centre to the nearest side, metres: a disc surely
    /// inside the cell, whatever the rounding of the flat approximation (errors of micrometres
    /// at cell sizes).
    pub(super) inner_m: f64,
    /// Metres per radian of latitude and of longitude at the centre.
    pub(super) center_scale_m: (f64, f64),
}

impl CellGeometry {
    pub(super) fn of(cell: CellIndex) -> Self {
        let center = h3o::LatLng::from(cell);
        let metric = LocalMetric::from_radians(center.lat_radians(), center.lng_radians());
        let boundary = cell.boundary();
        let mut radius_m: f64 = 0.0;
        let mut min_edge_m = f64::INFINITY;
        let mut inner_m = f64::INFINITY;
        let mut previous = boundary.iter().last().copied();
        for vertex in boundary.iter() {
            radius_m =
                radius_m.max(metric.distance_rad_m(vertex.lat_radians(), vertex.lng_radians()));
            if let Some(previous) = previous {
                let edge_m = LocalMetric::from_radians(vertex.lat_radians(), vertex.lng_radians())
                    .distance_rad_m(previous.lat_radians(), previous.lng_radians());
                min_edge_m = min_edge_m.min(edge_m);
                let a = metric.offset_rad_m(previous.lat_radians(), previous.lng_radians());
                let b = metric.offset_rad_m(vertex.lat_radians(), vertex.lng_radians());
                inner_m = inner_m.min(distance_to_segment_m(a, b));
            }
            previous = Some(*vertex);
        }
        let (east_m, _) = metric.offset_rad_m(center.lat_radians(), center.lng_radians() + 1.0);
        let (_, north_m) = metric.offset_rad_m(center.lat_radians() + 1e-6, center.lng_radians());
        Self {
            center_lat_rad: center.lat_radians(),
            center_lng_rad: center.lng_radians(),
            radius_m: radius_m * 1.02 + 1.0,
            step_m: ring_step_m(min_edge_m),
            inner_m: if inner_m.is_finite() {
                0.9 * inner_m
            } else {
                0.0
            },
            center_scale_m: (north_m * 1e6, east_m),
        }
    }
}

/// Distance from the origin to the segment `a`-`b` of the plane, all in metres.
pub(super) fn distance_to_segment_m(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let length2 = dx * dx + dy * dy;
    let t = if length2 > 0.0 {
        (-(a.0 * dx + a.1 * dy) / length2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (x, y) = (a.0 + t * dx, a.1 + t * dy);
    (x * x + y * y).sqrt()
}
