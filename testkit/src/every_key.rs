//! The "every key set" configuration of the reload tests (tests/fixtures/every-key.toml)
//! and the one way they change a single key in it: both the unit table test and the
//! black-box SIGHUP test start from the same file, so a key added to it is exercised by
//! both.

/// The fixture's text, with the placeholders `DIR` (the test's directory) and `PORT`.
pub const EVERY_KEY: &str = include_str!("../../tests/fixtures/every-key.toml");

/// `text` (TOML) with `path` set to the TOML value `value`, or removed when `value` is
/// `None`. `path` is dotted as the reload logs keys: a `[[caches]]` entry is addressed
/// by its name, as in `caches[strava].source.client_id`.
///
/// # Panics
/// When `text` or `value` is not TOML, or `path` does not lead to a table.
pub fn edited(text: &str, path: &str, value: Option<&str>) -> String {
    let mut doc: toml::Table = text.parse().unwrap_or_else(|e| panic!("not TOML: {e}"));
    let parts: Vec<&str> = path.split('.').collect();
    let (last, parents) = parts.split_last().expect("a non-empty path");
    let mut at = &mut doc;
    for part in parents {
        at = match part.strip_suffix(']').and_then(|p| p.split_once('[')) {
            Some((array, name)) => entry(at, array, name).unwrap_or_else(|| panic!("{path}: no {part}")),
            None => match at.get_mut(*part) {
                Some(toml::Value::Table(t)) => t,
                other => panic!("{path}: {other:?} at {part} is not a table"),
            },
        };
    }
    match value {
        Some(value) => {
            let value = format!("v = {value}").parse::<toml::Table>().unwrap_or_else(|e| panic!("{value}: {e}"));
            at.insert((*last).to_owned(), value["v"].clone());
        }
        None => {
            at.remove(*last).unwrap_or_else(|| panic!("{path} is not set"));
        }
    }
    toml::to_string(&doc).expect("a table serializes")
}

/// The entry of the array of tables `array` whose `name` is `name`.
fn entry<'t>(at: &'t mut toml::Table, array: &str, name: &str) -> Option<&'t mut toml::Table> {
    let items = at.get_mut(array)?.as_array_mut()?;
    items
        .iter_mut()
        .filter_map(toml::Value::as_table_mut)
        .find(|t| t.get("name").and_then(|n| n.as_str()) == Some(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_and_removes_keys_of_tables_and_named_entries() {
        let text = edited(EVERY_KEY, "caches[strava].source.per_page", Some("50"));
        let text = edited(&text, "api.tls_cert", None);
        let doc: toml::Table = text.parse().unwrap();
        let strava = doc["caches"].as_array().unwrap().iter().find(|c| c["name"].as_str() == Some("strava")).unwrap();
        assert_eq!(strava["source"]["per_page"].as_integer(), Some(50));
        assert!(!doc["api"].as_table().unwrap().contains_key("tls_cert"));
        assert_eq!(doc["api"]["max_body"].as_str(), Some("16MiB"), "the rest is kept");
    }
}
