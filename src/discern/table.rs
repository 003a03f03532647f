//! Delimited tables (CSV, TSV, semicolon and pipe separated): delimiter and header
//! sniffing on a prefix. A record cut by the end of the sample is ignored, so a
//! sample cut mid-row is judged by its whole rows.

/// What the sniffer learned about a table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableShape {
    /// The field separator: `,`, `\t`, `;` or `|`.
    pub delimiter: u8,
    /// Fields per record.
    pub columns: u16,
    /// Whether the first record looks like column names.
    pub header: bool,
    /// Whole records seen in the sample.
    pub records: u16,
}

const DELIMITERS: [u8; 4] = [b',', b'\t', b';', b'|'];
/// Records looked at: enough to see consistency, few enough to stay cheap.
const MAX_RECORDS: usize = 64;

/// Sniffs `text` as a delimited table; `None` unless some delimiter splits every
/// whole record into the same number (at least 2) of fields.
pub fn sniff(text: &[u8]) -> Option<TableShape> {
    let mut best: Option<TableShape> = None;
    for d in DELIMITERS {
        if let Some(t) = with_delimiter(text, d) {
            // More columns and more records win; earlier delimiters win ties.
            let better = match best {
                None => true,
                Some(b) => (t.records.min(8), t.columns) > (b.records.min(8), b.columns),
            };
            if better {
                best = Some(t);
            }
        }
    }
    best
}

/// Sniffs `text` as a table separated by `d` only (an extension's tie-break).
pub fn sniff_with(text: &[u8], d: u8) -> Option<TableShape> {
    with_delimiter(text, d)
}

fn with_delimiter(text: &[u8], d: u8) -> Option<TableShape> {
    let mut counts = [0u16; MAX_RECORDS];
    let mut n = 0usize;
    let mut fields = 1u16;
    let mut in_quotes = false;
    let mut field_start = true;
    let mut field_len = 0usize;
    let mut longest_field = 0usize;
    let mut quoted_fields = 0u32;
    for &c in text {
        if in_quotes {
            // A doubled quote inside quotes reads as close-then-open: same result.
            if c == b'"' {
                in_quotes = false;
            }
            field_len += 1;
            continue;
        }
        match c {
            b'"' if field_start => {
                in_quotes = true;
                quoted_fields += 1;
                field_start = false;
            }
            b'\n' => {
                longest_field = longest_field.max(field_len);
                if fields == 1 && field_len == 0 {
                    // Blank line: not a record.
                } else {
                    // A ragged record (or a first one with no delimiter) settles
                    // it: stop here rather than scan the whole sample.
                    if fields == 1 || (n > 0 && fields != counts[0]) {
                        return None;
                    }
                    counts[n] = fields;
                    n += 1;
                    if n == MAX_RECORDS {
                        break;
                    }
                }
                fields = 1;
                field_start = true;
                field_len = 0;
            }
            b'\r' => {}
            _ if c == d => {
                longest_field = longest_field.max(field_len);
                fields = fields.saturating_add(1);
                field_start = true;
                field_len = 0;
            }
            b' ' if field_start && d != b'\t' => {}
            _ => {
                field_start = false;
                field_len += 1;
            }
        }
    }
    // The record after the last newline (if any) may be cut: ignored.
    let counts = &counts[..n];
    let columns = *counts.first()?;
    if columns < 2 || counts.iter().any(|&c| c != columns) {
        return None;
    }
    // Two records are only enough when they have many fields; prose with one comma
    // per line must not pass for CSV.
    if n < 2 || (n < 3 && columns < 3) {
        return None;
    }
    // Very long "fields" are prose or code, not table cells.
    if longest_field > 400 && quoted_fields == 0 {
        return None;
    }
    Some(TableShape {
        delimiter: d,
        columns,
        header: header(text, d),
        records: n as u16,
    })
}

/// The first record is a header when none of its fields is a number while some
/// field of the second record is.
fn header(text: &[u8], d: u8) -> bool {
    let mut lines = text.split(|&c| c == b'\n');
    let (Some(first), Some(second)) = (lines.next(), lines.next()) else {
        return false;
    };
    let numeric = |f: &[u8]| {
        let f = f.trim_ascii().trim_ascii_matches_quote();
        !f.is_empty()
            && f.iter()
                .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'-' | b'+' | b'e' | b'E'))
            && f.iter().any(u8::is_ascii_digit)
    };
    let first_numeric = first.split(|&c| c == d).any(numeric);
    let second_numeric = second.split(|&c| c == d).any(numeric);
    !first_numeric && second_numeric
}

trait TrimQuote {
    fn trim_ascii_matches_quote(&self) -> &[u8];
}

impl TrimQuote for [u8] {
    fn trim_ascii_matches_quote(&self) -> &[u8] {
        let s = self.strip_prefix(b"\"").unwrap_or(self);
        s.strip_suffix(b"\"").unwrap_or(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comma_with_header_and_quotes() {
        let t =
            sniff(b"id,name,score\n1,\"Doe, Jane\",3.5\n2,Bob,4\n3,\"a \"\"q\"\"\",1\n").unwrap();
        assert_eq!(t.delimiter, b',');
        assert_eq!(t.columns, 3);
        assert!(t.header);
        assert_eq!(t.records, 4);
    }

    #[test]
    fn tab_and_semicolon_without_header() {
        let t = sniff(b"1\t2\t3\n4\t5\t6\n7\t8\t9\n").unwrap();
        assert_eq!((t.delimiter, t.columns, t.header), (b'\t', 3, false));
        let t = sniff(b"a;b\n1;2\n3;4\n").unwrap();
        assert_eq!((t.delimiter, t.columns, t.header), (b';', 2, true));
    }

    #[test]
    fn cut_mid_row_and_mid_quote() {
        let t = sniff(b"a,b,c\n1,2,3\n4,5,6\n7,8").unwrap();
        assert_eq!((t.columns, t.records), (3, 3));
        let t = sniff(b"a,b,c\n1,2,3\n4,5,6\n7,\"an open quote, cut").unwrap();
        assert_eq!(t.columns, 3);
        // CRLF line ends.
        assert_eq!(sniff(b"a,b\r\n1,2\r\n3,4\r\n").unwrap().columns, 2);
    }

    #[test]
    fn prose_and_ragged_lines_are_not_tables() {
        assert_eq!(
            sniff(b"Hello, world.\nThis is prose\nwith, commas, here\n"),
            None
        );
        assert_eq!(sniff(b"one line, only\n"), None);
        assert_eq!(sniff(b"a,b\n1,2\n"), None);
        assert_eq!(sniff(b""), None);
    }
}
