//! `netstat measure`: build the analysed graph in candle on the CPU (or, in a `cuda` build, a
//! CUDA device: [`device`]), run it, and put real time
//! and real memory beside the analysis.
//!
//! Owns the candle run: [`net`] (execution in graph order with the analysis' liveness),
//! [`alloc`] (the counting allocator), [`optim`], [`predict`] (the candle memory model), [`result`] (what a run found, as plain data). The
//! builders themselves live with the kinds, on the glue in [`crate::candle`]. Nothing else in
//! netstat depends on this module but the command line.

pub mod alloc;
pub mod device;
pub mod gradcheck;
pub mod net;
pub mod optim;
pub mod predict;
pub mod result;
pub mod run;

pub use run::{measure, MeasureError, Settings};
