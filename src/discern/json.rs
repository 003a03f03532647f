//! JSON and NDJSON on a prefix: a validating scanner that never allocates and that
//! tells a document cut by the end of the sample from one that is malformed.

/// How far one JSON value at the start of a slice got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scan {
    /// A whole value ends at this offset (exclusive).
    Complete(usize),
    /// The input ended inside a value that was valid so far.
    Truncated,
    /// Not JSON.
    Invalid,
}

/// Deeper nesting than this is answered `Truncated` (still plausible JSON), so the
/// scanner's stack is a fixed array.
const MAX_DEPTH: usize = 128;

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Value,
    ValueOrClose,
    KeyOrClose,
    Key,
    Colon,
    CommaOrClose,
}

/// Scans one value (object, array or scalar) starting at `b[0]` after whitespace.
/// Returns the scan result and how many values (scalars and containers) were seen.
pub fn scan_value(b: &[u8]) -> (Scan, u32) {
    let mut stack = [false; MAX_DEPTH]; // true: object
    let mut depth = 0usize;
    let mut i = 0usize;
    let mut st = State::Value;
    let mut values = 0u32;
    loop {
        while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
            i += 1;
        }
        if i >= b.len() {
            return (Scan::Truncated, values);
        }
        let c = b[i];
        // `ended` is true when a value (scalar or closed container) just ended.
        let ended = match st {
            State::Value | State::ValueOrClose => match c {
                b']' if st == State::ValueOrClose => {
                    depth -= 1;
                    i += 1;
                    true
                }
                b'{' | b'[' => {
                    if depth == MAX_DEPTH {
                        return (Scan::Truncated, values);
                    }
                    stack[depth] = c == b'{';
                    depth += 1;
                    i += 1;
                    st = if c == b'{' {
                        State::KeyOrClose
                    } else {
                        State::ValueOrClose
                    };
                    false
                }
                b'"' => match string_end(b, i) {
                    Some(Some(e)) => {
                        i = e;
                        true
                    }
                    Some(None) => return (Scan::Truncated, values),
                    None => return (Scan::Invalid, values),
                },
                b'-' | b'0'..=b'9' => match number_end(b, i) {
                    Some(Some(e)) => {
                        i = e;
                        true
                    }
                    Some(None) => return (Scan::Truncated, values),
                    None => return (Scan::Invalid, values),
                },
                b't' | b'f' | b'n' => {
                    let lit: &[u8] = match c {
                        b't' => b"true",
                        b'f' => b"false",
                        _ => b"null",
                    };
                    let have = &b[i..b.len().min(i + lit.len())];
                    if !lit.starts_with(have) {
                        return (Scan::Invalid, values);
                    }
                    if have.len() < lit.len() {
                        return (Scan::Truncated, values);
                    }
                    i += lit.len();
                    true
                }
                _ => return (Scan::Invalid, values),
            },
            State::KeyOrClose | State::Key => match c {
                b'}' if st == State::KeyOrClose => {
                    depth -= 1;
                    i += 1;
                    true
                }
                b'"' => match string_end(b, i) {
                    Some(Some(e)) => {
                        i = e;
                        st = State::Colon;
                        false
                    }
                    Some(None) => return (Scan::Truncated, values),
                    None => return (Scan::Invalid, values),
                },
                _ => return (Scan::Invalid, values),
            },
            State::Colon => {
                if c != b':' {
                    return (Scan::Invalid, values);
                }
                i += 1;
                st = State::Value;
                false
            }
            State::CommaOrClose => {
                let object = stack[depth - 1];
                match c {
                    b',' => {
                        i += 1;
                        st = if object { State::Key } else { State::Value };
                        false
                    }
                    b'}' if object => {
                        depth -= 1;
                        i += 1;
                        true
                    }
                    b']' if !object => {
                        depth -= 1;
                        i += 1;
                        true
                    }
                    _ => return (Scan::Invalid, values),
                }
            }
        };
        if ended {
            values += 1;
            if depth == 0 {
                // A bare number at the end of the input might go on.
                return (Scan::Complete(i), values);
            }
            st = State::CommaOrClose;
        }
    }
}

/// End of the string starting at `b[start] == '"'`: `Some(Some(end))` past the closing
/// quote, `Some(None)` cut by the end of input, `None` invalid (raw control byte).
fn string_end(b: &[u8], start: usize) -> Option<Option<usize>> {
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'"' => return Some(Some(i + 1)),
            b'\\' => {
                match b.get(i + 1) {
                    None => return Some(None),
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' | b'u') => {}
                    Some(_) => return None,
                }
                i += 2;
            }
            c if c < 0x20 => return None,
            _ => i += 1,
        }
    }
    Some(None)
}

/// End of the number at `b[start]`; `Some(None)` when the input ends inside it.
fn number_end(b: &[u8], start: usize) -> Option<Option<usize>> {
    let mut i = start;
    if b[i] == b'-' {
        i += 1;
    }
    let digits_from = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
    }
    if i >= b.len() {
        return Some(None);
    }
    if i == digits_from {
        return None;
    }
    Some(Some(i))
}

/// What a text sample looks like as JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// One object or array, whole (`true`) or cut by the end of the sample; with the
    /// number of values seen.
    Document { whole: bool, values: u32 },
    /// One object or array per line; the number of whole lines.
    Lines(u32),
}

/// Recognises a JSON document or NDJSON in `text` (starting at an object or array).
pub fn shape(text: &[u8]) -> Option<Shape> {
    let start = text.iter().position(|c| !c.is_ascii_whitespace())?;
    if !matches!(text[start], b'{' | b'[') {
        return None;
    }
    match scan_value(&text[start..]) {
        (Scan::Invalid, _) => None,
        (Scan::Truncated, values) => Some(Shape::Document {
            whole: false,
            values,
        }),
        (Scan::Complete(end), values) => {
            let end = start + end;
            let rest = &text[end..];
            if rest.iter().all(u8::is_ascii_whitespace) {
                return Some(Shape::Document {
                    whole: true,
                    values,
                });
            }
            lines(text, end).map(Shape::Lines)
        }
    }
}

/// After a first whole value ending at `first_end`, checks that every following line
/// holds one object or array (the last may be cut). Returns the whole lines.
fn lines(text: &[u8], first_end: usize) -> Option<u32> {
    let mut i = first_end;
    // The first value must be followed by only spaces then a newline.
    while i < text.len() && matches!(text[i], b' ' | b'\t' | b'\r') {
        i += 1;
    }
    if text.get(i) != Some(&b'\n') {
        return None;
    }
    let mut whole = 1u32;
    while i < text.len() {
        // Skip blank lines.
        while i < text.len() && text[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= text.len() {
            break;
        }
        if !matches!(text[i], b'{' | b'[') {
            return None;
        }
        match scan_value(&text[i..]) {
            (Scan::Invalid, _) => return None,
            (Scan::Truncated, _) => break,
            (Scan::Complete(e), _) => {
                i += e;
                while i < text.len() && matches!(text[i], b' ' | b'\t' | b'\r') {
                    i += 1;
                }
                if i < text.len() && text[i] != b'\n' {
                    return None;
                }
                whole += 1;
            }
        }
    }
    (whole >= 2).then_some(whole)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_documents() {
        assert_eq!(
            shape(br#"{"a": [1, 2.5e-3, true, null, "x\"y"]}"#),
            Some(Shape::Document {
                whole: true,
                values: 7
            })
        );
        assert!(matches!(
            shape(b"  [ ]\n"),
            Some(Shape::Document { whole: true, .. })
        ));
    }

    #[test]
    fn truncated_documents_are_still_json() {
        let doc = br#"{"name": "shipote", "tags": ["a", "b"], "n": 12345, "ok": true}"#;
        for cut in 1..doc.len() {
            assert!(
                matches!(
                    shape(&doc[..cut]),
                    Some(Shape::Document { whole: false, .. })
                ),
                "cut at {cut}: {:?}",
                std::str::from_utf8(&doc[..cut])
            );
        }
    }

    #[test]
    fn malformed_is_not_json() {
        for bad in [
            &b"{a: 1}"[..],
            b"[1, 2,, 3]",
            b"{\"a\" 1}",
            b"[Unit]\nDescription=x\n",
            b"[tru]",
            b"{\"a\": 1}}",
            b"[link](http://x)",
            b"plain text",
        ] {
            assert_eq!(shape(bad), None, "{:?}", std::str::from_utf8(bad));
        }
    }

    #[test]
    fn ndjson_lines_with_a_cut_last_line() {
        let s = b"{\"a\":1}\n{\"a\":2}\n[3]\n{\"a\":";
        assert_eq!(shape(s), Some(Shape::Lines(3)));
        // Two values on one line is not NDJSON.
        assert_eq!(shape(b"{\"a\":1} {\"a\":2}\n{}\n"), None);
        // A non-JSON line in the middle.
        assert_eq!(shape(b"{\"a\":1}\nhello\n{}\n"), None);
    }

    #[test]
    fn deep_nesting_does_not_overflow() {
        let deep = vec![b'['; 10_000];
        assert!(matches!(
            shape(&deep),
            Some(Shape::Document { whole: false, .. })
        ));
    }
}
