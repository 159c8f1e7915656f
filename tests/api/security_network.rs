//! Who may connect: the `api.allow` CIDR list (403, reloadable), the unix socket
//! (mode 0660, local clients allowed), the per-client rate limit (429 with
//! `Retry-After`, reloadable) and HTTPS on TCP listeners (certificate reloaded on
//! SIGHUP).

use crate::helpers::{new_app, spawn_app_with, Options};
use crate::security_support::{
    assert_error_body, client_config, https, raw_unix, reload, request_bytes, self_signed, write_file,
};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};
use tiercache_testkit::daemon::message;
use tiercache_testkit::Daemon;

/// Polls `probe` until it returns `Some`, for at most 10 s.
fn wait_for<T>(what: &str, app: &mut Daemon, mut probe: impl FnMut(&Daemon) -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = probe(app) {
            return v;
        }
        assert!(app.is_running(), "the daemon exited while waiting for {what}: {}", app.stderr());
        assert!(Instant::now() < deadline, "no {what} within 10 s; stdout:\n{}", app.stdout());
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn security_allow_list_refuses_other_addresses_until_reloaded() {
    let mut app = new_app(Options::new().api("allow = [\"10.0.0.0/8\", \"fd00::/8\"]"));
    app.spawn();
    // Health and metrics obey the list too: 403 once the API is up.
    let r = wait_for("a 403 from /healthz", &mut app, |a| {
        a.try_request("GET", "/healthz", None, &[]).ok().filter(|r| r.status == 403)
    });
    assert_eq!(r.assert_json_error(), "address_not_allowed");
    wait_for("readiness", &mut app, |a| a.log_lines().iter().any(|l| message(l) == "ready").then_some(()));
    let pid = app.pid();
    for path in ["/readyz", "/metrics", "/v1/caches", "/v1/caches/strava", "/nothing"] {
        let r = app.get(path, &[]);
        assert_eq!(r.status, 403, "{path}: {r:?}");
        assert_eq!(r.assert_json_error(), "address_not_allowed");
    }
    let r = app.put("/v1/caches/strava", b"{\"secret-body\":1}", &[("Content-Type", "application/json")]);
    assert_eq!(r.status, 403, "{r:?}");
    // Logged with the client's address, never the body.
    let stdout = app.stdout();
    let refused: Vec<&str> = stdout.lines().filter(|l| l.contains("not in api.allow")).collect();
    assert!(!refused.is_empty(), "no refusal logged:\n{stdout}");
    assert!(refused.iter().all(|l| l.contains("127.0.0.1")), "{refused:?}");
    assert!(!stdout.contains("secret-body"), "the body reached the log");

    // Allowing 127.0.0.1/32 by SIGHUP: 200 without a restart.
    app.set_config(Options::new().api("allow = [\"127.0.0.1/32\"]").config_text());
    assert!(reload(&app), "{}", app.stdout());
    assert_eq!(app.get("/healthz", &[]).status, 200);
    assert_eq!(app.put_json("strava", "[1]").status, 200);
    assert_eq!(app.get_cache("strava").status, 200);

    // A bad CIDR is a rejected reload: the running list stays.
    app.set_config(Options::new().api("allow = [\"10.0.0.0/33\"]").config_text());
    assert!(!reload(&app));
    assert_eq!(app.get("/healthz", &[]).status, 200);
    assert_eq!(app.pid(), pid);
}

#[test]
fn security_unix_socket_is_0660_and_local_clients_are_allowed() {
    // TCP clients are outside the allow-list; the unix socket's clients are local.
    let mut app = new_app(Options::new().listen("unix:./tc.sock").api("allow = [\"10.0.0.0/8\"]"));
    app.spawn();
    let socket = app.dir().join("tc.sock");
    wait_for("readiness over the unix socket", &mut app, |_| {
        raw_unix(&socket, &request_bytes("GET", "/readyz", &[], None)).ok().filter(|r| r.status == 200)
    });
    let mode = std::fs::metadata(&socket).expect("socket metadata").permissions().mode();
    assert_eq!(mode & 0o777, 0o660, "socket mode {:o}", mode & 0o777);

    let put = request_bytes("PUT", "/v1/caches/strava", &[("Content-Type", "application/json")], Some(b"[7]"));
    let r = raw_unix(&socket, &put).unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    let r = raw_unix(&socket, &request_bytes("GET", "/v1/caches/strava", &[], None)).unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, "[7]"), "{r:?}");
    // The same daemon over TCP: refused.
    let r = app.get("/v1/caches/strava", &[]);
    assert_eq!(r.status, 403, "{r:?}");
}

#[test]
fn security_unix_socket_clients_still_need_a_token() {
    let mut app = new_app(Options::new().listen("unix:./tc.sock").api("tokens_file = \"tokens\""));
    write_file(&app, "tokens", "read:unix-reader-token-1234\n");
    app.spawn();
    let socket = app.dir().join("tc.sock");
    wait_for("readiness over the unix socket", &mut app, |_| {
        raw_unix(&socket, &request_bytes("GET", "/readyz", &[], None)).ok().filter(|r| r.status == 200)
    });
    let r = raw_unix(&socket, &request_bytes("GET", "/v1/caches", &[], None)).unwrap();
    assert_eq!(r.status, 401, "{r:?}");
    assert_error_body(&r.body, "unauthorized");
    let auth = [("Authorization", "Bearer unix-reader-token-1234")];
    let r = raw_unix(&socket, &request_bytes("GET", "/v1/caches", &auth, None)).unwrap();
    assert_eq!(r.status, 200, "{r:?}");
}

#[test]
fn security_rate_limit_is_429_with_retry_after_and_reloadable() {
    let mut app = spawn_app_with(Options::new().api("rate_limit_per_second = 1\nrate_limit_burst = 3"));
    let pid = app.pid();
    let statuses: Vec<u16> = (0..3).map(|_| app.get("/v1/caches", &[]).status).collect();
    assert_eq!(statuses, [200, 200, 200], "the burst is allowed");
    let r = app.get("/v1/caches", &[]);
    assert_eq!(r.status, 429, "{r:?}");
    assert_eq!(r.assert_json_error(), "too_many_requests");
    let retry: u64 = r.header("retry-after").expect("Retry-After").parse().expect("whole seconds");
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    // Writes count too; probes are never throttled.
    let r = app.put_json("strava", "[1]");
    assert_eq!(r.status, 429, "{r:?}");
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(app.get(path, &[]).status, 200, "{path}");
    }
    // After Retry-After, the client may go on.
    std::thread::sleep(Duration::from_secs(retry));
    assert_eq!(app.get("/v1/caches", &[]).status, 200);

    // Reloaded with the limit off: no more 429s.
    app.set_config(Options::new().api("rate_limit_per_second = 0").config_text());
    assert!(reload(&app), "{}", app.stdout());
    for _ in 0..20 {
        assert_eq!(app.get("/v1/caches", &[]).status, 200);
    }
    // And on again, with a burst defaulting to the rate.
    app.set_config(Options::new().api("rate_limit_per_second = 2").config_text());
    assert!(reload(&app));
    let statuses: Vec<u16> = (0..6).map(|_| app.get("/v1/caches", &[]).status).collect();
    assert!(statuses.contains(&429), "{statuses:?}");
    assert_eq!(app.pid(), pid);
    assert!(app.is_running());
}

#[test]
fn security_tls_round_trip_and_certificate_reload() {
    let (cert_a, key_a, der_a) = self_signed();
    let (cert_b, key_b, der_b) = self_signed();
    let mut app = new_app(Options::new().api("tls_cert = \"tls.crt\"\ntls_key = \"tls.key\""));
    write_file(&app, "tls.crt", &cert_a);
    write_file(&app, "tls.key", &key_a);
    app.spawn();
    let port = app.port();
    let trust_both = client_config(&[der_a.clone(), der_b.clone()]);
    let trust_b_only = client_config(std::slice::from_ref(&der_b));
    let ready = wait_for("readiness over HTTPS", &mut app, |_| {
        https(port, &trust_both, "GET", "/readyz", &[], None).ok().filter(|r| r.resp.status == 200)
    });
    assert_eq!(ready.peer_cert, der_a, "the configured certificate is served");

    // A save and a read over HTTPS.
    let json = [("Content-Type", "application/json")];
    let put = https(port, &trust_both, "PUT", "/v1/caches/strava", &json, Some(br#"{"b":2,"a":1}"#)).unwrap();
    assert_eq!(put.resp.status, 200, "{:?}", put.resp);
    let got = https(port, &trust_both, "GET", "/v1/caches/strava", &[], None).unwrap();
    assert_eq!((got.resp.status, got.resp.body.as_str()), (200, r#"{"a":1,"b":2}"#));
    // Plain HTTP on the TLS port gets no answer from the API.
    assert!(
        app.try_request("GET", "/readyz", None, &[]).map_or(true, |r| r.status >= 400),
        "plain HTTP served on a TLS listener"
    );
    // A client that does not trust the certificate fails the handshake.
    assert!(https(port, &trust_b_only, "GET", "/readyz", &[], None).is_err());

    // New files and SIGHUP: new connections get the new certificate, same process.
    let pid = app.pid();
    write_file(&app, "tls.crt", &cert_b);
    write_file(&app, "tls.key", &key_b);
    assert!(reload(&app), "{}", app.stdout());
    let after = https(port, &trust_b_only, "GET", "/v1/caches/strava", &[], None).unwrap();
    assert_eq!(after.peer_cert, der_b);
    assert_eq!(after.resp.status, 200);

    // A key that does not match its certificate is a rejected reload; B stays.
    write_file(&app, "tls.key", &key_a);
    assert!(!reload(&app));
    let rejected = app.stdout().lines().find(|l| l.contains("reload rejected")).unwrap_or_default().to_owned();
    assert!(rejected.contains("api.tls_key"), "{rejected}");
    let still = https(port, &trust_b_only, "GET", "/healthz", &[], None).unwrap();
    assert_eq!(still.peer_cert, der_b);
    assert_eq!(app.pid(), pid);
}

#[test]
fn security_bad_tls_files_exit_78() {
    let (cert_a, _, _) = self_signed();
    let (_, key_b, _) = self_signed();
    let cases: [(&str, &str, &str); 3] = [
        (&cert_a, &key_b, "config error: api.tls_key: "),
        ("not a certificate", &key_b, "config error: api.tls_cert: "),
        (&cert_a, "not a key", "config error: api.tls_key: "),
    ];
    for (cert, key, expected) in cases {
        let mut app = new_app(Options::new().api("tls_cert = \"tls.crt\"\ntls_key = \"tls.key\""));
        write_file(&app, "tls.crt", cert);
        write_file(&app, "tls.key", key);
        let err = app.try_start().expect_err("started with bad TLS files");
        assert!(err.contains("exited with 78"), "{err}");
        assert!(app.stderr().starts_with(expected), "{}", app.stderr());
        assert!(!app.stderr().contains("PRIVATE KEY"), "key material printed: {}", app.stderr());
    }
}
