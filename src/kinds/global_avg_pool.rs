//! `global_avg_pool`: mean over all spatial positions of N×C×… input → N×C (or N×C×1×…×1 with
//! `keepdim: true`), as `x.mean(dim=(2, 3))` or `AdaptiveAvgPool2d(1)` + flatten.
//! No params; 0 MACs (pooling is not counted, torchvision `_ops`).

use super::{Cost, KindError, KindSpec, Op, Peer, PeerClass, Saved, Split};
use crate::error::SpecError;
use crate::shape::Shape;
use crate::spec::fields::Fields;

/// A global average pool.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GlobalAvgPool {
    /// Keep the pooled dimensions as size 1 (default false).
    pub keepdim: bool,
}

impl KindSpec for GlobalAvgPool {
    const NAME: &'static str = "global_avg_pool";
    const FIELDS: &'static [&'static str] = &["keepdim"];
    fn parse(f: &Fields) -> Result<Self, SpecError> {
        Ok(GlobalAvgPool { keepdim: f.bool("keepdim")?.unwrap_or(false) })
    }
}

impl Op for GlobalAvgPool {
    /// Peers: stands for `AdaptiveAvgPool2d(1)` (fvcore counts it).
    fn peer(&self, _output: &Shape) -> Peer {
        Peer { class: PeerClass::GlobalAvgPool, bias: 0, torchinfo_leaf: true }
    }

    /// Per channel: split along channels, no exchange.
    fn split(&self, _devices: u64) -> Split {
        Split::CHANNELS
    }

    /// Saved for backward: nothing (`mean` backward expands the gradient over the input shape).
    fn saved(&self, _inputs: &[Shape], _output: &Shape) -> Result<Vec<Saved>, KindError> {
        Ok(Vec::new())
    }

    fn analyze(&self, inputs: &[Shape]) -> Result<Cost, KindError> {
        let x = &inputs[0];
        if x.rank() < 3 {
            return Err(KindError::layer(format!("expected an input of rank 3 or more (N×C×…), got {x}")));
        }
        let mut out = x.0[..2].to_vec();
        if self.keepdim {
            out.extend(std::iter::repeat_n(1, x.rank() - 2));
        }
        Ok(Cost { output: Shape(out), params: 0, buffers: 0, macs: 0 })
    }
}

impl crate::candle::build::Build for GlobalAvgPool {
    /// `mean` over every dimension after N and C, reshaped to the analysed shape (keepdim or not).
    fn build(&self, cx: &mut crate::candle::build::Ctx) -> candle_core::Result<Box<dyn crate::candle::build::Layer>> {
        let r = cx.inputs[0].rank();
        let dims: Vec<usize> = (2..r).collect();
        let out: Vec<usize> = cx.output.0.iter().map(|&d| d as usize).collect();
        Ok(Box::new(move |xs: &[candle_core::Tensor], _| xs[0].mean_keepdim(dims.as_slice())?.reshape(out.as_slice())))
    }

    /// Candle memory: the sum over H·W, then its scaling; the reshape is a view.
    fn memory(&self, at: &crate::candle::model::At) -> crate::candle::model::CandleLayer {
        at.chain(2)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::run;
    use super::*;

    #[test]
    fn resnet50_head() {
        // ResNet-50: 1×2048×7×7 → 1×2048 (or 1×2048×1×1 kept).
        assert_eq!(run::<GlobalAvgPool>("{}", &[1, 2048, 7, 7]).unwrap().output, Shape(vec![1, 2048]));
        assert_eq!(
            run::<GlobalAvgPool>("{keepdim: true}", &[1, 2048, 7, 7]).unwrap().output,
            Shape(vec![1, 2048, 1, 1])
        );
        assert!(run::<GlobalAvgPool>("{}", &[1, 2048]).is_err());
    }
}
