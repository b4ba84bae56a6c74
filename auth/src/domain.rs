//! Validated account values. Each is parsed once at the HTTP edge; past that, holding one means the
//! value follows the rules, so nothing downstream re-checks.

use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// A KREKI ID account id (a UUIDv7, so ids sort by creation time).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    ToSchema,
    sqlx::Type,
)]
#[serde(transparent)]
#[sqlx(transparent)]
pub struct UserId(pub Uuid);

impl UserId {
    /// A fresh, time-ordered id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

impl Default for UserId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A phone number in E.164 form (`+6281234567890`).
///
/// Indonesians write the same number as `0812-3456-7890`, `62812…` or `+62 812…`; all normalise to
/// one value, so one person has one account whatever they typed. A leading `0` is the Indonesian
/// trunk prefix; numbers of other countries must be given with `+` and their country code.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
pub struct Phone(String);

/// What a phone number must look like, for error messages.
pub const PHONE_RULE: &str = "must be a phone number such as 0812-3456-7890 or +6281234567890";

impl Phone {
    /// Parses and normalises `input`. Spaces, dashes, dots and parentheses are ignored.
    ///
    /// # Errors
    /// [`PHONE_RULE`] when it is not a plausible phone number.
    pub fn parse(input: &str) -> Result<Self, &'static str> {
        let trimmed = input.trim();
        let (plus, rest) = match trimmed.strip_prefix('+') {
            Some(rest) => (true, rest),
            None => (false, trimmed),
        };
        let mut digits = String::with_capacity(rest.len());
        for c in rest.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => return Err(PHONE_RULE),
            }
        }
        let e164_digits = if plus {
            digits
        } else if let Some(national) = digits.strip_prefix('0') {
            format!("62{national}")
        } else if digits.starts_with("62") {
            digits
        } else {
            return Err(PHONE_RULE);
        };
        // E.164 allows at most 15 digits; Indonesian numbers have 9 to 12 after the country code and
        // never start with 0 there (that would be a doubled trunk prefix).
        let valid = match e164_digits.strip_prefix("62") {
            Some(national) => (9..=12).contains(&national.len()) && !national.starts_with('0'),
            None => (8..=15).contains(&e164_digits.len()) && !e164_digits.starts_with('0'),
        };
        if valid {
            Ok(Self(format!("+{e164_digits}")))
        } else {
            Err(PHONE_RULE)
        }
    }

    /// The E.164 string (`+62…`).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An e-mail address, lower-cased so `Ani@Example.id` and `ani@example.id` are one login.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// Checks the shape only (`local@domain.tld`, no spaces, at most 254 characters): whether the
    /// mailbox exists is not ours to know.
    ///
    /// # Errors
    /// A message saying what is expected.
    pub fn parse(input: &str) -> Result<Self, &'static str> {
        let value = input.trim().to_lowercase();
        let ok = value.len() <= 254
            && !value.chars().any(|c| c.is_whitespace() || c.is_control())
            && value.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            });
        if ok {
            Ok(Self(value))
        } else {
            Err("must be an e-mail address such as ani@example.id")
        }
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A person's display name: trimmed, 1 to 100 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
pub struct PersonName(String);

impl PersonName {
    /// # Errors
    /// A message saying what is expected.
    pub fn parse(input: &str) -> Result<Self, &'static str> {
        let value = input.trim();
        let length = value.chars().count();
        if length == 0 || length > 100 || value.chars().any(char::is_control) {
            Err("must be 1 to 100 characters without control characters")
        } else {
            Ok(Self(value.to_owned()))
        }
    }

    /// The name as given (trimmed).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A new password that meets the rules (8 to 128 characters). Never logged: `Debug` hides it.
#[derive(Clone)]
pub struct NewPassword(String);

/// Shortest password accepted, in characters.
pub const PASSWORD_MIN_CHARS: usize = 8;
/// Longest password accepted, in characters: bounds the hashing work one request can cause.
pub const PASSWORD_MAX_CHARS: usize = 128;

impl NewPassword {
    /// # Errors
    /// A message saying what is expected.
    pub fn parse(input: &str) -> Result<Self, String> {
        let length = input.chars().count();
        if length < PASSWORD_MIN_CHARS {
            Err(format!("must be at least {PASSWORD_MIN_CHARS} characters"))
        } else if length > PASSWORD_MAX_CHARS {
            Err(format!("must be at most {PASSWORD_MAX_CHARS} characters"))
        } else {
            Ok(Self(input.to_owned()))
        }
    }

    /// The clear text, for hashing only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NewPassword(***)")
    }
}

/// What an account may do. Every account is a `citizen`; the other roles are granted by an admin.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// May raise alerts and follow its own.
    Citizen,
    /// May go on duty, receive offers and respond.
    Volunteer,
    /// Runs dispatch: sees everything live, assigns and cancels.
    Coordinator,
    /// Authors courses and records certificates.
    Trainer,
    /// Manages accounts, roles and OAuth2 clients; may also do what coordinators and trainers do.
    Admin,
}

impl Role {
    /// Every role, in order of privilege.
    pub const ALL: [Role; 5] = [
        Role::Citizen,
        Role::Volunteer,
        Role::Coordinator,
        Role::Trainer,
        Role::Admin,
    ];

    /// The wire name (`coordinator`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Citizen => "citizen",
            Role::Volunteer => "volunteer",
            Role::Coordinator => "coordinator",
            Role::Trainer => "trainer",
            Role::Admin => "admin",
        }
    }

    /// Parses a wire name.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|role| role.as_str() == value)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The roles of an account: sorted, without duplicates, always including `citizen`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
pub struct Roles(Vec<Role>);

impl Default for Roles {
    /// Just `citizen`, what every new account holds.
    fn default() -> Self {
        Self::new([])
    }
}

impl Roles {
    /// Normalises `roles`: adds `citizen`, sorts, removes duplicates.
    pub fn new(roles: impl IntoIterator<Item = Role>) -> Self {
        let mut roles: Vec<Role> = roles.into_iter().chain([Role::Citizen]).collect();
        roles.sort_unstable();
        roles.dedup();
        Self(roles)
    }

    /// Parses stored or claimed role names, ignoring unknown ones (a newer instance may know more).
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        Self::new(names.into_iter().filter_map(Role::parse))
    }

    /// True when the account holds `role`, or a role that includes it: an admin may do what
    /// coordinators and trainers do. Volunteer duty is personal and is never implied.
    pub fn grants(&self, role: Role) -> bool {
        self.0.contains(&role)
            || (matches!(role, Role::Coordinator | Role::Trainer) && self.0.contains(&Role::Admin))
    }

    /// True when the account literally holds `role` (no implication).
    pub fn contains(&self, role: Role) -> bool {
        self.0.contains(&role)
    }

    /// The roles, sorted.
    pub fn as_slice(&self) -> &[Role] {
        &self.0
    }

    /// The wire names, for storage.
    pub fn names(&self) -> Vec<String> {
        self.0.iter().map(|role| role.as_str().to_owned()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indonesian_numbers_in_every_spelling_are_one_account() {
        let expected = "+6281234567890";
        for input in [
            "081234567890",
            "0812-3456-7890",
            "+62 812 3456 7890",
            "6281234567890",
            "+62(812)34567890",
        ] {
            assert_eq!(
                Phone::parse(input).map(|p| p.0),
                Ok(expected.to_owned()),
                "{input}"
            );
        }
    }

    #[test]
    fn implausible_numbers_are_rejected() {
        for input in [
            "",
            "12345",
            "0812",
            "+62081234567890",
            "81234567890",
            "0812abc4567",
            "+1234567",
            "+1234567890123456",
            "08123456789012345",
        ] {
            assert!(Phone::parse(input).is_err(), "{input} should be rejected");
        }
        assert_eq!(
            Phone::parse("+14155550123").map(|p| p.0),
            Ok("+14155550123".to_owned())
        );
    }

    #[test]
    fn emails_are_lower_cased_and_shaped() {
        assert_eq!(
            Email::parse(" Ani@Example.ID ").map(|e| e.0),
            Ok("ani@example.id".to_owned())
        );
        for bad in [
            "ani",
            "ani@",
            "@example.id",
            "ani@example",
            "a b@example.id",
            "a@b@c.id",
            "ani@.id",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn password_length_is_counted_in_characters() {
        assert!(NewPassword::parse("short").is_err());
        assert!(NewPassword::parse("kata sandi").is_ok());
        assert!(
            NewPassword::parse("ééééééé").is_err(),
            "7 characters even if 14 bytes"
        );
        assert!(NewPassword::parse(&"x".repeat(129)).is_err());
        assert_eq!(
            format!("{:?}", NewPassword::parse("rahasia-sekali").ok()),
            "Some(NewPassword(***))"
        );
    }

    #[test]
    fn roles_always_include_citizen_and_admin_implies_staff_roles() {
        let roles = Roles::new([Role::Admin, Role::Admin]);
        assert_eq!(roles.as_slice(), &[Role::Citizen, Role::Admin]);
        assert!(roles.grants(Role::Coordinator) && roles.grants(Role::Trainer));
        assert!(!roles.grants(Role::Volunteer));
        assert_eq!(
            Roles::from_names(["volunteer", "pilot"]).as_slice(),
            &[Role::Citizen, Role::Volunteer]
        );
    }
}
