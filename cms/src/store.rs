//! The SQL of the guidance service (schema `cms`). The primary key `(slug, lang, version)` serves
//! every query here: the newest version of a page is the last entry of its index range.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::{Lang, PageEdit, Slug};

/// One stored version.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PageRow {
    /// Slug.
    pub slug: String,
    /// `id` or `en`.
    pub lang: String,
    /// Version, from 1.
    pub version: i32,
    /// Title.
    pub title: String,
    /// Markdown.
    pub body_markdown: String,
    /// Sanitised HTML.
    pub body_html: String,
    /// Alert kinds.
    pub kinds: Vec<String>,
    /// Author, if any.
    pub author_id: Option<Uuid>,
    /// When this version was stored.
    pub created_at: DateTime<Utc>,
}

/// The columns of [`PageRow`], for `concat!` (sqlx takes only static SQL).
macro_rules! columns {
    () => {
        "slug, lang, version, title, body_markdown, body_html, kinds, author_id, created_at"
    };
}

/// The newest version of every page in `lang`, plus pages written only in the other language
/// (the newest of those), ordered by slug.
pub async fn list(pool: &PgPool, lang: Lang) -> Result<Vec<PageRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM (
             SELECT DISTINCT ON (slug) ",
        columns!(),
        " FROM cms.guidance
             ORDER BY slug, (lang = $1) DESC, version DESC
         ) newest ORDER BY slug"
    ))
    .bind(lang.as_str())
    .fetch_all(pool)
    .await
}

/// The newest version of `slug` in `lang`, or in the other language when it has none in `lang`;
/// or a given `version` (of the language found).
pub async fn page(
    pool: &PgPool,
    slug: &Slug,
    lang: Lang,
    version: Option<i32>,
) -> Result<Option<PageRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM cms.guidance
         WHERE slug = $1 AND ($3::integer IS NULL OR version = $3)
         ORDER BY (lang = $2) DESC, version DESC LIMIT 1"
    ))
    .bind(slug.as_str())
    .bind(lang.as_str())
    .bind(version)
    .fetch_optional(pool)
    .await
}

/// Every version of `slug` in `lang`, newest first.
pub async fn versions(pool: &PgPool, slug: &Slug, lang: Lang) -> Result<Vec<PageRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM cms.guidance WHERE slug = $1 AND lang = $2 ORDER BY version DESC"
    ))
    .bind(slug.as_str())
    .bind(lang.as_str())
    .fetch_all(pool)
    .await
}

/// Stores `edit` as the next version of `slug` unless it equals the newest one; answers the
/// newest version either way and whether it is new. Edits of one page are serialised with a
/// transaction-scoped advisory lock, so two editors get versions n+1 and n+2, never a conflict.
pub async fn put(
    conn: &mut PgConnection,
    slug: &Slug,
    edit: &PageEdit,
    body_html: &str,
    author: Option<Uuid>,
) -> Result<(PageRow, bool), sqlx::Error> {
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtextextended('cms.guidance:' || $1 || ':' || $2, 0))",
    )
    .bind(slug.as_str())
    .bind(edit.lang.as_str())
    .execute(&mut *conn)
    .await?;
    let newest: Option<PageRow> = sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM cms.guidance WHERE slug = $1 AND lang = $2 ORDER BY version DESC LIMIT 1"
    ))
    .bind(slug.as_str())
    .bind(edit.lang.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(row) = newest.as_ref().filter(|row| {
        row.title == edit.title
            && row.body_markdown == edit.body_markdown
            && row.kinds == edit.kinds
    }) {
        return Ok((row.clone(), false));
    }
    let version = newest.map_or(1, |row| row.version + 1);
    let row = sqlx::query_as(concat!("INSERT INTO cms.guidance (slug, lang, version, title, body_markdown, body_html, kinds, author_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING ", columns!(), ""))
    .bind(slug.as_str())
    .bind(edit.lang.as_str())
    .bind(version)
    .bind(&edit.title)
    .bind(&edit.body_markdown)
    .bind(body_html)
    .bind(&edit.kinds)
    .bind(author)
    .fetch_one(&mut *conn)
    .await?;
    Ok((row, true))
}

/// True when `slug` has any version in `lang` (the demo loader leaves such pages alone).
pub async fn exists(pool: &PgPool, slug: &Slug, lang: Lang) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM cms.guidance WHERE slug = $1 AND lang = $2)")
        .bind(slug.as_str())
        .bind(lang.as_str())
        .fetch_one(pool)
        .await
}
