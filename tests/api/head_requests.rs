//! HEAD works wherever GET does (`curl -I`, load balancers, probes): the same status and
//! headers, `Content-Length` of the body GET sends, and no body on the wire; a read
//! token is enough; `Allow` names it.

use crate::helpers::{spawn_app_with, Options};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use tiercache_testkit::Daemon;

const READ: &str = "read-token-for-head";
const VERIFY: &str = "verify-head";

/// Sends one raw HTTP/1.1 request and reads until the daemon closes: the status, the
/// headers (lower-case names) and every byte after them.
fn raw(app: &Daemon, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut stream = TcpStream::connect(("127.0.0.1", app.port())).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read the answer");
    let end = answer.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete head") + 4;
    let head = String::from_utf8_lossy(&answer[..end]).into_owned();
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, answer[end..].to_vec())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// A path, its request headers, whether its body changes between two requests, and
/// the status expected.
type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, bool, u16);

/// Headers whose values may differ between two requests a moment apart.
const MOVING: [&str; 2] = ["date", "age"];

/// HEAD `path` answers like GET `path`: same status, same headers (values too, except
/// those that move, and `content-length` for a body that changes between the two),
/// and nothing after the headers.
fn assert_head_like_get(app: &Daemon, path: &str, headers: &[(&str, &str)], body_moves: bool) -> u16 {
    let (get_status, get_headers, get_body) = raw(app, "GET", path, headers);
    let (status, head_headers, head_body) = raw(app, "HEAD", path, headers);
    assert_eq!(status, get_status, "HEAD {path}: {head_headers:?}");
    assert!(head_body.is_empty(), "HEAD {path} sent a body: {:?}", String::from_utf8_lossy(&head_body));
    let names = |h: &[(String, String)]| {
        let mut n: Vec<String> = h.iter().map(|(k, _)| k.clone()).collect();
        n.sort();
        n
    };
    assert_eq!(names(&head_headers), names(&get_headers), "HEAD {path}");
    for (name, value) in &get_headers {
        let moves = MOVING.contains(&name.as_str()) || (body_moves && name == "content-length");
        if !moves {
            assert_eq!(header(&head_headers, name), Some(value.as_str()), "HEAD {path}: {name}");
        }
    }
    // A 304 has no length; any other answer's length is the body GET sent.
    if let Some(length) = header(&head_headers, "content-length").filter(|_| !body_moves) {
        assert_eq!(length.parse::<usize>().ok(), Some(get_body.len()), "HEAD {path}: GET's body length");
    }
    status
}

#[test]
fn head_answers_like_get_on_every_get_route() {
    let app = spawn_app_with(Options::new().tables(&format!("[webhooks]\nstrava_verify_token = \"{VERIFY}\"\n")));
    app.put_ok("strava", r#"{"activities": [1, 2, 3]}"#);
    let etag = app.get_cache("strava").header("etag").expect("an ETag").to_owned();

    let handshake = format!("/v1/webhooks/strava?hub.mode=subscribe&hub.verify_token={VERIFY}&hub.challenge=abc");
    let wrong = "/v1/webhooks/strava?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=abc";
    let cases: [Case<'_>; 11] = [
        ("/healthz", vec![], false, 200),
        ("/readyz", vec![], false, 200),
        ("/metrics", vec![], true, 200),
        ("/v1/openapi.json", vec![], false, 200),
        ("/v1/caches", vec![], false, 200),
        ("/v1/caches/strava", vec![], false, 200),
        ("/v1/caches/strava", vec![("If-None-Match", etag.as_str())], false, 304),
        ("/v1/caches/strava/meta", vec![], false, 200),
        ("/v1/caches/nope", vec![], false, 404),
        (handshake.as_str(), vec![], false, 200),
        (wrong, vec![], false, 403),
    ];
    for (path, headers, moves, expected) in &cases {
        assert_eq!(assert_head_like_get(&app, path, headers, *moves), *expected, "{path}");
    }
    // The document's own headers are there.
    let (_, headers, _) = raw(&app, "HEAD", "/v1/caches/strava", &[]);
    for name in ["etag", "last-modified", "x-cache-tier", "age", "cache-control", "content-type"] {
        assert!(header(&headers, name).is_some(), "HEAD of the document lacks {name}: {headers:?}");
    }
    // `Allow` names HEAD wherever GET is allowed.
    let (status, headers, _) = raw(&app, "POST", "/healthz", &[]);
    assert_eq!(status, 405);
    assert_eq!(header(&headers, "allow"), Some("GET, HEAD"), "{headers:?}");
    let (_, headers, _) = raw(&app, "PATCH", "/v1/caches/strava", &[]);
    assert_eq!(header(&headers, "allow"), Some("GET, HEAD, PUT, DELETE"), "{headers:?}");
}

#[test]
fn head_needs_a_read_token_like_get() {
    let mut app = crate::helpers::new_app(Options::new().api("tokens_file = \"tokens\""));
    std::fs::write(app.dir().join("tokens"), format!("read:{READ}\n")).unwrap();
    app.start_again();
    let bearer = format!("Bearer {READ}");
    // Without a token: 401 with the challenge, no body.
    assert_eq!(assert_head_like_get(&app, "/v1/caches", &[], false), 401);
    let (_, headers, _) = raw(&app, "HEAD", "/v1/caches", &[]);
    assert!(header(&headers, "www-authenticate").is_some(), "{headers:?}");
    // A read token is enough; the probes need none.
    assert_eq!(assert_head_like_get(&app, "/v1/caches", &[("Authorization", bearer.as_str())], false), 200);
    assert_eq!(assert_head_like_get(&app, "/healthz", &[], false), 200);
}
