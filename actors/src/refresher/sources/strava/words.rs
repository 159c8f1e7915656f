//! Strava's own words for a refusal, kept in the error an operator reads (meta, status,
//! the log): bounded, on one line, and with every secret the source holds redacted.
//!
//! Strava answers errors as `{"message": "Bad Request", "errors": [{"resource":
//! "RefreshToken", "field": "refresh_token", "code": "invalid"}]}`; the fields it names
//! are what tell a bad client credential from a refused refresh token.

use serde_json::Value;

/// The longest excerpt of an upstream answer kept in an error.
pub const MAX_WORDS: usize = 200;

/// What a refusal of the token endpoint is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRefusal {
    /// The application's `client_id` or `client_secret` (an operator's mistake, or a
    /// secret rotated at Strava): nothing to do with the athlete.
    Client,
    /// The refresh token (revoked by a deauthorization, or replaced by a newer one).
    RefreshToken,
}

fn error_fields(body: &Value) -> Vec<(String, String, String)> {
    let text = |e: &Value, k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    body.get("errors")
        .and_then(Value::as_array)
        .map(|errors| errors.iter().map(|e| (text(e, "resource"), text(e, "field"), text(e, "code"))).collect())
        .unwrap_or_default()
}

/// Classifies a refusal (4xx) of `POST /oauth/token`: the fields Strava names decide;
/// without them 401 and 403 are about the client and 400 about the refresh token
/// (OAuth's `invalid_grant`).
pub fn token_refusal(status: u16, body: &[u8]) -> TokenRefusal {
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let fields = error_fields(&parsed);
    let names_client = fields.iter().any(|(resource, field, _)| {
        resource.eq_ignore_ascii_case("application") || field == "client_id" || field == "client_secret"
    });
    let names_token = fields
        .iter()
        .any(|(resource, field, _)| resource.eq_ignore_ascii_case("refreshtoken") || field == "refresh_token")
        || parsed.get("error").and_then(Value::as_str) == Some("invalid_grant");
    match (names_client, names_token) {
        (true, _) => TokenRefusal::Client,
        (false, true) => TokenRefusal::RefreshToken,
        _ if status == 400 => TokenRefusal::RefreshToken,
        _ => TokenRefusal::Client,
    }
}

/// Strava's words in `body`, on one line, at most [`MAX_WORDS`] characters, with each
/// of `secrets` replaced by `[redacted]`: `"Bad Request: RefreshToken refresh_token
/// invalid"` for its JSON errors, else the start of the text. `None` for an empty body.
pub fn words(body: &[u8], secrets: &[&str]) -> Option<String> {
    let text = match serde_json::from_slice::<Value>(body) {
        Ok(parsed @ Value::Object(_)) => {
            let message = ["message", "error_description", "error"]
                .iter()
                .find_map(|k| parsed.get(*k).and_then(Value::as_str))
                .unwrap_or("")
                .to_owned();
            let details: Vec<String> = error_fields(&parsed)
                .into_iter()
                .map(|(r, f, c)| [r, f, c].into_iter().filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" "))
                .filter(|d| !d.is_empty())
                .collect();
            match (message.is_empty(), details.is_empty()) {
                (_, true) => message,
                (true, false) => details.join("; "),
                (false, false) => format!("{message}: {}", details.join("; ")),
            }
        }
        _ => String::from_utf8_lossy(body).into_owned(),
    };
    let mut text: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        text = text.replace(secret, "[redacted]");
    }
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        return None;
    }
    let mut bounded: String = text.chars().take(MAX_WORDS).collect();
    if bounded.len() < text.len() {
        bounded.push('…');
    }
    Some(bounded)
}

/// `" (Strava: WORDS)"` for an error message, or nothing.
pub fn quoted(body: &[u8], secrets: &[&str]) -> String {
    words(body, secrets).map(|w| format!(" (Strava: \"{w}\")")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fields_strava_names_tell_the_client_from_the_token() {
        let client =
            br#"{"message":"Bad Request","errors":[{"resource":"Application","field":"client_id","code":"invalid"}]}"#;
        let secret = br#"{"message":"Authorization Error","errors":[{"resource":"Application","field":"client_secret","code":"invalid"}]}"#;
        let token = br#"{"message":"Bad Request","errors":[{"resource":"RefreshToken","field":"refresh_token","code":"invalid"}]}"#;
        assert_eq!(token_refusal(400, client), TokenRefusal::Client);
        assert_eq!(token_refusal(401, secret), TokenRefusal::Client);
        assert_eq!(token_refusal(400, token), TokenRefusal::RefreshToken);
        assert_eq!(token_refusal(400, br#"{"error":"invalid_grant"}"#), TokenRefusal::RefreshToken);
        assert_eq!(token_refusal(400, b"nope"), TokenRefusal::RefreshToken);
        assert_eq!(token_refusal(401, b""), TokenRefusal::Client);
        assert_eq!(token_refusal(403, b"{}"), TokenRefusal::Client);
    }

    #[test]
    fn words_are_one_bounded_line_without_secrets() {
        let token = br#"{"message":"Bad Request","errors":[{"resource":"RefreshToken","field":"refresh_token","code":"invalid"}]}"#;
        assert_eq!(words(token, &[]).as_deref(), Some("Bad Request: RefreshToken refresh_token invalid"));
        let echoed = b"bad token s3cr3t-value\nsent\tby you";
        assert_eq!(words(echoed, &["s3cr3t-value"]).as_deref(), Some("bad token [redacted] sent by you"));
        let long = "x".repeat(1000);
        let w = words(long.as_bytes(), &[]).unwrap();
        assert_eq!(w.chars().count(), MAX_WORDS + 1);
        assert_eq!(words(b"  ", &[]), None);
        assert_eq!(quoted(b"", &[]), "");
    }
}
