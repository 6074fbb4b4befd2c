//! CSV: raw integers, one row per layer plus a `total` row; shares are left to the reader.

use super::{all_columns, Report, RowRef};
use std::io::Write;

/// Write the CSV form of `report`.
pub fn write(report: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    let mut w = ::csv::Writer::from_writer(out);
    let cols: Vec<_> = all_columns(report).into_iter().filter_map(|c| c.raw.map(|f| (c.csv_header, f))).collect();
    w.write_record(cols.iter().map(|(h, _)| *h))?;
    for l in &report.layers {
        w.write_record(cols.iter().map(|(_, f)| f(RowRef::Layer(l))))?;
    }
    w.write_record(cols.iter().map(|(_, f)| f(RowRef::Total(&report.totals))))?;
    w.flush()
}
