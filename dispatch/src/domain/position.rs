//! Positions as requests give them: a checked WGS84 point ([`LatLng`]) with an optional accuracy,
//! and the H3 cell PostgreSQL keeps beside it. HTTP bodies, WebSocket `location` frames and MQTT
//! messages all come through [`Position::parse`], so a bad coordinate is the same 422 everywhere.

use kreki_platform::FieldError;

use crate::geo::LatLng;

/// A checked position and how precise it is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Position {
    /// Where (WGS84).
    pub at: LatLng,
    /// Accuracy radius in metres, when the device reported one.
    pub accuracy_m: Option<f32>,
}

impl Position {
    /// Checks a latitude, longitude and optional accuracy (metres), naming each bad field under
    /// `prefix` (such as `location.`); every bad field is reported at once.
    ///
    /// # Errors
    /// One field error per bad value.
    pub fn parse(
        lat: f64,
        lng: f64,
        accuracy_m: Option<f64>,
        prefix: &str,
    ) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let at = parse_position(lat, lng, prefix)
            .map_err(|mut bad| errors.append(&mut bad))
            .ok();
        let accuracy_m = parse_accuracy(accuracy_m, &format!("{prefix}accuracy_m"))
            .map_err(|bad| errors.push(bad))
            .ok()
            .flatten();
        match at {
            Some(at) if errors.is_empty() => Ok(Self { at, accuracy_m }),
            _ => Err(errors),
        }
    }
}

/// Checks a position from a request, naming the fields under `prefix` (such as `location.`), both
/// at once when both are wrong. The result is the one position type of dispatch, [`LatLng`].
///
/// # Errors
/// One field error per coordinate that is not a finite number in range.
pub fn parse_position(lat: f64, lng: f64, prefix: &str) -> Result<LatLng, Vec<FieldError>> {
    let mut errors = Vec::new();
    if LatLng::new(lat, 0.0).is_err() {
        errors.push(FieldError::new(
            format!("{prefix}lat"),
            "must be a latitude from -90 to 90 degrees",
        ));
    }
    if LatLng::new(0.0, lng).is_err() {
        errors.push(FieldError::new(
            format!("{prefix}lng"),
            "must be a longitude from -180 to 180 degrees",
        ));
    }
    match LatLng::new(lat, lng) {
        Ok(at) if errors.is_empty() => Ok(at),
        _ => Err(errors),
    }
}

/// The H3 cell of `at` at resolution 9 (about 0.1 km^2, the matcher's default), as PostgreSQL
/// stores it beside the point (`bigint`).
pub fn h3_cell(at: LatLng) -> i64 {
    let cell = u64::from(at.to_cell(h3o::Resolution::Nine));
    // H3 indexes use 63 bits, so this never saturates.
    i64::try_from(cell).unwrap_or(i64::MAX)
}

/// Checks an optional accuracy in metres.
///
/// # Errors
/// A field error naming `field` when negative, not finite or over 100 km.
pub fn parse_accuracy(value: Option<f64>, field: &str) -> Result<Option<f32>, FieldError> {
    match value {
        None => Ok(None),
        Some(metres) if metres.is_finite() && (0.0..=100_000.0).contains(&metres) =>
        {
            #[expect(clippy::cast_possible_truncation, reason = "checked to be at most 1e5")]
            Ok(Some(metres as f32))
        }
        Some(_) => Err(FieldError::new(field, "must be 0 to 100000 metres")),
    }
}
