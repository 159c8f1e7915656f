//! The blocking HTTP client (ureq, rustls with ring) run off the async runtime.
//!
//! Errors name only the origin (scheme, host, port): paths and queries can hold secrets
//! (JustGiving's app id is a path segment), and so can headers and form bodies.

use super::SourceError;
use std::fmt;
use std::io::Read;
use std::time::{Duration, Instant};

/// Bodies larger than this are refused rather than buffered.
pub const MAX_BODY: u64 = 64 * 1024 * 1024;

/// The point in time by which a whole fetch must be done, shared by its requests.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(Instant);

impl Deadline {
    /// `timeout` from now.
    pub fn after(timeout: Duration) -> Self {
        Self(Instant::now() + timeout)
    }

    /// Time left, `None` once passed.
    pub fn remaining(&self) -> Option<Duration> {
        self.0.checked_duration_since(Instant::now()).filter(|d| !d.is_zero())
    }

    /// A deadline `by` earlier (to keep time in reserve for later steps).
    pub fn earlier_by(&self, by: Duration) -> Self {
        Self(self.0.checked_sub(by).unwrap_or_else(Instant::now))
    }
}

/// Response headers, names lowercased.
#[derive(Debug, Clone, Default)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    /// Builds headers from name/value pairs.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        Self(pairs.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect())
    }

    /// The first value of header `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A response of any status.
#[derive(Debug, Clone)]
pub struct Response {
    /// The HTTP status code.
    pub status: u16,
    /// The response headers.
    pub headers: Headers,
    /// The whole body (at most [`MAX_BODY`]).
    pub body: Vec<u8>,
}

impl Response {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// A request; its `Debug` shows only the method and origin.
#[derive(Clone)]
pub struct Request {
    method: &'static str,
    url: String,
    headers: Vec<(String, String)>,
    form: Option<Vec<(String, String)>>,
}

impl Request {
    /// A GET of `url`.
    pub fn get(url: impl Into<String>) -> Self {
        Self { method: "GET", url: url.into(), headers: Vec::new(), form: None }
    }

    /// A DELETE of `url`.
    pub fn delete(url: impl Into<String>) -> Self {
        Self { method: "DELETE", url: url.into(), headers: Vec::new(), form: None }
    }

    /// A POST of `url` with an `application/x-www-form-urlencoded` body.
    pub fn post_form(url: impl Into<String>, form: Vec<(String, String)>) -> Self {
        Self { method: "POST", url: url.into(), headers: Vec::new(), form: Some(form) }
    }

    /// Adds a header.
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/…", self.method, origin(&self.url))
    }
}

/// A shared connection pool; cheap to clone.
#[derive(Clone)]
pub struct HttpClient {
    agent: ureq::Agent,
    /// Requests sent (for `tiercache_upstream_calls_total`).
    calls: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HttpClient")
    }
}

impl Default for HttpClient {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpClient {
    /// A client with tiercache's user agent; redirects never carry `Authorization`.
    pub fn new() -> Self {
        let agent = ureq::AgentBuilder::new()
            .user_agent(concat!("tiercache/", env!("CARGO_PKG_VERSION")))
            .redirect_auth_headers(ureq::RedirectAuthHeaders::Never)
            .build();
        Self { agent, calls: Default::default() }
    }

    /// Requests sent so far by this client and its clones.
    pub fn calls(&self) -> u64 {
        self.calls.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Sends `request`, giving up at `deadline`; every status is a [`Response`].
    ///
    /// # Errors
    /// [`SourceError::Transient`] for timeouts, connection failures and bodies over
    /// [`MAX_BODY`]; [`SourceError::Permanent`] for a URL that cannot be used.
    pub async fn send(&self, request: Request, deadline: Deadline) -> Result<Response, SourceError> {
        let origin = origin(&request.url);
        let Some(timeout) = deadline.remaining() else {
            return Err(SourceError::Transient(format!("{origin}: timed out before the request was sent")));
        };
        self.calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let agent = self.agent.clone();
        let task = {
            let origin = origin.clone();
            tokio::task::spawn_blocking(move || send_blocking(&agent, request, timeout, &origin))
        };
        // ureq's timeout does not cover name resolution; this one does.
        match tokio::time::timeout(timeout + Duration::from_millis(250), task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(SourceError::Transient(format!("{origin}: request task failed: {join}"))),
            Err(_) => Err(SourceError::Transient(format!("{origin}: timed out after {timeout:?}"))),
        }
    }
}

/// Builds the error from the parts of `t`: its `Display` includes the URL.
fn transport_error(origin: &str, t: &ureq::Transport) -> SourceError {
    use ureq::ErrorKind as K;
    let mut msg = format!("{origin}: {}", t.kind());
    if !matches!(t.kind(), K::InvalidUrl | K::UnknownScheme) {
        if let Some(m) = t.message() {
            msg.push_str(&format!(": {m}"));
        }
    }
    if let Some(source) = std::error::Error::source(t) {
        msg.push_str(&format!(": {source}"));
    }
    match t.kind() {
        K::InvalidUrl | K::UnknownScheme | K::InsecureRequestHttpsOnly => SourceError::Permanent(msg),
        _ => SourceError::Transient(msg),
    }
}

fn send_blocking(
    agent: &ureq::Agent,
    request: Request,
    timeout: Duration,
    origin: &str,
) -> Result<Response, SourceError> {
    let mut req = agent.request(request.method, &request.url).timeout(timeout);
    for (name, value) in &request.headers {
        req = req.set(name, value);
    }
    let result = match &request.form {
        Some(form) => {
            let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            req.send_form(&pairs)
        }
        None => req.call(),
    };
    let response = match result {
        Ok(response) | Err(ureq::Error::Status(_, response)) => response,
        Err(ureq::Error::Transport(t)) => return Err(transport_error(origin, &t)),
    };
    let status = response.status();
    let headers = Headers::from_pairs(
        response
            .headers_names()
            .into_iter()
            .filter_map(|name| response.header(&name).map(|v| (name.clone(), v.to_owned()))),
    );
    let mut body = Vec::new();
    let read = response.into_reader().take(MAX_BODY + 1).read_to_end(&mut body);
    read.map_err(|e| SourceError::Transient(format!("{origin}: reading the body: {e}")))?;
    if body.len() as u64 > MAX_BODY {
        return Err(SourceError::Transient(format!("{origin}: body larger than {MAX_BODY} bytes")));
    }
    Ok(Response { status, headers, body })
}

/// `scheme://host:port` of `url`, without user info, path or query: safe to log.
pub fn origin(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("?", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    format!("{scheme}://{host}")
}

/// Percent-encodes one path segment (everything but RFC 3986 unreserved characters).
pub fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Checks that `body` is one JSON value, without keeping the parse (numbers stay as sent).
///
/// # Errors
/// [`SourceError::Permanent`] naming the parse error.
pub fn ensure_json(body: &[u8], what: &str) -> Result<(), SourceError> {
    serde_json::from_slice::<serde::de::IgnoredAny>(body)
        .map(drop)
        .map_err(|e| SourceError::Permanent(format!("{what} is not JSON: {e}")))
}

/// `Retry-After` (seconds or an HTTP date) as an instant.
pub fn retry_after(headers: &Headers, now: chrono::DateTime<chrono::Utc>) -> Option<chrono::DateTime<chrono::Utc>> {
    let value = headers.get("retry-after")?.trim();
    if let Ok(secs) = value.parse::<u32>() {
        return Some(now + chrono::Duration::seconds(i64::from(secs)));
    }
    chrono::DateTime::parse_from_rfc2822(value).ok().map(|t| t.to_utc())
}

/// The usual mapping of a non-2xx status: 429 waits for `Retry-After` when given, 5xx
/// and 429 are transient, other statuses permanent.
pub fn status_error(response: &Response, what: &str, now: chrono::DateTime<chrono::Utc>) -> SourceError {
    let status = response.status;
    if status == 429 {
        if let Some(until) = retry_after(&response.headers, now) {
            return SourceError::RateLimited { until };
        }
    }
    if status == 429 || status >= 500 || status == 408 {
        SourceError::Transient(format!("{what} answered HTTP {status}"))
    } else {
        SourceError::Permanent(format!("{what} answered HTTP {status}"))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_server::{Canned, TestServer};
    use super::*;

    #[test]
    fn origin_drops_credentials_paths_and_queries() {
        assert_eq!(origin("https://user:pw@api.example.com:8443/a/SECRET?key=SECRET"), "https://api.example.com:8443");
        assert_eq!(origin("http://127.0.0.1:9/x"), "http://127.0.0.1:9");
        assert_eq!(path_segment("my page/ü"), "my%20page%2F%C3%BC");
    }

    #[tokio::test]
    async fn returns_every_status_with_headers_and_body() {
        let server = TestServer::start(|req| {
            if req.path == "/missing" {
                Canned::json(404, r#"{"error":"nope"}"#)
            } else {
                Canned::json(200, r#"{"ok":true}"#).header("X-Thing", "yes")
            }
        });
        let client = HttpClient::new();
        let deadline = Deadline::after(Duration::from_secs(5));
        let ok = client.send(Request::get(server.url("/x")).header("A", "b"), deadline).await.unwrap();
        assert_eq!(
            (ok.status, ok.headers.get("x-thing"), ok.body.as_slice()),
            (200, Some("yes"), &br#"{"ok":true}"#[..])
        );
        let missing = client.send(Request::get(server.url("/missing")), deadline).await.unwrap();
        assert_eq!(missing.status, 404);
        let requests = server.requests();
        assert_eq!(requests[0].header("a"), Some("b"));
    }

    #[tokio::test]
    async fn times_out_at_the_deadline_without_naming_the_path() {
        let server = TestServer::start(|_| Canned::json(200, "{}").delay(Duration::from_secs(3)));
        let started = Instant::now();
        let err = HttpClient::new()
            .send(Request::get(server.url("/SECRET")), Deadline::after(Duration::from_millis(300)))
            .await
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
        assert!(matches!(&err, SourceError::Transient(m) if !m.contains("SECRET")), "{err:?}");
    }

    #[tokio::test]
    async fn connection_refused_is_transient() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let err = HttpClient::new()
            .send(Request::get(format!("http://127.0.0.1:{port}/")), Deadline::after(Duration::from_secs(2)))
            .await
            .unwrap_err();
        assert!(matches!(err, SourceError::Transient(_)), "{err:?}");
    }

    #[tokio::test]
    async fn https_uses_rustls_with_ring_and_fails_cleanly_on_a_plain_server() {
        let server = TestServer::start(|_| Canned::json(200, "{}"));
        let url = server.url("/").replace("http://", "https://");
        let err = HttpClient::new().send(Request::get(url), Deadline::after(Duration::from_secs(3))).await.unwrap_err();
        assert!(matches!(err, SourceError::Transient(_)), "{err:?}");
    }

    #[test]
    fn retry_after_accepts_seconds_and_dates() {
        let now = chrono::DateTime::parse_from_rfc3339("2015-10-21T07:00:00Z").unwrap().to_utc();
        let h = |v: &str| Headers::from_pairs([("Retry-After".to_owned(), v.to_owned())]);
        assert_eq!(retry_after(&h("120"), now), Some(now + chrono::Duration::minutes(2)));
        assert_eq!(retry_after(&h("Wed, 21 Oct 2015 07:28:00 GMT"), now), Some(now + chrono::Duration::minutes(28)));
        assert_eq!(retry_after(&h("soon"), now), None);
    }
}
