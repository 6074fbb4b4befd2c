//! The ONNX pipeline the `onnx` fuzz target drives, shared with `tests/fuzz_regressions.rs`
//! (included there with `#[path]`) so the regression tests run exactly what the fuzzer ran.

/// Bytes → ONNX import → spec → analysis → Markdown report, with `--allow-unknown` and
/// without. Returns the import or spec error as text (an attribute the spec reader refuses,
/// such as `group: 0`, is a located error in the imported YAML), or the report.
pub fn run(data: &[u8]) -> Result<Vec<u8>, String> {
    let mut last = Err(String::new());
    for allow_unknown in [false, true] {
        let opts = netstat::onnx::ImportOptions { allow_unknown, ..Default::default() };
        let imported = netstat::onnx::import_bytes("fuzz.onnx", data, &opts)?;
        let spec =
            netstat::spec::parse_bytes("fuzz.onnx (imported)", imported.yaml.as_bytes()).map_err(|e| e.to_string())?;
        let analysis = netstat::analysis::analyze(spec).map_err(|e| e.to_string())?;
        let r = netstat::report::Report::new(&analysis);
        let mut buf = Vec::new();
        netstat::report::write(&r, netstat::report::Format::Markdown, &mut buf).expect("writing to memory cannot fail");
        last = Ok(buf);
    }
    last
}
