//! Aftercare: the answer a volunteer gives to a check-in some time after an assignment ended, and
//! when that answer asks coordinators for support.
//!
//! Volunteers who respond to emergencies ask most for a check-in afterwards; a few are hit hard
//! (more often the young and the less trained). An answer asks for support when the volunteer
//! says so (`wants_contact`) or rates their wellbeing 1 or 2 of 5: coordinators then see it
//! flagged.

use kreki_platform::FieldError;

/// Longest note of an answer, in characters.
pub const MAX_NOTE_CHARS: usize = 1000;

/// Wellbeing ratings at or below this ask for support even without `wants_contact`.
pub const SUPPORT_WELLBEING_AT_MOST: u8 = 2;

/// A checked answer to a check-in (`POST /v1/checkins/{id}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckinAnswer {
    /// How the volunteer is, 1 (very bad) to 5 (fine).
    pub wellbeing: u8,
    /// They want someone to contact them.
    pub wants_contact: bool,
    /// What happened, or anything they want to say.
    pub note: Option<String>,
}

impl CheckinAnswer {
    /// Checks an answer; every bad field is reported at once.
    ///
    /// # Errors
    /// Field errors naming `wellbeing` (not 1 to 5) and `note` (too long).
    pub fn parse(
        wellbeing: i64,
        wants_contact: bool,
        note: Option<&str>,
    ) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let wellbeing = u8::try_from(wellbeing)
            .ok()
            .filter(|value| (1..=5).contains(value));
        if wellbeing.is_none() {
            errors.push(FieldError::new(
                "wellbeing",
                "must be 1 (very bad) to 5 (fine)",
            ));
        }
        let note = note
            .map(str::trim)
            .filter(|note| !note.is_empty())
            .map(str::to_owned);
        if note
            .as_ref()
            .is_some_and(|note| note.chars().count() > MAX_NOTE_CHARS)
        {
            errors.push(FieldError::new(
                "note",
                format!("must be at most {MAX_NOTE_CHARS} characters"),
            ));
        }
        match wellbeing {
            Some(wellbeing) if errors.is_empty() => Ok(Self {
                wellbeing,
                wants_contact,
                note,
            }),
            _ => Err(errors),
        }
    }

    /// True when coordinators should reach out: the volunteer asked, or rated their wellbeing
    /// [`SUPPORT_WELLBEING_AT_MOST`] or lower.
    pub fn support_requested(&self) -> bool {
        support_requested(self.wellbeing, self.wants_contact)
    }
}

/// The rule of [`CheckinAnswer::support_requested`], for stored answers too.
pub fn support_requested(wellbeing: u8, wants_contact: bool) -> bool {
    wants_contact || wellbeing <= SUPPORT_WELLBEING_AT_MOST
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn support_is_requested_when_asked_or_feeling_bad() {
        // (wellbeing, wants contact, support requested?)
        let cases = [
            (1, false, true),
            (2, false, true),
            (3, false, false),
            (5, false, false),
            (5, true, true),
            (3, true, true),
        ];
        for (wellbeing, wants_contact, expected) in cases {
            let answer = CheckinAnswer::parse(wellbeing, wants_contact, None).expect("valid");
            assert_eq!(
                answer.support_requested(),
                expected,
                "wellbeing {wellbeing}, wants contact {wants_contact}"
            );
        }
    }

    #[test]
    fn bad_answers_name_their_field() {
        for wellbeing in [0, 6, -1, 256] {
            let errors = CheckinAnswer::parse(wellbeing, false, None).expect_err("refused");
            assert_eq!(errors[0].field, "wellbeing", "{wellbeing}");
        }
        let long = "a".repeat(MAX_NOTE_CHARS + 1);
        let errors = CheckinAnswer::parse(9, true, Some(&long)).expect_err("refused");
        let named: Vec<&str> = errors.iter().map(|error| error.field.as_str()).collect();
        assert_eq!(named, ["wellbeing", "note"]);
        let answer = CheckinAnswer::parse(4, false, Some("  ")).expect("valid");
        assert_eq!(answer.note, None);
    }
}
