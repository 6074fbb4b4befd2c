//! Markdown: a GitHub-flavoured table with human units, numbers right-aligned, then the totals
//! and the headline as text.

use super::{human_columns, Report, RowRef};
use std::io::Write;

/// Escape `|` so a cell cannot break the table.
fn cell(s: &str) -> String {
    s.replace('|', "\\|")
}

/// Write the Markdown form of `report`.
pub fn write(report: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    let cols = human_columns(report);
    writeln!(out, "### {} — input {}, batch {}\n", cell(&report.spec.name), report.input_desc(), report.spec.batch)?;
    writeln!(out, "| {} |", cols.iter().map(|c| c.header).collect::<Vec<_>>().join(" | "))?;
    writeln!(out, "|{}|", cols.iter().map(|c| if c.numeric { "---:" } else { "---" }).collect::<Vec<_>>().join("|"))?;
    let t = &report.totals;
    for l in &report.layers {
        let cells: Vec<String> = cols.iter().map(|c| cell(&(c.human)(RowRef::Layer(l), t))).collect();
        writeln!(out, "| {} |", cells.join(" | "))?;
    }
    let cells: Vec<String> = cols
        .iter()
        .map(|c| format!("**{}**", cell(&(c.human)(RowRef::Total(t), t))))
        .map(|s| if s == "****" { String::new() } else { s })
        .collect();
    writeln!(out, "| {} |", cells.join(" | "))?;
    writeln!(out, "\n{}.\n\n{}.", report.totals_line(), report.headline())?;
    if let Some(m) = &report.memory {
        writeln!(out, "\n{}", m.summary_lines().replace(",\n  ", ", ").replace("\n  ", "; ").replace('\n', "  \n"))?;
    }
    for line in report.extra_lines() {
        writeln!(out, "\n{line}")?;
    }
    writeln!(out, "\nMACs count conv and linear multiply-accumulates only (torchvision `_ops`); FLOPs = 2·MACs; out = output bytes, views and in-place outputs included.")
}
