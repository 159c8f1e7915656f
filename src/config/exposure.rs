//! Checks that span sections, run once the typed settings are built: what the
//! configuration promises must be something the daemon can keep.
//!
//! - Protected mode: a TCP listener beyond loopback without `api.tokens_file` would
//!   let anyone who reaches the port PUT and DELETE, so it is refused unless
//!   `api.allow_unauthenticated = true` says that is intended (then it is a warning).
//! - `caches[].max_size` above what Postgres stores (`cache_storage.data_size`, see
//!   `schema.sql`) would have every large save dead-lettered, so it is refused when
//!   Postgres is enabled.

use super::durations::format_size;
use super::{ConfigError, Settings};

/// The bound of `cache_storage.data_size` in `schema.sql` (a unit test keeps the two
/// equal).
pub(crate) const POSTGRES_MAX_DATA_SIZE: u64 = 64 << 20;

/// Runs every cross-section check; adds the warnings `run` logs and `check-config`
/// prints.
///
/// # Errors
/// The first problem, as a [`ConfigError`] naming its key.
pub(crate) fn check(settings: &mut Settings) -> Result<(), ConfigError> {
    protected_mode(settings)?;
    postgres_size_bound(settings)
}

/// Protected mode for a reload: listeners stay bound until a restart, so the new
/// configuration is judged against the addresses actually bound (`bound`), which it
/// keeps; a tokens file removed while a listener beyond loopback is bound is refused.
///
/// # Errors
/// The protected-mode refusal, naming `api.listen` and saying why it is the bound one.
pub(crate) fn check_reload(new: &mut Settings, bound: &[super::ListenAddr]) -> Result<(), ConfigError> {
    if new.api.listen != bound {
        let configured: Vec<String> = new.api.listen.iter().map(ToString::to_string).collect();
        let running: Vec<String> = bound.iter().map(ToString::to_string).collect();
        tracing::warn!(
            configured = ?configured, bound = ?running,
            "api.listen changed, but the listeners stay bound as they are until a restart"
        );
        new.api.listen = bound.to_vec();
    }
    protected_mode(new).map_err(|e| {
        ConfigError::new(
            e.key,
            format!(
                "{} (judged against the listeners bound now: a change of api.listen applies at the next restart)",
                e.problem
            ),
        )
    })
}

fn protected_mode(settings: &mut Settings) -> Result<(), ConfigError> {
    let api = &settings.api;
    if api.tokens_file.is_some() {
        return Ok(());
    }
    let Some(exposed) = api.listen.iter().find(|l| l.is_beyond_loopback()) else { return Ok(()) };
    if !api.allow_unauthenticated {
        return Err(ConfigError::new(
            "api.listen",
            format!(
                "\"{exposed}\" is reachable beyond loopback and no api.tokens_file is set, so anyone who \
                 reaches it could PUT and DELETE; set api.tokens_file (lines \"write:TOKEN\") or, to serve \
                 without tokens on purpose, api.allow_unauthenticated = true"
            ),
        ));
    }
    let warning = format!(
        "api.allow_unauthenticated = true: \"{exposed}\" answers PUT and DELETE from anyone who reaches it, \
         without a token (set api.tokens_file to require one)"
    );
    settings.warnings.push(warning);
    Ok(())
}

fn postgres_size_bound(settings: &Settings) -> Result<(), ConfigError> {
    if !settings.postgres.enabled {
        return Ok(());
    }
    match settings.caches.iter().position(|c| c.max_size > POSTGRES_MAX_DATA_SIZE) {
        Some(i) => Err(ConfigError::new(
            format!("caches[{i}].max_size"),
            format!(
                "{} is above the {} a document may have in Postgres (cache_storage.data_size), so larger \
                 saves would be rejected by Postgres for good; lower it, or set postgres.enabled = false",
                format_size(settings.caches[i].max_size),
                format_size(POSTGRES_MAX_DATA_SIZE)
            ),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::path::PathBuf;

    fn load(file: &str, vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let file = (PathBuf::from("test.toml"), file.to_owned());
        Settings::load_text(Some(&file), &|k| vars.get(k).cloned())
    }

    #[test]
    fn tcp_beyond_loopback_without_tokens_is_refused() {
        for listen in ["0.0.0.0:8077", "[::]:8077", "192.168.1.7:8077", "127.0.0.1:1\", \"10.1.2.3:8077"] {
            let e = load(&format!("[api]\nlisten = [\"{listen}\"]\n"), &[]).unwrap_err();
            assert_eq!(e.key, "api.listen", "{listen}: {e}");
            assert!(e.problem.contains("api.tokens_file"), "{e}");
            assert!(e.problem.contains("api.allow_unauthenticated = true"), "{e}");
        }
        // Through the environment too.
        let e = load("", &[("TIERCACHE__API__LISTEN", "0.0.0.0:8077")]).unwrap_err();
        assert_eq!(e.key, "api.listen");
    }

    #[test]
    fn loopback_unix_tokens_or_opt_in_pass() {
        for listen in ["127.0.0.1:8077", "[::1]:8077", "unix:/run/t.sock"] {
            let s = load(&format!("[api]\nlisten = [\"{listen}\"]\n"), &[]).unwrap();
            assert!(s.warnings.is_empty(), "{listen}: {:?}", s.warnings);
        }
        let s = load("[api]\nlisten = [\"0.0.0.0:8077\"]\ntokens_file = \"/etc/tokens\"\n", &[]).unwrap();
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
        let s = load("[api]\nlisten = [\"0.0.0.0:8077\"]\nallow_unauthenticated = true\n", &[]).unwrap();
        assert!(s.api.allow_unauthenticated);
        assert!(s.warnings.iter().any(|w| w.contains("api.allow_unauthenticated")), "{:?}", s.warnings);
        let s =
            load("[api]\nlisten = [\"0.0.0.0:8077\"]\n", &[("TIERCACHE__API__ALLOW_UNAUTHENTICATED", "true")]).unwrap();
        assert!(s.api.allow_unauthenticated);
    }

    #[test]
    fn max_size_above_the_postgres_bound_needs_postgres_off() {
        let caches =
            "[[caches]]\nname = \"ok\"\nmax_size = \"64MiB\"\n[[caches]]\nname = \"big\"\nmax_size = \"65MiB\"\n";
        let pg = "[postgres]\nenabled = true\nurl = \"postgres://u@db/x\"\n";
        let e = load(&format!("{pg}{caches}"), &[]).unwrap_err();
        assert_eq!(e.key, "caches[1].max_size", "{e}");
        assert!(e.problem.contains("65MiB") && e.problem.contains("64MiB"), "{e}");
        // Postgres turned on by SUPABASE_ENABLED counts too.
        let e = load(caches, &[("SUPABASE_ENABLED", "true"), ("SUPABASE_DB_URL", "postgres://u@db/x")]).unwrap_err();
        assert_eq!(e.key, "caches[1].max_size");
        // Without Postgres the files and memory hold any size.
        assert_eq!(load(caches, &[]).unwrap().caches[1].max_size, 65 << 20);
    }

    #[test]
    fn the_bound_is_the_schema_s() {
        let schema = include_str!("../../schema.sql");
        let check = format!("data_size <= {POSTGRES_MAX_DATA_SIZE}");
        assert!(schema.contains(&check), "schema.sql no longer says {check:?}");
    }
}
