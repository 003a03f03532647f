//! Is a sample text, and in which encoding: BOMs (UTF-8, UTF-16, UTF-32), UTF-8
//! (tolerating a character cut at the end of the sample), 8-bit text, or binary.
//! Follows libmagic's notion of which bytes never occur in text, so "text" means
//! the same thing on both sides. [`to_utf8`] turns a UTF-16 or UTF-32 body into
//! UTF-8 in a caller's buffer, so the text detectors can read it.

/// The encoding of a text sample, or binary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// Only 7-bit bytes.
    Ascii,
    /// Valid UTF-8 (perhaps cut mid-character at the end), no BOM.
    Utf8,
    /// UTF-8 after an EF BB BF byte order mark.
    Utf8Bom,
    /// UTF-16 little endian, after FF FE.
    Utf16Le,
    /// UTF-16 big endian, after FE FF.
    Utf16Be,
    /// UTF-32 little endian, after FF FE 00 00.
    Utf32Le,
    /// UTF-32 big endian, after 00 00 FE FF.
    Utf32Be,
    /// Not UTF-8, but only bytes an 8-bit charset (ISO-8859-x, Windows-125x) prints.
    EightBit,
    /// Bytes that never occur in text (NUL, most C0 controls, DEL).
    Binary,
}

impl Encoding {
    /// Whether the bytes after the BOM can be read as ASCII-compatible text.
    pub fn is_ascii_compatible_text(self) -> bool {
        matches!(
            self,
            Self::Ascii | Self::Utf8 | Self::Utf8Bom | Self::EightBit
        )
    }
}

/// Bytes libmagic's `text_chars` table marks as never appearing in text: NUL..ACK,
/// SO..SUB, FS..US and DEL. BEL, BS, TAB, LF, VT, FF, CR and ESC are allowed.
const fn never_text(b: u8) -> bool {
    matches!(b, 0x00..=0x06 | 0x0e..=0x1a | 0x1c..=0x1f | 0x7f)
}

/// A 256-entry table so the scan is one load per byte.
static NEVER_TEXT: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = never_text(i as u8);
        i += 1;
    }
    t
};

/// Classifies `sample`; returns the encoding and the offset where the text starts
/// (after a BOM).
pub fn classify(sample: &[u8]) -> (Encoding, usize) {
    if sample.starts_with(b"\xef\xbb\xbf") {
        let body = &sample[3..];
        return if utf8_prefix_ok(body) && !has_never_text(body) {
            (Encoding::Utf8Bom, 3)
        } else {
            (Encoding::Binary, 0)
        };
    }
    // FF FE 00 00 is UTF-32 LE, not UTF-16 LE starting with a NUL.
    if sample.starts_with(b"\xff\xfe\0\0") && utf32_plausible(&sample[4..], true) {
        return (Encoding::Utf32Le, 4);
    }
    if sample.starts_with(b"\0\0\xfe\xff") && utf32_plausible(&sample[4..], false) {
        return (Encoding::Utf32Be, 4);
    }
    if sample.starts_with(b"\xff\xfe") && utf16_plausible(&sample[2..], true) {
        return (Encoding::Utf16Le, 2);
    }
    if sample.starts_with(b"\xfe\xff") && utf16_plausible(&sample[2..], false) {
        return (Encoding::Utf16Be, 2);
    }
    if has_never_text(sample) {
        return (Encoding::Binary, 0);
    }
    if sample.is_ascii() {
        (Encoding::Ascii, 0)
    } else if utf8_prefix_ok(sample) {
        (Encoding::Utf8, 0)
    } else {
        (Encoding::EightBit, 0)
    }
}

fn has_never_text(b: &[u8]) -> bool {
    b.iter().any(|&c| NEVER_TEXT[c as usize])
}

/// Valid UTF-8, except that the last character may be cut by the end of the sample.
fn utf8_prefix_ok(b: &[u8]) -> bool {
    match std::str::from_utf8(b) {
        Ok(_) => true,
        // `error_len() == None` means the input ended inside a sequence that was
        // valid so far: a cut, not a corruption.
        Err(e) => e.error_len().is_none(),
    }
}

/// UTF-16 code units that are mostly printable: no NUL units (a cut odd byte at the
/// end is tolerated), and no never-text controls in the low plane.
fn utf16_plausible(b: &[u8], le: bool) -> bool {
    let mut units = 0usize;
    for pair in b.chunks_exact(2) {
        let u = if le {
            u16::from_le_bytes([pair[0], pair[1]])
        } else {
            u16::from_be_bytes([pair[0], pair[1]])
        };
        if u < 0x80 && never_text(u as u8) {
            return false;
        }
        units += 1;
    }
    units > 0 || b.is_empty()
}

/// UTF-32 code units that are characters and not never-text controls: at least
/// one, and a cut last unit is tolerated.
fn utf32_plausible(b: &[u8], le: bool) -> bool {
    b.len() >= 4
        && b.chunks_exact(4).all(|u| {
            let u = unit32(u, le);
            char::from_u32(u).is_some() && !(u < 0x80 && never_text(u as u8))
        })
}

fn unit32(b: &[u8], le: bool) -> u32 {
    let b = [b[0], b[1], b[2], b[3]];
    if le {
        u32::from_le_bytes(b)
    } else {
        u32::from_be_bytes(b)
    }
}

/// Decodes the body of a UTF-16 or UTF-32 sample (after its BOM) into `buf` as
/// UTF-8, as far as whole characters fit; returns the bytes written. Unpaired
/// surrogates become U+FFFD; a unit cut by the end of the sample is dropped.
/// Other encodings write nothing.
pub fn to_utf8(enc: Encoding, body: &[u8], buf: &mut [u8]) -> usize {
    let mut n = 0;
    let mut put = |c: char| {
        let len = c.len_utf8();
        if n + len > buf.len() {
            return false;
        }
        c.encode_utf8(&mut buf[n..]);
        n += len;
        true
    };
    match enc {
        Encoding::Utf16Le | Encoding::Utf16Be => {
            let units = body.chunks_exact(2).map(|p| {
                let p = [p[0], p[1]];
                if enc == Encoding::Utf16Le {
                    u16::from_le_bytes(p)
                } else {
                    u16::from_be_bytes(p)
                }
            });
            for c in char::decode_utf16(units) {
                if !put(c.unwrap_or(char::REPLACEMENT_CHARACTER)) {
                    break;
                }
            }
        }
        Encoding::Utf32Le | Encoding::Utf32Be => {
            for u in body.chunks_exact(4) {
                let c = char::from_u32(unit32(u, enc == Encoding::Utf32Le));
                if !put(c.unwrap_or(char::REPLACEMENT_CHARACTER)) {
                    break;
                }
            }
        }
        _ => {}
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_utf8_and_eight_bit_text() {
        assert_eq!(classify(b"hello\n").0, Encoding::Ascii);
        assert_eq!(classify("ñandú\n".as_bytes()).0, Encoding::Utf8);
        assert_eq!(classify(b"caf\xe9 cr\xe8me\n").0, Encoding::EightBit);
        assert_eq!(classify(b"\x1b[1mbold\x1b[0m").0, Encoding::Ascii);
    }

    #[test]
    fn utf8_cut_mid_character_is_still_utf8() {
        let s = "aé€".as_bytes();
        // Cut inside the three-byte euro sign.
        assert_eq!(classify(&s[..s.len() - 1]).0, Encoding::Utf8);
        assert_eq!(classify(&s[..s.len() - 2]).0, Encoding::Utf8);
        // A broken sequence in the middle is not a cut: 8-bit text, not UTF-8.
        assert_eq!(classify(b"a\xe2\x82b").0, Encoding::EightBit);
    }

    #[test]
    fn boms() {
        assert_eq!(classify(b"\xef\xbb\xbfhi"), (Encoding::Utf8Bom, 3));
        let le: Vec<u8> = "\u{feff}hi é"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        assert_eq!(classify(&le), (Encoding::Utf16Le, 2));
        // Cut after an odd byte.
        assert_eq!(classify(&le[..le.len() - 1]).0, Encoding::Utf16Le);
        let be: Vec<u8> = "\u{feff}hi"
            .encode_utf16()
            .flat_map(u16::to_be_bytes)
            .collect();
        assert_eq!(classify(&be), (Encoding::Utf16Be, 2));
        // FF FE followed by NUL units is not UTF-16 text.
        assert_eq!(classify(b"\xff\xfe\0\0\0\0").0, Encoding::Binary);
        let le32: Vec<u8> = "\u{feff}hi é\u{1F600}"
            .chars()
            .flat_map(|c| u32::from(c).to_le_bytes())
            .collect();
        assert_eq!(classify(&le32), (Encoding::Utf32Le, 4));
        let be32: Vec<u8> = "\u{feff}hi"
            .chars()
            .flat_map(|c| u32::from(c).to_be_bytes())
            .collect();
        assert_eq!(classify(&be32), (Encoding::Utf32Be, 4));
        // Beyond U+10FFFF is not UTF-32.
        assert_eq!(classify(b"\0\0\xfe\xff\x7f\0\0\0").0, Encoding::Binary);
    }

    #[test]
    fn wide_text_decodes_to_utf8() {
        let le: Vec<u8> = "hé\u{1F600}!"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        let mut buf = [0u8; 16];
        let n = to_utf8(Encoding::Utf16Le, &le, &mut buf);
        assert_eq!(&buf[..n], "hé\u{1F600}!".as_bytes());
        // A character that does not fit is left out whole; a cut unit is dropped.
        let mut small = [0u8; 5];
        let n = to_utf8(Encoding::Utf16Le, &le[..le.len() - 1], &mut small);
        assert_eq!(&small[..n], "hé".as_bytes());
        // A lone surrogate becomes U+FFFD.
        let n = to_utf8(Encoding::Utf16Be, b"\xd8\x00\x00A", &mut buf);
        assert_eq!(&buf[..n], "\u{FFFD}A".as_bytes());
        let be32 = [0, 0, 0, b'o', 0, 0, 0, b'k'];
        let n = to_utf8(Encoding::Utf32Be, &be32, &mut buf);
        assert_eq!(&buf[..n], b"ok");
    }

    #[test]
    fn controls_make_binary() {
        assert_eq!(classify(b"abc\0def").0, Encoding::Binary);
        assert_eq!(classify(b"abc\x7f").0, Encoding::Binary);
        assert_eq!(classify(b"").0, Encoding::Ascii);
    }
}
