//! `kind = "http"`: GET a JSON URL, with headers and an optional bearer token.

use super::client::{ensure_json, status_error, Deadline, HttpClient, Request};
use super::clock::Clock;
use super::{BoxFuture, FetchRequest, Fetched, Source, SourceError};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The HTTP source of one cache.
pub struct HttpSource {
    url: String,
    headers: BTreeMap<String, String>,
    bearer_token: Option<String>,
    clock: Arc<dyn Clock>,
    client: HttpClient,
}

impl HttpSource {
    /// Header values and the token are already resolved from env or files by the config.
    pub fn new(
        url: String,
        headers: BTreeMap<String, String>,
        bearer_token: Option<String>,
        clock: Arc<dyn Clock>,
        client: HttpClient,
    ) -> Self {
        Self { url, headers, bearer_token, clock, client }
    }

    async fn fetch_inner(&self, request: FetchRequest) -> Result<Fetched, SourceError> {
        let mut get = Request::get(self.url.clone()).header("Accept", "application/json");
        for (name, value) in &self.headers {
            get = get.header(name, value);
        }
        if let Some(token) = &self.bearer_token {
            get = get.header("Authorization", format!("Bearer {token}"));
        }
        let response = self.client.send(get, Deadline::after(request.timeout)).await?;
        if !response.is_success() {
            return Err(status_error(&response, "the upstream", self.clock.now()));
        }
        ensure_json(&response.body, "the upstream's answer")?;
        Ok(Fetched { body: response.body, rate_limits: Vec::new() })
    }
}

impl Source for HttpSource {
    fn kind(&self) -> &'static str {
        "http"
    }

    fn fetch(&self, request: FetchRequest) -> BoxFuture<'_, Result<Fetched, SourceError>> {
        Box::pin(self.fetch_inner(request))
    }
}

#[cfg(test)]
mod tests {
    use super::super::clock::TestClock;
    use super::super::test_server::{Canned, TestServer};
    use super::*;
    use chrono::DateTime;
    use std::time::Duration;

    fn request() -> FetchRequest {
        FetchRequest { rich: false, full: false, previous: None, timeout: Duration::from_secs(5) }
    }

    fn source(url: String, clock: Arc<dyn Clock>) -> HttpSource {
        let headers = BTreeMap::from([("X-Api-Key".to_owned(), "k-SECRET".to_owned())]);
        HttpSource::new(url, headers, Some("t-SECRET".into()), clock, HttpClient::new())
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
