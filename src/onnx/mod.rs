//! ONNX models as specs: `netstat MODEL.onnx` and `netstat import MODEL.onnx`.
//!
//! A model file becomes the YAML text of an equivalent spec ([`import`]), which the ordinary
//! spec reader then checks ([`load`]): every subcommand that takes a spec takes a model, and
//! `netstat import` prints exactly the spec that is analysed.
//!
//! The graph's nodes are mapped onto netstat's kinds one by one ([`map`]): layer names come
//! from the module path PyTorch's exporter records (`namespace` in each node's metadata), else
//! the node name; parameters come from the shapes of the initializers a node reads (their
//! values are never read, so a model whose initializers have dims but no data, or keep their
//! data in external files, reads the same — the external files are never opened). Nodes whose
//! inputs are all constant (`Shape`, `Constant`, and what is computed from them, such as
//! `Shape → Gather → Concat` feeding a `Reshape`) are folded, not shown as layers.
//!
//! Reading is bounded: [`MAX_ONNX_BYTES`] on the file, [`wire::MAX_ITEMS`] on what decoding
//! may allocate (checked on the wire before decoding), and no panic on any bytes.

pub mod map;
pub mod proto;
pub mod wire;

use prost::Message;

/// Largest model file netstat reads: 2 GiB, protobuf's own limit on a message (larger models
/// keep their weights in external data files, which netstat never needs to open).
pub const MAX_ONNX_BYTES: u64 = 2 << 30;

/// Whether `path` names an ONNX model (extension `.onnx`, any case).
pub fn is_onnx(path: &str) -> bool {
    std::path::Path::new(path).extension().is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
}

/// Options of the import.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportOptions {
    /// `--allow-unknown`: an op netstat cannot map becomes a 0-MAC, 0-param row marked
    /// "unknown op" (with a warning) instead of an error.
    pub allow_unknown: bool,
    /// `--input`: the input shape without batch, which sets the graph input's symbolic
    /// dimensions (and replaces its fixed ones, as `--input` does for a spec). Its rank must be
    /// the graph input's rank − 1.
    pub input: Option<Vec<u64>>,
    /// `--batch`: the batch the spec is written with (else the graph input's first dimension,
    /// or 1 when it is symbolic).
    pub batch: Option<u64>,
}

/// An imported model: the spec's YAML text and the warnings the import raised.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    /// The spec, as YAML (readable: one layer per line, each with its ONNX node in a comment).
    pub yaml: String,
    /// One line per op mapped as "unknown op" (with `--allow-unknown`).
    pub warnings: Vec<String>,
}

/// Decode model bytes (`file` names them in messages) into the YAML text of a spec.
///
/// Errors (a message without the file name): over [`MAX_ONNX_BYTES`], malformed or truncated
/// protobuf, no graph, more than one non-constant graph input, symbolic non-batch input
/// dimensions without [`ImportOptions::input`], and every unmapped op (see [`map::map`]).
pub fn import_bytes(file: &str, bytes: &[u8], opts: &ImportOptions) -> Result<Imported, String> {
    if bytes.len() as u64 > MAX_ONNX_BYTES {
        return Err(format!("larger than the limit of {MAX_ONNX_BYTES} bytes (2 GiB)"));
    }
    wire::check(bytes).map_err(|e| format!("not a valid ONNX model: {e}"))?;
    let model = proto::ModelProto::decode(bytes).map_err(|e| format!("not a valid ONNX model: {e}"))?;
    map::map(file, &model, opts)
}

/// Read a model file and import it (see [`import_bytes`]).
///
/// Errors: unreadable or special file ([`crate::files`]), and those of [`import_bytes`], as
/// usage errors (exit 2) naming the file.
pub fn import(path: &str, opts: &ImportOptions) -> Result<Imported, crate::Error> {
    let bytes = crate::files::read_user_file(path, MAX_ONNX_BYTES, true, "models")?;
    import_bytes(path, &bytes, opts).map_err(|m| crate::Error::Usage(format!("{path}: {m}")))
}

/// The label an imported model's spec carries: its errors' line:column are those of the YAML
/// that `netstat import` prints.
pub fn spec_label(path: &str) -> String {
    format!("{path} (imported)")
}

/// Read a model file as a checked [`crate::spec::Spec`]; warnings go to standard error.
pub fn load(path: &str, opts: &ImportOptions) -> Result<crate::spec::Spec, crate::Error> {
    let imported = import(path, opts)?;
    for w in &imported.warnings {
        eprintln!("warning: {}", crate::error::one_line(&w.to_string()));
    }
    Ok(crate::spec::parse_bytes(&spec_label(path), imported.yaml.as_bytes())?)
}
