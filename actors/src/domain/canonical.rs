//! The canonical JSON form: what is checksummed, stored and served.
//!
//! Object keys are sorted, there is no insignificant white space, and numbers have one
//! normal form: an integral value that fits 64 bits is written as an integer, anything
//! else as the shortest round-tripping double, and `-0` as `0`. Postgres JSONB turns
//! `1e2` into `100` and keeps `1.50` as written; re-canonicalising what comes back
//! yields the same bytes either way, so a document read back from Postgres has the
//! checksum it was saved with.

use serde_json::{Number, Value};

/// Parses `input` as JSON and returns its canonical bytes.
///
/// # Errors
/// The `serde_json` error for input that is not JSON (or nests deeper than 128 levels).
pub fn canonicalize_slice(input: &[u8]) -> Result<Vec<u8>, serde_json::Error> {
    let value: Value = serde_json::from_slice(input)?;
    Ok(canonicalize(&value))
}

/// Writes `value` in canonical form.
pub fn canonicalize(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write_value(value, &mut out);
    out
}

fn write_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_number(n, out),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            // Sorted here rather than trusting the map type: a dependency turning on
            // serde_json's `preserve_order` must not change checksums.
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(key, out);
                out.push(b':');
                write_value(item, out);
            }
            out.push(b'}');
        }
    }
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    // serde_json's string escaping is already minimal and deterministic.
    serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail");
}

/// 2^63 as a double: the first integral value that no longer fits an `i64`.
const I64_LIMIT: f64 = 9_223_372_036_854_775_808.0;

fn write_number(n: &Number, out: &mut Vec<u8>) {
    if let Some(i) = n.as_i64() {
        out.extend_from_slice(i.to_string().as_bytes());
    } else if let Some(u) = n.as_u64() {
        out.extend_from_slice(u.to_string().as_bytes());
    } else if let Some(f) = n.as_f64() {
        if f == 0.0 {
            out.push(b'0');
        } else if f.fract() == 0.0 && f.abs() < I64_LIMIT {
            out.extend_from_slice((f as i64).to_string().as_bytes());
        } else {
            let n = Number::from_f64(f).expect("parsed JSON numbers are finite");
            out.extend_from_slice(n.to_string().as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> String {
        String::from_utf8(canonicalize_slice(s.as_bytes()).unwrap()).unwrap()
    }

    #[test]
    fn sorts_keys_and_strips_space() {
        assert_eq!(canon(r#" { "b": 1, "a": [ 1, {"z":0,"y":null} ] } "#), r#"{"a":[1,{"y":null,"z":0}],"b":1}"#);
    }

    #[test]
    fn numbers_have_one_form() {
        assert_eq!(
            canon("[1.0, 1e2, -0.0, 1.50, 0.1, 1e300, 12345678901234567890]"),
            "[1,100,0,1.5,0.1,1e+300,12345678901234567890]"
        );
    }

    #[test]
    fn is_idempotent_through_jsonb_style_rewrites() {
        // JSONB prints 1e300 with all its digits and keeps trailing zeros.
        let jsonb = format!("[1{}, 1.50, 100]", "0".repeat(300));
        assert_eq!(canon(&jsonb), canon("[1e300, 1.5, 1e2]"));
    }

    #[test]
    fn escapes_strings_minimally() {
        assert_eq!(canon(r#""\u00e9\n\"""#), "\"é\\n\\\"\"");
    }
}
