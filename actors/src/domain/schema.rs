//! Per-cache JSON Schema (`caches[].schema`): compiled once, checked on every save
//! and available to every tier that loads a document.
//!
//! Built on the `jsonschema` crate without its default features: no `$ref` is ever
//! fetched over the network or from another file, so a schema is exactly the one
//! file the operator configured. Patterns use the `regex` engine (linear time), so a
//! `pattern` in a schema cannot be turned into a denial of service by a hostile
//! document.

use serde_json::Value;
use std::fmt;
use std::path::{Path, PathBuf};

/// How many validation errors are reported for one document.
pub const MAX_REPORTED_ERRORS: usize = 5;

/// Longest reported error message, in characters (messages quote the offending
/// value, which may be large).
const MAX_MESSAGE_CHARS: usize = 200;

/// A compiled JSON Schema.
pub struct DocumentSchema {
    validator: jsonschema::Validator,
    source: Option<PathBuf>,
}

/// Why a schema could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// The file could not be read.
    #[error("cannot read {path}: {error}")]
    Unreadable {
        /// The configured path.
        path: String,
        /// The I/O error.
        error: String,
    },
    /// The file is not JSON.
    #[error("{path} is not JSON: {error}")]
    NotJson {
        /// The configured path.
        path: String,
        /// The parse error.
        error: String,
    },
    /// The JSON is not a valid schema (or refers to another document).
    #[error("{path} is not a valid JSON Schema: {error}")]
    Invalid {
        /// The configured path (or `<inline>`).
        path: String,
        /// What the compiler said.
        error: String,
    },
}

impl DocumentSchema {
    /// Reads and compiles the schema at `path`.
    ///
    /// # Errors
    /// [`SchemaError`] when the file cannot be read, is not JSON or is not a schema.
    pub fn load(path: &Path) -> Result<Self, SchemaError> {
        let shown = path.display().to_string();
        let text =
            std::fs::read(path).map_err(|e| SchemaError::Unreadable { path: shown.clone(), error: e.to_string() })?;
        let value: Value = serde_json::from_slice(&text)
            .map_err(|e| SchemaError::NotJson { path: shown.clone(), error: e.to_string() })?;
        let mut schema = Self::compile(&value, &shown)?;
        schema.source = Some(path.to_owned());
        Ok(schema)
    }

    /// Compiles a schema given as a JSON value.
    ///
    /// # Errors
    /// [`SchemaError::Invalid`] when `schema` is not a valid schema.
    pub fn from_value(schema: &Value) -> Result<Self, SchemaError> {
        Self::compile(schema, "<inline>")
    }

    fn compile(schema: &Value, shown: &str) -> Result<Self, SchemaError> {
        let validator =
            jsonschema::options()
                .with_pattern_options(jsonschema::PatternOptions::regex())
                .build(schema)
                .map_err(|e| SchemaError::Invalid { path: shown.to_owned(), error: truncate(&e.to_string()) })?;
        Ok(Self { validator, source: None })
    }

    /// The file this schema came from, if any.
    pub fn source(&self) -> Option<&Path> {
        self.source.as_deref()
    }

    /// Checks `value` against the schema.
    ///
    /// # Errors
    /// The first [`MAX_REPORTED_ERRORS`] problems, each as `"PATH: MESSAGE"` where PATH
    /// is a JSON Pointer into the document (empty for the root).
    pub fn validate(&self, value: &Value) -> Result<(), Vec<String>> {
        let errors: Vec<String> = self
            .validator
            .iter_errors(value)
            .take(MAX_REPORTED_ERRORS)
            .map(|e| {
                let at = e.instance_path().as_str();
                let at = if at.is_empty() { "/" } else { at };
                truncate(&format!("{at}: {e}"))
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Whether `value` passes (no error messages built).
    pub fn is_valid(&self, value: &Value) -> bool {
        self.validator.is_valid(value)
    }
}

impl fmt::Debug for DocumentSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DocumentSchema").field("source", &self.source).finish_non_exhaustive()
    }
}

fn truncate(s: &str) -> String {
    if s.chars().count() <= MAX_MESSAGE_CHARS {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(MAX_MESSAGE_CHARS).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn activities() -> DocumentSchema {
        DocumentSchema::from_value(&json!({
            "type": "object",
            "required": ["timestamp", "activities"],
            "properties": {
                "timestamp": {"type": "string"},
                "activities": {"type": "array", "items": {"type": "object", "required": ["id"],
                    "properties": {"id": {"type": "integer"}, "name": {"type": "string", "pattern": "^[A-Za-z ]*$"}}}}
            }
        }))
        .unwrap()
    }

    #[test]
    fn valid_documents_pass() {
        let schema = activities();
        let doc = json!({"timestamp": "2024-01-01T00:00:00Z", "activities": [{"id": 1, "name": "Morning Run"}]});
        assert_eq!(schema.validate(&doc), Ok(()));
        assert!(schema.is_valid(&doc));
    }

    #[test]
    fn invalid_documents_report_paths() {
        let schema = activities();
        let errors = schema.validate(&json!({"timestamp": 5, "activities": [{"id": "x"}, {}]})).unwrap_err();
        assert!(errors.len() >= 3, "{errors:?}");
        assert!(errors.iter().any(|e| e.starts_with("/timestamp: ")), "{errors:?}");
        assert!(errors.iter().any(|e| e.starts_with("/activities/0/id: ")), "{errors:?}");
        let root = schema.validate(&json!([])).unwrap_err();
        assert!(root[0].starts_with("/: "), "{root:?}");
    }

    #[test]
    fn reports_at_most_a_few_errors_and_short_ones() {
        let schema = DocumentSchema::from_value(&json!({"type": "array", "items": {"type": "string"}})).unwrap();
        let doc = Value::Array((0..100).map(|i| json!(i)).collect());
        assert_eq!(schema.validate(&doc).unwrap_err().len(), MAX_REPORTED_ERRORS);
        let schema = DocumentSchema::from_value(&json!({"type": "string"})).unwrap();
        let big = json!({"x": "y".repeat(10_000)});
        let errors = schema.validate(&big).unwrap_err();
        assert!(errors[0].chars().count() <= MAX_MESSAGE_CHARS + 1, "{}", errors[0].len());
    }

    #[test]
    fn invalid_schemas_and_remote_refs_are_refused() {
        assert!(DocumentSchema::from_value(&json!({"type": "no-such-type"})).is_err());
        assert!(DocumentSchema::from_value(&json!({"minimum": "ten"})).is_err());
        // No fetching: a remote or file reference cannot be resolved.
        assert!(DocumentSchema::from_value(&json!({"$ref": "https://example.com/s.json"})).is_err());
        assert!(DocumentSchema::from_value(&json!({"$ref": "file:///etc/passwd"})).is_err());
    }

    #[test]
    fn load_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.json");
        assert!(matches!(DocumentSchema::load(&missing), Err(SchemaError::Unreadable { .. })));
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, "{not json").unwrap();
        let err = DocumentSchema::load(&bad).unwrap_err();
        assert!(matches!(err, SchemaError::NotJson { .. }));
        assert!(err.to_string().contains("bad.json"), "{err}");
        let good = dir.path().join("good.json");
        std::fs::write(&good, r#"{"type":"object"}"#).unwrap();
        let schema = DocumentSchema::load(&good).unwrap();
        assert_eq!(schema.source(), Some(good.as_path()));
        assert!(schema.validate(&json!({})).is_ok());
        assert!(schema.validate(&json!(1)).is_err());
    }
}
