//! API tokens (`api.tokens_file`): parsing the file and checking a presented token.
//!
//! Every token is kept only as its SHA-256 digest, whether the file gave it in clear
//! (`SCOPE:TOKEN`) or hashed (`SCOPE:sha256:HEX`). A presented token is hashed and
//! compared with every known digest in constant time, so neither the comparison nor
//! the position of a match in the file shows in the response time. Nothing here ever
//! formats a token or a digest into an error or a log line.

use std::fmt;
use std::path::Path;
use subtle::ConstantTimeEq;
use tiercache_actors::domain::sha256;

/// What a token may do. `Write` includes `Read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Scope {
    /// `GET` (and `HEAD`) of `/v1/*`.
    Read,
    /// Everything, including `PUT`, `POST` and `DELETE`.
    Write,
}

impl Scope {
    /// The file's spelling.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
        }
    }

    /// Whether a token of this scope may do what `needed` asks.
    pub(crate) fn allows(self, needed: Scope) -> bool {
        self >= needed
    }
}

struct Entry {
    digest: [u8; 32],
    scope: Scope,
    /// Given in clear in the file (not as `sha256:HEX`).
    plain: bool,
}

/// The valid tokens, several at once (rotation: add the new one, reload, move the
/// clients, remove the old one, reload).
#[derive(Default)]
pub(crate) struct TokenSet {
    entries: Vec<Entry>,
}

impl fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the digests: a digest of a weak token is as good as the token.
        f.debug_struct("TokenSet").field("tokens", &self.entries.len()).finish()
    }
}

/// A problem in the tokens file: its 1-based line and what is wrong, never the line's
/// text (it may hold a token).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TokensError {
    /// The file could not be read.
    #[error("cannot read {path}: {error}")]
    Unreadable {
        /// The path.
        path: String,
        /// The I/O error.
        error: String,
    },
    /// A line is not `SCOPE:TOKEN` or `SCOPE:sha256:HEX`.
    #[error("line {line}: {problem}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        problem: &'static str,
    },
}

impl TokenSet {
    /// Reads the tokens file at `path`.
    ///
    /// # Errors
    /// [`TokensError`] for an unreadable file or the first bad line.
    pub(crate) fn load(path: &Path) -> Result<Self, TokensError> {
        let bytes = std::fs::read(path)
            .map_err(|e| TokensError::Unreadable { path: path.display().to_string(), error: e.to_string() })?;
        // Not `read_to_string`: its error would not say which line is at fault.
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => {
                let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
                let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
                return Err(TokensError::Line { line, problem: "is not valid UTF-8" });
            }
        };
        Self::parse(&text)
    }

    /// Parses the text of a tokens file: one `SCOPE:TOKEN` or `SCOPE:sha256:HEX` per
    /// line, split at the first colon; blank lines and lines starting with `#` are
    /// ignored; white space around a line is ignored.
    ///
    /// # Errors
    /// [`TokensError::Line`] for the first bad line.
    pub(crate) fn parse(text: &str) -> Result<Self, TokensError> {
        let mut entries = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line_no = i + 1;
            let bad = |problem| TokensError::Line { line: line_no, problem };
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (scope, token) = line.split_once(':').ok_or_else(|| bad("expected SCOPE:TOKEN (no colon found)"))?;
            let scope = match scope.trim() {
                "read" => Scope::Read,
                "write" => Scope::Write,
                _ => return Err(bad("the scope before the first colon must be \"read\" or \"write\"")),
            };
            let token = token.trim();
            let plain = !token.starts_with("sha256:");
            let digest = match token.strip_prefix("sha256:") {
                Some(hex_digest) => {
                    let mut digest = [0u8; 32];
                    hex::decode_to_slice(hex_digest.trim(), &mut digest)
                        .map_err(|_| bad("a sha256: token must be 64 hexadecimal digits"))?;
                    digest
                }
                None => {
                    if token.is_empty() {
                        return Err(bad("the token after the colon is empty"));
                    }
                    if !token.bytes().all(|b| b.is_ascii_graphic()) {
                        return Err(bad("the token holds white space, control or non-ASCII characters \
                             (it could not be sent in an Authorization header)"));
                    }
                    sha256(token.as_bytes())
                }
            };
            entries.push(Entry { digest, scope, plain });
        }
        Ok(Self { entries })
    }

    /// How many tokens are valid.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the file gave any token in clear (then it must not be readable by
    /// others; a file of `sha256:` entries holds no secret).
    pub(crate) fn has_plain_tokens(&self) -> bool {
        self.entries.iter().any(|e| e.plain)
    }

    /// Whether no token is valid (every authenticated request is refused).
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The scope of `presented`, or `None` when it is not a valid token.
    ///
    /// Every entry is compared, in constant time, whatever matches: the time taken
    /// depends only on the number of tokens.
    pub(crate) fn scope_of(&self, presented: &str) -> Option<Scope> {
        let digest: [u8; 32] = sha256(presented.as_bytes());
        let mut read = subtle::Choice::from(0);
        let mut write = subtle::Choice::from(0);
        for entry in &self.entries {
            let hit = entry.digest.ct_eq(&digest);
            match entry.scope {
                Scope::Read => read |= hit,
                Scope::Write => write |= hit,
            }
        }
        if bool::from(write) {
            Some(Scope::Write)
        } else if bool::from(read) {
            Some(Scope::Read)
        } else {
            None
        }
    }
}

/// The token of an `Authorization: Bearer TOKEN` header value (scheme
/// case-insensitive), or `None` for any other shape.
pub(crate) fn bearer(header: &str) -> Option<&str> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim();
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_hashed_comments_and_blanks() {
        let hashed = hex::encode(sha256(b"hashed-token"));
        let text = format!(
            "# API tokens\n\nread:reader-token\n  write:writer:with:colons  \nwrite:sha256:{hashed}\r\n# end\n"
        );
        let set = TokenSet::parse(&text).unwrap();
        assert_eq!(set.len(), 3);
        assert!(set.has_plain_tokens());
        assert!(!TokenSet::parse(&format!("read:sha256:{hashed}")).unwrap().has_plain_tokens());
        assert_eq!(set.scope_of("reader-token"), Some(Scope::Read));
        assert_eq!(set.scope_of("writer:with:colons"), Some(Scope::Write));
        assert_eq!(set.scope_of("hashed-token"), Some(Scope::Write));
        assert_eq!(set.scope_of(&format!("sha256:{hashed}")), None, "the digest itself is not a token");
        assert_eq!(set.scope_of("reader-token "), None);
        assert_eq!(set.scope_of(""), None);
        assert_eq!(set.scope_of("nope"), None);
    }

    #[test]
    fn the_higher_scope_wins_for_a_token_listed_twice() {
        let set = TokenSet::parse("read:same\nwrite:same\n").unwrap();
        assert_eq!(set.scope_of("same"), Some(Scope::Write));
    }

    #[test]
    fn write_includes_read() {
        assert!(Scope::Write.allows(Scope::Read));
        assert!(Scope::Write.allows(Scope::Write));
        assert!(Scope::Read.allows(Scope::Read));
        assert!(!Scope::Read.allows(Scope::Write));
    }

    #[test]
    fn bad_lines_name_the_line_and_never_the_token() {
        let cases = [
            ("read:ok\nsecret-without-scope\n", 2),
            ("admin:secret-value\n", 1),
            ("secret-value:read\n", 1),
            ("\n\nwrite:\n", 3),
            ("write:sha256:abc\n", 1),
            ("write:sha256:zz3f4e9c1f7c8d5d0c2b6a4d9b8e7f6a5c4b3a29181706f5e4d3c2b1a0f9e8d7c6\n", 1),
            ("read:two words\n", 1),
            ("read:caf\u{e9}-secret\n", 1),
        ];
        for (text, line) in cases {
            let err = TokenSet::parse(text).unwrap_err();
            assert!(matches!(err, TokensError::Line { line: l, .. } if l == line), "{text:?}: {err:?}");
            let shown = err.to_string();
            assert!(!shown.contains("secret"), "{shown}");
            assert!(!shown.contains("words"), "{shown}");
        }
    }

    #[test]
    fn empty_files_are_valid_and_refuse_everything() {
        let set = TokenSet::parse("# nobody yet\n").unwrap();
        assert!(set.is_empty());
        assert_eq!(set.scope_of("anything"), None);
    }

    #[test]
    fn load_reports_io_and_utf8_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(TokenSet::load(&dir.path().join("none")), Err(TokensError::Unreadable { .. })));
        let path = dir.path().join("tokens");
        std::fs::write(&path, b"read:a\nread:b\xff\n").unwrap();
        assert_eq!(TokenSet::load(&path).unwrap_err(), TokensError::Line { line: 2, problem: "is not valid UTF-8" });
        std::fs::write(&path, b"read:a\n").unwrap();
        assert_eq!(TokenSet::load(&path).unwrap().len(), 1);
    }

    #[test]
    fn debug_shows_no_digest() {
        let set = TokenSet::parse("read:tok\n").unwrap();
        let shown = format!("{set:?}");
        assert_eq!(shown, "TokenSet { tokens: 1 }");
    }

    #[test]
    fn bearer_headers() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer   abc  "), Some("abc"));
        assert_eq!(bearer("BEARER abc"), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("abc"), None);
    }
}
