//! The candle glue shared by the layer kinds and by `netstat measure`: what a kind needs to
//! build itself in candle ([`build`]: the `Build` trait, the build context, seeded weights)
//! and the gradient-correct helpers its builder is made of ([`ops`]).
//!
//! Kinds (src/kinds) import this module, and so does [`crate::measure`]; this module imports
//! neither, so the dependency runs one way: kinds → candle ← measure.

pub mod build;
pub mod model;
pub mod ops;
