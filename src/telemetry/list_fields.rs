//! List fields as JSON arrays in the JSON log lines.
//!
//! tracing records a field as a number, a bool or text, so a list (the keys a reload
//! changed) would reach the JSON line as its `Debug` text inside a string. A field named
//! in [`LIST_FIELDS`] is logged as the JSON text of its list ([`list`]) and this
//! formatter, wrapped around tracing-subscriber's JSON one, writes it back as an array,
//! so `jq '.keys[]'` works. Only lines that have such a field are parsed again.

use serde_json::Value;
use std::fmt;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Fields whose value is the JSON text of a list.
pub(super) const LIST_FIELDS: &[&str] = &["keys"];

/// The value to log for a list field: `keys = %telemetry::list(&keys)`.
pub(crate) fn list<T: serde::Serialize>(items: &[T]) -> String {
    serde_json::to_string(items).unwrap_or_default()
}

/// Wraps an event formatter that writes one JSON object per line.
pub(super) struct ListFields<F>(pub F);

impl<S, N, F> FormatEvent<S, N> for ListFields<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        if !event.metadata().fields().iter().any(|f| LIST_FIELDS.contains(&f.name())) {
            return self.0.format_event(ctx, writer, event);
        }
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        writer.write_str(&with_arrays(&line))
    }
}

/// `line` with each list field's text turned into the array it holds.
fn with_arrays(line: &str) -> String {
    let Ok(Value::Object(mut object)) = serde_json::from_str::<Value>(line.trim_end()) else {
        return line.to_owned();
    };
    for name in LIST_FIELDS {
        let array = match object.get(*name) {
            Some(Value::String(text)) => serde_json::from_str::<Value>(text).ok().filter(Value::is_array),
            _ => None,
        };
        if let Some(array) = array {
            object.insert((*name).to_owned(), array);
        }
    }
    format!("{}\n", Value::Object(object))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_field_becomes_an_array_and_the_rest_stays() {
        let keys = list(&["api.max_body", "caches[a].refresh_every"]);
        let line = serde_json::json!({"level": "INFO", "keys": keys, "message": "m"}).to_string();
        let out: Value = serde_json::from_str(&with_arrays(&line)).unwrap();
        assert_eq!(out["keys"], serde_json::json!(["api.max_body", "caches[a].refresh_every"]));
        assert_eq!((out["level"].as_str(), out["message"].as_str()), (Some("INFO"), Some("m")));
        // Text that is not a list, and lines that are not JSON, are left alone.
        let plain = serde_json::json!({"keys": "not [a list"}).to_string();
        assert_eq!(serde_json::from_str::<Value>(&with_arrays(&plain)).unwrap()["keys"], "not [a list");
        assert_eq!(with_arrays("keys=[\"a\"]\n"), "keys=[\"a\"]\n");
    }
}
