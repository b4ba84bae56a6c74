//! A fake BMKG for tests and `kreki demo`: it serves CAP 1.2 earthquake and weather warnings
//! shaped like BMKG's public feeds (sender, `code`, an `info` block in Bahasa Indonesia and one in
//! English, magnitude and depth as `parameter`s, a circle or polygon area) behind an RSS feed whose
//! items link to each document, and honours `If-None-Match`. It can publish, update and cancel a
//! warning, serve broken or hostile XML, and go down (503), from Rust ([`FakeBmkg`]) or over HTTP
//! (`POST /control/...`, for the browser tests and the demo):
//!
//! | path | what |
//! |---|---|
//! | `GET /alert/rss.xml` | the RSS feed, newest first (`ETag`; 304 on `If-None-Match`) |
//! | `GET /alert/{file}` | one CAP document (`{identifier}.xml`) |
//! | `POST /control/earthquake` | `{lat, lng, radius_km, magnitude, severity?}` -> `{key}` |
//! | `POST /control/weather` | `{polygon: [[lat, lng], ...], severity?}` -> `{key}` |
//! | `POST /control/update` | `{key, lat, lng, radius_km}`: an `Update` moving the area |
//! | `POST /control/cancel` | `{key}`: a `Cancel` |
//! | `POST /control/faults` | `{down?, broken?, hostile?, huge?, oversized?}` |
//!
//! The documents themselves are written in [`documents`].

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, FixedOffset, Utc};
use http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use tokio::task::JoinHandle;

use crate::out::escape;

mod documents;

use self::documents::{HOSTILE, Message, cap_time, circle_xml, document, huge_document, now_wib};

/// BMKG's `sender` in the fake's documents.
pub const SENDER: &str = "bmkg@bmkg.go.id";

/// One published message.
#[derive(Debug, Clone)]
struct Published {
    identifier: String,
    sent: DateTime<FixedOffset>,
    xml: String,
}

/// The latest message of each warning the fake published, by key.
#[derive(Debug, Clone)]
struct Thread {
    key: String,
    kind: Kind,
    latest_identifier: String,
    latest_sent: DateTime<FixedOffset>,
    severity: String,
    magnitude: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Earthquake,
    Weather,
}

/// Fault switches.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct Faults {
    /// Every request answers 503.
    #[serde(default)]
    pub down: bool,
    /// The feed is cut in the middle (not well-formed).
    #[serde(default)]
    pub broken: bool,
    /// The feed links a document with a DTD and entity expansion ("billion laughs").
    #[serde(default)]
    pub hostile: bool,
    /// The feed links a document with a polygon of 5,000 points.
    #[serde(default)]
    pub huge: bool,
    /// The feed itself is 4 MiB (without `Content-Length`: sent in chunks), over any sane limit.
    #[serde(default)]
    pub oversized: bool,
}

#[derive(Debug, Default)]
struct Book {
    published: Vec<Published>,
    threads: Vec<Thread>,
    faults: Faults,
    version: u64,
    requests: u64,
    not_modified: u64,
    next: u64,
}

/// A running fake BMKG on 127.0.0.1. Stops when dropped.
pub struct FakeBmkg {
    addr: SocketAddr,
    book: Arc<Mutex<Book>>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for FakeBmkg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeBmkg")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for FakeBmkg {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(book: &Mutex<Book>) -> MutexGuard<'_, Book> {
    book.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Body of `POST /control/earthquake`.
#[derive(Debug, Clone, Deserialize)]
pub struct Earthquake {
    /// Epicentre latitude.
    pub lat: f64,
    /// Epicentre longitude.
    pub lng: f64,
    /// Radius of the warned area, km.
    pub radius_km: f64,
    /// Magnitude.
    pub magnitude: f64,
    /// CAP severity (default `Extreme` from magnitude 6, else `Severe`).
    pub severity: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Weather {
    polygon: Vec<[f64; 2]>,
    severity: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Move {
    key: String,
    lat: f64,
    lng: f64,
    radius_km: f64,
}

#[derive(Debug, Deserialize)]
struct Key {
    key: String,
}

impl FakeBmkg {
    /// Starts the fake on `addr` (`127.0.0.1:0` for any port).
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn start(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let book = Arc::new(Mutex::new(Book::default()));
        let router = Router::new()
            .route("/alert/rss.xml", get(feed_with_base))
            .route("/alert/{file}", get(one))
            .route("/control/earthquake", post(control_earthquake))
            .route("/control/weather", post(control_weather))
            .route("/control/update", post(control_update))
            .route("/control/cancel", post(control_cancel))
            .route("/control/faults", post(control_faults))
            .with_state(Arc::clone(&book));
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                tracing::error!(%error, "fake BMKG stopped");
            }
        });
        Ok(Self { addr, book, task })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The RSS feed's URL (for `[cap] feeds`).
    pub fn feed_url(&self) -> String {
        format!("{}/alert/rss.xml", self.base_url())
    }

    /// Publishes an earthquake warning; answers its key for [`Self::update`] and [`Self::cancel`].
    pub fn earthquake(&self, quake: &Earthquake) -> String {
        publish_earthquake(&self.book, quake)
    }

    /// Publishes a nowcast weather warning over `polygon` (`[lat, lng]` points, closed).
    pub fn weather(&self, polygon: &[[f64; 2]], severity: &str) -> String {
        publish_weather(&self.book, polygon, severity)
    }

    /// Publishes an `Update` of the warning `key` moving its area.
    pub fn update(&self, key: &str, lat: f64, lng: f64, radius_km: f64) -> bool {
        publish_update(&self.book, key, lat, lng, radius_km)
    }

    /// Publishes a `Cancel` of the warning `key`.
    pub fn cancel(&self, key: &str) -> bool {
        publish_cancel(&self.book, key)
    }

    /// Sets the fault switches.
    pub fn set_faults(&self, faults: Faults) {
        let mut book = lock(&self.book);
        book.faults = faults;
        book.version += 1;
    }

    /// Requests served so far, and how many of them were answered 304.
    pub fn requests(&self) -> (u64, u64) {
        let book = lock(&self.book);
        (book.requests, book.not_modified)
    }
}

fn next_identifier(book: &mut Book, prefix: &str) -> String {
    book.next += 1;
    format!(
        "{prefix}{}{:04}",
        Utc::now().format("%Y%m%d%H%M%S"),
        book.next
    )
}

fn push(book: &mut Book, identifier: String, sent: DateTime<FixedOffset>, xml: String) {
    book.published.push(Published {
        identifier,
        sent,
        xml,
    });
    book.version += 1;
}

fn area_desc_of(lat: f64, lng: f64) -> String {
    format!(
        "Pusat gempa {:.2} {} {:.2} BT",
        lat.abs(),
        if lat < 0.0 { "LS" } else { "LU" },
        lng
    )
}

fn publish_earthquake(book: &Mutex<Book>, quake: &Earthquake) -> String {
    let mut book = lock(book);
    let identifier = next_identifier(&mut book, "bmkg-gempa-");
    let sent = now_wib();
    let severity = quake.severity.clone().unwrap_or_else(|| {
        if quake.magnitude >= 6.0 {
            "Extreme"
        } else {
            "Severe"
        }
        .to_owned()
    });
    let area = circle_xml(quake.lat, quake.lng, quake.radius_km);
    let desc = area_desc_of(quake.lat, quake.lng);
    let xml = document(&Message {
        identifier: &identifier,
        sent,
        msg_type: "Alert",
        references: None,
        kind: Kind::Earthquake,
        severity: &severity,
        magnitude: quake.magnitude,
        area_xml: &area,
        area_desc: &desc,
    });
    book.threads.push(Thread {
        key: identifier.clone(),
        kind: Kind::Earthquake,
        latest_identifier: identifier.clone(),
        latest_sent: sent,
        severity,
        magnitude: quake.magnitude,
    });
    push(&mut book, identifier.clone(), sent, xml);
    identifier
}

fn publish_weather(book: &Mutex<Book>, polygon: &[[f64; 2]], severity: &str) -> String {
    let mut book = lock(book);
    let identifier = next_identifier(&mut book, "bmkg-nowcast-");
    let sent = now_wib();
    let points: Vec<String> = polygon
        .iter()
        .map(|[lat, lng]| format!("{lat},{lng}"))
        .collect();
    let area = format!("      <polygon>{}</polygon>\n", points.join(" "));
    let xml = document(&Message {
        identifier: &identifier,
        sent,
        msg_type: "Alert",
        references: None,
        kind: Kind::Weather,
        severity,
        magnitude: 0.0,
        area_xml: &area,
        area_desc: "DKI Jakarta",
    });
    book.threads.push(Thread {
        key: identifier.clone(),
        kind: Kind::Weather,
        latest_identifier: identifier.clone(),
        latest_sent: sent,
        severity: severity.to_owned(),
        magnitude: 0.0,
    });
    push(&mut book, identifier.clone(), sent, xml);
    identifier
}

fn publish_update(book: &Mutex<Book>, key: &str, lat: f64, lng: f64, radius_km: f64) -> bool {
    publish_follow_up(book, key, "Update", Some((lat, lng, radius_km)))
}

fn publish_cancel(book: &Mutex<Book>, key: &str) -> bool {
    publish_follow_up(book, key, "Cancel", None)
}

fn publish_follow_up(
    book: &Mutex<Book>,
    key: &str,
    msg_type: &str,
    area: Option<(f64, f64, f64)>,
) -> bool {
    let mut book = lock(book);
    let Some(index) = book.threads.iter().position(|t| t.key == key) else {
        return false;
    };
    let thread = book.threads[index].clone();
    let identifier = next_identifier(&mut book, "bmkg-");
    // A follow-up in the same second as what it references would sort with it; BMKG's never do.
    let sent = now_wib().max(thread.latest_sent + chrono::Duration::seconds(1));
    let (area_xml, desc) = match area {
        Some((lat, lng, radius_km)) => (circle_xml(lat, lng, radius_km), area_desc_of(lat, lng)),
        None => (String::new(), "Dibatalkan".to_owned()),
    };
    let xml = document(&Message {
        identifier: &identifier,
        sent,
        msg_type,
        references: Some(format!(
            "{SENDER},{},{}",
            thread.latest_identifier,
            cap_time(thread.latest_sent)
        )),
        kind: thread.kind,
        severity: &thread.severity,
        magnitude: thread.magnitude,
        area_xml: &area_xml,
        area_desc: &desc,
    });
    book.threads[index].latest_identifier = identifier.clone();
    book.threads[index].latest_sent = sent;
    push(&mut book, identifier, sent, xml);
    true
}

async fn feed(State(book): State<Arc<Mutex<Book>>>, headers: HeaderMap) -> Response {
    let mut book = lock(&book);
    book.requests += 1;
    if book.faults.down {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let etag = format!("\"v{}\"", book.version);
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        == Some(etag.as_str())
    {
        book.not_modified += 1;
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    let mut items = String::new();
    if book.faults.hostile {
        items.push_str("<item><title>?</title><link>BASE/alert/hostile.xml</link></item>\n");
    }
    if book.faults.huge {
        items.push_str("<item><title>?</title><link>BASE/alert/huge.xml</link></item>\n");
    }
    for published in book.published.iter().rev() {
        items.push_str(&format!(
            "<item><title>{}</title><link>BASE/alert/{}.xml</link><pubDate>{}</pubDate></item>\n",
            escape(&published.identifier),
            escape(&published.identifier),
            published.sent.to_rfc2822(),
        ));
    }
    let mut body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<rss version=\"2.0\"><channel>\n\
         <title>BMKG (fake) CAP</title><link>BASE/</link><description>Peringatan dini</description>\n\
         {items}</channel></rss>\n"
    );
    if book.faults.broken {
        body.truncate(body.len() / 2);
    }
    if book.faults.oversized {
        let padding = "<!-- BMKG -->".repeat(4 * 1024 * 1024 / 13);
        let stream = futures_util::stream::iter(
            [body, padding]
                .into_iter()
                .map(|part| Ok::<_, std::convert::Infallible>(axum::body::Bytes::from(part))),
        );
        return (
            [(header::CONTENT_TYPE, "application/rss+xml".to_owned())],
            axum::body::Body::from_stream(stream),
        )
            .into_response();
    }
    (
        [
            (header::CONTENT_TYPE, "application/rss+xml".to_owned()),
            (header::ETAG, etag),
        ],
        body,
    )
        .into_response()
}

/// The feed's `BASE` placeholders become this server's address (known from the `Host` header).
async fn feed_with_base(state: State<Arc<Mutex<Book>>>, headers: HeaderMap) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_owned();
    let oversized = lock(&state.0).faults.oversized;
    let response = feed(state, headers).await;
    if oversized {
        // Streamed as it is: rewriting would buffer it (and give it a length).
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 4 * 1024 * 1024).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let text = String::from_utf8_lossy(&bytes).replace("BASE", &format!("http://{host}"));
    Response::from_parts(parts, axum::body::Body::from(text))
}

async fn one(State(book): State<Arc<Mutex<Book>>>, Path(file): Path<String>) -> Response {
    let mut book = lock(&book);
    book.requests += 1;
    if book.faults.down {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let xml = match file.as_str() {
        "hostile.xml" => Some(HOSTILE.to_owned()),
        "huge.xml" => Some(huge_document()),
        _ => file.strip_suffix(".xml").and_then(|identifier| {
            book.published
                .iter()
                .find(|p| p.identifier == identifier)
                .map(|p| p.xml.clone())
        }),
    };
    match xml {
        Some(xml) => ([(header::CONTENT_TYPE, "application/cap+xml")], xml).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn control_earthquake(
    State(book): State<Arc<Mutex<Book>>>,
    axum::Json(quake): axum::Json<Earthquake>,
) -> Response {
    let key = publish_earthquake(&book, &quake);
    axum::Json(serde_json::json!({ "key": key })).into_response()
}

async fn control_weather(
    State(book): State<Arc<Mutex<Book>>>,
    axum::Json(weather): axum::Json<Weather>,
) -> Response {
    let key = publish_weather(
        &book,
        &weather.polygon,
        weather.severity.as_deref().unwrap_or("Severe"),
    );
    axum::Json(serde_json::json!({ "key": key })).into_response()
}

async fn control_update(
    State(book): State<Arc<Mutex<Book>>>,
    axum::Json(body): axum::Json<Move>,
) -> StatusCode {
    if publish_update(&book, &body.key, body.lat, body.lng, body.radius_km) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
}

async fn control_cancel(
    State(book): State<Arc<Mutex<Book>>>,
    axum::Json(body): axum::Json<Key>,
) -> StatusCode {
    if publish_cancel(&book, &body.key) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
}

async fn control_faults(
    State(book): State<Arc<Mutex<Book>>>,
    axum::Json(faults): axum::Json<Faults>,
) -> StatusCode {
    let mut book = lock(&book);
    book.faults = faults;
    book.version += 1;
    StatusCode::NO_CONTENT
}
