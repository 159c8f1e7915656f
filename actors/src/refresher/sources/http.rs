//! `kind = "http"`: GET a JSON URL, with headers and an optional bearer token, made
//! conditional by the last answer's `ETag`/`Last-Modified` (see [`Conditional`]).

use super::client::Request;
use super::json_source::{JsonEndpoint, JsonSource};
use std::collections::BTreeMap;

/// The HTTP source of one cache.
pub type HttpSource = JsonSource<HttpEndpoint>;

/// A JSON URL with its headers and optional bearer token (resolved from env or files by
/// the config).
pub struct HttpEndpoint {
    /// The URL.
    pub url: String,
    /// Extra request headers.
    pub headers: BTreeMap<String, String>,
    /// Sent as `Authorization: Bearer`.
    pub bearer_token: Option<String>,
}

impl JsonEndpoint for HttpEndpoint {
    const KIND: &'static str = "http";
    const WHO: &'static str = "the upstream";

    fn request(&self) -> Request {
        let mut get = Request::get(self.url.clone()).header("Accept", "application/json");
        for (name, value) in &self.headers {
            get = get.header(name, value);
        }
        if let Some(token) = &self.bearer_token {
            get = get.header("Authorization", format!("Bearer {token}"));
        }
        get
    }
}

#[cfg(test)]
mod tests {
    use super::super::client::HttpClient;
    use super::super::clock::Clock;
    use super::super::clock::TestClock;
    use super::super::conditional::Conditional;
    use super::super::test_server::{Canned, MemoryState, TestServer};
    use super::super::{FetchRequest, Source, SourceError};
    use super::*;
    use crate::domain::{CacheName, Document, NewDocument};
    use chrono::DateTime;
    use std::sync::Arc;
    use std::time::Duration;

    fn request() -> FetchRequest {
        FetchRequest::plain(Duration::from_secs(5))
    }

    fn source(url: String, clock: Arc<dyn Clock>) -> HttpSource {
        source_with(url, clock, Arc::new(MemoryState::default()))
    }

    fn source_with(url: String, clock: Arc<dyn Clock>, state: Arc<MemoryState>) -> HttpSource {
        let headers = BTreeMap::from([("X-Api-Key".to_owned(), "k-SECRET".to_owned())]);
        let conditional = Conditional::new(&CacheName::parse("data").unwrap(), state);
        let endpoint = HttpEndpoint { url, headers, bearer_token: Some("t-SECRET".into()) };
        HttpSource::new(endpoint, clock, HttpClient::new(), conditional)
    }

    /// The document the refresher would hold after saving `body`.
    fn held(body: &str) -> Arc<Document> {
        let doc = NewDocument::from_json(body.as_bytes()).unwrap();
        let name = CacheName::parse("data").unwrap();
        Arc::new(Document::new(name, 1, doc.checksum, None, None, chrono::Utc::now(), doc.body))
    }

    #[tokio::test]
    async fn validators_of_the_held_document_make_the_request_conditional_across_restarts() {
        const BODY: &str = r#"{"n": 1}"#;
        let server = TestServer::start(|req| match req.header("if-none-match") {
            Some("\"v1\"") => Canned::json(304, ""),
            _ => Canned::json(200, BODY)
                .header("ETag", "\"v1\"")
                .header("Last-Modified", "Wed, 01 May 2024 10:00:00 GMT"),
        });
        let state = Arc::new(MemoryState::default());
        let clock: Arc<dyn Clock> = Arc::new(TestClock::new(chrono::Utc::now()));
        let first = source_with(server.url("/d"), clock.clone(), state.clone()).fetch(request()).await.unwrap();
        assert!(!first.not_modified);

        // A new source (a restart): the saved validators are sent, the 304 changes nothing.
        let again = FetchRequest { previous: Some(held(BODY)), ..request() };
        let fetched = source_with(server.url("/d"), clock.clone(), state.clone()).fetch(again).await.unwrap();
        assert!(fetched.not_modified && fetched.body.is_empty(), "{fetched:?}");
        let sent = &server.requests()[1];
        assert_eq!(sent.header("if-none-match"), Some("\"v1\""));
        assert_eq!(sent.header("if-modified-since"), Some("Wed, 01 May 2024 10:00:00 GMT"));

        // The cache holds another document now (a PUT): an unconditional request.
        let replaced = FetchRequest { previous: Some(held(r#"{"put": true}"#)), ..request() };
        let fetched = source_with(server.url("/d"), clock, state).fetch(replaced).await.unwrap();
        assert!(!fetched.not_modified);
        assert_eq!(server.requests()[2].header("if-none-match"), None);
    }

    #[tokio::test]
    async fn a_304_to_an_unconditional_request_is_an_error() {
        let server = TestServer::start(|_| Canned::json(304, ""));
        let clock: Arc<dyn Clock> = Arc::new(TestClock::new(chrono::Utc::now()));
        let err = source(server.url("/d"), clock).fetch(request()).await.unwrap_err();
        assert!(matches!(err, SourceError::Permanent(_) | SourceError::Transient(_)), "{err:?}");
    }

    #[tokio::test]
    async fn sends_headers_and_bearer_and_passes_the_body_through() {
        let body = r#"{"items": [1, 2.50, "3"]}"#;
        let server = TestServer::start(move |_| Canned::json(200, body));
        let clock = Arc::new(TestClock::new(chrono::Utc::now()));
        let fetched = source(server.url("/data?key=q"), clock).fetch(request()).await.unwrap();
        assert_eq!(fetched.body, body.as_bytes());
        let req = &server.requests()[0];
        assert_eq!(req.path, "/data?key=q");
        assert_eq!(req.header("x-api-key"), Some("k-SECRET"));
        assert_eq!(req.header("authorization"), Some("Bearer t-SECRET"));
    }

    #[tokio::test]
    async fn statuses_map_to_errors() {
        let now = DateTime::parse_from_rfc3339("2024-05-01T10:00:00Z").unwrap().to_utc();
        let clock: Arc<dyn Clock> = Arc::new(TestClock::new(now));
        let cases: [(u16, Option<&str>); 5] = [(500, None), (429, None), (429, Some("60")), (404, None), (403, None)];
        for (status, retry_after) in cases {
            let server = TestServer::start(move |_| {
                let canned = Canned::json(status, "{}");
                match retry_after {
                    Some(v) => canned.header("Retry-After", v),
                    None => canned,
                }
            });
            let err = source(server.url("/SECRET?token=SECRET"), clock.clone()).fetch(request()).await.unwrap_err();
            match (&err, status, retry_after) {
                (SourceError::Transient(m), 500 | 429, None) | (SourceError::Permanent(m), 404 | 403, None) => {
                    assert!(!m.contains("SECRET"), "{m}")
                }
                (SourceError::RateLimited { until }, 429, Some(_)) => {
                    assert_eq!(*until, now + chrono::Duration::seconds(60))
                }
                _ => panic!("HTTP {status}: {err:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_body_that_is_not_json_is_refused() {
        let server = TestServer::start(|_| Canned::json(200, "{\"truncated\": "));
        let err =
            source(server.url("/"), Arc::new(TestClock::new(chrono::Utc::now()))).fetch(request()).await.unwrap_err();
        assert!(matches!(err, SourceError::Permanent(_)), "{err:?}");
    }
}
