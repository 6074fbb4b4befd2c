//! netstat: what a neural network costs — parameters, MACs/FLOPs and memory, layer by layer —
//! computed exactly from a YAML spec.
//!
//! Data flows one way: [`spec`] (YAML → checked layers) → [`graph`] (DAG) → [`analysis`]
//! (shapes, params, MACs) → [`report`] (table, Markdown, CSV, JSON).

pub mod analysis;
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
pub mod peak;
pub mod report;
pub mod roofline;
pub mod shape;
pub mod spec;

pub use error::Error;

/// Load a spec file, apply overrides and analyse it.
pub fn analyze_file(path: &str, overrides: &analysis::Overrides) -> Result<analysis::Analysis, Error> {
    let mut spec = spec::load(path)?;
    overrides.apply(&mut spec);
    analysis::analyze(spec).map_err(|mut e| {
        // The spec alone may be fine: say which overrides the analysis ran with.
        if let Some(flags) = overrides.flags() {
            e.message = format!("{} (analysed with {flags})", e.message);
        }
        e.into()
    })
}
