//! Courses as trainers define them and as learners see them.
//!
//! [`CourseDefinition`] is the body of `POST /v1/lms/courses`; [`CourseDefinition::validate`] checks
//! every rule and names each wrong field by its path (`modules[0].quizzes[1].questions[2].options`).
//! [`Course`] is what learners get back: the same structure with ids, where a [`Question`] has no
//! field for its correct options at all, so they cannot leak by accident.

use chrono::{DateTime, Utc};
use kreki_platform::FieldError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::{CertificationCode, QuestionKind};

/// Most options a question may have; option ids are `a` to `j`.
pub const MAX_OPTIONS: usize = 10;
/// Default failed attempts in a row before a quiz locks.
pub const DEFAULT_MAX_ATTEMPTS: i32 = 3;
/// Default lock after the attempts are used up, in seconds (one hour).
pub const DEFAULT_COOLDOWN_S: i32 = 3600;

/// Body of `POST /v1/lms/courses`: a whole course at once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CourseDefinition {
    /// Title in the course's language, 1 to 200 characters.
    #[schema(example = "Bantuan Hidup Dasar (BLS)")]
    pub title: String,
    /// English title, for dashboards and partners.
    #[schema(example = "Basic Life Support (BLS)")]
    pub title_en: Option<String>,
    /// What the course is about, up to 5000 characters.
    #[serde(default)]
    pub description: String,
    /// Language tag of the content (`id` for Bahasa Indonesia, the default).
    pub language: Option<String>,
    /// Certification issued when every quiz is passed (`bls`); none for a course that only teaches.
    #[schema(example = "bls")]
    pub certification: Option<String>,
    /// 1 to 50 modules, in order.
    pub modules: Vec<ModuleDefinition>,
}

/// A module: lessons to read, then quizzes.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ModuleDefinition {
    /// 1 to 200 characters.
    pub title: String,
    /// Up to 100 lessons, in order.
    #[serde(default)]
    pub lessons: Vec<LessonDefinition>,
    /// Up to 10 quizzes, in order.
    #[serde(default)]
    pub quizzes: Vec<QuizDefinition>,
}

/// A lesson: Markdown text, optionally a video and attachments (all as links).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LessonDefinition {
    /// 1 to 200 characters.
    pub title: String,
    /// The lesson in Markdown, up to 100,000 characters.
    #[serde(default)]
    pub body_md: String,
    /// An http(s) link to a video.
    pub video_url: Option<String>,
    /// Up to 20 links to handouts, posters, slides.
    #[serde(default)]
    pub attachments: Vec<Attachment>,
}

/// A link attached to a lesson.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Attachment {
    /// What it is, 1 to 200 characters.
    pub title: String,
    /// An http(s) URL, up to 2000 characters.
    pub url: String,
}

/// A quiz and its rules.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QuizDefinition {
    /// 1 to 200 characters.
    pub title: String,
    /// Score needed to pass, 1 to 100 (percent of the quiz's points).
    #[schema(example = 80)]
    pub pass_mark_pct: i32,
    /// Failed attempts allowed in a row before the quiz locks for `cooldown_s` (1 to 100; default 3).
    pub max_attempts: Option<i32>,
    /// How long the quiz locks once the attempts are used up, in seconds (0 to 2592000 = 30 days;
    /// default 3600).
    pub cooldown_s: Option<i32>,
    /// How many questions each attempt draws at random from `questions` (a question bank); all of
    /// them when absent. 1 to the number of questions.
    pub draw_count: Option<i32>,
    /// 1 to 100 questions (the bank when `draw_count` is set).
    pub questions: Vec<QuestionDefinition>,
}

/// A question with its options; the correct ones are marked.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QuestionDefinition {
    /// `single` (exactly one correct option) or `multiple` (one or more).
    pub kind: QuestionKind,
    /// 1 to 2000 characters.
    pub prompt: String,
    /// 2 to 10 options, in order; they get the ids `a`, `b`, ...
    pub options: Vec<OptionDefinition>,
    /// Weight of the question, 1 to 100 (default 1).
    pub points: Option<i32>,
    /// Shown to the learner with their score once the attempt is submitted (why the right answer
    /// is right), up to 2000 characters.
    pub explanation: Option<String>,
}

/// An option of a question.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OptionDefinition {
    /// 1 to 500 characters.
    pub text: String,
    /// True for a correct option.
    #[serde(default)]
    pub correct: bool,
}

/// The id of the option at `index` (`a` for 0).
pub fn option_id(index: usize) -> String {
    let offset = u8::try_from(index.min(25)).unwrap_or(25);
    char::from(b'a' + offset).to_string()
}

fn check_text(errors: &mut Vec<FieldError>, field: &str, value: &str, max_chars: usize) {
    let chars = value.trim().chars().count();
    if chars == 0 || chars > max_chars {
        errors.push(FieldError::new(
            field,
            format!("must be 1 to {max_chars} characters"),
        ));
    }
}

fn check_url(errors: &mut Vec<FieldError>, field: &str, value: &str) {
    let value = value.trim();
    let scheme_ok = value.starts_with("https://") || value.starts_with("http://");
    if !scheme_ok || value.len() > 2000 || value.chars().any(char::is_whitespace) {
        errors.push(FieldError::new(
            field,
            "must be an http(s) URL of at most 2000 characters",
        ));
    }
}

impl CourseDefinition {
    /// Checks every rule, returning each broken one with the path of its field.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        check_text(&mut errors, "title", &self.title, 200);
        if let Some(title_en) = &self.title_en {
            check_text(&mut errors, "title_en", title_en, 200);
        }
        if self.description.chars().count() > 5000 {
            errors.push(FieldError::new(
                "description",
                "must be at most 5000 characters",
            ));
        }
        if let Some(language) = &self.language {
            let ok = (2..=8).contains(&language.len())
                && language
                    .chars()
                    .all(|c| c.is_ascii_alphabetic() || c == '-');
            if !ok {
                errors.push(FieldError::new(
                    "language",
                    "must be a language tag such as id or en",
                ));
            }
        }
        if let Some(code) = &self.certification
            && let Err(why) = CertificationCode::parse(code)
        {
            errors.push(FieldError::new("certification", why));
        }
        if self.modules.is_empty() || self.modules.len() > 50 {
            errors.push(FieldError::new("modules", "must have 1 to 50 modules"));
        }
        let mut quiz_count = 0usize;
        for (m, module) in self.modules.iter().enumerate() {
            let at = format!("modules[{m}]");
            check_text(&mut errors, &format!("{at}.title"), &module.title, 200);
            if module.lessons.len() > 100 {
                errors.push(FieldError::new(
                    format!("{at}.lessons"),
                    "must have at most 100 lessons",
                ));
            }
            if module.quizzes.len() > 10 {
                errors.push(FieldError::new(
                    format!("{at}.quizzes"),
                    "must have at most 10 quizzes",
                ));
            }
            for (l, lesson) in module.lessons.iter().enumerate() {
                let at = format!("{at}.lessons[{l}]");
                check_text(&mut errors, &format!("{at}.title"), &lesson.title, 200);
                if lesson.body_md.chars().count() > 100_000 {
                    errors.push(FieldError::new(
                        format!("{at}.body_md"),
                        "must be at most 100000 characters",
                    ));
                }
                if let Some(url) = &lesson.video_url {
                    check_url(&mut errors, &format!("{at}.video_url"), url);
                }
                if lesson.attachments.len() > 20 {
                    errors.push(FieldError::new(
                        format!("{at}.attachments"),
                        "must have at most 20 links",
                    ));
                }
                for (a, attachment) in lesson.attachments.iter().enumerate() {
                    let at = format!("{at}.attachments[{a}]");
                    check_text(&mut errors, &format!("{at}.title"), &attachment.title, 200);
                    check_url(&mut errors, &format!("{at}.url"), &attachment.url);
                }
            }
            for (q, quiz) in module.quizzes.iter().enumerate() {
                quiz_count += 1;
                quiz.validate(&format!("{at}.quizzes[{q}]"), &mut errors);
            }
        }
        if self.certification.is_some() && quiz_count == 0 && !self.modules.is_empty() {
            errors.push(FieldError::new(
                "modules",
                "a course that issues a certification needs at least one quiz",
            ));
        }
        errors
    }
}

impl QuizDefinition {
    fn validate(&self, at: &str, errors: &mut Vec<FieldError>) {
        check_text(errors, &format!("{at}.title"), &self.title, 200);
        if !(1..=100).contains(&self.pass_mark_pct) {
            errors.push(FieldError::new(
                format!("{at}.pass_mark_pct"),
                "must be 1 to 100",
            ));
        }
        if self.max_attempts.is_some_and(|n| !(1..=100).contains(&n)) {
            errors.push(FieldError::new(
                format!("{at}.max_attempts"),
                "must be 1 to 100",
            ));
        }
        if self
            .cooldown_s
            .is_some_and(|s| !(0..=2_592_000).contains(&s))
        {
            errors.push(FieldError::new(
                format!("{at}.cooldown_s"),
                "must be 0 to 2592000 seconds",
            ));
        }
        if let Some(draw) = self.draw_count
            && (draw < 1 || usize::try_from(draw).unwrap_or(usize::MAX) > self.questions.len())
        {
            errors.push(FieldError::new(
                format!("{at}.draw_count"),
                "must be 1 to the number of questions in the bank",
            ));
        }
        if self.questions.is_empty() || self.questions.len() > 100 {
            errors.push(FieldError::new(
                format!("{at}.questions"),
                "must have 1 to 100 questions",
            ));
        }
        for (n, question) in self.questions.iter().enumerate() {
            let at = format!("{at}.questions[{n}]");
            check_text(errors, &format!("{at}.prompt"), &question.prompt, 2000);
            if question
                .explanation
                .as_deref()
                .is_some_and(|text| text.chars().count() > 2000)
            {
                errors.push(FieldError::new(
                    format!("{at}.explanation"),
                    "must be at most 2000 characters",
                ));
            }
            if question.points.is_some_and(|p| !(1..=100).contains(&p)) {
                errors.push(FieldError::new(format!("{at}.points"), "must be 1 to 100"));
            }
            if question.options.len() < 2 || question.options.len() > MAX_OPTIONS {
                errors.push(FieldError::new(
                    format!("{at}.options"),
                    "must have 2 to 10 options",
                ));
            }
            for (o, option) in question.options.iter().enumerate() {
                check_text(
                    errors,
                    &format!("{at}.options[{o}].text"),
                    &option.text,
                    500,
                );
            }
            let correct = question
                .options
                .iter()
                .filter(|option| option.correct)
                .count();
            match question.kind {
                QuestionKind::Single if correct != 1 => errors.push(FieldError::new(
                    format!("{at}.options"),
                    "a single-choice question needs exactly one correct option",
                )),
                QuestionKind::Multiple if correct == 0 => errors.push(FieldError::new(
                    format!("{at}.options"),
                    "a multiple-choice question needs at least one correct option",
                )),
                _ => {}
            }
        }
    }
}

/// A course as learners see it: modules with lessons and quizzes, answers hidden.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Course {
    /// Course id (of this version).
    pub id: Uuid,
    /// The series this course is a version of: every version of one course shares it.
    pub series_id: Uuid,
    /// Version within the series, from 1. Learners keep the version they enrolled in.
    pub version: i32,
    /// Title in the course's language.
    pub title: String,
    /// English title.
    pub title_en: Option<String>,
    /// What it is about.
    pub description: String,
    /// Language tag of the content.
    pub language: String,
    /// Certification it issues, if any.
    pub certification: Option<String>,
    /// When it was made (UTC).
    pub created_at: DateTime<Utc>,
    /// Modules, in order.
    pub modules: Vec<Module>,
}

/// A module of a course.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Module {
    /// Module id.
    pub id: Uuid,
    /// Title.
    pub title: String,
    /// Lessons, in order.
    pub lessons: Vec<Lesson>,
    /// Quizzes, in order.
    pub quizzes: Vec<Quiz>,
}

/// A lesson.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Lesson {
    /// Lesson id (mark it done at `POST /v1/lms/lessons/{id}/complete`).
    pub id: Uuid,
    /// Title.
    pub title: String,
    /// Markdown text.
    pub body_md: String,
    /// The text as HTML, sanitised (safe to insert into a page).
    pub body_html: String,
    /// Video link.
    pub video_url: Option<String>,
    /// Attached links.
    pub attachments: Vec<Attachment>,
}

/// A quiz, with its questions in authored order and without answers.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Quiz {
    /// Quiz id.
    pub id: Uuid,
    /// Title.
    pub title: String,
    /// Score needed to pass, percent.
    pub pass_mark_pct: i32,
    /// Failed attempts allowed in a row before the quiz locks.
    pub max_attempts: i32,
    /// Lock after the attempts are used up, in seconds.
    pub cooldown_s: i32,
    /// Questions each attempt draws from the bank; none when every question is asked.
    pub draw_count: Option<i32>,
    /// Questions (answers hidden): the whole bank when `draw_count` is set (an attempt shows its
    /// own draw).
    pub questions: Vec<Question>,
}

/// A question as learners see it. There is deliberately no field for the correct options.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Question {
    /// Question id.
    pub id: Uuid,
    /// `single` or `multiple`.
    pub kind: QuestionKind,
    /// The question.
    pub prompt: String,
    /// Its weight.
    pub points: i32,
    /// The options, each with the id to answer with.
    pub options: Vec<QuestionOption>,
}

/// An option of a question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct QuestionOption {
    /// `a`, `b`, ...
    pub id: String,
    /// The text.
    pub text: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn definition() -> serde_json::Value {
        serde_json::json!({
            "title": "Kursus",
            "certification": "bls",
            "modules": [{
                "title": "Modul 1",
                "lessons": [{"title": "Pelajaran", "body_md": "# Hai", "video_url": "https://v.example/1",
                             "attachments": [{"title": "Poster", "url": "https://x.example/p.pdf"}]}],
                "quizzes": [{"title": "Kuis", "pass_mark_pct": 80, "questions": [
                    {"kind": "single", "prompt": "?", "options": [{"text": "ya", "correct": true}, {"text": "tidak"}]}
                ]}]
            }]
        })
    }

    fn parse(value: serde_json::Value) -> CourseDefinition {
        serde_json::from_value(value).unwrap_or_else(|error| panic!("definition parses: {error}"))
    }

    #[test]
    fn a_good_course_passes() {
        assert_eq!(parse(definition()).validate(), Vec::new());
    }

    #[test]
    fn broken_rules_name_their_fields() {
        let mut value = definition();
        value["modules"][0]["quizzes"][0]["questions"][0]["options"][1]["correct"] = true.into();
        value["modules"][0]["quizzes"][0]["pass_mark_pct"] = 0.into();
        value["modules"][0]["lessons"][0]["video_url"] = "javascript:alert(1)".into();
        value["certification"] = "Not A Code".into();
        let fields: Vec<String> = parse(value)
            .validate()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert!(
            fields.contains(&"modules[0].quizzes[0].questions[0].options".to_owned()),
            "{fields:?}"
        );
        assert!(
            fields.contains(&"modules[0].quizzes[0].pass_mark_pct".to_owned()),
            "{fields:?}"
        );
        assert!(
            fields.contains(&"modules[0].lessons[0].video_url".to_owned()),
            "{fields:?}"
        );
        assert!(fields.contains(&"certification".to_owned()), "{fields:?}");
    }

    #[test]
    fn option_ids_are_letters() {
        assert_eq!(option_id(0), "a");
        assert_eq!(option_id(9), "j");
    }
}
