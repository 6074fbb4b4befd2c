//! The optional training fields of a spec: `loss:` (kind and labels) and `dataset:` (rows kept
//! on the device). Only the memory model ([`crate::memory`]) reads them; docs/memory.md
//! documents them.
//!
//! ```yaml
//! loss: {kind: cross_entropy, labels: {shape: [], dtype: i64}}   # one class id per sample
//! dataset: {rows: 1024}   # X and labels of 1024 samples live on the device; a batch is a view
//! ```

use super::node::{Loc, Node, Value};
use super::{check_keys, fields::describe, parse_dtype};
use crate::error::SpecError;
use crate::shape::DType;

/// Fields of `loss:`.
pub const LOSS_FIELDS: &[&str] = &["kind", "labels"];

/// Fields of `loss: {labels: …}` given as a mapping.
pub const LABELS_FIELDS: &[&str] = &["shape", "dtype"];

/// Fields of `dataset:`.
pub const DATASET_FIELDS: &[&str] = &["rows"];

/// The loss function of a training step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossKind {
    /// PyTorch `F.cross_entropy` = `log_softmax` + `nll_loss`; classes on the last dimension.
    CrossEntropy,
    /// PyTorch `F.mse_loss` (mean): labels have the output's shape.
    Mse,
}

impl LossKind {
    /// Spellings accepted in `loss.kind`.
    pub const NAMES: &'static [&'static str] = &["cross_entropy", "mse"];

    /// The spelling.
    pub fn name(self) -> &'static str {
        match self {
            LossKind::CrossEntropy => "cross_entropy",
            LossKind::Mse => "mse",
        }
    }
}

/// The labels tensor: shape without batch and dtype.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelSpec {
    /// Shape without the batch dimension (`[]`: one value per sample).
    pub shape: Vec<u64>,
    /// Element type (i64 class ids by default for cross-entropy).
    pub dtype: DType,
}

/// `loss:`.
#[derive(Debug, Clone, PartialEq)]
pub struct LossSpec {
    /// The loss function.
    pub kind: LossKind,
    /// Labels; `None`: the kind's default (cross-entropy: one i64 per sample; mse: the output's
    /// shape in the activation dtype).
    pub labels: Option<LabelSpec>,
    /// Where `loss` is written.
    pub loc: Loc,
}

/// Read `loss:` if present.
pub fn parse_loss(file: &str, root: &Node) -> Result<Option<LossSpec>, SpecError> {
    let Some(n) = root.get("loss").filter(|n| n.value != Value::Null) else { return Ok(None) };
    let Value::Map(entries) = &n.value else {
        return Err(SpecError::new(
            file,
            n.loc,
            format!("`loss`: expected a mapping such as {{kind: cross_entropy}}, got {}", describe(n)),
        ));
    };
    check_keys(file, entries, LOSS_FIELDS, None)?;
    let kind = match n.get("kind") {
        Some(Node { value: Value::Str(s), loc }) => match s.as_str() {
            "cross_entropy" => LossKind::CrossEntropy,
            "mse" => LossKind::Mse,
            _ => {
                return Err(SpecError::new(
                    file,
                    *loc,
                    format!(
                        "`loss.kind`: unknown loss \"{s}\"{}; expected one of {}",
                        crate::error::did_you_mean(s, LossKind::NAMES.iter().copied()),
                        LossKind::NAMES.join(", ")
                    ),
                ))
            }
        },
        Some(v) => {
            return Err(SpecError::new(file, v.loc, format!("`loss.kind`: expected a string, got {}", describe(v))))
        }
        None => return Err(SpecError::new(file, n.loc, "`loss`: missing required field `kind`")),
    };
    let labels = match n.get("labels").filter(|l| l.value != Value::Null) {
        None => None,
        Some(l) => {
            let Value::Map(le) = &l.value else {
                return Err(SpecError::new(
                    file,
                    l.loc,
                    format!("`loss.labels`: expected a mapping {{shape: [...], dtype: ...}}, got {}", describe(l)),
                ));
            };
            check_keys(file, le, LABELS_FIELDS, None)?;
            let shape = match l.get("shape") {
                None => Vec::new(),
                // With the batch in front, a tensor's rank like any other's (`shape::MAX_RANK`).
                Some(v @ Node { value: Value::Seq(items), .. }) if items.len() + 1 > crate::shape::MAX_RANK => {
                    return Err(SpecError::new(
                        file,
                        v.loc,
                        format!(
                            "`loss.labels.shape`: {}",
                            crate::shape::check_rank(items.len() + 1).expect_err("over the limit")
                        ),
                    ))
                }
                Some(Node { value: Value::Seq(items), .. }) => items
                    .iter()
                    .map(|d| match d.value {
                        Value::Int(v) if v >= 1 && v <= u64::MAX as i128 => Ok(v as u64),
                        _ => Err(SpecError::new(
                            file,
                            d.loc,
                            format!("`loss.labels.shape`: expected a positive integer dimension, got {}", describe(d)),
                        )),
                    })
                    .collect::<Result<_, _>>()?,
                Some(v) => {
                    return Err(SpecError::new(
                        file,
                        v.loc,
                        format!("`loss.labels.shape`: expected a list of dimensions, got {}", describe(v)),
                    ))
                }
            };
            let dtype = match l.get("dtype") {
                None => match kind {
                    LossKind::CrossEntropy => DType::I64,
                    LossKind::Mse => DType::F32,
                },
                Some(Node { value: Value::Str(s), loc }) => parse_dtype(file, *loc, s)?,
                Some(v) => {
                    return Err(SpecError::new(
                        file,
                        v.loc,
                        format!("`loss.labels.dtype`: expected a string, got {}", describe(v)),
                    ))
                }
            };
            Some(LabelSpec { shape, dtype })
        }
    };
    Ok(Some(LossSpec { kind, labels, loc: n.loc }))
}

/// Read `dataset: {rows: R}` if present: the number of samples resident on the device.
pub fn parse_dataset(file: &str, root: &Node) -> Result<Option<u64>, SpecError> {
    let Some(n) = root.get("dataset").filter(|n| n.value != Value::Null) else { return Ok(None) };
    let Value::Map(entries) = &n.value else {
        return Err(SpecError::new(
            file,
            n.loc,
            format!("`dataset`: expected a mapping such as {{rows: 1024}}, got {}", describe(n)),
        ));
    };
    check_keys(file, entries, DATASET_FIELDS, None)?;
    match n.get("rows") {
        Some(Node { value: Value::Int(v), .. }) if *v >= 1 && *v <= u64::MAX as i128 => Ok(Some(*v as u64)),
        Some(v) => Err(SpecError::new(
            file,
            v.loc,
            format!("`dataset.rows`: expected a positive integer, got {}", describe(v)),
        )),
        None => Err(SpecError::new(file, n.loc, "`dataset`: missing required field `rows`")),
    }
}

#[cfg(test)]
mod tests {
    use crate::spec::parse_bytes;

    const HEAD: &str = "name: t\ninput: [4]\nlayers:\n  - {name: a, kind: linear, out_features: 3}\n";

    #[test]
    fn loss_and_dataset_parse() {
        let s = parse_bytes(
            "t.yaml",
            format!("{HEAD}loss: {{kind: cross_entropy, labels: {{shape: [], dtype: i64}}}}\ndataset: {{rows: 8}}\n")
                .as_bytes(),
        )
        .unwrap();
        let l = s.loss.unwrap();
        assert_eq!(l.kind, super::LossKind::CrossEntropy);
        assert_eq!(l.labels.unwrap().dtype, crate::shape::DType::I64);
        assert_eq!(s.dataset_rows, Some(8));
    }

    #[test]
    fn bad_loss_is_located() {
        let e = parse_bytes("t.yaml", format!("{HEAD}loss: {{kind: crossentropy}}\n").as_bytes()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.yaml:5:14: `loss.kind`: unknown loss \"crossentropy\" (did you mean `cross_entropy`?); expected one of cross_entropy, mse"
        );
        let e = parse_bytes("t.yaml", format!("{HEAD}dataset: {{rows: 0}}\n").as_bytes()).unwrap_err();
        assert_eq!(e.to_string(), "t.yaml:5:17: `dataset.rows`: expected a positive integer, got 0");
    }
}
