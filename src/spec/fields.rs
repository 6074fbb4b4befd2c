//! Typed access to one layer's (or one block's) fields, with errors that point at the field.
//!
//! Sizes must be positive integers: `0`, `-3` and `2.5` are errors at the value's line and column.

use crate::error::{LayerRef, SpecError};
use crate::spec::node::{Loc, Node, Value};

/// The fields of one layer mapping, plus what is needed to report an error about them.
pub struct Fields<'a> {
    /// Path of the spec file, for messages.
    pub file: &'a str,
    /// The layer's mapping node.
    pub node: &'a Node,
    /// The layer, for messages.
    pub layer: &'a LayerRef,
}

impl<'a> Fields<'a> {
    /// An error at `loc`, tied to this layer.
    pub fn err(&self, loc: Loc, msg: impl Into<String>) -> SpecError {
        SpecError::new(self.file, loc, msg).in_layer(self.layer)
    }

    /// The node of field `key`, if present (a `null` value counts as absent).
    pub fn get(&self, key: &str) -> Option<&'a Node> {
        self.node.get(key).filter(|n| n.value != Value::Null)
    }

    /// Location of field `key`'s value, or of the layer when the field is absent.
    pub fn loc(&self, key: &str) -> Loc {
        self.get(key).map(|n| n.loc).unwrap_or(self.node.loc)
    }

    fn expect(&self, n: &Node, key: &str, what: &str) -> SpecError {
        // YAML reads `8.0` and `08` as floats: say so, since "got 8.0" for `08` puzzles.
        let hint = match n.value {
            Value::Float(v) if what.contains("integer") && v.fract() == 0.0 && v.abs() < 1e15 => {
                format!(" (a decimal point or a leading zero makes a YAML float: write {v:.0})")
            }
            _ => String::new(),
        };
        self.err(n.loc, format!("`{key}`: expected {what}, got {}{hint}", describe(n)))
    }

    /// A positive integer (≥ 1).
    pub fn pos(&self, key: &str) -> Result<Option<u64>, SpecError> {
        self.get(key).map(|n| pos_int(self, n, key)).transpose()
    }

    /// A positive integer no larger than `max`: a count that makes a tensor or a list entry
    /// apiece (stacked recurrent layers, experts), where a huge value in a small file would make
    /// the analysis allocate in proportion to it. `why` ends the message.
    pub fn pos_at_most(&self, key: &str, max: u64, why: &str) -> Result<Option<u64>, SpecError> {
        match self.pos(key)? {
            Some(v) if v > max => {
                Err(self.err(self.loc(key), format!("`{key}`: expected at most {max} ({why}), got {v}")))
            }
            v => Ok(v),
        }
    }

    /// A required positive integer.
    pub fn req_pos(&self, key: &str) -> Result<u64, SpecError> {
        self.pos(key)?.ok_or_else(|| self.err(self.node.loc, format!("missing required field `{key}`")))
    }

    /// A non-negative integer (≥ 0), e.g. padding.
    pub fn nonneg(&self, key: &str) -> Result<Option<u64>, SpecError> {
        self.get(key).map(|n| nonneg_int(self, n, key)).transpose()
    }

    /// Any integer, e.g. a dimension index that may be negative.
    pub fn int(&self, key: &str) -> Result<Option<i64>, SpecError> {
        self.get(key).map(|n| self.int_node(n, key)).transpose()
    }

    /// Node `n` (field `key`, or an item of it) as an i64: never wrapped or truncated.
    pub fn int_node(&self, n: &Node, key: &str) -> Result<i64, SpecError> {
        match n.value {
            Value::Int(v) => i64::try_from(v).map_err(|_| self.expect(n, key, "an integer that fits in i64")),
            _ => Err(self.expect(n, key, "an integer")),
        }
    }

    /// A boolean.
    pub fn bool(&self, key: &str) -> Result<Option<bool>, SpecError> {
        self.get(key)
            .map(|n| match n.value {
                Value::Bool(b) => Ok(b),
                _ => Err(self.expect(n, key, "true or false")),
            })
            .transpose()
    }

    /// A finite number (an integer is accepted too).
    pub fn float(&self, key: &str) -> Result<Option<f64>, SpecError> {
        self.get(key)
            .map(|n| match n.value {
                Value::Float(v) if v.is_finite() => Ok(v),
                Value::Int(v) => Ok(v as f64),
                _ => Err(self.expect(n, key, "a finite number")),
            })
            .transpose()
    }

    /// A string.
    pub fn str(&self, key: &str) -> Result<Option<&'a str>, SpecError> {
        self.get(key)
            .map(|n| match &n.value {
                Value::Str(s) => Ok(s.as_str()),
                _ => Err(self.expect(n, key, "a string")),
            })
            .transpose()
    }

    /// `k` or `[h, w]` of positive integers, as `[h, w]`.
    pub fn pos_pair(&self, key: &str) -> Result<Option<[u64; 2]>, SpecError> {
        self.pair_with(key, pos_int)
    }

    /// `p` or `[h, w]` of non-negative integers, as `[h, w]`.
    pub fn nonneg_pair(&self, key: &str) -> Result<Option<[u64; 2]>, SpecError> {
        self.pair_with(key, nonneg_int)
    }

    fn pair_with(
        &self,
        key: &str,
        one: fn(&Fields<'a>, &Node, &str) -> Result<u64, SpecError>,
    ) -> Result<Option<[u64; 2]>, SpecError> {
        let Some(n) = self.get(key) else { return Ok(None) };
        match &n.value {
            Value::Int(_) | Value::Float(_) => {
                let v = one(self, n, key)?;
                Ok(Some([v, v]))
            }
            Value::Seq(items) if items.len() == 2 => Ok(Some([one(self, &items[0], key)?, one(self, &items[1], key)?])),
            _ => Err(self.expect(n, key, "an integer or a list [h, w]")),
        }
    }

    /// A list of non-negative integers (e.g. padding `[top, bottom, left, right]`).
    pub fn nonneg_list(&self, n: &Node, key: &str) -> Result<Vec<u64>, SpecError> {
        match &n.value {
            Value::Seq(items) => items.iter().map(|i| nonneg_int(self, i, key)).collect(),
            _ => Err(self.expect(n, key, "a list of integers")),
        }
    }
}

/// A short description of a node's value for "got …" in messages.
pub fn describe(n: &Node) -> String {
    match &n.value {
        Value::Int(v) => format!("{v}"),
        Value::Float(v) if v.abs() >= 1e16 => format!("{v:e}"),
        // `{:?}` keeps the point: 8.0 reads "8.0", not "8" (which looks like a valid integer).
        Value::Float(v) => format!("{v:?}"),
        Value::Seq(items) if items.is_empty() => "an empty list".to_owned(),
        Value::Seq(items) if items.len() == 1 => "a list of 1 item".to_owned(),
        Value::Seq(items) => format!("a list of {} items", items.len()),
        Value::Str(s) => format!("\"{}\"", truncate(s, 40)),
        Value::Bool(b) => format!("{b}"),
        v => v.type_name().to_owned(),
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

fn pos_int(f: &Fields, n: &Node, key: &str) -> Result<u64, SpecError> {
    match n.value {
        Value::Int(v) if v >= 1 && v <= u64::MAX as i128 => Ok(v as u64),
        Value::Int(v) if v > u64::MAX as i128 => Err(f.expect(n, key, "a positive integer that fits in u64")),
        // YAML reads integers beyond i128 as floats.
        Value::Float(v) if v.fract() == 0.0 && v >= u64::MAX as f64 => {
            Err(f.expect(n, key, "a positive integer that fits in u64"))
        }
        _ => Err(f.expect(n, key, "a positive integer")),
    }
}

fn nonneg_int(f: &Fields, n: &Node, key: &str) -> Result<u64, SpecError> {
    match n.value {
        Value::Int(v) if v >= 0 && v <= u64::MAX as i128 => Ok(v as u64),
        _ => Err(f.expect(n, key, "a non-negative integer")),
    }
}
