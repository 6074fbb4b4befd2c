//! netstat: what a neural network costs — parameters, MACs/FLOPs and memory, layer by layer —
//! computed exactly from a YAML spec.
//!
//! Data flows one way:
//!
//! ```text
//! spec (YAML → checked layers, each a kinds::Kind)
//!   → graph (DAG, execution order)
//!   → analysis (shapes, params, MACs per layer: each kind's Op rules)
//!       → memory (inference peak, training step), devices, roofline, conventions
//!       → measure (candle run: builds each kind through candle, times, counts bytes)
//!           → measure::result (plain data)
//!   → report (formats analysis, memory and measure::result: table, Markdown, CSV, JSON, LaTeX)
//! ```
//!
//! - [`kinds`] owns every per-kind rule: shape, params, MACs, saved tensors, its candle builder
//!   and candle memory rule, its peer-convention facts and its device-split rule. It imports
//!   [`candle`] (the glue a builder is made of), never [`measure`].
//! - [`measure`] imports kinds, analysis, memory and candle; nothing but [`cli`] imports
//!   measure, except [`report`], which reads only [`measure::result`].
//! - [`report::units`] is a leaf: it imports nothing from the crate.

pub mod analysis;
pub mod candle;
pub mod cli;
pub mod conventions;
pub mod error;
pub mod files;
pub mod gpu;
pub mod graph;
pub mod hardware;
pub mod kinds;
pub mod measure;
pub mod memory;
pub mod onnx;
pub mod peak;
pub mod report;
pub mod roofline;
pub mod shape;
pub mod spec;

pub use error::Error;

/// Load a spec file, apply overrides and analyse it.
pub fn analyze_file(path: &str, overrides: &analysis::Overrides) -> Result<analysis::Analysis, Error> {
    // --input and --batch also set an ONNX model's symbolic dims.
    let onnx = onnx::ImportOptions { input: overrides.input.clone(), batch: overrides.batch, ..overrides.onnx.clone() };
    let mut spec = spec::load_with(path, &onnx)?;
    overrides.apply(&mut spec);
    analysis::analyze(spec).map_err(|mut e| {
        // The spec alone may be fine: say which overrides the analysis ran with.
        if let Some(flags) = overrides.flags() {
            e.message = format!("{} (analysed with {flags})", e.message);
        }
        e.into()
    })
}
