//! `netstat measure`: build the analysed graph in candle on the CPU (or, in a `cuda` build, a
//! CUDA device: [`device`]), run it, and put real time
//! and real memory beside the analysis.
//!
//! Owns the candle runtime: [`build`] (the `Build` trait each kind implements), [`ops`]
//! (gradient-correct pools, padding), [`net`] (execution in graph order with the analysis'
//! liveness), [`alloc`] (the counting allocator), [`optim`], [`predict`] (the candle memory
//! model). Nothing else in netstat depends on this module.

pub mod alloc;
pub mod build;
pub mod device;
pub mod gradcheck;
pub mod net;
pub mod ops;
pub mod optim;
pub mod predict;
pub mod run;

pub use run::{measure, Settings};
