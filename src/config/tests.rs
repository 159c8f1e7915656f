//! Loading end to end: layers, precedence, every error's key, and redaction.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use secrecy::ExposeSecret;

use super::layers::{overridable_keys, override_var};
use super::log::LogFormat;
use super::*;

const H: u64 = 3600;

fn load(file: Option<&str>, vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let vars: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let file = file.map(|text| (PathBuf::from("test.toml"), text.to_owned()));
    Settings::load_text(file.as_ref(), &|k| vars.get(k).cloned())
}

fn ok(file: Option<&str>, vars: &[(&str, &str)]) -> Settings {
    load(file, vars).unwrap_or_else(|e| panic!("{e}"))
}

/// The error's key, after checking that it is an error at all.
fn err(file: Option<&str>, vars: &[(&str, &str)]) -> ConfigError {
    match load(file, vars) {
        Ok(s) => panic!("expected an error, got {s:?}"),
        Err(e) => e,
    }
}

fn err_key(file: &str) -> String {
    err(Some(file), &[]).key
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn defaults_without_file() {
    let s = ok(None, &[]);
    assert_eq!(s.project, "default");
    assert_eq!(s.data_dir, PathBuf::from("./data"));
    // Unset: JSON unless stdout is a terminal.
    assert_eq!(s.log.format, LogFormat::Auto);
    assert!(s.log.format.is_json(false) && !s.log.format.is_json(true));
    assert!(LogFormat::Json.is_json(true) && !LogFormat::Pretty.is_json(false));
    assert_eq!(s.log.level, "info");
    assert_eq!(s.api.listen, vec![ListenAddr::Tcp("127.0.0.1:8077".into())]);
    assert_eq!(s.api.max_body, 16 << 20);
    assert_eq!(s.api.tokens_file, None);
    assert!(s.api.allow.is_empty());
    assert_eq!((s.api.rate_limit_per_second, s.api.rate_limit_burst), (0, 0));
    assert_eq!((s.api.tls_cert.clone(), s.api.tls_key.clone()), (None, None));
    assert_eq!(s.memory.ttl, secs(300));
    assert!(!s.postgres.enabled);
    assert!(s.postgres.url.is_none());
    assert_eq!(s.postgres.password_file, None);
    assert_eq!(s.postgres.options.sslmode, None);
    assert_eq!(s.postgres.options.ssl_root_cert, None);
    assert_eq!(s.postgres.options.pool_size, 8);
    assert!(s.postgres.options.statement_cache);
    assert!(!s.postgres.single_instance, "If-Match answers 503 while Postgres is away by default");
    assert_eq!(s.postgres.options.connect_timeout, secs(5));
    assert_eq!(s.postgres.options.statement_timeout, secs(15));
    assert!(s.retry.enabled);
    assert_eq!(s.retry.backoff.initial_interval, Duration::from_millis(500));
    assert_eq!(s.retry.backoff.max_interval, secs(60));
    assert!((s.retry.backoff.multiplier - 2.0).abs() < f64::EPSILON);
    assert_eq!(s.retry.max_attempts, 20);
    assert!(s.shutdown.graceful);
    assert_eq!(s.shutdown.timeout, secs(30));
    assert!(s.refresh.emergency);
    assert_eq!(s.refresh.fetch_timeout, secs(60));
    assert_eq!(s.refresh.max_stale, None);
    assert_eq!(s.refresh.jitter, Duration::ZERO);
    assert_eq!(s.supervisor.max_restarts, 5);
    assert_eq!(s.supervisor.window, secs(60));
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);

    let names: Vec<_> = s.caches.iter().map(|c| c.name.to_string()).collect();
    assert_eq!(names, ["strava", "fundraising"]);
    let (strava, fundraising) = (&s.caches[0], &s.caches[1]);
    assert_eq!(strava.refresh_every, Some(secs(6 * H)));
    assert_eq!(strava.rich_refresh_every, Some(secs(24 * H)));
    assert_eq!(fundraising.refresh_every, Some(secs(15 * 60)));
    assert_eq!(fundraising.rich_refresh_every, None);
    for c in &s.caches {
        assert_eq!(c.max_size, 16 << 20);
        assert_eq!(c.retention_days, 30);
        assert!(c.source.is_none() && c.schema.is_none());
    }
}

#[test]
fn load_without_file_uses_defaults_unless_a_local_file_exists() {
    if std::path::Path::new(DEFAULT_FILE).exists() {
        return;
    }
    let s = Settings::load(None, &|_| None).unwrap();
    assert_eq!(s.caches.len(), 2);
}

#[test]
fn missing_config_file_is_an_error_naming_it() {
    let e = Settings::load(Some(std::path::Path::new("/nonexistent/t.toml")), &|_| None).unwrap_err();
    assert_eq!(e.key, "/nonexistent/t.toml");
}

#[test]
fn file_overrides_defaults() {
    let s = ok(
        Some(
            r#"
            project = "site"
            data_dir = "/var/lib/tiercache"
            [log]
            format = "pretty"
            level = "debug"
            [api]
            listen = ["0.0.0.0:9000", "unix:/run/tiercache.sock"]
            allow_unauthenticated = true
            max_body = "1MiB"
            allow = ["10.0.0.0/8", "::1"]
            [memory]
            ttl = "1m"
            [postgres]
            enabled = true
            url = "postgres://app@db.internal/postgres"
            sslmode = "verify-full"
            statement_cache = false
            single_instance = true
            [refresh]
            max_stale = "2d"
            [[caches]]
            name = "activities"
            refresh_every = "30m"
            max_size = "2 MiB"
            retention_days = 7
            [caches.source]
            kind = "command"
            argv = ["/usr/bin/fetch", "--json"]
            [[caches]]
            name = "manual"
            "#,
        ),
        &[],
    );
    assert_eq!(s.project, "site");
    assert_eq!(s.data_dir, PathBuf::from("/var/lib/tiercache"));
    assert_eq!(s.log.format, LogFormat::Pretty);
    assert_eq!(s.log.level, "debug");
    assert_eq!(
        s.api.listen,
        vec![ListenAddr::Tcp("0.0.0.0:9000".into()), ListenAddr::Unix("/run/tiercache.sock".into())]
    );
    assert!(s.api.allow_unauthenticated);
    assert_eq!(s.api.max_body, 1 << 20);
    assert_eq!(s.api.allow, ["10.0.0.0/8", "::1"]);
    assert_eq!(s.memory.ttl, secs(60));
    assert!(s.postgres.enabled);
    assert_eq!(
        s.postgres.url.as_ref().map(|u| u.expose_secret().to_owned()),
        Some("postgres://app@db.internal/postgres".into())
    );
    assert_eq!(s.postgres.options.sslmode, Some(TlsMode::VerifyFull));
    assert!(!s.postgres.options.statement_cache);
    assert!(s.postgres.single_instance);
    assert_eq!(s.refresh.max_stale, Some(secs(48 * H)));
    assert_eq!(s.caches.len(), 2);
    let c = &s.caches[0];
    assert_eq!(c.name.as_str(), "activities");
    assert_eq!(c.refresh_every, Some(secs(1800)));
    assert_eq!((c.max_size, c.retention_days), (2 << 20, 7));
    match &c.source {
        Some(SourceConfig::Command { argv, timeout }) => {
            assert_eq!(argv, &["/usr/bin/fetch", "--json"]);
            assert_eq!(*timeout, secs(30));
        }
        other => panic!("{other:?}"),
    }
    let manual = &s.caches[1];
    assert_eq!((manual.refresh_every, manual.max_size), (None, 16 << 20));
}

#[test]
fn a_file_without_caches_keeps_the_seed_caches() {
    let s = ok(Some("project = \"p\"\n"), &[]);
    let names: Vec<_> = s.caches.iter().map(|c| c.name.to_string()).collect();
    assert_eq!(names, ["strava", "fundraising"]);
}

#[test]
fn legacy_variables() {
    let s = ok(
        None,
        &[
            ("SUPABASE_ENABLED", "yes"),
            ("SUPABASE_DB_URL", "postgres://u:pw@db/postgres"),
            ("DATABASE_URL", "postgres://other/db"),
            ("PROJECT_ID", "legacy-project"),
            ("STRAVA_CACHE_HOURS", "1.5"),
            ("FUNDRAISING_CACHE_MINUTES", "5"),
            ("CACHE_TTL_SECONDS", "90"),
            ("GRACEFUL_SHUTDOWN", "0"),
            ("EMERGENCY_REFRESH", "false"),
            ("BACKGROUND_RETRY", "NO"),
        ],
    );
    assert!(s.postgres.enabled);
    assert_eq!(s.postgres.url.as_ref().unwrap().expose_secret(), "postgres://u:pw@db/postgres");
    assert_eq!(s.project, "legacy-project");
    assert_eq!(s.caches[0].refresh_every, Some(secs(5400)));
    assert_eq!(s.caches[1].refresh_every, Some(secs(300)));
    assert_eq!(s.memory.ttl, secs(90));
    assert!(!s.shutdown.graceful);
    assert!(!s.refresh.emergency);
    assert!(!s.retry.enabled);
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
}

#[test]
fn database_url_alone_is_used() {
    let s = ok(None, &[("DATABASE_URL", "postgresql://db/x")]);
    assert_eq!(s.postgres.url.unwrap().expose_secret(), "postgresql://db/x");
}

#[test]
fn empty_legacy_variables_count_as_unset() {
    let s = ok(None, &[("SUPABASE_ENABLED", ""), ("PROJECT_ID", "")]);
    assert_eq!(s.project, "default");
}

#[test]
fn legacy_warnings() {
    let s = ok(
        Some("[[caches]]\nname = \"other\"\n"),
        &[("SUPABASE_SERVICE_KEY", "service-key-value"), ("STRAVA_CACHE_HOURS", "2")],
    );
    assert_eq!(s.warnings.len(), 2, "{:?}", s.warnings);
    assert!(s.warnings[0].contains("SUPABASE_SERVICE_KEY"));
    assert!(s.warnings[1].contains("STRAVA_CACHE_HOURS"));
    assert!(!format!("{s:?}").contains("service-key-value"));
}

#[test]
fn precedence_override_beats_legacy_beats_file() {
    let file = "project = \"from-file\"\n[memory]\nttl = \"1m\"\n[postgres]\nenabled = false\n\
                url = \"postgres://file/db\"\n";
    let s = ok(Some(file), &[]);
    assert_eq!((s.project.as_str(), s.memory.ttl), ("from-file", secs(60)));

    let legacy = [("PROJECT_ID", "from-legacy"), ("CACHE_TTL_SECONDS", "120"), ("SUPABASE_ENABLED", "true")];
    let s = ok(Some(file), &legacy);
    assert_eq!((s.project.as_str(), s.memory.ttl), ("from-legacy", secs(120)));
    assert!(s.postgres.enabled);

    let mut all = legacy.to_vec();
    all.extend([
        ("TIERCACHE__PROJECT", "from-override"),
        ("TIERCACHE__MEMORY__TTL", "3m"),
        ("TIERCACHE__POSTGRES__ENABLED", "false"),
    ]);
    let s = ok(Some(file), &all);
    assert_eq!((s.project.as_str(), s.memory.ttl), ("from-override", secs(180)));
    assert!(!s.postgres.enabled);
}

#[test]
fn overrides_reach_every_section() {
    let s = ok(
        None,
        &[
            ("TIERCACHE__DATA_DIR", "/srv/data"),
            ("TIERCACHE__API__LISTEN", "127.0.0.1:1, unix:/tmp/t.sock"),
            ("TIERCACHE__API__MAX_BODY", "1048576"),
            ("TIERCACHE__API__RATE_LIMIT_PER_SECOND", "10"),
            ("TIERCACHE__POSTGRES__POOL_SIZE", "3"),
            ("TIERCACHE__RETRY__MULTIPLIER", "1.5"),
            ("TIERCACHE__SUPERVISOR__MAX_RESTARTS", "9"),
            ("TIERCACHE__REFRESH__MAX_STALE", "1h"),
            ("TIERCACHE__PROJECT", "42"),
        ],
    );
    assert_eq!(s.data_dir, PathBuf::from("/srv/data"));
    assert_eq!(s.api.listen, vec![ListenAddr::Tcp("127.0.0.1:1".into()), ListenAddr::Unix("/tmp/t.sock".into())]);
    assert_eq!(s.api.max_body, 1 << 20);
    assert_eq!(s.api.rate_limit_per_second, 10);
    assert_eq!(s.postgres.options.pool_size, 3);
    assert!((s.retry.backoff.multiplier - 1.5).abs() < f64::EPSILON);
    assert_eq!(s.supervisor.max_restarts, 9);
    assert_eq!(s.refresh.max_stale, Some(secs(H)));
    assert_eq!(s.project, "42");
}

#[test]
fn spec_example_error_line() {
    let e = err(Some("[[caches]]\nname = \"a\"\n[[caches]]\nname = \"b\"\nrefresh_every = \"6 hours\"\n"), &[]);
    assert!(
        e.to_string().starts_with(r#"config error: caches[1].refresh_every: invalid duration "6 hours" (expected "#),
        "{e}"
    );
}

#[test]
fn unknown_keys_name_the_key() {
    assert_eq!(err_key("[api]\nfoo = 1\n"), "api.foo");
    assert_eq!(err_key("foo = 1\n"), "foo");
    assert_eq!(err_key("[nope]\n"), "nope");
    assert_eq!(err_key("[[caches]]\nname = \"a\"\ncolour = \"red\"\n"), "caches[0].colour");
    assert_eq!(
        err_key("[[caches]]\nname = \"a\"\n[caches.source]\nkind = \"http\"\nurl = \"https://x\"\nbogus = 1\n"),
        "caches[0].source.bogus"
    );
    // A key of another kind of source.
    assert_eq!(
        err_key("[[caches]]\nname = \"a\"\n[caches.source]\nkind = \"command\"\nargv = [\"x\"]\nurl = \"https://x\"\n"),
        "caches[0].source.url"
    );
    let e = err(Some("[api]\nfoo = 1\n"), &[]);
    assert!(e.problem.starts_with("unknown key"), "{}", e.problem);
}

#[test]
fn type_and_value_errors_name_the_key() {
    let cases = [
        ("[api]\nmax_body = true\n", "api.max_body"),
        ("[api]\nmax_body = \"16 XB\"\n", "api.max_body"),
        ("[api]\nmax_body = 0\n", "api.max_body"),
        ("[memory]\nttl = 300\n", "memory.ttl"),
        ("[postgres]\npool_size = \"many\"\n", "postgres.pool_size"),
        ("[postgres]\npool_size = 0\n", "postgres.pool_size"),
        ("[postgres]\nsingle_instance = \"maybe\"\n", "postgres.single_instance"),
        ("[api]\nworkers = -1\n", "api.workers"),
        ("[api]\nworkers = 100000\n", "api.workers"),
        ("[api]\nworkers = \"many\"\n", "api.workers"),
        ("[retry]\nmultiplier = 0.5\n", "retry.multiplier"),
        ("[retry]\ninitial_interval = \"2m\"\n", "retry.initial_interval"),
        ("[supervisor]\nmax_restarts = 0\n", "supervisor.max_restarts"),
        ("[postgres]\nsslmode = \"sometimes\"\n", "postgres.sslmode"),
        ("[log]\nformat = \"xml\"\n", "log.format"),
        ("project = \"\"\n", "project"),
        ("[api]\nlisten = []\n", "api.listen"),
        ("[api]\nlisten = [\"127.0.0.1:1\", \"localhost:80\"]\n", "api.listen[1]"),
        ("[api]\nallow = [\"10.0.0.0/8\", \"10.0.0.0/40\"]\n", "api.allow[1]"),
        ("[api]\ntls_cert = \"c.pem\"\n", "api.tls_key"),
        ("[api]\ntls_key = \"k.pem\"\n", "api.tls_cert"),
        ("[postgres]\nenabled = true\n", "postgres.url"),
        ("[postgres]\nurl = \"https://x.supabase.co\"\n", "postgres.url"),
        ("[[caches]]\nrefresh_every = \"1h\"\n", "caches[0].name"),
        ("[[caches]]\nname = \"Bad\"\n", "caches[0].name"),
        ("[[caches]]\nname = \"a\"\nrefresh_every = \"0s\"\n", "caches[0].refresh_every"),
    ];
    for (file, key) in cases {
        assert_eq!(err(Some(file), &[]).key, key, "{file}");
    }
    assert_eq!(err(None, &[("TIERCACHE__POSTGRES__URL", "mysql://x")]).key, "postgres.url");
}

#[test]
fn duplicate_cache_names() {
    let e = err(Some("[[caches]]\nname = \"x\"\n[[caches]]\nname = \"y\"\n[[caches]]\nname = \"x\"\n"), &[]);
    assert_eq!(e.to_string(), r#"config error: caches[2].name: duplicate cache name "x""#);
}

#[test]
fn invalid_cache_name_uses_the_name_rule() {
    let e = err(Some("[[caches]]\nname = \"a/b\"\n"), &[]);
    assert_eq!(e.key, "caches[0].name");
    let rule = CacheName::parse("a/b").unwrap_err().to_string();
    assert!(e.problem.contains(&rule), "{}", e.problem);
}

#[test]
fn legacy_errors_name_the_variable() {
    for (var, value) in [
        ("STRAVA_CACHE_HOURS", "six"),
        ("STRAVA_CACHE_HOURS", "0"),
        ("STRAVA_CACHE_HOURS", "-1"),
        ("FUNDRAISING_CACHE_MINUTES", "NaN"),
        ("CACHE_TTL_SECONDS", "5m"),
        ("SUPABASE_ENABLED", "maybe"),
        ("GRACEFUL_SHUTDOWN", "2"),
        ("SUPABASE_DB_URL", "https://x.supabase.co"),
        ("DATABASE_URL", "mysql://x"),
    ] {
        assert_eq!(err(None, &[(var, value)]).key, var, "{var}={value}");
    }
}

#[test]
fn supabase_project_url_needs_the_database_url() {
    let e = err(None, &[("SUPABASE_ENABLED", "true"), ("SUPABASE_URL", "https://abc.supabase.co")]);
    assert_eq!(e.key, "SUPABASE_URL");
    assert!(e.problem.contains("SUPABASE_DB_URL") && e.problem.contains("postgres://"));

    let s = ok(None, &[("SUPABASE_URL", "https://abc.supabase.co"), ("SUPABASE_DB_URL", "postgres://db/x")]);
    assert!(s.warnings.iter().any(|w| w.contains("SUPABASE_URL")));
}

#[test]
fn source_requirements() {
    let src = |body: &str| format!("[[caches]]\nname = \"c\"\n[caches.source]\n{body}\n");
    let cases = [
        ("kind = \"ftp\"", "caches[0].source.kind"),
        ("kind = \"strava\"\nclient_secret = \"s\"\nrefresh_token = \"t\"", "caches[0].source.client_id"),
        ("kind = \"strava\"\nclient_id = \"1\"\nrefresh_token = \"t\"", "caches[0].source.client_secret"),
        ("kind = \"strava\"\nclient_id = \"1\"\nclient_secret = \"s\"", "caches[0].source.refresh_token"),
        (
            "kind = \"strava\"\nclient_id = \"1\"\nclient_secret = \"s\"\nrefresh_token = \"t\"\nper_page = 500",
            "caches[0].source.per_page",
        ),
        (
            "kind = \"strava\"\nclient_id = \"1\"\nclient_secret = \"s\"\nrefresh_token = \"t\"\nfull_refresh_every = \"0s\"",
            "caches[0].source.full_refresh_every",
        ),
        (
            "kind = \"strava\"\nclient_id = \"1\"\nclient_secret = \"s\"\nrefresh_token = \"t\"\nfull_refresh_every = \"daily\"",
            "caches[0].source.full_refresh_every",
        ),
        ("kind = \"http\"\nurl = \"http://x\"\nfull_refresh_every = \"1h\"", "caches[0].source.full_refresh_every"),
        ("kind = \"justgiving\"\npage_short_name = \"p\"", "caches[0].source.app_id"),
        ("kind = \"justgiving\"\napp_id = \"a\"", "caches[0].source.page_short_name"),
        ("kind = \"http\"", "caches[0].source.url"),
        ("kind = \"http\"\nurl = \"ftp://x\"", "caches[0].source.url"),
        ("kind = \"command\"", "caches[0].source.argv"),
        ("kind = \"command\"\nargv = []", "caches[0].source.argv"),
        ("kind = \"command\"\nargv = [\"x\"]\ntimeout = \"soon\"", "caches[0].source.timeout"),
        (
            "kind = \"strava\"\nclient_id = \"1\"\nclient_secret = \"s\"\nrefresh_token_file = \"/nonexistent/token\"",
            "caches[0].source.refresh_token_file",
        ),
        (
            "kind = \"http\"\nurl = \"https://x\"\nbearer_token = \"a\"\nbearer_token_file = \"/etc/hostname\"",
            "caches[0].source.bearer_token_file",
        ),
    ];
    for (body, key) in cases {
        assert_eq!(err(Some(&src(body)), &[]).key, key, "{body}");
    }

    let s = ok(Some(&src("kind = \"justgiving\"\napp_id = \"a\"\npage_short_name = \"p\"")), &[]);
    match &s.caches[0].source {
        Some(SourceConfig::Justgiving { base_url, .. }) => {
            assert_eq!(base_url, "https://api.justgiving.com");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn toml_syntax_error_is_one_line_naming_the_file() {
    let e = err(Some("[api\nlisten = 1\n"), &[]);
    assert_eq!(e.key, "test.toml");
    assert!(!e.problem.contains('\n'), "{}", e.problem);
}

#[test]
fn secret_files_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "file-token\n").unwrap();
    std::fs::write(dir.path().join("strava-secret"), "cred-secret\r\n").unwrap();
    std::fs::write(dir.path().join("pgpass"), "pg-pass\n").unwrap();
    let file = format!(
        "[postgres]\npassword_file = \"pgpass\"\n\
         [[caches]]\nname = \"strava\"\n[caches.source]\nkind = \"strava\"\nclient_id = \"123\"\n\
         client_secret_file = \"strava-secret\"\nrefresh_token_file = {:?}\n",
        token.display().to_string()
    );
    let creds = dir.path().display().to_string();
    let s = ok(Some(&file), &[("CREDENTIALS_DIRECTORY", &creds)]);
    assert_eq!(s.postgres.password_file, Some(dir.path().join("pgpass")));
    // Compared whole, so that a new field must be given here. `Debug` hides the secrets:
    // they are compared on their own first, for a failure that says which one.
    let expected = tiercache_actors::refresher::sources::strava::Settings {
        client_id: "123".into(),
        client_secret: "cred-secret".into(),
        refresh_token: "file-token".into(),
        refresh_token_file: Some(token.clone()),
        base_url: "https://www.strava.com".into(),
        per_page: 200,
        // The default: daily.
        full_refresh_every: std::time::Duration::from_secs(86400),
        // No [webhooks] verify token.
        learn_athlete: false,
    };
    let Some(SourceConfig::Strava(strava)) = &s.caches[0].source else { panic!("{:?}", s.caches[0].source) };
    assert_eq!((strava.client_secret.as_str(), strava.refresh_token.as_str()), ("cred-secret", "file-token"));
    assert_eq!(strava, &expected);

    // Without the credentials directory, the bare name is not found.
    let e = err(Some(&file), &[]);
    assert_eq!(e.key, "postgres.password_file");
}

#[test]
fn secrets_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "SECRET-file-token\n").unwrap();
    let file = format!(
        r#"
        [postgres]
        url = "postgres://app:SECRET-pg-pass@db.example.com/postgres"
        [[caches]]
        name = "strava"
        [caches.source]
        kind = "strava"
        client_id = "123"
        client_secret = "SECRET-client"
        refresh_token_file = {:?}
        [[caches]]
        name = "jg"
        [caches.source]
        kind = "justgiving"
        app_id = "SECRET-app-id"
        page_short_name = "walk"
        [[caches]]
        name = "api"
        [caches.source]
        kind = "http"
        url = "https://api.example.com/v1/doc"
        bearer_token = "SECRET-bearer"
        headers = {{ "X-Api-Key" = "SECRET-header" }}
        "#,
        token.display().to_string()
    );
    let s = ok(Some(&file), &[]);
    let debug = format!("{s:?}");
    let toml = s.to_redacted_toml();
    for shown in [&debug, &toml] {
        assert!(!shown.contains("SECRET"), "{shown}");
    }
    assert!(toml.contains("postgres://app:[redacted]@db.example.com/postgres"), "{toml}");
    assert!(toml.contains("client_secret = \"[redacted]\""), "{toml}");
    assert!(!toml.contains("client_secret_file"), "given inline: {toml}");
    assert!(toml.contains("X-Api-Key"), "{toml}");
    assert!(toml.contains("client_id = \"123\""), "{toml}");
}

#[test]
fn redacted_toml_reloads_to_the_same_settings() {
    let file = "[api]\nallow = [\"10.0.0.0/8\"]\n[refresh]\nmax_stale = \"90m\"\n\
                [[caches]]\nname = \"c\"\nmax_size = \"1500B\"\n[caches.source]\nkind = \"command\"\n\
                argv = [\"echo\", \"{}\"]\ntimeout = \"1m 30s\"\n";
    for first in [ok(None, &[]), ok(Some(file), &[])] {
        let printed = first.to_redacted_toml();
        let again = ok(Some(&printed), &[]).to_redacted_toml();
        assert_eq!(printed, again);
    }
}

#[test]
fn redacted_toml_has_every_appendix_key() {
    let printed = ok(None, &[]).to_redacted_toml();
    let doc: toml::Table = printed.parse().unwrap();
    let mut keys = BTreeSet::new();
    for (k, v) in &doc {
        match (k.as_str(), v) {
            ("caches", _) => {}
            (section, toml::Value::Table(t)) => {
                keys.extend(t.keys().map(|key| format!("{section}.{key}")));
            }
            (key, _) => {
                keys.insert(key.to_owned());
            }
        }
    }
    let overridable: BTreeSet<String> = overridable_keys().into_iter().map(str::to_owned).collect();
    assert_eq!(keys, overridable);
    let cache = doc["caches"].as_array().unwrap()[0].as_table().unwrap();
    let cache_keys: Vec<&str> = cache.keys().map(String::as_str).collect();
    for key in ["name", "refresh_every", "rich_refresh_every", "max_size", "retention_days", "schema"] {
        assert!(cache_keys.contains(&key), "{key}");
    }
}

#[test]
fn override_names_are_upper_case_with_double_underscores() {
    assert_eq!(override_var("api.max_body"), "TIERCACHE__API__MAX_BODY");
}

#[test]
fn retention_days_is_bounded_as_in_the_database() {
    for bad in ["0", "3651"] {
        let file = format!("[[caches]]\nname = \"a\"\nretention_days = {bad}\n");
        assert_eq!(err_key(&file), "caches[0].retention_days", "{bad}");
    }
    let s = ok(Some("[[caches]]\nname = \"a\"\nretention_days = 3650\n"), &[]);
    assert_eq!(s.caches[0].retention_days, 3650);
}

#[test]
fn webhooks_verify_token_inline_from_env_or_file_and_redacted() {
    assert!(ok(None, &[]).webhooks.strava_verify_token.is_none(), "unset by default");
    let s = ok(Some("[webhooks]\nstrava_verify_token = \"VERIFY-SECRET\"\n"), &[]);
    assert_eq!(
        s.webhooks.strava_verify_token.as_ref().map(|t| t.expose_secret().to_owned()),
        Some("VERIFY-SECRET".into())
    );
    let printed = s.to_redacted_toml();
    assert!(!printed.contains("VERIFY-SECRET") && !format!("{s:?}").contains("VERIFY-SECRET"), "{printed}");
    assert!(printed.contains("strava_verify_token = \"[redacted]\""), "{printed}");

    let s = ok(None, &[("TIERCACHE__WEBHOOKS__STRAVA_VERIFY_TOKEN", "from-env")]);
    assert_eq!(s.webhooks.strava_verify_token.unwrap().expose_secret(), "from-env");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("verify");
    std::fs::write(&file, "from-file\n").unwrap();
    let toml = format!("[webhooks]\nstrava_verify_token_file = {:?}\n", file.display().to_string());
    let s = ok(Some(&toml), &[]);
    assert_eq!(s.webhooks.strava_verify_token.as_ref().unwrap().expose_secret(), "from-file");
    assert!(!s.to_redacted_toml().contains("from-file"));

    let both = format!("{toml}strava_verify_token = \"x\"\n");
    assert_eq!(err_key(&both), "webhooks.strava_verify_token_file");
    assert_eq!(err_key("[webhooks]\nstrava_verify_token = \"has space\"\n"), "webhooks.strava_verify_token");
    assert_eq!(
        err_key("[webhooks]\nstrava_verify_token_file = \"/nonexistent/verify\"\n"),
        "webhooks.strava_verify_token_file"
    );
    assert_eq!(err_key("[webhooks]\nstrava_token = \"x\"\n"), "webhooks.strava_token");
}

#[test]
fn sslmode_takes_the_five_names_and_refuses_allow_with_the_same_message() {
    for mode in TlsMode::ALL {
        let s = ok(Some(&format!("[postgres]\nsslmode = {:?}\n", mode.as_str())), &[]);
        assert_eq!(s.postgres.options.sslmode, Some(mode));
        assert!(s.to_redacted_toml().contains(&format!("sslmode = \"{}\"", mode.as_str())));
    }
    // libpq's `allow` is taken only in a URL's `sslmode=` (as prefer), never here.
    let e = err(Some("[postgres]\nsslmode = \"allow\"\n"), &[]);
    assert_eq!(
        e.to_string(),
        "config error: postgres.sslmode: expected disable, prefer, require, verify-ca or verify-full, got \"allow\""
    );
}

#[test]
fn a_strava_source_learns_its_athlete_when_webhooks_are_on() {
    let cache = "[[caches]]\nname = \"strava\"\n[caches.source]\nkind = \"strava\"\nclient_id = \"1\"\n\
                 client_secret = \"s\"\nrefresh_token = \"t\"\n";
    let learns = |file: &str| match ok(Some(file), &[]).caches[0].source {
        Some(SourceConfig::Strava(ref strava)) => strava.learn_athlete,
        ref other => panic!("{other:?}"),
    };
    assert!(!learns(cache));
    assert!(learns(&format!("[webhooks]\nstrava_verify_token = \"v\"\n{cache}")));
}
