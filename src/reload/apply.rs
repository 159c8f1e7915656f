//! SIGHUP: read the configuration again, reject it whole if anything is wrong, else
//! hand each part to whoever applies it and log what needs a restart.

use super::{diff, log as log_changes};
use crate::api::{self, AppState};
use crate::config::Settings;
use crate::daemon::ConfigSource;
use crate::telemetry::LogControl;
use crate::wiring;
use std::sync::Arc;
use tiercache_actors::cache_rules::Rules;
use tiercache_actors::runtime::Runtime;

/// The running pieces a reload reaches.
pub(crate) struct Targets<'a> {
    /// The API's shared state.
    pub state: &'a AppState,
    /// The log filter.
    pub log: &'a LogControl,
    /// The actors.
    pub runtime: &'a Runtime,
}

/// Re-reads the configuration; a bad one is rejected and the running one kept.
pub(crate) fn reload(source: &ConfigSource, settings: &mut Settings, to: &Targets<'_>) {
    let env = |k: &str| std::env::var(k).ok();
    let rejected = |e: &dyn std::fmt::Display| {
        tracing::error!(error = %e, alert = true, "reload rejected; keeping the running configuration");
    };
    let mut new = match Settings::load(source.path.as_deref(), &env) {
        Ok(new) => new,
        Err(e) => return rejected(&e),
    };
    let changes = diff(settings, &new);
    // The listeners bound now stay until a restart: the security check is theirs.
    if let Err(e) = crate::config::exposure::check_reload(&mut new, &settings.api.listen) {
        return rejected(&e);
    }
    // Tokens, schemas and the certificate are checked before anything is applied: a
    // bad one rejects the whole reload, and the running ones stay in force.
    let security = api::Security::load(&new, Some(&to.state.security.load()));
    let rules = wiring::cache_rules(&new);
    let certificate = api::security::load_tls_for_reload(&new);
    let (security, rules, certificate) = match (security, rules, certificate) {
        (Ok(security), Ok(rules), Ok(certificate)) => (security, rules, certificate),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return rejected(&e),
    };
    if let Err(e) = to.log.set_level(&new.log.level) {
        tracing::error!(error = %e, "log level not applied");
    }
    let state = to.state;
    state.policy.store(Arc::new(api::policy_from(&new)));
    state
        .read_metrics
        .store(Arc::new(api::state::ReadMetrics::new(&state.metrics, new.caches.iter().map(|c| &c.name))));
    security.log_summary("API security policy reloaded");
    state.security.store(Arc::new(security));
    if let (Some(resolver), Some(certificate)) = (&state.tls, certificate) {
        resolver.replace(certificate);
        tracing::info!("TLS certificate reloaded");
    }
    apply_to_actors(&new, rules, to);
    log_changes(&changes);
    *settings = new;
    tracing::info!(log_level = %settings.log.level, "configuration reloaded");
}

/// The actors' part of the new configuration, applied by the runtime. Credentials are
/// read again (`password_file`, `$CREDENTIALS_DIRECTORY`): a rotated database password
/// reaches new connections without a restart; one that cannot be read keeps the
/// running pool and retry policy.
fn apply_to_actors(new: &Settings, rules: Rules, to: &Targets<'_>) {
    let postgres = wiring::postgres_config(new).ok().flatten();
    let config = wiring::system_config_with(new, postgres, rules);
    to.runtime.reconfigure(&config);
}
