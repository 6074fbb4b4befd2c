//! SVG charts of a report, written by hand (no plotting crate): horizontal bars of params and of
//! MACs per layer, the training step's memory timeline, the roofline (with `--hardware`) and
//! memory against batch size (`netstat memory --sweep-batch`).
//!
//! Text is plain SVG `<text>` in the viewer's sans-serif, so generating a chart needs no font and
//! the output is byte-for-byte deterministic. Widths of text are estimated at [`CHAR_EM`] of the
//! font size per character (wide enough for DejaVu Sans and Liberation Sans digits and lowercase);
//! a layer name longer than the label column is shortened in the middle (`model.layers.0.…ntion_layernorm`)
//! and the full name is the bar's `<title>` (a tooltip in browsers). Every string that comes from a
//! spec is escaped ([`xml_text`]).
//!
//! Axes: counts in 1-2-5 steps with SI units (`5M`, `10M`); bytes in 1-2-5 steps of one binary
//! unit (`200 MiB`, `400 MiB`); the roofline is log-log with a tick per decade.
//!
//! [`charts`] is the one place that decides which charts a report gets.

use super::memory::SweepRow;
use super::units::{bytes, count, si};
use super::Report;
use crate::memory::{Memory, Phase};
use std::fmt::Write as _;

/// Width of every chart, in SVG user units (px).
pub const WIDTH: u32 = 800;
/// Height of one bar row, px.
const ROW: f64 = 18.0;
/// Font size of labels, px.
const FONT: f64 = 12.0;
/// Estimated advance of one character, in ems of the font size.
pub const CHAR_EM: f64 = 0.6;
/// The layer-name column of a bar chart takes at most this share of [`WIDTH`].
const LABEL_SHARE: f64 = 0.28;

const BLUE: &str = "#3b6ea8";
const ORANGE: &str = "#d97a27";
const GREEN: &str = "#3a8f5c";
const RED: &str = "#b8322a";
const GRID: &str = "#e6e6e6";
const AXIS: &str = "#444";
const MUTED: &str = "#666";

/// The charts of `report`: `(file suffix, SVG text)`, e.g. `("params", "<svg …")`, written as
/// `NAME.params.svg`. Layers whose value is 0 are left out of a bar chart; a chart with no
/// non-zero layer is not produced. `memory` (with its timeline) adds the memory timeline
/// (`memory`); a report with a roofline (`--hardware`) adds the roofline (`roofline`).
pub fn charts(report: &Report, memory: Option<&Memory>) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let name = &report.spec.name;
    let params: Vec<(String, u64)> =
        report.layers.iter().filter(|l| l.params > 0).map(|l| (l.name.clone(), l.params)).collect();
    if !params.is_empty() {
        out.push((
            "params",
            bars(
                &format!("{name}: parameters per layer (total {})", count(report.totals.params)),
                "parameters",
                &params,
            ),
        ));
    }
    let macs: Vec<(String, u64)> =
        report.layers.iter().filter(|l| l.macs > 0).map(|l| (l.name.clone(), l.macs)).collect();
    if !macs.is_empty() {
        out.push((
            "macs",
            bars(
                &format!("{name}: MACs per layer at batch {} (total {})", report.spec.batch, count(report.totals.macs)),
                "MACs (multiply-accumulates; FLOPs = 2 MACs)",
                &macs,
            ),
        ));
    }
    if let Some(m) = memory.filter(|m| !m.timeline.is_empty()) {
        out.push(("memory", timeline(name, m)));
    }
    if let Some(r) = roofline(report) {
        out.push(("roofline", r));
    }
    out
}

/// `s` as SVG/HTML text or attribute value: `&`, `<`, `>`, `"` and `'` escaped, and control
/// characters (NUL, ESC, newlines, which XML forbids or a label cannot show) replaced by U+FFFD.
pub fn xml_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Estimated width of `s` at `font` px.
fn text_width(s: &str, font: f64) -> f64 {
    s.chars().count() as f64 * font * CHAR_EM
}

/// `s` shortened to at most `max` characters by an ellipsis in the middle (half the characters
/// kept from the start, where block indices are, and half from the end, where the layer is:
/// `model.layers.0.post_attention_layernorm` → `model.layers.0.…ntion_layernorm`).
pub fn shorten(s: &str, max: usize) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= max || max < 3 {
        return s.to_owned();
    }
    let head = (max - 1) / 2;
    let tail = max - 1 - head;
    let mut out: String = chars[..head].iter().collect();
    out.push('…');
    out.extend(&chars[chars.len() - tail..]);
    out
}

/// A 1-2-5 step (× a power of ten) that cuts `0..=max` into about `target` intervals (at most
/// `2·target`); 1 for `max` ≤ 0.
pub fn nice_step(max: f64, target: u32) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let raw = max / f64::from(target.max(1));
    let mut p = 1.0f64;
    while p * 10.0 <= raw {
        p *= 10.0;
    }
    while p > raw {
        p /= 10.0;
    }
    for m in [1.0, 2.0, 5.0] {
        if m * p >= raw {
            return m * p;
        }
    }
    10.0 * p
}

/// A number without trailing zeros: `2.5`, `10`, `0.25` (at most three decimals).
fn plain(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_owned()
    }
}

/// Tick values `0, step, …` up to the first multiple of `step` ≥ `max`.
fn ticks(max: f64, step: f64) -> Vec<f64> {
    let n = (max / step).ceil().max(1.0) as u32;
    (0..=n).map(|i| f64::from(i) * step).collect()
}

/// A linear axis of counts: ticks in 1-2-5 steps labelled in one SI unit (`0`, `5M`, `10M`).
fn count_axis(max: u64) -> Vec<(f64, String)> {
    let max = max.max(1) as f64;
    let step = nice_step(max, 5);
    let t = ticks(max, step);
    let top = *t.last().unwrap_or(&max);
    let (div, unit) = [(1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")]
        .into_iter()
        .find(|(d, _)| top >= *d)
        .unwrap_or((1.0, ""));
    t.into_iter().map(|v| (v, if v == 0.0 { "0".into() } else { format!("{}{unit}", plain(v / div)) })).collect()
}

/// A linear axis of bytes: the unit is the binary unit of `max` (KiB, MiB, GiB, …) and the ticks
/// go in 1-2-5 steps of it (`0 B`, `200 MiB`, `400 MiB`, …, each a multiple of 2^20 here).
pub fn bytes_axis(max: u64) -> Vec<(f64, String)> {
    let max = max.max(1);
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut k = 0;
    while k + 1 < units.len() && max >= 1u64 << (10 * (k + 1)) {
        k += 1;
    }
    let unit = (1u64 << (10 * k)) as f64;
    let m = max as f64 / unit;
    let step = nice_step(m, 5);
    ticks(m, step)
        .into_iter()
        .map(|v| (v * unit, format!("{} {}", plain(v), if v == 0.0 { "B" } else { units[k] })))
        .collect()
}

/// The start of an SVG document of `WIDTH × height` with a white background and `title` on top.
fn open(height: f64, title: &str) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{h}\" viewBox=\"0 0 {WIDTH} {h}\" \
         font-family=\"sans-serif\" font-size=\"{FONT}\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{x}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">{t}</text>\n",
        h = f(height),
        x = WIDTH / 2,
        t = xml_text(title)
    );
    s
}

/// A coordinate with at most one decimal.
fn f(v: f64) -> String {
    plain((v * 10.0).round() / 10.0)
}

fn text(s: &mut String, x: f64, y: f64, anchor: &str, extra: &str, body: &str) {
    let _ =
        writeln!(s, "<text x=\"{}\" y=\"{}\" text-anchor=\"{anchor}\"{extra}>{}</text>", f(x), f(y), xml_text(body));
}

fn line(s: &mut String, x1: f64, y1: f64, x2: f64, y2: f64, style: &str) {
    let _ = writeln!(s, "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" {style}/>", f(x1), f(y1), f(x2), f(y2));
}

fn polyline(s: &mut String, pts: &[(f64, f64)], style: &str) {
    let p: Vec<String> = pts.iter().map(|(x, y)| format!("{},{}", f(*x), f(*y))).collect();
    let _ = writeln!(s, "<polyline fill=\"none\" points=\"{}\" {style}/>", p.join(" "));
}

/// A horizontal legend of `(colour, dashed, label)` entries starting at `(x, y)`.
fn legend(s: &mut String, mut x: f64, y: f64, entries: &[(&str, bool, String)]) {
    for (colour, dashed, label) in entries {
        let dash = if *dashed { " stroke-dasharray=\"6 4\"" } else { "" };
        line(s, x, y - 4.0, x + 22.0, y - 4.0, &format!("stroke=\"{colour}\" stroke-width=\"2\"{dash}"));
        text(s, x + 27.0, y, "start", "", label);
        x += 27.0 + text_width(label, FONT) + 22.0;
    }
}

/// A horizontal bar chart, one bar per `(label, value)` in order, top to bottom. The first bar
/// sits right under the title; each value is written right of its bar (room for the longest is
/// kept free); names longer than the label column (at most 28% of the width) are shortened in
/// the middle, the full name and value in the bar's tooltip.
pub fn bars(title: &str, x_desc: &str, items: &[(String, u64)]) -> String {
    let n = items.len() as f64;
    let max = items.iter().map(|i| i.1).max().unwrap_or(1).max(1);
    let char_w = FONT * CHAR_EM;
    let max_chars = ((f64::from(WIDTH) * LABEL_SHARE) / char_w) as usize;
    let labels: Vec<String> = items.iter().map(|(name, _)| shorten(name, max_chars)).collect();
    let label_w = labels.iter().map(|l| text_width(l, FONT)).fold(4.0 * char_w, f64::max);
    let value_w = items.iter().map(|(_, v)| text_width(&si(*v), FONT)).fold(0.0, f64::max) + 8.0;
    let axis = count_axis(max);
    let top_value = axis.last().map(|t| t.0).unwrap_or(max as f64);
    let left = 10.0 + label_w + 8.0;
    // The last tick label is centred on the right end of the axis: keep half of it inside too.
    let right = f64::from(WIDTH)
        - 10.0
        - value_w.max(text_width(&axis.last().map(|t| t.1.clone()).unwrap_or_default(), FONT) / 2.0);
    let x = |v: f64| left + (right - left) * v / top_value;
    let top = 36.0;
    let axis_y = top + n * ROW + 4.0;
    let height = axis_y + 44.0;
    let mut s = open(height, title);
    for (v, _) in &axis {
        line(&mut s, x(*v), top, x(*v), axis_y, &format!("stroke=\"{GRID}\""));
    }
    for (k, ((name, v), label)) in items.iter().zip(&labels).enumerate() {
        let y = top + k as f64 * ROW;
        let _ = writeln!(
            s,
            "<g><title>{}: {}</title><rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{BLUE}\"/></g>",
            xml_text(name),
            count(*v),
            f(left),
            f(y + 2.0),
            f(x(*v as f64) - left),
            f(ROW - 4.0)
        );
        text(&mut s, left - 6.0, y + ROW / 2.0 + 4.0, "end", "", label);
        text(&mut s, x(*v as f64) + 4.0, y + ROW / 2.0 + 4.0, "start", "", &si(*v));
    }
    line(&mut s, left, axis_y, right, axis_y, &format!("stroke=\"{AXIS}\""));
    line(&mut s, left, top, left, axis_y, &format!("stroke=\"{AXIS}\""));
    for (v, label) in &axis {
        line(&mut s, x(*v), axis_y, x(*v), axis_y + 4.0, &format!("stroke=\"{AXIS}\""));
        text(&mut s, x(*v), axis_y + 17.0, "middle", "", label);
    }
    text(&mut s, (left + right) / 2.0, axis_y + 36.0, "middle", &format!(" fill=\"{MUTED}\""), x_desc);
    s.push_str("</svg>\n");
    s
}

/// The plot box of a line chart: left, right, top, bottom (px).
struct Frame {
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
}

impl Frame {
    fn x(&self, v: f64, max: f64) -> f64 {
        self.left + (self.right - self.left) * v / max
    }
    fn y(&self, v: f64, max: f64) -> f64 {
        self.bottom - (self.bottom - self.top) * v / max
    }
    /// Horizontal grid lines and labels of a bytes axis.
    fn bytes_grid(&self, s: &mut String, axis: &[(f64, String)], max: f64) {
        for (v, label) in axis {
            let y = self.y(*v, max);
            line(s, self.left, y, self.right, y, &format!("stroke=\"{GRID}\""));
            text(s, self.left - 6.0, y + 4.0, "end", "", label);
        }
    }
    fn border(&self, s: &mut String) {
        line(s, self.left, self.bottom, self.right, self.bottom, &format!("stroke=\"{AXIS}\""));
        line(s, self.left, self.top, self.left, self.bottom, &format!("stroke=\"{AXIS}\""));
    }
}

/// The training step's memory timeline: live bytes after each stage and the most live during
/// it, stage by stage (data, weights, forward layers, loss, backward layers, optimizer), the
/// phases as labelled bands, stage numbers on the x axis, and the inference peak as a dashed
/// red line labelled with its value. The training peak is marked with a dot and its value.
pub fn timeline(name: &str, m: &Memory) -> String {
    let n = m.timeline.len().max(1) as f64;
    let max = m.timeline.iter().map(|s| s.peak_bytes.max(s.live_bytes)).max().unwrap_or(1).max(m.inference_peak_bytes);
    let axis = bytes_axis(max);
    let ymax = axis.last().map(|t| t.0).unwrap_or(1.0);
    let title = format!(
        "{name}: memory of one training step at batch {} ({}, {}) - peak {}",
        m.batch,
        m.optimizer.name(),
        m.activation_dtype,
        bytes(m.training_peak_bytes)
    );
    let label_w = axis.iter().map(|t| text_width(&t.1, FONT)).fold(0.0, f64::max);
    let fr = Frame { left: 14.0 + label_w, right: f64::from(WIDTH) - 16.0, top: 70.0, bottom: 370.0 };
    let mut s = open(420.0, &title);
    legend(
        &mut s,
        fr.left,
        46.0,
        &[
            (BLUE, false, "live after the stage".into()),
            (ORANGE, false, "most live during the stage".into()),
            (RED, true, format!("inference peak {}", bytes(m.inference_peak_bytes))),
        ],
    );
    // Stage i (0-based) spans [i, i+1) on the x axis.
    let xs = |i: f64| fr.x(i, n);
    // Phase bands: one per run of stages of the same phase, shaded alternately, named on top
    // when the name fits.
    let mut runs: Vec<(Phase, usize, usize)> = Vec::new();
    for (i, st) in m.timeline.iter().enumerate() {
        match runs.last_mut() {
            Some((p, _, end)) if *p == st.phase => *end = i + 1,
            _ => runs.push((st.phase, i, i + 1)),
        }
    }
    for (k, (phase, a, b)) in runs.iter().enumerate() {
        let (x0, x1) = (xs(*a as f64), xs(*b as f64));
        if k % 2 == 1 {
            let _ = writeln!(
                s,
                "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"#f4f6f9\"/>",
                f(x0),
                f(fr.top),
                f(x1 - x0),
                f(fr.bottom - fr.top)
            );
        }
        if text_width(phase.name(), 11.0) + 4.0 <= x1 - x0 {
            text(
                &mut s,
                (x0 + x1) / 2.0,
                fr.top + 13.0,
                "middle",
                &format!(" font-size=\"11\" fill=\"{MUTED}\""),
                phase.name(),
            );
        }
    }
    fr.bytes_grid(&mut s, &axis, ymax);
    // x ticks: stage numbers (1-based), 1-2-5 steps, at the middle of the stage.
    let step = nice_step(n, 8).max(1.0);
    let mut stage_ticks = vec![1.0];
    let mut v = step;
    while v <= n {
        if v > 1.0 {
            stage_ticks.push(v);
        }
        v += step;
    }
    for v in stage_ticks {
        let x = xs(v - 0.5);
        line(&mut s, x, fr.bottom, x, fr.bottom + 4.0, &format!("stroke=\"{AXIS}\""));
        text(&mut s, x, fr.bottom + 17.0, "middle", "", &plain(v));
    }
    text(
        &mut s,
        (fr.left + fr.right) / 2.0,
        fr.bottom + 36.0,
        "middle",
        &format!(" fill=\"{MUTED}\""),
        &format!("stage of the training step (1-{}: data, weights, forward layers, loss, backward layers in reverse, optimizer)", n as u64),
    );
    let pts = |f_: fn(&crate::memory::Stage) -> u64| -> Vec<(f64, f64)> {
        m.timeline.iter().enumerate().map(|(i, st)| (xs(i as f64 + 0.5), fr.y(f_(st) as f64, ymax))).collect()
    };
    polyline(&mut s, &pts(|st| st.peak_bytes), &format!("stroke=\"{ORANGE}\" stroke-width=\"1.5\""));
    polyline(&mut s, &pts(|st| st.live_bytes), &format!("stroke=\"{BLUE}\" stroke-width=\"2\""));
    let iy = fr.y(m.inference_peak_bytes as f64, ymax);
    line(&mut s, fr.left, iy, fr.right, iy, &format!("stroke=\"{RED}\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\""));
    // Its label sits above the line near the right end, where the training curve has risen
    // above the inference peak (below the line when it is near the top).
    let ly = if iy - fr.top > 30.0 { iy - 5.0 } else { iy + 14.0 };
    text(
        &mut s,
        fr.right - 24.0,
        ly,
        "end",
        &format!(" fill=\"{RED}\""),
        &format!("inference peak {}", bytes(m.inference_peak_bytes)),
    );
    // The training peak: the first stage whose most-live bytes are the largest.
    if let Some((i, st)) =
        m.timeline.iter().enumerate().fold(None, |best: Option<(usize, &crate::memory::Stage)>, (i, st)| match best {
            Some((_, b)) if b.peak_bytes >= st.peak_bytes => best,
            _ => Some((i, st)),
        })
    {
        let (px, py) = (xs(i as f64 + 0.5), fr.y(st.peak_bytes as f64, ymax));
        let _ = writeln!(s, "<circle cx=\"{}\" cy=\"{}\" r=\"3.5\" fill=\"{ORANGE}\"/>", f(px), f(py));
        let label = format!("training peak {} ({} {})", bytes(st.peak_bytes), st.phase.name(), st.name);
        let label = shorten(&label, 60);
        let anchor = if px > (fr.left + fr.right) / 2.0 { ("end", px - 7.0) } else { ("start", px + 7.0) };
        text(&mut s, anchor.1, (py + 4.0).max(fr.top + 28.0), anchor.0, "", &label);
    }
    fr.border(&mut s);
    s.push_str("</svg>\n");
    s
}

/// A rate in SI units with a space before the unit: `67.0 TFLOP/s`, `4.80 TB/s`.
fn rate(v: f64, unit: &str) -> String {
    let s = si(v.max(0.0) as u64);
    match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => format!("{} {c}{unit}", &s[..i]),
        _ => format!("{s} {unit}"),
    }
}

/// Powers of ten from the decade at or below `lo` to the one at or above `hi` (`lo`, `hi` > 0).
fn decades(lo: f64, hi: f64) -> (i32, i32) {
    let a = lo.log10().floor() as i32;
    let b = (hi.log10().ceil() as i32).max(a + 1);
    (a, b)
}

/// `10^e` as an axis label in SI units: `0.01`, `1`, `100`, `10K`, `1G`.
fn decade_label(e: i32) -> String {
    if e < -3 {
        return format!("1e{e}");
    }
    let v = 10f64.powi(e);
    let (div, p) = [(1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")]
        .into_iter()
        .find(|(d, _)| v >= *d)
        .unwrap_or((1.0, ""));
    format!("{}{p}", plain(v / div))
}

/// The roofline of a report with `--hardware`: attainable FLOP/s against arithmetic intensity
/// (FLOP per byte moved), log-log; the roof is min(peak, intensity × bandwidth)
/// ([`crate::roofline::Roofline::attainable_flops_per_s`]). Each layer with FLOPs is a dot at its
/// intensity and its predicted FLOP/s (on the roof), or its measured FLOP/s when times are
/// attached; blue when compute-bound, orange when memory-bound; its name and figures in a
/// tooltip. Layers without FLOPs (ReLU, pooling) have no place on a log axis and are counted in
/// the caption. `None` without a roofline.
pub fn roofline(report: &Report) -> Option<String> {
    let r = report.roofline.as_ref()?;
    let mut pts = Vec::new();
    for l in &report.layers {
        let Some(lr) = &l.roofline else { continue };
        if l.flops == 0 || lr.bytes_moved == 0 {
            continue;
        }
        let t_ms = lr.measured_time_ms.unwrap_or(lr.predicted_time_ms);
        if t_ms <= 0.0 {
            continue;
        }
        pts.push((l, lr, lr.arithmetic_intensity, l.flops as f64 / (t_ms / 1e3)));
    }
    let skipped = report.layers.len() - pts.len();
    let measured = report.totals.roofline.as_ref().is_some_and(|t| t.measured_time_ms.is_some());
    let ridge = r.ridge_flops_per_byte;
    let ai_lo = pts.iter().map(|p| p.2).fold(ridge, f64::min) / 2.0;
    let ai_hi = pts.iter().map(|p| p.2).fold(ridge, f64::max) * 2.0;
    let perf_lo = pts.iter().map(|p| p.3).fold(r.attainable_flops_per_s(ai_lo), f64::min) / 2.0;
    let (xa, xb) = decades(ai_lo, ai_hi);
    let (ya, yb) = decades(perf_lo, r.peak_flops_per_s * 2.0);
    let title = format!(
        "{}: roofline on {} ({} peak {}, {}) at batch {}",
        report.spec.name,
        r.hardware,
        r.peak_kind,
        rate(r.peak_flops_per_s, "FLOP/s"),
        rate(r.memory_bandwidth_bytes_per_s, "B/s"),
        report.spec.batch
    );
    let label_w = (ya..=yb).map(|e| text_width(&decade_label(e), FONT)).fold(0.0, f64::max);
    let fr = Frame { left: 30.0 + label_w, right: f64::from(WIDTH) - 16.0, top: 62.0, bottom: 430.0 };
    let lx = |ai: f64| fr.left + (fr.right - fr.left) * (ai.log10() - f64::from(xa)) / f64::from(xb - xa);
    let ly = |p: f64| fr.bottom - (fr.bottom - fr.top) * (p.log10() - f64::from(ya)) / f64::from(yb - ya);
    let mut s = open(480.0, &title);
    let dot = |s: &mut String, x: f64, y: f64, c: &str| {
        let _ = writeln!(s, "<circle cx=\"{}\" cy=\"{}\" r=\"4\" fill=\"{c}\" fill-opacity=\"0.8\"/>", f(x), f(y));
    };
    let n_compute = pts.iter().filter(|p| p.1.bound == crate::roofline::Bound::Compute).count();
    let mut x = fr.left;
    for (c, label) in [
        (BLUE, format!("compute-bound layers ({n_compute})")),
        (ORANGE, format!("memory-bound layers ({})", pts.len() - n_compute)),
    ] {
        dot(&mut s, x + 5.0, 42.0, c);
        text(&mut s, x + 14.0, 46.0, "start", "", &label);
        x += 14.0 + text_width(&label, FONT) + 24.0;
    }
    let what = if measured { "measured" } else { "predicted (on the roof)" };
    text(&mut s, x, 46.0, "start", &format!(" fill=\"{MUTED}\""), &format!("dots: {what} FLOP/s"));
    for e in xa..=xb {
        let x = lx(10f64.powi(e));
        line(&mut s, x, fr.top, x, fr.bottom, &format!("stroke=\"{GRID}\""));
        text(&mut s, x, fr.bottom + 17.0, "middle", "", &decade_label(e));
    }
    for e in ya..=yb {
        let y = ly(10f64.powi(e));
        line(&mut s, fr.left, y, fr.right, y, &format!("stroke=\"{GRID}\""));
        text(&mut s, fr.left - 6.0, y + 4.0, "end", "", &decade_label(e));
    }
    // The roof, clipped to the plot.
    let (x0, x1) = (10f64.powi(xa), 10f64.powi(xb));
    let mut roof = vec![(x0, r.attainable_flops_per_s(x0))];
    if ridge > x0 && ridge < x1 {
        roof.push((ridge, r.peak_flops_per_s));
    }
    roof.push((x1, r.attainable_flops_per_s(x1)));
    let roof: Vec<(f64, f64)> = roof.into_iter().map(|(a, p)| (lx(a), ly(p.max(10f64.powi(ya))))).collect();
    polyline(&mut s, &roof, &format!("stroke=\"{AXIS}\" stroke-width=\"2\""));
    let (rx, ry) = (lx(ridge), ly(r.peak_flops_per_s));
    line(&mut s, rx, ry, rx, fr.bottom, &format!("stroke=\"{MUTED}\" stroke-dasharray=\"4 4\""));
    text(
        &mut s,
        rx + 4.0,
        fr.bottom - 6.0,
        "start",
        &format!(" fill=\"{MUTED}\""),
        &format!("ridge {:.1} FLOP/B", ridge),
    );
    text(
        &mut s,
        fr.right - 4.0,
        ry - 6.0,
        "end",
        "",
        &format!("{} peak {}", r.peak_kind, rate(r.peak_flops_per_s, "FLOP/s")),
    );
    // Below the slanted roof, where it starts (the roof rises to the right, away from the text).
    text(
        &mut s,
        lx(x0) + 4.0,
        (roof[0].1 + 16.0).min(fr.bottom - 6.0),
        "start",
        "",
        &format!("bandwidth {}", rate(r.memory_bandwidth_bytes_per_s, "B/s")),
    );
    for (l, lr, ai, perf) in &pts {
        let c = if lr.bound == crate::roofline::Bound::Compute { BLUE } else { ORANGE };
        let _ = write!(
            s,
            "<g><title>{}: {:.2} FLOP/B, {}, {}-bound</title>",
            xml_text(&l.name),
            ai,
            rate(*perf, "FLOP/s"),
            lr.bound.name()
        );
        dot(&mut s, lx(*ai), ly(*perf), c);
        s.push_str("</g>\n");
    }
    fr.border(&mut s);
    text(&mut s, (fr.left + fr.right) / 2.0, fr.bottom + 36.0, "middle", &format!(" fill=\"{MUTED}\""), &{
        let mut d = "arithmetic intensity (FLOP per byte moved; FLOPs = 2 MACs)".to_owned();
        if skipped > 0 {
            d.push_str(&format!("; {skipped} layers without FLOPs not shown"));
        }
        d
    });
    text(
        &mut s,
        12.0,
        (fr.top + fr.bottom) / 2.0,
        "middle",
        &format!(" transform=\"rotate(-90 12 {})\" fill=\"{MUTED}\"", f((fr.top + fr.bottom) / 2.0)),
        "FLOP/s",
    );
    s.push_str("</svg>\n");
    Some(s)
}

/// A line of the sweep chart: colour, label, and the figure it plots.
type Series = (&'static str, &'static str, fn(&SweepRow) -> u64);

/// Memory against batch size (`netstat memory --sweep-batch`): training peak, saved
/// activations and inference peak at each batch of `rows` (dots joined by lines; memory grows
/// linearly in the batch, so a linear x axis shows straight lines), and the `--fit` budget as a
/// dashed line when given.
pub fn sweep(name: &str, rows: &[SweepRow], budget: Option<u64>) -> String {
    let bmax = rows.iter().map(|r| r.batch).max().unwrap_or(1).max(1);
    let ymax_raw = rows
        .iter()
        .map(|r| r.training_peak_bytes.max(r.inference_peak_bytes).max(r.saved_activation_bytes))
        .max()
        .unwrap_or(1)
        .max(budget.unwrap_or(0));
    let axis = bytes_axis(ymax_raw);
    let ymax = axis.last().map(|t| t.0).unwrap_or(1.0);
    let xstep = nice_step(bmax as f64, 8).max(1.0);
    let xt = ticks(bmax as f64, xstep);
    let xmax = *xt.last().unwrap_or(&(bmax as f64));
    let label_w = axis.iter().map(|t| text_width(&t.1, FONT)).fold(0.0, f64::max);
    // Room right of the plot for the largest batch's figures.
    let end_w = rows
        .iter()
        .flat_map(|r| [r.training_peak_bytes, r.saved_activation_bytes, r.inference_peak_bytes])
        .map(|v| text_width(&bytes(v), FONT))
        .fold(0.0, f64::max)
        + 12.0;
    let fr = Frame { left: 14.0 + label_w, right: f64::from(WIDTH) - 10.0 - end_w, top: 62.0, bottom: 350.0 };
    let mut s = open(400.0, &format!("{name}: memory against batch size"));
    let series: [Series; 3] = [
        (BLUE, "training peak", |r| r.training_peak_bytes),
        (GREEN, "saved activations", |r| r.saved_activation_bytes),
        (ORANGE, "inference peak", |r| r.inference_peak_bytes),
    ];
    let mut entries: Vec<(&str, bool, String)> = series.iter().map(|(c, l, _)| (*c, false, (*l).to_owned())).collect();
    if let Some(b) = budget {
        entries.push((RED, true, format!("budget {}", bytes(b))));
    }
    legend(&mut s, fr.left, 44.0, &entries);
    fr.bytes_grid(&mut s, &axis, ymax);
    for v in &xt {
        let x = fr.x(*v, xmax);
        line(&mut s, x, fr.top, x, fr.bottom, &format!("stroke=\"{GRID}\""));
        text(&mut s, x, fr.bottom + 17.0, "middle", "", &plain(*v));
    }
    if let Some(b) = budget {
        let y = fr.y(b as f64, ymax);
        line(
            &mut s,
            fr.left,
            y,
            fr.right,
            y,
            &format!("stroke=\"{RED}\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\""),
        );
    }
    let mut sorted: Vec<&SweepRow> = rows.iter().collect();
    sorted.sort_by_key(|r| r.batch);
    for (c, label, get) in series {
        let pts: Vec<(f64, f64)> =
            sorted.iter().map(|r| (fr.x(r.batch as f64, xmax), fr.y(get(r) as f64, ymax))).collect();
        polyline(&mut s, &pts, &format!("stroke=\"{c}\" stroke-width=\"2\""));
        for (r, (x, y)) in sorted.iter().zip(&pts) {
            let _ = writeln!(
                s,
                "<g><title>batch {}: {label} {}</title><circle cx=\"{}\" cy=\"{}\" r=\"3.5\" fill=\"{c}\"/></g>",
                r.batch,
                bytes(get(r)),
                f(*x),
                f(*y)
            );
        }
    }
    // The largest batch's figures right of its dots, pushed apart to 14 px when they are close.
    if let Some(last) = sorted.last() {
        let x = fr.x(last.batch as f64, xmax);
        let mut labels: Vec<(f64, &str, String)> =
            series.iter().map(|(c, _, get)| (fr.y(get(last) as f64, ymax) + 4.0, *c, bytes(get(last)))).collect();
        labels.sort_by(|a, b| a.0.total_cmp(&b.0));
        for i in 1..labels.len() {
            labels[i].0 = labels[i].0.max(labels[i - 1].0 + 14.0);
        }
        for (y, c, t) in labels {
            text(&mut s, x + 8.0, y, "start", &format!(" fill=\"{c}\""), &t);
        }
    }
    fr.border(&mut s);
    text(&mut s, (fr.left + fr.right) / 2.0, fr.bottom + 36.0, "middle", &format!(" fill=\"{MUTED}\""), "batch size");
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_svg_with_one_rect_per_item_and_labels() {
        let items = vec![("conv1".to_owned(), 34_944u64), ("fc1".to_owned(), 26_218_496)];
        let s = bars("t", "parameters", &items);
        assert!(s.starts_with("<svg"), "{}", &s[..40]);
        assert!(s.contains(">conv1</text>") && s.contains(">fc1</text>"), "{s}");
        // 26,218,496 → "26.2M" as the bar's value label; the full count in its tooltip
        assert!(s.contains(">26.2M</text>") && s.contains("<title>fc1: 26,218,496</title>"), "{s}");
        assert_eq!(s.matches("<rect").count(), 1 + 2, "background + one bar per item");
        // same input, same bytes
        assert_eq!(s, bars("t", "parameters", &items));
    }

    #[test]
    fn the_first_bar_sits_right_under_the_title() {
        // top = 36 px: bar k's rect starts at 36 + 18·k + 2.
        let s = bars("t", "x", &[("a".into(), 5), ("b".into(), 10)]);
        assert!(s.contains("y=\"38\" width="), "{s}");
        assert!(s.contains("y=\"56\" width="), "{s}");
    }

    #[test]
    fn long_names_are_shortened_in_the_middle_and_kept_whole_in_the_tooltip() {
        let long = "features.denseblock4.denselayer16.norm2.conv2.very.long.tail";
        // 28% of 800 px at 7.2 px a character: 31 characters; 15 from the start, 15 from the end.
        assert_eq!(shorten(long, 31), "features.denseb….very.long.tail");
        assert_eq!(shorten("model.layers.0.post_attention_layernorm", 31), "model.layers.0.…ntion_layernorm");
        assert_eq!(shorten(long, 31).chars().count(), 31);
        assert_eq!(shorten("conv1", 31), "conv1");
        let s = bars("t", "x", &[(long.into(), 1)]);
        assert!(s.contains(&format!(">{}</text>", shorten(long, 31))), "{s}");
        assert!(s.contains(&format!("<title>{long}: 1</title>")));
        // The label column (text ends at `left - 6`) stays within 28% of the width + margins.
        let left: f64 = s.split("<rect x=\"").nth(1).unwrap().split('"').next().unwrap().parse().unwrap();
        assert!(left <= 10.0 + 0.28 * 800.0 + 8.0, "{left}");
    }

    #[test]
    fn hostile_names_are_escaped() {
        let s = bars("<b>", "x", &[("<img src=x onerror=alert(1)>\u{1b}]0;t\u{7}".into(), 1)]);
        assert!(!s.contains("<img") && !s.contains("<b>") && !s.contains('\u{1b}'), "{s}");
        assert!(s.contains("<title>&lt;img src=x onerror=alert(1)&gt;\u{FFFD}]0;t\u{FFFD}: 1</title>"), "{s}");
    }

    #[test]
    fn steps_are_1_2_5() {
        // max/5: 26.2M/5 = 5.24M → 10M; 776 MiB/5 = 155 → 200; 9/5 = 1.8 → 2; 1/5 = 0.2 → 0.2.
        assert_eq!(nice_step(26_218_496.0, 5), 10_000_000.0);
        assert_eq!(nice_step(776.0, 5), 200.0);
        assert_eq!(nice_step(9.0, 5), 2.0);
        assert_eq!(nice_step(24.0, 5), 5.0);
        assert_eq!(nice_step(1.0, 5), 0.2);
        let labels: Vec<String> = count_axis(26_218_496).into_iter().map(|t| t.1).collect();
        assert_eq!(labels, ["0", "10M", "20M", "30M"]);
    }

    #[test]
    fn memory_ticks_are_1_2_5_steps_of_one_binary_unit() {
        // 813,694,976 B = 776 MiB (the torchvision AlexNet training peak scale): step 200 MiB.
        let t = bytes_axis(776 << 20);
        let labels: Vec<&str> = t.iter().map(|t| t.1.as_str()).collect();
        assert_eq!(labels, ["0 B", "200 MiB", "400 MiB", "600 MiB", "800 MiB"]);
        assert_eq!(t[1].0, (200u64 << 20) as f64);
        // 2.5 GiB: step 0.5 GiB.
        let labels: Vec<String> = bytes_axis(5 << 29).into_iter().map(|t| t.1).collect();
        assert_eq!(labels, ["0 B", "0.5 GiB", "1 GiB", "1.5 GiB", "2 GiB", "2.5 GiB"]);
    }
}
