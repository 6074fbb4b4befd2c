//! SVG charts of a report (plotters, SVG backend only): horizontal bars of params and of MACs
//! per layer. Text is written as plain SVG `<text>` elements (plotters' "naive" font layout),
//! so generating a chart needs no system font and the output is byte-for-byte deterministic.
//!
//! [`charts`] is the one place that decides which charts a report gets: a chart that needs data
//! a report may lack (the memory timeline once the memory model lands, the roofline once
//! measured timings exist) is added there behind an `if let Some(..)` on that data.

use super::units::{bytes, count, si};
use super::Report;
use crate::memory::Memory;
use plotters::prelude::*;

/// Width of every chart, in SVG user units (px).
pub const WIDTH: u32 = 800;
/// Height of one bar row, px.
const ROW: u32 = 18;

/// The charts of `report`: `(file suffix, SVG text)`, e.g. `("params", "<svg …")`, written as
/// `NAME.params.svg`. Layers whose value is 0 are left out of a bar chart; a chart with no
/// non-zero layer is not produced. `memory` (with its timeline) adds the memory timeline
/// (`NAME.memory.svg`). The roofline joins here once measured timings exist.
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
    out
}

/// The training step's memory timeline: live bytes after each stage and the most live during
/// it, stage by stage (data, weights, forward layers, loss, backward layers, optimizer), with the
/// inference peak as a horizontal line.
pub fn timeline(name: &str, m: &Memory) -> String {
    let n = m.timeline.len().max(1);
    let max =
        m.timeline.iter().map(|s| s.peak_bytes.max(s.live_bytes)).max().unwrap_or(1).max(m.inference_peak_bytes).max(1)
            as f64;
    let title = format!(
        "{name}: memory of one training step at batch {} ({}, {}) - peak {}",
        m.batch,
        m.optimizer.name(),
        m.activation_dtype,
        bytes(m.training_peak_bytes)
    );
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, 420)).into_drawing_area();
        draw_timeline(&root, &title, m, n, max).expect("drawing into a String cannot fail");
        root.present().expect("drawing into a String cannot fail");
    }
    svg
}

fn draw_timeline(
    root: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    title: &str,
    m: &Memory,
    n: usize,
    max: f64,
) -> Result<(), DrawingAreaErrorKind<std::io::Error>> {
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..n as f64, 0f64..max * 1.1)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_labels(6)
        .y_label_formatter(&|y| bytes(y.round() as u64))
        .x_desc("stage of the training step (forward layers, then backward layers in reverse)")
        .label_style(("sans-serif", 15))
        .draw()?;
    let blue = RGBColor(0x3b, 0x6e, 0xa8);
    let orange = RGBColor(0xd9, 0x7a, 0x27);
    let gray = RGBColor(0x88, 0x88, 0x88);
    // Phase boundaries, labelled at the top.
    let mut last = None;
    for (i, s) in m.timeline.iter().enumerate() {
        // Data and weights are one stage each at the very left; label the two long phases only.
        if last != Some(s.phase) && matches!(s.phase, crate::memory::Phase::Forward | crate::memory::Phase::Backward) {
            last = Some(s.phase);
            let x = i as f64;
            chart
                .draw_series(std::iter::once(PathElement::new(vec![(x, 0.0), (x, max * 1.1)], gray.stroke_width(1))))?;
            chart.draw_series(std::iter::once(Text::new(
                s.phase.name().to_owned(),
                (x, max * 1.08),
                ("sans-serif", 13).into_font().color(&gray),
            )))?;
        }
    }
    let peak: Vec<(f64, f64)> =
        m.timeline.iter().enumerate().map(|(i, s)| (i as f64 + 0.5, s.peak_bytes as f64)).collect();
    let live: Vec<(f64, f64)> =
        m.timeline.iter().enumerate().map(|(i, s)| (i as f64 + 0.5, s.live_bytes as f64)).collect();
    chart
        .draw_series(std::iter::once(PathElement::new(peak, orange.stroke_width(2))))?
        .label("most live during the stage")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], orange.stroke_width(2)));
    chart
        .draw_series(std::iter::once(PathElement::new(live, blue.stroke_width(2))))?
        .label("live after the stage")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], blue.stroke_width(2)));
    let inf = m.inference_peak_bytes as f64;
    chart
        .draw_series(std::iter::once(PathElement::new(vec![(0.0, inf), (n as f64, inf)], gray.stroke_width(1))))?
        .label(format!("inference peak {}", bytes(m.inference_peak_bytes)))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], gray.stroke_width(1)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(gray)
        .label_font(("sans-serif", 14))
        .draw()?;
    Ok(())
}

/// A horizontal bar chart, one bar per `(label, value)` in order, top to bottom.
pub fn bars(title: &str, x_desc: &str, items: &[(String, u64)]) -> String {
    let n = items.len().max(1) as u32;
    let height = 90 + ROW * n;
    let max = items.iter().map(|i| i.1).max().unwrap_or(1).max(1) as f64;
    let label_width = items.iter().map(|i| i.0.chars().count()).max().unwrap_or(4).clamp(4, 40) as u32 * 7 + 12;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        draw_bars(&root, title, x_desc, items, max, label_width).expect("drawing into a String cannot fail");
        root.present().expect("drawing into a String cannot fail");
    }
    svg
}

fn draw_bars(
    root: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    title: &str,
    x_desc: &str,
    items: &[(String, u64)],
    max: f64,
    label_width: u32,
) -> Result<(), DrawingAreaErrorKind<std::io::Error>> {
    root.fill(&WHITE)?;
    let n = items.len() as u32;
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(36)
        .y_label_area_size(label_width)
        .build_cartesian_2d(0f64..max * 1.12, (0u32..n).into_segmented())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n as usize)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
                // Row 0 is drawn at the top.
                n.checked_sub(1 + *i).and_then(|k| items.get(k as usize)).map(|x| x.0.clone()).unwrap_or_default()
            }
            SegmentValue::Last => String::new(),
        })
        .x_labels(6)
        .x_label_formatter(&|x| si(x.round() as u64))
        .x_desc(x_desc)
        .label_style(("sans-serif", 15))
        .draw()?;
    let blue = RGBColor(0x3b, 0x6e, 0xa8);
    chart.draw_series(items.iter().enumerate().map(|(k, (_, v))| {
        let row = n - 1 - k as u32;
        let mut r =
            Rectangle::new([(0.0, SegmentValue::Exact(row)), (*v as f64, SegmentValue::Exact(row + 1))], blue.filled());
        r.set_margin(2, 2, 0, 0);
        r
    }))?;
    chart.draw_series(items.iter().enumerate().map(|(k, (_, v))| {
        let row = n - 1 - k as u32;
        Text::new(format!(" {}", si(*v)), (*v as f64, SegmentValue::CenterOf(row)), ("sans-serif", 14).into_font())
    }))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_svg_with_one_rect_per_item_and_labels() {
        let items = vec![("conv1".to_owned(), 34_944u64), ("fc1".to_owned(), 26_218_496)];
        let s = bars("t", "parameters", &items);
        assert!(s.starts_with("<svg"), "{}", &s[..40]);
        assert!(s.contains(">\nconv1\n</text>") && s.contains(">\nfc1\n</text>"), "{s}");
        // 26,218,496 → "26.2M" as the bar's value label
        assert!(s.contains(">\n 26.2M\n</text>"));
        assert_eq!(s.matches("<rect").count(), 1 + 2, "background + one bar per item");
        // same input, same bytes
        assert_eq!(s, bars("t", "parameters", &items));
    }
}
