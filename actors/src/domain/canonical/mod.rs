//! The canonical JSON form: what is checksummed, stored and served.
//!
//! Object keys are sorted, there is no insignificant white space, and numbers have one
//! normal form: an integral value that fits 64 bits is written as an integer, anything
//! else as the shortest round-tripping double, and `-0` as `0`. Postgres JSONB turns
//! `1e2` into `100` and keeps `1.50` as written; re-canonicalising what comes back
//! yields the same bytes either way, so a document read back from Postgres has the
//! checksum it was saved with.
//!
//! Three paths produce the same bytes: [`canonicalize`] for a `Value` already in hand;
//! for raw JSON ([`canonicalize_slice`], [`canonicalize_str`]) a byte scanner
//! (`scan.rs`) that copies tokens already in canonical form, and behind it, for input it
//! does not handle or that is not JSON, serde's visitor writing straight into the
//! output (`stream.rs`). No path builds a `Value` tree: for a 1 MB document read from
//! Postgres the tree cost more than the query (docs/performance.md).

mod members;
mod scan;
mod stream;

use serde_json::{Number, Value};
use stream::stream;

/// Parses `input` as JSON and returns its canonical bytes.
///
/// # Errors
/// The `serde_json` error for input that is not JSON (or nests deeper than 128 levels).
pub fn canonicalize_slice(input: &[u8]) -> Result<Vec<u8>, serde_json::Error> {
    match std::str::from_utf8(input) {
        // Validated once here, so the parser does not validate every string again.
        Ok(text) => canonicalize_str(text),
        // serde_json's own error, with its position.
        Err(_) => stream(&mut serde_json::Deserializer::from_slice(input), input.len()),
    }
}

/// [`canonicalize_slice`] for text already known to be UTF-8 (a row's `data::text`).
///
/// # Errors
/// The `serde_json` error for input that is not JSON.
pub fn canonicalize_str(input: &str) -> Result<Vec<u8>, serde_json::Error> {
    match scan::scan(input) {
        Some(canonical) => Ok(canonical),
        None => stream(&mut serde_json::Deserializer::from_str(input), input.len()),
    }
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
        Value::Bool(b) => write_bool(*b, out),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                write_i64(i, out);
            } else if let Some(u) = n.as_u64() {
                write_u64(u, out);
            } else if let Some(f) = n.as_f64() {
                write_f64(f, out);
            }
        }
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

fn write_bool(b: bool, out: &mut Vec<u8>) {
    out.extend_from_slice(if b { b"true" } else { b"false" });
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    // serde_json's string escaping is already minimal and deterministic.
    serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail");
}

fn write_i64(i: i64, out: &mut Vec<u8>) {
    out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
}

fn write_u64(u: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(itoa::Buffer::new().format(u).as_bytes());
}

/// 2^63 as a double: the first integral value that no longer fits an `i64`.
const I64_LIMIT: f64 = 9_223_372_036_854_775_808.0;

fn write_f64(f: f64, out: &mut Vec<u8>) {
    if f == 0.0 {
        out.push(b'0');
    } else if f.fract() == 0.0 && f.abs() < I64_LIMIT {
        #[allow(clippy::cast_possible_truncation)] // integral and below 2^63: exact
        write_i64(f as i64, out);
    } else if let Some(n) = Number::from_f64(f) {
        serde_json::to_writer(&mut *out, &n).expect("writing to a Vec cannot fail");
    }
}

/// Writes a string that the parser borrowed from the input: it had no escapes there,
/// so it holds nothing that needs one (JSON forbids raw quotes, backslashes and control
/// characters in strings), and its canonical form is itself in quotes.
fn write_unescaped(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
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
            canon("[1.0, 1e2, -0.0, 1.50, 0.1, 1e300, 12345678901234567890, -9223372036854775808]"),
            "[1,100,0,1.5,0.1,1e+300,12345678901234567890,-9223372036854775808]"
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

    #[test]
    fn duplicate_keys_keep_the_last_value() {
        assert_eq!(canon(r#"{"a":1,"b":2,"a":3,"\u0061":4}"#), r#"{"a":4,"b":2}"#);
    }

    #[test]
    fn empty_containers_and_scalars() {
        assert_eq!(canon(r#"{"o":{},"a":[],"n":[null,true,false,""]}"#), r#"{"a":[],"n":[null,true,false,""],"o":{}}"#);
        assert_eq!(canon(" 7 "), "7");
    }

    #[test]
    fn strings_with_escapes_and_without() {
        assert_eq!(canon(r#"{"k\u0022":"a\/b","x":"plain é"}"#), r#"{"k\"":"a/b","x":"plain é"}"#);
        assert!(canonicalize_slice(b"\"\xff\"").is_err(), "not UTF-8");
        assert!(canonicalize_slice(b"\"a\x01b\"").is_err(), "raw control character");
    }

    #[test]
    fn refuses_trailing_garbage_and_bad_json() {
        for bad in [
            "{} x",
            "{\"a\":}",
            "",
            "[1,]",
            "{\"a\":1,}",
            "[01]",
            "[-]",
            "[+1]",
            "[1.]",
            "[.5]",
            "[1e]",
            "[--1]",
            "[1 2]",
            "{\"a\" 1}",
            "{a:1}",
            "[tru]",
            "[nul]",
            "[\"\\x\"]",
            "[\"\\ud800\"]",
            "[1e400]",
            "\"a",
            "[",
            "{",
            "]",
            "[1}",
            "{\"a\":1]",
            "[\"a\u{1}\"]",
        ] {
            assert!(canonicalize_slice(bad.as_bytes()).is_err(), "{bad:?} accepted");
            assert!(scan::scan(bad).is_none(), "{bad:?} accepted by the scanner");
        }
    }

    #[test]
    fn scanner_copies_plain_tokens_and_leaves_the_rest_to_serde() {
        let jsonb = r#"{"id": 7, "big": 123456789012345678901, "neg": -12, "z": -0, "f": 1.50, "e": 1E2, "s": "a\"b"}"#;
        let expected = r#"{"big":1.2345678901234568e+20,"e":100,"f":1.5,"id":7,"neg":-12,"s":"a\"b","z":0}"#;
        assert_eq!(scan::scan(jsonb).as_deref(), Some(expected.as_bytes()));
        let mut de = serde_json::Deserializer::from_str(jsonb);
        assert_eq!(stream(&mut de, 0).unwrap(), expected.as_bytes());
        let deep = format!("{}{}", "[".repeat(120), "]".repeat(120));
        assert!(scan::scan(&deep).is_none(), "deep input is left to serde_json");
        assert_eq!(canon(&deep), deep);
    }

    /// The streaming writer and the `Value` writer agree byte for byte, on documents
    /// with every kind of value, escaped keys, nesting and duplicate keys.
    #[test]
    fn streaming_matches_value_writer() {
        let mut next = xorshift(0x2545_f491_4f6c_dd1d);
        for _ in 0..2000 {
            let doc = random_json(&mut next, 0);
            let via_value = canonicalize(&serde_json::from_str::<Value>(&doc).unwrap());
            assert_eq!(canonicalize_slice(doc.as_bytes()).unwrap(), via_value, "{doc}");
            let mut de = serde_json::Deserializer::from_slice(doc.as_bytes());
            assert_eq!(stream(&mut de, 0).unwrap(), via_value, "general parser, from bytes: {doc}");
            let mut de = serde_json::Deserializer::from_str(&doc);
            assert_eq!(stream(&mut de, 0).unwrap(), via_value, "general parser, from text: {doc}");
            assert_eq!(scan::scan(&doc).as_deref(), Some(via_value.as_slice()), "scanner: {doc}");
        }
    }

    /// The scanner's plain-decimal shortcut against serde_json's parse and shortest
    /// form, on many decimals near its limits.
    #[test]
    fn plain_decimals_are_their_own_canonical_form() {
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..200_000 {
            let token = random_decimal(&mut next);
            let via_value = canonicalize(&serde_json::from_str::<Value>(&token).unwrap());
            assert_eq!(scan::scan(&token).as_deref(), Some(via_value.as_slice()), "{token}");
        }
    }

    /// A seeded xorshift64 generator: the same documents on every run.
    fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
        move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        }
    }

    /// A decimal near the scanner's plain-decimal limits: up to 17 integer digits, a
    /// leading `0.`, leading zeros in the fraction, trailing zeros.
    fn random_decimal(next: &mut impl FnMut() -> u64) -> String {
        let sign = if next().is_multiple_of(2) { "-" } else { "" };
        let int = if next().is_multiple_of(3) {
            "0".to_owned()
        } else {
            (next() % 10u64.pow((next() % 17) as u32 + 1)).to_string()
        };
        let frac =
            format!("{:0width$}", next() % 10u64.pow((next() % 12) as u32 + 1), width = (next() % 12) as usize + 1);
        format!("{sign}{int}.{frac}")
    }

    fn random_json(next: &mut impl FnMut() -> u64, depth: usize) -> String {
        let pick = next() % if depth > 4 { 8 } else { 10 };
        match pick {
            0 => "null".into(),
            1 => "true".into(),
            2 => format!("{}", next() as i64),
            3 => format!("{}", next() % 1000),
            4 => format!("{:e}", f64::from_bits(next() & 0x7fef_ffff_ffff_ffff)),
            5 => format!("{}.{}0", next() % 100, next() % 10),
            6 => ["\"a\"", "\"\\u00e9\\n\"", "\"x\\\"y\"", "\"\""][(next() % 4) as usize].into(),
            7 => random_decimal(next),
            8 => {
                let n = next() % 5;
                let items: Vec<String> = (0..n).map(|_| random_json(next, depth + 1)).collect();
                format!("[ {} ]", items.join(" , "))
            }
            _ => {
                let keys = ["\"a\"", "\"b\"", "\"\\u0061\"", "\"aa\"", "\"B\"", "\"é\""];
                let n = next() % 6;
                let items: Vec<String> = (0..n)
                    .map(|_| format!("{}: {}", keys[(next() % 6) as usize], random_json(next, depth + 1)))
                    .collect();
                format!("{{{}}}", items.join(", "))
            }
        }
    }
}
