//! The inference walk: live bytes through one forward pass over a [`Schedule`] in
//! [`Mode::Inference`](super::schedule::Mode::Inference).

use super::schedule::{NewSaved, Schedule, Storage};
use super::{Live, Phase, Sizes, Stage};
use crate::analysis::Analysis;
use crate::kinds::FwdTensor;
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

/// Walk `s` from `start` live bytes (input + weights): before a layer, the shared tensors it is
/// the first to read are allocated ([`Schedule::shared_forward`]); a multi-op layer
/// ([`Schedule::forward`]) allocates and frees its intermediates op by op, the peak taken at
/// each op's end; each layer allocates its output (unless it aliases an input) and any bytes
/// it receives from other devices; the peak is taken; then the received bytes, the layer's
/// remaining intermediates (a returned one when [`Schedule::returned_free_after`] says), the
/// storages past their last use and the shared tensors past theirs are freed. With `record`,
/// each layer's live and peak bytes are kept in [`Inference::layers`].
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
    // Bytes freed after each position: returned intermediates and shared tensors.
    let mut deferred = vec![0u64; s.order.len()];
    let temp = |i: usize, t: FwdTensor| z.saved(i, &NewSaved { elements: t.elements, dtype: t.dtype, index: 0 });
    let shared_bytes = |sh: &super::schedule::SharedForward| {
        z.saved(sh.layer, &NewSaved { elements: sh.tensor.elements, dtype: sh.tensor.dtype, index: 0 })
    };
    let mut shared = s.shared_forward.iter().peekable();
    for (p, &i) in s.order.iter().enumerate() {
        let name = &a.spec.layers[i].id.name;
        let at = |m: String| format!("layer \"{name}\": {m}");
        while let Some(sh) = shared.next_if(|sh| sh.first == p) {
            let b = shared_bytes(sh).map_err(at)?;
            live.alloc(b).map_err(at)?;
            deferred[sh.free_after] = add(deferred[sh.free_after], b, "live bytes").map_err(at)?;
        }
        // A multi-op layer's intermediates, op by op (the peak sampled at each op's end).
        let mut peak = live.now;
        let mut left = 0u64; // its intermediates still live when the output is made
        if let Some(fp) = &s.forward[i] {
            for step in &fp.steps {
                if let Some(t) = step.alloc {
                    let b = temp(i, t).map_err(at)?;
                    live.alloc(b).map_err(at)?;
                    left += b;
                }
                peak = peak.max(live.now);
                for &t in &step.frees {
                    let b = temp(i, t).map_err(at)?;
                    live.free(b);
                    left -= b;
                }
            }
        }
        if s.storage[i] == Storage::Layer(i) {
            let b = z.output(a, i).map_err(at)?;
            out.activation_bytes = add(out.activation_bytes, b, "activation bytes").map_err(at)?;
            live.alloc(b).map_err(at)?;
        }
        let received = z.split.received_bytes(a, i, z.act).map_err(at)?;
        live.alloc(received).map_err(at)?;
        peak = peak.max(live.now);
        if peak > out.peak_bytes {
            out.peak_bytes = peak;
            out.peak_layer = name.clone();
        }
        live.free(received);
        if let Some(r) = s.forward[i].as_ref().and_then(|fp| fp.returned) {
            let b = temp(i, r).map_err(at)?;
            left -= b;
            let q = s.returned_free_after[i];
            deferred[q] = add(deferred[q], b, "live bytes").map_err(at)?;
        }
        live.free(left);
        for &k in &frees[p] {
            live.free(z.output(a, k).map_err(at)?);
        }
        live.free(std::mem::take(&mut deferred[p]));
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
