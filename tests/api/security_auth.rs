//! API tokens: 401 without a valid bearer token, 403 with a read token on a write,
//! several tokens at once, SHA-256 entries, rotation by SIGHUP without a restart, and
//! bad tokens files refused (exit 78 at startup, kept on reload) without ever
//! printing a token.

use crate::helpers::{new_app, Options};
use crate::security_support::{reload, start_with_files, write_file};
use tiercache_actors::domain::sha256;
use tiercache_testkit::Daemon;

const READER: &str = "rd-5f1e0c9a7b3d4e2f8a6c";
const WRITER: &str = "wr-9c8b7a6f5e4d3c2b1a0f";
const HASHED_WRITER: &str = "hw-0a1b2c3d4e5f60718293";

fn tokens_file() -> String {
    let digest = hex::encode(sha256(HASHED_WRITER.as_bytes()));
    format!("# tiercache API tokens\n\nread:{READER}\nwrite:{WRITER}\n\n# by hash\nwrite:sha256:{digest}\n")
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn app_with_tokens() -> Daemon {
    start_with_files(Options::new().api("tokens_file = \"tokens\""), &[("tokens", &tokens_file())])
}

#[test]
fn security_missing_or_invalid_tokens_are_401_with_a_challenge() {
    let app = app_with_tokens();
    let cases: &[(&str, &[(&str, &str)])] = &[
        ("unauthorized", &[]),
        ("unauthorized", &[("Authorization", "Basic cmQ6eA==")]),
        ("unauthorized", &[("Authorization", "Bearer")]),
        ("unauthorized", &[("Authorization", READER)]),
        ("invalid_token", &[("Authorization", "Bearer not-a-token")]),
        ("invalid_token", &[("Authorization", "Bearer rd-5f1e0c9a7b3d4e2f8a6")]),
        ("invalid_token", &[("Authorization", "Bearer sha256:0000")]),
    ];
    for path in ["/v1/caches", "/v1/caches/strava", "/v1/caches/strava/meta", "/v1/caches/nope", "/v1/other"] {
        for (code, headers) in cases {
            let r = app.get(path, headers);
            assert_eq!(r.status, 401, "{path} {headers:?}: {r:?}");
            assert_eq!(r.assert_json_error(), *code, "{path} {headers:?}");
            let challenge = r.header("www-authenticate").unwrap_or_default();
            assert!(challenge.starts_with("Bearer"), "{path}: WWW-Authenticate {challenge:?}");
        }
    }
    // Writes too, before the body or the content type is looked at.
    let r = app.put("/v1/caches/strava", b"{}", &[("Content-Type", "application/json")]);
    assert_eq!(r.status, 401, "{r:?}");
    let r = app.put("/v1/caches/strava", b"{}", &[("Content-Type", "text/plain")]);
    assert_eq!(r.status, 401, "{r:?}");
    let r = app.request("DELETE", "/v1/caches/strava", None, &[]);
    assert_eq!(r.status, 401, "{r:?}");
    let r = app.request("POST", "/v1/caches/strava/refresh", None, &[]);
    assert_eq!(r.status, 401, "{r:?}");
    // Percent-encoding a path does not get around the check.
    for path in ["/%76%31/caches/strava", "/v1/caches/%73trava", "/v1//caches/strava"] {
        let r = app.get(path, &[]);
        assert_eq!(r.status, 401, "{path}: {r:?}");
    }
    // Nothing was stored by the refused PUTs.
    let r = app.get("/v1/caches/strava", &[("Authorization", &bearer(READER))]);
    assert_eq!(r.status, 503, "{r:?}");
}

#[test]
fn security_health_and_metrics_need_no_token() {
    let app = app_with_tokens();
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(app.get(path, &[]).status, 200, "{path}");
        // An invalid token does not matter there either.
        assert_eq!(app.get(path, &[("Authorization", "Bearer junk")]).status, 200, "{path}");
    }
}

#[test]
fn security_read_tokens_read_and_write_tokens_write() {
    let app = app_with_tokens();
    let read = bearer(READER);
    let write = bearer(WRITER);
    let hashed = bearer(HASHED_WRITER);
    let json = ("Content-Type", "application/json");

    // A read token cannot write: 403 with a JSON body naming the scope.
    let r = app.put("/v1/caches/strava", b"[1]", &[json, ("Authorization", &read)]);
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(r.assert_json_error(), "insufficient_scope");
    assert!(r.header("www-authenticate").unwrap_or_default().contains("insufficient_scope"), "{r:?}");
    for (method, path) in [("DELETE", "/v1/caches/strava"), ("POST", "/v1/caches/strava/refresh")] {
        let r = app.request(method, path, None, &[("Authorization", &read)]);
        assert_eq!(r.status, 403, "{method} {path}: {r:?}");
        assert_eq!(r.assert_json_error(), "insufficient_scope");
    }

    // Write tokens (plain and by hash) write; both scopes read.
    let r = app.put("/v1/caches/strava", b"[1]", &[json, ("Authorization", &write)]);
    assert_eq!(r.status, 200, "{r:?}");
    let r = app.put("/v1/caches/fundraising", b"{\"total\":\"10.00\"}", &[json, ("Authorization", &hashed)]);
    assert_eq!(r.status, 200, "{r:?}");
    for token in [&read, &write, &hashed] {
        let r = app.get("/v1/caches/strava", &[("Authorization", token)]);
        assert_eq!((r.status, r.body.as_str()), (200, "[1]"), "{r:?}");
        let r = app.get("/v1/caches", &[("Authorization", token)]);
        assert_eq!(r.status, 200, "{r:?}");
    }
    // The scheme is case-insensitive.
    let r = app.get("/v1/caches/strava", &[("Authorization", &format!("bearer {READER}"))]);
    assert_eq!(r.status, 200, "{r:?}");
    // Behind a valid token, an unknown path is a JSON 404.
    let r = app.get("/v1/nothing-here", &[("Authorization", &read)]);
    assert_eq!(r.status, 404, "{r:?}");
    r.assert_json_error();

    let r = app.request("DELETE", "/v1/caches/fundraising", None, &[("Authorization", &write)]);
    assert_eq!(r.status, 204, "{r:?}");
}

#[test]
fn security_sighup_rotates_tokens_without_a_restart() {
    let old = "old-token-1f2e3d4c5b6a";
    let new = "new-token-a6b5c4d3e2f1";
    let mut app =
        start_with_files(Options::new().api("tokens_file = \"tokens\""), &[("tokens", &format!("write:{old}\n"))]);
    let pid = app.pid();
    let put = |token: &str| {
        app.put("/v1/caches/strava", b"[1]", &[("Content-Type", "application/json"), ("Authorization", &bearer(token))])
            .status
    };
    assert_eq!(put(old), 200);
    assert_eq!(put(new), 401);

    // Step 1: both valid while clients move.
    write_file(&app, "tokens", &format!("write:{old}\nwrite:{new}\n"));
    assert!(reload(&app), "{}", app.stdout());
    assert_eq!(put(old), 200);
    assert_eq!(put(new), 200);

    // Step 2: the old one removed.
    write_file(&app, "tokens", &format!("# rotated\nwrite:{new}\n"));
    assert!(reload(&app), "{}", app.stdout());
    assert_eq!(put(old), 401);
    assert_eq!(put(new), 200);

    // A bad file is rejected whole: the running set stays, the error names the line
    // and never the token.
    let leaked = "leaky-token-77aa88bb99cc";
    write_file(&app, "tokens", &format!("write:{new}\nadmin:{leaked}\n"));
    assert!(!reload(&app), "a bad tokens file was applied");
    let stdout = app.stdout();
    let rejected = stdout.lines().find(|l| l.contains("reload rejected")).expect("a rejection line");
    assert!(rejected.contains("api.tokens_file: line 2"), "{rejected}");
    assert!(!stdout.contains(leaked) && !stdout.contains(new), "a token reached the log:\n{stdout}");
    assert_eq!(put(new), 200);
    assert_eq!(put(leaked), 401);

    // A missing file too.
    std::fs::remove_file(app.dir().join("tokens")).unwrap();
    assert!(!reload(&app));
    assert_eq!(put(new), 200);

    assert!(app.is_running());
    assert_eq!(app.pid(), pid, "the PID changed: the daemon restarted");
}

#[test]
fn security_bad_tokens_files_exit_78_naming_the_line() {
    let secret = "never-print-me-4c4c4c4c";
    let cases = [
        (format!("read:fine-token\n{secret}\n"), "api.tokens_file: line 2:"),
        (format!("# header\nroot:{secret}\n"), "api.tokens_file: line 2:"),
        (format!("write:sha256:{secret}\n"), "api.tokens_file: line 1:"),
        (format!("read:{secret} with spaces\n"), "api.tokens_file: line 1:"),
    ];
    for (text, expected) in cases {
        let mut app = new_app(Options::new().api("tokens_file = \"tokens\""));
        write_file(&app, "tokens", &text);
        let err = app.try_start().expect_err("started with a bad tokens file");
        assert!(err.contains("exited with 78"), "{err}");
        let stderr = app.stderr();
        assert_eq!(stderr.trim().lines().count(), 1, "one line on stderr: {stderr:?}");
        assert!(stderr.starts_with(&format!("config error: {expected}")), "{stderr:?}");
        assert!(!stderr.contains(secret) && !app.stdout().contains(secret), "the token was printed: {stderr}");
    }
    let mut app = new_app(Options::new().api("tokens_file = \"missing-tokens\""));
    let err = app.try_start().expect_err("started without its tokens file");
    assert!(err.contains("exited with 78"), "{err}");
    assert!(app.stderr().starts_with("config error: api.tokens_file: "), "{}", app.stderr());
}
