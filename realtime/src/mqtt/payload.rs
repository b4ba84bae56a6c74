//! The JSON devices publish, validated once here: a bad payload becomes a [`Problem`] naming the
//! field, which the consumer logs, counts and (for a panic button) sends back on its ack topic.

use chrono::{DateTime, Utc};
use kreki_platform::{FieldError, Problem};
use serde::Deserialize;

/// Largest payload read, in bytes; a device's messages are a few dozen bytes.
pub const MAX_PAYLOAD_BYTES: usize = 4096;
/// Largest accepted `accuracy_m`, in metres (100 km: beyond that a position says nothing).
pub const MAX_ACCURACY_M: f64 = 100_000.0;

/// `kreki/v1/panic/{device_id}`: `{lat, lng, accuracy_m?, kind?, msg_id?}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PanicPayload {
    /// Latitude, WGS84 degrees, -90 to 90.
    pub lat: f64,
    /// Longitude, WGS84 degrees, -180 to 180.
    pub lng: f64,
    /// Fix radius in metres, 0 to 100 000.
    #[serde(default)]
    pub accuracy_m: Option<f64>,
    /// Alert kind asked for (`medical`, `fire`, ...): 1 to 32 characters of `a-z`, `0-9`, `_`.
    #[serde(default)]
    pub kind: Option<String>,
    /// Optional id the device gives each press (1 to 64 printable ASCII characters): when present,
    /// de-duplication uses it instead of the payload and the time window, which is exact.
    #[serde(default)]
    pub msg_id: Option<String>,
}

/// `kreki/v1/location/{user_id}`: `{lat, lng, accuracy_m?, recorded_at?}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LocationPayload {
    /// Latitude, WGS84 degrees, -90 to 90.
    pub lat: f64,
    /// Longitude, WGS84 degrees, -180 to 180.
    pub lng: f64,
    /// Fix radius in metres, 0 to 100 000.
    #[serde(default)]
    pub accuracy_m: Option<f64>,
    /// When the fix was taken (RFC 3339); the time of receipt when absent.
    #[serde(default)]
    pub recorded_at: Option<DateTime<Utc>>,
}

fn too_big() -> Problem {
    Problem::new(
        http::StatusCode::PAYLOAD_TOO_LARGE,
        "payload-too-big",
        "Payload too big",
    )
    .with_detail(format!(
        "MQTT payloads may be at most {MAX_PAYLOAD_BYTES} bytes."
    ))
}

fn check_position(lat: f64, lng: f64, accuracy_m: Option<f64>, errors: &mut Vec<FieldError>) {
    if !(lat.is_finite() && (-90.0..=90.0).contains(&lat)) {
        errors.push(FieldError::new("lat", "must be a latitude from -90 to 90"));
    }
    if !(lng.is_finite() && (-180.0..=180.0).contains(&lng)) {
        errors.push(FieldError::new(
            "lng",
            "must be a longitude from -180 to 180",
        ));
    }
    if let Some(accuracy) = accuracy_m
        && !(accuracy.is_finite() && (0.0..=MAX_ACCURACY_M).contains(&accuracy))
    {
        errors.push(FieldError::new("accuracy_m", "must be 0 to 100000 metres"));
    }
}

impl PanicPayload {
    /// Parses and validates a panic payload.
    ///
    /// # Errors
    /// 413 when over [`MAX_PAYLOAD_BYTES`], 400 when not JSON, 422 naming each wrong field.
    pub fn parse(bytes: &[u8]) -> Result<Self, Problem> {
        if bytes.len() > MAX_PAYLOAD_BYTES {
            return Err(too_big());
        }
        let payload: Self = kreki_platform::extract::parse_json(bytes)?;
        let mut errors = Vec::new();
        check_position(payload.lat, payload.lng, payload.accuracy_m, &mut errors);
        if let Some(kind) = &payload.kind {
            let ok = (1..=32).contains(&kind.len())
                && kind
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !ok {
                errors.push(FieldError::new(
                    "kind",
                    "must be 1 to 32 characters a-z, 0-9 or _",
                ));
            }
        }
        if let Some(id) = &payload.msg_id
            && !((1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic()))
        {
            errors.push(FieldError::new(
                "msg_id",
                "must be 1 to 64 printable ASCII characters",
            ));
        }
        if errors.is_empty() {
            Ok(payload)
        } else {
            Err(Problem::validation(errors))
        }
    }
}

impl LocationPayload {
    /// Parses and validates a location payload.
    ///
    /// # Errors
    /// 413 when over [`MAX_PAYLOAD_BYTES`], 400 when not JSON, 422 naming each wrong field.
    pub fn parse(bytes: &[u8]) -> Result<Self, Problem> {
        if bytes.len() > MAX_PAYLOAD_BYTES {
            return Err(too_big());
        }
        let payload: Self = kreki_platform::extract::parse_json(bytes)?;
        let mut errors = Vec::new();
        check_position(payload.lat, payload.lng, payload.accuracy_m, &mut errors);
        if errors.is_empty() {
            Ok(payload)
        } else {
            Err(Problem::validation(errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(problem: &Problem) -> Vec<&str> {
        problem.errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn a_good_panic_parses() {
        let payload =
            PanicPayload::parse(br#"{"lat":-6.2,"lng":106.8,"accuracy_m":12.5,"kind":"medical"}"#)
                .expect("valid");
        assert_eq!(payload.kind.as_deref(), Some("medical"));
        assert_eq!(payload.accuracy_m, Some(12.5));
        PanicPayload::parse(br#"{"lat":0,"lng":0}"#).expect("optional fields are optional");
    }

    #[test]
    fn bad_panics_name_their_fields() {
        let problem =
            PanicPayload::parse(br#"{"lat":91,"lng":-181,"accuracy_m":-1,"kind":"Fire!"}"#)
                .expect_err("invalid");
        assert_eq!(problem.status, 422);
        assert_eq!(fields(&problem), ["lat", "lng", "accuracy_m", "kind"]);
        let problem = PanicPayload::parse(br#"{"lng":1}"#).expect_err("no lat");
        assert!(problem.to_string().contains("lat"), "{problem}");
        assert_eq!(PanicPayload::parse(b"not json").expect_err("x").status, 400);
        assert_eq!(
            PanicPayload::parse(&vec![b' '; MAX_PAYLOAD_BYTES + 1])
                .expect_err("too big")
                .status,
            413
        );
    }

    #[test]
    fn locations_take_an_optional_time() {
        let payload = LocationPayload::parse(
            br#"{"lat":-6.2,"lng":106.8,"recorded_at":"2026-11-21T06:00:00Z"}"#,
        )
        .expect("valid");
        assert_eq!(
            payload.recorded_at.map(|t| t.to_rfc3339()),
            Some("2026-11-21T06:00:00+00:00".to_owned())
        );
        let problem =
            LocationPayload::parse(br#"{"lat":"x","lng":0}"#).expect_err("lat not a number");
        assert!(problem.to_string().contains("lat") || fields(&problem).contains(&"lat"));
    }
}
