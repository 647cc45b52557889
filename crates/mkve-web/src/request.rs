//! What a request carries, read strictly, for the API and the pages
//! alike: a query string's options ([`query`], through serde with
//! `deny_unknown_fields`), a form's fields (urlencoded by [`pairs`],
//! multipart in `create.rs`, their names checked by [`field_name`]), and
//! the extractors that turn axum's own rejections into the API's
//! `{"error", "exit"}` ([`Query`], [`UrlPath`], [`Upload`]), with
//! [`fallback`] and [`method_not_allowed`] for what no route takes.
//!
//! Nothing is read leniently: a key or a value that is not UTF-8, a key
//! nobody reads, a key given twice are refused (exit 2, HTTP 400), never
//! turned into U+FFFD or dropped. A value is checked by the core function
//! the command line calls for the same option, so the words are the same.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use mkve_core::{Error, Result};
use serde::de::value::MapDeserializer;
use serde::de::{DeserializeOwned, Deserializer, IntoDeserializer, Visitor};

use crate::error::ApiError;

/// The largest value of a form field other than the bundle, in bytes: a
/// parameter's value is at most 64 KiB (`params::VALUE_MAX`), an SSH key
/// list a few KiB; past this a field is refused while it is read, not
/// held in memory.
pub const FIELD_MAX: usize = 1 << 20;

/// The most fields a form may have: the options, and a parameter's many
/// times over (a bundle declares 256 at most, `params::parse`).
pub const FIELD_COUNT_MAX: usize = 512;

/// The fields of a create besides the file `bundle` (see
/// `form::create_options`); `param.NAME` too.
pub const FIELDS: &[&str] = &[
    "hypervisor",
    "id",
    "name",
    "memory",
    "vcpus",
    "cpu_shares",
    "blkio_weight",
    "disk_format",
    "disk_size",
    "no_base",
    "vnc",
    "start",
    "allow_unsigned",
    "root_password",
    "ssh_key",
    "param",
];

/// The pairs of `application/x-www-form-urlencoded` text (a query string,
/// a form's body), as bytes, in order, repeats kept: `&` separates pairs,
/// the first `=` a key from its value (none: an empty value), `+` is a
/// space and `%XX` the byte XX; a `%` not followed by two hex digits is
/// itself (as browsers read it). Empty pairs (`a&&b`) are skipped.
pub fn pairs(text: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    text.split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.iter().position(|&b| b == b'=') {
            Some(i) => (decode(&p[..i]), decode(&p[i + 1..])),
            None => (decode(p), Vec::new()),
        })
        .collect()
}

fn decode(s: &[u8]) -> Vec<u8> {
    let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' => match (hex(s.get(i + 1)), hex(s.get(i + 2))) {
                (Some(h), Some(l)) => {
                    // Two hex digits: below 256.
                    out.push(((h << 4) | l) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// The options a query string gives, read as `T` reads them (a struct of
/// `Option<String>` fields with `#[serde(deny_unknown_fields)]`; serde
/// refuses a key given twice). `None` and `""` are no options. Errors
/// (2), each beginning `the query: `: a key or a value that is not UTF-8
/// (naming the key), a key `T` does not take (naming those it does), a
/// key given twice.
pub fn query<T: DeserializeOwned>(query: Option<&str>) -> Result<T> {
    let usage = |m: String| Error::Usage(format!("the query: {m}"));
    let mut text = Vec::new();
    for (k, v) in pairs(query.unwrap_or("").as_bytes()) {
        let k = String::from_utf8(k).map_err(|e| {
            usage(format!(
                "{}: the name is not UTF-8",
                String::from_utf8_lossy(e.as_bytes())
            ))
        })?;
        let v = String::from_utf8(v).map_err(|_| usage(format!("{k}: the value is not UTF-8")))?;
        text.push((k, Text(v)));
    }
    let d = MapDeserializer::<_, serde::de::value::Error>::new(text.into_iter());
    T::deserialize(d).map_err(|e| usage(e.to_string()))
}

/// A query's value for serde: a string, which an `Option` field takes as
/// given (serde's own string deserializer is no option).
struct Text(String);

impl<'de> IntoDeserializer<'de, serde::de::value::Error> for Text {
    type Deserializer = Text;

    fn into_deserializer(self) -> Text {
        self
    }
}

impl<'de> Deserializer<'de> for Text {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> std::result::Result<V::Value, Self::Error> {
        v.visit_string(self.0)
    }

    fn deserialize_option<V: Visitor<'de>>(
        self,
        v: V,
    ) -> std::result::Result<V::Value, Self::Error> {
        v.visit_some(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

/// A query's `true` or `false` option `key` (absent: false). Errors (2):
/// another value.
pub fn flag(key: &str, v: Option<String>) -> Result<bool> {
    match v.as_deref() {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(v) => Err(Error::Usage(format!(
            "the query: {key}={}: expected true or false",
            mkve_core::text::printable(v)
        ))),
    }
}

/// A stop's query, for machines and Ganeti's instances alike:
/// `force=true` (no wait) or `timeout=SECONDS` (how long the guest is
/// given), or neither: whether it is forced, and the wait asked (`None`:
/// the default). Errors (2): another option, a timeout that is no number,
/// or both.
pub fn stop_query(query: Option<&str>) -> Result<(bool, Option<std::time::Duration>)> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Stop {
        force: Option<String>,
        timeout: Option<String>,
    }
    let q: Stop = self::query(query)?;
    let force = flag("force", q.force)?;
    // The same parse, and words, as mkve-vm stop --timeout.
    let timeout = match q.timeout {
        None => None,
        Some(t) => Some(std::time::Duration::from_secs(t.parse::<u64>().map_err(
            |e| {
                Error::Usage(format!(
                    "the query: timeout={}: {e}",
                    mkve_core::text::printable(&t)
                ))
            },
        )?)),
    };
    if force && timeout.is_some() {
        return Err(Error::Usage(
            "the query: force=true cannot be used with timeout (a forced stop does not wait)"
                .into(),
        ));
    }
    Ok((force, timeout))
}

/// The refusal of an action word no resource has (2).
pub fn no_action(word: &str) -> Error {
    Error::Usage(format!("no action {}", mkve_core::text::printable(word)))
}

/// No options: what every API request but an action's takes.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoOptions {}

/// Check a form field's name as it comes, before its value is read:
/// `bundle` or one of [`FIELDS`], or `param.NAME` with NAME a parameter's
/// name; `seen` are the names that came before it, of which only `param`
/// may come again. Errors (2): more than [`FIELD_COUNT_MAX`] fields, a
/// field with no name, a name nobody reads (naming those read), a name
/// given twice, a parameter name `--param NAME=…` refuses (core's words).
pub fn field_name(name: &str, seen: &[&str]) -> Result<()> {
    if seen.len() >= FIELD_COUNT_MAX {
        return Err(Error::Usage(format!(
            "more than {FIELD_COUNT_MAX} form fields"
        )));
    }
    if name.is_empty() {
        return Err(Error::Usage(
            "a form field has no name (Content-Disposition: form-data; name=…)".into(),
        ));
    }
    if let Some(p) = name.strip_prefix("param.") {
        mkve_core::params::Given::parse(&format!("{p}="), false)
            .map_err(|e| Error::Usage(format!("--param: {e}")))?;
    } else if name != "bundle" && !FIELDS.contains(&name) {
        return Err(Error::Usage(format!(
            "no field \"{}\": a create takes bundle, {} and param.NAME",
            mkve_core::text::printable(name),
            FIELDS.join(", ")
        )));
    }
    if name != "param" && seen.contains(&name) {
        return Err(Error::Usage(format!(
            "the field {} is given twice",
            mkve_core::text::printable(name)
        )));
    }
    Ok(())
}

/// The options of an API request's query string ([`query`]); a
/// rejection is the API's JSON error.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> std::result::Result<Self, ApiError> {
        Ok(Query(query(parts.uri.query())?))
    }
}

/// axum's `Path`, its rejection (a segment whose `%XX` are not UTF-8)
/// the API's JSON error (2).
pub struct UrlPath<T>(pub T);

impl<T, S> FromRequestParts<S> for UrlPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &S) -> std::result::Result<Self, ApiError> {
        use axum::extract::rejection::PathRejection;
        match axum::extract::Path::<T>::from_request_parts(parts, s).await {
            Ok(axum::extract::Path(t)) => Ok(UrlPath(t)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => {
                use axum::extract::path::ErrorKind;
                let m = match e.kind() {
                    ErrorKind::InvalidUtf8InPathParam { key } => {
                        format!("the path's {key} is not UTF-8")
                    }
                    _ => format!("the path: {}", e.body_text()),
                };
                Err(Error::Usage(m).into())
            }
            Err(e) => Err(Error::Other(format!("the path: {}", e.body_text())).into()),
        }
    }
}

/// axum's `Multipart`, refusing a body that is not
/// `multipart/form-data` with a boundary as the API's JSON error (2).
pub struct Upload(pub axum::extract::Multipart);

impl<S: Send + Sync> FromRequest<S> for Upload {
    type Rejection = ApiError;

    async fn from_request(req: Request, s: &S) -> std::result::Result<Self, ApiError> {
        let kind = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        match axum::extract::Multipart::from_request(req, s).await {
            Ok(m) => Ok(Upload(m)),
            Err(_) => Err(ApiError::from(Error::Usage(format!(
                "the body is {}, not multipart/form-data with a boundary: send the bundle as the \
                 form's field \"bundle\"",
                kind.map_or_else(
                    || "without a Content-Type".to_string(),
                    |k| format!("\"{}\"", mkve_core::text::printable(&k))
                )
            )))),
        }
    }
}

/// A multipart body that cannot be read to its end (cut, malformed, the
/// client gone): 2, with multer's words for what is wrong.
pub fn multipart_error(e: &axum::extract::multipart::MultipartError) -> Error {
    Error::Usage(format!(
        "the upload is cut short or malformed: {}",
        e.body_text()
    ))
}

/// What answers a path no route takes: under `/api/` the JSON error
/// (404, exit 2), else a page's plain 404.
pub async fn fallback(method: Method, uri: Uri) -> Response {
    let path = uri.path();
    if path.starts_with("/api/") || path == "/api" {
        ApiError::refusal(
            StatusCode::NOT_FOUND,
            format!(
                "no {method} {}: mkve-web(8) lists the API",
                mkve_core::text::printable(path)
            ),
        )
        .into_response()
    } else {
        (StatusCode::NOT_FOUND, "not found\n").into_response()
    }
}

/// What answers a method a route does not take: under `/api/` the JSON
/// error (405, exit 2), else a page's plain 405.
pub async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    let path = uri.path();
    if path.starts_with("/api/") {
        ApiError::refusal(
            StatusCode::METHOD_NOT_ALLOWED,
            format!(
                "{} does not take {method}: mkve-web(8) lists the API",
                mkve_core::text::printable(path)
            ),
        )
        .into_response()
    } else {
        (StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n").into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_decode_as_browsers_encode() {
        assert_eq!(
            pairs(b"a=1&&b=x+y%2B%zz&c&d=%ff%0"),
            vec![
                (b"a".to_vec(), b"1".to_vec()),
                (b"b".to_vec(), b"x y+%zz".to_vec()),
                (b"c".to_vec(), b"".to_vec()),
                (b"d".to_vec(), b"\xff%0".to_vec()),
            ]
        );
        assert!(pairs(b"").is_empty());
    }

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Two {
        a: Option<String>,
        b: Option<String>,
    }

    #[test]
    fn queries_refuse_unknown_repeated_and_non_utf8_keys() {
        let q = |s: &str| query::<Two>(Some(s)).map_err(|e| e.to_string());
        assert_eq!(
            q("a=1"),
            Ok(Two {
                a: Some("1".into()),
                b: None
            })
        );
        assert_eq!(query::<Two>(None).unwrap(), Two { a: None, b: None });
        assert_eq!(
            q("c=1").unwrap_err(),
            "the query: unknown field `c`, expected `a` or `b`"
        );
        assert_eq!(q("a=1&a=2").unwrap_err(), "the query: duplicate field `a`");
        assert_eq!(
            q("a=%ff").unwrap_err(),
            "the query: a: the value is not UTF-8"
        );
        assert!(q("%ff=1").unwrap_err().contains("the name is not UTF-8"));
        assert_eq!(
            query::<NoOptions>(Some("x=1")).unwrap_err().to_string(),
            "the query: unknown field `x`, there are no fields"
        );
        assert!(query::<NoOptions>(Some("")).is_ok());
    }

    #[test]
    fn field_names_are_known_and_given_once() {
        assert!(field_name("memory", &["bundle"]).is_ok());
        assert!(field_name("param", &["param"]).is_ok());
        assert!(field_name("param.admin", &[]).is_ok());
        let e = |n: &str, seen: &[&str]| field_name(n, seen).unwrap_err().to_string();
        assert_eq!(e("memory", &["memory"]), "the field memory is given twice");
        assert_eq!(e("bundle", &["bundle"]), "the field bundle is given twice");
        assert!(e("memroy", &[]).starts_with("no field \"memroy\": a create takes bundle, "));
        assert!(e("param.Admin", &[]).contains("\"Admin\" is not a parameter name"));
        assert!(e("", &[]).contains("has no name"));
        let many = vec!["param"; FIELD_COUNT_MAX];
        assert_eq!(e("param", &many), "more than 512 form fields");
    }
}
