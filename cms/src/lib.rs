//! KREKI first-aid guidance: short, public pages (CPR, choking, bleeding, burns, seizures, what to
//! do while help comes) in Bahasa Indonesia and English, written in Markdown by admins and trainers
//! and linked from the citizen app right after a panic, for the alert's kind.
//!
//! - [`markdown`]: Markdown to sanitised HTML (pulldown-cmark, then ammonia). Nothing unsanitised
//!   is ever stored or served; the LMS renders lessons with the same function.
//! - [`domain`]: validated values ([`domain::Slug`], [`domain::Lang`], the alert kinds a page is
//!   for) and the rules of a page.
//! - [`store`]: the SQL (schema `cms`): every version is a row; the newest per slug and language
//!   is the page.
//! - [`routes`]: `GET /v1/guidance`, `GET /v1/guidance/{slug}`, `PUT /v1/guidance/{slug}` (the
//!   "guidance" rows of API.md's second round) and the version history.
//! - [`demo`]: the built-in pages, loaded by `kreki demo` and `kreki guidance load-demo`.
//! - [`error`]: [`CmsError`] and its problem+json mapping.
//!
//! ## Decisions
//! - **Versions are append-only.** `PUT` stores a new version when the title, text or kinds
//!   differ from the newest one, and answers the newest unchanged otherwise (a retried `PUT` does
//!   not add a version). Old versions stay readable with `?version=`.
//! - **Language fallback.** A page asked for in a language it has not been written in yet is
//!   answered in the other one, with `lang` saying which, so a citizen never gets nothing.
//! - **Rendered at write time.** `body_html` is rendered and sanitised when a version is stored,
//!   so reads are one indexed row.

pub mod demo;
pub mod domain;
pub mod error;
pub mod markdown;
pub mod routes;
pub mod store;

pub use error::CmsError;
pub use routes::{CmsState, router};
