//! The configuration file a [`Daemon`](crate::Daemon) writes: the test's text, with
//! `data_dir` and `api.listen` added when it leaves them out.
//!
//! The test's own lines are kept as written (what it checks in error messages, line
//! numbers included, stays true): `data_dir` goes on a first line of its own and
//! `listen` on the line after `[api]` (or in a new `[api]` table at the end). Only when
//! that does not give valid TOML is the file written from the parsed table.

/// The text to write and what it says about the daemon's directory and port.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Completed {
    /// The configuration file's text.
    pub text: String,
    /// `data_dir` as configured (relative to the working directory).
    pub data_dir: String,
    /// Whether the harness chose the port (the text did not set `api.listen`).
    pub own_port: bool,
    /// The first TCP port of `api.listen` when the text set it.
    pub given_port: Option<u16>,
}

/// The data directory used when the text does not set one.
const DEFAULT_DATA_DIR: &str = "./data";

/// Completes `text`: `data_dir` when absent, and `api.listen = ["127.0.0.1:PORT", extra...]`
/// when absent. Text that is not TOML is kept as is (a test of a bad configuration).
pub(crate) fn complete(text: &str, port: u16, extra: &[String]) -> Completed {
    let Ok(table) = text.parse::<toml::Table>() else {
        return Completed {
            text: text.to_owned(),
            data_dir: DEFAULT_DATA_DIR.into(),
            own_port: true,
            given_port: None,
        };
    };
    let data_dir = table.get("data_dir").and_then(toml::Value::as_str).unwrap_or(DEFAULT_DATA_DIR).to_owned();
    let given = table.get("api").and_then(|api| api.get("listen"));
    let mut out = Completed { text: text.to_owned(), data_dir, own_port: given.is_none(), given_port: None };
    if let Some(listen) = given {
        out.given_port = first_tcp_port(listen);
    }
    let add_data_dir = !table.contains_key("data_dir");
    if !add_data_dir && !out.own_port {
        return out;
    }
    let listen_line = format!("listen = {}", listen_value(port, extra));
    let edited = edit_text(text, add_data_dir, out.own_port.then_some(listen_line.as_str()));
    out.text = if is_complete(&edited) { edited } else { rewrite(table, add_data_dir, port, extra) };
    out
}

/// `["127.0.0.1:PORT", extra...]` as TOML.
fn listen_value(port: u16, extra: &[String]) -> String {
    let own = std::iter::once(format!("127.0.0.1:{port}"));
    let all: Vec<String> = own.chain(extra.iter().cloned()).map(|a| toml::Value::String(a).to_string()).collect();
    format!("[{}]", all.join(", "))
}

/// The first TCP address's port in an `api.listen` value.
fn first_tcp_port(listen: &toml::Value) -> Option<u16> {
    listen
        .as_array()?
        .iter()
        .filter_map(toml::Value::as_str)
        .filter(|l| !l.starts_with("unix:"))
        .find_map(|l| l.rsplit_once(':').and_then(|(_, p)| p.parse().ok()))
}

/// `text` with a `data_dir` line first and the `listen` line after `[api]`.
fn edit_text(text: &str, add_data_dir: bool, listen_line: Option<&str>) -> String {
    let mut out = String::new();
    if add_data_dir {
        out.push_str(&format!("data_dir = \"{DEFAULT_DATA_DIR}\"\n"));
    }
    let mut listen_line = listen_line;
    for line in text.split_inclusive('\n') {
        out.push_str(line);
        if is_api_header(line) {
            if let Some(listen) = listen_line.take() {
                if !line.ends_with('\n') {
                    out.push('\n');
                }
                out.push_str(listen);
                out.push('\n');
            }
        }
    }
    if let Some(listen) = listen_line {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&format!("[api]\n{listen}\n"));
    }
    out
}

/// Whether a line opens the `[api]` table (`[api]`, maybe followed by a comment).
fn is_api_header(line: &str) -> bool {
    line.trim().strip_prefix("[api]").is_some_and(|rest| rest.trim().is_empty() || rest.trim().starts_with('#'))
}

/// Whether `text` is TOML with `data_dir` and `api.listen`.
fn is_complete(text: &str) -> bool {
    text.parse::<toml::Table>()
        .is_ok_and(|t| t.contains_key("data_dir") && t.get("api").and_then(|a| a.get("listen")).is_some())
}

/// The fallback: the parsed table with the missing keys, written anew.
fn rewrite(mut table: toml::Table, add_data_dir: bool, port: u16, extra: &[String]) -> String {
    if add_data_dir {
        table.insert("data_dir".into(), DEFAULT_DATA_DIR.into());
    }
    let api = table.entry("api").or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let Some(api) = api.as_table_mut() {
        let listen = std::iter::once(format!("127.0.0.1:{port}")).chain(extra.iter().cloned());
        api.entry("listen").or_insert_with(|| toml::Value::Array(listen.map(toml::Value::String).collect()));
    }
    toml::to_string(&table).expect("serialize the configuration")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_lines_and_keeps_the_rest_in_place() {
        let c = complete("top = 1\n[api]\nmax_body = \"1MiB\"\n[[caches]]\nname = \"a\"\n", 4000, &[]);
        let want = "data_dir = \"./data\"\ntop = 1\n[api]\nlisten = [\"127.0.0.1:4000\"]\nmax_body = \"1MiB\"\n[[caches]]\nname = \"a\"\n";
        assert_eq!(c.text, want);
        assert!(c.own_port);
        assert_eq!(c.data_dir, "./data");
    }

    #[test]
    fn a_new_api_table_at_the_end_with_extra_listeners() {
        let c = complete("data_dir = \"d\"\n[[caches]]\nname = \"a\"", 4000, &["unix:api.sock".into()]);
        assert_eq!(
            c.text,
            "data_dir = \"d\"\n[[caches]]\nname = \"a\"\n[api]\nlisten = [\"127.0.0.1:4000\", \"unix:api.sock\"]\n"
        );
        assert_eq!(c.data_dir, "d");
    }

    #[test]
    fn given_listen_and_bad_toml_are_kept() {
        let text = "data_dir = \"x\"\n[api]\nlisten = [\"unix:s\", \"127.0.0.1:1234\"]\n";
        let c = complete(text, 4000, &[]);
        assert_eq!((c.text.as_str(), c.own_port, c.given_port), (text, false, Some(1234)));
        let c = complete("[api\n", 4000, &[]);
        assert_eq!(c.text, "[api\n");
    }

    #[test]
    fn dotted_api_keys_fall_back_to_a_rewrite() {
        let c = complete("api.max_body = \"1MiB\"\n", 4000, &[]);
        let t: toml::Table = c.text.parse().unwrap();
        assert_eq!(t["api"]["listen"][0].as_str(), Some("127.0.0.1:4000"));
        assert_eq!(t["api"]["max_body"].as_str(), Some("1MiB"));
    }
}
