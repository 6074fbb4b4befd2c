//! The terminal table (comfy-table): human units, numbers right-aligned, at most 80 columns
//! for AlexNet-sized names; the totals line and the headline below it.

use super::{human_columns, Report, RowRef};
use comfy_table::{CellAlignment, ContentArrangement, Table};
use std::io::Write;

/// Width the table is laid out for.
pub const WIDTH: u16 = 80;

/// Write the table form of `report`.
pub fn write(report: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    let cols = human_columns(report);
    let mut t = Table::new();
    // No borders; one line under the header; columns one space apart.
    t.load_preset(comfy_table::presets::NOTHING)
        .set_style(comfy_table::TableComponent::HeaderLines, '─')
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_width(WIDTH)
        .set_header(cols.iter().map(|c| c.header));
    let totals = &report.totals;
    for l in &report.layers {
        t.add_row(cols.iter().map(|c| (c.human)(RowRef::Layer(l), totals)));
    }
    t.add_row(cols.iter().map(|c| (c.human)(RowRef::Total(totals), totals)));
    for (i, c) in cols.iter().enumerate() {
        if let Some(col) = t.column_mut(i) {
            col.set_padding((0, 1));
            if c.numeric {
                col.set_cell_alignment(CellAlignment::Right);
            }
        }
    }
    writeln!(out, "{} — input {}, batch {}", report.spec.name, report.input_desc(), report.spec.batch)?;
    writeln!(out, "{t}")?;
    writeln!(out, "{}", report.totals_line())?;
    writeln!(out, "{}", report.headline())?;
    if let Some(m) = &report.memory {
        writeln!(out, "{}", m.summary_lines())?;
    }
    for line in report.extra_lines() {
        writeln!(out, "{line}")?;
    }
    writeln!(out, "MACs: conv/linear multiply-accumulates (torchvision _ops); FLOPs = 2·MACs;")?;
    writeln!(out, "%par, %MAC: share of total params and MACs; out: output bytes, views included")
}
