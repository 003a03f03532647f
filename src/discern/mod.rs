//! Content sniffing: what type a sample of bytes is, how sure we are, and how a
//! viewer should show it. Owns [`discern`] and the detectors behind it; it does no
//! I/O and never allocates, so the daemon can call it on every tapped edge and
//! answer `Request::Discern` inline.
//!
//! Binary formats are recognised by signature with the `file-format` crate
//! (`signature.rs`, plus signatures it lacks or cannot tell apart: ELF kinds,
//! Python bytecode, terminfo, gettext catalogs, jars, GDBM, ACPI tables...). Text
//! is split off first (`encoding.rs`, libmagic's idea of which bytes never occur in
//! text); UTF-16 and UTF-32 text with a BOM is decoded to UTF-8 in a stack buffer,
//! as libmagic converts it, and read by the same detectors (`text.rs`, `json.rs`,
//! `table.rs`): shebang scripts, markup and HTML templates, mail and news headers,
//! JSON and NDJSON, logs, gettext catalogues, source code (Vim script among it),
//! CSV/TSV with delimiter and header sniffing, and YAML. Every detector works on a
//! prefix: a sample cut mid-record, mid-string or mid-character is judged by what
//! it holds so far.
//!
//! MIME names follow what libmagic (`file --mime-type`) prints, the reference the
//! corpus bench (`bench/discern.rs`) measures against; where libmagic has no name
//! for a type we use the registered one (`application/yaml`,
//! `text/tab-separated-values`, `text/markdown`) or `text/rust`; a type with no
//! name anywhere (Vim script, logs) is `text/plain` with its own `ty` and lens.
//!
//! # Confidence
//!
//! | band | meaning |
//! |---|---|
//! | 0.95–0.99 | a signature (magic bytes, `<?xml`, `%PDF-`, `#!`-less markers) matched |
//! | 0.8–0.9 | a structural parse held: JSON/NDJSON validated, a table with ≥ 5 consistent rows, a shebang, a timestamped log, mail headers, a gettext entry; any answer on BOM'd, wide or 8-bit text is capped at 0.9 |
//! | 0.55–0.75 | a heuristic: source code by its line starts, YAML by its key lines, short tables, HTML templates, a type taken from the path's extension |
//! | ≤ 0.5 | a fallback: text of no known kind (0.5), binary with no signature (0.3), empty (0.3) |
//!
//! The corpus bench prints how often answers in each band agree with libmagic, so
//! the scale is checked against data, not only asserted.
//!
//! # Hints
//!
//! `hint_path`'s extension breaks ties and raises confidence, never more: if it
//! names what the content already says, confidence rises by 0.05; if the content
//! only got a heuristic or fallback answer (< 0.75) and is compatible with the
//! hinted type (text for a text type, a table for `.csv`), the hinted type is taken
//! at 0.6. A signature or a structural parse is never overridden: a PNG named
//! `x.json` is a PNG.
//!
//! # Lens
//!
//! How a client should show the content: `table` (CSV/TSV), `json` (JSON, NDJSON),
//! `log` (timestamped lines, journal export), `markup` (HTML, XML), `code` (scripts,
//! source, YAML), `text` (prose, unknown text), `document` (PDF, PostScript, troff,
//! office), `image`, `audio`, `video`, `font`, `archive` (archives and compressed
//! streams), `hex` (executables, databases, unknown binary).

mod code;
mod encoding;
mod json;
mod signature;
mod table;
mod text;

pub use encoding::Encoding;
pub use table::TableShape;

use file_format::FileFormat;
use std::path::Path;

/// How a viewer should show a discerned sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lens {
    /// Rows and columns.
    Table,
    /// A JSON tree (documents and NDJSON).
    Json,
    /// Plain text.
    Text,
    /// Timestamped lines.
    Log,
    /// HTML or XML.
    Markup,
    /// Source code, scripts, configuration.
    Code,
    /// A rendered document (PDF, PostScript, troff, office).
    Document,
    /// A picture.
    Image,
    /// Sound.
    Audio,
    /// Moving pictures.
    Video,
    /// A typeface.
    Font,
    /// Archives and compressed streams: a listing.
    Archive,
    /// Bytes.
    Hex,
}

impl Lens {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Table => "table",
            Self::Json => "json",
            Self::Text => "text",
            Self::Log => "log",
            Self::Markup => "markup",
            Self::Code => "code",
            Self::Document => "document",
            Self::Image => "image",
            Self::Audio => "audio",
            Self::Video => "video",
            Self::Font => "font",
            Self::Archive => "archive",
            Self::Hex => "hex",
        }
    }
}

/// Where the type's names come from: our own detectors, or a `file-format` format
/// (whose names live in that crate; kept by value so nothing is allocated).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Name {
    Own {
        ty: &'static str,
        mime: &'static str,
    },
    Format {
        format: FileFormat,
        /// libmagic's name where it differs from file-format's.
        mime: Option<&'static str>,
        ty: Option<&'static str>,
    },
}

/// The answer to "what is this sample".
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Discernment {
    name: Name,
    /// 0–1, on the scale of the module doc.
    pub confidence: f32,
    /// How to show it.
    pub lens: Lens,
    /// The table's shape, for CSV and TSV.
    pub table: Option<TableShape>,
    /// The text encoding, when the sample is text.
    pub encoding: Option<Encoding>,
}

/// What the detectors return; the same thing as the final answer.
type Guess = Discernment;

impl Discernment {
    fn own(ty: &'static str, mime: &'static str, lens: Lens, confidence: f32) -> Self {
        Self {
            name: Name::Own { ty, mime },
            confidence,
            lens,
            table: None,
            encoding: None,
        }
    }

    /// Our short name for the type: `json`, `csv`, `png`, `gzip`, `elf`, `text`, `binary`...
    pub fn ty(&self) -> &str {
        match &self.name {
            Name::Own { ty, .. } => ty,
            Name::Format { ty: Some(ty), .. } => ty,
            Name::Format { format, .. } => format.extension(),
        }
    }

    /// The MIME type, named as libmagic names it where libmagic knows the type.
    pub fn mime(&self) -> &str {
        match &self.name {
            Name::Own { mime, .. } => mime,
            Name::Format { mime: Some(m), .. } => m,
            Name::Format { format, .. } => format.media_type(),
        }
    }

    #[cfg(test)]
    fn mime_static(&self) -> Option<&'static str> {
        match self.name {
            Name::Own { mime, .. } => Some(mime),
            Name::Format { mime, .. } => mime,
        }
    }
}

/// Tells the type of `sample` (the first bytes of some content, any length).
/// `hint_path`'s extension is a hint: see the module doc for what it may change.
pub fn discern(sample: &[u8], hint_path: Option<&Path>) -> Discernment {
    let d = content(sample);
    match hint_path.and_then(Path::extension).and_then(|e| e.to_str()) {
        Some(ext) => hint(d, ext, sample),
        None => d,
    }
}

/// The wire answer to `Request::Discern`.
pub fn respond(sample: &[u8], hint_path: Option<&Path>) -> shipote_protocol::Response {
    let d = discern(sample, hint_path);
    shipote_protocol::Response::Discernment {
        ty: d.ty().to_owned(),
        confidence: d.confidence,
        mime: Some(d.mime().to_owned()),
        lens: Some(d.lens.as_str().to_owned()),
    }
}

/// The answer from the bytes alone.
fn content(sample: &[u8]) -> Discernment {
    if sample.is_empty() {
        return Guess::own("empty", "application/x-empty", Lens::Text, 0.3);
    }
    let (enc, body_at) = encoding::classify(sample);
    let body = &sample[body_at..];
    let mut d = match enc {
        Encoding::Binary => signature::detect(sample),
        Encoding::Utf16Le | Encoding::Utf16Be | Encoding::Utf32Le | Encoding::Utf32Be => {
            // libmagic reads wide text converted to UTF-8; so do we, on the stack.
            let mut buf = [0u8; WIDE_TEXT_BYTES];
            let n = encoding::to_utf8(enc, body, &mut buf);
            capped(text(&buf[..n]))
        }
        Encoding::Utf8Bom | Encoding::EightBit => capped(text(body)),
        Encoding::Ascii | Encoding::Utf8 => text(body),
    };
    if enc != Encoding::Binary {
        d.encoding = Some(enc);
    }
    d
}

/// UTF-8 bytes a wide-text sample is decoded into: a 4 KiB sample of UTF-16 is at
/// most 2,048 characters, at most 6 KiB of UTF-8; the detectors read less.
const WIDE_TEXT_BYTES: usize = 4096;

/// A text body: the few signatures that can be printable (an ASCII PPM, an empty
/// `ar` archive) first, then the text detectors.
fn text(body: &[u8]) -> Discernment {
    signature::text_safe(body).unwrap_or_else(|| text::detect(body))
}

/// libmagic names BOM'd, wide or 8-bit text by content only for a few kinds, plain
/// text otherwise: such answers stay below the signature band.
fn capped(mut d: Discernment) -> Discernment {
    d.confidence = d.confidence.min(0.9);
    d
}

/// What a known extension (lower-cased by [`known_extension`]) says, for text types.
fn hinted_text(ext: &str) -> Option<(&'static str, &'static str, Lens)> {
    Some(match ext {
        "yaml" | "yml" => ("yaml", "application/yaml", Lens::Code),
        "md" | "markdown" => ("markdown", "text/markdown", Lens::Text),
        "log" => ("log", "text/plain", Lens::Log),
        "txt" | "text" => ("text", "text/plain", Lens::Text),
        "c" | "h" => ("c", "text/x-c", Lens::Code),
        "cc" | "cpp" | "cxx" | "hpp" | "hh" => ("c++", "text/x-c++", Lens::Code),
        "rs" => ("rust", "text/rust", Lens::Code),
        "py" => ("python", "text/x-script.python", Lens::Code),
        "sh" | "bash" => ("shell", "text/x-shellscript", Lens::Code),
        "pl" | "pm" => ("perl", "text/x-perl", Lens::Code),
        "rb" => ("ruby", "text/x-ruby", Lens::Code),
        "js" | "mjs" | "cjs" => ("javascript", "application/javascript", Lens::Code),
        "ini" | "conf" | "cfg" | "toml" => ("config", "text/plain", Lens::Code),
        _ => return None,
    })
}

/// The extensions the hint rules know, lower-cased without allocating: the
/// matching entry of a fixed list, or `None` for any other extension.
fn known_extension(ext: &str) -> Option<&'static str> {
    const KNOWN: &[&str] = &[
        "yaml", "yml", "md", "markdown", "log", "txt", "text", "c", "h", "cc", "cpp", "cxx", "hpp",
        "hh", "rs", "py", "sh", "bash", "pl", "pm", "rb", "js", "mjs", "cjs", "ini", "conf", "cfg",
        "toml", "csv", "tsv", "tab", "json", "ndjson", "jsonl",
    ];
    KNOWN.iter().copied().find(|k| k.eq_ignore_ascii_case(ext))
}

/// The text of an ASCII-compatible sample, after its UTF-8 BOM if it has one.
fn text_body<'a>(d: &Discernment, sample: &'a [u8]) -> &'a [u8] {
    if d.encoding == Some(Encoding::Utf8Bom) {
        &sample[3..]
    } else {
        sample
    }
}

/// Applies the extension hint (rules in the module doc).
fn hint(d: Discernment, ext: &str, sample: &[u8]) -> Discernment {
    let lower = known_extension(ext);
    // Tie-break between delimiters that both give a table.
    let ascii_text = d.encoding.is_some_and(Encoding::is_ascii_compatible_text);
    if let (Some(shape), Some(e @ ("csv" | "tsv" | "tab")), true) = (d.table, lower, ascii_text) {
        let want = if e == "csv" { b',' } else { b'\t' };
        if shape.delimiter != want {
            if let Some(other) = table::sniff_with(text_body(&d, sample), want) {
                return Discernment {
                    confidence: (d.confidence + 0.05).min(0.99),
                    encoding: d.encoding,
                    ..text::table_guess(other)
                };
            }
        }
    }
    let agrees = match d.name {
        Name::Format { format, .. } => format.extension().eq_ignore_ascii_case(ext),
        Name::Own { ty, .. } => match lower {
            Some("csv") => ty == "csv",
            Some("tsv" | "tab") => ty == "tsv",
            Some("json") => ty == "json",
            Some("ndjson" | "jsonl") => ty == "ndjson",
            Some(e) => hinted_text(e).is_some_and(|(t, _, _)| t == ty),
            None => false,
        },
    };
    if agrees {
        return Discernment {
            confidence: (d.confidence + 0.05).min(0.99),
            ..d
        };
    }
    // Strong evidence stands against any name.
    if d.confidence >= 0.75 {
        return d;
    }
    let Some(enc) = d.encoding else {
        return d;
    };
    if !enc.is_ascii_compatible_text() {
        return d;
    }
    match lower {
        // A table hint picks its delimiter when that delimiter also gives a table.
        Some(e @ ("csv" | "tsv" | "tab")) => {
            let want = if e == "csv" { b',' } else { b'\t' };
            match table::sniff_with(text_body(&d, sample), want) {
                Some(shape) => Discernment {
                    confidence: 0.75,
                    encoding: d.encoding,
                    ..text::table_guess(shape)
                },
                None => d,
            }
        }
        // JSON can be checked, so the hint cannot stand in for it.
        Some("json" | "ndjson" | "jsonl") | None => d,
        Some(e) => match hinted_text(e) {
            Some((ty, mime, lens)) => Discernment {
                encoding: d.encoding,
                ..Guess::own(ty, mime, lens, 0.6)
            },
            None => d,
        },
    }
}

#[cfg(test)]
mod tests;
