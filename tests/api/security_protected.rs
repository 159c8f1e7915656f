//! Protected mode: a TCP listener beyond loopback without `api.tokens_file` is
//! refused at startup (exit 78, one line naming `api.listen` and both ways out),
//! by `run` and `check-config` alike, unless `api.allow_unauthenticated = true`.
//! Loopback and `unix:` listeners, and listeners with tokens, are not affected; a
//! reload that would expose the API without tokens is rejected.

use crate::helpers::{new_app, run_cmd, Options};
use crate::security_support::reload;
use std::fs;
use tiercache_testkit::cli::Output;
use tiercache_testkit::daemon::free_port;
use tiercache_testkit::Daemon;

const WRITER: &str = "pm-writer-7c1d9e0b5a3f";

/// A config listening on `listen` (`{port}` is replaced), plus `api` lines.
fn config(listen: &str, port: u16, api: &str) -> String {
    let listen = listen.replace("{port}", &port.to_string());
    format!("data_dir = \"data\"\n[log]\nformat = \"json\"\n[api]\nlisten = [{listen}]\n{api}\n")
}

/// Runs `command --config FILE` in a fresh directory.
fn with_config(command: &str, text: &str, env: &[(&str, &str)]) -> (Output, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiercache.toml");
    fs::write(&path, text).unwrap();
    (run_cmd(dir.path(), &[command, "--config", path.to_str().unwrap()], env), dir)
}

/// Asserts the protected-mode refusal: exit 78, one line naming `api.listen`, the
/// address and both ways out; nothing created.
fn assert_refused(text: &str, env: &[(&str, &str)], address: &str) {
    for command in ["run", "check-config"] {
        let (out, dir) = with_config(command, text, env);
        assert_eq!(out.code, 78, "{command}: {out:?}");
        let lines = out.stderr_lines();
        assert_eq!(lines.len(), 1, "{command}: one stderr line: {:?}", out.stderr);
        let line = lines[0];
        assert!(line.starts_with("config error: api.listen: "), "{command}: {line}");
        assert!(line.contains(address), "{command}: names the address: {line}");
        assert!(line.contains("api.tokens_file"), "{command}: names the tokens way out: {line}");
        assert!(line.contains("api.allow_unauthenticated = true"), "{command}: names the opt-out: {line}");
        assert!(out.stdout.is_empty(), "{command}: printed a config: {}", out.stdout);
        assert!(!dir.path().join("data").exists(), "{command}: created data_dir before refusing");
    }
}

/// Starts a daemon whose whole config is `text_for(port)`, retrying on a taken port.
fn start_raw(files: &[(&str, &str)], env: &[(&str, &str)], text_for: impl Fn(u16) -> String) -> Daemon {
    let mut options = Options::new();
    for (k, v) in env {
        options = options.env(k, v);
    }
    let mut app = new_app(options);
    for (name, text) in files {
        fs::write(app.dir().join(name), text).unwrap();
    }
    let mut port = app.port();
    for _ in 0..5 {
        app.set_config(text_for(port));
        match app.try_start() {
            Ok(()) => return app,
            Err(e) if e.contains("cannot listen") => port = free_port(),
            Err(e) => panic!("the daemon did not start: {e}\nstdout:\n{}", app.stdout()),
        }
    }
    panic!("no free port found")
}

#[test]
fn security_tcp_beyond_loopback_without_tokens_is_refused() {
    let port = free_port();
    assert_refused(&config("\"0.0.0.0:{port}\"", port, ""), &[], &format!("0.0.0.0:{port}"));
    assert_refused(&config("\"[::]:{port}\"", port, ""), &[], &format!("[::]:{port}"));
    // Any exposed entry, even after a loopback one and a unix socket.
    let mixed = config("\"127.0.0.1:{port}\", \"unix:api.sock\", \"0.0.0.0:{port}\"", port, "");
    assert_refused(&mixed, &[], &format!("0.0.0.0:{port}"));
    // Through the environment, over a loopback file.
    let env_listen = format!("0.0.0.0:{port}");
    assert_refused(&config("\"127.0.0.1:{port}\"", port, ""), &[("TIERCACHE__API__LISTEN", &env_listen)], &env_listen);
    // An explicit `false` is the default.
    assert_refused(&config("\"0.0.0.0:{port}\"", port, "allow_unauthenticated = false"), &[], "0.0.0.0");
}

#[test]
fn security_allow_unauthenticated_starts_on_all_interfaces_with_a_warning() {
    let app = start_raw(&[], &[], |port| config("\"0.0.0.0:{port}\"", port, "allow_unauthenticated = true"));
    // Open on purpose: a write needs no token.
    assert_eq!(app.put_json("strava", "[1]").status, 200);
    let warning = app.wait_for_message("configuration warning");
    let text = warning["warning"].as_str().unwrap_or_default();
    assert!(text.contains("api.allow_unauthenticated = true"), "{warning}");
    drop(app);

    // The same through TIERCACHE__API__ALLOW_UNAUTHENTICATED, shown by check-config.
    let port = free_port();
    let env = [("TIERCACHE__API__ALLOW_UNAUTHENTICATED", "true")];
    let (out, _dir) = with_config("check-config", &config("\"0.0.0.0:{port}\"", port, ""), &env);
    assert_eq!(out.code, 0, "{out:?}");
    let printed: toml::Table = toml::from_str(&out.stdout).expect("check-config prints TOML");
    assert_eq!(printed["api"]["allow_unauthenticated"].as_bool(), Some(true), "{}", out.stdout);
    assert!(out.stderr.contains("warning: api.allow_unauthenticated = true"), "{out:?}");
    let app = start_raw(&[], &env, |port| config("\"0.0.0.0:{port}\"", port, ""));
    assert_eq!(app.put_json("strava", "[2]").status, 200);
}

#[test]
fn security_tokens_file_or_loopback_need_no_opt_out() {
    let port = free_port();
    // The same listener is refused without tokens ...
    assert_refused(&config("\"0.0.0.0:{port}\"", port, ""), &[], "0.0.0.0");
    // ... and starts with a tokens file, which it then enforces.
    let tokens = format!("write:{WRITER}\n");
    let app =
        start_raw(&[("tokens", &tokens)], &[], |port| config("\"0.0.0.0:{port}\"", port, "tokens_file = \"tokens\""));
    assert_eq!(app.put_json("strava", "[1]").status, 401);
    let auth = format!("Bearer {WRITER}");
    let r =
        app.put("/v1/caches/strava", b"[1]", &[("Content-Type", "application/json"), ("Authorization", auth.as_str())]);
    assert_eq!(r.status, 200, "{r:?}");
    assert!(!app.stdout().contains("configuration warning"), "{}", app.stdout());
    drop(app);

    // Loopback (IPv4 and IPv6) and unix sockets without tokens: no refusal, no warning.
    let loopback = "\"127.0.0.1:{port}\", \"[::1]:{port}\", \"unix:api.sock\"";
    let (out, _dir) = with_config("check-config", &config(loopback, free_port(), ""), &[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr_lines().is_empty(), "{out:?}");
    let app = start_raw(&[], &[], |port| config("\"127.0.0.1:{port}\", \"unix:api.sock\"", port, ""));
    assert_eq!(app.put_json("strava", "[1]").status, 200);
}

#[test]
fn security_a_reload_that_drops_the_tokens_of_an_exposed_listener_is_rejected() {
    let tokens = format!("write:{WRITER}\n");
    let mut app =
        start_raw(&[("tokens", &tokens)], &[], |port| config("\"0.0.0.0:{port}\"", port, "tokens_file = \"tokens\""));
    let pid = app.pid();
    app.set_config(config("\"0.0.0.0:{port}\"", app.port(), ""));
    assert!(!reload(&app), "the reload was applied:\n{}", app.stdout());
    let rejected = app.wait_for_message("reload rejected");
    assert!(rejected["error"].as_str().unwrap_or_default().contains("api.listen"), "{rejected}");
    // The running tokens stay.
    assert_eq!(app.put_json("strava", "[1]").status, 401);
    assert_eq!(app.pid(), pid);
}

/// An address of this host that is not loopback (the one a default route leaves from),
/// if it has one: a client there is what protected mode is about.
fn non_loopback_address() -> Option<std::net::IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    Some(socket.local_addr().ok()?.ip()).filter(|ip| !ip.is_loopback() && !ip.is_unspecified())
}

/// Listeners stay bound until a restart, so a reload is judged against the bound ones:
/// a daemon on 0.0.0.0 with tokens, reloaded to 127.0.0.1 without tokens, keeps its
/// tokens (the reload is rejected, naming api.listen and why), and a client beyond
/// loopback still gets 401. The change of api.listen is said to need a restart.
#[test]
fn security_a_reload_is_judged_against_the_listeners_actually_bound() {
    let tokens = format!("write:{WRITER}\n");
    let mut app =
        start_raw(&[("tokens", &tokens)], &[], |port| config("\"0.0.0.0:{port}\"", port, "tokens_file = \"tokens\""));
    let port = app.port();
    app.set_config(config("\"127.0.0.1:{port}\"", port, ""));
    assert!(!reload(&app), "the reload was applied:\n{}", app.stdout());
    let rejected = app.wait_for_message("reload rejected");
    let error = rejected["error"].as_str().unwrap_or_default();
    assert!(error.contains("api.listen") && error.contains(&format!("0.0.0.0:{port}")), "{rejected}");
    assert!(error.contains("bound"), "says it judged the bound listener: {rejected}");
    // Still 0.0.0.0 with tokens: from beyond loopback (or, on a host without such an
    // address, from loopback) a PUT without a token is refused.
    let host = non_loopback_address().map_or_else(|| "127.0.0.1".to_owned(), |ip| ip.to_string());
    let agent = ureq::AgentBuilder::new().timeout(std::time::Duration::from_secs(10)).build();
    let url = format!("http://{host}:{port}/v1/caches/strava");
    let status = match agent.put(&url).set("Content-Type", "application/json").send_string("[1]") {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(e) => panic!("PUT {url}: {e}"),
    };
    assert_eq!(status, 401, "an unauthenticated PUT from {host}");

    // With the tokens kept, moving api.listen is applied nowhere but said to need a restart.
    app.set_config(config("\"127.0.0.1:{port}\"", port, "tokens_file = \"tokens\""));
    assert!(reload(&app), "a reload that keeps the tokens is applied:\n{}", app.stdout());
    let moved = app.wait_for_message("api.listen changed, but the listeners stay bound as they are until a restart");
    assert!(moved["bound"].to_string().contains(&format!("0.0.0.0:{port}")), "{moved}");
    let restart = app.wait_for_message("configuration change needs a restart");
    assert!(restart["keys"].to_string().contains("api.listen"), "{restart}");
    let status = match agent.put(&url).set("Content-Type", "application/json").send_string("[1]") {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(e) => panic!("PUT {url}: {e}"),
    };
    assert_eq!(status, 401, "the bound listener still answers, with tokens");
}
