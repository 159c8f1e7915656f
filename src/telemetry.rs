//! Logs: one JSON object per line on stdout or pretty lines for people, with the level
//! reloadable on SIGHUP. `RUST_LOG`, when set, wins over `log.level`. Malformed HTTP
//! requests are counted rather than logged ([`rejected_requests`]); list fields are
//! JSON arrays ([`list_fields`]).

mod list_fields;
mod rejected_requests;

pub(crate) use list_fields::list;
pub(crate) use rejected_requests::RejectedRequests;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tiercache_actors::metrics::ReasonLabel;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, reload, EnvFilter, Registry};

/// Changes the log filter of the running subscriber.
pub(crate) struct LogControl {
    handle: reload::Handle<EnvFilter, Registry>,
    rust_log: Option<String>,
    rejected: RejectedRequests,
}

impl LogControl {
    /// Applies `level` from the configuration, unless `RUST_LOG` was set at start.
    ///
    /// # Errors
    /// A message when `level` is not a valid filter.
    pub(crate) fn set_level(&self, level: &str) -> Result<(), String> {
        if self.rust_log.is_some() {
            return Ok(());
        }
        let filter = level_filter(level).map_err(|e| e.to_string())?;
        self.handle.reload(filter).map_err(|e| e.to_string())
    }

    /// Counts malformed HTTP requests into `family` (the daemon's
    /// `tiercache_http_requests_rejected_total`).
    pub(crate) fn count_rejected_requests(&self, family: Family<ReasonLabel, Counter>) {
        self.rejected.count_into(family);
    }
}

/// Targets whose lines repeat, less clearly, what the daemon logs itself: the pool's
/// "Connection error" WARN duplicates the store's own line about the same failure, and
/// actix-server's start-up INFO lines ("starting 2 workers", "starting service: ...")
/// say less than the daemon's own `listening` and `ready` lines.
const QUIETED: &[&str] = &["deadpool.postgres=error", "actix_server=warn"];

/// `log.level` as a filter, with [`QUIETED`] added unless the level names that target
/// itself (`RUST_LOG` is taken as written).
fn level_filter(level: &str) -> Result<EnvFilter, tracing_subscriber::filter::ParseError> {
    let mut filter = EnvFilter::try_new(level)?;
    for directive in QUIETED {
        let target = directive.split('=').next().unwrap_or_default();
        if !level.contains(target) {
            filter = filter.add_directive(directive.parse()?);
        }
    }
    Ok(filter)
}

/// Installs the global subscriber. `json` picks JSON lines; else pretty.
pub(crate) fn init(json: bool, level: &str, rust_log: Option<String>) -> LogControl {
    let filter = rust_log
        .as_deref()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .or_else(|| level_filter(level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let rejected = RejectedRequests::default();
    let registry = tracing_subscriber::registry().with(filter).with(rejected.clone());
    if json {
        let layer = fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_target(true)
            .map_event_format(list_fields::ListFields)
            .with_writer(std::io::stdout);
        let _ = registry.with(layer).try_init();
    } else {
        let _ = registry.with(fmt::layer().with_writer(std::io::stdout)).try_init();
    }
    // A panic (caught by the supervisor or not) is a log line like any other, not a
    // message on stderr outside the JSON stream.
    std::panic::set_hook(Box::new(|info| {
        let location = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::error!(error = %payload, location = %location, "panic");
    }));
    LogControl { handle, rust_log, rejected }
}
