//! What discern allocates per call (issue 18), with a counting allocator
//! around `discern` on a sample of every kind the detectors read (text
//! detectors of each language and format, our own signatures, encodings,
//! tables, JSON), with and without a file name as hint: nothing. Binary
//! samples none of our signatures knows go on to file-format, whose
//! `from_bytes` reads through a 36 KiB buffer it allocates (one allocation
//! for a signature it knows, a few more for unknown data): bounded, and
//! tested as such.

use shipote::discern::discern;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: every call is passed on to the system allocator unchanged; the
// counter only observes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above, that is from `System`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: as for `alloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn samples() -> Vec<(Vec<u8>, &'static str)> {
    let mut elf = std::fs::read("/bin/true").expect("/bin/true");
    elf.truncate(4096);
    let mut long_js = b"var Gt=(n,t,e)=>{let s=n;".to_vec();
    long_js.resize(3000, b'x');
    let mut tfm: Vec<u8> = [364u16, 18, 0, 246, 37, 16, 13, 9, 2, 0, 0, 16]
        .iter()
        .flat_map(|w| w.to_be_bytes())
        .collect();
    tfm.resize(200, 0);
    let utf16: Vec<u8> = "\u{feff}caf\u{e9} ñandú\nline two\n"
        .encode_utf16()
        .flat_map(|u| u.to_le_bytes())
        .collect();
    vec![
        (
            b"package main\n\nimport \"fmt\"\n\nfunc main() {\n}\n".to_vec(),
            "x.go",
        ),
        (
            b"package a.b;\nimport java.util.List;\npublic class A {\n".to_vec(),
            "A.java",
        ),
        (
            b"\\def\\x{1}\n\\catcode`\\@=11\n\\input plain\n".to_vec(),
            "x.tex",
        ),
        (
            b"CREATE TABLE t (\n id INT\n);\nINSERT INTO t VALUES (1);\n".to_vec(),
            "q.sql",
        ),
        (
            b"FROM debian:12\nRUN true\nCOPY . /s\nWORKDIR /s\nCMD [\"x\"]\n".to_vec(),
            "Dockerfile",
        ),
        (
            b"[package]\nname = \"x\"\nversion = \"1\"\nedition = \"2021\"\n".to_vec(),
            "Cargo.toml",
        ),
        (
            b"# T\n\nSome prose words here.\n\n## U\n\nMore prose words here.\n".to_vec(),
            "R.md",
        ),
        (b"TEXT \xc2\xb7f(SB),$0\n\tRET\n".to_vec(), "a.s"),
        (b"{\"a\": [1, 2, {\"b\": null}]}\n".to_vec(), "x.json"),
        (b"{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n".to_vec(), "x.ndjson"),
        (b"a,b,c\n1,2,3\n4,5,6\n".to_vec(), "t.csv"),
        (b"a\tb\n1\t2\n3\t4\n".to_vec(), "t.tsv"),
        (b"key: value\nlist:\n  - a\n  - b\n".to_vec(), "c.yaml"),
        (b"#!/bin/sh\necho hi\n".to_vec(), "run"),
        (
            b"Nov 26 10:00:01 web sshd[1]: ok\nNov 26 10:00:02 web cron[2]: run\n".to_vec(),
            "x.log",
        ),
        (
            b"<?xml version=\"1.0\"?>\n<svg xmlns=\"x\"/>".to_vec(),
            "x.svg",
        ),
        (b"%!\nTeXDict begin\n".to_vec(), "x.pro"),
        (long_js, "x.min.js"),
        (utf16, "u.txt"),
        (elf, "true"),
        (tfm, "x.tfm"),
        (
            b"\x80\x01\x10\0\0\0%!PS-AdobeFont-1.0: X\n".to_vec(),
            "x.pfb",
        ),
        (
            b"PK\x03\x04\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x09\0\0\0META-INF/".to_vec(),
            "x.jar",
        ),
        (Vec::new(), "empty"),
    ]
}

/// Binary samples that only file-format names (or nobody does).
fn through_file_format() -> Vec<(Vec<u8>, &'static str)> {
    vec![
        (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01".to_vec(), "p.png"),
        ((0..=255u8).cycle().take(4096).collect(), "x.bin"),
    ]
}

/// Allocations of one `discern` call on `s`.
fn allocations(s: &[u8]) -> usize {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    COUNTING.with(|c| c.set(true));
    std::hint::black_box(discern(s, None));
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

#[test]
fn discern_allocates_nothing_per_call_outside_file_format() {
    let samples = samples();
    // Anything done once (lazy tables) happens before counting.
    for (s, name) in samples.iter().chain(&through_file_format()) {
        std::hint::black_box(discern(s, Some(Path::new(name))));
    }
    let culprits: Vec<(&str, usize)> = samples
        .iter()
        .map(|(s, name)| (*name, allocations(s)))
        .filter(|(_, n)| *n != 0)
        .collect();
    assert!(culprits.is_empty(), "these samples allocate: {culprits:?}");
    COUNTING.with(|c| c.set(true));
    let mut types = 0usize;
    for (s, name) in &samples {
        types += discern(s, Some(Path::new(name))).mime().len();
    }
    COUNTING.with(|c| c.set(false));
    std::hint::black_box(types);
    assert_eq!(ALLOCATIONS.load(Ordering::Relaxed), 0, "with hints too");
    // Through file-format: its read buffer, a bounded few.
    for (s, name) in &through_file_format() {
        let n = allocations(s);
        assert!((1..=8).contains(&n), "{name}: {n} allocations");
    }
}
