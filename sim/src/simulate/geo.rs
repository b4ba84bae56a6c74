//! Where simulated people are and how they move: points in WGS84 degrees, great-circle distances,
//! and a [`Mover`] that travels along straight segments at a constant speed. Good enough for a
//! city: over a few kilometres the error of the flat step is centimetres.

use rand::Rng;

/// Mean Earth radius (IUGG), in metres.
const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// A position: latitude then longitude, in degrees (WGS84), as docs/API.md's `{lat, lng}`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatLng {
    /// Degrees north (negative south of the equator; Jakarta is about -6.2).
    pub lat: f64,
    /// Degrees east.
    pub lng: f64,
}

impl LatLng {
    /// Great-circle (haversine) distance to `other`, in metres.
    pub fn distance_m(self, other: LatLng) -> f64 {
        let (lat1, lat2) = (self.lat.to_radians(), other.lat.to_radians());
        let d_lat = lat2 - lat1;
        let d_lng = (other.lng - self.lng).to_radians();
        let h = (d_lat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (d_lng / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_M * h.sqrt().min(1.0).asin()
    }

    /// The point `east_m` east and `north_m` north of this one (flat approximation).
    pub fn offset_m(self, east_m: f64, north_m: f64) -> LatLng {
        let lat = self.lat + (north_m / EARTH_RADIUS_M).to_degrees();
        let lng = self.lng + (east_m / (EARTH_RADIUS_M * self.lat.to_radians().cos())).to_degrees();
        LatLng { lat, lng }
    }

    /// The point `max_m` along the straight segment towards `to`, or `to` itself when it is nearer.
    pub fn toward(self, to: LatLng, max_m: f64) -> LatLng {
        let left_m = self.distance_m(to);
        if left_m <= max_m || left_m == 0.0 {
            return to;
        }
        let fraction = max_m / left_m;
        LatLng {
            lat: self.lat + (to.lat - self.lat) * fraction,
            lng: self.lng + (to.lng - self.lng) * fraction,
        }
    }
}

/// A rectangle of the map, in degrees, where simulated people live and emergencies happen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Area {
    /// Southern edge.
    pub min_lat: f64,
    /// Northern edge.
    pub max_lat: f64,
    /// Western edge.
    pub min_lng: f64,
    /// Eastern edge.
    pub max_lng: f64,
}

/// Central Jakarta and its neighbours (about 15 x 13 km): dense enough that a few dozen volunteers
/// lie within the dispatch waves' radii of most emergencies, inside the benchmark box of docs/DESIGN.md.
pub const JAKARTA: Area = Area {
    min_lat: -6.26,
    max_lat: -6.14,
    min_lng: 106.76,
    max_lng: 106.90,
};

impl Area {
    /// A uniformly random point inside.
    pub fn random_point(&self, rng: &mut impl Rng) -> LatLng {
        LatLng {
            lat: rng.random_range(self.min_lat..=self.max_lat),
            lng: rng.random_range(self.min_lng..=self.max_lng),
        }
    }

    /// `point` moved to the nearest point inside.
    pub fn clamp(&self, point: LatLng) -> LatLng {
        LatLng {
            lat: point.lat.clamp(self.min_lat, self.max_lat),
            lng: point.lng.clamp(self.min_lng, self.max_lng),
        }
    }

    /// Whether `point` lies inside (edges included).
    pub fn contains(&self, point: LatLng) -> bool {
        (self.min_lat..=self.max_lat).contains(&point.lat)
            && (self.min_lng..=self.max_lng).contains(&point.lng)
    }
}

/// How a volunteer gets about: it sets the speed of every leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Travel {
    /// On foot, 1.2 to 1.6 m/s.
    Walking,
    /// Motorbike (ojek-style) in city traffic, 6 to 11 m/s.
    Motorbike,
}

impl Travel {
    /// A speed for one volunteer, in metres per second.
    pub fn random_speed_mps(self, rng: &mut impl Rng) -> f64 {
        match self {
            Travel::Walking => rng.random_range(1.2..=1.6),
            Travel::Motorbike => rng.random_range(6.0..=11.0),
        }
    }
}

/// Something that moves along straight segments at `speed_mps` towards `target`.
#[derive(Debug, Clone, PartialEq)]
pub struct Mover {
    /// Where it is now.
    pub at: LatLng,
    /// Where it is heading (equal to `at` when standing still).
    pub target: LatLng,
    /// Its speed, in metres per second.
    pub speed_mps: f64,
}

impl Mover {
    /// Standing at `at`.
    pub fn new(at: LatLng, speed_mps: f64) -> Self {
        Self {
            at,
            target: at,
            speed_mps,
        }
    }

    /// Moves for `dt_s` seconds; answers whether it has reached its target.
    pub fn advance(&mut self, dt_s: f64) -> bool {
        self.at = self.at.toward(self.target, self.speed_mps * dt_s.max(0.0));
        self.at == self.target
    }

    /// Metres left to the target.
    pub fn left_m(&self) -> f64 {
        self.at.distance_m(self.target)
    }
}

/// A patrol waypoint: 300 m to 2 km from `from` in a random direction, kept inside `area`.
pub fn next_waypoint(from: LatLng, area: &Area, rng: &mut impl Rng) -> LatLng {
    let distance_m = rng.random_range(300.0..=2000.0);
    let bearing = rng.random_range(0.0..std::f64::consts::TAU);
    area.clamp(from.offset_m(distance_m * bearing.sin(), distance_m * bearing.cos()))
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    const MONAS: LatLng = LatLng {
        lat: -6.1754,
        lng: 106.8272,
    };

    #[test]
    fn distances_match_known_values() {
        // One degree of latitude is about 110.6 km near the equator.
        let north = LatLng {
            lat: MONAS.lat + 1.0,
            lng: MONAS.lng,
        };
        let d = MONAS.distance_m(north);
        assert!((d - 111_195.0).abs() < 50.0, "{d}");
        let moved = MONAS.offset_m(300.0, -400.0);
        let d = MONAS.distance_m(moved);
        assert!((d - 500.0).abs() < 0.5, "a 3-4-5 triangle: {d}");
    }

    #[test]
    fn a_mover_covers_speed_times_time_and_stops_at_its_target() {
        let target = MONAS.offset_m(1000.0, 0.0);
        let mut mover = Mover::new(MONAS, 10.0);
        mover.target = target;
        assert!(!mover.advance(30.0));
        assert!(
            (MONAS.distance_m(mover.at) - 300.0).abs() < 0.5,
            "30 s at 10 m/s is 300 m"
        );
        assert!((mover.left_m() - 700.0).abs() < 0.5);
        assert!(!mover.advance(69.0));
        assert!(mover.advance(5.0), "arrives, never overshoots");
        assert_eq!(mover.at, target);
        assert!(mover.advance(1.0), "and stays");
        assert_eq!(mover.at, target);
    }

    #[test]
    fn waypoints_stay_inside_the_area_and_are_a_plausible_leg_away() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut at = JAKARTA.random_point(&mut rng);
        for _ in 0..1000 {
            let next = next_waypoint(at, &JAKARTA, &mut rng);
            assert!(JAKARTA.contains(next), "{next:?}");
            assert!(at.distance_m(next) <= 2001.0, "{at:?} -> {next:?}");
            at = next;
        }
    }
}
