//! Whole-engine tests: hint rules, sizes, and a deterministic fuzz of mutated seed
//! samples (every answer must be well-formed, and nothing may panic).

use super::*;
use std::path::Path;

fn d(sample: &[u8], hint: Option<&str>) -> Discernment {
    discern(sample, hint.map(Path::new))
}

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x10\0\0\0\x10\x08\x06\0\0\0";

#[test]
fn hint_never_overrides_a_signature() {
    let g = d(PNG, Some("x.json"));
    assert_eq!(
        (g.ty(), g.mime(), g.lens),
        ("png", "image/png", Lens::Image)
    );
    assert_eq!(g.confidence, d(PNG, None).confidence);
}

#[test]
fn hint_never_overrides_a_parse() {
    let g = d(
        b"{\"a\": [1, 2, 3], \"b\": {\"c\": null}}\n",
        Some("data.csv"),
    );
    assert_eq!(g.ty(), "json");
}

#[test]
fn hint_agreeing_raises_confidence() {
    let doc = b"{\"a\": [1, 2, 3]}\n";
    assert!(d(doc, Some("a.json")).confidence > d(doc, None).confidence);
    let png = d(PNG, Some("pic.PNG"));
    assert!(png.confidence > d(PNG, None).confidence);
    assert!(png.confidence <= 0.99);
}

#[test]
fn hint_breaks_ties_for_weak_answers() {
    let prose = b"Some words\nmore words\n";
    assert_eq!(d(prose, None).ty(), "text");
    let g = d(prose, Some("/etc/app/config.yaml"));
    assert_eq!((g.ty(), g.mime()), ("yaml", "application/yaml"));
    assert!(g.confidence < 0.75);
    // Not for JSON, which can be checked: prose named .json stays text.
    assert_eq!(d(prose, Some("x.json")).ty(), "text");
    // Not for binary.
    assert_eq!(d(b"\0\x01\x02\x03", Some("x.yaml")).ty(), "binary");
}

#[test]
fn hint_picks_the_delimiter_of_an_ambiguous_table() {
    // Both ',' and ';' split these rows consistently; ';' gives more columns.
    let t = b"a;b,c;d\n1;2,3;4\n5;6,7;8\n";
    assert_eq!(d(t, None).table.unwrap().delimiter, b';');
    assert_eq!(d(t, Some("t.csv")).table.unwrap().delimiter, b',');
}

#[test]
fn empty_tiny_and_huge_samples() {
    let e = d(b"", None);
    assert_eq!((e.ty(), e.mime()), ("empty", "application/x-empty"));
    for b in 0..=255u8 {
        let g = d(&[b], None);
        assert!(!g.ty().is_empty());
    }
    let huge = vec![b'a'; 1 << 20];
    assert_eq!(d(&huge, None).ty(), "text");
    let mut huge_csv = Vec::with_capacity(1 << 20);
    while huge_csv.len() < (1 << 20) {
        huge_csv.extend_from_slice(b"12,alpha,3.5\n");
    }
    assert_eq!(d(&huge_csv, None).ty(), "csv");
    let zeros = vec![0u8; 1 << 20];
    assert_eq!(d(&zeros, None).ty(), "binary");
}

#[test]
fn utf8_cut_mid_character_is_text() {
    let s = "héllo wörld €".as_bytes();
    let g = d(&s[..s.len() - 1], None);
    assert_eq!((g.ty(), g.encoding), ("text", Some(Encoding::Utf8)));
}

#[test]
fn utf16_with_bom_is_text() {
    let le: Vec<u8> = "\u{feff}hello"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    let g = d(&le, None);
    assert_eq!(
        (g.mime(), g.encoding),
        ("text/plain", Some(Encoding::Utf16Le))
    );
}

#[test]
fn wide_text_is_read_through_its_encoding() {
    let srt = "\u{feff}1\n00:00:01,000 --> 00:00:04,000\nHello\n";
    let le32: Vec<u8> = srt
        .chars()
        .flat_map(|c| u32::from(c).to_le_bytes())
        .collect();
    let g = d(&le32, None);
    assert_eq!(
        (g.mime(), g.encoding),
        ("application/x-subrip", Some(Encoding::Utf32Le))
    );
    let be16: Vec<u8> = srt.encode_utf16().flat_map(u16::to_be_bytes).collect();
    assert_eq!(d(&be16, None).mime(), "application/x-subrip");
    // Wide text stays below the signature band, and a hint cannot re-sniff it.
    let csv: Vec<u8> = "\u{feff}a;b\n1;2\n3;4\n5;6\n7;8\n9;0\n"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    let g = d(&csv, Some("t.csv"));
    assert_eq!(g.ty(), "csv");
    assert!(g.confidence <= 0.95);
}

#[test]
fn hostile_elf_offsets_do_not_overflow() {
    // Program header offset and entry size at their maxima.
    let mut h = vec![0u8; 64];
    h[..4].copy_from_slice(b"\x7fELF");
    h[4] = 2;
    h[5] = 1;
    h[16] = 3;
    h[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
    h[54..56].copy_from_slice(&u16::MAX.to_le_bytes());
    h[56..58].copy_from_slice(&u16::MAX.to_le_bytes());
    assert_eq!(d(&h, None).mime(), "application/x-sharedlib");
    h[32..40].copy_from_slice(&(u64::MAX - 100).to_le_bytes());
    h[54..56].copy_from_slice(&1u16.to_le_bytes());
    assert_eq!(d(&h, None).ty(), "elf");
}

/// Seeds covering every detector; the fuzz mutates these.
fn seeds() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = vec![
        PNG.to_vec(),
        b"\x1f\x8b\x08\0\0\0\0\0\0\x03".to_vec(),
        b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x03\0>\0\x01\0\0\0".to_vec(),
        b"{\"a\": [1, 2.5e3, true, null, \"x\\\"y\"], \"b\": {}}\n".to_vec(),
        b"{\"a\":1}\n{\"a\":2}\n[3]\n".to_vec(),
        b"id,name\n1,\"x, y\"\n2,z\n".to_vec(),
        b"a\tb\n1\t2\n".to_vec(),
        b"---\nkey: value\nlist:\n  - a\n".to_vec(),
        b"Nov 26 10:00:01 host sshd[1]: ok\nNov 26 10:00:02 host sshd[1]: ok\n".to_vec(),
        b"#!/usr/bin/env python3\nimport os\n".to_vec(),
        b"<?xml version=\"1.0\"?><svg></svg>".to_vec(),
        b"<!DOCTYPE html><html><body>x</body></html>".to_vec(),
        b"#include <stdio.h>\nint main(void) { return 0; }\n".to_vec(),
        b"\xef\xbb\xbfBOM text\n".to_vec(),
        b"\xff\xfeh\0i\0".to_vec(),
        b"\xff\xfe\0\0h\0\0\0i\0\0\0".to_vec(),
        b"\0\0\xfe\xff\0\0\0{\0\0\0}".to_vec(),
        b"PK\x03\x04\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x14\0\0\0META-INF/MANIFEST.MF"
            .to_vec(),
        b"{% block x %}<div>{{ y }}</div>".to_vec(),
        b"From: a\nTo: b\n\nhi".to_vec(),
        b"msgid \"\"\nmsgstr \"\"\n".to_vec(),
        b"!<arch>\n".to_vec(),
        "ünïcödé €".as_bytes().to_vec(),
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n".to_vec(),
    ];
    v.push(vec![b'['; 300]);
    v.push(vec![b'"'; 300]);
    v
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const INTERESTING: &[u8] =
    b"{}[]\",:\\\n\r\t #!<>?-0123456789eE.;|\0\x7f\x80\xbf\xc3\xe2\xef\xf0\xff";

#[test]
fn fuzz_mutated_seeds_never_panic_and_answer_well_formed() {
    let seeds = seeds();
    let mut rng = Rng(0x5eed_d15c_e4a5_0006);
    let hints = [
        None,
        Some("a.json"),
        Some("b.csv"),
        Some("c.yaml"),
        Some("d.png"),
        Some("e"),
    ];
    let mut by_type = std::collections::BTreeMap::<String, u32>::new();
    for iter in 0..40_000u32 {
        let mut s = seeds[rng.below(seeds.len())].clone();
        for _ in 0..1 + rng.below(6) {
            match rng.below(6) {
                0 if !s.is_empty() => {
                    let i = rng.below(s.len());
                    s[i] = INTERESTING[rng.below(INTERESTING.len())];
                }
                1 if !s.is_empty() => {
                    let i = rng.below(s.len());
                    s[i] = rng.next() as u8;
                }
                2 => {
                    let i = rng.below(s.len() + 1);
                    s.insert(i, INTERESTING[rng.below(INTERESTING.len())]);
                }
                3 if !s.is_empty() => {
                    // Truncate: the prefix rule.
                    let n = rng.below(s.len());
                    s.truncate(n);
                }
                4 if !s.is_empty() => {
                    // Repeat a slice, growing records.
                    let a = rng.below(s.len());
                    let b = (a + 1 + rng.below(64)).min(s.len());
                    let piece = s[a..b].to_vec();
                    s.extend_from_slice(&piece);
                }
                _ => s.reverse(),
            }
        }
        let g = discern(&s, hints[rng.below(hints.len())].map(Path::new));
        assert!(
            (0.0..=1.0).contains(&g.confidence),
            "iteration {iter}: confidence {} for {s:?}",
            g.confidence
        );
        assert!(
            !g.ty().is_empty() && g.mime().contains('/'),
            "iteration {iter}: {g:?}"
        );
        if let Some(t) = g.table {
            assert!(t.columns >= 2 && t.records >= 2, "iteration {iter}: {t:?}");
        }
        *by_type.entry(g.ty().to_owned()).or_default() += 1;
    }
    // The mutations must reach many detectors, or the fuzz tests little.
    assert!(by_type.len() >= 10, "{by_type:?}");
}
