//! The general parser: any input, through serde's visitor, straight into the output
//! (no `Value` tree), with serde_json's errors for input that is not JSON.

use super::members::{Entry, Key, Work};
use super::{write_bool, write_f64, write_i64, write_string, write_u64, write_unescaped};
use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// Parses all of `de` into canonical bytes.
pub(super) fn stream<'de, R: serde_json::de::Read<'de>>(
    de: &mut serde_json::Deserializer<R>,
    len: usize,
) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::with_capacity(len);
    let mut work = Work::new();
    Canon { out: &mut out, work: &mut work }.deserialize(&mut *de)?;
    de.end()?;
    Ok(out)
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
        self.work.close_object(self.out, body, base);
        Ok(())
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
