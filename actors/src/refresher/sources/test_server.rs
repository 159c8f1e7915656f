//! A tiny loopback HTTP/1.1 server for the sources' tests: canned answers, recorded requests.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A request as the server received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query.
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The path without the query.
    pub fn route(&self) -> &str {
        self.path.split('?').next().unwrap_or("")
    }

    /// A query parameter.
    pub fn query(&self, name: &str) -> Option<String> {
        let query = self.path.split_once('?')?.1;
        decode_form(query).into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// A form field of an urlencoded body.
    pub fn form(&self, name: &str) -> Option<String> {
        decode_form(std::str::from_utf8(&self.body).ok()?).into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }
}

fn decode_form(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .map(|(k, v)| (unescape(k), unescape(v)))
        .collect()
}

fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What to answer.
#[derive(Debug, Clone)]
pub struct Canned {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    delay: Duration,
}

impl Canned {
    pub fn json(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.into(),
            delay: Duration::ZERO,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

type Handler = dyn Fn(&Recorded) -> Canned + Send + Sync;

/// The server; stops accepting when dropped.
pub struct TestServer {
    base: String,
    log: Arc<Mutex<Vec<Recorded>>>,
    stop: Arc<AtomicBool>,
}

impl TestServer {
    pub fn start(handler: impl Fn(&Recorded) -> Canned + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let (log2, stop2) = (log.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (log, handler) = (log2.clone(), handler.clone());
                std::thread::spawn(move || serve(stream, &log, &*handler));
            }
        });
        Self { base, log, stop }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        self.base.clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.base.trim_start_matches("http://"));
    }
}

fn serve(stream: TcpStream, log: &Mutex<Vec<Recorded>>, handler: &Handler) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or("").to_owned(), parts.next().unwrap_or("").to_owned());
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.trim_end().split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let len = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("content-length")).and_then(|(_, v)| v.parse().ok());
    let mut body = vec![0; len.unwrap_or(0)];
    let _ = reader.read_exact(&mut body);
    let request = Recorded { method, path, headers, body };
    log.lock().unwrap().push(request.clone());
    let canned = handler(&request);
    std::thread::sleep(canned.delay);
    let mut out =
        format!("HTTP/1.1 {} Canned\r\nContent-Length: {}\r\nConnection: close\r\n", canned.status, canned.body.len());
    for (k, v) in &canned.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut stream = stream;
    let _ = stream.write_all(out.as_bytes());
    let _ = stream.write_all(&canned.body);
    let _ = stream.flush();
}

/// A [`StateStore`](super::StateStore) in memory that logs `save KEY TOKEN` events to a
/// log the fake server can share, so tests can check what happened in which order.
#[derive(Default)]
pub struct MemoryState {
    pub saved: Mutex<std::collections::HashMap<String, serde_json::Value>>,
    pub events: Arc<Mutex<Vec<String>>>,
    pub fail: AtomicBool,
}

impl MemoryState {
    pub fn with_events(events: Arc<Mutex<Vec<String>>>) -> Self {
        Self { events, ..Self::default() }
    }
}

impl super::StateStore for MemoryState {
    fn load(&self, key: &str) -> super::BoxFuture<'_, Option<serde_json::Value>> {
        let value = self.saved.lock().unwrap().get(key).cloned();
        Box::pin(async move { value })
    }

    fn save(&self, key: &str, state: serde_json::Value) -> super::BoxFuture<'_, Result<(), String>> {
        let result = if self.fail.load(Ordering::SeqCst) {
            Err("disk full".to_owned())
        } else {
            let token = state.get("refresh_token").and_then(|t| t.as_str()).unwrap_or("").to_owned();
            self.events.lock().unwrap().push(format!("save {key} {token}"));
            self.saved.lock().unwrap().insert(key.to_owned(), state);
            Ok(())
        };
        Box::pin(async move { result })
    }
}
