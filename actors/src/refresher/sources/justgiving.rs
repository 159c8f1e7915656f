//! `kind = "justgiving"`: a fundraising page's totals, stored exactly as the API sent them.
//!
//! Amounts such as `totalRaisedOnline` are decimal strings; the body is validated as
//! JSON but passed on as the original bytes, so no amount ever goes through a float here.
//! Requests are conditional on the last answer's `ETag`/`Last-Modified` (see
//! [`Conditional`]).

use super::client::{path_segment, HttpClient, Request};
use super::clock::Clock;
use super::conditional::Conditional;
use super::{BoxFuture, FetchRequest, Fetched, Source, SourceError};
use std::sync::Arc;

/// The JustGiving source of one cache.
pub struct JustGivingSource {
    app_id: String,
    page_short_name: String,
    base_url: String,
    clock: Arc<dyn Clock>,
    client: HttpClient,
    conditional: Conditional,
}

impl JustGivingSource {
    /// `base_url` is scheme, host and port (`https://api.justgiving.com`).
    pub fn new(
        app_id: String,
        page_short_name: String,
        base_url: String,
        clock: Arc<dyn Clock>,
        client: HttpClient,
        conditional: Conditional,
    ) -> Self {
        let base_url = base_url.trim_end_matches('/').to_owned();
        Self { app_id, page_short_name, base_url, clock, client, conditional }
    }

    async fn fetch_inner(&self, request: FetchRequest) -> Result<Fetched, SourceError> {
        // The app id is a path segment: errors name only the origin, never this URL.
        let url = format!(
            "{}/{}/v1/fundraising/pages/{}",
            self.base_url,
            path_segment(&self.app_id),
            path_segment(&self.page_short_name)
        );
        let get = Request::get(url).header("Accept", "application/json");
        let refuse = |response: &super::client::Response| {
            (response.status == 401).then(|| {
                SourceError::Permanent(
                    "JustGiving answered HTTP 401: it refused the application id; check app_id (or the file \
                     app_id_file names)"
                        .into(),
                )
            })
        };
        self.conditional.fetch_json(&self.client, get, &request, "JustGiving", self.clock.as_ref(), refuse).await
    }
}

impl Source for JustGivingSource {
    fn kind(&self) -> &'static str {
        "justgiving"
    }

    fn builds_on_previous(&self) -> bool {
        true
    }

    fn upstream_calls(&self) -> u64 {
        self.client.calls()
    }

    fn fetch(&self, request: FetchRequest) -> BoxFuture<'_, Result<Fetched, SourceError>> {
        Box::pin(self.fetch_inner(request))
    }
}

#[cfg(test)]
mod tests {
    use super::super::clock::SystemClock;
    use super::super::test_server::{Canned, TestServer};
    use super::*;
    use std::time::Duration;

    /// Shaped like the API's `GET /{appId}/v1/fundraising/pages/{pageShortName}`.
    const PAGE: &str = r#"{"pageId": 12345678, "pageShortName": "my-marathon",
        "fundraisingTarget": "2500.00", "totalRaisedOnline": "1234.56",
        "totalRaisedOffline": "0.10", "totalRaisedSms": "0.00",
        "grandTotalRaisedExcludingGiftAid": "12345678901234567890.01",
        "totalEstimatedGiftAid": 246.91, "huge": 12345678901234567890.01,
        "currencySymbol": "£", "status": "Active"}"#;

    fn source(server: &TestServer) -> JustGivingSource {
        let base = server.base_url();
        let conditional = Conditional::new(
            &crate::domain::CacheName::parse("fundraising").unwrap(),
            Arc::new(super::super::test_server::MemoryState::default()),
        );
        JustGivingSource::new(
            "app-SECRET".into(),
            "my-marathon".into(),
            base,
            Arc::new(SystemClock),
            HttpClient::new(),
            conditional,
        )
    }

    fn request() -> FetchRequest {
        FetchRequest::plain(Duration::from_secs(5))
    }

    #[tokio::test]
    async fn amounts_stay_exact_to_the_penny() {
        let server = TestServer::start(|_| Canned::json(200, PAGE));
        let fetched = source(&server).fetch(request()).await.unwrap();
        assert_eq!(fetched.body, PAGE.as_bytes(), "passed through byte for byte");
        let text = String::from_utf8(fetched.body).unwrap();
        assert!(text.contains(r#""totalRaisedOnline": "1234.56""#));
        assert!(text.contains(r#""grandTotalRaisedExcludingGiftAid": "12345678901234567890.01""#));
        assert!(text.contains(r#""huge": 12345678901234567890.01"#));

        let req = &server.requests()[0];
        assert_eq!(req.path, "/app-SECRET/v1/fundraising/pages/my-marathon");
        assert_eq!(req.header("accept"), Some("application/json"));
    }

    #[tokio::test]
    async fn errors_are_classified_and_never_show_the_app_id() {
        for (status, transient) in [(404, false), (401, false), (503, true), (429, true)] {
            let server = TestServer::start(move |_| Canned::json(status, r#"{"errorMessage":"x"}"#));
            let err = source(&server).fetch(request()).await.unwrap_err();
            match &err {
                SourceError::Transient(m) if transient => assert!(!m.contains("SECRET")),
                SourceError::Permanent(m) if !transient => assert!(!m.contains("SECRET")),
                _ => panic!("HTTP {status}: {err:?}"),
            }
        }
        let limited = TestServer::start(|_| Canned::json(429, "{}").header("Retry-After", "30"));
        let err = source(&limited).fetch(request()).await.unwrap_err();
        assert!(matches!(err, SourceError::RateLimited { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn a_body_that_is_not_json_is_refused() {
        let server = TestServer::start(|_| Canned::json(200, "<html>maintenance</html>"));
        let err = source(&server).fetch(request()).await.unwrap_err();
        assert!(matches!(err, SourceError::Permanent(_)), "{err:?}");
    }
}
