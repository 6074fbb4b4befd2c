//! Reports: the serializable result of an analysis, and its formats.
//!
//! `report/` never computes a cost: it formats what [`crate::analysis`] produced. Columns are
//! defined once ([`COLUMNS`]): header, raw value (CSV) and human form (table, Markdown).
//! Human units (thousands separators, K/M/G, KiB/MiB) appear only in table and Markdown; CSV and
//! JSON carry raw integers.

pub mod convention;
pub mod csv;
pub mod diff;
pub mod dir;
pub mod grid;
pub mod html;
pub mod interrupt;
pub mod json;
pub mod latex;
pub mod markdown;
pub mod measured;
pub mod memory;
pub mod svg;
pub mod table;
pub mod units;

use crate::analysis::Analysis;
use serde::Serialize;
use std::io::Write;
use units::{bytes, count, percent, share, si};

/// JSON schema version; bumped when a field is renamed or removed (adding fields keeps it).
/// Version 2: the per-layer and total `activation_bytes` became `output_bytes` (the memory
/// model's `activation_bytes` counts only new allocations; one name, one figure).
pub const SCHEMA_VERSION: u32 = 2;

/// The spec a report is about, after command-line overrides.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpecInfo {
    /// `name` from the spec.
    pub name: String,
    /// Input shape without batch.
    pub input: Vec<u64>,
    /// Element type of the input (f32, or i64 for token ids).
    pub input_dtype: String,
    /// Batch size.
    pub batch: u64,
    /// Element type of activations and weights.
    pub dtype: String,
}

impl SpecInfo {
    /// The input as report headers name it: its shape with batch and element type, and the
    /// activations' type when it differs (token ids: `1x1024 i64 (activations f32)`).
    pub fn input_desc(&self) -> String {
        let (i, d) = (&self.input_dtype, &self.dtype);
        if i == d {
            format!("{} {d}", self.input_with_batch())
        } else {
            format!("{} {i} (activations {d})", self.input_with_batch())
        }
    }

    /// Input shape with batch, `1x3x224x224`.
    pub fn input_with_batch(&self) -> String {
        std::iter::once(self.batch)
            .chain(self.input.iter().copied())
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("x")
    }
}

/// One layer's row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerRow {
    /// Layer name (hierarchical for blocks, e.g. `layer2.0.conv1`).
    pub name: String,
    /// Layer kind (`conv2d`, …).
    pub kind: String,
    /// Output shape with batch.
    pub output_shape: Vec<u64>,
    /// Parameters (elements), frozen ones included.
    pub params: u64,
    /// Of `params`, the frozen ones (no gradient, no optimizer state): all of a layer marked
    /// `trainable: false`, the base weights of a LoRA layer. Left out of JSON when 0.
    #[serde(skip_serializing_if = "is_zero")]
    pub frozen_params: u64,
    /// Non-trainable buffers such as BatchNorm running mean/var (elements).
    pub buffers: u64,
    /// Multiply-accumulates over the batch.
    pub macs: u64,
    /// 2 · MACs.
    pub flops: u64,
    /// Output elements × dtype size (bytes), views and in-place outputs included: what the
    /// layer's output occupies, not what it allocates (the memory model's `activation_bytes`
    /// counts only new allocations).
    pub output_bytes: u64,
    /// Roofline numbers on `--hardware` (bytes moved, intensity, bound, predicted time).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roofline: Option<crate::roofline::LayerRoofline>,
}

/// Totals over all layers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TotalsRow {
    /// Σ params.
    pub params: u64,
    /// Σ frozen params (`trainable: false` layers, LoRA bases). Left out of JSON when 0.
    #[serde(skip_serializing_if = "is_zero")]
    pub frozen_params: u64,
    /// Σ buffers.
    pub buffers: u64,
    /// Σ MACs.
    pub macs: u64,
    /// 2 · Σ MACs.
    pub flops: u64,
    /// Σ output bytes (each layer output once, views and in-place outputs included; input
    /// excluded).
    pub output_bytes: u64,
    /// Bytes of the network input.
    pub input_bytes: u64,
    /// Bytes of the parameters in the spec's dtype.
    pub param_bytes: u64,
    /// Roofline totals on `--hardware`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roofline: Option<crate::roofline::LayerRoofline>,
}

/// A report: versioned envelope, spec, layers and totals.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// netstat's version.
    pub netstat_version: String,
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The spec.
    pub spec: SpecInfo,
    /// One row per layer, in execution order.
    pub layers: Vec<LayerRow>,
    /// Totals.
    pub totals: TotalsRow,
    /// Memory of inference and of one training step ([`crate::memory`]), when computed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<memory::MemoryReport>,
    /// The device of `--hardware` and its roofs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roofline: Option<crate::roofline::Roofline>,
    /// Per-device training memory (`--devices`, `--fit`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub training_memory: Option<crate::memory::devices::DeviceMemory>,
    /// The columns table, Markdown, LaTeX and CSV show (`--columns`, [`Column::header`]s), in
    /// that order; `None`: every column that applies. Not part of JSON.
    #[serde(skip)]
    pub columns: Option<Vec<&'static str>>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl Report {
    /// Build the report of an analysis.
    pub fn new(a: &Analysis) -> Report {
        let layers: Vec<LayerRow> = a
            .layers
            .iter()
            .map(|l| {
                let s = a.layer_spec(l);
                LayerRow {
                    name: s.id.name.clone(),
                    kind: s.kind.name().to_owned(),
                    output_shape: l.output.0.clone(),
                    params: l.params,
                    frozen_params: l.params - l.trainable_params,
                    buffers: l.buffers,
                    macs: l.macs,
                    flops: l.flops(),
                    output_bytes: l.output_bytes,
                    roofline: None,
                }
            })
            .collect();
        let t = &a.totals;
        let frozen_params = layers.iter().fold(0u64, |acc, l| acc.saturating_add(l.frozen_params));
        Report {
            netstat_version: env!("CARGO_PKG_VERSION").to_owned(),
            schema_version: SCHEMA_VERSION,
            spec: SpecInfo {
                name: a.spec.name.clone(),
                input: a.spec.input.shape.clone(),
                input_dtype: a.spec.input.dtype.name().to_owned(),
                batch: a.spec.batch,
                dtype: a.spec.dtype.name().to_owned(),
            },
            layers,
            totals: TotalsRow {
                params: t.params,
                frozen_params,
                buffers: t.buffers,
                macs: t.macs,
                flops: t.flops(),
                output_bytes: t.output_bytes,
                input_bytes: t.input_bytes,
                param_bytes: t.params.saturating_mul(a.spec.dtype.size()),
                roofline: None,
            },
            memory: None,
            roofline: None,
            training_memory: None,
            columns: None,
        }
    }

    /// Add roofline columns (one [`crate::roofline::LayerRoofline`] per layer, same order).
    pub fn with_roofline(mut self, r: crate::roofline::Roofline) -> Report {
        for (row, l) in self.layers.iter_mut().zip(&r.layers) {
            row.roofline = Some(l.clone());
        }
        self.totals.roofline = Some(r.total.clone());
        self.roofline = Some(r);
        self
    }

    /// Add the per-device training memory.
    pub fn with_training_memory(mut self, m: crate::memory::devices::DeviceMemory) -> Report {
        self.training_memory = Some(m);
        self
    }

    /// Lines about the roofline and the training memory, when asked for (empty otherwise).
    pub fn extra_lines(&self) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(r) = &self.roofline {
            v.push(r.summary_line());
        }
        if let Some(m) = &self.training_memory {
            v.extend(m.summary().lines().map(str::to_owned));
        }
        v
    }

    /// The report with layer rows rolled up by name prefix, like torchinfo's `depth`: each run
    /// of consecutive rows whose names share their first `depth` dot-separated parts
    /// (`layer2.0.conv1` at depth 2 → `layer2.0`) becomes one row of kind `group` with the summed
    /// params, buffers, MACs, FLOPs and output bytes and the last row's output shape. A run of
    /// one row named exactly the prefix is kept as it is. Totals are unchanged.
    pub fn rolled_up(&self, depth: usize) -> Report {
        let prefix = |name: &str| -> String { name.split('.').take(depth.max(1)).collect::<Vec<_>>().join(".") };
        let mut layers: Vec<(LayerRow, usize)> = Vec::new();
        for l in &self.layers {
            let p = prefix(&l.name);
            match layers.last_mut() {
                Some((g, count)) if g.name == p => {
                    g.kind = "group".into();
                    g.output_shape = l.output_shape.clone();
                    g.params = g.params.saturating_add(l.params);
                    g.frozen_params = g.frozen_params.saturating_add(l.frozen_params);
                    g.buffers = g.buffers.saturating_add(l.buffers);
                    g.macs = g.macs.saturating_add(l.macs);
                    g.flops = g.flops.saturating_add(l.flops);
                    g.output_bytes = g.output_bytes.saturating_add(l.output_bytes);
                    *count += 1;
                }
                _ => {
                    let mut row = l.clone();
                    if row.name != p {
                        row.name = p;
                        row.kind = "group".into();
                    }
                    layers.push((row, 1));
                }
            }
        }
        Report { layers: layers.into_iter().map(|(r, _)| r).collect(), ..self.clone() }
    }

    /// The input as report headers name it ([`SpecInfo::input_desc`]).
    pub fn input_desc(&self) -> String {
        self.spec.input_desc()
    }

    /// Input shape with batch, `1x3x224x224`.
    pub fn input_with_batch(&self) -> String {
        self.spec.input_with_batch()
    }

    /// The lines under the table naming the layer with the most parameters and the one with
    /// the most MACs, with their shares (first such layer on ties).
    pub fn headline(&self) -> String {
        let top = |key: fn(&LayerRow) -> u64| {
            self.layers.iter().fold(None::<&LayerRow>, |best, l| match best {
                Some(b) if key(b) >= key(l) => Some(b),
                _ => Some(l),
            })
        };
        let mut parts = Vec::new();
        if let Some(l) = top(|l| l.params).filter(|l| l.params > 0) {
            parts.push(format!(
                "most parameters: {} ({}), {} = {} of all",
                l.name,
                l.kind,
                count(l.params),
                percent(l.params, self.totals.params)
            ));
        }
        if let Some(l) = top(|l| l.macs).filter(|l| l.macs > 0) {
            parts.push(format!(
                "most MACs: {} ({}), {} = {} of all",
                l.name,
                l.kind,
                count(l.macs),
                percent(l.macs, self.totals.macs)
            ));
        }
        parts.join("\n")
    }

    /// The totals line: params, MACs, FLOPs, output bytes.
    pub fn totals_line(&self) -> String {
        let t = &self.totals;
        format!(
            "params {} ({} as {}), buffers {}\nMACs {}, FLOPs = 2·MACs = {}\noutput bytes {} (each layer output once, views included; input {})",
            count(t.params),
            bytes(t.param_bytes),
            self.spec.dtype,
            count(t.buffers),
            count(t.macs),
            si(t.flops),
            bytes(t.output_bytes),
            bytes(t.input_bytes)
        )
    }
}

/// Which row a column is asked for: a layer, or the totals.
#[derive(Debug, Clone, Copy)]
pub enum RowRef<'a> {
    /// A layer.
    Layer(&'a LayerRow),
    /// The totals row.
    Total(&'a TotalsRow),
}

/// One report column, defined once for every format.
pub struct Column {
    /// Header text.
    pub header: &'static str,
    /// CSV header (snake_case, units in the name).
    pub csv_header: &'static str,
    /// Right-aligned in tables.
    pub numeric: bool,
    /// Raw value for CSV (`None`: not in CSV, e.g. shares, which CSV users derive).
    pub raw: Option<fn(RowRef) -> String>,
    /// Human form for table and Markdown; totals are passed for shares.
    pub human: fn(RowRef, &TotalsRow) -> String,
}

fn pick2(r: RowRef, layer: fn(&LayerRow) -> (u64, u64), total: fn(&TotalsRow) -> (u64, u64)) -> (u64, u64) {
    match r {
        RowRef::Layer(l) => layer(l),
        RowRef::Total(t) => total(t),
    }
}

fn pick(r: RowRef, layer: fn(&LayerRow) -> u64, total: fn(&TotalsRow) -> u64) -> u64 {
    match r {
        RowRef::Layer(l) => layer(l),
        RowRef::Total(t) => total(t),
    }
}

/// The columns of the per-layer report, in order.
pub const COLUMNS: &[Column] = &[
    Column {
        header: "layer",
        csv_header: "name",
        numeric: false,
        raw: Some(|r| match r {
            RowRef::Layer(l) => l.name.clone(),
            RowRef::Total(_) => "total".into(),
        }),
        human: |r, _| match r {
            RowRef::Layer(l) => l.name.clone(),
            RowRef::Total(_) => "total".into(),
        },
    },
    Column {
        header: "kind",
        csv_header: "kind",
        numeric: false,
        raw: Some(|r| match r {
            RowRef::Layer(l) => l.kind.clone(),
            RowRef::Total(_) => String::new(),
        }),
        human: |r, _| match r {
            RowRef::Layer(l) => l.kind.clone(),
            RowRef::Total(_) => String::new(),
        },
    },
    Column {
        header: "output",
        csv_header: "output_shape",
        numeric: false,
        raw: Some(|r| match r {
            RowRef::Layer(l) => shape(&l.output_shape),
            RowRef::Total(_) => String::new(),
        }),
        human: |r, _| match r {
            RowRef::Layer(l) => shape(&l.output_shape),
            RowRef::Total(_) => String::new(),
        },
    },
    Column {
        header: "params",
        csv_header: "params",
        numeric: true,
        raw: Some(|r| pick(r, |l| l.params, |t| t.params).to_string()),
        human: |r, _| count(pick(r, |l| l.params, |t| t.params)),
    },
    Column {
        header: "trainable",
        csv_header: "trainable_params",
        numeric: true,
        raw: Some(|r| {
            let (p, f) = pick2(r, |l| (l.params, l.frozen_params), |t| (t.params, t.frozen_params));
            (p - f.min(p)).to_string()
        }),
        human: |r, _| {
            let (p, f) = pick2(r, |l| (l.params, l.frozen_params), |t| (t.params, t.frozen_params));
            if f > 0 && f >= p && matches!(r, RowRef::Layer(_)) {
                "frozen".into()
            } else {
                count(p - f.min(p))
            }
        },
    },
    Column {
        header: "%par",
        csv_header: "",
        numeric: true,
        raw: None,
        human: |r, t| share(pick(r, |l| l.params, |t| t.params), t.params),
    },
    Column {
        header: "MACs",
        csv_header: "macs",
        numeric: true,
        raw: Some(|r| pick(r, |l| l.macs, |t| t.macs).to_string()),
        human: |r, _| si(pick(r, |l| l.macs, |t| t.macs)),
    },
    Column {
        header: "%MAC",
        csv_header: "",
        numeric: true,
        raw: None,
        human: |r, t| share(pick(r, |l| l.macs, |t| t.macs), t.macs),
    },
    Column {
        header: "FLOPs",
        csv_header: "flops",
        numeric: true,
        raw: Some(|r| pick(r, |l| l.flops, |t| t.flops).to_string()),
        human: |r, _| si(pick(r, |l| l.flops, |t| t.flops)),
    },
    Column {
        header: "out",
        csv_header: "output_bytes",
        numeric: true,
        raw: Some(|r| pick(r, |l| l.output_bytes, |t| t.output_bytes).to_string()),
        human: |r, _| bytes(pick(r, |l| l.output_bytes, |t| t.output_bytes)),
    },
    Column {
        header: "buffers",
        csv_header: "buffers",
        numeric: true,
        raw: Some(|r| pick(r, |l| l.buffers, |t| t.buffers).to_string()),
        human: |r, _| count(pick(r, |l| l.buffers, |t| t.buffers)),
    },
];

fn roof(r: RowRef<'_>) -> Option<&crate::roofline::LayerRoofline> {
    match r {
        RowRef::Layer(l) => l.roofline.as_ref(),
        RowRef::Total(t) => t.roofline.as_ref(),
    }
}

/// Columns added by `--hardware`: bytes moved, arithmetic intensity, bound, predicted time
/// (and measured time and the achieved fraction of the roofline, when measured).
pub const ROOFLINE_COLUMNS: &[Column] = &[
    Column {
        header: "moved",
        csv_header: "bytes_moved",
        numeric: true,
        raw: Some(|r| roof(r).map(|x| x.bytes_moved.to_string()).unwrap_or_default()),
        human: |r, _| roof(r).map(|x| bytes(x.bytes_moved)).unwrap_or_default(),
    },
    Column {
        header: "FLOP/B",
        csv_header: "arithmetic_intensity",
        numeric: true,
        raw: Some(|r| roof(r).map(|x| x.arithmetic_intensity.to_string()).unwrap_or_default()),
        human: |r, _| roof(r).map(|x| format!("{:.1}", x.arithmetic_intensity)).unwrap_or_default(),
    },
    Column {
        header: "bound",
        csv_header: "bound",
        numeric: false,
        raw: Some(|r| roof(r).map(|x| x.bound.name().to_owned()).unwrap_or_default()),
        human: |r, _| roof(r).map(|x| x.bound.name().to_owned()).unwrap_or_default(),
    },
    Column {
        header: "t_pred",
        csv_header: "predicted_time_ms",
        numeric: true,
        raw: Some(|r| roof(r).map(|x| x.predicted_time_ms.to_string()).unwrap_or_default()),
        human: |r, _| roof(r).map(|x| crate::roofline::time_ms(x.predicted_time_ms)).unwrap_or_default(),
    },
];

/// Columns added when measured times are attached to the roofline.
pub const MEASURED_COLUMNS: &[Column] = &[
    Column {
        header: "t_meas",
        csv_header: "measured_time_ms",
        numeric: true,
        raw: Some(|r| roof(r).and_then(|x| x.measured_time_ms).map(|t| t.to_string()).unwrap_or_default()),
        human: |r, _| roof(r).and_then(|x| x.measured_time_ms).map(crate::roofline::time_ms).unwrap_or_default(),
    },
    Column {
        header: "%roof",
        csv_header: "achieved_fraction",
        numeric: true,
        raw: Some(|r| roof(r).and_then(|x| x.achieved_fraction).map(|f| f.to_string()).unwrap_or_default()),
        human: |r, _| {
            roof(r).and_then(|x| x.achieved_fraction).map(|f| format!("{:.0}%", 100.0 * f)).unwrap_or_default()
        },
    },
];

/// Every column of `report`: [`COLUMNS`] (`trainable` only when some layer is frozen), then
/// the roofline's when it has one; only those of `--columns`, in its order, when given.
pub fn all_columns(report: &Report) -> Vec<&'static Column> {
    let v = applicable_columns(report);
    match &report.columns {
        None => v,
        Some(names) => names.iter().filter_map(|n| v.iter().find(|c| c.header == *n).copied()).collect(),
    }
}

/// [`all_columns`] without the `--columns` selection.
pub fn applicable_columns(report: &Report) -> Vec<&'static Column> {
    let mut v: Vec<&'static Column> =
        COLUMNS.iter().filter(|c| c.header != "trainable" || report.totals.frozen_params > 0).collect();
    if report.roofline.is_some() {
        v.extend(ROOFLINE_COLUMNS.iter());
        if report.totals.roofline.as_ref().is_some_and(|t| t.measured_time_ms.is_some()) {
            v.extend(MEASURED_COLUMNS.iter());
        }
    }
    v
}

/// `1x96x54x54`.
pub fn shape(dims: &[u64]) -> String {
    dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("x")
}

/// Output formats of `netstat SPEC --format …`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Terminal table (comfy-table), human units.
    Table,
    /// GitHub-flavoured Markdown table, human units.
    Markdown,
    /// CSV, raw integers, one record per row of the report: the layers, then the totals (or the
    /// stages of `measure`).
    Csv,
    /// JSON, raw integers, versioned schema (see README).
    Json,
    /// LaTeX booktabs `tabular`, human units, for `\input` in a paper (analysis and diff
    /// reports; `measure` and `memory` refuse it).
    Latex,
    /// One self-contained HTML page: sortable table and the charts inline, nothing loaded from
    /// the network (analysis, memory, diff and convention reports; `measure` refuses it).
    Html,
}

impl Format {
    /// The format a file name asks for by its extension (case-insensitive): `.md`/`.markdown`,
    /// `.csv`, `.json`, `.tex`, `.html`/`.htm`, `.txt` (the table); `None` for any other or none.
    pub fn from_extension(path: &std::path::Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "md" | "markdown" => Format::Markdown,
            "csv" => Format::Csv,
            "json" => Format::Json,
            "tex" => Format::Latex,
            "html" | "htm" => Format::Html,
            "txt" => Format::Table,
            _ => return None,
        })
    }

    /// The format of a command: `explicit` (`--format`) if given, else the one `output`'s
    /// extension asks for, else the table.
    pub fn pick(explicit: Option<Format>, output: Option<&std::path::Path>) -> Format {
        explicit.or_else(|| output.and_then(Format::from_extension)).unwrap_or(Format::Table)
    }
}

/// Write `report` in `format` to `out`.
pub fn write(report: &Report, format: Format, out: &mut dyn Write) -> std::io::Result<()> {
    match format {
        Format::Table => table::write(report, out),
        Format::Markdown => markdown::write(report, out),
        Format::Csv => csv::write(report, out),
        Format::Json => json::write(report, out),
        Format::Latex => latex::write(report, out),
        Format::Html => html::write(report, out),
    }
}

/// Columns shown in table and Markdown: buffers only when some layer has them.
pub fn human_columns(report: &Report) -> Vec<&'static Column> {
    let chosen = report.columns.is_some();
    all_columns(report).into_iter().filter(|c| chosen || c.header != "buffers" || report.totals.buffers > 0).collect()
}

/// Write `contents` to `path` atomically: a temporary file in the same directory, then rename.
/// On any error nothing is left at `path` (an existing file there is untouched) and the
/// temporary file is removed; a Ctrl-C meanwhile leaves the same state (see [`interrupt`]).
///
/// The new file gets mode 0666 less the umask, like any file a program creates (not the 0600 of
/// a temporary file). A destination that exists and is not a regular file (`/dev/stdout`, a
/// named pipe) is written in place: renaming over it would replace the device or pipe.
///
/// Errors: `Error::Io` naming `path`, with the reason (missing or read-only directory, …).
pub fn write_atomic(path: &std::path::Path, contents: &[u8]) -> Result<(), crate::Error> {
    let io = |source| crate::Error::Io { path: path.display().to_string(), source };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    if crate::files::was_read(path) {
        return Err(crate::Error::Usage(format!(
            "{}: refusing to write over a file netstat read as input (is -o the spec?)",
            path.display()
        )));
    }
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.is_dir() {
            return Err(io(std::io::Error::new(std::io::ErrorKind::IsADirectory, "is a directory, not a file")));
        }
        if !meta.is_file() {
            let mut f = std::fs::OpenOptions::new().write(true).open(path).map_err(io)?;
            return f.write_all(contents).and_then(|_| f.flush()).map_err(io);
        }
    }
    let mut builder = tempfile::Builder::new();
    builder.prefix(".netstat-");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    // Created and registered under the signal lock, renamed (or dropped, which deletes it) and
    // unregistered under it: a signal in between removes it (see [`interrupt`]).
    let mut tmp = interrupt::create(|| builder.tempfile_in(dir), |t| t.path().to_owned()).map_err(|e| {
        io(std::io::Error::new(
            e.kind(),
            format!("cannot create a file in directory {}: {}", dir.display(), root_cause(&e)),
        ))
    })?;
    let written = tmp.write_all(contents).and_then(|_| tmp.as_file().sync_all());
    let result = interrupt::finish(move || match written {
        Ok(()) => tmp.persist(path).map(drop).map_err(|e| e.error),
        Err(e) => {
            drop(tmp);
            Err(e)
        }
    });
    result.map_err(io)
}

/// The OS's message of an I/O error, without the ` at path "…/.netstat-XXXXXX"` that tempfile
/// appends (a temporary name would only confuse a user).
fn root_cause(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.rsplit_once(" at path \"") {
        Some((msg, _)) => msg.to_owned(),
        None => s,
    }
}

#[cfg(test)]
mod tests;
