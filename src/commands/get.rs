//! `tiercache get NAME [--meta]`, and the small HTTP client that it and
//! `tiercache status` use to talk to a running daemon.
//!
//! The client reads the same configuration as the daemon: it talks to the first entry
//! of `api.listen` (TCP, over HTTPS when `api.tls_cert` and `api.tls_key` are set, the
//! certificate file being trusted as the root; or `unix:PATH`, relative to the working
//! directory like the daemon's), and presents the first clear-text `read` or `write`
//! token of `api.tokens_file` (relative to the configuration file's directory, as the
//! daemon reads it), or `$TIERCACHE_TOKEN` when the file holds only hashed tokens (or
//! cannot be read by the operator); a 401 says which file was read and why it gave no
//! token.
//!
//! Exit codes (sysexits, documented in docs/operations.md): 0 done; 65 unknown cache
//! (404, or not a valid cache name); 69 the daemon cannot be reached, or answers 503
//! (no data anywhere, not ready); 76 an answer that is not what the API promises;
//! 77 refused (401/403: no or wrong token, outside `api.allow`).

use crate::commands::DATAERR;
use crate::config::{ListenAddr, Settings};
use crate::exit::{Fatal, UNAVAILABLE};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tiercache_actors::domain::CacheName;

/// Remote error in the protocol (EX_PROTOCOL).
pub(crate) const PROTOCOL: i32 = 76;
/// Permission denied (EX_NOPERM).
pub(crate) const NOPERM: i32 = 77;

/// The environment variable holding a token when the tokens file has only hashed ones.
pub(crate) const TOKEN_ENV: &str = "TIERCACHE_TOKEN";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const TIMEOUT: Duration = Duration::from_secs(60);

/// One HTTP answer.
#[derive(Debug)]
pub(crate) struct Reply {
    /// Status code.
    pub status: u16,
    /// Header names in lower case, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// Which daemon answered, for error lines ([`Client::asked`]).
    pub asked: String,
    /// What to say about the token after a 401 ([`ClientToken::hint`]).
    pub token_hint: String,
}

impl Reply {
    /// The first value of header `name` (lower case).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The body as JSON, or exit 76.
    pub(crate) fn json(&self, what: &str) -> Result<Value, Fatal> {
        serde_json::from_slice(&self.body)
            .map_err(|e| Fatal::new(PROTOCOL, format!("{what}: the daemon's answer is not JSON: {e}")))
    }

    /// `{"error": ...}` of a JSON error body, else the status line's meaning.
    fn error_text(&self) -> String {
        serde_json::from_slice::<Value>(&self.body)
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&self.body).trim().chars().take(200).collect())
    }

    /// A non-2xx answer as the exit it maps to.
    pub(crate) fn fail(&self, what: &str) -> Fatal {
        let text = self.error_text();
        let (code, hint) = match self.status {
            404 => (DATAERR, String::new()),
            401 => (NOPERM, format!(" ({})", self.token_hint)),
            403 => (NOPERM, String::new()),
            429 | 500..=599 => (UNAVAILABLE, String::new()),
            _ => (PROTOCOL, String::new()),
        };
        Fatal::new(code, format!("{what}: the daemon at {} answered {}: {text}{hint}", self.asked, self.status))
    }
}

enum Target {
    /// `http://HOST:PORT` or `https://HOST:PORT`.
    Http { base: String, agent: ureq::Agent },
    /// A Unix socket.
    Unix(PathBuf),
}

/// The token the client presents, and what to tell the operator when it is refused or
/// missing: which file was read, where it was looked for, or why it gave none.
struct ClientToken {
    token: Option<String>,
    hint: String,
}

impl ClientToken {
    /// The first clear-text token of `api.tokens_file`, else `$TIERCACHE_TOKEN`.
    fn new(settings: &Settings, env: &dyn Fn(&str) -> Option<String>) -> Self {
        let from_env = env(TOKEN_ENV).map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
        let Some(file) = &settings.api.tokens_file else {
            let hint = if from_env.is_some() {
                format!("the token in ${TOKEN_ENV} was refused")
            } else {
                format!("no token was sent: the configuration sets no api.tokens_file and ${TOKEN_ENV} is not set")
            };
            return Self { token: from_env, hint };
        };
        let (from_file, why) = match std::fs::read_to_string(&file.path) {
            Ok(text) => match first_clear_token(&text) {
                Some(token) => (Some(token), String::new()),
                None => (None, format!("api.tokens_file {} holds no clear-text token", file.describe())),
            },
            Err(e) => (None, format!("api.tokens_file {} cannot be read: {e}", file.describe())),
        };
        let hint = match (&from_file, &from_env) {
            (Some(_), _) => format!("the first token of api.tokens_file {} was refused", file.describe()),
            (None, Some(_)) => format!("{why}; the token in ${TOKEN_ENV} was refused"),
            (None, None) => format!("{why}, and ${TOKEN_ENV} is not set: no token was sent"),
        };
        Self { token: from_file.or(from_env), hint }
    }
}

/// A client of the running daemon's API.
pub(crate) struct Client {
    target: Target,
    token: ClientToken,
    /// Where the address came from (see [`Origin`]).
    origin: Origin,
}

/// Where the configuration that names the daemon's address came from: an operator
/// who gave no `--config` learns that the built-in address was asked.
#[derive(Debug, Clone)]
pub(crate) enum Origin {
    /// `TIERCACHE__API__LISTEN`, which wins over any file (the variable's name).
    Variable(String),
    /// `--config FILE`.
    Flag(PathBuf),
    /// `./tiercache.toml`, found without `--config`.
    DefaultFile,
    /// No file: the built-in defaults.
    BuiltIn,
}

impl Origin {
    /// For the error lines: which `api.listen` was used.
    fn describe(&self) -> String {
        match self {
            Self::Variable(name) => format!("api.listen from ${name}, which wins over the configuration file"),
            Self::Flag(path) => format!("api.listen of {}", path.display()),
            Self::DefaultFile => "api.listen of ./tiercache.toml".into(),
            Self::BuiltIn => "the default api.listen: no --config given and no ./tiercache.toml here".into(),
        }
    }
}

/// The address to connect to for a listen address: a wildcard becomes loopback.
fn connect_addr(addr: &str) -> String {
    match addr.parse::<SocketAddr>() {
        Ok(mut sa) if sa.ip().is_unspecified() => {
            sa.set_ip(match sa.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            });
            sa.to_string()
        }
        Ok(sa) => sa.to_string(),
        Err(_) => addr.to_owned(),
    }
}

/// The first clear-text token of a tokens file (`read` or `write`; hashed lines,
/// comments and anything else skipped).
pub(crate) fn first_clear_token(text: &str) -> Option<String> {
    text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).find_map(|line| {
        let (scope, token) = line.split_once(':')?;
        let token = token.trim();
        (matches!(scope.trim(), "read" | "write") && !token.is_empty() && !token.starts_with("sha256:"))
            .then(|| token.to_owned())
    })
}

fn tls_config(cert: &std::path::Path) -> Result<Arc<rustls::ClientConfig>, Fatal> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let bad = |problem: String| Fatal::new(crate::exit::CONFIG, format!("config error: api.tls_cert: {problem}"));
    let pem = std::fs::read(cert).map_err(|e| bad(format!("cannot read {}: {e}", cert.display())))?;
    let mut roots = rustls::RootCertStore::empty();
    for der in CertificateDer::pem_slice_iter(&pem) {
        let der = der.map_err(|e| bad(format!("{} is not a PEM certificate chain: {e}", cert.display())))?;
        roots.add(der).map_err(|e| bad(format!("{} cannot be trusted: {e}", cert.display())))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

impl Client {
    /// The client for the daemon that `settings` describe.
    pub(crate) fn new(
        settings: &Settings,
        origin: &Origin,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, Fatal> {
        let first = settings.api.listen.first().ok_or_else(|| {
            Fatal::new(crate::exit::CONFIG, "config error: api.listen: no listener to reach the daemon at")
        })?;
        let target = match first {
            ListenAddr::Unix(path) => Target::Unix(path.clone()),
            ListenAddr::Tcp(addr) => {
                let mut builder = ureq::AgentBuilder::new()
                    .timeout_connect(CONNECT_TIMEOUT)
                    .timeout(TIMEOUT)
                    .max_idle_connections_per_host(2)
                    .redirects(0);
                let scheme = match (&settings.api.tls_cert, &settings.api.tls_key) {
                    (Some(cert), Some(_)) => {
                        builder = builder.tls_config(tls_config(cert)?);
                        "https"
                    }
                    _ => "http",
                };
                Target::Http { base: format!("{scheme}://{}", connect_addr(addr)), agent: builder.build() }
            }
        };
        Ok(Self { target, token: ClientToken::new(settings, env), origin: origin.clone() })
    }

    /// The address asked and where it came from, for error lines.
    pub(crate) fn asked(&self) -> String {
        format!("{} ({})", self.address(), self.origin.describe())
    }

    /// Where the daemon is, for messages.
    pub(crate) fn address(&self) -> String {
        match &self.target {
            Target::Http { base, .. } => base.clone(),
            Target::Unix(path) => format!("unix:{}", path.display()),
        }
    }

    fn unreachable(&self, error: impl std::fmt::Display) -> Fatal {
        Fatal::new(
            UNAVAILABLE,
            format!("cannot reach the daemon at {}: {error} (is `tiercache run` running?)", self.asked()),
        )
    }

    /// `GET path`; any status is `Ok`, transport failures exit 69.
    pub(crate) fn get(&self, path: &str) -> Result<Reply, Fatal> {
        match &self.target {
            Target::Http { base, agent } => {
                let mut req = agent.get(&format!("{base}{path}"));
                if let Some(token) = &self.token.token {
                    req = req.set("Authorization", &format!("Bearer {token}"));
                }
                let resp = match req.call() {
                    Ok(resp) | Err(ureq::Error::Status(_, resp)) => resp,
                    Err(ureq::Error::Transport(t)) => return Err(self.unreachable(t)),
                };
                let status = resp.status();
                let headers = resp
                    .headers_names()
                    .into_iter()
                    .filter_map(|name| resp.header(&name).map(|v| (name.to_ascii_lowercase(), v.to_owned())))
                    .collect();
                let mut body = Vec::new();
                resp.into_reader().read_to_end(&mut body).map_err(|e| self.unreachable(e))?;
                Ok(Reply { status, headers, body, asked: self.asked(), token_hint: self.token.hint.clone() })
            }
            Target::Unix(socket) => unix_get(socket, path, self.token.token.as_deref())
                .map(|reply| Reply { asked: self.asked(), token_hint: self.token.hint.clone(), ..reply })
                .map_err(|e| self.unreachable(e)),
        }
    }
}

/// A one-shot HTTP/1.1 `GET` over a Unix socket (`Connection: close`).
fn unix_get(socket: &std::path::Path, path: &str, token: Option<&str>) -> std::io::Result<Reply> {
    use std::io::{Error, ErrorKind};
    let mut stream = std::os::unix::net::UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nAccept: */*\r\n");
    if let Some(token) = token {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let bad = |what: &str| Error::new(ErrorKind::InvalidData, format!("malformed HTTP answer: {what}"));
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| bad("no end of headers"))?;
    let head = std::str::from_utf8(&raw[..head_end]).map_err(|_| bad("headers are not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| bad("no status code"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &raw[head_end + 4..];
    let header = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let body = if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        dechunk(rest).ok_or_else(|| bad("bad chunked body"))?
    } else if let Some(len) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        rest.get(..len).ok_or_else(|| bad("body shorter than Content-Length"))?.to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Reply { status, headers, body, asked: String::new(), token_hint: String::new() })
}

/// Decodes a `Transfer-Encoding: chunked` body (trailers ignored).
fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

/// `tiercache get NAME [--meta]`: the document (canonical JSON, as served) or its meta
/// on stdout.
pub(crate) fn get(settings: &Settings, origin: &Origin, name: &str, meta: bool) -> Result<(), Fatal> {
    let what = format!("get {name}");
    if CacheName::parse(name).is_err() {
        return Err(Fatal::new(DATAERR, format!("{what}: {name:?} is not a valid cache name, so no cache has it")));
    }
    let client = Client::new(settings, origin, &|k| std::env::var(k).ok())?;
    let path = if meta { format!("/v1/caches/{name}/meta") } else { format!("/v1/caches/{name}") };
    let reply = client.get(&path)?;
    if reply.status != 200 {
        return Err(reply.fail(&what));
    }
    let mut out = std::io::stdout().lock();
    let written = if meta {
        let value = reply.json(&what)?;
        let text = serde_json::to_string_pretty(&value).unwrap_or_default();
        writeln!(out, "{text}")
    } else {
        if reply.header("x-cache-tier") == Some("stale") {
            eprintln!("note: {name} is stale (past its schedule, or an expired copy served because every tier failed)");
        }
        out.write_all(&reply.body).and_then(|()| writeln!(out))
    };
    written.and_then(|()| out.flush()).or_else(|e| {
        // A closed pipe (`tiercache get x | head`) is not a failure of the command.
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            Ok(())
        } else {
            Err(Fatal::new(crate::exit::SOFTWARE, format!("{what}: cannot write to stdout: {e}")))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_clear_token_skips_hashed_and_comments() {
        let text = "# tokens\n\nwrite:sha256:0000000000000000000000000000000000000000000000000000000000000000\n\
                    bogus:nope\nread: abc123 \nwrite:later\n";
        assert_eq!(first_clear_token(text).as_deref(), Some("abc123"));
        assert_eq!(first_clear_token("read:sha256:00\n"), None);
        assert_eq!(first_clear_token(""), None);
    }

    #[test]
    fn wildcard_listeners_become_loopback() {
        assert_eq!(connect_addr("0.0.0.0:8077"), "127.0.0.1:8077");
        assert_eq!(connect_addr("[::]:8077"), "[::1]:8077");
        assert_eq!(connect_addr("10.0.0.2:1"), "10.0.0.2:1");
    }

    #[test]
    fn dechunks() {
        assert_eq!(dechunk(b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n").as_deref(), Some(&b"abcde"[..]));
        assert_eq!(dechunk(b"5\r\nab"), None);
    }
}
