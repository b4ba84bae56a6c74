//! SQL of the LMS (schema `lms`). Every function is one statement unless it says otherwise; each is
//! exercised by the integration tests against PostgreSQL. Functions that take a `PgConnection` run
//! inside the caller's transaction.
//!
//! One file per use case, re-exported here so callers write `store::enroll`:
//! [`catalogue`], [`courses`], [`learning`], [`quizzes`], [`certificates`], [`reminders`].

pub mod catalogue;
pub mod certificates;
pub mod courses;
pub mod learning;
pub mod quizzes;
pub mod reminders;

pub use catalogue::*;
pub use certificates::*;
pub use courses::*;
pub use learning::*;
pub use quizzes::*;
pub use reminders::*;
