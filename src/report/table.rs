//! The terminal table (comfy-table): human units, numbers right-aligned, laid out for the
//! terminal's width; the totals line and the headline below it.
//!
//! Width: on standard output, `COLUMNS` when it is set to a number, else the terminal's when
//! standard output is one, else [`WIDTH`] (80; so pipes and tests get the same table
//! everywhere); in a file (`-o`), [`WIDTH`]. A table
//! wider than that first leaves out columns in [`DROP_ORDER`] (unless `--columns` chose them),
//! naming them under the table; if it is still too wide, comfy-table's dynamic arrangement wraps
//! the text columns (names, kinds, shapes), never a number.

use super::{human_columns, Report, RowRef};
use comfy_table::{CellAlignment, ColumnConstraint, ContentArrangement, Table};
use std::io::Write;

/// Width the table is laid out for when neither `COLUMNS` nor a terminal gives one.
pub const WIDTH: u16 = 80;

/// Narrowest width honoured (a smaller `COLUMNS` is taken as this).
pub const MIN_WIDTH: u16 = 40;

/// Columns left out, in this order, while the table is wider than the width: FLOPs first (it is
/// 2·MACs, said under the table), then buffers, the kind (PyTorch module paths such as
/// `layer1.0.bn1` name it already), the two shares, the output bytes, the roofline's bytes moved and
/// intensity.
pub const DROP_ORDER: &[&str] = &["FLOPs", "buffers", "kind", "%par", "%MAC", "out", "moved", "FLOP/B"];

/// The width tables are laid out for: `COLUMNS` if set to a number (at least [`MIN_WIDTH`]),
/// else the terminal's width when standard output is a terminal, else [`WIDTH`].
pub fn width() -> u16 {
    if let Some(n) = std::env::var("COLUMNS").ok().and_then(|c| c.trim().parse::<u16>().ok()) {
        return n.max(MIN_WIDTH);
    }
    match terminal_size::terminal_size_of(std::io::stdout()) {
        Some((terminal_size::Width(w), _)) => w.max(MIN_WIDTH),
        None => WIDTH,
    }
}

/// Write the table form of `report`, laid out for [`WIDTH`] (a file, or any writer; the command
/// line lays a table on standard output out for [`width`] with [`write_width`]).
pub fn write(report: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    write_width(report, WIDTH, out)
}

/// Write the table form of `report`, laid out for `width` columns of characters.
pub fn write_width(report: &Report, width: u16, out: &mut dyn Write) -> std::io::Result<()> {
    let mut cols = human_columns(report);
    let totals = &report.totals;
    let rows: Vec<RowRef> =
        report.layers.iter().map(RowRef::Layer).chain(std::iter::once(RowRef::Total(totals))).collect();
    // Each column's width: its widest cell or header, plus one space of padding.
    let col_width = |c: &super::Column| -> usize {
        rows.iter().map(|r| (c.human)(*r, totals).chars().count()).max().unwrap_or(0).max(c.header.chars().count()) + 1
    };
    let mut widths: Vec<usize> = cols.iter().map(|c| col_width(c)).collect();
    let mut dropped = Vec::new();
    if report.columns.is_none() {
        for name in DROP_ORDER {
            if widths.iter().sum::<usize>() <= usize::from(width) {
                break;
            }
            if let Some(i) = cols.iter().position(|c| c.header == *name) {
                cols.remove(i);
                widths.remove(i);
                dropped.push(*name);
            }
        }
    }
    let fits = widths.iter().sum::<usize>() <= usize::from(width);
    let mut t = Table::new();
    // No borders; one line under the header; columns one space apart.
    t.load_preset(comfy_table::presets::NOTHING)
        .set_style(comfy_table::TableComponent::HeaderLines, '─')
        .set_content_arrangement(if fits { ContentArrangement::Disabled } else { ContentArrangement::Dynamic })
        .set_width(width)
        .set_header(cols.iter().map(|c| c.header));
    for r in &rows {
        t.add_row(cols.iter().map(|c| (c.human)(*r, totals)));
    }
    for (i, c) in cols.iter().enumerate() {
        if let Some(col) = t.column_mut(i) {
            col.set_padding((0, 1));
            if c.numeric {
                col.set_cell_alignment(CellAlignment::Right);
                // A number is never wrapped.
                col.set_constraint(ColumnConstraint::ContentWidth);
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
    writeln!(out, "%par, %MAC: share of total params and MACs; out: output bytes, views included")?;
    if !dropped.is_empty() {
        writeln!(out, "columns left out to fit {width} characters: {}", dropped.join(", "))?;
        writeln!(out, "  (--columns NAME,… picks the columns; COLUMNS=N sets the width)")?;
    }
    Ok(())
}
