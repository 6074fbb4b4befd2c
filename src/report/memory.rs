//! Memory reports: the one-line summary under the default report, and `netstat memory`
//! (figures, timeline, batch sweep, fit, peer conventions) in table, Markdown, CSV and JSON.
//!
//! Nothing here computes a figure: [`crate::memory`] does. JSON carries raw bytes under the
//! report's `memory` key; table and Markdown use KiB/MiB/GiB.

use super::units::bytes;
use super::Report;
use crate::memory::{Conventions, Memory, FOOTNOTE};
use serde::Serialize;
use std::io::Write;

/// One batch size of `--sweep-batch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SweepRow {
    /// Batch size.
    pub batch: u64,
    /// Inference peak (bytes).
    pub inference_peak_bytes: u64,
    /// Activations saved for backward (bytes).
    pub saved_activation_bytes: u64,
    /// Training-step peak (bytes).
    pub training_peak_bytes: u64,
}

impl SweepRow {
    /// The row of one [`Memory`].
    pub fn of(m: &Memory) -> SweepRow {
        SweepRow {
            batch: m.batch,
            inference_peak_bytes: m.inference_peak_bytes,
            saved_activation_bytes: m.saved_activation_bytes,
            training_peak_bytes: m.training_peak_bytes,
        }
    }
}

/// The answer to `--fit SIZE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fit {
    /// The budget (bytes).
    pub budget_bytes: u64,
    /// The largest batch whose training peak fits; `None` if batch 1 does not.
    pub batch: Option<u64>,
    /// Its training peak (or batch 1's, when nothing fits), bytes.
    pub training_peak_bytes: u64,
    /// Why the search stopped below the budget, when it did: the next batch cannot be analysed
    /// (e.g. its total FLOPs overflow u64), so `batch` is the largest *analysable* batch that
    /// fits, not the memory limit. `None` when batch + 1 exceeds the budget (or the cap).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
}

/// The `memory` key of a report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemoryReport {
    /// The figures at the spec's batch (the timeline only when asked for).
    #[serde(flatten)]
    pub figures: Memory,
    /// `--sweep-batch`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sweep: Option<Vec<SweepRow>>,
    /// `--fit`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fit: Option<Fit>,
    /// `--memory-convention` (all peers' figures; the table shows the ones asked for).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conventions: Option<Conventions>,
    /// Which conventions were asked for.
    #[serde(skip)]
    pub shown: Vec<crate::memory::Convention>,
    /// `--kv-cache`: prefill and one decode step of a decoder ([`crate::memory::decode`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kv_cache: Option<crate::memory::decode::Decode>,
}

impl MemoryReport {
    /// Only the figures (the summary under the default report).
    pub fn summary(mut figures: Memory) -> MemoryReport {
        figures.timeline.clear();
        MemoryReport { figures, sweep: None, fit: None, conventions: None, shown: Vec::new(), kv_cache: None }
    }

    /// Precision in words: `f32`, or `bf16 + fp32 master` under `--amp`.
    fn precision(&self) -> String {
        let m = &self.figures;
        match m.amp {
            Some(_) => format!("amp {} (fp32 master weights and optimizer state)", m.activation_dtype),
            None => m.activation_dtype.to_string(),
        }
    }

    /// Precision in a few characters: `f32`, or `bf16 amp`; then the data parallelism, if any
    /// (`bf16 amp, data parallel ×8, ZeRO-3`).
    fn precision_short(&self) -> String {
        let m = &self.figures;
        let p = match m.amp {
            Some(_) => format!("{} amp", m.activation_dtype),
            None => m.activation_dtype.to_string(),
        };
        [Some(p), m.data_parallel.describe(), tp(m)].into_iter().flatten().collect::<Vec<_>>().join(", ")
    }

    /// The lines under the default report (each within 80 columns for usual layer names).
    pub fn summary_lines(&self) -> String {
        let m = &self.figures;
        format!(
            "memory: inference peak {} at {}\nmemory: training step ({}, {}) peak {} at {}\n  weights {}, gradients {}, optimizer state {},\n  saved activations {} (definitions: docs/memory.md)",
            bytes(m.inference_peak_bytes),
            m.inference_peak_layer,
            m.optimizer.name(),
            self.precision_short(),
            bytes(m.training_peak_bytes),
            m.training_peak_stage,
            bytes(m.weight_bytes()),
            bytes(m.gradient_bytes),
            bytes(m.optimizer_state_bytes),
            bytes(m.saved_activation_bytes),
        )
    }

    /// The figures as (label, bytes, what it is) rows.
    pub fn figure_rows(&self) -> Vec<(&'static str, u64, String)> {
        let m = &self.figures;
        vec![
            ("input_bytes", m.input_bytes, "network input on the device".into()),
            ("label_bytes", m.label_bytes, "labels on the device".into()),
            ("param_bytes", m.param_bytes, format!("parameters as {}", m.weight_dtype)),
            ("buffer_bytes", m.buffer_bytes, "buffers (BatchNorm running stats)".into()),
            ("master_weight_bytes", m.master_weight_bytes, "fp32 master weights (--amp)".into()),
            ("activation_bytes", m.activation_bytes, "inference outputs, each once (in-place/views 0)".into()),
            ("inference_peak_bytes", m.inference_peak_bytes, format!("inference peak, at {}", m.inference_peak_layer)),
            ("gradient_bytes", m.gradient_bytes, "one gradient per trainable parameter".into()),
            ("optimizer_state_bytes", m.optimizer_state_bytes, format!("{} state", m.optimizer.name())),
            (
                "saved_activation_bytes",
                m.saved_activation_bytes,
                "held for backward after forward (incl. output)".into(),
            ),
            ("after_forward_bytes", m.after_forward_bytes, "live after forward (and loss)".into()),
            ("backward_peak_bytes", m.backward_peak_bytes, format!("backward peak, at {}", m.backward_peak_layer)),
            ("training_peak_bytes", m.training_peak_bytes, format!("training-step peak, at {}", m.training_peak_stage)),
        ]
    }

    /// The peers' figures asked for, as (name, bytes, how they print it).
    fn convention_rows(&self) -> Vec<(&'static str, u64, String)> {
        use crate::memory::Convention::*;
        let Some(c) = &self.conventions else { return Vec::new() };
        self.shown
            .iter()
            .map(|k| match k {
                Torchinfo => (
                    "torchinfo F/B",
                    c.torchinfo_forward_backward_bytes,
                    format!(
                        "{:.2} MB (10⁶ B): 2 × outputs of layers with params",
                        c.torchinfo_forward_backward_bytes as f64 / 1e6
                    ),
                ),
                Torchsummary => (
                    "torchsummary F/B",
                    c.torchsummary_forward_backward_bytes,
                    format!(
                        "{:.2} MiB: 2 × outputs of every layer",
                        c.torchsummary_forward_backward_bytes as f64 / (1u64 << 20) as f64
                    ),
                ),
                ConvnetBurden => (
                    "convnet-burden features",
                    c.convnet_burden_feature_bytes,
                    format!(
                        "{:.2} MiB: input + each output once",
                        c.convnet_burden_feature_bytes as f64 / (1u64 << 20) as f64
                    ),
                ),
            })
            .collect()
    }
}

/// The `--kv-cache` section: its heading, the per-layer cache rows (layer, "", kv heads, head
/// dim, tokens, bytes, human bytes; then the total) and the prefill and decode-step lines.
fn kv_cache_parts(d: &crate::memory::decode::Decode) -> (String, Vec<Vec<String>>, [String; 2]) {
    use super::units::count;
    let head = format!(
        "decoder inference with a KV cache ({}, batch {}): prefill of {} tokens, decode step at context {}",
        d.dtype,
        d.batch,
        count(d.prompt_tokens),
        count(d.context_tokens)
    );
    let mut rows: Vec<Vec<String>> = d
        .layers
        .iter()
        .map(|l| {
            vec![
                l.name.clone(),
                String::new(),
                count(l.kv_heads),
                count(l.head_dim),
                count(l.cached_tokens),
                count(l.kv_cache_bytes),
                bytes(l.kv_cache_bytes),
                count(l.decode_step_attention_macs),
            ]
        })
        .collect();
    rows.push(vec![
        format!("total ({} layers)", d.layers.len()),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        count(d.kv_cache_bytes),
        bytes(d.kv_cache_bytes),
        count(d.decode_step_attention_macs),
    ]);
    let lines = [
        format!(
            "prefill ({} tokens): {} MACs, peak {} at {} (KV cache {} included)",
            count(d.prompt_tokens),
            count(d.prefill_macs),
            bytes(d.prefill_peak_bytes),
            d.prefill_peak_layer,
            bytes(d.prefill_kv_cache_bytes)
        ),
        format!(
            "decode step (context {}): {} MACs ({} of them attention over the cached keys), peak {} at {} (KV cache {} included)",
            count(d.context_tokens),
            count(d.decode_step_macs),
            count(d.decode_step_attention_macs),
            bytes(d.decode_step_peak_bytes),
            d.decode_step_peak_layer,
            bytes(d.kv_cache_bytes)
        ),
    ];
    (head, rows, lines)
}

/// Headers of the `--kv-cache` table (the second is the empty spacer column; the last: the
/// decode step's `q·Kᵀ` and `attn·V` MACs in the layer).
const KV_HEADER: [&str; 8] =
    ["layer", "", "kv heads", "head dim", "tokens", "KV cache B", "KV cache", "step attn MACs"];

/// `tensor parallel ×T`, for more than one device.
fn tp(m: &Memory) -> Option<String> {
    (m.tensor_parallel > 1).then(|| format!("tensor parallel ×{}", m.tensor_parallel))
}

pub(crate) fn heading(r: &Report, m: &MemoryReport) -> String {
    let parts: Vec<String> = [m.figures.data_parallel.describe(), tp(&m.figures)].into_iter().flatten().collect();
    let dp = if parts.is_empty() { String::new() } else { format!("; {}, per device", parts.join(", ")) };
    format!(
        "{} — input {}, batch {}; optimizer {}; {}{dp}",
        r.spec.name,
        r.input_desc(),
        r.spec.batch,
        m.figures.optimizer.name(),
        m.precision()
    )
}

/// A simple aligned text table: first column left, the rest right.
fn text_table(out: &mut dyn Write, header: &[&str], rows: &[Vec<String>]) -> std::io::Result<()> {
    let mut w: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let pad = " ".repeat(w[i] - c.chars().count());
                if i < 2 {
                    format!("{c}{pad}")
                } else {
                    format!("{pad}{c}")
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    writeln!(out, "{}", line(header.iter().map(|s| s.to_string()).collect()))?;
    writeln!(out, "{}", "─".repeat(w.iter().sum::<usize>() + 2 * (w.len() - 1)))?;
    for r in rows {
        writeln!(out, "{}", line(r.clone()))?;
    }
    Ok(())
}

fn timeline_rows(m: &Memory) -> Vec<Vec<String>> {
    let mut prev = 0u64;
    m.timeline
        .iter()
        .map(|s| {
            let delta = if s.live_bytes >= prev {
                format!("+{}", bytes(s.live_bytes - prev))
            } else {
                format!("−{}", bytes(prev - s.live_bytes))
            };
            prev = s.live_bytes;
            vec![
                s.phase.name().to_owned(),
                s.name.clone(),
                super::units::count(s.live_bytes),
                bytes(s.live_bytes),
                delta,
                super::units::count(s.peak_bytes),
            ]
        })
        .collect()
}

fn sweep_rows(s: &[SweepRow]) -> Vec<Vec<String>> {
    s.iter()
        .map(|r| {
            vec![
                r.batch.to_string(),
                String::new(),
                bytes(r.inference_peak_bytes),
                bytes(r.saved_activation_bytes),
                bytes(r.training_peak_bytes),
            ]
        })
        .collect()
}

/// The activation-checkpointing line: units and the step's MACs (empty without).
fn checkpoint_line(m: &Memory) -> Option<String> {
    use super::units::count;
    let c = m.checkpoint.as_ref()?;
    let units = match c.units.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [first, .., last] => format!("{first} … {last}"),
    };
    Some(format!(
        "activation checkpointing: {} unit{} ({units}); training MACs = forward {} + backward {} + recompute {} = {}",
        c.units.len(),
        if c.units.len() == 1 { "" } else { "s" },
        count(c.forward_macs),
        count(c.backward_macs),
        count(c.recompute_macs),
        count(c.training_macs),
    ))
}

pub(crate) fn fit_line(f: &Fit) -> String {
    match f.batch {
        Some(b) if f.limit.is_some() => format!(
            "fit: every batch up to {b} fits in {} (peak {}), but batch {} cannot be analysed ({}), so the search stopped there",
            bytes(f.budget_bytes),
            bytes(f.training_peak_bytes),
            b + 1,
            f.limit.as_deref().unwrap_or_default()
        ),
        Some(b) => format!(
            "fit: largest batch whose training peak fits in {}: {b} (peak {})",
            bytes(f.budget_bytes),
            bytes(f.training_peak_bytes)
        ),
        None => {
            format!("fit: nothing fits in {}: batch 1 needs {}", bytes(f.budget_bytes), bytes(f.training_peak_bytes))
        }
    }
}

/// Write `netstat memory` as text tables.
pub fn write_table(r: &Report, m: &MemoryReport, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "{}", heading(r, m))?;
    let rows: Vec<Vec<String>> =
        m.figure_rows().into_iter().map(|(k, b, what)| vec![k.to_owned(), what, bytes(b)]).collect();
    text_table(out, &["figure", "what", "bytes"], &rows)?;
    if let Some(line) = checkpoint_line(&m.figures) {
        writeln!(out, "\n{line}")?;
    }
    if !m.figures.timeline.is_empty() {
        writeln!(out, "\ntimeline of one training step (live bytes after each stage; peak during it)")?;
        text_table(out, &["stage", "layer", "live B", "live", "change", "peak B"], &timeline_rows(&m.figures))?;
    }
    if let Some(s) = &m.sweep {
        writeln!(out)?;
        text_table(out, &["batch", "", "inference peak", "saved activations", "training peak"], &sweep_rows(s))?;
    }
    if let Some(f) = &m.fit {
        writeln!(out, "\n{}", fit_line(f))?;
    }
    if let Some(d) = &m.kv_cache {
        let (head, rows, lines) = kv_cache_parts(d);
        writeln!(out, "\n{head}")?;
        text_table(out, &KV_HEADER, &rows)?;
        writeln!(out, "{}\n{}", lines[0], lines[1])?;
    }
    let conv = m.convention_rows();
    if !conv.is_empty() {
        writeln!(out, "\npeers' figures (their definitions, not netstat's):")?;
        for (name, _, text) in conv {
            writeln!(out, "  {name}: {text}")?;
        }
    }
    writeln!(out, "\n{FOOTNOTE}")
}

/// Write `netstat memory` as Markdown.
pub fn write_markdown(r: &Report, m: &MemoryReport, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "### {}\n", super::grid::md_text(&heading(r, m)))?;
    let table = |out: &mut dyn Write, header: &[&str], right: usize, rows: Vec<Vec<String>>| -> std::io::Result<()> {
        writeln!(out, "| {} |", header.join(" | "))?;
        let al: Vec<&str> = (0..header.len()).map(|i| if i < right { "---" } else { "---:" }).collect();
        writeln!(out, "|{}|", al.join("|"))?;
        for row in rows {
            writeln!(out, "| {} |", row.iter().map(|c| super::grid::md_text(c)).collect::<Vec<_>>().join(" | "))?;
        }
        Ok(())
    };
    let rows = m.figure_rows().into_iter().map(|(k, b, what)| vec![format!("`{k}`"), what, bytes(b)]).collect();
    table(out, &["figure", "what", "bytes"], 2, rows)?;
    if let Some(line) = checkpoint_line(&m.figures) {
        writeln!(out, "\n{}.", super::grid::md_text(&line))?;
    }
    if !m.figures.timeline.is_empty() {
        writeln!(out, "\nTimeline of one training step (live bytes after each stage; peak during it):\n")?;
        table(out, &["stage", "layer", "live B", "live", "change", "peak B"], 2, timeline_rows(&m.figures))?;
    }
    if let Some(s) = &m.sweep {
        writeln!(out)?;
        let rows = sweep_rows(s).into_iter().map(|mut r| {
            r.remove(1);
            r
        });
        table(out, &["batch", "inference peak", "saved activations", "training peak"], 1, rows.collect())?;
    }
    if let Some(f) = &m.fit {
        writeln!(out, "\n{}.", fit_line(f))?;
    }
    if let Some(d) = &m.kv_cache {
        let (head, rows, lines) = kv_cache_parts(d);
        writeln!(out, "\n{}:\n", super::grid::md_text(&head))?;
        let rows = rows.into_iter().map(|mut r| {
            r.remove(1);
            r
        });
        let mut header = KV_HEADER.to_vec();
        header.remove(1);
        table(out, &header, 1, rows.collect())?;
        writeln!(out, "\n- {}\n- {}", super::grid::md_text(&lines[0]), super::grid::md_text(&lines[1]))?;
    }
    let conv = m.convention_rows();
    if !conv.is_empty() {
        writeln!(out, "\nPeers' figures (their definitions, not netstat's):\n")?;
        for (name, _, text) in conv {
            writeln!(out, "- {name}: {text}")?;
        }
    }
    writeln!(out, "\n{}", FOOTNOTE.lines().map(|l| format!("- {l}")).collect::<Vec<_>>().join("\n"))
}

/// Write `netstat memory` as CSV: the timeline with `--timeline`, else the sweep with
/// `--sweep-batch`, the KV cache per layer with `--kv-cache`, else the figures as
/// `figure,bytes` rows (one table per file).
pub fn write_csv(m: &MemoryReport, out: &mut dyn Write) -> std::io::Result<()> {
    let mut w = ::csv::Writer::from_writer(out);
    if let Some(d) = m.kv_cache.as_ref().filter(|_| m.figures.timeline.is_empty() && m.sweep.is_none()) {
        w.write_record([
            "layer",
            "kv_heads",
            "head_dim",
            "cached_tokens",
            "kv_cache_bytes",
            "decode_step_attention_macs",
        ])?;
        for l in &d.layers {
            let n = [l.kv_heads, l.head_dim, l.cached_tokens, l.kv_cache_bytes, l.decode_step_attention_macs]
                .map(|v| v.to_string());
            w.write_record([l.name.as_str(), &n[0], &n[1], &n[2], &n[3], &n[4]])?;
        }
        w.write_record([
            "total",
            "",
            "",
            "",
            &d.kv_cache_bytes.to_string(),
            &d.decode_step_attention_macs.to_string(),
        ])?;
    } else if !m.figures.timeline.is_empty() {
        w.write_record(["phase", "name", "live_bytes", "peak_bytes"])?;
        for s in &m.figures.timeline {
            w.write_record([s.phase.name(), &s.name, &s.live_bytes.to_string(), &s.peak_bytes.to_string()])?;
        }
    } else if let Some(sw) = &m.sweep {
        w.write_record(["batch", "inference_peak_bytes", "saved_activation_bytes", "training_peak_bytes"])?;
        for r in sw {
            w.write_record([
                r.batch.to_string(),
                r.inference_peak_bytes.to_string(),
                r.saved_activation_bytes.to_string(),
                r.training_peak_bytes.to_string(),
            ])?;
        }
    } else {
        w.write_record(["figure", "bytes"])?;
        for (k, b, _) in m.figure_rows() {
            w.write_record([k, &b.to_string()])?;
        }
        if let Some(f) = &m.fit {
            w.write_record(["fit_budget_bytes", &f.budget_bytes.to_string()])?;
            w.write_record(["fit_batch", &f.batch.map(|b| b.to_string()).unwrap_or_default()])?;
        }
    }
    w.flush()
}
