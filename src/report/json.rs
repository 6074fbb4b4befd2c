//! JSON: the [`Report`] as is, pretty-printed, raw integers.
//!
//! Schema (version 2): `{"netstat_version", "schema_version", "spec": {"name", "input",
//! "input_dtype", "batch", "dtype"}, "layers": [{"name", "kind", "output_shape", "params",
//! "buffers", "macs", "flops", "output_bytes"}], "totals": {"params", "buffers", "macs",
//! "flops", "output_bytes", "input_bytes", "param_bytes"}}`. Version 1 called `output_bytes`
//! `activation_bytes`; later versions add fields only.

use super::Report;
use std::io::Write;

/// Write the JSON form of `report`, with a trailing newline.
pub fn write(report: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    // Serialised into a Vec first, then written once: serde_json writes many small pieces, and
    // each through `dyn Write` is a call that cannot be inlined (a tenth of a 10,000-layer run).
    let mut buf = Vec::with_capacity(256 + 256 * report.layers.len());
    serde_json::to_writer_pretty(&mut buf, report)?;
    buf.push(b'\n');
    out.write_all(&buf)
}
