//! The PMTiles basemap served by `kreki` itself, for deployments without internet: one file
//! (`web.basemap_pmtiles`, for example an Indonesia extract of the Protomaps basemap) answered at
//! `GET /web/basemap.pmtiles` with HTTP range requests, which is all a PMTiles reader needs (it
//! reads the header, then the directory and each tile by byte range). No tile server.
//!
//! One range per request (`bytes=a-b`, `bytes=a-`, `bytes=-n`), answered 206 with
//! `Content-Range`; a request without `Range` gets the whole file, streamed. A range that is
//! malformed, lists several ranges, or lies outside the file is a 416 problem+json with
//! `Content-Range: bytes */<size>` (never a 500). The file is read in bounded chunks on the
//! blocking pool, so a large range never sits in memory at once.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kreki_platform::Problem;

/// Bytes read per chunk when streaming.
const CHUNK_BYTES: u64 = 256 * 1024;

/// The first bytes of every PMTiles v3 archive: `PMTiles` and the version, 3.
const MAGIC: &[u8; 8] = b"PMTiles\x03";

/// An opened PMTiles archive.
#[derive(Debug, Clone)]
pub struct Basemap {
    file: Arc<File>,
    len: u64,
    etag: HeaderValue,
}

impl Basemap {
    /// Opens `path` and checks it is a PMTiles v3 archive.
    ///
    /// # Errors
    /// A message naming `web.basemap_pmtiles` and what is wrong.
    pub fn open(path: &Path) -> Result<Self, String> {
        let named = |why: String| format!("web.basemap_pmtiles: {}: {why}", path.display());
        let file = File::open(path).map_err(|error| named(error.to_string()))?;
        let meta = file.metadata().map_err(|error| named(error.to_string()))?;
        let mut magic = [0u8; 8];
        file.read_exact_at(&mut magic, 0)
            .map_err(|_| named("too short to be a PMTiles archive".to_owned()))?;
        if &magic != MAGIC {
            return Err(named(
                "not a PMTiles v3 archive (see README: obtaining a basemap)".to_owned(),
            ));
        }
        let modified = meta
            .modified()
            .ok()
            .and_then(|at| at.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |since| since.as_secs());
        let etag = HeaderValue::from_str(&format!("\"pm-{:x}-{modified:x}\"", meta.len()))
            .unwrap_or_else(|_| HeaderValue::from_static("\"pm\""));
        Ok(Self {
            file: Arc::new(file),
            len: meta.len(),
            etag,
        })
    }

    /// Opens the configured file, if any.
    ///
    /// # Errors
    /// As [`Self::open`].
    pub fn from_config(path: Option<&PathBuf>) -> Result<Option<Self>, String> {
        path.map(|path| Self::open(path)).transpose()
    }

    /// Answers a GET (or HEAD) with `request`'s headers.
    pub fn answer(&self, request: &HeaderMap) -> Response {
        let range = request
            .get(header::RANGE)
            .map(|value| value.to_str().map_err(|_| "not ASCII".to_owned()));
        // A stale If-Range means the client's earlier bytes came from another file: send it all.
        let if_range_stale = request
            .get(header::IF_RANGE)
            .is_some_and(|tag| tag.as_bytes() != self.etag.as_bytes());
        let (status, start, end) = match range {
            None => (StatusCode::OK, 0, self.len),
            Some(_) if if_range_stale => (StatusCode::OK, 0, self.len),
            Some(Err(why)) => return self.unsatisfiable(&why),
            Some(Ok(text)) => match parse_range(text, self.len) {
                Ok((start, end)) => (StatusCode::PARTIAL_CONTENT, start, end),
                Err(why) => return self.unsatisfiable(why),
            },
        };
        let mut response = Response::new(self.stream(start, end));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/vnd.pmtiles"),
        );
        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        headers.insert(header::ETAG, self.etag.clone());
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
        if status == StatusCode::PARTIAL_CONTENT
            && let Ok(value) =
                HeaderValue::from_str(&format!("bytes {start}-{}/{}", end - 1, self.len))
        {
            headers.insert(header::CONTENT_RANGE, value);
        }
        response
    }

    fn unsatisfiable(&self, why: &str) -> Response {
        let mut response = Problem::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "range-not-satisfiable",
            "Range not satisfiable",
        )
        .with_detail(format!(
            "{why}; this file has {} bytes and takes one range per request, such as bytes=0-16383",
            self.len
        ))
        .with_field("Range", why)
        .into_response();
        if let Ok(value) = HeaderValue::from_str(&format!("bytes */{}", self.len)) {
            response.headers_mut().insert(header::CONTENT_RANGE, value);
        }
        response
    }

    /// Bytes `start..end` of the file as a body read in chunks on the blocking pool.
    fn stream(&self, start: u64, end: u64) -> Body {
        let file = self.file.clone();
        let chunks = futures_util::stream::unfold(start, move |at| {
            let file = file.clone();
            async move {
                if at >= end {
                    return None;
                }
                let size = (end - at).min(CHUNK_BYTES);
                let read = tokio::task::spawn_blocking(move || {
                    let mut buffer = vec![0u8; usize::try_from(size).unwrap_or(0)];
                    file.read_exact_at(&mut buffer, at).map(|()| buffer)
                })
                .await;
                let chunk = match read {
                    Ok(Ok(buffer)) => Ok(axum::body::Bytes::from(buffer)),
                    Ok(Err(error)) => Err(error),
                    Err(error) => Err(std::io::Error::other(error)),
                };
                // After an error the stream ends (the client sees a short body and retries).
                let next = if chunk.is_ok() { at + size } else { end };
                Some((chunk, next))
            }
        });
        Body::from_stream(chunks)
    }
}

/// Parses one `bytes=` range of a file of `len` bytes into `[start, end)`.
fn parse_range(text: &str, len: u64) -> Result<(u64, u64), &'static str> {
    let spec = text
        .trim()
        .strip_prefix("bytes=")
        .ok_or("the unit must be bytes")?;
    if spec.contains(',') {
        return Err("several ranges in one request are not served");
    }
    let (first, last) = spec.split_once('-').ok_or("a range is start-end")?;
    let number = |text: &str| {
        text.trim()
            .parse::<u64>()
            .map_err(|_| "a range is start-end in bytes")
    };
    let (start, end) = match (first.trim().is_empty(), last.trim().is_empty()) {
        (true, true) => return Err("a range is start-end in bytes"),
        (true, false) => {
            let suffix = number(last)?;
            if suffix == 0 {
                return Err("an empty suffix range");
            }
            (len.saturating_sub(suffix), len)
        }
        (false, true) => (number(first)?, len),
        (false, false) => {
            let (start, last) = (number(first)?, number(last)?);
            if last < start {
                return Err("the range ends before it starts");
            }
            (start, last.saturating_add(1).min(len))
        }
    };
    if start >= len {
        return Err("the range starts past the end of the file");
    }
    Ok((start, end))
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-99", 1000), Ok((0, 100)));
        assert_eq!(parse_range("bytes=900-", 1000), Ok((900, 1000)));
        assert_eq!(parse_range("bytes=-100", 1000), Ok((900, 1000)));
        assert_eq!(parse_range("bytes=-5000", 1000), Ok((0, 1000)));
        assert_eq!(parse_range("bytes=990-5000", 1000), Ok((990, 1000)));
        for bad in [
            "bytes=1000-",
            "bytes=5-1",
            "bytes=a-b",
            "items=0-1",
            "bytes=0-1,5-6",
            "bytes=-",
            "bytes=-0",
            "bytes=18446744073709551616-",
        ] {
            assert!(parse_range(bad, 1000).is_err(), "{bad}");
        }
    }
}
