//! `kind = "justgiving"`: a fundraising page's totals, stored exactly as the API sent them.
//!
//! Amounts such as `totalRaisedOnline` are decimal strings; the body is validated as
//! JSON but passed on as the original bytes, so no amount ever goes through a float here.
//! Requests are conditional on the last answer's `ETag`/`Last-Modified` (see
//! [`Conditional`]).

use super::client::{path_segment, Request, Response};
use super::json_source::{JsonEndpoint, JsonSource};
use super::SourceError;

/// The JustGiving source of one cache.
pub type JustGivingSource = JsonSource<JustGivingPage>;

/// One fundraising page.
pub struct JustGivingPage {
    app_id: String,
    page_short_name: String,
    base_url: String,
}

impl JustGivingPage {
    /// `base_url` is scheme, host and port (`https://api.justgiving.com`).
    pub fn new(app_id: String, page_short_name: String, base_url: String) -> Self {
        let base_url = base_url.trim_end_matches('/').to_owned();
        Self { app_id, page_short_name, base_url }
    }
}

impl JsonEndpoint for JustGivingPage {
    const KIND: &'static str = "justgiving";
    const WHO: &'static str = "JustGiving";

    fn request(&self) -> Request {
        // The app id is a path segment: errors name only the origin, never this URL.
        let url = format!(
            "{}/{}/v1/fundraising/pages/{}",
            self.base_url,
            path_segment(&self.app_id),
            path_segment(&self.page_short_name)
        );
        Request::get(url).header("Accept", "application/json")
    }

    fn refuse(&self, response: &Response) -> Option<SourceError> {
        (response.status == 401).then(|| {
            SourceError::Permanent(
                "JustGiving answered HTTP 401: it refused the application id; check app_id (or the file \
                 app_id_file names)"
                    .into(),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::client::HttpClient;
    use super::super::clock::SystemClock;
    use super::super::conditional::Conditional;
    use super::super::test_server::{Canned, TestServer};
    use super::super::{FetchRequest, Source};
    use super::*;
    use std::sync::Arc;
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
        let page = JustGivingPage::new("app-SECRET".into(), "my-marathon".into(), base);
        JustGivingSource::new(page, Arc::new(SystemClock), HttpClient::new(), conditional)
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
