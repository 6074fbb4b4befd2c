//! A plain table of already-formatted cells, written as a terminal table, Markdown, CSV or a
//! LaTeX booktabs tabular. Used by formats whose rows are not [`super::COLUMNS`] (the diff, the
//! convention breakdown, the reports index) and by the LaTeX form of a report.

use comfy_table::{CellAlignment, ContentArrangement, Table};
use std::io::Write;

/// Headers, alignment and rows of human-formatted cells; the last row may be a totals row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Grid {
    /// Column headers.
    pub headers: Vec<String>,
    /// Right-aligned (numeric) columns.
    pub numeric: Vec<bool>,
    /// Body rows; every row has `headers.len()` cells.
    pub rows: Vec<Vec<String>>,
    /// A totals row, set apart (bold in Markdown, after a rule in LaTeX).
    pub total: Option<Vec<String>>,
    /// Columns whose cells are already Markdown (links built from escaped parts), written as
    /// they are; every other cell is escaped ([`md_text`]). Empty: none.
    pub markdown_raw: Vec<bool>,
}

impl Grid {
    /// A grid with these `(header, numeric)` columns and no rows.
    pub fn new(cols: &[(&str, bool)]) -> Grid {
        Grid {
            headers: cols.iter().map(|c| c.0.to_owned()).collect(),
            numeric: cols.iter().map(|c| c.1).collect(),
            ..Grid::default()
        }
    }

    /// Write as a borderless terminal table (comfy-table), numbers right-aligned.
    pub fn write_table(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let mut t = Table::new();
        t.load_preset(comfy_table::presets::NOTHING)
            .set_style(comfy_table::TableComponent::HeaderLines, '─')
            .set_content_arrangement(ContentArrangement::Disabled)
            .set_header(self.headers.clone());
        for r in self.rows.iter().chain(self.total.iter()) {
            // A control character in a cell would move the cursor or forge a line.
            t.add_row(r.iter().map(|c| crate::error::escape_control(c).into_owned()).collect::<Vec<_>>());
        }
        for (i, n) in self.numeric.iter().enumerate() {
            if let Some(col) = t.column_mut(i) {
                col.set_padding((0, 1));
                if *n {
                    col.set_cell_alignment(CellAlignment::Right);
                }
            }
        }
        writeln!(out, "{t}")
    }

    /// Write as a GitHub-flavoured Markdown table; the totals row in bold.
    pub fn write_markdown(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let md = md_text;
        let raw = |i: usize| self.markdown_raw.get(i).copied().unwrap_or(false);
        writeln!(out, "| {} |", self.headers.iter().map(|h| md(h)).collect::<Vec<_>>().join(" | "))?;
        let align: Vec<&str> = self.numeric.iter().map(|n| if *n { "---:" } else { "---" }).collect();
        writeln!(out, "|{}|", align.join("|"))?;
        for r in &self.rows {
            let cells: Vec<String> =
                r.iter().enumerate().map(|(i, c)| if raw(i) { c.clone() } else { md(c) }).collect();
            writeln!(out, "| {} |", cells.join(" | "))?;
        }
        if let Some(t) = &self.total {
            let cells: Vec<String> =
                t.iter().map(|c| if c.is_empty() { String::new() } else { format!("**{}**", md(c)) }).collect();
            writeln!(out, "| {} |", cells.join(" | "))?;
        }
        Ok(())
    }

    /// Write as CSV (the cells as they are: callers put raw integers in CSV grids).
    pub fn write_csv(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let mut w = ::csv::Writer::from_writer(out);
        w.write_record(&self.headers)?;
        for r in self.rows.iter().chain(self.total.iter()) {
            w.write_record(r)?;
        }
        w.flush()
    }

    /// Write as a LaTeX `tabular` with booktabs rules (`\toprule`, `\midrule`, `\bottomrule`),
    /// ready for `\input` inside a `table` environment; needs `\usepackage{booktabs}`.
    pub fn write_latex(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let spec: String = self.numeric.iter().map(|n| if *n { 'r' } else { 'l' }).collect();
        writeln!(out, "\\begin{{tabular}}{{{spec}}}")?;
        writeln!(out, "\\toprule")?;
        writeln!(out, "{} \\\\", self.headers.iter().map(|h| tex(h)).collect::<Vec<_>>().join(" & "))?;
        writeln!(out, "\\midrule")?;
        for r in &self.rows {
            writeln!(out, "{} \\\\", r.iter().map(|c| tex(c)).collect::<Vec<_>>().join(" & "))?;
        }
        if let Some(t) = &self.total {
            writeln!(out, "\\midrule")?;
            let cells: Vec<String> = t
                .iter()
                .map(|c| if c.is_empty() { String::new() } else { format!("\\textbf{{{}}}", tex(c)) })
                .collect();
            writeln!(out, "{} \\\\", cells.join(" & "))?;
        }
        writeln!(out, "\\bottomrule")?;
        writeln!(out, "\\end{{tabular}}")
    }
}

/// Escape text for LaTeX: the ten special characters, `·` and `×` (as math), `−` (as `-`),
/// Text for a Markdown table cell or heading: a name or path from a spec cannot break the table
/// (`|`), start a new line (control characters are written as escapes), open a link (`[`, `]`),
/// or carry raw HTML (`<` and `&` as entities: `<img onerror=…>` stays text). Backquotes stay:
/// netstat's own cells use code spans, and one in a name changes only how it looks.
pub fn md_text(s: &str) -> String {
    let s = crate::error::escape_control(s);
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' | '|' | '[' | ']' => {
                out.push('\\');
                out.push(c);
            }
            // `<` opens every HTML tag and `&` every entity; a lone `>` (as in `->`) opens nothing.
            '<' => out.push_str("&lt;"),
            '&' => out.push_str("&amp;"),
            c => out.push(c),
        }
    }
    out
}

/// and the `x` between the numbers of a shape like `1x96x54x54` becomes `$\times$`.
pub fn tex(s: &str) -> String {
    let s = &crate::error::escape_control(s);
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len() + 8);
    for (i, &c) in chars.iter().enumerate() {
        let digit = |j: Option<usize>| j.and_then(|j| chars.get(j)).is_some_and(|c| c.is_ascii_digit());
        match c {
            '\\' => out.push_str("\\textbackslash{}"),
            '&' | '%' | '$' | '#' | '_' | '{' | '}' => {
                out.push('\\');
                out.push(c);
            }
            '~' => out.push_str("\\textasciitilde{}"),
            '^' => out.push_str("\\textasciicircum{}"),
            '·' => out.push_str("$\\cdot$"),
            '×' => out.push_str("$\\times$"),
            '−' => out.push('-'),
            'Δ' => out.push_str("$\\Delta$"),
            '→' => out.push_str("$\\rightarrow$"),
            'µ' | 'μ' => out.push_str("$\\mu$"),
            'x' if digit(i.checked_sub(1)) && digit(Some(i + 1)) => out.push_str("$\\times$"),
            c if c.is_ascii() => out.push(c),
            // Anything else outside ASCII would need inputenc/fontenc care: keep it ASCII.
            _ => out.push('?'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tex_escapes_specials_and_shapes() {
        assert_eq!(tex("layer1.0_conv"), "layer1.0\\_conv");
        assert_eq!(tex("%par"), "\\%par");
        assert_eq!(tex("1x96x54x54"), "1$\\times$96$\\times$54$\\times$54");
        // an `x` not between digits stays a letter
        assert_eq!(tex("max_pool2d"), "max\\_pool2d");
        assert_eq!(tex("a&b{c}#$"), "a\\&b\\{c\\}\\#\\$");
        // time units: micro (U+00B5 and U+03BC) as math mu, not '?'
        assert_eq!(tex("3.0 µs"), "3.0 $\\mu$s");
        assert_eq!(tex("3.0 μs"), "3.0 $\\mu$s");
    }

    #[test]
    fn markdown_escapes_pipes_and_bolds_totals() {
        let mut g = Grid::new(&[("name", false), ("n", true)]);
        g.rows.push(vec!["a|b".into(), "1".into()]);
        g.total = Some(vec!["total".into(), "".into()]);
        let mut out = Vec::new();
        g.write_markdown(&mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "| name | n |\n|---|---:|\n| a\\|b | 1 |\n| **total** |  |\n");
    }
}
