//! Pipeline templating and validation: any spec and vars a client can send
//! (decoded as the wire decodes them) are planned or refused without a panic,
//! and a planned pipeline stays within the documented bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shipote::workspace::pipeline::{self, MAX_COMMANDS, MAX_EDGES, MAX_RENDERED_STRING};
use shipote_protocol::PipelineSpec;
use std::collections::BTreeMap;

fuzz_target!(|data: &[u8]| {
    let Ok((spec, vars)) = postcard::from_bytes::<(PipelineSpec, BTreeMap<String, String>)>(data)
    else {
        return;
    };
    if let Ok(plan) = pipeline::plan(&spec, &vars) {
        assert!(plan.spec.commands.len() <= MAX_COMMANDS);
        assert!(plan.spec.edges.len() <= MAX_EDGES);
        for c in &plan.spec.commands {
            assert!(c.exec.len() <= MAX_RENDERED_STRING);
            assert!(c.argv.iter().all(|a| a.len() <= MAX_RENDERED_STRING));
        }
    }
});
