//! The fast parser: a byte scanner for the JSON that tiercache reads most, a row's
//! `data::text` from Postgres (and canonical PUT bodies). It copies number and string
//! tokens through as they are wherever they are already in canonical form, and hands
//! anything else (escapes, non-integral numbers) to serde_json one token at a time.
//!
//! It gives up (returns `None`) at the first byte it does not expect, without deciding
//! whether the input is valid: the caller then runs the general parser, whose answer
//! (bytes or serde_json's error) is the answer. So it must never accept input that
//! serde_json refuses, and must produce exactly the general parser's bytes; the tests
//! in `mod.rs` compare the two on generated documents.

use super::members::{Entry, Key, Work};
use super::{write_f64, write_i64, write_u64};

/// Deeper input is left to the general parser (serde_json's own limit is 128; PUT
/// bodies are refused past 64 before this runs).
const MAX_DEPTH: usize = 100;

/// Longest run of digits that always fits an `i64` (and so is its own canonical form).
const SAFE_DIGITS: usize = 18;

/// Significant digits that any double reproduces exactly: a decimal with no more than
/// these is its own shortest round-tripping form.
const EXACT_DIGITS: usize = 15;

/// The canonical bytes of `input`, or `None` where the general parser must decide.
pub(super) fn scan(input: &str) -> Option<Vec<u8>> {
    let mut scanner = Scanner { src: input, pos: 0, out: Vec::with_capacity(input.len()), work: Work::new() };
    scanner.value(0)?;
    scanner.skip_ws();
    (scanner.pos == input.len()).then_some(scanner.out)
}

struct Scanner<'de> {
    src: &'de str,
    pos: usize,
    out: Vec<u8>,
    work: Work<'de>,
}

impl<'de> Scanner<'de> {
    fn peek(&self) -> Option<u8> {
        self.src.as_bytes().get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    /// Consumes `byte` (after white space) or gives up.
    fn expect(&mut self, byte: u8) -> Option<()> {
        self.skip_ws();
        (self.peek()? == byte).then(|| self.pos += 1)
    }

    fn value(&mut self, depth: usize) -> Option<()> {
        self.skip_ws();
        match self.peek()? {
            b'{' => self.object(depth + 1),
            b'[' => self.array(depth + 1),
            b'"' => {
                let key = self.string()?;
                key.write(&mut self.out);
                Some(())
            }
            b't' => self.literal("true"),
            b'f' => self.literal("false"),
            b'n' => self.literal("null"),
            _ => self.number(),
        }
    }

    fn literal(&mut self, word: &str) -> Option<()> {
        let end = self.pos + word.len();
        (self.src.get(self.pos..end)? == word).then_some(())?;
        self.pos = end;
        self.out.extend_from_slice(word.as_bytes());
        Some(())
    }

    fn object(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.pos += 1;
        self.out.push(b'{');
        let body = self.out.len();
        let base = self.work.entries.len();
        self.skip_ws();
        if self.peek()? == b'}' {
            self.pos += 1;
        } else {
            loop {
                self.skip_ws();
                if self.peek()? != b'"' {
                    return None;
                }
                if self.work.entries.len() > base {
                    self.out.push(b',');
                }
                let from = self.out.len();
                let key = self.string()?;
                key.write(&mut self.out);
                self.expect(b':')?;
                self.out.push(b':');
                self.value(depth)?;
                self.work.entries.push(Entry { key, from, to: self.out.len() });
                self.skip_ws();
                match self.peek()? {
                    b',' => self.pos += 1,
                    b'}' => {
                        self.pos += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        self.work.close_object(&mut self.out, body, base);
        Some(())
    }

    fn array(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.pos += 1;
        self.out.push(b'[');
        self.skip_ws();
        if self.peek()? == b']' {
            self.pos += 1;
        } else {
            loop {
                self.value(depth)?;
                self.skip_ws();
                match self.peek()? {
                    b',' => {
                        self.pos += 1;
                        self.out.push(b',');
                    }
                    b']' => {
                        self.pos += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        self.out.push(b']');
        Some(())
    }

    /// A string token at `pos` (on its opening quote): borrowed when it has no escapes
    /// (then it needs none in canonical form either), else decoded by serde_json.
    fn string(&mut self) -> Option<Key<'de>> {
        let bytes = self.src.as_bytes();
        let start = self.pos + 1;
        let mut end = start;
        let mut escaped = false;
        loop {
            match *bytes.get(end)? {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    end += 1;
                }
                // A raw control character: not JSON.
                0..=0x1f => return None,
                _ => {}
            }
            end += 1;
        }
        self.pos = end + 1;
        if escaped {
            serde_json::from_str::<String>(self.src.get(start - 1..=end)?).ok().map(Key::Owned)
        } else {
            Some(Key::Borrowed(self.src.get(start..end)?))
        }
    }

    /// A number token: short plain integers and decimals are their own canonical form;
    /// any other number is parsed by serde_json, as the general parser would.
    fn number(&mut self) -> Option<()> {
        let bytes = self.src.as_bytes();
        let start = self.pos;
        let mut end = start;
        while matches!(bytes.get(end), Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')) {
            end += 1;
        }
        let token = self.src.get(start..end)?;
        self.pos = end;
        if is_plain_integer(token) || is_plain_decimal(token) {
            self.out.extend_from_slice(token.as_bytes());
            return Some(());
        }
        let number: serde_json::Number = serde_json::from_str(token).ok()?;
        if let Some(i) = number.as_i64() {
            write_i64(i, &mut self.out);
        } else if let Some(u) = number.as_u64() {
            write_u64(u, &mut self.out);
        } else {
            write_f64(number.as_f64()?, &mut self.out);
        }
        Some(())
    }
}

/// `-?[1-9][0-9]*` or `0`, short enough to fit an `i64`: already canonical.
fn is_plain_integer(token: &str) -> bool {
    let digits = token.strip_prefix('-').unwrap_or(token);
    !digits.is_empty()
        && digits.len() <= SAFE_DIGITS
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits.len() == 1 || !digits.starts_with('0'))
        && token != "-0"
}

/// `-?I.F` with no exponent, `I` either `0` (then `F` starts with a non-zero digit, so
/// the value is at least 0.1) or without a leading zero, `F` not ending in `0`, and at
/// most [`EXACT_DIGITS`] significant digits: the shortest round-tripping form of such a
/// value is the token itself, written in plain notation.
fn is_plain_decimal(token: &str) -> bool {
    let unsigned = token.strip_prefix('-').unwrap_or(token);
    let Some((int, frac)) = unsigned.split_once('.') else { return false };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int) || !all_digits(frac) || frac.ends_with('0') {
        return false;
    }
    let significant = if int == "0" {
        if frac.starts_with('0') {
            return false;
        }
        frac.len()
    } else {
        if int.starts_with('0') {
            return false;
        }
        int.len() + frac.len()
    };
    significant <= EXACT_DIGITS
}
