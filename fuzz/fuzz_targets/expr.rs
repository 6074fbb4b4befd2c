//! Fuzz target `expr`: see ../expr.rs for what it drives and the property it checks.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../expr.rs"]
mod expr;

fuzz_target!(|data: &[u8]| {
    expr::run(data);
});
