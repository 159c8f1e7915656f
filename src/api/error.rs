//! API errors: a status and a JSON body `{"error": "...", "code": "..."}` (docs/openapi.yaml).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use std::fmt;

/// An error answer.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// For people.
    pub message: String,
    /// Seconds for `Retry-After` (503, 429).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), retry_after: None }
    }

    /// Adds `Retry-After`.
    pub(crate) fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// 404 for a name that is not configured (or not a valid name at all).
    pub(crate) fn unknown_cache(name: &str) -> Self {
        let shown: String = name.chars().take(60).collect();
        Self::new(StatusCode::NOT_FOUND, "unknown_cache", format!("no cache named {shown:?} is configured"))
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

/// A JSON answer's body: the value on one line, ending with a newline so that `curl`
/// leaves the shell prompt on its own line. Not for cache documents, which are served
/// as their canonical bytes (whose checksum is published).
pub(crate) fn json_line(value: &impl serde::Serialize) -> String {
    let mut line = serde_json::to_string(value).unwrap_or_else(|_| "{}".into());
    line.push('\n');
    line
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status);
        if let Some(secs) = self.retry_after {
            res.insert_header(("Retry-After", secs.to_string()));
        }
        res.content_type("application/json")
            .body(json_line(&serde_json::json!({ "error": self.message, "code": self.code })))
    }
}
