//! From validated settings to the actors' own configuration types (the actors crate
//! never sees the `config` crate). Sources and the TLS mode are the actors' types
//! already (validation builds them); what is left here is grouping and defaults.

use crate::config::CacheName;
use crate::config::{ConfigError, Settings};
use crate::exit::{Fatal, CONFIG};
use secrecy::ExposeSecret;
use std::collections::HashMap;
use std::sync::Arc;
use tiercache_actors::cache_rules::{CacheRules, Rules};
use tiercache_actors::domain::DocumentSchema;
use tiercache_actors::refresher::{RefreshPolicy, FAILED_FETCH_BACKOFF};
use tiercache_actors::store::ConnectConfig;
use tiercache_actors::system::{PostgresConfig, RefreshConfig, SourcedCache, SystemConfig};

/// The refresher's part: caches with a source, `[refresh]`.
pub(crate) fn refresh_config(settings: &Settings) -> RefreshConfig {
    RefreshConfig {
        caches: settings
            .caches
            .iter()
            .filter_map(|c| {
                Some(SourcedCache {
                    name: c.name.clone(),
                    every: c.refresh_every,
                    rich_every: c.rich_refresh_every,
                    source: c.source.clone()?,
                })
            })
            .collect(),
        policy: RefreshPolicy {
            fetch_timeout: settings.refresh.fetch_timeout,
            jitter: settings.refresh.jitter,
            backoff: FAILED_FETCH_BACKOFF,
        },
        emergency: settings.refresh.emergency,
    }
}

/// The Postgres part, read fresh (the password file too) each time it is called.
///
/// # Errors
/// Exit 78 naming `postgres.password_file` when it cannot be read.
pub(crate) fn postgres_config(settings: &Settings) -> Result<Option<PostgresConfig>, Fatal> {
    let pg = &settings.postgres;
    if !pg.enabled {
        return Ok(None);
    }
    let url = pg.url.as_ref().map(|u| u.expose_secret().to_owned()).unwrap_or_default();
    let password = match &pg.password_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map(|s| s.trim_end_matches(['\r', '\n']).to_owned())
                .map_err(|e| Fatal::new(CONFIG, format!("config error: postgres.password_file: cannot read: {e}")))?,
        ),
        None => None,
    };
    Ok(Some(PostgresConfig {
        connect: ConnectConfig { url, password, options: pg.options.clone() },
        retry: settings.retry,
        heads_poll_interval: pg.heads_poll_interval,
        single_instance: pg.single_instance,
    }))
}

/// `retention_days` per configured cache.
pub(crate) fn retention_days(settings: &Settings) -> HashMap<CacheName, u32> {
    settings.caches.iter().map(|c| (c.name.clone(), c.retention_days)).collect()
}

/// Everything the actors need.
///
/// # Errors
/// See [`postgres_config`].
pub(crate) fn system_config(settings: &Settings) -> Result<SystemConfig, Fatal> {
    Ok(system_config_with(settings, postgres_config(settings)?, cache_rules(settings)?))
}

/// [`system_config`] with the Postgres part and the rules already built.
pub(crate) fn system_config_with(settings: &Settings, postgres: Option<PostgresConfig>, rules: Rules) -> SystemConfig {
    SystemConfig {
        data_dir: settings.data_dir.clone(),
        project: settings.project.clone(),
        memory_ttl: settings.memory.ttl,
        restart_policy: settings.supervisor,
        // Only builds with failpoints, and only when `memory::get` is armed, pay for a
        // message per memory hit.
        hits_by_message: cfg!(feature = "failpoints")
            && std::env::var("FAILPOINTS").is_ok_and(|f| f.contains("memory::get")),
        retention_days: retention_days(settings),
        postgres,
        refresh: refresh_config(settings),
        rules,
    }
}

/// Each cache's admission rules: `max_size` and the compiled `schema`.
///
/// # Errors
/// A [`ConfigError`] naming `caches[i].schema` when a schema cannot be loaded.
pub(crate) fn cache_rules(settings: &Settings) -> Result<Rules, ConfigError> {
    let mut rules = HashMap::new();
    for (i, cache) in settings.caches.iter().enumerate() {
        let schema = match &cache.schema {
            Some(path) => Some(Arc::new(
                DocumentSchema::load(path)
                    .map_err(|e| ConfigError { key: format!("caches[{i}].schema"), problem: e.to_string() })?,
            )),
            None => None,
        };
        rules.insert(cache.name.clone(), CacheRules { max_size: cache.max_size, schema });
    }
    Ok(Rules::new(rules))
}
