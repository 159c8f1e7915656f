//! What both parsers share: the buffers of one run, object members and their keys,
//! and putting an object's members in key order.

use super::{write_string, write_unescaped};

/// Buffers shared by every level of one streaming run, so that objects do not allocate.
pub(super) struct Work<'de> {
    /// The members of the objects being written, innermost last.
    pub(super) entries: Vec<Entry<'de>>,
    /// Where an object's members are moved while they are put in key order.
    pub(super) scratch: Vec<u8>,
}

/// One object member already written to the output: `"key":value` at `from..to`.
pub(super) struct Entry<'de> {
    pub(super) key: Key<'de>,
    pub(super) from: usize,
    pub(super) to: usize,
}

impl Work<'_> {
    /// A run's buffers, empty.
    pub(super) fn new() -> Self {
        Self { entries: Vec::new(), scratch: Vec::new() }
    }

    /// Ends the object whose members (from `entries[base..]`) were written to
    /// `out[body..]` in input order: if their keys were not already in order (or
    /// repeat), they are moved into key order through the scratch buffer, the last of
    /// duplicate keys winning as in a `Value` map. Canonical input is never moved.
    pub(super) fn close_object(&mut self, out: &mut Vec<u8>, body: usize, base: usize) {
        let members = &mut self.entries[base..];
        if !members.windows(2).all(|w| w[0].key.as_str() < w[1].key.as_str()) {
            // Stable, so that of duplicate keys the last one stays last.
            members.sort_by(|a, b| a.key.as_str().cmp(b.key.as_str()));
            self.scratch.clear();
            self.scratch.extend_from_slice(&out[body..]);
            out.truncate(body);
            for (i, entry) in members.iter().enumerate() {
                if members.get(i + 1).is_some_and(|next| next.key.as_str() == entry.key.as_str()) {
                    continue;
                }
                if out.len() > body {
                    out.push(b',');
                }
                out.extend_from_slice(&self.scratch[entry.from - body..entry.to - body]);
            }
        }
        self.entries.truncate(base);
        out.push(b'}');
    }
}

/// An object key: borrowed from the input unless it had escapes.
pub(super) enum Key<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl Key<'_> {
    pub(super) fn as_str(&self) -> &str {
        match self {
            Key::Borrowed(s) => s,
            Key::Owned(s) => s,
        }
    }

    pub(super) fn write(&self, out: &mut Vec<u8>) {
        match self {
            Key::Borrowed(s) => write_unescaped(s, out),
            Key::Owned(s) => write_string(s, out),
        }
    }
}
