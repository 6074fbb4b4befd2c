//! Fuzz the whole pipeline: any bytes → spec → graph → analysis → every report format.
//!
//! The property: netstat answers (reports or a `SpecError`) and never panics, overflows,
//! hangs or aborts on an allocation. See ../pipeline.rs.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../pipeline.rs"]
mod pipeline;

fuzz_target!(|data: &[u8]| {
    let _ = pipeline::run(data);
});
