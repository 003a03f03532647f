//! Content discernment: any sample, with or without a hint path, gets an
//! answer with a confidence in 0-1, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

const HINTS: [Option<&str>; 6] = [
    None,
    Some("a.json"),
    Some("a.csv"),
    Some("a.rs"),
    Some("Makefile"),
    Some("a.tar.gz"),
];

fuzz_target!(|data: &[u8]| {
    let (hint, sample) = match data.split_first() {
        Some((h, rest)) => (HINTS[*h as usize % HINTS.len()], rest),
        None => (None, data),
    };
    match shipote::discern::respond(sample, hint.map(Path::new)) {
        shipote_protocol::Response::Discernment { confidence, .. } => {
            assert!((0.0..=1.0).contains(&confidence), "{confidence}")
        }
        other => panic!("{other:?}"),
    }
});
