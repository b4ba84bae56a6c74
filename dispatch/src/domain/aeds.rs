//! AEDs (automated external defibrillators) as the registry holds them: a position inside
//! Indonesia, a description of the exact place, weekly opening hours, and whether one is
//! *available* at an instant.
//!
//! Hours are weekly windows in **Asia/Jakarta** local time (WIB), because that is how a custodian
//! reads the sign on the office door: `{day, open, close}` with `day` 0 (Sunday) to 6 (Saturday),
//! as JavaScript's `Date.getDay()` and PostgreSQL's `EXTRACT(DOW ...)` count, and `open`/`close`
//! as `"HH:MM"`. A window ends on its own day: `close` may be `"24:00"`, and a device reachable
//! from 22:00 to 06:00 is two windows (`22:00-24:00`, then `00:00-06:00` of the next day).
//!
//! Asia/Jakarta has been UTC+07:00 all year since 1 January 1964 (the tz database lists no
//! transition after it: no daylight saving time), so local time is UTC plus seven hours; the
//! integration tests check the conversion against PostgreSQL's own tz database.
//!
//! [`available_at`] is the one rule of who may be sent to a device and what the citizen app shows
//! as available: verified, not out of service, and inside one of its windows at that instant.

use std::fmt;

use chrono::{DateTime, Datelike, FixedOffset, Timelike, Utc};
use kreki_platform::FieldError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::position::parse_position;
use crate::geo::LatLng;

/// Asia/Jakarta's offset from UTC, in seconds (WIB, UTC+07:00, no daylight saving time).
pub const JAKARTA_UTC_OFFSET_S: i32 = 7 * 3600;

/// Asia/Jakarta as an offset: checked when compiling (an offset under a day always exists).
const JAKARTA: FixedOffset = match FixedOffset::east_opt(JAKARTA_UTC_OFFSET_S) {
    Some(offset) => offset,
    None => panic!("UTC+07:00 is a valid offset"),
};

/// Latitudes of Indonesia's bounding box, degrees (Rote island in the south to Weh island in the
/// north, with a margin for the sea around them).
pub const INDONESIA_LAT: (f64, f64) = (-11.5, 6.5);

/// Longitudes of Indonesia's bounding box, degrees (Aceh's islands in the west to the Papua New
/// Guinea border in the east, with a margin).
pub const INDONESIA_LNG: (f64, f64) = (94.5, 141.5);

/// Most opening windows one AED may list (a few per day is plenty).
pub const MAX_WINDOWS: usize = 50;

/// Most custodian accounts of one AED.
pub const MAX_CUSTODIANS: usize = 20;

/// Longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 500;

/// One weekly opening window as the API and the database spell it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoursWindow {
    /// Day of the week in Asia/Jakarta: 0 Sunday, 1 Monday, ... 6 Saturday.
    #[schema(minimum = 0, maximum = 6)]
    pub day: i64,
    /// Opening time, Asia/Jakarta, `"HH:MM"` from `"00:00"` to `"23:59"`.
    #[schema(example = "08:00")]
    pub open: String,
    /// Closing time on the same day, Asia/Jakarta, `"HH:MM"` after `open`, up to `"24:00"`.
    #[schema(example = "17:00")]
    pub close: String,
}

/// A time of day as minutes after local midnight (0 to 1440; 1440 is `"24:00"`, the end of a
/// day).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ClockTime(u16);

impl ClockTime {
    /// Midnight at the end of the day (`"24:00"`), valid only as a closing time.
    pub const END_OF_DAY: Self = Self(24 * 60);

    /// Parses `"HH:MM"` (two digits each). `"24:00"` only when `end_of_day_ok`.
    pub fn parse(text: &str, end_of_day_ok: bool) -> Option<Self> {
        let bytes = text.as_bytes();
        if bytes.len() != 5 || bytes[2] != b':' {
            return None;
        }
        let digits = [bytes[0], bytes[1], bytes[3], bytes[4]];
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let [h1, h2, m1, m2] = digits.map(|digit| u16::from(digit - b'0'));
        let (hours, minutes) = (h1 * 10 + h2, m1 * 10 + m2);
        match (hours, minutes) {
            (24, 0) if end_of_day_ok => Some(Self::END_OF_DAY),
            (0..=23, 0..=59) => Some(Self(hours * 60 + minutes)),
            _ => None,
        }
    }

    /// Minutes after local midnight.
    pub fn minutes(self) -> u16 {
        self.0
    }

    /// The time `minutes` after midnight, if within a day (0 to 1440).
    pub fn from_minutes(minutes: u16) -> Option<Self> {
        (minutes <= 24 * 60).then_some(Self(minutes))
    }
}

impl fmt::Display for ClockTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

/// One checked window: `open <= t < close` on `day` (0 Sunday to 6 Saturday), Asia/Jakarta.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Window {
    /// Day of the week, 0 (Sunday) to 6 (Saturday).
    pub day: u8,
    /// Opens (inclusive).
    pub open: ClockTime,
    /// Closes (exclusive), after `open`.
    pub close: ClockTime,
}

impl Window {
    /// True when the window covers local `day` and minute of the day.
    fn covers(self, day: u8, minute: u16) -> bool {
        self.day == day && self.open.minutes() <= minute && minute < self.close.minutes()
    }

    fn overlaps(self, other: Self) -> bool {
        self.day == other.day && self.open < other.close && other.open < self.close
    }
}

/// Validated weekly hours: windows that each end after they start and never overlap, sorted by
/// day and opening time. No window at all means the device is never available.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WeeklyHours(Vec<Window>);

impl WeeklyHours {
    /// Checks windows as a request gives them, naming each bad one under `field` (such as
    /// `hours`): `hours[1].close` for a window that ends before it starts, `hours[2]` for one that
    /// overlaps an earlier one on the same day. Every problem is reported at once.
    ///
    /// # Errors
    /// One field error per problem.
    pub fn parse(windows: &[HoursWindow], field: &str) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        if windows.len() > MAX_WINDOWS {
            errors.push(FieldError::new(
                field,
                format!("must list at most {MAX_WINDOWS} windows"),
            ));
            return Err(errors);
        }
        let mut checked: Vec<(usize, Window)> = Vec::new();
        for (index, window) in windows.iter().enumerate() {
            let at = |part: &str| format!("{field}[{index}].{part}");
            let day = u8::try_from(window.day).ok().filter(|day| *day <= 6);
            if day.is_none() {
                errors.push(FieldError::new(
                    at("day"),
                    "must be 0 (Sunday) to 6 (Saturday)",
                ));
            }
            let open = ClockTime::parse(&window.open, false);
            if open.is_none() {
                errors.push(FieldError::new(
                    at("open"),
                    "must be a time HH:MM from 00:00 to 23:59 (Asia/Jakarta)",
                ));
            }
            let close = ClockTime::parse(&window.close, true);
            if close.is_none() {
                errors.push(FieldError::new(
                    at("close"),
                    "must be a time HH:MM from 00:01 to 24:00 (Asia/Jakarta)",
                ));
            }
            let (Some(day), Some(open), Some(close)) = (day, open, close) else {
                continue;
            };
            if close <= open {
                errors.push(FieldError::new(
                    at("close"),
                    format!(
                        "must be after open ({open}); a window ends on its own day, so split one past midnight at 24:00 and 00:00"
                    ),
                ));
                continue;
            }
            let window = Window { day, open, close };
            if let Some((earlier, _)) = checked.iter().find(|(_, seen)| seen.overlaps(window)) {
                errors.push(FieldError::new(
                    format!("{field}[{index}]"),
                    format!("overlaps {field}[{earlier}] on the same day"),
                ));
                continue;
            }
            checked.push((index, window));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut sorted: Vec<Window> = checked.into_iter().map(|(_, window)| window).collect();
        sorted.sort_unstable();
        Ok(Self(sorted))
    }

    /// The windows, by day and opening time.
    pub fn windows(&self) -> &[Window] {
        &self.0
    }

    /// True when one window covers `at` in Asia/Jakarta local time.
    pub fn open_at(&self, at: DateTime<Utc>) -> bool {
        let (day, minute) = jakarta_day_and_minute(at);
        self.0.iter().any(|window| window.covers(day, minute))
    }

    /// The windows as the API and the database spell them.
    pub fn to_wire(&self) -> Vec<HoursWindow> {
        self.0
            .iter()
            .map(|window| HoursWindow {
                day: i64::from(window.day),
                open: window.open.to_string(),
                close: window.close.to_string(),
            })
            .collect()
    }
}

/// The day of the week (0 Sunday to 6 Saturday) and minute of the day (0 to 1439) of `at` in
/// Asia/Jakarta.
pub fn jakarta_day_and_minute(at: DateTime<Utc>) -> (u8, u16) {
    let local = at.with_timezone(&JAKARTA);
    let day = u8::try_from(local.weekday().num_days_from_sunday()).unwrap_or(0);
    let minute = u16::try_from(local.hour() * 60 + local.minute()).unwrap_or(0);
    (day, minute)
}

/// Whether an AED may be shown as available and a responder sent to it at `at`: it is verified,
/// not out of service, and one of its windows covers `at` in Asia/Jakarta local time.
pub fn available_at(
    verified: bool,
    out_of_service: bool,
    hours: &WeeklyHours,
    at: DateTime<Utc>,
) -> bool {
    verified && !out_of_service && hours.open_at(at)
}

/// Checks a position for the registry: valid coordinates inside Indonesia's bounding box, naming
/// `lat` and `lng` under `prefix`.
///
/// # Errors
/// One field error per bad coordinate.
pub fn parse_indonesian_position(
    lat: f64,
    lng: f64,
    prefix: &str,
) -> Result<LatLng, Vec<FieldError>> {
    let at = parse_position(lat, lng, prefix)?;
    let mut errors = Vec::new();
    if !(INDONESIA_LAT.0..=INDONESIA_LAT.1).contains(&lat) {
        errors.push(FieldError::new(
            format!("{prefix}lat"),
            format!(
                "must be inside Indonesia (latitude {} to {})",
                INDONESIA_LAT.0, INDONESIA_LAT.1
            ),
        ));
    }
    if !(INDONESIA_LNG.0..=INDONESIA_LNG.1).contains(&lng) {
        errors.push(FieldError::new(
            format!("{prefix}lng"),
            format!(
                "must be inside Indonesia (longitude {} to {})",
                INDONESIA_LNG.0, INDONESIA_LNG.1
            ),
        ));
    }
    if errors.is_empty() {
        Ok(at)
    } else {
        Err(errors)
    }
}

/// Checks a description: trimmed, 1 to [`MAX_DESCRIPTION_CHARS`] characters.
///
/// # Errors
/// A field error naming `description`.
pub fn parse_description(text: &str) -> Result<String, FieldError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(FieldError::new(
            "description",
            "must say where exactly the device is (e.g. lobby, beside the lift)",
        ));
    }
    if text.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(FieldError::new(
            "description",
            format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    Ok(text.to_owned())
}

/// Checks custodian accounts: at most [`MAX_CUSTODIANS`], duplicates dropped.
///
/// # Errors
/// A field error naming `custodian_ids`.
pub fn parse_custodians(ids: &[Uuid]) -> Result<Vec<Uuid>, FieldError> {
    let mut unique: Vec<Uuid> = Vec::with_capacity(ids.len());
    for id in ids {
        if !unique.contains(id) {
            unique.push(*id);
        }
    }
    if unique.len() > MAX_CUSTODIANS {
        return Err(FieldError::new(
            "custodian_ids",
            format!("must list at most {MAX_CUSTODIANS} accounts"),
        ));
    }
    Ok(unique)
}

/// A new AED, checked (`POST /v1/aeds`).
#[derive(Debug, Clone, PartialEq)]
pub struct NewAed {
    /// Where it is, inside Indonesia.
    pub at: LatLng,
    /// The exact place, for someone running to fetch it.
    pub description: String,
    /// When it can be reached.
    pub hours: WeeklyHours,
    /// Accounts that look after it and may change it.
    pub custodians: Vec<Uuid>,
}

impl NewAed {
    /// Checks every field at once.
    ///
    /// # Errors
    /// One field error per problem (`lat`, `lng`, `description`, `hours[i]...`, `custodian_ids`).
    pub fn parse(
        lat: f64,
        lng: f64,
        description: &str,
        hours: &[HoursWindow],
        custodians: &[Uuid],
    ) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let at = parse_indonesian_position(lat, lng, "")
            .map_err(|mut bad| errors.append(&mut bad))
            .ok();
        let description = parse_description(description)
            .map_err(|bad| errors.push(bad))
            .ok();
        let hours = WeeklyHours::parse(hours, "hours")
            .map_err(|mut bad| errors.append(&mut bad))
            .ok();
        let custodians = parse_custodians(custodians)
            .map_err(|bad| errors.push(bad))
            .ok();
        match (at, description, hours, custodians) {
            (Some(at), Some(description), Some(hours), Some(custodians)) if errors.is_empty() => {
                Ok(Self {
                    at,
                    description,
                    hours,
                    custodians,
                })
            }
            _ => Err(errors),
        }
    }
}

/// A checked change to an AED (`PATCH /v1/aeds/{id}`): only what is `Some` changes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AedChange {
    /// A new position (latitude and longitude come together).
    pub at: Option<LatLng>,
    /// A new description.
    pub description: Option<String>,
    /// New hours (replacing all windows).
    pub hours: Option<WeeklyHours>,
    /// New custodians (replacing the list).
    pub custodians: Option<Vec<Uuid>>,
    /// Verified (admins only) or not.
    pub verified: Option<bool>,
    /// Out of service (broken, pads expired, taken away) or back in service.
    pub out_of_service: Option<bool>,
}

impl AedChange {
    /// Checks every given field at once.
    ///
    /// # Errors
    /// One field error per problem; `lat` without `lng` (or the reverse) names the missing one.
    pub fn parse(
        lat: Option<f64>,
        lng: Option<f64>,
        description: Option<&str>,
        hours: Option<&[HoursWindow]>,
        custodians: Option<&[Uuid]>,
    ) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let at = match (lat, lng) {
            (Some(lat), Some(lng)) => parse_indonesian_position(lat, lng, "")
                .map_err(|mut bad| errors.append(&mut bad))
                .ok(),
            (Some(_), None) => {
                errors.push(FieldError::new("lng", "must come with lat"));
                None
            }
            (None, Some(_)) => {
                errors.push(FieldError::new("lat", "must come with lng"));
                None
            }
            (None, None) => None,
        };
        let description = description
            .and_then(|text| parse_description(text).map_err(|bad| errors.push(bad)).ok());
        let hours = hours.and_then(|windows| {
            WeeklyHours::parse(windows, "hours")
                .map_err(|mut bad| errors.append(&mut bad))
                .ok()
        });
        let custodians =
            custodians.and_then(|ids| parse_custodians(ids).map_err(|bad| errors.push(bad)).ok());
        if errors.is_empty() {
            Ok(Self {
                at,
                description,
                hours,
                custodians,
                verified: None,
                out_of_service: None,
            })
        } else {
            Err(errors)
        }
    }

    /// True when the change moves the device or says it is somewhere else: a verification no
    /// longer holds after it.
    pub fn moves_the_device(&self) -> bool {
        self.at.is_some() || self.description.is_some()
    }
}

#[cfg(test)]
mod tests;
