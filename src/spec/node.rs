//! A YAML document as a tree of spanned nodes.
//!
//! serde-saphyr parses the text; we keep every node's line and column so that later stages
//! (block expansion, field checks, shape rules) can point at the exact place in the file.
//! Nothing here knows about layers.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// A position in a spec file, 1-based; line 0 means "unknown".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Loc {
    /// 1-based line.
    pub line: u64,
    /// 1-based column.
    pub col: u64,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// One YAML node with the place it was written (for an alias, where the alias is used).
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Where the node is in the file.
    pub loc: Loc,
    /// What it holds.
    pub value: Value,
}

/// The value of a [`Node`].
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `~`, `null` or an empty value.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer (YAML ints beyond i64/u64 are rejected by the parser).
    Int(i128),
    /// A float, such as `1e-4` or `0.5`.
    Float(f64),
    /// A string scalar.
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, keys in file order.
    Map(Vec<(Node, Node)>),
}

impl Value {
    /// The YAML type name of this value, for messages ("expected an integer, got a string").
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

impl Node {
    /// A node made by netstat itself (defaults, block expansion), placed at `loc`.
    pub fn synthetic(loc: Loc, value: Value) -> Self {
        Node { loc, value }
    }

    /// The entry of a mapping with key `key`, if this is a mapping that has it.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => {
                entries.iter().find(|(k, _)| matches!(&k.value, Value::Str(s) if s == key)).map(|(_, v)| v)
            }
            _ => None,
        }
    }

    /// The entry of a mapping with key `key`, mutable.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        match &mut self.value {
            Value::Map(entries) => {
                entries.iter_mut().find(|(k, _)| matches!(&k.value, Value::Str(s) if s == key)).map(|(_, v)| v)
            }
            _ => None,
        }
    }

    /// The string, if this node is a string scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

struct RawValue(Value);

/// The name under which serde-saphyr hands a deserializer the location of the next node: the
/// newtype name its public `Spanned<T>` asks for (serde-saphyr 2.2, `src/spanned.rs`).
const SPANNED: &str = "__yaml_spanned";

/// The fields of serde-saphyr's spanned view of a node, in the order it yields them:
/// `{__serde_saphyr_private_spanned: true, value: T, referenced: Location, defined: Location}`.
const SPANNED_FIELDS: &[&str] = &["__serde_saphyr_private_spanned", "value", "referenced", "defined"];

/// The fields of serde-saphyr's view of a `Location`, in order.
const LOCATION_FIELDS: &[&str] = &["line", "column", "span", "source_id"];

// Speed: this is what `Spanned<RawValue>` does, for less. Every YAML node passes through here
// (about 60,000 for a 10,000-layer spec), and the public `Spanned<T>` deserializer allocates a
// `String` for the first key of its view of each node and reads all of both locations
// (use site and definition site, each with line, column, span offsets and source id). We ask
// for the same view, read the keys as `&str` without allocating, take the value and the
// use-site line and column, and stop: nothing else is left to consume in the event stream.
// `node::tests::same_tree_as_spanned` checks that the tree is identical to the public path's
// on every spec in specs/ and on aliases and merges. A deserializer that does not know the
// newtype name (any but serde-saphyr's) gets an error, not a tree without locations.
impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_newtype_struct(SPANNED, SpannedVisitor)
    }
}

struct SpannedVisitor;

impl<'de> Visitor<'de> for SpannedVisitor {
    type Value = Node;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        d.deserialize_struct("Spanned", SPANNED_FIELDS, SpannedFields)
    }
}

/// A map key read as a borrowed or transient string, without allocating.
enum Key {
    Marker,
    Value,
    Referenced,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(match v {
                    "__serde_saphyr_private_spanned" => Key::Marker,
                    "value" => Key::Value,
                    "referenced" => Key::Referenced,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_identifier(KeyVisitor)
    }
}

struct SpannedFields;

impl<'de> Visitor<'de> for SpannedFields {
    type Value = Node;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        if !matches!(map.next_key::<Key>()?, Some(Key::Marker)) {
            return Err(de::Error::custom("netstat's spec reader needs serde-saphyr's spanned nodes"));
        }
        map.next_value::<de::IgnoredAny>()?;
        let mut value = None;
        while let Some(k) = map.next_key::<Key>()? {
            match k {
                Key::Value => value = Some(map.next_value::<RawValue>()?.0),
                Key::Referenced => {
                    let loc = map.next_value::<LineCol>()?.0;
                    let value = value.ok_or_else(|| de::Error::missing_field("value"))?;
                    // `defined` (the definition site of an alias) is not needed: stop here.
                    return Ok(Node { loc, value });
                }
                Key::Marker | Key::Other => {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        Err(de::Error::missing_field("referenced"))
    }
}

/// Line and column of a serde-saphyr `Location` (its span and source id are not read).
struct LineCol(Loc);

impl<'de> Deserialize<'de> for LineCol {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct LocVisitor;
        impl<'de> Visitor<'de> for LocVisitor {
            type Value = LineCol;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a source location")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LineCol, A::Error> {
                let (mut line, mut col) = (None, None);
                while line.is_none() || col.is_none() {
                    let Some(k) = map.next_key::<LocKey>()? else { break };
                    match k {
                        LocKey::Line => line = Some(map.next_value::<u64>()?),
                        LocKey::Column => col = Some(map.next_value::<u64>()?),
                    }
                }
                match (line, col) {
                    (Some(line), Some(col)) => Ok(LineCol(Loc { line, col })),
                    _ => Err(de::Error::missing_field("line")),
                }
            }
        }
        d.deserialize_struct("Location", LOCATION_FIELDS, LocVisitor)
    }
}

/// `line` or `column` (the first two fields serde-saphyr yields for a location).
enum LocKey {
    Line,
    Column,
}

impl<'de> Deserialize<'de> for LocKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LocKey;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`line` or `column`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<LocKey, E> {
                match v {
                    "line" => Ok(LocKey::Line),
                    "column" => Ok(LocKey::Column),
                    _ => Err(E::custom(format!("unexpected location field `{v}` before line and column"))),
                }
            }
        }
        d.deserialize_identifier(V)
    }
}

impl<'de> Deserialize<'de> for RawValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = RawValue;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<RawValue, E> {
        Ok(RawValue(Value::Null))
    }
    fn visit_none<E: de::Error>(self) -> Result<RawValue, E> {
        Ok(RawValue(Value::Null))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<RawValue, D::Error> {
        RawValue::deserialize(d)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawValue, E> {
        Ok(RawValue(Value::Bool(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawValue, E> {
        Ok(RawValue(Value::Int(v as i128)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawValue, E> {
        Ok(RawValue(Value::Int(v as i128)))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<RawValue, E> {
        Ok(RawValue(Value::Int(v)))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<RawValue, E> {
        i128::try_from(v).map(|v| RawValue(Value::Int(v))).map_err(|_| E::custom("integer too large"))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawValue, E> {
        Ok(RawValue(Value::Float(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<RawValue, E> {
        Ok(RawValue(Value::Str(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<RawValue, E> {
        Ok(RawValue(Value::Str(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawValue, A::Error> {
        let mut items = Vec::new();
        while let Some(n) = seq.next_element::<Node>()? {
            items.push(n);
        }
        Ok(RawValue(Value::Seq(items)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawValue, A::Error> {
        let mut entries = Vec::new();
        while let Some((k, v)) = map.next_entry::<Node, Node>()? {
            entries.push((k, v));
        }
        Ok(RawValue(Value::Map(entries)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_line_and_column_of_nested_nodes() {
        let text = "name: x\nlayers:\n  - {name: c1, kind: conv2d, kernel: [3, 5]}\n  - name: r\n    kind: relu\n";
        let n: Node = serde_saphyr::from_str(text).unwrap();
        let layers = n.get("layers").unwrap();
        let Value::Seq(items) = &layers.value else { panic!() };
        let k = items[0].get("kernel").unwrap();
        println!("{:?}", k);
        assert_eq!(items[1].get("kind").unwrap().loc, Loc { line: 5, col: 11 });
        assert_eq!(items[0].get("kind").unwrap().loc, Loc { line: 3, col: 22 });
    }

    /// The tree as serde-saphyr's public `Spanned<T>` builds it (how netstat read specs before
    /// the faster path above): the reference the fast path must equal.
    #[derive(Debug)]
    struct RefNode(Node);

    impl<'de> Deserialize<'de> for RefNode {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let s: serde_saphyr::Spanned<RefValue> = serde_saphyr::Spanned::deserialize(d)?;
            Ok(RefNode(Node { loc: Loc { line: s.referenced.line(), col: s.referenced.column() }, value: s.value.0 }))
        }
    }

    struct RefValue(Value);

    impl<'de> Deserialize<'de> for RefValue {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = RefValue;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("any YAML value")
                }
                fn visit_unit<E: de::Error>(self) -> Result<RefValue, E> {
                    Ok(RefValue(Value::Null))
                }
                fn visit_none<E: de::Error>(self) -> Result<RefValue, E> {
                    Ok(RefValue(Value::Null))
                }
                fn visit_bool<E: de::Error>(self, v: bool) -> Result<RefValue, E> {
                    Ok(RefValue(Value::Bool(v)))
                }
                fn visit_i64<E: de::Error>(self, v: i64) -> Result<RefValue, E> {
                    Ok(RefValue(Value::Int(v as i128)))
                }
                fn visit_u64<E: de::Error>(self, v: u64) -> Result<RefValue, E> {
                    Ok(RefValue(Value::Int(v as i128)))
                }
                fn visit_i128<E: de::Error>(self, v: i128) -> Result<RefValue, E> {
                    Ok(RefValue(Value::Int(v)))
                }
                fn visit_u128<E: de::Error>(self, v: u128) -> Result<RefValue, E> {
                    i128::try_from(v).map(|v| RefValue(Value::Int(v))).map_err(|_| E::custom("integer too large"))
                }
                fn visit_f64<E: de::Error>(self, v: f64) -> Result<RefValue, E> {
                    Ok(RefValue(Value::Float(v)))
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<RefValue, E> {
                    Ok(RefValue(Value::Str(v.to_owned())))
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RefValue, A::Error> {
                    let mut items = Vec::new();
                    while let Some(RefNode(n)) = seq.next_element::<RefNode>()? {
                        items.push(n);
                    }
                    Ok(RefValue(Value::Seq(items)))
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RefValue, A::Error> {
                    let mut entries = Vec::new();
                    while let Some((RefNode(k), RefNode(v))) = map.next_entry::<RefNode, RefNode>()? {
                        entries.push((k, v));
                    }
                    Ok(RefValue(Value::Map(entries)))
                }
            }
            d.deserialize_any(V)
        }
    }

    fn both(text: &str) -> (Node, Node) {
        let fast: Node = serde_saphyr::from_str_with_options(text, crate::spec::options()).unwrap();
        let RefNode(reference) = serde_saphyr::from_str_with_options(text, crate::spec::options()).unwrap();
        (fast, reference)
    }

    #[test]
    fn same_tree_as_spanned() {
        // Aliases (a node's location is where the alias is used), merges, nulls, floats, nested
        // flow and block collections, quoted and multi-line strings, big integers.
        let text =
            "a: &x {k: 1, f: 0.5, s: 'q'}\nb: *x\nc:\n  <<: *x\n  k: 2\n  n: ~\n  e:\nd: [1, [2, {t: true}], -3]\n\
                    m: |\n  two\n  lines\nbig: 18446744073709551615\nneg: -9223372036854775808\n";
        let (fast, reference) = both(text);
        assert_eq!(fast, reference);
        let Some(Node { loc, .. }) = fast.get("b") else { panic!() };
        assert_eq!(*loc, Loc { line: 2, col: 4 });
        let mut specs = 0;
        for dir in ["specs", "specs/examples"] {
            for e in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/").to_owned() + dir).unwrap() {
                let p = e.unwrap().path();
                if p.extension().is_some_and(|x| x == "yaml") {
                    let text = std::fs::read_to_string(&p).unwrap();
                    let (fast, reference) = both(&text);
                    assert_eq!(fast, reference, "{}", p.display());
                    specs += 1;
                }
            }
        }
        assert!(specs >= 13, "found {specs} specs");
    }

    #[test]
    fn errors_keep_their_location() {
        for text in ["a: [1, 2\n", "a: 1\na: 2\n", "a: *nope\n", "- a\nb: 1\n"] {
            let fast = serde_saphyr::from_str_with_options::<Node>(text, crate::spec::options()).unwrap_err();
            let reference = serde_saphyr::from_str_with_options::<RefNode>(text, crate::spec::options()).unwrap_err();
            assert_eq!(fast.to_string(), reference.to_string(), "{text:?}");
        }
    }
}
