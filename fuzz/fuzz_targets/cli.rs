//! Fuzz target `cli`: see ../cli.rs for what it drives and the property it checks.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../cli.rs"]
mod cli;

fuzz_target!(|data: &[u8]| {
    cli::run(data);
});
