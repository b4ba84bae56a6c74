//! The pages as a browser gets them: every file of `web/` compiled in and served with its type,
//! ETags and revalidation, paths that cannot escape, the config the pages read (tile URL, basemap),
//! and the PMTiles basemap served by range.

use super::*;
use axum::body::Body;
use axum::http::Request;
use tower::ServiceExt;

async fn get_path(router: &Router, path: &str, etag: Option<&HeaderValue>) -> Response {
    let mut request = Request::get(path);
    if let Some(etag) = etag {
        request = request.header(header::IF_NONE_MATCH, etag);
    }
    router
        .clone()
        .oneshot(request.body(Body::empty()).expect("request builds"))
        .await
        .expect("infallible")
}

#[tokio::test]
async fn pages_and_assets_are_served_with_their_types() {
    let router = router(&WebConfig::default());
    for (path, content_type) in [
        ("/dashboard/", HTML),
        ("/app/", HTML),
        ("/volunteer/", HTML),
        ("/app/sw.js", JS),
        ("/app/manifest.webmanifest", "application/manifest+json"),
        ("/web/vendor/leaflet.js", JS),
        ("/web/vendor/basemap.geojson", "application/geo+json"),
        ("/web/shared/kreki.css", "text/css; charset=utf-8"),
    ] {
        let response = get_path(&router, path, None).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            content_type,
            "{path}"
        );
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        assert!(!body.is_empty(), "{path}");
    }
    let page = get_path(&router, "/dashboard/", None).await;
    let policy = page.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .expect("ascii");
    assert!(policy.contains("default-src 'self'"), "{policy}");
}

#[tokio::test]
async fn bare_page_paths_redirect_into_the_worker_scope() {
    let router = router(&WebConfig::default());
    let response = get_path(&router, "/app", None).await;
    assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(response.headers()[header::LOCATION], "/app/");
}

#[tokio::test]
async fn unknown_files_are_problem_404s_and_cannot_escape() {
    let router = router(&WebConfig::default());
    for path in [
        "/dashboard/nope.js",
        "/web/vendor/nope.js",
        "/web/shared/..%2F..%2FCargo.toml",
        "/web/../Cargo.toml",
        "/app/..%2Fdashboard%2Findex.html",
    ] {
        let response = get_path(&router, path, None).await;
        assert_ne!(response.status(), StatusCode::OK, "{path}");
    }
    let response = get_path(&router, "/volunteer/missing.html", None).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
}

#[tokio::test]
async fn a_current_copy_is_answered_304() {
    let router = router(&WebConfig::default());
    let first = get_path(&router, "/web/vendor/leaflet.js", None).await;
    let etag = first.headers()[header::ETAG].clone();
    let again = get_path(&router, "/web/vendor/leaflet.js", Some(&etag)).await;
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    let stale = HeaderValue::from_static("\"stale\"");
    let changed = get_path(&router, "/web/vendor/leaflet.js", Some(&stale)).await;
    assert_eq!(changed.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_tile_url_reaches_the_pages_and_their_policy() {
    let config = WebConfig {
        tile_url: Some("https://tiles.example.id/{z}/{x}/{y}.png".to_owned()),
        ..WebConfig::default()
    };
    assert!(config.validate().is_empty());
    let router = router(&config);
    let response = get_path(&router, "/web/config.json", None).await;
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    let json: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(json["tile_url"], "https://tiles.example.id/{z}/{x}/{y}.png");
    let page = get_path(&router, "/dashboard/", None).await;
    let policy = page.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .expect("ascii");
    assert!(policy.contains("https://tiles.example.id"), "{policy}");

    let offline = router_config_json(&WebConfig::default()).await;
    assert!(offline["tile_url"].is_null());
}

async fn router_config_json(config: &WebConfig) -> serde_json::Value {
    let response = get_path(&router(config), "/web/config.json", None).await;
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    serde_json::from_slice(&body).expect("JSON")
}

#[test]
fn bad_tile_urls_are_named() {
    for url in [
        "tile.openstreetmap.org/{z}/{x}/{y}.png",
        "https://tile.openstreetmap.org/tiles.png",
        "ftp://x/{z}/{x}/{y}",
        "https:///{z}/{x}/{y}",
        "https://a b/{z}/{x}/{y}",
        "https://x/{z}/{x}/{y}.png'; script-src *",
    ] {
        let config = WebConfig {
            tile_url: Some(url.to_owned()),
            ..WebConfig::default()
        };
        let problems = config.validate();
        assert!(
            problems.iter().any(|p| p.starts_with("web.tile_url")),
            "{url}: {problems:?}"
        );
    }
}

/// A PMTiles-shaped file of `len` bytes (the magic, then a counting pattern).
fn pmtiles_file(len: usize) -> tempfile_path::TempFile {
    let mut bytes = b"PMTiles\x03".to_vec();
    bytes.extend((0..len - 8).map(|i| u8::try_from(i % 251).unwrap_or(0)));
    tempfile_path::TempFile::with(&bytes)
}

/// A temporary file removed on drop (no extra crate for one test).
mod tempfile_path {
    pub struct TempFile(pub std::path::PathBuf);
    impl TempFile {
        pub fn with(bytes: &[u8]) -> Self {
            let path = std::env::temp_dir()
                .join(format!("kreki-basemap-{}.pmtiles", uuid::Uuid::new_v4()));
            std::fs::write(&path, bytes).expect("written");
            Self(path)
        }
    }
    impl Drop for TempFile {
        fn drop(&mut self) {
            drop(std::fs::remove_file(&self.0));
        }
    }
}

async fn get_range(router: &Router, range: Option<&str>) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut request = Request::get("/web/basemap.pmtiles");
    if let Some(range) = range {
        request = request.header(header::RANGE, range);
    }
    let response = router
        .clone()
        .oneshot(request.body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    (status, headers, body.to_vec())
}

#[tokio::test]
async fn the_pmtiles_basemap_is_served_by_range() {
    let file = pmtiles_file(600_000);
    let config = WebConfig {
        basemap_pmtiles: Some(file.0.clone()),
        ..WebConfig::default()
    };
    assert!(config.validate().is_empty(), "{:?}", config.validate());
    let router = router(&config);
    let json = router_config_json(&config).await;
    assert_eq!(json["pmtiles_url"], "/web/basemap.pmtiles");
    assert!(json["tile_url"].is_null());

    let whole = std::fs::read(&file.0).expect("read");
    let (status, headers, body) = get_range(&router, Some("bytes=0-126")).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(headers[header::CONTENT_RANGE], "bytes 0-126/600000");
    assert_eq!(headers[header::ACCEPT_RANGES], "bytes");
    assert_eq!(body, whole[..127]);
    // Across chunk boundaries, and from the end.
    let (_, _, body) = get_range(&router, Some("bytes=200000-599999")).await;
    assert_eq!(body, whole[200_000..]);
    let (status, headers, body) = get_range(&router, Some("bytes=-10")).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(headers[header::CONTENT_RANGE], "bytes 599990-599999/600000");
    assert_eq!(body, whole[599_990..]);
    let (status, _, body) = get_range(&router, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, whole);

    for bad in [
        "bytes=600000-",
        "bytes=9-3",
        "bytes=0-1,4-5",
        "items=0-1",
        "bytes=x-",
    ] {
        let (status, headers, body) = get_range(&router, Some(bad)).await;
        assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE, "{bad}");
        assert_eq!(
            headers[header::CONTENT_TYPE],
            "application/problem+json",
            "{bad}"
        );
        assert_eq!(headers[header::CONTENT_RANGE], "bytes */600000", "{bad}");
        let problem: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(problem["status"], 416, "{bad}");
        assert_eq!(problem["errors"][0]["field"], "Range", "{bad}");
    }
}

#[test]
fn a_basemap_that_is_not_pmtiles_is_named() {
    let not_pmtiles = tempfile_path::TempFile::with(b"<html>not a map</html>");
    for path in [
        not_pmtiles.0.clone(),
        std::path::PathBuf::from("/nonexistent/id.pmtiles"),
    ] {
        let config = WebConfig {
            basemap_pmtiles: Some(path.clone()),
            ..WebConfig::default()
        };
        let problems = config.validate();
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("web.basemap_pmtiles")),
            "{path:?}: {problems:?}"
        );
    }
}

#[tokio::test]
async fn without_a_basemap_file_there_is_none_to_fetch() {
    let router = router(&WebConfig::default());
    let (status, headers, _) = get_range(&router, Some("bytes=0-10")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
}

#[tokio::test]
async fn disabled_serves_nothing() {
    let config = WebConfig {
        enabled: false,
        ..WebConfig::default()
    };
    let response = get_path(&router(&config), "/dashboard/", None).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[test]
fn every_file_of_the_served_folders_is_compiled_in() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
    let listed: Vec<&str> = ASSETS.iter().map(|asset| asset.file).collect();
    for folder in PAGES.iter().copied().chain(["shared", "vendor"]) {
        for entry in std::fs::read_dir(root.join(folder)).expect("folder exists") {
            let name = entry.expect("entry").file_name();
            let file = format!("{folder}/{}", name.to_string_lossy());
            assert!(listed.contains(&file.as_str()), "{file} is not in ASSETS");
        }
    }
}
