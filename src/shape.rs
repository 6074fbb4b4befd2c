//! Tensor shapes (with batch, NCHW for images) and element types, with checked arithmetic.
//!
//! Every product of dimensions goes through [`checked_product`]: a spec whose sizes overflow
//! u64 gets an error, never a wrapped number.

use serde::Serialize;
use std::fmt;

/// A tensor shape including the batch dimension, e.g. `[1, 3, 224, 224]` (NCHW).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Shape(pub Vec<u64>);

impl Shape {
    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.0.len()
    }

    /// Number of elements: the product of the dimensions, or an error if it overflows u64.
    pub fn elements(&self) -> Result<u64, String> {
        checked_product(&self.0)
    }

    /// Dimension `i` (negative counts from the end, as in PyTorch), if it exists.
    pub fn dim(&self, i: i64) -> Option<u64> {
        let r = self.rank() as i64;
        let j = if i < 0 { r + i } else { i };
        (0..r).contains(&j).then(|| self.0[j as usize])
    }

    /// The last dimension (features of a linear layer); 0 for a scalar.
    pub fn last(&self) -> u64 {
        self.0.last().copied().unwrap_or(0)
    }
}

impl fmt::Display for Shape {
    /// `1x3x224x224`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|d| d.to_string()).collect();
        f.write_str(&parts.join("x"))
    }
}

/// Most dimensions a tensor may have (batch included). Real networks use at most 6; the limit
/// keeps a hostile input of rank 500,000 from costing gigabytes through every layer.
pub const MAX_RANK: usize = 32;

/// `Err` naming [`MAX_RANK`] when `rank` exceeds it.
pub fn check_rank(rank: usize) -> Result<(), String> {
    if rank > MAX_RANK {
        return Err(format!("{rank} dimensions, more than the limit of {MAX_RANK}"));
    }
    Ok(())
}

/// Product of `dims`, or "… overflows u64" as an error message.
pub fn checked_product(dims: &[u64]) -> Result<u64, String> {
    dims.iter().try_fold(1u64, |acc, &d| {
        acc.checked_mul(d).ok_or_else(|| {
            format!(
                "the product of dimensions {} overflows u64",
                dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("·")
            )
        })
    })
}

/// `a · b` or an overflow message naming `what`.
pub fn mul(a: u64, b: u64, what: &str) -> Result<u64, String> {
    a.checked_mul(b).ok_or_else(|| format!("{what} overflows u64 ({a}·{b})"))
}

/// `a + b` or an overflow message naming `what`.
pub fn add(a: u64, b: u64, what: &str) -> Result<u64, String> {
    a.checked_add(b).ok_or_else(|| format!("{what} overflows u64 ({a}+{b})"))
}

/// Element type of activations, weights or inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    /// 32-bit IEEE float (4 bytes), the default.
    F32,
    /// 16-bit IEEE float (2 bytes).
    F16,
    /// bfloat16 (2 bytes).
    Bf16,
    /// 64-bit IEEE float (8 bytes).
    F64,
    /// 64-bit integer (8 bytes): token ids, class labels.
    I64,
    /// 32-bit integer (4 bytes).
    I32,
    /// 8-bit unsigned integer (1 byte): raw image input.
    U8,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> u64 {
        match self {
            DType::U8 => 1,
            DType::F16 | DType::Bf16 => 2,
            DType::F32 | DType::I32 => 4,
            DType::F64 | DType::I64 => 8,
        }
    }

    /// The spelling used in specs and reports (`f32`, `bf16`, …).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::Bf16 => "bf16",
            DType::F64 => "f64",
            DType::I64 => "i64",
            DType::I32 => "i32",
            DType::U8 => "u8",
        }
    }

    /// All spellings, for "did you mean".
    pub const NAMES: [&'static str; 7] = ["f32", "f16", "bf16", "f64", "i64", "i32", "u8"];

    /// Every spelling a spec may use, with the type it means: the short names, then PyTorch's.
    pub const SPELLINGS: [(&'static str, DType); 15] = [
        ("f32", DType::F32),
        ("float32", DType::F32),
        ("f16", DType::F16),
        ("float16", DType::F16),
        ("half", DType::F16),
        ("bf16", DType::Bf16),
        ("bfloat16", DType::Bf16),
        ("f64", DType::F64),
        ("float64", DType::F64),
        ("i64", DType::I64),
        ("int64", DType::I64),
        ("i32", DType::I32),
        ("int32", DType::I32),
        ("u8", DType::U8),
        ("uint8", DType::U8),
    ];

    /// Parse a spelling from a spec (one of [`DType::SPELLINGS`]).
    pub fn parse(s: &str) -> Option<DType> {
        Self::SPELLINGS.iter().find(|(k, _)| *k == s).map(|&(_, d)| d)
    }

    /// True for the integer types (token ids), which no layer but `embedding` accepts.
    pub fn is_int(self) -> bool {
        matches!(self, DType::I64 | DType::I32 | DType::U8)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_and_overflow() {
        // 1·3·224·224 = 150,528
        assert_eq!(Shape(vec![1, 3, 224, 224]).elements(), Ok(150_528));
        // 2^32 · 2^32 = 2^64 does not fit in u64
        assert!(Shape(vec![1 << 32, 1 << 32]).elements().unwrap_err().contains("overflows u64"));
    }

    #[test]
    fn negative_dims_count_from_the_end() {
        let s = Shape(vec![1, 197, 768]);
        assert_eq!(s.dim(-1), Some(768));
        assert_eq!(s.dim(0), Some(1));
        assert_eq!(s.dim(3), None);
        assert_eq!(s.to_string(), "1x197x768");
    }
}
