//! Markdown: a GitHub-flavoured table with human units, numbers right-aligned, then the totals
//! and the headline as text.

use super::{human_columns, Report, RowRef};
use std::io::Write;

/// A cell or heading: escaped for Markdown ([`super::grid::md_text`]).
fn cell(s: &str) -> String {
    super::grid::md_text(s)
}

/// Lines of prose, each escaped like a cell, the line breaks kept.
fn prose(s: &str) -> String {
    s.lines().map(cell).collect::<Vec<_>>().join("\n")
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
    // The prose lines name layers: escaped like the cells.
    writeln!(out, "\n{}.\n\n{}.", prose(&report.totals_line()), prose(&report.headline()))?;
    if let Some(m) = &report.memory {
        let lines = m.summary_lines().replace(",\n  ", ", ").replace("\n  ", "; ");
        let lines: Vec<String> = lines.lines().map(cell).collect();
        writeln!(out, "\n{}", lines.join("  \n"))?;
    }
    for line in report.extra_lines() {
        writeln!(out, "\n{}", prose(&line))?;
    }
    writeln!(out, "\nMACs count conv and linear multiply-accumulates only (torchvision `_ops`); FLOPs = 2·MACs; act = output bytes.")
}
