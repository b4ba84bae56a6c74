//! KREKI's faces, served by `kreki` itself: the coordinator dashboard at `/dashboard/`, the citizen
//! app at `/app/` and the volunteer app at `/volunteer/` (both installable PWAs), with their shared
//! scripts, Leaflet and the offline basemap under `/web/`.
//!
//! The files live in `web/` and are compiled into the binary, so a deployment is one file and needs
//! no CDN, tile server or Node at run time. Every answer carries an `ETag` (a hash of the file) and
//! `Cache-Control: no-cache`, so browsers revalidate cheaply and a new release is picked up at once;
//! the service workers of the two apps keep the same files for offline use.
//!
//! `GET /web/config.json` tells the pages what the operator configured in `[web]`: a raster tile
//! URL (`web.tile_url`), or a PMTiles basemap file that `kreki` serves itself at
//! `/web/basemap.pmtiles` with range requests (`web.basemap_pmtiles`, see [`crate::basemap`]),
//! for street maps without internet; with neither, the bundled Natural Earth outlines are drawn.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use kreki_platform::Problem;
use serde::{Deserialize, Serialize};

/// `[web]`: the dashboard and the web apps.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// Serve the dashboard and the apps from this process (turn off on API-only instances).
    pub enabled: bool,
    /// A raster tile URL template such as `https://tile.openstreetmap.org/{z}/{x}/{y}.png`
    /// (OpenStreetMap or self-hosted). Unset (the default): the bundled offline basemap.
    pub tile_url: Option<String>,
    /// The attribution the tile provider requires, shown on the map.
    pub tile_attribution: String,
    /// A PMTiles v3 basemap file (vector, such as an Indonesia extract of the Protomaps basemap,
    /// or raster), served by `kreki` at `/web/basemap.pmtiles` with range requests and drawn in
    /// the browser. Used when `tile_url` is unset. README: "Street maps without internet".
    pub basemap_pmtiles: Option<std::path::PathBuf>,
    /// The attribution of the PMTiles basemap's data.
    pub basemap_attribution: String,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            tile_url: None,
            tile_attribution: "© OpenStreetMap contributors".to_owned(),
            basemap_pmtiles: None,
            basemap_attribution: "© OpenStreetMap contributors, Protomaps".to_owned(),
        }
    }
}

impl WebConfig {
    /// Checks the tile URL; each message names its key.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(url) = &self.tile_url {
            if tile_origin(url).is_none() {
                problems.push(
                    "web.tile_url: must be an http(s) URL with {z}, {x} and {y}, such as https://tile.openstreetmap.org/{z}/{x}/{y}.png"
                        .to_owned(),
                );
            }
            if self.tile_attribution.trim().is_empty() {
                problems.push(
                    "web.tile_attribution: must name the tile provider when web.tile_url is set"
                        .to_owned(),
                );
            }
        }
        if let Err(problem) = crate::basemap::Basemap::from_config(self.basemap_pmtiles.as_ref()) {
            problems.push(problem);
        }
        problems
    }
}

/// `scheme://host[:port]` of a tile URL template, or `None` when it is not a usable template.
fn tile_origin(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("https://")
        .map(|rest| ("https", rest))
        .or_else(|| url.strip_prefix("http://").map(|rest| ("http", rest)))?;
    let (scheme, rest) = rest;
    let host = rest.split('/').next().filter(|host| {
        !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '{' | '}'))
    })?;
    let has_placeholders = ["{z}", "{x}", "{y}"].iter().all(|p| url.contains(p));
    let clean = !url
        .chars()
        .any(|c| c.is_whitespace() || c == '"' || c == '\'');
    (has_placeholders && clean).then(|| format!("{scheme}://{host}"))
}

/// The pages, each a folder of `web/` served at `/{page}/`: the coordinator dashboard, the
/// citizen app, the volunteer app, the trainer console and the admin console.
const PAGES: [&str; 5] = ["dashboard", "app", "volunteer", "trainer", "admin"];

/// One file of `web/`, compiled in.
struct Asset {
    /// Its path under `web/`, which is also its URL path (`dashboard/index.html` is served at
    /// `/dashboard/index.html`; `shared/` and `vendor/` are served under `/web/`).
    file: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($file:literal, $content_type:literal) => {
        Asset {
            file: $file,
            content_type: $content_type,
            body: include_bytes!(concat!("../web/", $file)),
        }
    };
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

/// Every file the pages use. A unit test checks that each file under the served folders of `web/`
/// is listed here, so a new file cannot be forgotten.
static ASSETS: &[Asset] = &[
    asset!("dashboard/index.html", "text/html; charset=utf-8"),
    asset!("dashboard/dashboard.js", "text/javascript; charset=utf-8"),
    asset!("dashboard/support.js", "text/javascript; charset=utf-8"),
    asset!("dashboard/resolve.js", "text/javascript; charset=utf-8"),
    asset!("dashboard/sync.js", "text/javascript; charset=utf-8"),
    asset!("dashboard/operations.js", "text/javascript; charset=utf-8"),
    asset!(
        "dashboard/operations-text.js",
        "text/javascript; charset=utf-8"
    ),
    asset!("dashboard/tools.js", "text/javascript; charset=utf-8"),
    asset!("dashboard/callback.js", "text/javascript; charset=utf-8"),
    asset!("dashboard/warnings.js", "text/javascript; charset=utf-8"),
    asset!("dashboard/timeline.js", "text/javascript; charset=utf-8"),
    asset!("dashboard/aeds.html", "text/html; charset=utf-8"),
    asset!("dashboard/aeds.js", "text/javascript; charset=utf-8"),
    asset!("app/index.html", "text/html; charset=utf-8"),
    asset!("app/app.js", "text/javascript; charset=utf-8"),
    asset!("app/aeds.js", "text/javascript; charset=utf-8"),
    asset!("app/sw.js", "text/javascript; charset=utf-8"),
    asset!("app/manifest.webmanifest", "application/manifest+json"),
    asset!("volunteer/index.html", "text/html; charset=utf-8"),
    asset!("volunteer/volunteer.js", "text/javascript; charset=utf-8"),
    asset!("volunteer/sw.js", "text/javascript; charset=utf-8"),
    asset!("volunteer/training.js", "text/javascript; charset=utf-8"),
    asset!("volunteer/team.js", "text/javascript; charset=utf-8"),
    asset!("volunteer/checkin.js", "text/javascript; charset=utf-8"),
    asset!(
        "volunteer/practitioner.js",
        "text/javascript; charset=utf-8"
    ),
    asset!("trainer/index.html", "text/html; charset=utf-8"),
    asset!("trainer/trainer.js", "text/javascript; charset=utf-8"),
    asset!("trainer/trainer-text.js", "text/javascript; charset=utf-8"),
    asset!("admin/index.html", "text/html; charset=utf-8"),
    asset!("admin/admin.js", "text/javascript; charset=utf-8"),
    asset!("admin/admin-text.js", "text/javascript; charset=utf-8"),
    asset!(
        "volunteer/manifest.webmanifest",
        "application/manifest+json"
    ),
    asset!("shared/kreki.css", "text/css; charset=utf-8"),
    asset!("shared/i18n.js", "text/javascript; charset=utf-8"),
    asset!("shared/api.js", "text/javascript; charset=utf-8"),
    asset!("shared/live.js", "text/javascript; charset=utf-8"),
    asset!("shared/push.js", "text/javascript; charset=utf-8"),
    asset!("shared/map.js", "text/javascript; charset=utf-8"),
    asset!("shared/forms.js", "text/javascript; charset=utf-8"),
    asset!("shared/field-errors.js", "text/javascript; charset=utf-8"),
    asset!("shared/guidance.js", "text/javascript; charset=utf-8"),
    asset!("shared/console.js", "text/javascript; charset=utf-8"),
    asset!("shared/icon.svg", "image/svg+xml"),
    asset!("vendor/leaflet.js", "text/javascript; charset=utf-8"),
    asset!("vendor/leaflet.css", "text/css; charset=utf-8"),
    asset!("vendor/basemap.geojson", "application/geo+json"),
    asset!("vendor/LICENSE.leaflet.txt", "text/plain; charset=utf-8"),
    asset!(
        "vendor/protomaps-leaflet.js",
        "text/javascript; charset=utf-8"
    ),
    asset!(
        "vendor/LICENSE.protomaps-leaflet.txt",
        "text/plain; charset=utf-8"
    ),
    asset!("vendor/pmtiles.js", "text/javascript; charset=utf-8"),
    asset!("vendor/LICENSE.pmtiles.txt", "text/plain; charset=utf-8"),
];

/// An asset ready to answer: its bytes, type and entity tag.
struct Served {
    content_type: &'static str,
    body: &'static [u8],
    etag: HeaderValue,
}

/// URL path -> asset, built once.
static BY_URL: LazyLock<HashMap<String, Served>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|asset| {
            let url = if asset.file.starts_with("shared/") || asset.file.starts_with("vendor/") {
                format!("/web/{}", asset.file)
            } else {
                format!("/{}", asset.file)
            };
            let mut hasher = DefaultHasher::new();
            asset.body.hash(&mut hasher);
            let etag = HeaderValue::from_str(&format!("\"{:016x}\"", hasher.finish()))
                .unwrap_or_else(|_| HeaderValue::from_static("\"0\""));
            let served = Served {
                content_type: asset.content_type,
                body: asset.body,
                etag,
            };
            (url, served)
        })
        .collect()
});

/// What the pages are told at `GET /web/config.json`.
#[derive(Debug, Clone, Serialize)]
struct PageConfig {
    tile_url: Option<String>,
    tile_attribution: Option<String>,
    /// Where the PMTiles basemap is served, when there is one and no `tile_url`.
    pmtiles_url: Option<String>,
    /// Its attribution.
    pmtiles_attribution: Option<String>,
}

#[derive(Clone)]
struct WebState {
    page_config: Arc<PageConfig>,
    security_policy: HeaderValue,
    basemap: Option<crate::basemap::Basemap>,
}

/// The routes of the dashboard and the apps; an empty router when `[web] enabled = false`.
pub fn router(config: &WebConfig) -> Router {
    if !config.enabled {
        return Router::new();
    }
    let tile_url = config
        .tile_url
        .clone()
        .filter(|url| tile_origin(url).is_some());
    let tile_host = tile_url
        .as_deref()
        .and_then(tile_origin)
        .unwrap_or_default();
    // Lessons show pictures and videos from anywhere on the web (https only) and embed YouTube
    // without cookies; nothing else leaves the origin.
    let policy = format!(
        "default-src 'self'; img-src 'self' data: blob: https: {tile_host}; media-src 'self' https:; \
         frame-src https://www.youtube-nocookie.com; style-src 'self' 'unsafe-inline'; \
         connect-src 'self'; worker-src 'self'; manifest-src 'self'; object-src 'none'; \
         base-uri 'none'; frame-ancestors 'none'"
    );
    let basemap = match crate::basemap::Basemap::from_config(config.basemap_pmtiles.as_ref()) {
        Ok(basemap) => basemap.filter(|_| tile_url.is_none()),
        Err(problem) => {
            tracing::error!(%problem, "the PMTiles basemap is not served");
            None
        }
    };
    let state = WebState {
        page_config: Arc::new(PageConfig {
            tile_attribution: tile_url.as_ref().map(|_| config.tile_attribution.clone()),
            tile_url,
            pmtiles_url: basemap.as_ref().map(|_| "/web/basemap.pmtiles".to_owned()),
            pmtiles_attribution: basemap.as_ref().map(|_| config.basemap_attribution.clone()),
        }),
        security_policy: HeaderValue::from_str(&policy)
            .unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'")),
        basemap,
    };
    let mut router = Router::new();
    for page in PAGES {
        let slash = format!("/{page}/");
        router = router
            .route(
                &format!("/{page}"),
                get(move || std::future::ready(Redirect::permanent(&slash))),
            )
            .route(
                &format!("/{page}/"),
                get(move |State(state): State<WebState>, headers: HeaderMap| {
                    std::future::ready(answer(&state, &headers, &format!("/{page}/index.html")))
                }),
            )
            .route(
                &format!("/{page}/{{file}}"),
                get(
                    move |State(state): State<WebState>,
                          Path(file): Path<String>,
                          headers: HeaderMap| {
                        std::future::ready(answer(&state, &headers, &format!("/{page}/{file}")))
                    },
                ),
            );
    }
    router
        .route("/web/config.json", get(page_config))
        .route("/web/basemap.pmtiles", get(serve_basemap))
        .route("/web/{folder}/{file}", get(shared_file))
        .with_state(state)
}

async fn page_config(State(state): State<WebState>) -> Response {
    (
        [(header::CACHE_CONTROL, "no-cache")],
        axum::Json(state.page_config.as_ref().clone()),
    )
        .into_response()
}

async fn serve_basemap(State(state): State<WebState>, headers: HeaderMap) -> Response {
    match &state.basemap {
        Some(basemap) => basemap.answer(&headers),
        None => Problem::not_found("basemap").into_response(),
    }
}

async fn shared_file(
    State(state): State<WebState>,
    Path((folder, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    answer(&state, &headers, &format!("/web/{folder}/{file}"))
}

/// The asset at `url`, a 304 when the browser's copy is current, or a problem+json 404.
fn answer(state: &WebState, request: &HeaderMap, url: &str) -> Response {
    let Some(served) = BY_URL.get(url) else {
        return Problem::not_found("file").into_response();
    };
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .is_some_and(|tag| tag.as_bytes() == served.etag.as_bytes());
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(served.content_type),
            )],
            served.body,
        )
            .into_response()
    };
    let headers = response.headers_mut();
    headers.insert(header::ETAG, served.etag.clone());
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if served.content_type == HTML {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            state.security_policy.clone(),
        );
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
    }
    if url.ends_with("/sw.js") && served.content_type == JS {
        // The workers sit beside their app and control exactly it.
        let scope = url.trim_end_matches("sw.js");
        if let Ok(scope) = HeaderValue::from_str(scope) {
            headers.insert("service-worker-allowed", scope);
        }
    }
    response
}

#[cfg(test)]
mod tests;
