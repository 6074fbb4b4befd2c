//! The inference walk: live bytes through one forward pass over a [`Schedule`] in
//! [`Mode::Inference`](super::schedule::Mode::Inference).

use super::schedule::{Schedule, Storage};
use super::{Live, Phase, Sizes, Stage};
use crate::analysis::Analysis;
use crate::shape::add;

/// What the inference walk finds, bytes.
pub(crate) struct Inference {
    /// Σ bytes of the outputs it allocates (aliases 0).
    pub activation_bytes: u64,
    /// Most bytes live.
    pub peak_bytes: u64,
    /// The layer reaching it (`weights` if none exceeds the start).
    pub peak_layer: String,
    /// One [`Phase::Forward`] row per layer, in execution order, when the walk was asked to
    /// record them (else empty): live bytes after the layer and its frees, and at its worst
    /// moment (its output and received bytes allocated, nothing yet freed).
    pub layers: Vec<Stage>,
}

/// Walk `s` from `start` live bytes (input + weights): each layer allocates its output
/// (unless it aliases an input) and any bytes it receives from other devices; the peak is
/// taken; then the storages past their last use, and the received bytes, are freed. With
/// `record`, each layer's live and peak bytes are kept in [`Inference::layers`].
///
/// Errors: a byte count overflows u64 (the message names the layer).
pub(crate) fn walk(a: &Analysis, s: &Schedule, z: &Sizes, start: u64, record: bool) -> Result<Inference, String> {
    let mut live = Live { now: start };
    let mut out = Inference {
        activation_bytes: 0,
        peak_bytes: start,
        peak_layer: "weights".into(),
        layers: Vec::with_capacity(if record { s.order.len() } else { 0 }),
    };
    let frees = s.frees_after_forward();
    for (p, &i) in s.order.iter().enumerate() {
        let name = &a.spec.layers[i].id.name;
        let at = |m: String| format!("layer \"{name}\": {m}");
        if s.storage[i] == Storage::Layer(i) {
            let b = z.output(a, i).map_err(at)?;
            out.activation_bytes = add(out.activation_bytes, b, "activation bytes").map_err(at)?;
            live.alloc(b).map_err(at)?;
        }
        let received = z.split.received_bytes(a, i, z.act).map_err(at)?;
        live.alloc(received).map_err(at)?;
        let peak = live.now;
        if peak > out.peak_bytes {
            out.peak_bytes = peak;
            out.peak_layer = name.clone();
        }
        live.free(received);
        for &k in &frees[p] {
            live.free(z.output(a, k).map_err(at)?);
        }
        if record {
            out.layers.push(Stage {
                phase: Phase::Forward,
                name: name.clone(),
                live_bytes: live.now,
                peak_bytes: peak,
            });
        }
    }
    Ok(out)
}
