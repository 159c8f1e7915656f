//! Structural limits on incoming JSON, checked on the raw bytes before anything is
//! parsed: a hostile body must not make the parser recurse (or allocate) its way
//! through thousands of nested arrays before being refused.

/// Deepest nesting of arrays and objects accepted in a document. serde_json's own
/// recursion limit is 128; real documents (a Strava activity list is about 5 deep)
/// stay far below this.
pub const MAX_DEPTH: usize = 64;

/// A document that nests arrays and objects deeper than allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the document nests arrays and objects deeper than {limit} levels")]
pub struct TooDeep {
    /// The limit that was exceeded.
    pub limit: usize,
}

/// Checks that `raw` never nests `[`/`{` more than `max` levels deep.
///
/// A single pass over the bytes that tracks whether it is inside a string (so that
/// brackets in string values do not count); it does not validate the JSON otherwise:
/// the parser does that afterwards, on input now known to be shallow enough.
///
/// # Errors
/// [`TooDeep`] as soon as the depth passes `max`.
pub fn check_depth(raw: &[u8], max: usize) -> Result<(), TooDeep> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in raw {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Err(TooDeep { limit: max });
                }
            }
            // Unbalanced closers are the parser's problem, not a depth one.
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(n: usize) -> String {
        format!("{}{}", "[".repeat(n), "]".repeat(n))
    }

    #[test]
    fn accepts_up_to_the_limit() {
        assert_eq!(check_depth(nested(MAX_DEPTH).as_bytes(), MAX_DEPTH), Ok(()));
        assert_eq!(check_depth(b"{}", 1), Ok(()));
        assert_eq!(check_depth(b"1", 0), Ok(()));
        assert_eq!(check_depth(br#"{"a":[1,{"b":[]}],"c":{}}"#, 4), Ok(()));
    }

    #[test]
    fn refuses_one_more() {
        assert_eq!(check_depth(nested(MAX_DEPTH + 1).as_bytes(), MAX_DEPTH), Err(TooDeep { limit: MAX_DEPTH }));
        assert!(check_depth(br#"{"a":{"b":{"c":1}}}"#, 2).is_err());
        // Unclosed: the depth counts all the same.
        assert!(check_depth("[".repeat(100_000).as_bytes(), MAX_DEPTH).is_err());
    }

    #[test]
    fn brackets_inside_strings_do_not_count() {
        let s = format!(r#"{{"k":"{}","l":"\"[[[[","m":"\\"}}"#, "[{".repeat(1000));
        assert_eq!(check_depth(s.as_bytes(), 1), Ok(()));
        // An escaped backslash ends the escape: the quote after it closes the string.
        assert!(check_depth(br#"["\\", [[]]]"#, 2).is_err());
        assert_eq!(check_depth(br#"["\\", [[]]]"#, 3), Ok(()));
    }

    #[test]
    fn agrees_with_serde_json_on_what_it_accepts() {
        for depth in [1, 10, MAX_DEPTH] {
            let doc = format!("{}1{}", "{\"a\":[".repeat(depth / 2), "]}".repeat(depth / 2));
            assert!(serde_json::from_str::<serde_json::Value>(&doc).is_ok());
            assert_eq!(check_depth(doc.as_bytes(), MAX_DEPTH), Ok(()), "{depth}");
        }
    }
}
