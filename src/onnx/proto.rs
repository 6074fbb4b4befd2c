//! The subset of ONNX's protobuf messages netstat reads (field numbers from onnx/onnx.proto,
//! IR version 10), written as `prost` derives so that building needs no `protoc`.
//!
//! Fields netstat does not use are left out: prost skips them without decoding. In particular
//! an initializer's values (`raw_data`, `float_data`, …) are never decoded, so a model with
//! stripped initializers (dims kept, no data) reads like a full one, and a full one costs no
//! copy of its weights. Subgraphs (`If`, `Loop` bodies) are skipped too: such nodes are unmapped
//! ops, and no message here contains itself, so decoding cannot recurse without bound.

/// `ModelProto`: the file's top-level message.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelProto {
    /// `ir_version` (1).
    #[prost(int64, tag = "1")]
    pub ir_version: i64,
    /// `producer_name` (2), e.g. "pytorch".
    #[prost(string, tag = "2")]
    pub producer_name: String,
    /// `graph` (7).
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphProto>,
    /// `opset_import` (8).
    #[prost(message, repeated, tag = "8")]
    pub opset_import: Vec<OperatorSetIdProto>,
}

/// `OperatorSetIdProto`: an operator set the model uses.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OperatorSetIdProto {
    /// `domain` (1); "" or "ai.onnx" is the default operator set.
    #[prost(string, tag = "1")]
    pub domain: String,
    /// `version` (2).
    #[prost(int64, tag = "2")]
    pub version: i64,
}

/// `GraphProto`: nodes in topological order, initializers, inputs and outputs.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GraphProto {
    /// `node` (1).
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeProto>,
    /// `name` (2).
    #[prost(string, tag = "2")]
    pub name: String,
    /// `initializer` (5): the weights; only names, dims and types are read.
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorInfo>,
    /// `input` (11).
    #[prost(message, repeated, tag = "11")]
    pub input: Vec<ValueInfoProto>,
    /// `output` (12).
    #[prost(message, repeated, tag = "12")]
    pub output: Vec<ValueInfoProto>,
    /// `value_info` (13): shapes of intermediate values, where the exporter recorded them.
    #[prost(message, repeated, tag = "13")]
    pub value_info: Vec<ValueInfoProto>,
    /// `sparse_initializer` (15): only counted, to refuse them by name.
    #[prost(message, repeated, tag = "15")]
    pub sparse_initializer: Vec<Empty>,
}

/// A message whose fields are all skipped (only its presence is counted).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Empty {}

/// `NodeProto`: one operator call.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NodeProto {
    /// `input` (1): value names; "" is an omitted optional input.
    #[prost(string, repeated, tag = "1")]
    pub input: Vec<String>,
    /// `output` (2).
    #[prost(string, repeated, tag = "2")]
    pub output: Vec<String>,
    /// `name` (3).
    #[prost(string, tag = "3")]
    pub name: String,
    /// `op_type` (4), e.g. "Conv".
    #[prost(string, tag = "4")]
    pub op_type: String,
    /// `attribute` (5).
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<AttributeProto>,
    /// `domain` (7).
    #[prost(string, tag = "7")]
    pub domain: String,
    /// `metadata_props` (9): PyTorch's exporter writes the module path under `namespace`.
    #[prost(message, repeated, tag = "9")]
    pub metadata_props: Vec<StringStringEntryProto>,
}

/// `StringStringEntryProto`: a key-value pair.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StringStringEntryProto {
    /// `key` (1).
    #[prost(string, tag = "1")]
    pub key: String,
    /// `value` (2).
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `AttributeProto`: one named attribute of a node.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AttributeProto {
    /// `name` (1).
    #[prost(string, tag = "1")]
    pub name: String,
    /// `f` (2).
    #[prost(float, tag = "2")]
    pub f: f32,
    /// `i` (3).
    #[prost(int64, tag = "3")]
    pub i: i64,
    /// `s` (4).
    #[prost(bytes = "vec", tag = "4")]
    pub s: Vec<u8>,
    /// `t` (5): a tensor value (a `Constant` node's), with its data.
    #[prost(message, optional, tag = "5")]
    pub t: Option<TensorData>,
    /// `floats` (7).
    #[prost(float, repeated, tag = "7")]
    pub floats: Vec<f32>,
    /// `ints` (8).
    #[prost(int64, repeated, tag = "8")]
    pub ints: Vec<i64>,
    /// `strings` (9), e.g. an ONNX `RNN`'s `activations`.
    #[prost(bytes = "vec", repeated, tag = "9")]
    pub strings: Vec<Vec<u8>>,
    /// `type` (20): which of the value fields is set (`AttributeType`).
    #[prost(int32, tag = "20")]
    pub r#type: i32,
}

/// `TensorProto` without its values: what an initializer tells netstat.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorInfo {
    /// `dims` (1).
    #[prost(int64, repeated, tag = "1")]
    pub dims: Vec<i64>,
    /// `data_type` (2): `TensorProto.DataType` (1 float, 7 int64, 10 float16, 16 bfloat16, …).
    #[prost(int32, tag = "2")]
    pub data_type: i32,
    /// `name` (8).
    #[prost(string, tag = "8")]
    pub name: String,
    /// `external_data` (13): where the values live when `data_location` is EXTERNAL.
    #[prost(message, repeated, tag = "13")]
    pub external_data: Vec<StringStringEntryProto>,
    /// `data_location` (14): 0 DEFAULT, 1 EXTERNAL.
    #[prost(int32, tag = "14")]
    pub data_location: i32,
}

/// `TensorProto` with the value fields a small constant uses (a `Constant` node's `value`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorData {
    /// `dims` (1).
    #[prost(int64, repeated, tag = "1")]
    pub dims: Vec<i64>,
    /// `data_type` (2).
    #[prost(int32, tag = "2")]
    pub data_type: i32,
    /// `float_data` (4).
    #[prost(float, repeated, tag = "4")]
    pub float_data: Vec<f32>,
    /// `int32_data` (5).
    #[prost(int32, repeated, tag = "5")]
    pub int32_data: Vec<i32>,
    /// `int64_data` (7).
    #[prost(int64, repeated, tag = "7")]
    pub int64_data: Vec<i64>,
    /// `raw_data` (9): little-endian values.
    #[prost(bytes = "vec", tag = "9")]
    pub raw_data: Vec<u8>,
    /// `double_data` (10).
    #[prost(double, repeated, tag = "10")]
    pub double_data: Vec<f64>,
}

/// `ValueInfoProto`: a value's name and type.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ValueInfoProto {
    /// `name` (1).
    #[prost(string, tag = "1")]
    pub name: String,
    /// `type` (2).
    #[prost(message, optional, tag = "2")]
    pub r#type: Option<TypeProto>,
}

/// `TypeProto`, tensor types only (`tensor_type`, 1).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TypeProto {
    /// `tensor_type` (1).
    #[prost(message, optional, tag = "1")]
    pub tensor_type: Option<TensorTypeProto>,
}

/// `TypeProto.Tensor`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorTypeProto {
    /// `elem_type` (1): a `TensorProto.DataType`.
    #[prost(int32, tag = "1")]
    pub elem_type: i32,
    /// `shape` (2).
    #[prost(message, optional, tag = "2")]
    pub shape: Option<TensorShapeProto>,
}

/// `TensorShapeProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorShapeProto {
    /// `dim` (1).
    #[prost(message, repeated, tag = "1")]
    pub dim: Vec<Dimension>,
}

/// `TensorShapeProto.Dimension`: a size or a symbolic name.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Dimension {
    /// `dim_value` (1).
    #[prost(int64, optional, tag = "1")]
    pub dim_value: Option<i64>,
    /// `dim_param` (2), e.g. "batch".
    #[prost(string, optional, tag = "2")]
    pub dim_param: Option<String>,
}
