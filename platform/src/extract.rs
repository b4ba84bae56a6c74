//! Request extractors whose rejections are problems that name the wrong field.
//!
//! axum's own extractors answer bad input with a plain-text body; mobile apps and partners need to
//! know *which* field is wrong, so handlers use these instead. Bodies are parsed with
//! `serde_path_to_error`, which reports the path of the failing value (`location.lat`).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{StatusCode, header};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::problem::Problem;

/// A JSON body (request) or JSON answer (response). Malformed JSON is a 400; JSON of the wrong shape
/// is a 422 naming the field; a body over the configured limit is a 413; a non-JSON content type is a
/// 415.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_body(req, state, "json", "application/json").await?;
        parse_json(&bytes).map(Json)
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Parses `bytes` as JSON into `T`, mapping failures as [`Json`] does. Public so WebSocket and MQTT
/// messages get the same errors as HTTP bodies.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, T>(&mut deserializer) {
        Ok(value) => Ok(value),
        Err(error) => {
            let path = error.path().to_string();
            let inner = error.into_inner();
            match inner.classify() {
                serde_json::error::Category::Data => {
                    let message = redact_value(&strip_position(&inner.to_string()));
                    let field = field_of(&path, &message);
                    Err(Problem::validation(vec![crate::FieldError::new(
                        field, message,
                    )]))
                }
                _ => Err(Problem::bad_request(format!(
                    "The body is not valid JSON: {inner}"
                ))),
            }
        }
    }
}

/// Query string parameters. A missing or wrong parameter is a 422 naming it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        parse_urlencoded(query.as_bytes(), "query").map(Query)
    }
}

/// An `application/x-www-form-urlencoded` body (the OAuth2 token endpoint speaks it).
#[derive(Debug, Clone, Copy, Default)]
pub struct Form<T>(pub T);

impl<T, S> FromRequest<S> for Form<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_body(
            req,
            state,
            "x-www-form-urlencoded",
            "application/x-www-form-urlencoded",
        )
        .await?;
        parse_urlencoded(&bytes, "body").map(Form)
    }
}

/// Path parameters. A value of the wrong type (an id that is not a UUID) is a 400 naming it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        use axum::extract::path::ErrorKind;
        use axum::extract::rejection::PathRejection;
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(PathRejection::FailedToDeserializePathParams(error)) => {
                let problem = match error.kind() {
                    ErrorKind::ParseErrorAtKey {
                        key, expected_type, ..
                    } => Problem::bad_request(format!(
                        "path parameter `{key}` must be a {expected_type}"
                    ))
                    .with_field(key.clone(), format!("expected a {expected_type}")),
                    ErrorKind::DeserializeError { key, message, .. } => Problem::bad_request(
                        format!("path parameter `{key}` is not valid: {message}"),
                    )
                    .with_field(key.clone(), message.clone()),
                    ErrorKind::InvalidUtf8InPathParam { key } => {
                        Problem::bad_request(format!("path parameter `{key}` is not valid UTF-8"))
                            .with_field(key.clone(), "must be valid UTF-8")
                    }
                    other => Problem::bad_request(format!("bad path parameter: {other}")),
                };
                Err(problem)
            }
            Err(other) => Err(Problem::bad_request(other.body_text())),
        }
    }
}

/// The TCP peer of the request, when the server was started with connect info (it always is in
/// `kreki serve`; in-process tests may have none).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub Option<std::net::SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for PeerAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|axum::extract::ConnectInfo(addr)| *addr),
        ))
    }
}

fn has_content_type(headers: &http::HeaderMap, wanted: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime.starts_with("application/")
                && (mime.ends_with(wanted) || mime.ends_with(&format!("+{wanted}")))
        })
}

/// The body, once its content type is `application/<subtype>` (or `application/…+<subtype>`): a
/// wrong type is a 415 saying which to send, a body over the limit a 413.
async fn read_body<S: Send + Sync>(
    req: Request,
    state: &S,
    subtype: &str,
    expected: &str,
) -> Result<Bytes, Problem> {
    if !has_content_type(req.headers(), subtype) {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
        )
        .with_detail(format!("Send the body with `Content-Type: {expected}`.")));
    }
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload too large",
            )
            .with_detail("The request body is larger than this endpoint accepts.")
        } else {
            Problem::bad_request(rejection.body_text())
        }
    })
}

fn parse_urlencoded<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, Problem> {
    let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(bytes));
    serde_path_to_error::deserialize::<_, T>(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let message = redact_value(&error.into_inner().to_string());
        let field = match field_of(&path, &message).as_str() {
            "body" => what.to_owned(),
            named => named.to_owned(),
        };
        Problem::validation(vec![crate::FieldError::new(field, message)])
    })
}

/// serde says "missing field `phone`" with the path of the *parent*; point at the field itself.
fn field_of(path: &str, message: &str) -> String {
    let parent = if path == "." { "" } else { path };
    match (message.starts_with("missing field"), backticked(message)) {
        (true, Some(name)) if parent.is_empty() => name.to_owned(),
        (true, Some(name)) => format!("{parent}.{name}"),
        _ if parent.is_empty() => "body".to_owned(),
        _ => parent.to_owned(),
    }
}

fn backticked(message: &str) -> Option<&str> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(&message[start..start + len])
}

/// serde quotes the value it refused (`invalid type: string "0812 5555 0101", expected u32`,
/// `unknown variant `…``): a phone number, a name or an ID number would then come back in the
/// answer and land in whatever logs it. Keep what was wrong and what was expected, never the value:
/// `invalid type: string, expected u32`.
fn redact_value(message: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: ", "unknown variant "] {
        let Some(rest) = message.strip_prefix(prefix) else {
            continue;
        };
        let Some(expected) = rest.find(", expected") else {
            continue;
        };
        // What serde got: a kind, then the value quoted (`string "…"`, `integer `5``, `char 'x'`).
        let got = &rest[..expected];
        let kind = got
            .find([' ', '`', '"', '\''])
            .map_or(got, |end| &got[..end])
            .trim_end();
        let kind = match kind {
            "floating" => "floating point",
            "unit" => "unit value",
            other => other,
        };
        return if prefix == "unknown variant " {
            format!("unknown variant{}", &rest[expected..])
        } else {
            format!("{prefix}{kind}{}", &rest[expected..])
        };
    }
    message.to_owned()
}

/// serde_json appends " at line 1 column 17", which means nothing to someone reading a field error.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(index) => message[..index].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[expect(dead_code, reason = "fields exist to be deserialised")]
    struct Location {
        lat: f64,
        lng: f64,
    }

    #[derive(Debug, Deserialize)]
    #[expect(dead_code, reason = "fields exist to be deserialised")]
    struct Alert {
        kind: String,
        location: Location,
    }

    #[test]
    fn wrong_type_names_the_nested_field() {
        let problem = parse_json::<Alert>(br#"{"kind":"fire","location":{"lat":"north","lng":1}}"#)
            .expect_err("a string latitude is rejected");
        assert_eq!(problem.status, 422);
        assert_eq!(problem.errors[0].field, "location.lat");
    }

    #[test]
    fn missing_field_names_the_field_not_its_parent() {
        let problem = parse_json::<Alert>(br#"{"kind":"fire","location":{"lat":1}}"#)
            .expect_err("a missing longitude is rejected");
        assert_eq!(problem.errors[0].field, "location.lng");
        let problem =
            parse_json::<Alert>(br#"{"location":{"lat":1,"lng":2}}"#).expect_err("no kind");
        assert_eq!(problem.errors[0].field, "kind");
    }

    #[derive(Debug, Deserialize)]
    #[expect(dead_code, reason = "fields exist to be deserialised")]
    struct Resume {
        resume_after: Option<u64>,
        bbox: String,
    }

    #[test]
    fn query_errors_name_the_parameter() {
        let problem = parse_urlencoded::<Resume>(b"resume_after=soon&bbox=1", "query")
            .expect_err("not a number");
        assert_eq!(problem.errors[0].field, "resume_after");
        let problem =
            parse_urlencoded::<Resume>(b"resume_after=3", "query").expect_err("bbox missing");
        assert_eq!(problem.errors[0].field, "bbox");
    }

    #[derive(Debug, Deserialize)]
    #[expect(dead_code, reason = "fields exist to be deserialised")]
    struct Person {
        age: u32,
        role: Role,
        name: String,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Role {
        Volunteer,
    }

    #[test]
    fn refused_values_are_not_echoed() {
        let secret = "3171012345672101";
        for (body, field, said) in [
            (
                format!(r#"{{"age":"{secret}","role":"volunteer","name":"x"}}"#),
                "age",
                "invalid type: string, expected u32",
            ),
            (
                format!(r#"{{"age":1,"role":"volunteer","name":{secret}}}"#),
                "name",
                "invalid type: integer, expected a string",
            ),
            (
                format!(r#"{{"age":-{secret},"role":"volunteer","name":"x"}}"#),
                "age",
                "invalid value: integer, expected u32",
            ),
            (
                format!(r#"{{"age":1.5,"role":"{secret}","name":"x"}}"#),
                "age",
                "invalid type: floating point, expected u32",
            ),
            (
                format!(r#"{{"age":1,"role":"{secret}","name":"x"}}"#),
                "role",
                "unknown variant, expected `volunteer`",
            ),
        ] {
            let problem = parse_json::<Person>(body.as_bytes()).expect_err("refused");
            assert_eq!(problem.errors[0].field, field, "{body}");
            assert_eq!(problem.errors[0].message, said, "{body}");
            assert!(!format!("{problem:?}").contains("12345"), "{problem:?}");
        }
        let problem = parse_urlencoded::<Resume>(b"resume_after=0812-5555-0101&bbox=1", "query")
            .expect_err("not a u64");
        assert!(!problem.errors[0].message.contains("0812"), "{problem:?}");
    }

    #[test]
    fn broken_json_is_a_bad_request() {
        let problem = parse_json::<Alert>(b"{\"kind\":").expect_err("truncated JSON is rejected");
        assert_eq!(problem.status, 400);
        let problem = parse_json::<Alert>(b"").expect_err("an empty body is rejected");
        assert_eq!(problem.status, 400);
    }
}
