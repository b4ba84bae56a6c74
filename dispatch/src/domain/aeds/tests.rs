//! Table tests of AED hours, availability and input checks. Dates used: 2026-12-05 is a Saturday,
//! 2026-12-07 a Monday; Asia/Jakarta is UTC+7 all year.

use chrono::{DateTime, Utc};

use super::*;

fn window(day: i64, open: &str, close: &str) -> HoursWindow {
    HoursWindow {
        day,
        open: open.to_owned(),
        close: close.to_owned(),
    }
}

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("an RFC 3339 instant")
        .with_timezone(&Utc)
}

fn fields(result: Result<WeeklyHours, Vec<FieldError>>) -> Vec<String> {
    result
        .expect_err("refused")
        .into_iter()
        .map(|error| error.field)
        .collect()
}

/// Weekdays 08:00-17:00, and Saturday night across midnight into Sunday 06:00.
fn office_and_saturday_night() -> WeeklyHours {
    let mut windows: Vec<HoursWindow> = (1..=5).map(|day| window(day, "08:00", "17:00")).collect();
    windows.push(window(6, "22:00", "24:00"));
    windows.push(window(0, "00:00", "06:00"));
    WeeklyHours::parse(&windows, "hours").expect("valid hours")
}

#[test]
fn availability_follows_jakarta_local_time() {
    let hours = office_and_saturday_night();
    // (instant in UTC, what it is in Jakarta, available?)
    let cases = [
        ("2026-12-07T01:00:00Z", "Mon 08:00, opening minute", true),
        ("2026-12-07T00:59:00Z", "Mon 07:59", false),
        ("2026-12-07T09:59:59Z", "Mon 16:59:59", true),
        ("2026-12-07T10:00:00Z", "Mon 17:00, closing minute", false),
        ("2026-12-07T05:00:00Z", "Mon 12:00 (UTC says 05:00)", true),
        (
            "2026-12-06T23:30:00Z",
            "Mon 06:30 (UTC still Sunday)",
            false,
        ),
        ("2026-12-05T14:59:00Z", "Sat 21:59", false),
        ("2026-12-05T15:00:00Z", "Sat 22:00", true),
        ("2026-12-05T16:59:00Z", "Sat 23:59", true),
        (
            "2026-12-05T17:00:00Z",
            "Sun 00:00 (UTC still Saturday)",
            true,
        ),
        ("2026-12-05T22:59:00Z", "Sun 05:59", true),
        ("2026-12-05T23:00:00Z", "Sun 06:00", false),
        ("2026-12-06T03:00:00Z", "Sun 10:00", false),
        ("2026-12-04T09:00:00Z", "Fri 16:00", true),
        ("2026-12-04T17:30:00Z", "Sat 00:30 (UTC Friday)", false),
        // No daylight saving time: the same local hour in June and December.
        ("2026-06-15T01:00:00Z", "Mon 08:00 in June", true),
        ("2026-06-15T00:59:00Z", "Mon 07:59 in June", false),
        // The year turns in Jakarta seven hours before it does in UTC: Fri 1 Jan 2027 00:30.
        ("2026-12-31T17:30:00Z", "Fri 00:30, new year", false),
        ("2027-01-01T02:00:00Z", "Fri 09:00, new year", true),
    ];
    for (instant, local, expected) in cases {
        assert_eq!(
            available_at(true, false, &hours, utc(instant)),
            expected,
            "{instant} ({local} in Jakarta)"
        );
    }
}

#[test]
fn out_of_service_unverified_or_without_hours_is_never_available() {
    let hours = office_and_saturday_night();
    let open = utc("2026-12-07T03:00:00Z");
    // (verified, out of service, hours, available at an open instant?)
    let cases = [
        (true, false, hours.clone(), true),
        (true, true, hours.clone(), false),
        (false, false, hours.clone(), false),
        (false, true, hours, false),
        (true, false, WeeklyHours::default(), false),
    ];
    for (verified, out_of_service, hours, expected) in cases {
        assert_eq!(
            available_at(verified, out_of_service, &hours, open),
            expected,
            "verified {verified}, out of service {out_of_service}, {} windows",
            hours.windows().len()
        );
    }
}

#[test]
fn around_the_clock_is_seven_whole_days() {
    let windows: Vec<HoursWindow> = (0..=6).map(|day| window(day, "00:00", "24:00")).collect();
    let hours = WeeklyHours::parse(&windows, "hours").expect("valid");
    for instant in [
        "2026-12-05T16:59:59Z",
        "2026-12-05T17:00:00Z",
        "2026-12-06T00:00:00Z",
        "2026-12-31T17:00:00Z",
        "2027-03-10T12:34:56Z",
    ] {
        assert!(available_at(true, false, &hours, utc(instant)), "{instant}");
    }
}

#[test]
fn jakarta_day_and_minute_is_utc_plus_seven() {
    // (UTC instant, Jakarta day 0=Sunday, minute of the day)
    let cases = [
        ("2026-12-05T16:59:00Z", 6, 23 * 60 + 59),
        ("2026-12-05T17:00:00Z", 0, 0),
        ("2026-12-06T16:59:59Z", 0, 23 * 60 + 59),
        ("2026-12-06T17:00:00Z", 1, 0),
        ("2026-12-07T00:00:00Z", 1, 7 * 60),
        ("2026-06-30T23:15:00Z", 3, 6 * 60 + 15),
    ];
    for (instant, day, minute) in cases {
        assert_eq!(
            jakarta_day_and_minute(utc(instant)),
            (day, minute),
            "{instant}"
        );
    }
}

#[test]
fn bad_windows_name_their_field() {
    // (windows, the fields named)
    let cases: Vec<(Vec<HoursWindow>, Vec<&str>)> = vec![
        (vec![window(2, "17:00", "08:00")], vec!["hours[0].close"]),
        (vec![window(2, "08:00", "08:00")], vec!["hours[0].close"]),
        (
            vec![window(1, "08:00", "12:00"), window(1, "11:00", "13:00")],
            vec!["hours[1]"],
        ),
        (
            vec![window(1, "08:00", "17:00"), window(1, "09:00", "10:00")],
            vec!["hours[1]"],
        ),
        (
            vec![
                window(3, "08:00", "12:00"),
                window(3, "13:00", "15:00"),
                window(3, "07:00", "08:30"),
            ],
            vec!["hours[2]"],
        ),
        (vec![window(7, "08:00", "17:00")], vec!["hours[0].day"]),
        (vec![window(-1, "08:00", "17:00")], vec!["hours[0].day"]),
        (vec![window(1, "8:00", "17:00")], vec!["hours[0].open"]),
        (vec![window(1, "24:00", "24:00")], vec!["hours[0].open"]),
        (vec![window(1, "08:00", "23:60")], vec!["hours[0].close"]),
        (vec![window(1, "08:00", "24:01")], vec!["hours[0].close"]),
        (
            vec![window(1, "ab:cd", "1700")],
            vec!["hours[0].open", "hours[0].close"],
        ),
        (
            vec![window(1, "08:00", "17:00"), window(9, "08:00", "07:00")],
            vec!["hours[1].day"],
        ),
    ];
    for (windows, expected) in cases {
        assert_eq!(
            fields(WeeklyHours::parse(&windows, "hours")),
            expected,
            "{windows:?}"
        );
    }
    let too_many: Vec<HoursWindow> = (0..=MAX_WINDOWS)
        .map(|i| window(i64::try_from(i % 7).expect("small"), "00:00", "00:01"))
        .collect();
    assert_eq!(fields(WeeklyHours::parse(&too_many, "hours")), ["hours"]);
}

#[test]
fn good_windows_are_kept_sorted() {
    let hours = WeeklyHours::parse(
        &[
            window(1, "12:00", "13:00"),
            window(1, "08:00", "12:00"),
            window(0, "22:00", "24:00"),
            window(2, "08:00", "12:00"),
        ],
        "hours",
    )
    .expect("touching windows and the same times on other days are fine");
    assert_eq!(
        hours.to_wire(),
        [
            window(0, "22:00", "24:00"),
            window(1, "08:00", "12:00"),
            window(1, "12:00", "13:00"),
            window(2, "08:00", "12:00"),
        ]
    );
    assert_eq!(
        WeeklyHours::parse(&hours.to_wire(), "hours").expect("round trip"),
        hours
    );
}

#[test]
fn clock_times_parse_and_print() {
    assert_eq!(
        ClockTime::parse("00:00", false).map(ClockTime::minutes),
        Some(0)
    );
    assert_eq!(
        ClockTime::parse("23:59", false).map(ClockTime::minutes),
        Some(1439)
    );
    assert_eq!(ClockTime::parse("24:00", false), None);
    assert_eq!(ClockTime::parse("24:00", true), Some(ClockTime::END_OF_DAY));
    assert_eq!(ClockTime::parse(" 8:00", false), None);
    assert_eq!(ClockTime::parse("08:00:00", false), None);
    assert_eq!(ClockTime::parse("-1:00", false), None);
    assert_eq!(ClockTime::END_OF_DAY.to_string(), "24:00");
    assert_eq!(
        ClockTime::from_minutes(485)
            .map(|t| t.to_string())
            .as_deref(),
        Some("08:05")
    );
    assert_eq!(ClockTime::from_minutes(1441), None);
}

#[test]
fn positions_must_be_inside_indonesia() {
    // (lat, lng, fields named)
    let cases: [(f64, f64, &[&str]); 7] = [
        (-6.175392, 106.827153, &[]),
        (5.89, 95.32, &[]),
        (-10.9, 123.0, &[]),
        (-2.5, 140.9, &[]),
        (14.6, 121.0, &["lat"]),
        (-33.86, 151.2, &["lat", "lng"]),
        (f64::NAN, 106.8, &["lat"]),
    ];
    for (lat, lng, expected) in cases {
        let named: Vec<String> = match parse_indonesian_position(lat, lng, "") {
            Ok(_) => Vec::new(),
            Err(errors) => errors.into_iter().map(|error| error.field).collect(),
        };
        assert_eq!(named, expected, "({lat}, {lng})");
    }
}

#[test]
fn a_new_aed_reports_every_bad_field() {
    let too_many: Vec<Uuid> = (0..=MAX_CUSTODIANS).map(|_| Uuid::now_v7()).collect();
    let errors = NewAed::parse(1.3, 151.0, "   ", &[window(1, "17:00", "08:00")], &too_many)
        .expect_err("refused");
    let named: Vec<&str> = errors.iter().map(|error| error.field.as_str()).collect();
    assert_eq!(
        named,
        ["lng", "description", "hours[0].close", "custodian_ids"]
    );

    let custodian = Uuid::now_v7();
    let aed = NewAed::parse(
        -6.2,
        106.8,
        "  Lobi utama, samping lift  ",
        &[window(1, "08:00", "17:00")],
        &[custodian, custodian],
    )
    .expect("valid");
    assert_eq!(aed.description, "Lobi utama, samping lift");
    assert_eq!(aed.custodians, [custodian]);
}

#[test]
fn a_change_names_a_coordinate_that_comes_alone() {
    let errors = AedChange::parse(Some(-6.2), None, None, None, None).expect_err("refused");
    assert_eq!(errors[0].field, "lng");
    let errors = AedChange::parse(None, Some(106.8), Some(""), None, None).expect_err("refused");
    let named: Vec<&str> = errors.iter().map(|error| error.field.as_str()).collect();
    assert_eq!(named, ["lat", "description"]);
    let change = AedChange::parse(None, None, None, Some(&[]), None).expect("valid");
    assert_eq!(change.hours, Some(WeeklyHours::default()));
    assert!(!change.moves_the_device());
    let moved = AedChange::parse(Some(-6.2), Some(106.8), None, None, None).expect("valid");
    assert!(moved.moves_the_device());
}
