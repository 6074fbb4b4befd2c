//! JSON: the [`Report`] as is, pretty-printed, raw integers.
//!
//! Schema (version 1): `{"netstat_version", "schema_version", "spec": {"name", "input",
//! "input_dtype", "batch", "dtype"}, "layers": [{"name", "kind", "output_shape", "params",
//! "buffers", "macs", "flops", "activation_bytes"}], "totals": {"params", "buffers", "macs",
//! "flops", "activation_bytes", "input_bytes", "param_bytes"}}`. Later versions add fields only.

use super::Report;
use std::io::Write;

/// Write the JSON form of `report`, with a trailing newline.
pub fn write(report: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, report)?;
    writeln!(out)
}
