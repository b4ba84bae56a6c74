//! Regions: the areas coordinators answer for (usually a kabupaten/kota), which region an alert
//! belongs to, and each region's triage policy. All of it is pure: the area arrives as GeoJSON and
//! is checked once here ([`parse_area`]); the service keeps every region in a [`RegionMap`] so an
//! alert finds its region, and its panic its admission ([`RegionMap::admission`]), without a query.

use std::collections::{HashMap, HashSet};

use geo::{Contains, Coord, Distance, Euclidean, LineString, MultiPolygon, Point, Polygon};
use kreki_auth::Trust;
use kreki_platform::FieldError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{AlertKind, RegionId};
use crate::geo::LatLng;

/// Most vertices an area may have in all (a kabupaten outline simplified for dispatch is a few
/// thousand; more is someone pasting a survey file).
pub const MAX_VERTICES: usize = 20_000;

/// Which trust levels of a region's citizens wait for a coordinator before volunteers are alerted:
/// `default` for every kind, `kinds` overriding it per kind. A region created without one sends
/// `new` accounts (phone not verified) to triage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TriagePolicy {
    /// Levels triaged for every kind without its own entry.
    pub default: Vec<Trust>,
    /// Per-kind levels (an empty list: that kind always goes out at once).
    #[serde(default)]
    pub kinds: HashMap<AlertKind, Vec<Trust>>,
}

impl Default for TriagePolicy {
    fn default() -> Self {
        Self {
            default: vec![Trust::New],
            kinds: HashMap::new(),
        }
    }
}

impl TriagePolicy {
    /// The levels triaged for `kind`.
    pub fn levels(&self, kind: AlertKind) -> &[Trust] {
        self.kinds.get(&kind).unwrap_or(&self.default)
    }
}

/// How a panic is let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Volunteers are alerted at once.
    Dispatch,
    /// The region's coordinators look first (and it goes out by itself if nobody does in time).
    Triage,
    /// A blocked account: no alert.
    Refused,
}

/// One region as the map keeps it.
#[derive(Debug, Clone)]
pub struct RegionArea {
    /// The region.
    pub id: RegionId,
    /// Its area, in degrees (WGS84).
    pub area: MultiPolygon<f64>,
    /// Its triage policy.
    pub triage: TriagePolicy,
    /// Its coordinators.
    pub coordinators: Vec<Uuid>,
}

/// Every region, for locating alerts and scoping coordinators in memory.
#[derive(Debug, Clone, Default)]
pub struct RegionMap {
    regions: Vec<RegionArea>,
    /// Coordinators assigned to at least one region (the others are national).
    regional: HashSet<Uuid>,
}

impl RegionMap {
    /// The map of `regions`.
    pub fn new(regions: Vec<RegionArea>) -> Self {
        let regional = regions
            .iter()
            .flat_map(|region| region.coordinators.iter().copied())
            .collect();
        Self { regions, regional }
    }

    /// True when no region is defined (the whole country is one national operation).
    pub fn is_empty(&self) -> bool {
        self.regions.is_empty()
    }

    /// The region containing `at`, else the nearest one; `None` without regions. Where regions
    /// overlap, the first defined wins.
    pub fn locate(&self, at: LatLng) -> Option<RegionId> {
        let point = Point::new(at.lng(), at.lat());
        if let Some(region) = self.regions.iter().find(|r| r.area.contains(&point)) {
            return Some(region.id);
        }
        // Degrees of longitude shrink with latitude; scaling them keeps "nearest" honest near
        // the equator and beyond (Indonesia spans 6°N to 11°S).
        let scale = at.lat().to_radians().cos();
        let projected = |coord: Coord<f64>| Coord {
            x: coord.x * scale,
            y: coord.y,
        };
        let here = Point::new(at.lng() * scale, at.lat());
        self.regions
            .iter()
            .map(|region| {
                let area: MultiPolygon<f64> = MultiPolygon::new(
                    region
                        .area
                        .iter()
                        .map(|polygon| {
                            let ring = |ring: &LineString<f64>| -> LineString<f64> {
                                ring.coords().copied().map(projected).collect()
                            };
                            Polygon::new(
                                ring(polygon.exterior()),
                                polygon.interiors().iter().map(ring).collect(),
                            )
                        })
                        .collect(),
                );
                (region.id, Euclidean.distance(&here, &area))
            })
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(id, _)| id)
    }

    /// How a panic of a citizen with `trust`, of `kind`, in `region` is let in: blocked accounts
    /// never; without a region (none defined) at once, as before regions existed; otherwise as
    /// the region's policy says for the kind.
    pub fn admission(&self, region: Option<RegionId>, kind: AlertKind, trust: Trust) -> Admission {
        if trust == Trust::Blocked {
            return Admission::Refused;
        }
        let Some(region) = region.and_then(|id| self.regions.iter().find(|r| r.id == id)) else {
            return Admission::Dispatch;
        };
        if region.triage.levels(kind).contains(&trust) {
            Admission::Triage
        } else {
            Admission::Dispatch
        }
    }

    /// The regions `coordinator` answers for; empty for a national coordinator (assigned to
    /// none), who answers for all.
    pub fn regions_of(&self, coordinator: Uuid) -> Vec<RegionId> {
        self.regions
            .iter()
            .filter(|region| region.coordinators.contains(&coordinator))
            .map(|region| region.id)
            .collect()
    }

    /// The coordinators who do not answer for `region`: those assigned to other regions only.
    /// Everyone else of the role (national coordinators, admins, the region's own) hears of
    /// its alerts and escalations; an alert without a region goes to all.
    pub fn outsiders(&self, region: Option<RegionId>) -> Vec<Uuid> {
        let Some(region) = region else {
            return Vec::new();
        };
        let mut outsiders: Vec<Uuid> = self
            .regional
            .iter()
            .copied()
            .filter(|coordinator| !self.covers(*coordinator, Some(region)))
            .collect();
        outsiders.sort_unstable();
        outsiders
    }

    /// True when `coordinator` answers for an alert in `region`: a national coordinator for
    /// every alert, a regional one for their regions' alerts (and alerts with no region).
    pub fn covers(&self, coordinator: Uuid, region: Option<RegionId>) -> bool {
        if !self.regional.contains(&coordinator) {
            return true;
        }
        region.is_none_or(|region| {
            self.regions
                .iter()
                .any(|r| r.id == region && r.coordinators.contains(&coordinator))
        })
    }
}

/// Reads a GeoJSON `Polygon` or `MultiPolygon` geometry (a `Feature` wrapping one is accepted too)
/// into a multipolygon, checking what PostGIS would otherwise refuse obscurely: numbers in range,
/// rings of at least four positions that close, and at most [`MAX_VERTICES`] in all. Errors name
/// the field (`area`, `area.coordinates[0][3]`, ...).
///
/// # Errors
/// The field errors, when the area is not a usable polygon.
pub fn parse_area(value: &serde_json::Value) -> Result<MultiPolygon<f64>, Vec<FieldError>> {
    let bad = |field: String, why: &str| vec![FieldError::new(field, why)];
    let geometry = match value.get("type").and_then(|t| t.as_str()) {
        Some("Feature") => value.get("geometry").unwrap_or(&serde_json::Value::Null),
        _ => value,
    };
    let coordinates = geometry.get("coordinates");
    let polygons: Vec<(String, &serde_json::Value)> =
        match (geometry.get("type").and_then(|t| t.as_str()), coordinates) {
            (Some("Polygon"), Some(rings)) => vec![("area.coordinates".to_owned(), rings)],
            (Some("MultiPolygon"), Some(serde_json::Value::Array(polygons))) => polygons
                .iter()
                .enumerate()
                .map(|(i, rings)| (format!("area.coordinates[{i}]"), rings))
                .collect(),
            (Some("Polygon" | "MultiPolygon"), _) => {
                return Err(bad("area.coordinates".into(), "must be an array"));
            }
            _ => {
                return Err(bad(
                    "area".into(),
                    "must be a GeoJSON Polygon or MultiPolygon",
                ));
            }
        };
    if polygons.is_empty() {
        return Err(bad("area.coordinates".into(), "must hold a polygon"));
    }
    let mut vertices = 0;
    let mut out = Vec::new();
    for (field, rings) in polygons {
        let Some(rings) = rings.as_array().filter(|rings| !rings.is_empty()) else {
            return Err(bad(field, "must be an array of linear rings"));
        };
        let mut parsed = Vec::new();
        for (r, ring) in rings.iter().enumerate() {
            let field = format!("{field}[{r}]");
            let Some(positions) = ring.as_array() else {
                return Err(bad(field, "must be an array of [lng, lat] positions"));
            };
            vertices += positions.len();
            if vertices > MAX_VERTICES {
                return Err(bad(
                    "area".into(),
                    "has more than 20000 positions; simplify it",
                ));
            }
            let mut coords = Vec::with_capacity(positions.len());
            for (p, position) in positions.iter().enumerate() {
                let field = format!("{field}[{p}]");
                let pair = position.as_array().map(|pair| {
                    (
                        pair.first().and_then(serde_json::Value::as_f64),
                        pair.get(1).and_then(serde_json::Value::as_f64),
                    )
                });
                match pair {
                    Some((Some(lng), Some(lat)))
                        if (-180.0..=180.0).contains(&lng) && (-90.0..=90.0).contains(&lat) =>
                    {
                        coords.push(Coord { x: lng, y: lat });
                    }
                    _ => {
                        return Err(bad(
                            field,
                            "must be [lng, lat] in degrees (-180 to 180, -90 to 90)",
                        ));
                    }
                }
            }
            if coords.len() < 4 || coords.first() != coords.last() {
                return Err(bad(
                    field,
                    "must be a closed ring of at least 4 positions (the last equal to the first)",
                ));
            }
            parsed.push(LineString::new(coords));
        }
        let mut rings = parsed.into_iter();
        let exterior = rings.next().unwrap_or_else(|| LineString::new(Vec::new()));
        out.push(Polygon::new(exterior, rings.collect()));
    }
    Ok(MultiPolygon::new(out))
}

/// The multipolygon as GeoJSON (what the API answers and PostGIS reads with
/// `ST_GeomFromGeoJSON`).
pub fn area_json(area: &MultiPolygon<f64>) -> serde_json::Value {
    let ring = |ring: &LineString<f64>| -> Vec<[f64; 2]> {
        ring.coords().map(|coord| [coord.x, coord.y]).collect()
    };
    let polygons: Vec<Vec<Vec<[f64; 2]>>> = area
        .iter()
        .map(|polygon| {
            std::iter::once(ring(polygon.exterior()))
                .chain(polygon.interiors().iter().map(ring))
                .collect()
        })
        .collect();
    serde_json::json!({"type": "MultiPolygon", "coordinates": polygons})
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn square(lng: f64, lat: f64, size: f64) -> serde_json::Value {
        json!({"type": "Polygon", "coordinates": [[
            [lng, lat], [lng + size, lat], [lng + size, lat + size], [lng, lat + size], [lng, lat]
        ]]})
    }

    fn region(id: u128, area: &serde_json::Value, coordinators: &[Uuid]) -> RegionArea {
        RegionArea {
            id: RegionId(Uuid::from_u128(id)),
            area: parse_area(area).expect("valid area"),
            triage: TriagePolicy::default(),
            coordinators: coordinators.to_vec(),
        }
    }

    fn at(lat: f64, lng: f64) -> LatLng {
        crate::domain::parse_position(lat, lng, "").expect("valid")
    }

    #[test]
    fn an_alert_belongs_to_the_region_containing_it_else_the_nearest() {
        let map = RegionMap::new(vec![
            region(1, &square(106.70, -6.30, 0.10), &[]),
            region(2, &square(106.80, -6.30, 0.10), &[]),
        ]);
        assert_eq!(
            map.locate(at(-6.25, 106.75)),
            Some(RegionId(Uuid::from_u128(1)))
        );
        assert_eq!(
            map.locate(at(-6.25, 106.85)),
            Some(RegionId(Uuid::from_u128(2)))
        );
        // Out at sea north of both, nearer the second.
        assert_eq!(
            map.locate(at(-6.00, 106.88)),
            Some(RegionId(Uuid::from_u128(2)))
        );
        assert_eq!(RegionMap::default().locate(at(-6.2, 106.8)), None);
    }

    #[test]
    fn admission_follows_the_region_policy_per_kind() {
        let mut policy_region = region(1, &square(106.70, -6.30, 0.10), &[]);
        policy_region.triage = TriagePolicy {
            default: vec![Trust::New, Trust::Verified],
            kinds: HashMap::from([(AlertKind::CardiacArrest, vec![])]),
        };
        let map = RegionMap::new(vec![policy_region]);
        let id = Some(RegionId(Uuid::from_u128(1)));
        assert_eq!(
            map.admission(id, AlertKind::Fire, Trust::New),
            Admission::Triage
        );
        assert_eq!(
            map.admission(id, AlertKind::Fire, Trust::Verified),
            Admission::Triage
        );
        assert_eq!(
            map.admission(id, AlertKind::Fire, Trust::Trusted),
            Admission::Dispatch
        );
        assert_eq!(
            map.admission(id, AlertKind::CardiacArrest, Trust::New),
            Admission::Dispatch
        );
        assert_eq!(
            map.admission(id, AlertKind::Fire, Trust::Blocked),
            Admission::Refused
        );
        // Without regions everything goes out at once, as before regions existed.
        assert_eq!(
            RegionMap::default().admission(None, AlertKind::Fire, Trust::New),
            Admission::Dispatch
        );
    }

    #[test]
    fn regional_coordinators_cover_their_regions_and_national_ones_all() {
        let (ani, budi, citra) = (
            Uuid::from_u128(10),
            Uuid::from_u128(11),
            Uuid::from_u128(12),
        );
        let map = RegionMap::new(vec![
            region(1, &square(106.70, -6.30, 0.10), &[ani]),
            region(2, &square(106.80, -6.30, 0.10), &[budi]),
        ]);
        let (a, b) = (
            Some(RegionId(Uuid::from_u128(1))),
            Some(RegionId(Uuid::from_u128(2))),
        );
        assert!(map.covers(ani, a));
        assert!(!map.covers(ani, b));
        assert!(map.covers(citra, a) && map.covers(citra, b));
        assert!(map.covers(ani, None));
        assert_eq!(map.regions_of(budi), vec![RegionId(Uuid::from_u128(2))]);
        assert!(map.regions_of(citra).is_empty());
        // News of region a leaves out only the coordinators of other regions.
        assert_eq!(map.outsiders(a), vec![budi]);
        assert_eq!(map.outsiders(b), vec![ani]);
        assert!(map.outsiders(None).is_empty());
        assert!(RegionMap::default().outsiders(a).is_empty());
    }

    #[test]
    fn bad_areas_name_the_field() {
        let field =
            |value: serde_json::Value| parse_area(&value).expect_err("refused")[0].field.clone();
        assert_eq!(
            field(json!({"type": "Point", "coordinates": [1, 2]})),
            "area"
        );
        assert_eq!(field(json!({"type": "Polygon"})), "area.coordinates");
        assert_eq!(
            field(json!({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0.5]]]})),
            "area.coordinates[0]"
        );
        assert_eq!(
            field(json!({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 91], [0, 0]]]})),
            "area.coordinates[0][2]"
        );
        assert_eq!(
            field(json!({"type": "MultiPolygon", "coordinates": [[[[0, 0], [1, 0], [0, 0]]]]})),
            "area.coordinates[0][0]"
        );
        let huge: Vec<[f64; 2]> = (0..=MAX_VERTICES).map(|i| [i as f64 * 1e-5, 0.0]).collect();
        assert_eq!(
            field(json!({"type": "Polygon", "coordinates": [huge]})),
            "area"
        );
        let feature = json!({"type": "Feature", "geometry": square(106.7, -6.3, 0.1)});
        assert_eq!(parse_area(&feature).expect("a feature").0.len(), 1);
    }

    #[test]
    fn areas_round_trip_through_geojson() {
        let area = parse_area(&square(106.7, -6.3, 0.1)).expect("valid");
        assert_eq!(parse_area(&area_json(&area)).expect("valid again"), area);
    }
}
