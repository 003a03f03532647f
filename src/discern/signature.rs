//! Binary samples: a few signatures `file-format` lacks or cannot tell apart (ELF
//! kinds, Python bytecode, terminfo, gettext catalogs, PE, option ROMs, OpenPGP
//! keys, zlib, GDBM, Java images and jmods, ACPI tables, ZIP refinements, Type 1
//! fonts in PFB segments, printer and TeX font metrics), then
//! `file-format`'s signatures, with its MIME names translated to libmagic's where
//! they differ.

use super::{Guess, Lens, Name};
use file_format::{FileFormat, Kind};

/// Signature matches: near-certain, but a short magic can occur by chance in
/// random bytes, hence not 1.
const SIGNATURE: f32 = 0.95;
/// Binary with no signature.
const FALLBACK: f32 = 0.3;

/// Detects a binary sample (one with bytes that never occur in text).
pub fn detect(s: &[u8]) -> Guess {
    if let Some(g) = own(s) {
        return g;
    }
    let format = FileFormat::from_bytes(s);
    match format {
        FileFormat::ArbitraryBinaryData | FileFormat::PlainText | FileFormat::Empty => {
            Guess::own("binary", "application/octet-stream", Lens::Hex, FALLBACK)
        }
        _ => {
            let (ty, mime) = libmagic_names(format);
            Guess {
                name: Name::Format { format, mime, ty },
                confidence: SIGNATURE,
                lens: lens_of(format),
                table: None,
                encoding: None,
            }
        }
    }
}

/// Signatures of formats that are printable text (checked before the text
/// detectors so that, say, an ASCII PPM is an image).
pub fn text_safe(s: &[u8]) -> Option<Guess> {
    // An `ar` archive with no members is its 8-byte magic alone: all text.
    if s.starts_with(b"!<arch>\n") {
        return Some(Guess::own(
            "ar",
            "application/x-archive",
            Lens::Archive,
            SIGNATURE,
        ));
    }
    if s.len() >= 3 && s[0] == b'P' && matches!(s[1], b'1'..=b'3') && s[2].is_ascii_whitespace() {
        let mime = match s[1] {
            b'1' => "image/x-portable-bitmap",
            b'2' => "image/x-portable-greymap",
            _ => "image/x-portable-pixmap",
        };
        // The next token must be a width.
        let rest = s[3..].trim_ascii_start();
        if rest.first().is_some_and(u8::is_ascii_digit) {
            return Some(Guess::own("netpbm", mime, Lens::Image, SIGNATURE));
        }
    }
    None
}

fn own(s: &[u8]) -> Option<Guess> {
    if s.starts_with(b"\x7fELF") {
        return elf(s);
    }
    let u16le = |o: usize| s.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    // Python bytecode: a 2-byte version magic then CR LF (3.x: 3000-3700; 2.x: 62xxx).
    if s.len() >= 16 && &s[2..4] == b"\r\n" {
        if let Some(m) = u16le(0) {
            if (3000..=3700).contains(&m) || (62000..=62300).contains(&m) {
                return Some(Guess::own(
                    "python-bytecode",
                    "application/x-bytecode.python",
                    Lens::Hex,
                    SIGNATURE,
                ));
            }
        }
    }
    // terminfo: legacy (0432 octal) and extended-number (01036) formats.
    if s.len() >= 12 {
        match u16le(0) {
            Some(0o432) => {
                return Some(Guess::own(
                    "terminfo",
                    "application/x-terminfo",
                    Lens::Hex,
                    SIGNATURE,
                ))
            }
            Some(0o1036) => {
                return Some(Guess::own(
                    "terminfo",
                    "application/x-terminfo2",
                    Lens::Hex,
                    SIGNATURE,
                ))
            }
            _ => {}
        }
    }
    if s.starts_with(b"\xde\x12\x04\x95") || s.starts_with(b"\x95\x04\x12\xde") {
        return Some(Guess::own(
            "gettext",
            "application/x-gettext-translation",
            Lens::Hex,
            SIGNATURE,
        ));
    }
    if s.starts_with(b"PK\x03\x04") {
        return zip(s);
    }
    if let Some(g) = font_metrics(s) {
        return Some(g);
    }
    if s.starts_with(b"MZ") {
        // A PE file's "PE\0\0" header sits at the offset stored at 0x3c; without it
        // (or beyond the sample) it is plain DOS.
        let pe = s
            .get(0x3c..0x40)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .and_then(|o| s.get(o..o.checked_add(4)?))
            == Some(b"PE\0\0");
        let mime = if pe {
            "application/vnd.microsoft.portable-executable"
        } else {
            "application/x-dosexec"
        };
        return Some(Guess::own("exe", mime, Lens::Hex, SIGNATURE));
    }
    // PC option ROMs (VGA BIOS, PXE): 55 AA then a length in 512-byte blocks.
    if s.len() >= 512 && s.starts_with(b"\x55\xaa") && s[2] > 0 {
        return Some(Guess::own(
            "option-rom",
            "application/x-ibm-rom",
            Lens::Hex,
            0.9,
        ));
    }
    // OpenPGP public key packet (old format tag 6, or new format 0xC6), key v4/v5.
    let pgp_version_at = match s.first() {
        Some(0x98) => Some(2),
        Some(0x99) => Some(3),
        Some(0xc6) => Some(if s.get(1).is_some_and(|&l| l < 192) {
            2
        } else {
            3
        }),
        _ => None,
    };
    if pgp_version_at
        .and_then(|i| s.get(i))
        .is_some_and(|v| matches!(v, 4 | 5))
    {
        return Some(Guess::own(
            "pgp-keys",
            "application/pgp-keys",
            Lens::Hex,
            0.9,
        ));
    }
    // zlib stream: deflate method, a window size, and a header checksum (mod 31).
    if s.len() >= 8 && s[0] == 0x78 && (u16::from(s[0]) << 8 | u16::from(s[1])) % 31 == 0 {
        return Some(Guess::own("zlib", "application/zlib", Lens::Archive, 0.85));
    }
    // GDBM files open with a native-endian magic; 0x13579ace and its two variants.
    if s.len() >= 4 {
        let m = [s[0], s[1], s[2], s[3]];
        if [u32::from_le_bytes(m), u32::from_be_bytes(m)]
            .iter()
            .any(|m| matches!(m, 0x1357_9ace..=0x1357_9acf))
        {
            return Some(Guess::own(
                "gdbm",
                "application/x-gdbm",
                Lens::Hex,
                SIGNATURE,
            ));
        }
    }
    // A Java runtime image (lib/modules): 0xCAFEDADA, little endian.
    if s.starts_with(b"\xda\xda\xfe\xca") {
        return Some(Guess::own(
            "jimage",
            "application/x-java-image",
            Lens::Archive,
            SIGNATURE,
        ));
    }
    // ACPI machine language tables: DSDT/SSDT, then the table length, which covers
    // at least the 36-byte header.
    if (s.starts_with(b"DSDT") || s.starts_with(b"SSDT"))
        && s.get(4..8)
            .is_some_and(|l| u32::from_le_bytes([l[0], l[1], l[2], l[3]]) >= 36)
    {
        return Some(Guess::own("aml", "application/x-intel-aml", Lens::Hex, 0.9));
    }
    if s.starts_with(b"JM\x01\x00") {
        return Some(Guess::own(
            "jmod",
            "application/x-java-jmod",
            Lens::Archive,
            SIGNATURE,
        ));
    }
    None
}

/// Type 1 fonts in PFB segments, Windows printer font metrics (PFM) and TeX
/// font metrics (TFM): binary headers whose fields check each other.
fn font_metrics(s: &[u8]) -> Option<Guess> {
    // PFB: a segment marker (80 01), its length, then the font's PostScript.
    if s.starts_with(b"\x80\x01")
        && s.get(6..)
            .is_some_and(|t| t.starts_with(b"%!PS-AdobeFont") || t.starts_with(b"%!FontType1"))
    {
        return Some(Guess::own(
            "pfb",
            "font/x-postscript-pfb",
            Lens::Hex,
            SIGNATURE,
        ));
    }
    let u16le = |o: usize| s.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32le = |o: usize| {
        s.get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    // PFM: version 1.0, a size at least the header's, and a 60-byte copyright
    // field of text (NUL-padded) that starts with a letter.
    if u16le(0) == Some(0x0100)
        && u32le(2).is_some_and(|n| (117..1 << 24).contains(&n))
        && s.get(6..66).is_some_and(|c| {
            c[0].is_ascii_alphabetic() && c.iter().all(|&b| b == 0 || (0x20..0x7f).contains(&b))
        })
    {
        return Some(Guess::own(
            "pfm",
            "application/x-font-pfm",
            Lens::Hex,
            SIGNATURE,
        ));
    }
    // TFM: twelve big-endian 16-bit lengths, the first the sum of the others
    // as the format defines it (lf = 6 + lh + ec - bc + 1 + nw + ... + np).
    if s.len() >= 24 {
        let w = |i: usize| u32::from(u16::from_be_bytes([s[2 * i], s[2 * i + 1]]));
        let (lf, lh, bc, ec) = (w(0), w(1), w(2), w(3));
        let rest: u32 = (4..12).map(w).sum();
        if lh >= 2 && ec <= 255 && bc <= ec + 1 && lf > 6 && lf == 6 + lh + (ec + 1 - bc) + rest {
            return Some(Guess::own(
                "tfm",
                "application/x-tex-tfm",
                Lens::Hex,
                SIGNATURE,
            ));
        }
    }
    None
}

/// ZIP, refined by its first entry as libmagic does: the jar tool's mark or a
/// leading manifest is a Java archive; a stored `mimetype` entry (OpenDocument, EPUB) names the type.
/// file-format's own refinement reads the central directory at the end of the file,
/// which a sample never has.
fn zip(s: &[u8]) -> Option<Guess> {
    let u16at = |o: usize| {
        s.get(o..o + 2)
            .map(|b| usize::from(u16::from_le_bytes([b[0], b[1]])))
    };
    let name_len = u16at(26)?;
    let extra_len = u16at(28)?;
    let name = s.get(30..30 + name_len)?;
    // The jar tool marks its first entry, whatever its name, with an extra field
    // of id 0xCAFE; libmagic calls a zip a Java archive by that mark, and so do we.
    let extra = s
        .get(30 + name_len..30 + name_len + extra_len)
        .unwrap_or(&[]);
    // A first entry META-INF/MANIFEST.MF is a jar to libmagic too (it checks the
    // second entry for Android's files first; we do not see an APK apart).
    // The layout jar tools write: a `META-INF/` directory entry, then the
    // manifest (libmagic 5.44 calls this a plain zip; the files are jars).
    let manifest_next = || -> Option<bool> {
        let size = s.get(18..22)?;
        let size =
            usize::try_from(u32::from_le_bytes([size[0], size[1], size[2], size[3]])).ok()?;
        let next = (30 + name_len + extra_len).checked_add(size)?;
        let n = u16at(next + 26)?;
        Some(
            s.get(next..next + 4)? == b"PK\x03\x04"
                && s.get(next + 30..next + 30 + n)? == b"META-INF/MANIFEST.MF",
        )
    };
    if extra.starts_with(b"\xfe\xca")
        || name == b"META-INF/MANIFEST.MF"
        || name == b"META-INF/" && manifest_next() == Some(true)
    {
        return Some(Guess::own(
            "jar",
            "application/java-archive",
            Lens::Archive,
            SIGNATURE,
        ));
    }
    if name == b"mimetype" {
        let body = s.get(30 + name_len + extra_len..)?;
        const STORED: &[(&str, &str)] = &[
            ("application/vnd.oasis.opendocument.text", "odt"),
            ("application/vnd.oasis.opendocument.spreadsheet", "ods"),
            ("application/vnd.oasis.opendocument.presentation", "odp"),
            ("application/vnd.oasis.opendocument.graphics", "odg"),
            ("application/epub+zip", "epub"),
        ];
        for (mime, ty) in STORED {
            if body.starts_with(mime.as_bytes())
                && !body.get(mime.len()).is_some_and(|c| *c == b'-')
            {
                return Some(Guess::own(ty, mime, Lens::Document, SIGNATURE));
            }
        }
    }
    Some(Guess::own(
        "zip",
        "application/zip",
        Lens::Archive,
        SIGNATURE,
    ))
}

/// ELF: libmagic names the kind from `e_type`; a shared object with a program
/// interpreter (`PT_INTERP`) is a PIE executable.
fn elf(s: &[u8]) -> Option<Guess> {
    if s.len() < 20 {
        return Some(Guess::own(
            "elf",
            "application/x-executable",
            Lens::Hex,
            0.8,
        ));
    }
    let wide = s[4] == 2;
    let le = s[5] != 2;
    let rd = |o: usize, n: usize| -> Option<u64> {
        let b = s.get(o..o.checked_add(n)?)?;
        let mut v = 0u64;
        for i in 0..n {
            let byte = if le { b[n - 1 - i] } else { b[i] };
            v = (v << 8) | u64::from(byte);
        }
        Some(v)
    };
    let e_type = rd(16, 2)?;
    let mime = match e_type {
        1 => "application/x-object",
        2 => "application/x-executable",
        4 => "application/x-coredump",
        3 => {
            let (phoff, phentsize, phnum) = if wide {
                (rd(32, 8)?, rd(54, 2)?, rd(56, 2)?)
            } else {
                (rd(28, 4)?, rd(42, 2)?, rd(44, 2)?)
            };
            let has_interp = (0..phnum.min(64)).any(|i| {
                // Offsets come from the file: checked, never trusted.
                i.checked_mul(phentsize)
                    .and_then(|o| o.checked_add(phoff))
                    .and_then(|o| usize::try_from(o).ok())
                    .and_then(|o| rd(o, 4))
                    == Some(3)
            });
            if has_interp {
                "application/x-pie-executable"
            } else {
                "application/x-sharedlib"
            }
        }
        _ => "application/octet-stream",
    };
    Some(Guess::own("elf", mime, Lens::Hex, SIGNATURE))
}

/// Our type name and libmagic's MIME name where they differ from file-format's.
fn libmagic_names(f: FileFormat) -> (Option<&'static str>, Option<&'static str>) {
    use FileFormat as F;
    match f {
        F::Gzip => (Some("gzip"), Some("application/gzip")),
        F::Zip => (Some("zip"), Some("application/zip")),
        F::WaveformAudio => (None, Some("audio/x-wav")),
        F::Truetype | F::Opentype => (None, Some("font/sfnt")),
        F::WindowsIcon => (None, Some("image/vnd.microsoft.icon")),
        F::PortableGraymap => (None, Some("image/x-portable-greymap")),
        // libmagic names an MP3 by its first frame, file-format by the ID3 tag.
        F::Id3v2 => (Some("mp3"), Some("audio/mpeg")),
        F::JavaClass => (None, Some("application/x-java-applet")),
        _ => (None, None),
    }
}

fn lens_of(f: FileFormat) -> Lens {
    match f.kind() {
        Kind::Archive | Kind::Compressed | Kind::Package => Lens::Archive,
        Kind::Audio => Lens::Audio,
        Kind::Video => Lens::Video,
        Kind::Image | Kind::Diagram => Lens::Image,
        Kind::Font => Lens::Font,
        Kind::Document | Kind::Ebook | Kind::Presentation | Kind::Spreadsheet | Kind::Formula => {
            Lens::Document
        }
        _ => Lens::Hex,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elf_kinds() {
        let mut h = vec![0u8; 64 + 56];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = 2; // 64-bit
        h[5] = 1; // little endian
        h[16] = 3; // ET_DYN
        h[32] = 64; // phoff
        h[54] = 56; // phentsize
        h[56] = 1; // phnum
        assert_eq!(detect(&h).mime(), "application/x-sharedlib");
        h[64] = 3; // PT_INTERP
        assert_eq!(detect(&h).mime(), "application/x-pie-executable");
        h[16] = 2;
        assert_eq!(detect(&h).mime(), "application/x-executable");
        h[16] = 1;
        assert_eq!(detect(&h).mime(), "application/x-object");
        // Cut inside the header: still ELF, less sure.
        assert_eq!(detect(&h[..10]).ty(), "elf");
    }

    #[test]
    fn own_signatures() {
        let mut pyc = vec![0u8; 32];
        pyc[..4].copy_from_slice(b"\xcb\x0d\r\n"); // 3531: Python 3.12
        assert_eq!(detect(&pyc).mime(), "application/x-bytecode.python");
        let mut ti = vec![0u8; 32];
        ti[..2].copy_from_slice(&0o1036u16.to_le_bytes());
        assert_eq!(detect(&ti).mime(), "application/x-terminfo2");
        assert_eq!(detect(b"\xde\x12\x04\x95\0\0\0\0").ty(), "gettext");
        assert_eq!(detect(b"\xcf\x9a\x57\x13\0\x10\0\0").ty(), "gdbm");
        assert_eq!(detect(b"\xda\xda\xfe\xca\0\0\x01\0").ty(), "jimage");
        assert_eq!(detect(b"DSDT\xe9\x11\0\0\x01\x54").ty(), "aml");
        // A DSDT length below the header's own size is no table.
        assert_ne!(detect(b"DSDT\x01\0\0\0\0\0").ty(), "aml");
    }

    #[test]
    fn font_files_and_metrics() {
        let mut pfb = b"\x80\x01\x10\x00\x00\x00%!PS-AdobeFont-1.0: CMR10".to_vec();
        pfb.resize(64, b' ');
        assert_eq!(detect(&pfb).ty(), "pfb");
        let mut pfm = vec![0x00, 0x01, 0x21, 0x02, 0, 0];
        pfm.extend_from_slice(b"Copyright (c) 1997 American Mathematical Society");
        pfm.resize(66, 0);
        pfm.extend_from_slice(&[0x81, 0, 0x0a, 0, 0x2c, 0x01]);
        assert_eq!(detect(&pfm).ty(), "pfm");
        // cmr10.tfm's header: lf 364 = 6 + lh 18 + (246 - 0 + 1) + 37 + 16 + 13 + 9 + 2 + 16.
        let words: [u16; 12] = [364, 18, 0, 246, 37, 16, 13, 9, 2, 0, 0, 16];
        let mut tfm: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
        tfm.extend_from_slice(&[0xfa, 0x24, 0xbf, 0xe3, 0, 0xe6, 0x66, 0x60]);
        assert_eq!(detect(&tfm).ty(), "tfm");
        // One length off: no TFM.
        tfm[1] = 0x6d;
        assert_ne!(detect(&tfm).ty(), "tfm");
    }

    #[test]
    fn zip_refined_by_its_first_entry() {
        let entry = |name: &[u8], extra: &[u8]| {
            let mut z = b"PK\x03\x04".to_vec();
            z.resize(26, 0);
            z.extend_from_slice(&(name.len() as u16).to_le_bytes());
            z.extend_from_slice(&(extra.len() as u16).to_le_bytes());
            z.extend_from_slice(name);
            z.extend_from_slice(extra);
            z.extend_from_slice(b"\0\0\0\0");
            z
        };
        assert_eq!(detect(&entry(b"META-INF/", b"\xfe\xca\0\0")).ty(), "jar");
        assert_eq!(detect(&entry(b"META-INF/MANIFEST.MF", b"")).ty(), "jar");
        assert_eq!(detect(&entry(b"com/", b"\xfe\xca\0\0")).ty(), "jar");
        assert_eq!(detect(&entry(b"META-INF/", b"")).ty(), "zip");
        // The directory, then the manifest: how jar tools lay a jar out.
        let mut jar = entry(b"META-INF/", b"");
        jar.truncate(jar.len() - 4);
        jar.extend_from_slice(&entry(b"META-INF/MANIFEST.MF", b""));
        assert_eq!(detect(&jar).ty(), "jar");
        let mut other = entry(b"META-INF/", b"");
        other.truncate(other.len() - 4);
        other.extend_from_slice(&entry(b"README", b""));
        assert_eq!(detect(&other).ty(), "zip");
        assert_eq!(detect(&entry(b"a.txt", b"")).ty(), "zip");
        // A name running past the sample.
        let mut cut = entry(b"META-INF/MANIFEST.MF", b"");
        cut.truncate(35);
        assert_eq!(detect(&cut).ty(), "zip");
    }

    #[test]
    fn printable_signatures() {
        assert_eq!(
            text_safe(b"!<arch>\n").and_then(|g| g.mime_static()),
            Some("application/x-archive")
        );
        assert_eq!(
            text_safe(b"P3\n2 2\n255\n")
                .map(|g| g.ty().to_owned())
                .as_deref(),
            Some("netpbm")
        );
        assert!(text_safe(b"P3 is a word").is_none());
    }

    #[test]
    fn file_format_signatures_with_libmagic_names() {
        assert_eq!(detect(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR").mime(), "image/png");
        let gz = detect(b"\x1f\x8b\x08\0\0\0\0\0\0\x03");
        assert_eq!(
            (gz.ty(), gz.mime(), gz.lens),
            ("gzip", "application/gzip", Lens::Archive)
        );
        assert_eq!(detect(&[0u8; 100]).ty(), "binary");
        assert!(detect(&[0u8; 100]).confidence <= 0.3);
    }
}
