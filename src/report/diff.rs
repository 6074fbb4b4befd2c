//! `netstat diff A.yaml B.yaml`: per-layer and total differences in params, MACs and output
//! bytes between two reports, layers aligned by name, in every [`Format`].
//!
//! Alignment: rows follow A's execution order; a layer only in B is placed after the row of the
//! B layer before it. A layer in one spec only has empty cells (CSV) / `null` (JSON) for the other
//! side and counts as 0 in the difference. Δ = B − A.

use super::grid::Grid;
use super::units::{bytes, count, si, signed_percent};
use super::{Format, LayerRow, Report, SpecInfo, TotalsRow, SCHEMA_VERSION};
use serde::Serialize;
use std::collections::HashMap;
use std::io::Write;

/// One quantity on both sides: A's value, B's value (absent when the layer is missing there),
/// and `delta` = B − A (absent sides count as 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Pair {
    /// Value in A.
    pub a: Option<u64>,
    /// Value in B.
    pub b: Option<u64>,
    /// B − A.
    pub delta: i128,
}

impl Pair {
    fn new(a: Option<u64>, b: Option<u64>) -> Pair {
        Pair { a, b, delta: i128::from(b.unwrap_or(0)) - i128::from(a.unwrap_or(0)) }
    }
}

/// One aligned layer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiffRow {
    /// Layer name (the alignment key).
    pub name: String,
    /// Kind in A, if the layer is there.
    pub kind_a: Option<String>,
    /// Kind in B, if the layer is there.
    pub kind_b: Option<String>,
    /// Trainable parameters (elements).
    pub params: Pair,
    /// Multiply-accumulates over the batch.
    pub macs: Pair,
    /// Output bytes.
    pub output_bytes: Pair,
}

/// Totals of both sides.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiffTotals {
    /// Σ params.
    pub params: Pair,
    /// Σ MACs.
    pub macs: Pair,
    /// Σ output bytes.
    pub output_bytes: Pair,
    /// Parameter bytes in each spec's dtype.
    pub param_bytes: Pair,
    /// Inference peak ([`crate::memory`]), when both reports carry memory figures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inference_peak_bytes: Option<Pair>,
    /// Training-step peak (default step: Adam), when both reports carry memory figures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub training_peak_bytes: Option<Pair>,
}

/// The difference of two reports (versioned like [`Report`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiffReport {
    /// netstat's version.
    pub netstat_version: String,
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Spec A.
    pub a: SpecInfo,
    /// Spec B.
    pub b: SpecInfo,
    /// Aligned layers.
    pub layers: Vec<DiffRow>,
    /// Totals.
    pub totals: DiffTotals,
    /// The spec files of A and B, for the header (not in JSON: `a` and `b` describe the specs).
    #[serde(skip)]
    pub files: Option<(String, String)>,
    /// `--changed-only`: write only the layers that differ ([`DiffRow::changed`]); totals and
    /// the summary still count every layer.
    #[serde(skip)]
    pub changed_only: bool,
}

impl DiffRow {
    /// Whether the layer's params, MACs or output bytes differ, or it is in one spec only.
    pub fn changed(&self) -> bool {
        self.params.delta != 0
            || self.macs.delta != 0
            || self.output_bytes.delta != 0
            || self.kind_a.is_none()
            || self.kind_b.is_none()
    }
}

/// A pair of aligned rows: A's layer, B's layer of the same name (either may be missing).
type Aligned<'a> = (Option<&'a LayerRow>, Option<&'a LayerRow>);

/// Align `b`'s layers with `a`'s by name (see the module doc): A's rows in A's order, each with
/// B's layer of the same name; a layer only in B follows the row of the B layer before it (at
/// the top if none came before). Names are unique within a spec, so a B-only layer can only
/// follow a row that A has: one pass with hash maps, O(n) (a linear search and `Vec::insert` per
/// layer took over a minute on 100,000 layers).
fn align<'a>(a: &'a [LayerRow], b: &'a [LayerRow]) -> Vec<Aligned<'a>> {
    // The same layer names in the same order (two variants of one network): each layer pairs
    // with its namesake and nothing is inserted, without hashing every name twice.
    if a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.name == y.name) {
        return a.iter().zip(b).map(|(x, y)| (Some(x), Some(y))).collect();
    }
    let in_a: HashMap<&str, usize> = a.iter().enumerate().map(|(i, l)| (l.name.as_str(), i)).collect();
    let in_b: HashMap<&str, &LayerRow> = b.iter().map(|l| (l.name.as_str(), l)).collect();
    let mut head = Vec::new();
    let mut after: Vec<Vec<&LayerRow>> = vec![Vec::new(); a.len()];
    let mut last = None; // A's index of the last B layer that A has
    for l in b {
        match (in_a.get(l.name.as_str()), last) {
            (Some(&i), _) => last = Some(i),
            (None, Some(i)) => after[i].push(l),
            (None, None) => head.push(l),
        }
    }
    let mut rows: Vec<Aligned> = head.into_iter().map(|l| (None, Some(l))).collect();
    for (l, extra) in a.iter().zip(after) {
        rows.push((Some(l), in_b.get(l.name.as_str()).copied()));
        rows.extend(extra.into_iter().map(|x| (None, Some(x))));
    }
    rows
}

impl DiffReport {
    /// The difference from `a` to `b`.
    pub fn new(a: &Report, b: &Report) -> DiffReport {
        let layers = align(&a.layers, &b.layers)
            .into_iter()
            .map(|(x, y)| DiffRow {
                name: x.or(y).map(|l| l.name.clone()).unwrap_or_default(),
                kind_a: x.map(|l| l.kind.clone()),
                kind_b: y.map(|l| l.kind.clone()),
                params: Pair::new(x.map(|l| l.params), y.map(|l| l.params)),
                macs: Pair::new(x.map(|l| l.macs), y.map(|l| l.macs)),
                output_bytes: Pair::new(x.map(|l| l.output_bytes), y.map(|l| l.output_bytes)),
            })
            .collect();
        let t = |f: fn(&TotalsRow) -> u64| Pair::new(Some(f(&a.totals)), Some(f(&b.totals)));
        let mem = |f: fn(&crate::memory::Memory) -> u64| match (&a.memory, &b.memory) {
            (Some(x), Some(y)) => Some(Pair::new(Some(f(&x.figures)), Some(f(&y.figures)))),
            _ => None,
        };
        DiffReport {
            netstat_version: env!("CARGO_PKG_VERSION").to_owned(),
            schema_version: SCHEMA_VERSION,
            a: a.spec.clone(),
            b: b.spec.clone(),
            layers,
            totals: DiffTotals {
                params: t(|t| t.params),
                macs: t(|t| t.macs),
                output_bytes: t(|t| t.output_bytes),
                param_bytes: t(|t| t.param_bytes),
                inference_peak_bytes: mem(|m| m.inference_peak_bytes),
                training_peak_bytes: mem(|m| m.training_peak_bytes),
            },
            files: None,
            changed_only: false,
        }
    }

    /// The report with the spec files named in its header.
    pub fn with_files(mut self, a: &str, b: &str) -> DiffReport {
        self.files = Some((a.to_owned(), b.to_owned()));
        self
    }

    /// The report writing only the layers that differ (`--changed-only`).
    pub fn with_changed_only(mut self, on: bool) -> DiffReport {
        self.changed_only = on;
        self
    }

    /// The rows written: every layer, or with `--changed-only` those that differ.
    fn shown(&self) -> impl Iterator<Item = &DiffRow> {
        self.layers.iter().filter(move |r| !self.changed_only || r.changed())
    }

    /// Layers whose params, MACs or output bytes differ (or that are in one spec only).
    pub fn changed(&self) -> usize {
        self.layers.iter().filter(|r| r.changed()).count()
    }

    /// The table of `human` cells (params with thousands separators, MACs in K/M/G, output
    /// bytes in KiB/MiB, each Δ signed in the same unit) or raw cells (CSV: kind_a and kind_b
    /// apart, empty where a layer is absent).
    pub fn grid(&self, human: bool) -> Grid {
        let mut g = Grid::new(&[
            ("layer", false),
            ("kind", false),
            ("params A", true),
            ("params B", true),
            ("Δparams", true),
            ("MACs A", true),
            ("MACs B", true),
            ("ΔMACs", true),
            ("out A", true),
            ("out B", true),
            ("Δout", true),
        ]);
        if !human {
            g.headers = [
                "name",
                "kind_a",
                "kind_b",
                "params_a",
                "params_b",
                "params_delta",
                "macs_a",
                "macs_b",
                "macs_delta",
                "output_bytes_a",
                "output_bytes_b",
                "output_bytes_delta",
            ]
            .map(String::from)
            .to_vec();
        }
        let cells = |p: &Pair, unit: fn(u64) -> String| {
            let v = |x: Option<u64>| match (x, human) {
                (None, true) => "-".to_owned(),
                (None, false) => String::new(),
                (Some(x), true) => unit(x),
                (Some(x), false) => x.to_string(),
            };
            let d = if human { signed_in(p.delta, unit) } else { p.delta.to_string() };
            [v(p.a), v(p.b), d]
        };
        for r in self.shown() {
            let kind = match (&r.kind_a, &r.kind_b) {
                (Some(x), Some(y)) if x == y => x.clone(),
                (Some(x), Some(y)) => format!("{x} -> {y}"),
                (Some(x), None) => format!("{x} (A only)"),
                (None, Some(y)) => format!("{y} (B only)"),
                (None, None) => String::new(),
            };
            let mut row = if human {
                vec![r.name.clone(), kind]
            } else {
                vec![r.name.clone(), r.kind_a.clone().unwrap_or_default(), r.kind_b.clone().unwrap_or_default()]
            };
            row.extend(cells(&r.params, count));
            row.extend(cells(&r.macs, si));
            row.extend(cells(&r.output_bytes, bytes));
            g.rows.push(row);
        }
        let t = &self.totals;
        let mut row = vec!["total".to_owned(), String::new()];
        if !human {
            row.push(String::new());
        }
        row.extend(cells(&t.params, count));
        row.extend(cells(&t.macs, si));
        row.extend(cells(&t.output_bytes, bytes));
        g.total = Some(row);
        g
    }

    fn title(&self) -> String {
        match &self.files {
            Some((fa, fb)) => format!(
                "diff: A = {} ({}, {}) -> B = {} ({}, {})",
                self.a.name,
                // Paths come from the command line: a control character would forge a line.
                crate::error::escape_control(fa),
                self.a.input_desc(),
                self.b.name,
                crate::error::escape_control(fb),
                self.b.input_desc()
            ),
            None => format!(
                "diff: A = {} ({}) -> B = {} ({})",
                self.a.name,
                self.a.input_desc(),
                self.b.name,
                self.b.input_desc()
            ),
        }
    }

    /// The summary under the table, on up to three lines (layers that differ; totals; peaks).
    fn summary(&self) -> String {
        let t = &self.totals;
        let pct = |p: &Pair| match p.a {
            Some(a) if a > 0 && p.delta != 0 => format!(" ({})", signed_percent(p.delta as f64 * 100.0 / a as f64)),
            _ => String::new(),
        };
        let peaks = match (&t.inference_peak_bytes, &t.training_peak_bytes) {
            (Some(i), Some(tr)) => {
                format!(
                    ";\ninference peak {}{}, training peak {}{}",
                    signed_in(i.delta, bytes),
                    pct(i),
                    signed_in(tr.delta, bytes),
                    pct(tr)
                )
            }
            _ => String::new(),
        };
        let hidden = if self.changed_only { " (the others not shown: --changed-only)" } else { "" };
        format!(
            "{} of {} layers differ{hidden};\nparams {}{}, MACs {}{}, output bytes {}{}, param bytes {}{peaks}",
            self.changed(),
            self.layers.len(),
            signed_in(t.params.delta, count),
            pct(&t.params),
            signed_in(t.macs.delta, si),
            pct(&t.macs),
            signed_in(t.output_bytes.delta, bytes),
            pct(&t.output_bytes),
            signed_in(t.param_bytes.delta, bytes)
        )
    }

    /// Write in `format`.
    pub fn write(&self, format: Format, out: &mut dyn Write) -> std::io::Result<()> {
        match format {
            Format::Table => {
                writeln!(out, "{}", self.title())?;
                self.grid(true).write_table(out)?;
                writeln!(out, "{}", self.summary())?;
                writeln!(out, "Δ = B - A; out: output bytes; MACs: conv/linear multiply-accumulates (torchvision _ops)")
            }
            Format::Markdown => {
                writeln!(out, "### {}\n", super::grid::md_text(&self.title()))?;
                self.grid(true).write_markdown(out)?;
                writeln!(out, "\n{}.\n\nΔ = B − A; out = output bytes.", self.summary().replace('\n', " "))
            }
            Format::Csv => self.grid(false).write_csv(out),
            Format::Json => {
                if self.changed_only {
                    let shown = DiffReport { layers: self.shown().cloned().collect(), ..self.clone() };
                    serde_json::to_writer_pretty(&mut *out, &shown)?;
                } else {
                    serde_json::to_writer_pretty(&mut *out, self)?;
                }
                writeln!(out)
            }
            Format::Latex => {
                writeln!(out, "% {} (netstat)", self.title())?;
                for line in self.summary().lines() {
                    writeln!(out, "% {line}")?;
                }
                writeln!(out, "% needs \\usepackage{{booktabs}}")?;
                self.grid(true).write_latex(out)
            }
            Format::Html => {
                let lines: Vec<String> = self.summary().lines().map(str::to_owned).collect();
                out.write_all(super::html::grid_page(&self.title(), &self.grid(true), &lines).as_bytes())
            }
        }
    }
}

/// `x` in `unit` with its sign: `+1.23M`, `-254 KiB`, `0`.
fn signed_in(x: i128, unit: fn(u64) -> String) -> String {
    let abs = u64::try_from(x.unsigned_abs()).unwrap_or(u64::MAX);
    match x {
        0 => "0".to_owned(),
        x if x > 0 => format!("+{}", unit(abs)),
        _ => format!("-{}", unit(abs)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_never_read_minus_zero() {
        // -3,960 / 5,373,608 output bytes (alexnet → alexnet-d2l) = -0.074% → "-0.1%".
        assert_eq!(signed_percent(-3960.0 * 100.0 / 5_373_608.0), "-0.1%");
        // 1 / 10,000 = 0.01%: rounds to zero, but is not zero.
        assert_eq!(signed_percent(0.01), "+<0.1%");
        assert_eq!(signed_percent(-0.01), "-<0.1%");
        assert_eq!(signed_percent(0.0), "0.0%");
        assert_eq!(signed_percent(-8.04), "-8.0%");
        assert_eq!(signed_in(-4_056_030, si), "-4.06M");
        assert_eq!(signed_in(0, bytes), "0");
        // 3,960 B = 3.867 KiB.
        assert_eq!(signed_in(-3960, bytes), "-3.87 KiB");
    }

    fn row(name: &str, params: u64) -> LayerRow {
        LayerRow {
            name: name.into(),
            kind: "linear".into(),
            output_shape: vec![1, 1],
            params,
            frozen_params: 0,
            buffers: 0,
            macs: params,
            flops: 2 * params,
            output_bytes: 4,
            roofline: None,
        }
    }

    #[test]
    fn aligns_by_name_and_places_new_layers_after_their_predecessor() {
        let a = [row("a", 1), row("b", 2), row("c", 3)];
        let b = [row("a", 1), row("x", 5), row("c", 4)];
        let names: Vec<String> = align(&a, &b).iter().map(|r| r.0.or(r.1).unwrap().name.clone()).collect();
        assert_eq!(names, ["a", "x", "b", "c"]);
    }

    /// The quadratic alignment this module used before (a linear search and an insert per B
    /// layer), kept as the reference the linear one must reproduce.
    fn align_reference<'a>(a: &'a [LayerRow], b: &'a [LayerRow]) -> Vec<Aligned<'a>> {
        let find_b = |n: &str| b.iter().find(|l| l.name == n);
        let mut rows: Vec<Aligned> = a.iter().map(|l| (Some(l), find_b(&l.name))).collect();
        let mut at = 0;
        for l in b {
            match rows.iter().position(|r| r.0.or(r.1).is_some_and(|x| x.name == l.name)) {
                Some(p) => at = p + 1,
                None => {
                    rows.insert(at, (None, Some(l)));
                    at += 1;
                }
            }
        }
        rows
    }

    #[test]
    fn linear_alignment_equals_the_reference_on_shuffled_specs() {
        // B: a deterministic shuffle of some of A's names, dropped ones, and new ones anywhere
        // (at the top, between, at the end), over many seeds.
        let names = |r: &[Aligned]| -> Vec<(Option<String>, Option<String>)> {
            r.iter().map(|(x, y)| (x.map(|l| l.name.clone()), y.map(|l| l.name.clone()))).collect()
        };
        for seed in 0..200u64 {
            let mut rng = crate::candle::build::SplitMix(seed);
            let a: Vec<LayerRow> = (0..12).map(|i| row(&format!("l{i}"), i)).collect();
            let mut b: Vec<LayerRow> = Vec::new();
            for i in 0..16 {
                match rng.next_u64() % 4 {
                    0 => b.push(row(&format!("new{i}"), 7)),
                    1 => {}
                    _ => {
                        let j = rng.next_u64() % 12;
                        if !b.iter().any(|l| l.name == format!("l{j}")) {
                            b.push(row(&format!("l{j}"), j));
                        }
                    }
                }
            }
            assert_eq!(names(&align(&a, &b)), names(&align_reference(&a, &b)), "seed {seed}");
            // The same names in the same order (the shortcut), and one name apart (not it).
            assert_eq!(names(&align(&a, &a)), names(&align_reference(&a, &a)));
            let mut c = a.clone();
            c[seed as usize % 12].name = "renamed".into();
            assert_eq!(names(&align(&a, &c)), names(&align_reference(&a, &c)), "seed {seed}");
        }
    }
}
