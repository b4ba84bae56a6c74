//! Areas: polygons and circles as CAP writes them (`lat,lng` pairs; `lat,lng radius_km`) or as
//! GeoJSON (`[lng, lat]`), checked once here (ranges, closed rings, point limits) and handed to
//! PostGIS as WKT plus circle arrays (the union and the buffers are PostGIS's work).

use serde_json::Value;

/// A circle (CAP `circle`): centre in degrees, radius in metres.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Circle {
    /// Latitude of the centre, degrees.
    pub lat: f64,
    /// Longitude of the centre, degrees.
    pub lng: f64,
    /// Radius, metres.
    pub radius_m: f64,
}

/// An area: closed rings (each `[lng, lat]` points, first equal to last) and circles.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Area {
    /// Outer rings, `(lng, lat)` each.
    pub polygons: Vec<Vec<(f64, f64)>>,
    /// Circles.
    pub circles: Vec<Circle>,
}

/// Longest circle radius accepted, metres (a tsunami warning is big, a continent is not).
pub const MAX_RADIUS_M: f64 = 1_500_000.0;

impl Area {
    /// True without any polygon or circle.
    pub fn is_empty(&self) -> bool {
        self.polygons.is_empty() && self.circles.is_empty()
    }

    /// Number of shapes.
    pub fn shapes(&self) -> usize {
        self.polygons.len() + self.circles.len()
    }

    /// Adds `other`'s shapes.
    pub fn extend(&mut self, other: Area) {
        self.polygons.extend(other.polygons);
        self.circles.extend(other.circles);
    }

    /// The polygons as a WKT `MULTIPOLYGON`, `None` without polygons.
    pub fn polygons_wkt(&self) -> Option<String> {
        if self.polygons.is_empty() {
            return None;
        }
        let rings: Vec<String> = self
            .polygons
            .iter()
            .map(|ring| {
                let points: Vec<String> = ring
                    .iter()
                    .map(|(lng, lat)| format!("{lng} {lat}"))
                    .collect();
                format!("(({}))", points.join(","))
            })
            .collect();
        Some(format!("MULTIPOLYGON({})", rings.join(",")))
    }

    /// Circle centres' latitudes, longitudes and radii, as three arrays (for `unnest`).
    pub fn circle_arrays(&self) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        (
            self.circles.iter().map(|c| c.lat).collect(),
            self.circles.iter().map(|c| c.lng).collect(),
            self.circles.iter().map(|c| c.radius_m).collect(),
        )
    }

    /// A CAP `polygon`: at least four `lat,lng` pairs separated by spaces, the first equal to the
    /// last, at most `max_points`.
    ///
    /// # Errors
    /// Says what is wrong.
    pub fn parse_cap_polygon(text: &str, max_points: usize) -> Result<Vec<(f64, f64)>, String> {
        let mut ring = Vec::new();
        for pair in text.split_ascii_whitespace() {
            if ring.len() >= max_points {
                return Err(format!("polygon has more than {max_points} points"));
            }
            let (lat, lng) = pair
                .split_once(',')
                .ok_or_else(|| format!("polygon point `{}` is not lat,lng", clip(pair)))?;
            let lat = number(lat, "latitude")?;
            let lng = number(lng, "longitude")?;
            check_point(lat, lng)?;
            ring.push((lng, lat));
        }
        check_ring(&ring)?;
        Ok(ring)
    }

    /// A CAP `circle`: `lat,lng radius_km`.
    ///
    /// # Errors
    /// Says what is wrong.
    pub fn parse_cap_circle(text: &str) -> Result<Circle, String> {
        let mut parts = text.split_ascii_whitespace();
        let (Some(centre), Some(radius), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err("circle must be `lat,lng radius_km`".to_owned());
        };
        let (lat, lng) = centre
            .split_once(',')
            .ok_or_else(|| "circle centre is not lat,lng".to_owned())?;
        let lat = number(lat, "latitude")?;
        let lng = number(lng, "longitude")?;
        check_point(lat, lng)?;
        let radius_m = number(radius, "radius")? * 1000.0;
        if !(radius_m > 0.0 && radius_m <= MAX_RADIUS_M) {
            return Err(format!(
                "circle radius must be above 0 and at most {} km",
                MAX_RADIUS_M / 1000.0
            ));
        }
        Ok(Circle { lat, lng, radius_m })
    }

    /// A GeoJSON `Polygon` or `MultiPolygon` (outer rings; holes are not kept).
    ///
    /// # Errors
    /// Says what is wrong.
    pub fn from_geojson(value: &Value, max_points: usize) -> Result<Self, String> {
        let kind = value.get("type").and_then(Value::as_str).unwrap_or("");
        let coordinates = value
            .get("coordinates")
            .ok_or_else(|| "needs `coordinates`".to_owned())?;
        let polygons: Vec<&Value> = match kind {
            "Polygon" => vec![coordinates],
            "MultiPolygon" => coordinates
                .as_array()
                .ok_or_else(|| "`coordinates` must be an array".to_owned())?
                .iter()
                .collect(),
            _ => return Err("must be a GeoJSON Polygon or MultiPolygon".to_owned()),
        };
        if polygons.is_empty() || polygons.len() > 100 {
            return Err("must have 1 to 100 polygons".to_owned());
        }
        let mut area = Area::default();
        for polygon in polygons {
            let outer = polygon
                .as_array()
                .and_then(|rings| rings.first())
                .and_then(Value::as_array)
                .ok_or_else(|| "a polygon needs an outer ring".to_owned())?;
            if outer.len() > max_points {
                return Err(format!("a ring has more than {max_points} points"));
            }
            let mut ring = Vec::with_capacity(outer.len());
            for point in outer {
                let pair = point.as_array().filter(|p| p.len() >= 2);
                let (Some(lng), Some(lat)) = (
                    pair.and_then(|p| p[0].as_f64()),
                    pair.and_then(|p| p[1].as_f64()),
                ) else {
                    return Err("each point must be [lng, lat]".to_owned());
                };
                check_point(lat, lng)?;
                ring.push((lng, lat));
            }
            check_ring(&ring)?;
            area.polygons.push(ring);
        }
        Ok(area)
    }

    /// [`Self::from_geojson`] of JSON text (the `geocodes` mapping of the config).
    ///
    /// # Errors
    /// Says what is wrong.
    pub fn from_geojson_text(text: &str) -> Result<Self, String> {
        let value: Value = serde_json::from_str(text).map_err(|error| error.to_string())?;
        Self::from_geojson(&value, 100_000)
    }
}

fn clip(text: &str) -> String {
    text.chars().take(40).collect()
}

fn number(text: &str, what: &str) -> Result<f64, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite())
        .ok_or_else(|| format!("{what} `{}` is not a number", clip(text)))
}

fn check_point(lat: f64, lng: f64) -> Result<(), String> {
    if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lng) {
        return Err(format!("point {lat},{lng} is off the globe"));
    }
    Ok(())
}

fn check_ring(ring: &[(f64, f64)]) -> Result<(), String> {
    if ring.len() < 4 {
        return Err("a polygon needs at least 4 points".to_owned());
    }
    if ring.first() != ring.last() {
        return Err("a polygon's first and last points must be the same".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_polygons_are_lat_lng_and_closed() {
        let ring = Area::parse_cap_polygon("-6.1,106.8 -6.1,106.9 -6.2,106.9 -6.1,106.8", 10)
            .expect("valid");
        assert_eq!(ring[0], (106.8, -6.1));
        assert!(
            Area::parse_cap_polygon("-6.1,106.8 -6.1,106.9 -6.2,106.9 -6.3,106.8", 10).is_err()
        );
        assert!(Area::parse_cap_polygon("-6.1,106.8 -6.1,106.9 -6.1,106.8", 10).is_err());
        assert!(
            Area::parse_cap_polygon("-96.1,106.8 -6.1,106.9 -6.2,106.9 -96.1,106.8", 10).is_err()
        );
        assert!(Area::parse_cap_polygon("a,b c,d e,f a,b", 10).is_err());
        let big: Vec<String> = (0..12).map(|i| format!("-6.{i},106.8")).collect();
        assert!(Area::parse_cap_polygon(&big.join(" "), 10).is_err());
    }

    #[test]
    fn cap_circles_are_in_kilometres() {
        let circle = Area::parse_cap_circle("-6.2,106.8 25").expect("valid");
        assert!((circle.radius_m - 25_000.0).abs() < 1e-6);
        assert!(Area::parse_cap_circle("-6.2,106.8 0").is_err());
        assert!(Area::parse_cap_circle("-6.2,106.8 99999").is_err());
        assert!(Area::parse_cap_circle("-6.2,106.8").is_err());
        assert!(Area::parse_cap_circle("-6.2,106.8 NaN").is_err());
    }

    #[test]
    fn geojson_polygons_become_wkt() {
        let area = Area::from_geojson(
            &serde_json::json!({"type": "Polygon", "coordinates": [[[106.8, -6.1], [106.9, -6.1], [106.9, -6.2], [106.8, -6.1]]]}),
            100,
        )
        .expect("valid");
        assert_eq!(
            area.polygons_wkt().as_deref(),
            Some("MULTIPOLYGON(((106.8 -6.1,106.9 -6.1,106.9 -6.2,106.8 -6.1)))")
        );
        assert!(
            Area::from_geojson(
                &serde_json::json!({"type": "Point", "coordinates": [1, 2]}),
                100
            )
            .is_err()
        );
    }
}
