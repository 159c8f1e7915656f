//! A relative path in a configuration file is taken from that file's directory, so the
//! daemon's own tokens file is found by `tiercache status` run from anywhere; when a
//! file is not there, the error says which file was read and where it was looked for.
//! (`data_dir` and `unix:PATH` stay relative to the working directory.)

use crate::helpers::{new_app, run_cmd, Options};
use std::fs;

const TOKEN: &str = "read-token-relative-paths";

#[test]
fn status_run_from_another_directory_finds_the_tokens_file_next_to_the_configuration() {
    let mut app = new_app(Options::new().api("tokens_file = \"tokens\""));
    fs::write(app.dir().join("tokens"), format!("write:{TOKEN}\n")).unwrap();
    app.start_again();
    let config = app.config_path();
    let elsewhere = tempfile::tempdir().unwrap();

    let out = run_cmd(elsewhere.path(), &["status", "--config", config.to_str().unwrap()], &[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains(": ready"), "{}", out.stdout);
    let bearer = format!("Bearer {TOKEN}");
    let headers = [("Content-Type", "application/json"), ("Authorization", bearer.as_str())];
    assert_eq!(app.put("/v1/caches/strava", br#"{"n": 1}"#, &headers).status, 200);
    let out = run_cmd(elsewhere.path(), &["get", "strava", "--config", config.to_str().unwrap()], &[]);
    assert_eq!((out.code, out.stdout.trim()), (0, r#"{"n":1}"#), "{out:?}");
}

#[test]
fn a_tokens_file_that_is_not_there_is_named_with_where_it_was_looked_for() {
    // The daemon runs with its own tokens file; a second configuration next to it names
    // one that does not exist.
    let mut app = new_app(Options::new().api("tokens_file = \"tokens\""));
    fs::write(app.dir().join("tokens"), format!("read:{TOKEN}\n")).unwrap();
    app.start_again();
    let conf_dir = tempfile::tempdir().unwrap();
    let other = conf_dir.path().join("client.toml");
    let text =
        fs::read_to_string(app.config_path()).unwrap().replace("tokens_file = \"tokens\"", "tokens_file = \"missing\"");
    fs::write(&other, text).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();

    // `status` sends no token and, on the 401, says which file it could not read.
    let out = run_cmd(elsewhere.path(), &["status", "--config", other.to_str().unwrap()], &[]);
    assert_eq!(out.code, 77, "{out:?}");
    let expected = conf_dir.path().join("missing");
    let line = out.stderr.trim();
    assert!(line.contains("answered 401"), "{line}");
    assert!(line.contains(&format!("api.tokens_file {}", expected.display())), "the file looked for: {line}");
    assert!(line.contains(&format!("relative to the directory of {}", other.display())), "why there: {line}");
    assert!(line.contains("cannot be read") && line.contains("TIERCACHE_TOKEN"), "{line}");

    // The daemon's own check refuses it, naming the same.
    let out = run_cmd(elsewhere.path(), &["check-config", "--config", other.to_str().unwrap()], &[]);
    assert_eq!(out.code, 78, "{out:?}");
    let line = out.stderr_lines().last().copied().unwrap_or_default().to_owned();
    assert!(line.starts_with("config error: api.tokens_file: cannot read "), "{line}");
    assert!(line.contains(&expected.display().to_string()) && line.contains("relative to the directory of"), "{line}");
}

#[test]
fn every_file_the_configuration_names_is_found_next_to_it() {
    let conf_dir = tempfile::tempdir().unwrap();
    let dir = conf_dir.path();
    fs::create_dir(dir.join("schemas")).unwrap();
    fs::write(dir.join("schemas/notes.json"), r#"{"type": "object"}"#).unwrap();
    fs::write(dir.join("tokens"), format!("write:{TOKEN}\n")).unwrap();
    fs::write(dir.join("bearer"), "upstream-secret\n").unwrap();
    let data = tempfile::tempdir().unwrap();
    let config = dir.join("tiercache.toml");
    fs::write(
        &config,
        format!(
            "data_dir = {data:?}\n[api]\ntokens_file = \"tokens\"\n\
             [[caches]]\nname = \"notes\"\nschema = \"schemas/notes.json\"\n\
             [[caches]]\nname = \"feed\"\n[caches.source]\nkind = \"http\"\nurl = \"http://127.0.0.1:9/feed\"\n\
             bearer_token_file = \"bearer\"\n\
             [[caches]]\nname = \"cmd\"\n[caches.source]\nkind = \"command\"\nargv = [\"./fetch.sh\", \"arg\"]\n",
            data = data.path().display().to_string()
        ),
    )
    .unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let out = run_cmd(elsewhere.path(), &["check-config", "--config", config.to_str().unwrap()], &[]);
    assert_eq!(out.code, 0, "{out:?}");
    let printed: toml::Table = toml::from_str(&out.stdout).expect("check-config prints TOML");
    assert_eq!(printed["api"]["tokens_file"].as_str(), Some(dir.join("tokens").to_str().unwrap()), "{}", out.stdout);
    let caches = printed["caches"].as_array().expect("caches");
    assert_eq!(caches[0]["schema"].as_str(), Some(dir.join("schemas/notes.json").to_str().unwrap()));
    // The program is found next to the configuration; its arguments are as written.
    let argv = caches[2]["source"]["argv"].as_array().expect("argv");
    assert_eq!(argv[0].as_str(), Some(dir.join("./fetch.sh").to_str().unwrap()), "{argv:?}");
    assert_eq!(argv[1].as_str(), Some("arg"));
    // A secret's `_file` key is printed as written.
    assert_eq!(caches[1]["source"]["bearer_token_file"].as_str(), Some("bearer"));

    // data_dir stays relative to the working directory, as docs/config.md says.
    let relative = dir.join("relative.toml");
    fs::write(&relative, "data_dir = \"state\"\n").unwrap();
    let out = run_cmd(elsewhere.path(), &["check-config", "--config", relative.to_str().unwrap()], &[]);
    assert_eq!(out.code, 0, "{out:?}");
    let printed: toml::Table = toml::from_str(&out.stdout).unwrap();
    assert_eq!(printed["data_dir"].as_str(), Some("state"), "{}", out.stdout);
}
