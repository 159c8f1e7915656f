//! A fuzz-style run against the real daemon: a few thousand hostile requests (names
//! built for traversal, encodings, NUL, overlong and Unicode look-alikes; hostile
//! headers; hostile bodies), sent as raw bytes so that no client library cleans them
//! up. Every request must get an answer below 500, the daemon must survive, and no
//! file may appear anywhere but in `data_dir`, under a configured cache's name.
//!
//! When the tests run as root, the daemon runs as `nobody`, so that even a traversal
//! bug could not write anywhere that matters.

use crate::helpers::command;
use crate::security_support::{raw_request_bytes, raw_tcp, raw_tcp_within, request_bytes, RawResp};
use crate::util::Rng;
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use tiercache_testkit::daemon::free_port;

/// Every hostile name carries this marker, so a file created from one is findable
/// anywhere.
const MARK: &str = "tcfz";
const TOKEN: &str = "fuzz-writer-token-8d7e6f";
const SCHEMA: &str = r#"{"type":"object","required":["n"],"properties":{"n":{"type":"integer","maximum":1000}}}"#;

/// The daemon run as `nobody` (uid 65534) in a working directory of the test's making,
/// with its output outside that directory: the check that nothing is created outside
/// `data_dir` needs this control, which `testkit::Daemon` does not offer, so this test
/// starts the binary itself (through `helpers::command`, the same clean environment).
struct Unprivileged {
    child: Child,
    port: u16,
}

impl Drop for Unprivileged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(work: &Path) -> Unprivileged {
    for _ in 0..5 {
        let port = free_port();
        let config = format!(
            "data_dir = \"data\"\n[log]\nformat = \"json\"\nlevel = \"warn\"\n\
             [api]\nlisten = [\"127.0.0.1:{port}\"]\nmax_body = \"64KiB\"\ntokens_file = \"tokens\"\n\
             [[caches]]\nname = \"strava\"\n[[caches]]\nname = \"fundraising\"\n\
             [[caches]]\nname = \"typed\"\nschema = \"typed.schema.json\"\n"
        );
        fs::write(work.join("tiercache.toml"), config).unwrap();
        let stdout = fs::File::create(work.parent().unwrap().join("stdout.log")).unwrap();
        let stderr = fs::File::create(work.parent().unwrap().join("stderr.log")).unwrap();
        let mut cmd = command(work);
        cmd.arg("run").arg("--config").arg("tiercache.toml").stdout(stdout).stderr(stderr).stdin(Stdio::null());
        if nix::unistd::geteuid().is_root() {
            cmd.uid(65534).gid(65534);
        }
        let mut daemon = Unprivileged { child: cmd.spawn().expect("spawn tiercache"), port };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if daemon.child.try_wait().unwrap().is_some() {
                break;
            }
            if raw_tcp(port, &request_bytes("GET", "/readyz", &[], None)).is_ok_and(|r| r.status == 200) {
                return daemon;
            }
            assert!(Instant::now() < deadline, "not ready; stderr: {}", read(&work.join("../stderr.log")));
            std::thread::sleep(Duration::from_millis(20));
        }
        let stderr = read(&work.parent().unwrap().join("stderr.log"));
        assert!(stderr.contains("cannot listen"), "the daemon exited: {stderr}");
    }
    panic!("no free port")
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

/// Every path below `root`, relative, except under `skip`.
fn tree(root: &Path, skip: &[&Path]) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if skip.iter().any(|s| path.starts_with(s)) {
                continue;
            }
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path.clone());
            }
            out.insert(path.strip_prefix(root).unwrap().to_owned());
        }
    }
    out
}

/// Raw path segments (as sent on the request line) for a cache name.
fn hostile_names() -> Vec<Vec<u8>> {
    let m = MARK;
    let mut names: Vec<String> = vec![
        format!("../{m}"),
        format!("../../../../../../tmp/{m}"),
        format!("..%2F{m}"),
        format!("..%2f..%2f..%2ftmp%2f{m}"),
        format!("%2e%2e%2f{m}"),
        format!("%2e%2e/{m}"),
        format!("..%5c{m}"),
        format!("..\\{m}"),
        format!("..%252f{m}"),
        format!("%252e%252e%252f{m}"),
        format!("%c0%ae%c0%ae%c0%af{m}"),
        format!("%2F{m}"),
        format!("%2Ftmp%2F{m}"),
        format!("/{m}"),
        format!("{m}%00"),
        format!("{m}%00.json"),
        format!("{m}%2500"),
        format!("{m}.json"),
        format!("{m}.json.tmp"),
        format!(".{m}"),
        format!("{m}/.."),
        format!("{m}/../../{m}"),
        format!("{m}%2F..%2F..%2F{m}"),
        format!("{}{m}", "a".repeat(47)),
        format!("{}{m}", "a".repeat(60)),
        format!("{}{m}", "a".repeat(4000)),
        format!("{m}{}", "%41".repeat(500)),
        m.to_uppercase(),
        format!("-{m}"),
        format!("_{m}"),
        format!("9{m}"),
        format!("{m}%20"),
        format!("{m}+x"),
        format!("{m};rm%20-rf"),
        format!("{m}'%20OR%20'1'='1"),
        format!("{m}%22%3B--"),
        format!("{m}%0d%0aX-Injected:%201"),
        format!("{m}%09"),
        format!("{m}*"),
        format!("{m}?x=../../{m}"),
        format!("{m}#frag"),
        format!("~{m}"),
        format!("{m}%"),
        format!("{m}%zz"),
        format!("{m}%ff%fe"),
        format!("%EF%BD%94%EF%BD%83%EF%BD%86%EF%BD%9A"), // fullwidth "tcfz"
        format!("t%D1%81fz{m}"),                         // Cyrillic es
        format!("{m}%E2%80%8B"),                         // zero-width space
        format!("{m}%E2%80%AE"),                         // right-to-left override
        format!("%C5%BF{m}"),                            // long s
        format!("{m}e%CC%81"),                           // combining acute
        format!("{m}%EF%BC%8F..%EF%BC%8F"),              // fullwidth solidus
        format!("{m}%C0%AF"),                            // overlong '/'
        format!("{m}%ED%A0%80"),                         // a surrogate in UTF-8
        format!("{m}%F4%90%80%80"),                      // past U+10FFFF
        format!("{m}:$DATA"),
        format!("{m}%3A%3A"),
        format!("{m}@host"),
        format!("{m}-ok_name"),
        format!("{m}zz"),
    ];
    names.push(String::new());
    names.push(".".to_owned());
    names.push("...".to_owned());
    let mut raw: Vec<Vec<u8>> = names.into_iter().map(String::into_bytes).collect();
    // Raw bytes no client library would send: NUL, invalid UTF-8, controls, spaces.
    for bytes in [&b"\0"[..], b"\xff\xfe", b"\xc0\xae", b"\x7f", b" x", b"\r", b"\t", b"\xe2\x80\x8b"] {
        let mut name = MARK.as_bytes().to_vec();
        name.extend_from_slice(bytes);
        raw.push(name);
    }
    raw
}

fn bodies() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = vec![
        b"{}".to_vec(),
        br#"{"n":1}"#.to_vec(),
        br#"{"n":1001}"#.to_vec(),
        br#"{"n":"1"}"#.to_vec(),
        b"[]".to_vec(),
        b"".to_vec(),
        b"null".to_vec(),
        b"1e999999".to_vec(),
        b"-1e-999999".to_vec(),
        format!("[{}]", "9".repeat(20_000)).into_bytes(),
        format!("{{\"n\":{}}}", "1".repeat(400)).into_bytes(),
        b"[NaN, Infinity, -Infinity]".to_vec(),
        b"\"\xff\xfe\"".to_vec(),
        b"\xef\xbb\xbf{}".to_vec(),
        b"{\"a\":\"\\ud800\"}".to_vec(),
        b"{\"a\":\"\\udfff\\ud800\"}".to_vec(),
        b"{\"a\":\"x\\u0000y\"}".to_vec(),
        b"{\"a\":\"x\0y\"}".to_vec(),
        b"{\"a\":1,\"a\":2}".to_vec(),
        br#"{"__proto__":{"admin":true}}"#.to_vec(),
        br#"{"n":1,"$ref":"file:///etc/passwd"}"#.to_vec(),
        "[".repeat(100_000).into_bytes(),
        "{\"a\":".repeat(50_000).into_bytes(),
        format!("{}1{}", "[".repeat(64), "]".repeat(64)).into_bytes(),
        format!("{}1{}", "[".repeat(65), "]".repeat(65)).into_bytes(),
        format!("[{}1]", "1,".repeat(20_000)).into_bytes(),
        format!("{{\"{}\":1}}", "k".repeat(50_000)).into_bytes(),
        vec![b'a'; 70_000],
        b"{\"a\":1".to_vec(),
        b"]]]]}}}}".to_vec(),
        b"\"\\u".to_vec(),
    ];
    out.push((0..=255u8).collect());
    out
}

const CONTENT_TYPES: &[Option<&str>] = &[
    Some("application/json"),
    Some("application/json; charset=utf-8"),
    Some("Application/JSON"),
    None,
    Some(""),
    Some("text/plain"),
    Some("application/jsonx"),
    Some("application/json\t; x"),
    Some("application/x-www-form-urlencoded"),
    Some("multipart/form-data; boundary=--x"),
    Some("application/json, text/plain"),
];

fn authorizations() -> Vec<Option<String>> {
    vec![
        Some(format!("Bearer {TOKEN}")),
        Some(format!("Bearer {TOKEN}")),
        Some(format!("bearer   {TOKEN}")),
        None,
        Some("Bearer".to_owned()),
        Some(format!("Bearer {TOKEN}x")),
        Some(format!("Bearer {}", "A".repeat(6000))),
        Some(format!("Basic {TOKEN}")),
        Some(format!("Bearer {TOKEN} {TOKEN}")),
        Some("Bearer \u{e9}t\u{e9}".to_owned()),
    ]
}

/// One request of the corpus.
struct Case {
    label: String,
    bytes: Vec<u8>,
    /// Whether the request is well framed, so that an answer is owed. A request line
    /// with raw spaces, controls or non-ASCII bytes, or malformed framing, may be
    /// dropped without one.
    framed: bool,
}

fn case(label: String, path: &[u8], bytes: Vec<u8>) -> Case {
    let framed = path.iter().all(|b| (0x21..0x7f).contains(b));
    Case { label, bytes, framed }
}

/// The request corpus: every hostile name on every route, then random mixes of names,
/// headers and bodies, then malformed requests.
fn corpus() -> Vec<Case> {
    let names = hostile_names();
    let bodies = bodies();
    let auths = authorizations();
    let routes: [(&str, &[u8]); 5] =
        [("GET", b""), ("GET", b"/meta"), ("PUT", b""), ("DELETE", b""), ("POST", b"/refresh")];
    let auth_header = |a: &Option<String>| a.as_ref().map(|v| ("Authorization".to_owned(), v.clone().into_bytes()));
    let mut out = Vec::new();
    let good_auth = vec![("Authorization".to_owned(), format!("Bearer {TOKEN}").into_bytes())];

    for name in &names {
        for (method, suffix) in routes {
            let mut path = b"/v1/caches/".to_vec();
            path.extend_from_slice(name);
            path.extend_from_slice(suffix);
            let mut headers = good_auth.clone();
            let body = (method == "PUT").then_some(&b"{\"n\":1}"[..]);
            if body.is_some() {
                headers.push(("Content-Type".to_owned(), b"application/json".to_vec()));
            }
            let label = format!("{method} {:?}", String::from_utf8_lossy(&path));
            out.push(case(label, &path, raw_request_bytes(method, &path, &headers, body)));
        }
    }

    let mut rng = Rng(0x5eed_1234_abcd_9876);
    let valid = [&b"strava"[..], b"fundraising", b"typed"];
    for i in 0..2400 {
        // One in four on a configured name (bodies and headers reach the save path).
        let name: &[u8] = if i % 4 == 0 { rng.pick::<&[u8]>(&valid) } else { rng.pick(&names).as_slice() };
        let (method, suffix) = *rng.pick(&[("PUT", &b""[..]), ("PUT", b""), ("GET", b""), ("POST", b"/refresh")]);
        let mut path = b"/v1/caches/".to_vec();
        path.extend_from_slice(name);
        path.extend_from_slice(suffix);
        let mut headers: Vec<(String, Vec<u8>)> = Vec::new();
        if let Some(h) = auth_header(rng.pick(&auths)) {
            headers.push(h);
        }
        if let Some(ct) = rng.pick(CONTENT_TYPES) {
            headers.push(("Content-Type".to_owned(), ct.as_bytes().to_vec()));
        }
        if rng.next().is_multiple_of(8) {
            let extra = rng.pick(&[
                ("X-Forwarded-For", "10.0.0.1"),
                ("If-Match", "\"999-0000000000000000\""),
                ("If-None-Match", "*"),
                ("Accept", "*/*"),
                ("Content-Encoding", "gzip"),
                ("Expect", "200-ok"),
                ("X-Long", "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy"),
            ]);
            headers.push((extra.0.to_owned(), extra.1.as_bytes().to_vec()));
        }
        let body = (method == "PUT").then(|| rng.pick(&bodies).as_slice());
        let label = format!(
            "#{i} {method} {:?} headers {:?} body {:?}",
            String::from_utf8_lossy(&path),
            headers.iter().map(|(k, v)| format!("{k}: {}", String::from_utf8_lossy(v))).collect::<Vec<_>>(),
            body.map(|b| String::from_utf8_lossy(&b[..b.len().min(40)]).into_owned()),
        );
        out.push(case(label, &path, raw_request_bytes(method, &path, &headers, body)));
    }

    // Malformed framing and headers.
    let auth = format!("Authorization: Bearer {TOKEN}\r\n");
    let head = |extra: &str| {
        format!("PUT /v1/caches/strava HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}Content-Type: application/json\r\n{extra}")
    };
    let malformed: Vec<(&str, Vec<u8>)> = vec![
        (
            "chunked, huge chunk size",
            format!("{}Transfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n{{}}\r\n0\r\n\r\n", head("")).into_bytes(),
        ),
        (
            "chunked, bad size",
            format!("{}Transfer-Encoding: chunked\r\n\r\nzz\r\n{{}}\r\n0\r\n\r\n", head("")).into_bytes(),
        ),
        ("chunked, over the limit", {
            let mut r = format!("{}Transfer-Encoding: chunked\r\n\r\n", head("")).into_bytes();
            for _ in 0..80 {
                r.extend_from_slice(format!("400\r\n{}\r\n", " ".repeat(0x400)).as_bytes());
            }
            r.extend_from_slice(b"0\r\n\r\n");
            r
        }),
        (
            "chunked and content-length",
            format!("{}Transfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n2\r\n{{}}\r\n0\r\n\r\n", head(""))
                .into_bytes(),
        ),
        ("two content-lengths", format!("{}Content-Length: 2\r\nContent-Length: 3\r\n\r\n{{}}", head("")).into_bytes()),
        ("negative content-length", format!("{}Content-Length: -1\r\n\r\n{{}}", head("")).into_bytes()),
        ("content-length not a number", format!("{}Content-Length: 2x\r\n\r\n{{}}", head("")).into_bytes()),
        ("content-length past the limit", format!("{}Content-Length: 99999999999\r\n\r\n{{}}", head("")).into_bytes()),
        (
            "content-length overflows",
            format!("{}Content-Length: 999999999999999999999999\r\n\r\n{{}}", head("")).into_bytes(),
        ),
        ("NUL in a header value", format!("{}X-A: a\0b\r\nContent-Length: 2\r\n\r\n{{}}", head("")).into_bytes()),
        ("header without colon", format!("{}Garbage\r\nContent-Length: 2\r\n\r\n{{}}", head("")).into_bytes()),
        (
            "huge header",
            format!("{}X-Big: {}\r\nContent-Length: 2\r\n\r\n{{}}", head(""), "b".repeat(70_000)).into_bytes(),
        ),
        ("many headers", format!("{}{}Content-Length: 2\r\n\r\n{{}}", head(""), "X-H: 1\r\n".repeat(300)).into_bytes()),
        ("obsolete line folding", format!("{}X-Fold: a\r\n b\r\nContent-Length: 2\r\n\r\n{{}}", head("")).into_bytes()),
        ("HTTP/0.9", b"GET /v1/caches/strava\r\n\r\n".to_vec()),
        ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec()),
        ("unknown version", b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n".to_vec()),
        (
            "absolute URI",
            format!("GET http://evil.example/v1/caches/strava HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}\r\n")
                .into_bytes(),
        ),
        ("asterisk", b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec()),
        ("CONNECT", b"CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec()),
        (
            "unknown method",
            format!("BREW /v1/caches/strava HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}\r\n").into_bytes(),
        ),
        (
            "long request line",
            format!("GET /v1/caches/{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "a".repeat(100_000))
                .into_bytes(),
        ),
        ("no host", format!("GET /v1/caches/strava HTTP/1.1\r\nConnection: close\r\n{auth}\r\n").into_bytes()),
        ("binary garbage", (0..=255u8).cycle().take(4096).collect()),
    ];
    for (label, bytes) in malformed {
        out.push(Case { label: format!("malformed: {label}"), bytes, framed: false });
    }
    out
}

#[test]
fn security_fuzz_hostile_requests_never_5xx_never_escape_data_dir() {
    // root/a/b/c/work: traversal from data/caches stays inside root for several levels,
    // and the marker finds anything that went further.
    let root = tempfile::Builder::new().prefix("tiercache-fuzz-").tempdir().unwrap();
    let work = root.path().join("a/b/c/work");
    fs::create_dir_all(&work).unwrap();
    fs::write(work.join("tokens"), format!("write:{TOKEN}\n")).unwrap();
    fs::write(work.join("typed.schema.json"), SCHEMA).unwrap();
    if nix::unistd::geteuid().is_root() {
        let mut dir = work.clone();
        while dir.starts_with(root.path()) {
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
            dir = dir.parent().unwrap().to_owned();
        }
        for p in [work.clone(), work.join("tokens"), work.join("typed.schema.json")] {
            std::os::unix::fs::chown(&p, Some(65534), Some(65534)).unwrap();
        }
    }
    let data = work.join("data");
    let logs = [root.path().join("a/b/c/stdout.log"), root.path().join("a/b/c/stderr.log")];
    let tops_before: BTreeSet<_> = ["/tmp", "/"].iter().flat_map(|d| tree_top(Path::new(d))).collect();

    let daemon = start(&work);
    let port = daemon.port;
    let put = |name: &str, body: &str| {
        let headers = [("Content-Type", "application/json"), ("Authorization", &format!("Bearer {TOKEN}") as &str)];
        raw_tcp(port, &request_bytes("PUT", &format!("/v1/caches/{name}"), &headers, Some(body.as_bytes()))).unwrap()
    };
    for (name, body) in [("strava", "[1]"), ("fundraising", "{}"), ("typed", r#"{"n":5}"#)] {
        assert_eq!(put(name, body).status, 200, "seeding {name}");
    }

    let before = tree(root.path(), &[&data]);
    let corpus = corpus();
    assert!(corpus.len() >= 2500, "{}", corpus.len());
    let started = Instant::now();
    let (left, right) = corpus.split_at(corpus.len() / 2);
    let run = |part: &[Case]| {
        let mut failures = Vec::new();
        for Case { label, bytes, framed } in part {
            // A malformed request may leave the server waiting for more: do not wait
            // long for it.
            let wait = Duration::from_secs(if *framed { 15 } else { 2 });
            match raw_tcp_within(port, bytes, wait) {
                Ok(RawResp { status, .. }) if status < 500 => {}
                Ok(r) => failures.push(format!("{label}: {} {}", r.status, r.body)),
                // Dropping what cannot be framed is neither a crash (checked below)
                // nor a 5xx.
                Err(_) if !framed => {}
                Err(e) => failures.push(format!("{label}: {e}")),
            }
        }
        failures
    };
    let failures: Vec<String> = std::thread::scope(|s| {
        let a = s.spawn(|| run(left));
        let b = s.spawn(|| run(right));
        let mut all = a.join().unwrap();
        all.extend(b.join().unwrap());
        all
    });
    let elapsed = started.elapsed();
    eprintln!("fuzz: {} requests in {elapsed:?}", corpus.len());
    if !failures.is_empty() {
        let tail = |p: &Path| {
            let text = read(p);
            text[text.len().saturating_sub(3000)..].to_owned()
        };
        let shown: Vec<String> = failures.iter().take(10).map(|f| f.chars().take(400).collect()).collect();
        let mut daemon = daemon;
        panic!(
            "{} bad answers (daemon exit status: {:?}), first ones:\n{}\nstderr tail:\n{}\nstdout tail:\n{}",
            failures.len(),
            daemon.child.try_wait(),
            shown.join("\n"),
            tail(&logs[1]),
            tail(&logs[0])
        );
    }

    // Still alive, still serving what was stored, and the process did not restart.
    let mut daemon = daemon;
    assert!(daemon.child.try_wait().unwrap().is_none(), "the daemon died: {}", read(&logs[1]));
    assert_eq!(raw_tcp(port, &request_bytes("GET", "/healthz", &[], None)).unwrap().status, 200);
    let auth = format!("Bearer {TOKEN}");
    let r = raw_tcp(port, &request_bytes("GET", "/v1/caches/typed", &[("Authorization", &auth)], None)).unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    let typed: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert!(typed["n"].as_i64().is_some_and(|n| n <= 1000), "the schema let {typed} through");

    // Nothing outside data_dir changed; inside it, only configured names.
    let after = tree(root.path(), &[&data]);
    let new: Vec<_> = after.difference(&before).collect();
    assert!(new.is_empty(), "files created outside data_dir: {new:?}");
    for path in tree(&data, &[]) {
        let shown = path.to_string_lossy();
        assert!(!shown.contains(MARK), "a hostile name reached the disk: {shown}");
        if let Ok(rest) = path.strip_prefix("caches").map(Path::to_string_lossy) {
            let file = rest.as_ref();
            if file.is_empty() {
                continue;
            }
            let stem = file.trim_start_matches('.').split('.').next().unwrap_or_default();
            assert!(["strava", "fundraising", "typed"].contains(&stem), "unexpected cache file {file}");
        }
    }
    let tops_after: BTreeSet<_> = ["/tmp", "/"].iter().flat_map(|d| tree_top(Path::new(d))).collect();
    let escaped: Vec<_> = tops_after.difference(&tops_before).filter(|p| p.to_string_lossy().contains(MARK)).collect();
    assert!(escaped.is_empty(), "files created by hostile names: {escaped:?}");
    let stderr = read(&logs[1]);
    assert!(!stderr.contains("panicked"), "a panic: {stderr}");
}

fn tree_top(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir).map(|entries| entries.flatten().map(|e| e.path()).collect()).unwrap_or_default()
}
