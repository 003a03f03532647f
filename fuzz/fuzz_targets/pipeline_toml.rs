//! The CLI's pipeline file: any text is parsed or refused with a message
//! naming the file, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = shipote::client::pipeline::parse(Path::new("f.toml"), text) {
        assert!(e.contains("f.toml"), "{e}");
    }
});
