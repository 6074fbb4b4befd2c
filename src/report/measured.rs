//! The report of `netstat measure`: the analysis report plus what candle did — per-layer times
//! and memory, per-stage memory of a training step, and the two memory predictions beside each
//! measurement with their error.
//!
//! The data is [`crate::measure::result`]'s (no candle): `measure/` fills it, this module puts
//! it beside the analysis report and only formats it. JSON keeps every
//! field of the analysis report and adds a `measured` object to each layer, a top-level
//! `measured` object (machine, settings, whole-pass times) and `stages`.

use super::units::{bytes, count};
use super::Report;
use comfy_table::{CellAlignment, ContentArrangement, Table};
use std::io::Write;

pub use crate::measure::result::{GpuMeasured, MeasureInfo, Measured, MeasuredLayer, NvmlBytes, Stage, Timing};

/// The analysis report and what measure found.
#[derive(Debug, Clone, PartialEq)]
pub struct MeasureReport {
    /// The analysis report (every earlier field).
    pub report: Report,
    /// Machine, settings, whole pass.
    pub info: MeasureInfo,
    /// One entry per layer, in the order of `report.layers`.
    pub layers: Vec<MeasuredLayer>,
    /// Stages.
    pub stages: Vec<Stage>,
    /// Per layer, in the same order: `view` or `no-op` (inference), `in-place` or `view`
    /// (training) when the layer's output shares its input's storage
    /// ([`crate::kinds::Op::aliases_input`]) so that a percentage error would compare nothing
    /// with something, else `None`. Tables show it instead of that error. Inference: the
    /// neutral model's peak counts a new output, candle's views and no-ops allocate nothing
    /// (`+94%` on `flatten`); training: netstat's memory model keeps an in-place output in its
    /// input's storage, candle has no in-place ops and allocates one (`-100%`), and a view
    /// retains 0 B in both models where the allocator counts candle's few hundred bytes of
    /// bookkeeping (`-100%` in both error columns, which then both show `view`).
    pub alias: Vec<Option<&'static str>>,
}

/// What a layer's output is when it allocates none ([`MeasureReport::alias`]).
pub fn alias_label(s: &crate::spec::LayerSpec, training: bool) -> Option<&'static str> {
    use crate::kinds::Op;
    let op: &dyn Op = s.kind.op();
    if op.is_identity(training) {
        Some("no-op")
    } else if !op.aliases_input(training) {
        None
    } else if matches!(s.node.get("inplace").map(|n| &n.value), Some(crate::spec::node::Value::Bool(true))) {
        Some("in-place")
    } else {
        Some("view")
    }
}

impl MeasureReport {
    /// The analysis report of `a` as `netstat SPEC` makes it, its memory summary from
    /// `memory` (the model for the optimizer measured), beside what measure found.
    pub fn new(a: &crate::analysis::Analysis, memory: crate::memory::Memory, m: Measured) -> MeasureReport {
        let mut report = Report::new(a);
        report.memory = Some(super::memory::MemoryReport::summary(memory));
        let training = m.info.mode == "train";
        let alias = a
            .layers
            .iter()
            .map(|l| alias_label(a.layer_spec(l), training).filter(|&k| k != "in-place" || training))
            .collect();
        MeasureReport { report, info: m.info, layers: m.layers, stages: m.stages, alias }
    }
}

/// Signed error of `predicted` against `measured`, in percent of measured.
pub fn error_percent(predicted: u64, measured: u64) -> Option<f64> {
    (measured > 0).then(|| 100.0 * (predicted as f64 - measured as f64) / measured as f64)
}

fn err(p: u64, m: Option<u64>) -> String {
    match m.and_then(|m| error_percent(p, m)) {
        Some(e) => super::units::signed_percent(e),
        None => String::new(),
    }
}

/// A layer's cell of column `c`: the alias label ([`MeasureReport::alias`]) in the
/// framework-neutral `err` column of a layer that allocates no output, and in training a view's
/// label in the candle `err ` column too (candle's views allocate nothing either); else the
/// column's value.
fn cell(c: &Col, l: &super::LayerRow, m: &MeasuredLayer, alias: Option<&'static str>, train: bool) -> String {
    match alias {
        Some(a) if c.0 == "err" || (c.0 == "err " && train && a == "view") => a.to_owned(),
        _ => (c.1)(l, m),
    }
}

fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

fn opt_bytes(b: Option<u64>) -> String {
    b.map(bytes).unwrap_or_default()
}

/// Header lines: what was run, where.
fn header(r: &MeasureReport) -> Vec<String> {
    let i = &r.info;
    let mut v = vec![format!(
        "{} — input {}, batch {}, {}{}",
        r.report.spec.name,
        r.report.input_desc(),
        r.report.spec.batch,
        i.mode,
        i.optimizer.as_deref().map(|o| format!(" ({o})")).unwrap_or_default()
    )];
    if let Some(g) = &i.gpu {
        let mhz = |v: Option<u32>| v.map(|v| format!("{v} MHz")).unwrap_or_else(|| "?".into());
        v.push(format!(
            "gpu {}: {} (sm {}), {} total, {} free before the run; {}; SM clock {} (max {}), memory clock {}",
            g.run.device,
            g.run.name,
            g.run.compute_capability,
            bytes(g.run.memory_total_bytes),
            bytes(g.run.memory_free_bytes),
            g.run.nvml,
            mhz(g.run.sm_clock_mhz),
            mhz(g.run.sm_clock_max_mhz),
            mhz(g.run.memory_clock_mhz)
        ));
        let nv = |v: Option<u64>| v.map(bytes).unwrap_or_else(|| "n/a".into());
        v.push(format!(
            "gpu memory (NVML, this process): CUDA context {} before any tensor; at the end {} = memory pool {} + context, modules and library workspaces {}",
            nv(g.run.context_bytes),
            nv(g.process_bytes),
            nv(g.pool_reserved_bytes),
            nv(g.overhead_bytes)
        ));
    }
    v.push(format!(
        "device {}: {}, {} threads; {} warm-up + {} timed passes, seed {}{}",
        i.device,
        i.cpu_model,
        i.threads,
        i.warmup,
        i.iters,
        i.seed,
        if i.fake_timings { "; FAKE TIMINGS (test mode)" } else { "" }
    ));
    if i.memory_counted && i.warmup < 3 {
        v.push(format!(
            "note: --warmup {} < 3: one-time buffers (gemm's per-thread packing caches, about 1-3 MiB) may be \
             allocated inside the measured pass and show in the memory columns; use --warmup 3 or more",
            i.warmup
        ));
    }
    v.push(format!(
        "whole {}: median {} ms (min {}, max {}, spread {:.0}%), {:.1} GFLOP/s; params built {} = analysis",
        if i.mode == "train" { "step" } else { "forward" },
        ms(i.pass.time_ms_median),
        ms(i.pass.time_ms_min),
        ms(i.pass.time_ms_max),
        i.pass.spread_percent(),
        i.gflops_per_s,
        count(i.params_built)
    ));
    v
}

/// Per-layer columns: header, right-aligned, value.
type Col = (&'static str, fn(&super::LayerRow, &MeasuredLayer) -> String);

fn columns(train: bool, mem: bool) -> Vec<Col> {
    let mut c: Vec<Col> = vec![
        ("layer", |l, _| l.name.clone()),
        ("kind", |l, _| l.kind.clone()),
        ("output", |l, _| super::shape(&l.output_shape)),
        ("fwd ms", |_, m| ms(m.forward.time_ms_median)),
        ("min", |_, m| ms(m.forward.time_ms_min)),
        ("spread", |_, m| format!("{:.0}%", m.forward.spread_percent())),
    ];
    if train {
        c.push(("bwd ms", |_, m| m.backward.map(|t| ms(t.time_ms_median)).unwrap_or_default()));
    }
    c.push(("GFLOP/s", |_, m| m.gflops_per_s.map(|g| format!("{g:.1}")).unwrap_or_default()));
    if mem && !train {
        c.push(("peak", |_, m| opt_bytes(m.peak_bytes)));
        c.push(("pred", |_, m| bytes(m.predicted_peak_bytes)));
        c.push(("err", |_, m| err(m.predicted_peak_bytes, m.peak_bytes)));
        c.push(("candle", |_, m| bytes(m.predicted_candle_peak_bytes)));
        c.push(("err ", |_, m| err(m.predicted_candle_peak_bytes, m.peak_bytes)));
        c.push(("held", |_, m| opt_bytes(m.held_bytes)));
    }
    if mem && train {
        c.push(("retained", |_, m| opt_bytes(m.retained_bytes)));
        c.push(("pred", |_, m| opt_bytes(m.predicted_retained_bytes)));
        c.push(("err", |_, m| err(m.predicted_retained_bytes.unwrap_or(0), m.retained_bytes)));
        c.push(("candle", |_, m| opt_bytes(m.predicted_candle_retained_bytes)));
        c.push(("err ", |_, m| err(m.predicted_candle_retained_bytes.unwrap_or(0), m.retained_bytes)));
    }
    c
}

/// The error of a stage's prediction `p`: `not modelled` where the models predict nothing
/// (the `warm-up caches` stage: gemm's per-thread packing buffers, measured only), instead of
/// a −100 % that reads like a wrong prediction.
fn stage_err(p: u64, m: Option<u64>) -> String {
    if p == 0 {
        "not modelled".into()
    } else {
        err(p, m)
    }
}

fn stage_rows(r: &MeasureReport) -> Vec<Vec<String>> {
    let gpu = r.info.gpu.is_some();
    r.stages
        .iter()
        .map(|s| {
            let mut row = vec![
                s.stage.clone(),
                opt_bytes(s.live_bytes),
                bytes(s.predicted_bytes),
                stage_err(s.predicted_bytes, s.live_bytes),
                bytes(s.predicted_candle_bytes),
                stage_err(s.predicted_candle_bytes, s.live_bytes),
                opt_bytes(s.peak_bytes),
            ];
            if gpu {
                row.push(opt_bytes(s.nvml.and_then(|n| n.process_bytes)));
                row.push(opt_bytes(s.nvml.and_then(|n| n.device_used_bytes)));
            }
            row
        })
        .collect()
}

/// Stage table header; on a GPU two last columns hold NVML's figures: this process, the device.
fn stage_header(r: &MeasureReport) -> Vec<&'static str> {
    let mut h = vec!["stage", "live", "pred", "err", "candle", "err ", "peak"];
    if r.info.gpu.is_some() {
        h.extend(["nvml", "nvml dev"]);
    }
    h
}

fn table_of(header: &[&str], rows: Vec<Vec<String>>) -> Table {
    let mut t = Table::new();
    t.load_preset(comfy_table::presets::NOTHING)
        .set_style(comfy_table::TableComponent::HeaderLines, '─')
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.iter().copied());
    for r in rows {
        t.add_row(r);
    }
    for i in 0..header.len() {
        if let Some(col) = t.column_mut(i) {
            col.set_padding((0, 1));
            if i >= 3 || (header[0] == "stage" && i >= 1) {
                col.set_cell_alignment(CellAlignment::Right);
            }
        }
    }
    t
}

const LEGEND: &str = "times: median over the timed passes (min; spread = (max − min)/median); GFLOP/s = 2·MACs/median.
memory: heap bytes from a counting allocator, above the bytes live before the pass; pred = framework-neutral
model (netstat's memory model, as `netstat memory`: outputs live to their last reader, in-place ops and views 0 B;
training: saved tensors and gradients as PyTorch keeps them), candle = candle model (im2col buffers, pre-bias tensors,
slices, copies); err = (pred − measured)/measured; view, no-op, in-place: the output shares its input's storage,
so a percentage would compare 0 B with something: no err; not modelled: measured only (gemm's warm-up caches).";

const GPU_LEGEND: &str = "on a GPU, memory columns are the device's default memory pool (USED_MEM_CURRENT/HIGH, reset per layer and stage:
exact tensor bytes); times are read after synchronising the stream; nvml = NVML's bytes for this process (context, modules, library
workspaces, the pool's reservation; lags frees), nvml dev = NVML's used bytes of the whole device. The candle memory model was derived
from candle's CPU backend.";

/// The terminal table.
pub fn write_table(r: &MeasureReport, out: &mut dyn Write) -> std::io::Result<()> {
    let train = r.info.mode == "train";
    let cols = columns(train, r.info.memory_counted);
    let rows = r
        .report
        .layers
        .iter()
        .zip(&r.layers)
        .zip(r.alias.iter().copied().chain(std::iter::repeat(None)))
        .map(|((l, m), a)| cols.iter().map(|c| cell(c, l, m, a, train)).collect())
        .collect();
    let headers: Vec<&str> = cols.iter().map(|c| c.0).collect();
    for h in header(r) {
        writeln!(out, "{h}")?;
    }
    writeln!(out, "{}", table_of(&headers, rows))?;
    if r.info.memory_counted && !r.stages.is_empty() {
        writeln!(out)?;
        writeln!(out, "{}", table_of(&stage_header(r), stage_rows(r)))?;
    }
    writeln!(out, "{LEGEND}")?;
    if r.info.gpu.is_some() {
        writeln!(out, "{GPU_LEGEND}")?;
    }
    Ok(())
}

/// GitHub Markdown.
pub fn write_markdown(r: &MeasureReport, out: &mut dyn Write) -> std::io::Result<()> {
    let train = r.info.mode == "train";
    let cols = columns(train, r.info.memory_counted);
    for h in header(r) {
        writeln!(out, "{h}  ")?;
    }
    writeln!(out)?;
    let md_row = |cells: Vec<String>| format!("| {} |", cells.join(" | "));
    writeln!(out, "{}", md_row(cols.iter().map(|c| c.0.trim().to_string()).collect()))?;
    writeln!(
        out,
        "{}",
        md_row((0..cols.len()).map(|i| if i >= 3 { "---:".to_string() } else { "---".to_string() }).collect())
    )?;
    let aliases = r.alias.iter().copied().chain(std::iter::repeat(None));
    for ((l, m), a) in r.report.layers.iter().zip(&r.layers).zip(aliases) {
        writeln!(out, "{}", md_row(cols.iter().map(|c| cell(c, l, m, a, train)).collect()))?;
    }
    if r.info.memory_counted && !r.stages.is_empty() {
        writeln!(out)?;
        let h = stage_header(r);
        writeln!(out, "{}", md_row(h.iter().map(|h| h.trim().to_string()).collect()))?;
        writeln!(out, "{}", md_row((0..h.len()).map(|i| if i >= 1 { "---:".into() } else { "---".into() }).collect()))?;
        for s in stage_rows(r) {
            writeln!(out, "{}", md_row(s))?;
        }
    }
    writeln!(out)?;
    writeln!(out, "{}", LEGEND.replace('\n', " "))?;
    if r.info.gpu.is_some() {
        writeln!(out)?;
        writeln!(out, "{}", GPU_LEGEND.replace('\n', " "))?;
    }
    Ok(())
}

/// CSV: one row per layer (the analysis columns, then raw measured values), then one row per
/// stage with `kind` = `stage`. Times in ms, bytes as integers; empty where not measured.
pub fn write_csv(r: &MeasureReport, out: &mut dyn Write) -> std::io::Result<()> {
    let mut w = ::csv::Writer::from_writer(out);
    let base: Vec<&super::Column> =
        super::applicable_columns(&r.report).into_iter().filter(|c| c.raw.is_some()).collect();
    let extra = [
        "time_ms_median",
        "time_ms_min",
        "time_ms_max",
        "backward_time_ms_median",
        "gflops_per_s",
        "peak_bytes",
        "predicted_peak_bytes",
        "predicted_candle_peak_bytes",
        "held_bytes",
        "predicted_held_bytes",
        "retained_bytes",
        "predicted_retained_bytes",
        "predicted_candle_retained_bytes",
        "live_bytes",
        "predicted_bytes",
        "predicted_candle_bytes",
    ];
    let gpu = r.info.gpu.is_some();
    let mut head: Vec<String> = base.iter().map(|c| c.csv_header.to_string()).collect();
    head.extend(extra.iter().map(|s| s.to_string()));
    if gpu {
        head.extend(["nvml_process_bytes".into(), "nvml_device_used_bytes".into()]);
    }
    w.write_record(&head)?;
    let o = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
    let f = |v: Option<f64>| v.map(|v| format!("{v:.6}")).unwrap_or_default();
    for (l, m) in r.report.layers.iter().zip(&r.layers) {
        let mut rec: Vec<String> = base.iter().map(|c| (c.raw.unwrap())(super::RowRef::Layer(l))).collect();
        rec.extend([
            f(Some(m.forward.time_ms_median)),
            f(Some(m.forward.time_ms_min)),
            f(Some(m.forward.time_ms_max)),
            f(m.backward.map(|t| t.time_ms_median)),
            f(m.gflops_per_s),
            o(m.peak_bytes),
            o(Some(m.predicted_peak_bytes)),
            o(Some(m.predicted_candle_peak_bytes)),
            o(m.held_bytes),
            o(Some(m.predicted_held_bytes)),
            o(m.retained_bytes),
            o(m.predicted_retained_bytes),
            o(m.predicted_candle_retained_bytes),
            String::new(),
            String::new(),
            String::new(),
        ]);
        if gpu {
            rec.extend([String::new(), String::new()]);
        }
        w.write_record(&rec)?;
    }
    for s in &r.stages {
        let mut rec: Vec<String> = base
            .iter()
            .map(|c| match c.csv_header {
                "name" => s.stage.clone(),
                "kind" => "stage".into(),
                _ => String::new(),
            })
            .collect();
        rec.extend(std::iter::repeat_n(String::new(), 5));
        rec.extend([o(s.peak_bytes), String::new(), o(s.predicted_candle_peak_bytes)]);
        rec.extend(std::iter::repeat_n(String::new(), 5));
        rec.extend([o(s.live_bytes), s.predicted_bytes.to_string(), s.predicted_candle_bytes.to_string()]);
        if gpu {
            rec.extend([o(s.nvml.and_then(|n| n.process_bytes)), o(s.nvml.and_then(|n| n.device_used_bytes))]);
        }
        w.write_record(&rec)?;
    }
    w.flush()
}

/// JSON: the analysis report's fields, a `measured` object in each layer, and top-level
/// `measured` (machine, settings, whole pass) and `stages`.
pub fn write_json(r: &MeasureReport, out: &mut dyn Write) -> std::io::Result<()> {
    let mut v = serde_json::to_value(&r.report)?;
    if let Some(layers) = v.get_mut("layers").and_then(|l| l.as_array_mut()) {
        for (l, m) in layers.iter_mut().zip(&r.layers) {
            l["measured"] = serde_json::to_value(m)?;
        }
    }
    v["measured"] = serde_json::to_value(&r.info)?;
    v["stages"] = serde_json::Value::Array(
        r.stages.iter().map(|s| serde_json::json!({"stage": s.stage, "measured": s})).collect(),
    );
    serde_json::to_writer_pretty(&mut *out, &v)?;
    writeln!(out)
}

/// Write `r` in `format`.
///
/// Errors: `Format::Latex` (measured reports have no LaTeX form; the CLI refuses it first).
pub fn write(r: &MeasureReport, format: super::Format, out: &mut dyn Write) -> std::io::Result<()> {
    match format {
        super::Format::Table => write_table(r, out),
        super::Format::Markdown => write_markdown(r, out),
        super::Format::Csv => write_csv(r, out),
        super::Format::Json => write_json(r, out),
        super::Format::Latex => Err(std::io::Error::other("measured reports have no LaTeX form")),
        super::Format::Html => Err(std::io::Error::other("measured reports have no HTML form")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A report as a GPU run would fill it (the CPU build can format one, not make one).
    fn gpu_report() -> MeasureReport {
        let a =
            crate::analyze_file(concat!(env!("CARGO_MANIFEST_DIR"), "/specs/lenet.yaml"), &Default::default()).unwrap();
        let run = crate::measure::result::GpuRun {
            device: "cuda:0".into(),
            name: "NVIDIA H200".into(),
            compute_capability: "9.0".into(),
            memory_total_bytes: 141 << 30,
            memory_free_bytes: 140 << 30,
            nvml: "driver 570.1 (CUDA 12.8)".into(),
            nvml_index: Some(0),
            sm_clock_mhz: Some(1980),
            sm_clock_max_mhz: Some(1980),
            memory_clock_mhz: None,
            context_bytes: Some(450 << 20),
        };
        MeasureReport {
            alias: Vec::new(),
            report: Report::new(&a),
            info: MeasureInfo {
                device: "cuda:0".into(),
                cpu_model: "(fake)".into(),
                threads: 2,
                mode: "inference".into(),
                optimizer: None,
                warmup: 3,
                iters: 10,
                seed: 0,
                pass: Timing::default(),
                gflops_per_s: 0.0,
                params_built: a.totals.params,
                fake_timings: true,
                memory_counted: true,
                mem_available_bytes: Some(140 << 30),
                predicted_run_peak_bytes: 0,
                // 600 MiB from NVML, 100 MiB held by the pool.
                gpu: Some(GpuMeasured::new(run, Some(600 << 20), Some(100 << 20))),
            },
            layers: vec![MeasuredLayer::default(); a.layers.len()],
            stages: vec![Stage {
                stage: "forward".into(),
                live_bytes: Some(1 << 20),
                peak_bytes: None,
                predicted_bytes: 1 << 20,
                predicted_candle_bytes: 1 << 20,
                predicted_candle_peak_bytes: None,
                nvml: Some(NvmlBytes { process_bytes: Some(600 << 20), device_used_bytes: Some(700 << 20) }),
            }],
        }
    }

    #[test]
    fn gpu_runs_show_the_device_and_both_nvml_figures_in_every_format() {
        let r = gpu_report();
        let text = |f| {
            let mut out = Vec::new();
            write(&r, f, &mut out).unwrap();
            String::from_utf8(out).unwrap()
        };
        let t = text(crate::report::Format::Table);
        assert!(t.contains("gpu cuda:0: NVIDIA H200 (sm 9.0), 141 GiB total, 140 GiB free before the run"), "{t}");
        // 600 MiB from NVML = 100 MiB of pool + 500 MiB of context and libraries.
        assert!(
            t.contains("CUDA context 450 MiB before any tensor; at the end 600 MiB = memory pool 100 MiB + context, modules and library workspaces 500 MiB"),
            "{t}"
        );
        assert!(t.contains("nvml dev"), "{t}");
        let forward = t.lines().find(|l| l.starts_with("forward")).unwrap();
        // The last two columns of the stage row: NVML's process and device figures.
        let cells: Vec<&str> = forward.split_whitespace().collect();
        assert_eq!(cells[cells.len() - 4..], ["600", "MiB", "700", "MiB"], "{forward}");
        let c = text(crate::report::Format::Csv);
        assert!(c.lines().next().unwrap().ends_with(",nvml_process_bytes,nvml_device_used_bytes"), "{c}");
        // 600 << 20 = 629,145,600 and 700 << 20 = 734,003,200 bytes.
        assert!(c.lines().last().unwrap().ends_with(",629145600,734003200"), "{c}");
        let j: serde_json::Value = serde_json::from_str(&text(crate::report::Format::Json)).unwrap();
        assert_eq!(j["measured"]["gpu"]["name"], "NVIDIA H200");
        // The overhead is computed: 600 − 100 = 500 MiB = 524,288,000 bytes.
        assert_eq!(j["measured"]["gpu"]["overhead_bytes"], 500u64 << 20);
        // No overhead when the pool figure is missing, or exceeds NVML's (which lags).
        let run = r.info.gpu.as_ref().unwrap().run.clone();
        assert_eq!(GpuMeasured::new(run.clone(), Some(600 << 20), None).overhead_bytes, None);
        assert_eq!(GpuMeasured::new(run, Some(100 << 20), Some(600 << 20)).overhead_bytes, None);
        assert_eq!(j["stages"][0]["measured"]["nvml"]["device_used_bytes"], 700u64 << 20);
        // The CPU form of the same report has none of it.
        let mut cpu = r.clone();
        cpu.info.gpu = None;
        cpu.stages[0].nvml = None;
        let mut out = Vec::new();
        write_json(&cpu, &mut out).unwrap();
        let j: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert!(j["measured"].get("gpu").is_none() && j["stages"][0]["measured"].get("nvml").is_none());
    }
}
