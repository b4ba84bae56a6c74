//! The guidance endpoints (API.md, second round): public reads, edits by admins and trainers.
//! Handlers parse, call [`crate::store`], shape; every error goes through [`CmsError`].

use axum::extract::{FromRef, State};
use axum::http::header;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use kreki_auth::{CurrentUser, Role, TokenVerifier};
use kreki_platform::Problem;
use kreki_platform::extract::{Json, Path, Query};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::domain::{ALERT_KINDS, Lang, PageEdit, Slug};
use crate::error::{CmsError, CmsResult};
use crate::store::{self, PageRow};

/// State of the guidance routes.
#[derive(Clone)]
pub struct CmsState {
    /// The database holding schema `cms`.
    pub pool: PgPool,
    /// Verifies access tokens (edits).
    pub verifier: TokenVerifier,
}

impl FromRef<CmsState> for TokenVerifier {
    fn from_ref(state: &CmsState) -> Self {
        state.verifier.clone()
    }
}

/// The routes with their OpenAPI description, ready to merge into the app.
pub fn router(state: CmsState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(list_guidance))
        .routes(routes!(get_guidance, put_guidance))
        .routes(routes!(guidance_versions))
        .with_state(state)
}

/// Pages may be cached this long by browsers and proxies, in seconds: guidance changes rarely,
/// and the apps keep their own offline copy.
const CACHE_CONTROL: &str = "public, max-age=300";

/// A page in a list.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GuidanceSummary {
    /// Stable name (`cpr`).
    pub slug: String,
    /// Title.
    pub title: String,
    /// Alert kinds it helps with.
    pub kinds: Vec<String>,
    /// The language it is in (the other one when not written in the one asked for yet).
    pub lang: Lang,
    /// Its newest version.
    pub version: i32,
    /// When that version was stored (UTC).
    pub updated_at: DateTime<Utc>,
}

/// A page.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GuidancePage {
    /// Stable name.
    pub slug: String,
    /// The language it is in.
    pub lang: Lang,
    /// Title.
    pub title: String,
    /// The text as written (Markdown).
    pub body_markdown: String,
    /// The text as HTML, sanitised: safe to insert into a page.
    pub body_html: String,
    /// Alert kinds it helps with.
    pub kinds: Vec<String>,
    /// Version, from 1.
    pub version: i32,
    /// When this version was stored (UTC).
    pub updated_at: DateTime<Utc>,
    /// Who wrote this version (none for built-in pages).
    pub author_id: Option<Uuid>,
}

fn lang_of(row: &PageRow) -> Lang {
    Lang::parse(&row.lang).unwrap_or(Lang::Id)
}

impl From<PageRow> for GuidancePage {
    fn from(row: PageRow) -> Self {
        Self {
            lang: lang_of(&row),
            slug: row.slug,
            title: row.title,
            body_markdown: row.body_markdown,
            body_html: row.body_html,
            kinds: row.kinds,
            version: row.version,
            updated_at: row.created_at,
            author_id: row.author_id,
        }
    }
}

impl From<PageRow> for GuidanceSummary {
    fn from(row: PageRow) -> Self {
        Self {
            lang: lang_of(&row),
            slug: row.slug,
            title: row.title,
            kinds: row.kinds,
            version: row.version,
            updated_at: row.created_at,
        }
    }
}

/// Query of the list.
#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// `id` (default) or `en`.
    pub lang: Option<String>,
    /// Only pages for this alert kind (`cardiac_arrest`).
    pub kind: Option<String>,
}

fn parse_lang(lang: Option<&str>) -> CmsResult<Lang> {
    match lang.map(str::trim).filter(|l| !l.is_empty()) {
        None => Ok(Lang::Id),
        Some(text) => Lang::parse(text).ok_or_else(|| CmsError::field("lang", "must be id or en")),
    }
}

fn parse_slug(slug: &str) -> CmsResult<Slug> {
    Slug::parse(slug).map_err(|_| CmsError::NotFound("guidance page"))
}

/// Every guidance page (the newest version of each), in `lang` where written in it.
#[utoipa::path(get, path = "/v1/guidance", tag = "guidance", params(ListQuery),
    responses(
        (status = 200, description = "Pages, by slug", body = [GuidanceSummary]),
        (status = 422, description = "`lang` or `kind` unknown", body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_guidance(
    State(state): State<CmsState>,
    Query(query): Query<ListQuery>,
) -> CmsResult<impl IntoResponse> {
    let lang = parse_lang(query.lang.as_deref())?;
    let kind = query
        .kind
        .as_deref()
        .map(str::trim)
        .filter(|k| !k.is_empty());
    if let Some(kind) = kind
        && !ALERT_KINDS.contains(&kind)
    {
        return Err(CmsError::field(
            "kind",
            format!("must be one of {}", ALERT_KINDS.join(", ")),
        ));
    }
    let pages: Vec<GuidanceSummary> = store::list(&state.pool, lang)
        .await?
        .into_iter()
        .filter(|row| kind.is_none_or(|kind| row.kinds.iter().any(|k| k == kind)))
        .map(GuidanceSummary::from)
        .collect();
    Ok(([(header::CACHE_CONTROL, CACHE_CONTROL)], Json(pages)))
}

/// Query of one page.
#[derive(Debug, Deserialize, IntoParams)]
pub struct PageQuery {
    /// `id` (default) or `en`.
    pub lang: Option<String>,
    /// An older version (default: the newest).
    pub version: Option<i32>,
}

/// One page, with its Markdown and its sanitised HTML.
#[utoipa::path(get, path = "/v1/guidance/{slug}", tag = "guidance", params(("slug" = String, Path, description = "Page slug"), PageQuery),
    responses(
        (status = 200, description = "The page (in the other language when not written in this one yet)", body = GuidancePage),
        (status = 404, description = "No such page or version", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`lang` unknown", body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_guidance(
    State(state): State<CmsState>,
    Path(slug): Path<String>,
    Query(query): Query<PageQuery>,
) -> CmsResult<impl IntoResponse> {
    let lang = parse_lang(query.lang.as_deref())?;
    let slug = parse_slug(&slug)?;
    let row = store::page(&state.pool, &slug, lang, query.version)
        .await?
        .ok_or(CmsError::NotFound("guidance page"))?;
    Ok((
        [(header::CACHE_CONTROL, CACHE_CONTROL)],
        Json(GuidancePage::from(row)),
    ))
}

/// Body of `PUT /v1/guidance/{slug}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PutGuidance {
    /// `id` or `en`.
    pub lang: String,
    /// 1 to 200 characters.
    pub title: String,
    /// The text in Markdown, 1 to 50,000 characters; raw HTML is sanitised.
    pub body_markdown: String,
    /// Alert kinds the page helps with (`cardiac_arrest`, ...).
    #[serde(default)]
    pub kinds: Vec<String>,
}

/// Writes a page (admins and trainers): a new version when anything changed.
#[utoipa::path(put, path = "/v1/guidance/{slug}", tag = "guidance", request_body = PutGuidance, security(("bearer" = [])),
    params(("slug" = String, Path, description = "Page slug: 2 to 64 of a-z, 0-9 and -")),
    responses(
        (status = 200, description = "The newest version (new, or unchanged when the edit changed nothing)", body = GuidancePage),
        (status = 403, description = "Neither admin nor trainer", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field breaks the rules (named)", body = Problem, content_type = "application/problem+json"),
    ))]
async fn put_guidance(
    State(state): State<CmsState>,
    caller: CurrentUser,
    Path(slug): Path<String>,
    Json(body): Json<PutGuidance>,
) -> CmsResult<Json<GuidancePage>> {
    caller.require_any(&[Role::Admin, Role::Trainer])?;
    let slug = Slug::parse(&slug);
    let edit = PageEdit::parse(&body.lang, &body.title, &body.body_markdown, &body.kinds);
    let (slug, edit) = match (slug, edit) {
        (Ok(slug), Ok(edit)) => (slug, edit),
        (slug, edit) => {
            let mut errors = Vec::new();
            if let Err(why) = slug {
                errors.push(kreki_platform::FieldError::new("slug", why));
            }
            errors.extend(edit.err().unwrap_or_default());
            return Err(CmsError::Validation(errors));
        }
    };
    let html = crate::markdown::to_safe_html(&edit.body_markdown);
    let mut tx = state.pool.begin().await?;
    let (row, created) = store::put(&mut tx, &slug, &edit, &html, Some(caller.id.0)).await?;
    tx.commit().await?;
    if created {
        tracing::info!(slug = slug.as_str(), lang = edit.lang.as_str(), version = row.version, author = %caller.id.0, "guidance page written");
    }
    Ok(Json(row.into()))
}

/// A version in a page's history.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GuidanceVersion {
    /// Version, from 1.
    pub version: i32,
    /// Its title.
    pub title: String,
    /// When it was stored (UTC).
    pub created_at: DateTime<Utc>,
    /// Who wrote it.
    pub author_id: Option<Uuid>,
}

/// Query of the history.
#[derive(Debug, Deserialize, IntoParams)]
pub struct VersionsQuery {
    /// `id` (default) or `en`.
    pub lang: Option<String>,
}

/// A page's versions in one language, newest first (read one with `?version=`).
#[utoipa::path(get, path = "/v1/guidance/{slug}/versions", tag = "guidance", params(("slug" = String, Path, description = "Page slug"), VersionsQuery),
    responses(
        (status = 200, description = "Versions, newest first (empty when never written in this language)", body = [GuidanceVersion]),
        (status = 422, description = "`lang` unknown", body = Problem, content_type = "application/problem+json"),
    ))]
async fn guidance_versions(
    State(state): State<CmsState>,
    Path(slug): Path<String>,
    Query(query): Query<VersionsQuery>,
) -> CmsResult<Json<Vec<GuidanceVersion>>> {
    let lang = parse_lang(query.lang.as_deref())?;
    let slug = parse_slug(&slug)?;
    Ok(Json(
        store::versions(&state.pool, &slug, lang)
            .await?
            .into_iter()
            .map(|row| GuidanceVersion {
                version: row.version,
                title: row.title,
                created_at: row.created_at,
                author_id: row.author_id,
            })
            .collect(),
    ))
}
