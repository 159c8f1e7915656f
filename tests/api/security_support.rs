//! Shared by the `security_*` tests: starting a daemon with extra files in its
//! directory, waiting for the n-th log line of a kind, raw HTTP over TCP and unix
//! sockets, and HTTPS with rustls.

#![allow(dead_code)]

use crate::helpers::{new_app, Options};
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tiercache_testkit::daemon::message;
use tiercache_testkit::Daemon;

/// A daemon with `files` (name, contents) written into its directory before it starts;
/// waits until `/readyz` answers 200 over plain HTTP.
pub fn start_with_files(options: Options, files: &[(&str, &str)]) -> Daemon {
    let mut app = new_app(options);
    for (name, text) in files {
        fs::write(app.dir().join(name), text).expect("write a test file");
    }
    app.start_again();
    app
}

/// Writes `text` to `name` in the daemon's directory.
pub fn write_file(app: &Daemon, name: &str, text: &str) {
    fs::write(app.dir().join(name), text).expect("write a test file");
}

/// How many log lines of the current run have a message containing `text`.
pub fn count_messages(app: &Daemon, text: &str) -> usize {
    app.log_lines().iter().filter(|l| message(l).contains(text)).count()
}

/// Sends SIGHUP and waits until the reload was either applied ("configuration
/// reloaded") or rejected ("reload rejected"); returns whether it was applied.
pub fn reload(app: &Daemon) -> bool {
    let applied = count_messages(app, "configuration reloaded");
    let rejected = count_messages(app, "reload rejected");
    app.signal(nix::sys::signal::Signal::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if count_messages(app, "configuration reloaded") > applied {
            return true;
        }
        if count_messages(app, "reload rejected") > rejected {
            return false;
        }
        assert!(Instant::now() < deadline, "SIGHUP was neither applied nor rejected:\n{}", app.stdout());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A raw HTTP/1.1 answer.
#[derive(Debug, Clone)]
pub struct RawResp {
    /// Status code.
    pub status: u16,
    /// The head, as text (status line and headers).
    pub head: String,
    /// The body bytes, as text (lossy).
    pub body: String,
}

impl RawResp {
    /// A header's value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

/// Parses what a server sent back; `None` when it is not an HTTP response.
pub fn parse_response(bytes: &[u8]) -> Option<RawResp> {
    let split = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&bytes[..split]).into_owned();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let body = String::from_utf8_lossy(&bytes[split + 4..]).into_owned();
    Some(RawResp { status, head, body })
}

fn read_all(stream: &mut impl Read) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            // A reset after the answer (the server closing on an unread body) or a
            // TLS peer closing without close_notify: what was read is the answer.
            Err(_) => break,
        }
        if is_complete(&out) {
            break;
        }
    }
    out
}

/// Whether `bytes` hold a whole response (by `Content-Length` or the last chunk), so
/// that reading can stop without waiting for the server to close.
fn is_complete(bytes: &[u8]) -> bool {
    let Some(split) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else { return false };
    let head = String::from_utf8_lossy(&bytes[..split]).to_ascii_lowercase();
    let body = &bytes[split + 4..];
    if let Some(len) = head.lines().find_map(|l| l.strip_prefix("content-length:")) {
        return len.trim().parse::<usize>().is_ok_and(|n| body.len() >= n);
    }
    if head.contains("transfer-encoding: chunked") {
        return body.ends_with(b"0\r\n\r\n");
    }
    false
}

/// Sends `request` (the exact bytes) over a new TCP connection and reads the answer.
/// `Err` for a connection that gave no HTTP response.
pub fn raw_tcp(port: u16, request: &[u8]) -> Result<RawResp, String> {
    raw_tcp_within(port, request, Duration::from_secs(15))
}

/// [`raw_tcp`], waiting at most `timeout` for each read.
pub fn raw_tcp_within(port: u16, request: &[u8], timeout: Duration) -> Result<RawResp, String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    stream.set_read_timeout(Some(timeout)).expect("read timeout");
    stream.set_write_timeout(Some(Duration::from_secs(15))).expect("write timeout");
    let mut writer = stream.try_clone().expect("clone the stream");
    let bytes = std::thread::scope(|s| {
        // The server may answer (and stop reading) before the whole body is sent: the
        // body goes out from another thread, and the answer is what counts.
        s.spawn(move || {
            let _ = writer.write_all(request);
        });
        let bytes = read_all(&mut stream);
        let _ = stream.shutdown(std::net::Shutdown::Both);
        bytes
    });
    parse_response(&bytes).ok_or_else(|| format!("no HTTP response: {:?}", String::from_utf8_lossy(&bytes)))
}

/// Sends `request` over the unix socket at `path`.
pub fn raw_unix(path: &Path, request: &[u8]) -> Result<RawResp, String> {
    let mut stream = UnixStream::connect(path).map_err(|e| format!("connect {}: {e}", path.display()))?;
    stream.set_read_timeout(Some(Duration::from_secs(15))).expect("read timeout");
    let _ = stream.write_all(request);
    let bytes = read_all(&mut stream);
    parse_response(&bytes).ok_or_else(|| format!("no HTTP response: {:?}", String::from_utf8_lossy(&bytes)))
}

/// A request's bytes: `Connection: close`, `Content-Length` when there is a body.
pub fn request_bytes(method: &str, path: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Vec<u8> {
    let headers: Vec<(String, Vec<u8>)> = headers.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect();
    raw_request_bytes(method, path.as_bytes(), &headers, body)
}

/// [`request_bytes`] with the path and header values as raw bytes (hostile input).
pub fn raw_request_bytes(method: &str, path: &[u8], headers: &[(String, Vec<u8>)], body: Option<&[u8]>) -> Vec<u8> {
    let mut out = method.as_bytes().to_vec();
    out.push(b' ');
    out.extend_from_slice(path);
    out.extend_from_slice(b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
    }
    if let Some(body) = body {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    if let Some(body) = body {
        out.extend_from_slice(body);
    }
    out
}

/// An HTTPS answer and the certificate the server presented.
pub struct HttpsResp {
    /// The answer.
    pub resp: RawResp,
    /// DER of the server's end-entity certificate.
    pub peer_cert: Vec<u8>,
}

/// A client configuration (ring provider) trusting exactly `roots` (DER).
pub fn client_config(roots: &[Vec<u8>]) -> Arc<rustls::ClientConfig> {
    let mut store = rustls::RootCertStore::empty();
    for der in roots {
        store.add(rustls::pki_types::CertificateDer::from(der.clone())).expect("add a test root");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(store)
        .with_no_client_auth();
    Arc::new(config)
}

/// One HTTPS request to `127.0.0.1:port` (server name `localhost`) over a new connection.
pub fn https(
    port: u16,
    config: &Arc<rustls::ClientConfig>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<HttpsResp, String> {
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("server name");
    let conn = rustls::ClientConnection::new(config.clone(), name).map_err(|e| e.to_string())?;
    let sock = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    sock.set_read_timeout(Some(Duration::from_secs(15))).expect("read timeout");
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(&request_bytes(method, path, headers, body)).map_err(|e| format!("TLS write: {e}"))?;
    let bytes = read_all(&mut tls);
    let peer_cert = tls
        .conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.as_ref().to_vec())
        .ok_or_else(|| "no TLS session (handshake failed?)".to_owned())?;
    let resp =
        parse_response(&bytes).ok_or_else(|| format!("no HTTP response: {:?}", String::from_utf8_lossy(&bytes)))?;
    Ok(HttpsResp { resp, peer_cert })
}

/// A self-signed certificate for `localhost` and `127.0.0.1`: (cert PEM, key PEM, cert DER).
pub fn self_signed() -> (String, String, Vec<u8>) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("generate a test certificate");
    (certified.cert.pem(), certified.signing_key.serialize_pem(), certified.cert.der().to_vec())
}

/// Asserts `body` is `{"error": "...", "code": CODE}` and returns it parsed.
pub fn assert_error_body(body: &str, code: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body:?}"));
    assert_eq!(v["code"], code, "{v}");
    assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
    v
}
