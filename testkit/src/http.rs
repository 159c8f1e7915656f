//! HTTP to a daemon under test: one request function, one answer type.
//!
//! Every request is `(method, path or URL, body, headers)` and gives a [`Response`]
//! whatever its status; `Err` only for transport errors.

use std::io::Read;
use std::time::Duration;

/// How long one request may take (beyond any drain or fetch timeout a test configures).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// An HTTP answer of any status.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header names in lower case, in the order received, with their values.
    pub headers: Vec<(String, String)>,
    /// The body as text (lossy UTF-8).
    pub body: String,
}

impl Response {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON; panics with the body when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?} (status {})", self.body, self.status))
    }

    /// The version in the `ETag` (`"VERSION-C"`, C being 16 lower-case hex digits);
    /// `None` when there is no ETag or it has another shape.
    pub fn etag_version(&self) -> Option<u64> {
        try_parse_etag(self.header("etag")?).map(|(version, _)| version)
    }

    /// Asserts the body is a JSON error `{"error": "...", "code": "..."}` and returns the code.
    pub fn assert_json_error(&self) -> String {
        let ct = self.header("content-type").unwrap_or_default();
        assert!(ct.starts_with("application/json"), "error content type {ct:?}: {self:?}");
        let v = self.json();
        let error = v.get("error").and_then(serde_json::Value::as_str);
        let code = v.get("code").and_then(serde_json::Value::as_str);
        assert!(error.is_some_and(|e| !e.is_empty()), "no \"error\" string in {v}");
        assert!(code.is_some_and(|c| !c.is_empty()), "no \"code\" string in {v}");
        code.unwrap_or_default().to_owned()
    }
}

/// Splits an ETag `"VERSION-C"` into its version and checksum prefix; panics naming what
/// is wrong with its shape.
pub fn parse_etag(etag: &str) -> (u64, String) {
    let inner =
        etag.strip_prefix('"').and_then(|e| e.strip_suffix('"')).unwrap_or_else(|| panic!("ETag not quoted: {etag:?}"));
    let (version, hex) = inner.split_once('-').unwrap_or_else(|| panic!("ETag without '-': {etag:?}"));
    assert_eq!(hex.len(), 16, "ETag checksum part is not 16 hex digits: {etag:?}");
    assert!(hex.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()), "ETag hex: {etag:?}");
    (version.parse().unwrap_or_else(|_| panic!("ETag version: {etag:?}")), hex.to_owned())
}

/// [`parse_etag`] that answers `None` instead of panicking.
fn try_parse_etag(etag: &str) -> Option<(u64, String)> {
    let (version, hex) = etag.strip_prefix('"')?.strip_suffix('"')?.split_once('-')?;
    let hex_ok = hex.len() == 16 && hex.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase());
    hex_ok.then_some((version.parse().ok()?, hex.to_owned()))
}

/// A client without pooled connections: a killed or restarted daemon never leaves it
/// holding a dead one.
pub fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().timeout(REQUEST_TIMEOUT).max_idle_connections(0).max_idle_connections_per_host(0).build()
}

/// Any request to a full URL; the answer whatever its status, `Err` only for transport
/// errors (connection refused or reset, timeout).
pub fn try_request(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    body: Option<&[u8]>,
    headers: &[(&str, &str)],
) -> Result<Response, String> {
    let mut req = agent.request(method, url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let result = match body {
        Some(bytes) => req.send_bytes(bytes),
        None => req.call(),
    };
    match result {
        Ok(resp) | Err(ureq::Error::Status(_, resp)) => Ok(into_response(resp)),
        Err(ureq::Error::Transport(t)) => Err(t.to_string()),
    }
}

fn into_response(resp: ureq::Response) -> Response {
    let status = resp.status();
    let mut headers = Vec::new();
    for name in resp.headers_names() {
        for value in resp.all(&name) {
            headers.push((name.to_ascii_lowercase(), value.to_owned()));
        }
    }
    let mut body = Vec::new();
    let _ = resp.into_reader().take(256 << 20).read_to_end(&mut body);
    Response { status, headers, body: String::from_utf8_lossy(&body).into_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags() {
        assert_eq!(parse_etag("\"7-0123456789abcdef\""), (7, "0123456789abcdef".to_owned()));
        assert_eq!(try_parse_etag("\"7-0123456789abcdef\""), Some((7, "0123456789abcdef".to_owned())));
        for bad in ["7-0123456789abcdef", "\"7-0123456789ABCDEF\"", "\"7-01234567\"", "\"x-0123456789abcdef\""] {
            assert_eq!(try_parse_etag(bad), None, "{bad}");
        }
    }
}
