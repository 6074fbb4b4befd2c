//! `--convention` and `--explain`: a peer's count of a network, layer by layer, and which terms
//! it adds to or drops from netstat's, in every [`Format`]. The counting is
//! [`crate::conventions`]; this module only lays it out.

use super::grid::Grid;
use super::units::count;
use super::Format;
use crate::conventions::Counted;
use std::collections::BTreeMap;
use std::io::Write;

fn signed(v: i128, human: bool) -> String {
    match (v, human) {
        (0, true) => "0".into(),
        (v, true) if v > 0 => format!("+{}", count(v as u64)),
        (v, true) => format!("-{}", count(v.unsigned_abs() as u64)),
        (v, false) => v.to_string(),
    }
}

fn num(v: u64, human: bool) -> String {
    if human {
        count(v)
    } else {
        v.to_string()
    }
}

/// Per rule: (layers, Σ MACs) of one convention, in rule-name order.
fn by_rule(c: &Counted) -> BTreeMap<&'static str, (usize, i128)> {
    let mut m: BTreeMap<&'static str, (usize, i128)> = BTreeMap::new();
    for t in c.layers.iter().flat_map(|l| &l.terms) {
        let e = m.entry(t.rule).or_default();
        e.0 += 1;
        e.1 += t.macs;
    }
    m
}

/// The summary lines under a table: each convention's total and its terms by rule.
fn summary(counted: &[Counted]) -> Vec<String> {
    let mut out = Vec::new();
    for c in counted {
        let mut line = format!("{}: {}", c.convention.label(), count(c.macs));
        let rules: Vec<String> = by_rule(c)
            .into_iter()
            .map(|(r, (n, m))| format!("{r} {} ({n} layer{})", signed(m, true), if n == 1 { "" } else { "s" }))
            .collect();
        if !rules.is_empty() {
            line.push_str(&format!(" = netstat {} {}", count(c.netstat_macs), rules.join(", ")));
        }
        if let Some(b) = c.forward_backward_bytes {
            line.push_str(&format!("; Forward/backward pass size {} B ({:.2} MB)", count(b), b as f64 / 1e6));
        }
        out.push(line);
    }
    out
}

/// The table of one convention (`explain`: with netstat's MACs and every term's reason).
pub fn grid_one(c: &Counted, explain: bool, human: bool) -> Grid {
    let conv = c.convention.name();
    let mut cols: Vec<(String, bool)> = vec![("layer".into(), false), ("kind".into(), false)];
    if explain {
        cols.push((if human { "netstat MACs".into() } else { "netstat_macs".into() }, true));
    }
    cols.push((if human { format!("{conv} MACs") } else { format!("{conv}_macs") }, true));
    cols.push((if human { "Δ".into() } else { "delta_macs".into() }, true));
    if explain {
        cols.push(("terms".into(), false));
    }
    let refs: Vec<(&str, bool)> = cols.iter().map(|(h, n)| (h.as_str(), *n)).collect();
    let mut g = Grid::new(&refs);
    for l in &c.layers {
        let d = i128::from(l.macs) - i128::from(l.netstat_macs);
        if l.macs == 0 && l.netstat_macs == 0 && l.terms.is_empty() {
            continue;
        }
        let mut row = vec![l.name.clone(), l.kind.clone()];
        if explain {
            row.push(num(l.netstat_macs, human));
        }
        row.push(num(l.macs, human));
        row.push(signed(d, human));
        if explain {
            row.push(
                l.terms
                    .iter()
                    .map(|t| format!("{} {}: {}", t.rule, signed(t.macs, true), t.why))
                    .collect::<Vec<_>>()
                    .join("; "),
            );
        }
        g.rows.push(row);
    }
    let mut total = vec!["total".into(), String::new()];
    if explain {
        total.push(num(c.netstat_macs, human));
    }
    total.push(num(c.macs, human));
    total.push(signed(i128::from(c.macs) - i128::from(c.netstat_macs), human));
    if explain {
        total.push(String::new());
    }
    g.total = Some(total);
    g
}

/// All four conventions side by side (`--explain` without `--convention`).
pub fn grid_all(counted: &[Counted], human: bool) -> Grid {
    let mut cols: Vec<(String, bool)> = vec![("layer".into(), false), ("kind".into(), false)];
    for c in counted {
        cols.push((if human { c.convention.name().to_owned() } else { format!("{}_macs", c.convention.name()) }, true));
    }
    cols.push(("terms".into(), false));
    let refs: Vec<(&str, bool)> = cols.iter().map(|(h, n)| (h.as_str(), *n)).collect();
    let mut g = Grid::new(&refs);
    for (i, l) in counted[0].layers.iter().enumerate() {
        if counted.iter().all(|c| c.layers[i].macs == 0) {
            continue;
        }
        let mut row = vec![l.name.clone(), l.kind.clone()];
        row.extend(counted.iter().map(|c| num(c.layers[i].macs, human)));
        let terms: Vec<String> = counted
            .iter()
            .flat_map(|c| {
                c.layers[i]
                    .terms
                    .iter()
                    .map(move |t| format!("{}: {} {}", c.convention.name(), t.rule, signed(t.macs, true)))
            })
            .collect();
        row.push(terms.join("; "));
        g.rows.push(row);
    }
    let mut total = vec!["total".into(), String::new()];
    total.extend(counted.iter().map(|c| num(c.macs, human)));
    total.push(String::new());
    g.total = Some(total);
    g
}

/// Write `counted` (one convention, or all four side by side when `counted.len() > 1`).
pub fn write(
    name: &str,
    counted: &[Counted],
    explain: bool,
    format: Format,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let grid = |human| if counted.len() > 1 { grid_all(counted, human) } else { grid_one(&counted[0], explain, human) };
    let title = if counted.len() > 1 {
        format!("{name}: MACs as netstat, torchinfo, fvcore and ptflops count them")
    } else {
        format!("{name}: {}", counted[0].convention.label())
    };
    let lines = summary(counted);
    match format {
        Format::Table => {
            writeln!(out, "{title}")?;
            grid(true).write_table(out)?;
            for l in lines {
                writeln!(out, "{l}")?;
            }
            Ok(())
        }
        Format::Markdown => {
            writeln!(out, "### {}\n", super::grid::md_text(&title))?;
            grid(true).write_markdown(out)?;
            writeln!(out)?;
            for l in lines {
                writeln!(out, "- {l}")?;
            }
            Ok(())
        }
        Format::Csv => grid(false).write_csv(out),
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, &serde_json::json!({ "spec": name, "conventions": counted }))?;
            writeln!(out)
        }
        Format::Latex => {
            writeln!(out, "% {title} (netstat)")?;
            for l in lines {
                writeln!(out, "% {l}")?;
            }
            writeln!(out, "% needs \\usepackage{{booktabs}}")?;
            grid(true).write_latex(out)
        }
        Format::Html => out.write_all(super::html::grid_page(&title, &grid(true), &lines).as_bytes()),
    }
}
