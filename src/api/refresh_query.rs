//! The query of `POST /v1/caches/NAME/refresh`: `full=true` asks for a full re-read.

use super::error::ApiError;
use actix_web::http::StatusCode;

/// Whether `full=true` (or `1`) is in `query`; anything else under `full`, or another
/// parameter, is a 400 rather than silently ignored.
pub(super) fn full(query: &str) -> Result<bool, ApiError> {
    let mut full = false;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        full = match (key, value) {
            ("full", "true" | "1") => true,
            ("full", "false" | "0") => false,
            ("full", other) => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_query",
                    format!("full must be true or false, got {other:?}"),
                ))
            }
            (other, _) => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_query",
                    format!("unknown query parameter {other:?} (only full is accepted)"),
                ))
            }
        };
    }
    Ok(full)
}

#[cfg(test)]
mod tests {
    use super::full;

    #[test]
    fn parses_full_and_refuses_the_rest() {
        assert!(!full("").unwrap());
        assert!(full("full=true").unwrap());
        assert!(full("full=1").unwrap());
        assert!(!full("full=false").unwrap());
        assert!(full("full=yes").is_err());
        assert!(full("fast=true").is_err());
    }
}
