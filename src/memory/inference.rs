//! The inference walk: live bytes through one forward pass over a [`Schedule`] in
//! [`Mode::Inference`](super::schedule::Mode::Inference).

use super::schedule::{Schedule, Storage};
use super::{Live, Sizes};
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
}

/// Walk `s` from `start` live bytes (input + weights): each layer allocates its output
/// (unless it aliases an input) and any bytes it receives from other devices; the peak is
/// taken; then the storages past their last use, and the received bytes, are freed.
///
/// Errors: a byte count overflows u64 (the message names the layer).
pub(crate) fn walk(a: &Analysis, s: &Schedule, z: &Sizes, start: u64) -> Result<Inference, String> {
    let mut live = Live { now: start };
    let mut out = Inference { activation_bytes: 0, peak_bytes: start, peak_layer: "weights".into() };
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
        if live.now > out.peak_bytes {
            out.peak_bytes = live.now;
            out.peak_layer = name.clone();
        }
        live.free(received);
        for &k in &frees[p] {
            live.free(z.output(a, k).map_err(at)?);
        }
    }
    Ok(out)
}
