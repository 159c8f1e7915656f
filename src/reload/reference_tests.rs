//! docs/config.md's key reference against the configuration: every key the reload
//! table knows (exhaustive: `flatten` destructures every field, and the reload tests
//! hold the table against a full configuration) has a row, no row names a key the
//! configuration lacks, each row's SIGHUP column agrees with the table, and every key
//! the shipped configuration files under deploy/ set is documented.

use super::table::{table, Reload};
use super::table_key;
use std::collections::BTreeMap;

const CONFIG_MD: &str = include_str!("../../docs/config.md");
/// The shipped configuration files.
const DEPLOYED: &[(&str, &str)] = &[
    ("deploy/tiercache.toml", include_str!("../../deploy/tiercache.toml")),
    ("deploy/docker/tiercache.toml", include_str!("../../deploy/docker/tiercache.toml")),
];

/// The reference's rows: key → the SIGHUP column.
pub(super) fn reference() -> BTreeMap<String, String> {
    let start = CONFIG_MD.find("\n## Key reference\n").expect("docs/config.md has a \"## Key reference\" section");
    let section = &CONFIG_MD[start + 1..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |end| end + 3)];
    section
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let key = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            Some((key.to_owned(), (*cells.get(4)?).to_owned()))
        })
        .collect()
}

fn column(rule: Reload) -> &'static str {
    match rule {
        Reload::Applied(_) => "applied",
        Reload::Restart => "restart",
        Reload::AppliedUnlessToggled(_) => "applied while set",
    }
}

#[test]
fn every_key_has_a_row_in_the_reference_with_its_reload_rule() {
    let rows = reference();
    for (key, rule) in table() {
        let row = rows.get(key).unwrap_or_else(|| panic!("{key} is missing from docs/config.md's key reference"));
        assert_eq!(row, column(rule), "{key}: docs/config.md's SIGHUP column disagrees with the reload table");
    }
}

#[test]
fn the_reference_names_no_key_the_configuration_lacks() {
    for key in reference().keys() {
        assert!(table().any(|(k, _)| k == key), "docs/config.md documents {key}, which is not a key");
    }
}

/// Dotted keys of `table` in the reload table's spelling (`[[caches]]` entries as `caches.KEY`).
fn keys_of(prefix: &str, table: &toml::Table, out: &mut Vec<String>) {
    for (name, value) in table {
        let key = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
        match value {
            toml::Value::Table(inner) if key != "caches.source.headers" => keys_of(&key, inner, out),
            toml::Value::Array(items) if items.iter().all(toml::Value::is_table) && !items.is_empty() => {
                for item in items.iter().filter_map(toml::Value::as_table) {
                    keys_of(&key, item, out);
                }
            }
            _ => out.push(table_key(&key)),
        }
    }
}

#[test]
fn every_key_of_the_shipped_configurations_is_documented() {
    let rows = reference();
    for (file, text) in DEPLOYED {
        let deploy: toml::Table = text.parse().unwrap_or_else(|e| panic!("{file}: {e}"));
        let mut keys = Vec::new();
        keys_of("", &deploy, &mut keys);
        assert!(keys.len() >= 15, "walked the whole of {file}: {keys:?}");
        for key in keys {
            assert!(rows.contains_key(&key), "{file} sets {key}, which docs/config.md does not document");
        }
    }
}
