//! Fuzz the ONNX reader: any bytes → import → spec → analysis → report.
//!
//! The property: netstat answers (a report or an error) and never panics, hangs or aborts on
//! an allocation. See ../onnx.rs; seeds: tests/fixtures/onnx/*.onnx.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../onnx.rs"]
mod onnx;

fuzz_target!(|data: &[u8]| {
    let _ = onnx::run(data);
});
