//! The canonical JSON form: what is checksummed, stored and served.
//!
//! Object keys are sorted, there is no insignificant white space, and numbers have one
//! normal form: an integral value that fits 64 bits is written as an integer, anything
//! else as the shortest round-tripping double, and `-0` as `0`. Postgres JSONB turns
//! `1e2` into `100` and keeps `1.50` as written; re-canonicalising what comes back
//! yields the same bytes either way, so a document read back from Postgres has the
//! checksum it was saved with.
//!
//! Two writers produce the same bytes: [`canonicalize`] for a `Value` already in hand,
//! and [`canonicalize_slice`], which streams raw JSON through serde's visitor straight
//! into the output without building a `Value` tree. Reads from Postgres and PUTs go
//! through the streaming one: for a 1 MB document the tree's allocations were most of
//! the cost (docs/performance.md).

use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};
use std::fmt;

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
    stream(&mut serde_json::Deserializer::from_str(input), input.len())
}

fn stream<'de, R: serde_json::de::Read<'de>>(
    de: &mut serde_json::Deserializer<R>,
    len: usize,
) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::with_capacity(len);
    let mut work = Work { entries: Vec::new(), scratch: Vec::new() };
    Canon { out: &mut out, work: &mut work }.deserialize(&mut *de)?;
    de.end()?;
    Ok(out)
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

/// Buffers shared by every level of one streaming run, so that objects do not allocate.
struct Work<'de> {
    /// The members of the objects being written, innermost last.
    entries: Vec<Entry<'de>>,
    /// Where an object's members are moved while they are put in key order.
    scratch: Vec<u8>,
}

/// One object member already written to the output: `"key":value` at `from..to`.
struct Entry<'de> {
    key: Key<'de>,
    from: usize,
    to: usize,
}

/// Streams one JSON value into `out` in canonical form.
struct Canon<'a, 'de> {
    out: &'a mut Vec<u8>,
    work: &'a mut Work<'de>,
}

impl<'de> DeserializeSeed<'de> for Canon<'_, 'de> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Canon<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }

    fn visit_bool<E>(self, b: bool) -> Result<(), E> {
        write_bool(b, self.out);
        Ok(())
    }

    fn visit_i64<E>(self, i: i64) -> Result<(), E> {
        write_i64(i, self.out);
        Ok(())
    }

    fn visit_u64<E>(self, u: u64) -> Result<(), E> {
        write_u64(u, self.out);
        Ok(())
    }

    fn visit_f64<E>(self, f: f64) -> Result<(), E> {
        write_f64(f, self.out);
        Ok(())
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<(), E> {
        write_unescaped(s, self.out);
        Ok(())
    }

    fn visit_str<E>(self, s: &str) -> Result<(), E> {
        write_string(s, self.out);
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.out.push(b'[');
        let mut first = true;
        loop {
            let mark = self.out.len();
            if !first {
                self.out.push(b',');
            }
            if seq.next_element_seed(Canon { out: self.out, work: self.work })?.is_none() {
                self.out.truncate(mark);
                break;
            }
            first = false;
        }
        self.out.push(b']');
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // Members are written in input order; if their keys were not already in order
        // (or repeat), they are then moved into key order through the scratch buffer.
        // Canonical input (most PUTs) is never moved.
        self.out.push(b'{');
        let body = self.out.len();
        let base = self.work.entries.len();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            if self.work.entries.len() > base {
                self.out.push(b',');
            }
            let from = self.out.len();
            key.write(self.out);
            self.out.push(b':');
            map.next_value_seed(Canon { out: self.out, work: self.work })?;
            self.work.entries.push(Entry { key, from, to: self.out.len() });
        }
        let Work { entries, scratch } = &mut *self.work;
        let members = &mut entries[base..];
        if !members.windows(2).all(|w| w[0].key.as_str() < w[1].key.as_str()) {
            // Stable, so that of duplicate keys the last one wins, as in a `Value` map.
            members.sort_by(|a, b| a.key.as_str().cmp(b.key.as_str()));
            scratch.clear();
            scratch.extend_from_slice(&self.out[body..]);
            self.out.truncate(body);
            for (i, entry) in members.iter().enumerate() {
                if members.get(i + 1).is_some_and(|next| next.key.as_str() == entry.key.as_str()) {
                    continue;
                }
                if self.out.len() > body {
                    self.out.push(b',');
                }
                self.out.extend_from_slice(&scratch[entry.from - body..entry.to - body]);
            }
        }
        entries.truncate(base);
        self.out.push(b'}');
        Ok(())
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

/// An object key: borrowed from the input unless it had escapes.
enum Key<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl Key<'_> {
    fn as_str(&self) -> &str {
        match self {
            Key::Borrowed(s) => s,
            Key::Owned(s) => s,
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Key::Borrowed(s) => write_unescaped(s, out),
            Key::Owned(s) => write_string(s, out),
        }
    }
}

struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key<'de>;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Key<'de>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
        Ok(Key::Borrowed(s))
    }

    fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
        Ok(Key::Owned(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Key<'de>, E> {
        Ok(Key::Owned(s))
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
        assert!(canonicalize_slice(b"{} x").is_err());
        assert!(canonicalize_slice(b"{\"a\":}").is_err());
        assert!(canonicalize_slice(b"").is_err());
    }

    /// The streaming writer and the `Value` writer agree byte for byte, on documents
    /// with every kind of value, escaped keys, nesting and duplicate keys.
    #[test]
    fn streaming_matches_value_writer() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..2000 {
            let doc = random_json(&mut next, 0);
            let via_value = canonicalize(&serde_json::from_str::<Value>(&doc).unwrap());
            assert_eq!(canonicalize_slice(doc.as_bytes()).unwrap(), via_value, "{doc}");
            let mut de = serde_json::Deserializer::from_slice(doc.as_bytes());
            let bytes_path = stream(&mut de, 0);
            assert_eq!(bytes_path.unwrap(), via_value, "parsed from bytes: {doc}");
        }
    }

    fn random_json(next: &mut impl FnMut() -> u64, depth: usize) -> String {
        let pick = next() % if depth > 4 { 7 } else { 9 };
        match pick {
            0 => "null".into(),
            1 => "true".into(),
            2 => format!("{}", next() as i64),
            3 => format!("{}", next() % 1000),
            4 => format!("{:e}", f64::from_bits(next() & 0x7fef_ffff_ffff_ffff)),
            5 => format!("{}.{}0", next() % 100, next() % 10),
            6 => ["\"a\"", "\"\\u00e9\\n\"", "\"x\\\"y\"", "\"\""][(next() % 4) as usize].into(),
            7 => {
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
