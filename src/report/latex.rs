//! LaTeX: a booktabs `tabular` of the per-layer report (human units, the same columns as the
//! Markdown table), ready for `\input{alexnet.tex}` inside a `table` environment. Needs
//! `\usepackage{booktabs}`. The spec and the counting convention go in `%` comments above it.

use super::grid::Grid;
use super::{human_columns, Report, RowRef};
use std::io::Write;

/// The report's human columns as a [`Grid`] (layers, then the totals row).
pub fn grid(report: &Report) -> Grid {
    let cols = human_columns(report);
    let mut g = Grid::new(&cols.iter().map(|c| (c.header, c.numeric)).collect::<Vec<_>>());
    let t = &report.totals;
    g.rows = report.layers.iter().map(|l| cols.iter().map(|c| (c.human)(RowRef::Layer(l), t)).collect()).collect();
    g.total = Some(cols.iter().map(|c| (c.human)(RowRef::Total(t), t)).collect());
    g
}

/// Write the LaTeX form of `report`.
pub fn write(report: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "% {} -- input {}, batch {} (netstat)", report.spec.name, report.input_desc(), report.spec.batch)?;
    for line in report.totals_line().lines() {
        writeln!(out, "% {line}")?;
    }
    for line in report.extra_lines() {
        writeln!(out, "% {line}")?;
    }
    if let Some(m) = &report.memory {
        for line in m.summary_lines().lines() {
            writeln!(out, "% {}", line.trim_start())?;
        }
    }
    writeln!(out, "% MACs: conv/linear multiply-accumulates (torchvision _ops); FLOPs = 2 MACs; out: output bytes, views included")?;
    writeln!(out, "% needs \\usepackage{{booktabs}}")?;
    grid(report).write_latex(out)
}
