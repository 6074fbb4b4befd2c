//! `slice`: elements `start`, `start + step`, … before `end` along dimension `dim` (PyTorch
//! `x[:, start:end:step]`, `x.narrow(dim, start, length)`, `torch.chunk`/`split` pieces; ONNX
//! `Slice` on one axis). No params; 0 MACs (a view).

use super::{norm_dim, Cost, KindError, KindSpec, Op, Peer, Saved, Split};
use crate::error::SpecError;
use crate::shape::Shape;
use crate::spec::fields::Fields;

/// A range of indices along one dimension.
#[derive(Debug, Clone, PartialEq)]
pub struct Slice {
    /// The dimension (default 1; negative counts from the end).
    pub dim: i64,
    /// The first index (default 0; negative counts from the end).
    pub start: i64,
    /// One past the last index (default: the dimension's size; negative counts from the end).
    pub end: Option<i64>,
    /// The distance between taken indices (default 1; ≥ 1).
    pub step: u64,
}

impl KindSpec for Slice {
    const NAME: &'static str = "slice";
    const FIELDS: &'static [&'static str] = &["dim", "start", "end", "step"];
    /// Errors: a non-integer field, `step` < 1.
    fn parse(f: &Fields) -> Result<Self, SpecError> {
        Ok(Slice {
            dim: f.int("dim")?.unwrap_or(1),
            start: f.int("start")?.unwrap_or(0),
            end: f.int("end")?,
            step: f.pos("step")?.unwrap_or(1),
        })
    }
}

/// An index `i` into a dimension of `size`, as Python and ONNX `Slice` clamp it: a negative
/// index counts from the end, then the result is clamped to `[0, size]`.
fn clamp(i: i64, size: u64) -> u64 {
    let n = i128::from(size);
    let j = if i < 0 { i128::from(i) + n } else { i128::from(i) };
    j.clamp(0, n) as u64
}

impl Slice {
    /// The dimension index, the clamped start and the output length along it, for input `x`.
    ///
    /// Length = ⌈(end − start) / step⌉ after clamping (Python's `range(start, end, step)`).
    /// Errors: `dim` out of range; an empty range (clamped start ≥ clamped end).
    pub fn range(&self, x: &Shape) -> Result<(usize, u64, u64), KindError> {
        let d = norm_dim(self.dim, x, "dim")?;
        let size = x.0[d];
        let start = clamp(self.start, size);
        let end = self.end.map_or(size, |e| clamp(e, size));
        if start >= end {
            let end_text = self.end.map_or("the end".to_string(), |e| e.to_string());
            return Err(KindError::field(
                "start",
                format!(
                    "start {} and end {end_text} select nothing of dimension {d} of size {size} (input {x}): \
                     start must come before end",
                    self.start
                ),
            ));
        }
        Ok((d, start, (end - start).div_ceil(self.step)))
    }
}

impl Op for Slice {
    /// Peers: no class they single out, no bias.
    fn peer(&self, _output: &Shape) -> Peer {
        Peer::OTHER
    }

    /// Split along channels, no exchange.
    fn split(&self, _devices: u64) -> Split {
        Split::CHANNELS
    }

    /// Saved for backward: nothing. PyTorch's `SliceBackward0` keeps the input's sizes, `dim`,
    /// `start`, `end` and `step` only (derivatives.yaml `slice.Tensor`:
    /// `slice_backward_wrapper(grad, self.sym_sizes(), dim, start, end, step)`).
    fn saved(&self, _inputs: &[Shape], _output: &Shape) -> Result<Vec<Saved>, KindError> {
        Ok(Vec::new())
    }

    /// A view: the output is the input's storage (PyTorch slicing with any step is a strided view).
    fn aliases_input(&self, _training: bool) -> bool {
        true
    }

    /// Output: the input with dimension `dim` of length ⌈(end − start) / step⌉. 0 params, 0 MACs.
    fn analyze(&self, inputs: &[Shape]) -> Result<Cost, KindError> {
        let x = &inputs[0];
        let (d, _, len) = self.range(x)?;
        let mut out = x.0.clone();
        out[d] = len;
        Ok(Cost { output: Shape(out), params: 0, buffers: 0, macs: 0 })
    }
}

impl crate::candle::build::Build for Slice {
    /// `narrow(dim, start, length)` for step 1 (a view); for a larger step an `index_select` of
    /// the taken indices ([`crate::candle::ops::strided`], a copy; backward scatters into zeros).
    fn build(&self, cx: &mut crate::candle::build::Ctx) -> candle_core::Result<Box<dyn crate::candle::build::Layer>> {
        let (d, start, len) = self.range(&cx.inputs[0]).map_err(|e| candle_core::Error::msg(e.message))?;
        let (start, len, step) = (start as usize, len as usize, self.step as usize);
        Ok(Box::new(move |xs: &[candle_core::Tensor], _| crate::candle::ops::strided(&xs[0], d, start, len, step)))
    }

    /// Candle memory: step 1 is a strided view of the input, no bytes of its own. A larger step
    /// is an `index_select` copy: the output, the u32 index tensor (4 bytes per taken index) and,
    /// for a non-contiguous input, a contiguous copy of it first; all three kept when tracked.
    fn memory(&self, at: &crate::candle::model::At) -> crate::candle::model::CandleLayer {
        if self.step == 1 {
            return crate::candle::model::CandleLayer { strided_output: true, ..at.view() };
        }
        let len = self.range(&at.inputs[0]).map_or(0, |r| r.2);
        let (out, idx, copy) = (at.out(), 4 * len, at.copy_in());
        crate::candle::model::CandleLayer {
            output: out,
            peak: copy + idx + out,
            retained: if at.state.tracked { copy + idx + out } else { out },
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{parse, run};
    use super::*;

    fn out(yaml: &str, input: &[u64]) -> Vec<u64> {
        run::<Slice>(yaml, input).unwrap().output.0
    }

    #[test]
    fn ranges_as_python_slices() {
        // x[:, :, 2:10] on 1×3×16: 10 − 2 = 8 → 1×3×8, 0 params, 0 MACs.
        let c = run::<Slice>("{dim: 2, start: 2, end: 10}", &[1, 3, 16]).unwrap();
        assert_eq!((c.output, c.params, c.macs), (Shape(vec![1, 3, 8]), 0, 0));
        // Defaults: dim 1, whole range: 1×6×4 stays 1×6×4.
        assert_eq!(out("{}", &[1, 6, 4]), [1, 6, 4]);
        // torch.chunk(x, 2, dim=1) on 1×6×4: second piece x[:, 3:6] → 1×3×4.
        assert_eq!(out("{start: 3}", &[1, 6, 4]), [1, 3, 4]);
        // x[:, 1:6:2] → indices 1, 3, 5: ⌈5/2⌉ = 3.
        assert_eq!(out("{start: 1, end: 6, step: 2}", &[1, 6, 4]), [1, 3, 4]);
        // x[:, 0:6:4] → indices 0, 4: ⌈6/4⌉ = 2.
        assert_eq!(out("{end: 6, step: 4}", &[1, 6, 4]), [1, 2, 4]);
        // Negative: x[..., -3:-1] on last dim of size 4 → 1..3: 2.
        assert_eq!(out("{dim: -1, start: -3, end: -1}", &[1, 6, 4]), [1, 6, 2]);
        // Clamped as Python: x[:, -100:100] on size 6 is 0..6; ONNX's INT64_MAX end is the size.
        assert_eq!(out("{start: -100, end: 100}", &[1, 6, 4]), [1, 6, 4]);
        assert_eq!(out("{start: 2, end: 9223372036854775807}", &[1, 6, 4]), [1, 4, 4]);
        assert_eq!(out("{start: -9223372036854775808, end: 1}", &[1, 6, 4]), [1, 1, 4]);
    }

    #[test]
    fn empty_ranges_and_bad_fields_are_refused() {
        // start ≥ end (after clamping): nothing selected.
        let e = run::<Slice>("{start: 4, end: 4}", &[1, 6, 4]).unwrap_err();
        assert_eq!(e.field, Some("start"));
        assert!(e.message.contains("start 4 and end 4 select nothing of dimension 1 of size 6"), "{}", e.message);
        assert_eq!(run::<Slice>("{start: 6}", &[1, 6, 4]).unwrap_err().field, Some("start"));
        assert_eq!(run::<Slice>("{start: -1, end: -2}", &[1, 6, 4]).unwrap_err().field, Some("start"));
        assert_eq!(run::<Slice>("{dim: 3}", &[1, 6, 4]).unwrap_err().field, Some("dim"));
        // step 0 or negative: refused when the spec is read.
        assert!(parse::<Slice>("{step: 0}").unwrap_err().to_string().contains("step"));
        assert!(parse::<Slice>("{step: -1}").is_err());
    }
}
