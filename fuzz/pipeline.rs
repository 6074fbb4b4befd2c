//! The pipeline the fuzz target drives, shared with `tests/fuzz_regressions.rs` (included
//! there with `#[path]`) so the regression tests run exactly what the fuzzer ran.

use clap::ValueEnum;
use netstat::report::{self, Format, Report};

/// Bytes → spec → graph → analysis → every report format.
///
/// Returns the spec error, or the rendered reports (one per [`Format`]). Panics only when an
/// invariant breaks: an exporter fails, JSON output does not parse back, or the analysis lost a
/// layer — which the fuzzer then reports as a crash.
pub fn run(data: &[u8]) -> Result<Vec<Vec<u8>>, netstat::error::SpecError> {
    let spec = netstat::spec::parse_bytes("fuzz.yaml", data)?;
    let n = spec.layers.len();
    let analysis = netstat::analysis::analyze(spec)?;
    assert_eq!(analysis.layers.len(), n, "every layer is analysed once");
    let r = Report::new(&analysis);
    let mut outs = Vec::new();
    for &format in Format::value_variants() {
        let mut buf = Vec::new();
        report::write(&r, format, &mut buf).expect("writing to memory cannot fail");
        if format == Format::Json {
            let v: serde_json::Value = serde_json::from_slice(&buf).expect("JSON report parses back");
            assert_eq!(v["layers"].as_array().map(Vec::len), Some(n));
        }
        outs.push(buf);
    }
    Ok(outs)
}
