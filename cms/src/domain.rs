//! Validated values of a guidance page and the rules of an edit.

use kreki_platform::FieldError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The alert kinds of the contract (API.md); a page names the kinds it helps with.
pub const ALERT_KINDS: [&str; 7] = [
    "medical",
    "cardiac_arrest",
    "accident",
    "fire",
    "disaster",
    "security",
    "other",
];

/// Longest Markdown body, in characters.
pub const MAX_BODY_CHARS: usize = 50_000;
/// Longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;

/// A page's stable name in URLs (`cpr`, `while-waiting`): 2 to 64 lower-case letters, digits or
/// `-`, starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slug(String);

impl Slug {
    /// Parses a slug.
    ///
    /// # Errors
    /// Says what a slug looks like.
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        let ok = (2..=64).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !text.starts_with('-');
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err("must be 2 to 64 lower-case letters, digits or -, such as cpr or while-waiting")
        }
    }

    /// The slug.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A language guidance is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// Bahasa Indonesia (the default).
    Id,
    /// English.
    En,
}

impl Lang {
    /// Parses `id` or `en`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "id" => Some(Self::Id),
            "en" => Some(Self::En),
            _ => None,
        }
    }

    /// `id` or `en`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::En => "en",
        }
    }

    /// The other language (the fallback).
    pub fn other(self) -> Self {
        match self {
            Self::Id => Self::En,
            Self::En => Self::Id,
        }
    }
}

/// One edit of a page, checked: what `PUT /v1/guidance/{slug}` stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageEdit {
    /// The language of this text.
    pub lang: Lang,
    /// Title, trimmed.
    pub title: String,
    /// The text in Markdown.
    pub body_markdown: String,
    /// Alert kinds the page helps with, sorted, without repeats.
    pub kinds: Vec<String>,
}

impl PageEdit {
    /// Checks every rule and names each broken one by its field.
    ///
    /// # Errors
    /// Every broken rule.
    pub fn parse(
        lang: &str,
        title: &str,
        body_markdown: &str,
        kinds: &[String],
    ) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let lang = Lang::parse(lang.trim());
        if lang.is_none() {
            errors.push(FieldError::new("lang", "must be id or en"));
        }
        let title = title.trim();
        if title.is_empty() || title.chars().count() > MAX_TITLE_CHARS {
            errors.push(FieldError::new(
                "title",
                format!("must be 1 to {MAX_TITLE_CHARS} characters"),
            ));
        }
        if body_markdown.trim().is_empty() || body_markdown.chars().count() > MAX_BODY_CHARS {
            errors.push(FieldError::new(
                "body_markdown",
                format!("must be 1 to {MAX_BODY_CHARS} characters"),
            ));
        }
        for (index, kind) in kinds.iter().enumerate() {
            if !ALERT_KINDS.contains(&kind.as_str()) {
                errors.push(FieldError::new(
                    format!("kinds[{index}]"),
                    format!("must be one of {}", ALERT_KINDS.join(", ")),
                ));
            }
        }
        let Some(lang) = lang else {
            return Err(errors);
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut kinds = kinds.to_vec();
        kinds.sort();
        kinds.dedup();
        Ok(Self {
            lang,
            title: title.to_owned(),
            body_markdown: body_markdown.to_owned(),
            kinds,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert!(Slug::parse("cpr").is_ok());
        assert!(Slug::parse("while-waiting").is_ok());
        for bad in ["", "a", "CPR", "-x", "a b", "../x", &"x".repeat(65)] {
            assert!(Slug::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn edits_name_their_fields() {
        let errors = PageEdit::parse("fr", " ", "", &["flood".to_owned()]).expect_err("bad");
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["lang", "title", "body_markdown", "kinds[0]"]);
        let edit = PageEdit::parse(
            "en",
            " CPR ",
            "Push hard",
            &["medical".into(), "cardiac_arrest".into(), "medical".into()],
        )
        .expect("good");
        assert_eq!(edit.title, "CPR");
        assert_eq!(edit.kinds, ["cardiac_arrest", "medical"]);
    }
}
