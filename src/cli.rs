//! The command line (clap). `main.rs` parses it and calls [`run`].

use crate::analysis::{parse_dims, Overrides};
use crate::conventions::Convention;
use crate::report::{self, Format, Report};
use crate::shape::DType;
use crate::Error;
use clap::{Args, Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;

/// The counting convention, printed in `--help`.
pub const CONVENTION: &str = "\
Counting convention: MACs count the multiply-accumulates of conv and linear layers (and \
attention matmuls) only - no bias adds, norms, activations, pooling or softmax - exactly what \
torchvision publishes as `_ops` (\"GFLOPS\" in its docs). FLOPs = 2 x MACs. Params are \
trainable weights and biases; BatchNorm running mean/var are reported as buffers. Activation \
bytes are output elements x dtype size.";

/// netstat: parameters, MACs/FLOPs and memory of a neural network, layer by layer, from a YAML spec.
#[derive(Debug, Parser)]
#[command(name = "netstat", version, about, after_help = CONVENTION, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// A subcommand; without one, netstat analyses SPEC.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Analysis arguments (the default command).
    #[command(flatten)]
    pub analyze: AnalyzeArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Per-layer params, MACs, FLOPs and activations of a spec (the default command).
    #[command(after_help = CONVENTION)]
    Analyze(AnalyzeArgs),
    /// Measure this machine's peak FP32 FLOP/s (FMA loop) and memory bandwidth (copy).
    Peak(PeakArgs),
    /// What NVML says about the GPUs and the driver ("NVML unavailable" where there is none).
    Gpu(GpuArgs),
    /// Build the spec in candle on the CPU (or a CUDA device), run it, and report measured time and memory beside
    /// the analysis (and the two memory predictions, with their error).
    Measure(MeasureArgs),
    /// Write every spec's report (Markdown, CSV, JSON, LaTeX, SVG charts; HTML pages with --html)
    /// and an index into a folder; with --check, compare instead and exit 1 listing the numbers
    /// that moved.
    Report(ReportArgs),
    /// Per-layer and total differences in params, MACs and activation bytes between two specs,
    /// layers aligned by name (Δ = B − A).
    Diff(DiffArgs),
    /// Memory of inference and of one training step: figures, timeline, batch sweep, fit.
    #[command(after_help = crate::memory::FOOTNOTE)]
    Memory(MemoryArgs),
    /// Print a shell completion script: `netstat completions bash > ~/.local/share/bash-completion/completions/netstat`.
    Completions(CompletionsArgs),
    /// Print the JSON Schema of the spec format (for editors: docs/spec-format.md says how to use it).
    Schema,
    /// Write the YAML spec equivalent to an ONNX model (one layer per node, constant and
    /// shape-only nodes folded); it analyses to the same numbers as the model.
    Import(ImportArgs),
}

/// Arguments of `netstat completions`.
#[derive(Debug, Args, Clone)]
pub struct CompletionsArgs {
    /// The shell the script is for.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

/// Arguments of `netstat import`.
#[derive(Debug, Args, Clone)]
pub struct ImportArgs {
    /// The ONNX model, e.g. resnet18.onnx.
    #[arg(value_name = "MODEL")]
    pub model: String,
    /// Write the spec to FILE (atomically) instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Import ops netstat cannot map as 0-param, 0-MAC layers marked "unknown op" (with a
    /// warning) instead of failing.
    #[arg(long)]
    pub allow_unknown: bool,
    /// Input shape without batch, e.g. 3x224x224: sets the model's symbolic input dimensions
    /// (the spec's `input`).
    #[arg(long, value_name = "CxHxW")]
    pub input: Option<String>,
    /// Batch size the spec is written with (the spec's `batch`; default: the model's, 1 when symbolic).
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch: Option<u64>,
}

/// How the training step is modelled (for the memory figures).
#[derive(Debug, Args, Clone)]
pub struct TrainArgs {
    /// Optimizer of the training step: its state is 0 (sgd), 1 (momentum) or 2 (adam, adamw)
    /// copies of the trainable parameters.
    #[arg(long, value_enum, default_value_t = crate::memory::Optimizer::Adam)]
    pub optimizer: crate::memory::Optimizer,
    /// Mixed precision: weights, activations and gradients in bf16/fp16; fp32 master weights
    /// and optimizer state.
    #[arg(long, value_enum)]
    pub amp: Option<crate::memory::Amp>,
    /// How an adam/adamw step runs: fused (one kernel, no temporaries), foreach (one extra copy
    /// of the parameters during the step) or per-tensor (two copies of the largest parameter).
    #[arg(long, value_enum, default_value_t = crate::memory::AdamImpl::Fused)]
    pub adam_impl: crate::memory::AdamImpl,
    /// Inference peak as eager PyTorch holds references: each block's input (layers named
    /// `P.…`) stays live until the block's last layer has run.
    #[arg(long)]
    pub eager_references: bool,
    /// Data parallelism over N devices: the spec's batch is each device's micro-batch and the
    /// figures are one device's (with --zero, its shards).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub data_parallel: u64,
    /// ZeRO stage over the --data-parallel devices (Rajbhandari et al. 2020): 1 shards the
    /// optimizer state (and fp32 master weights), 2 also the gradients, 3 also the parameters.
    #[arg(long, value_name = "STAGE", value_parser = clap::value_parser!(u8).range(0..=3))]
    pub zero: Option<u8>,
    /// Activation checkpointing: spec (the block instances marked `checkpoint: true`), blocks
    /// (every copy of every top-level block instance) or none.
    #[arg(long, value_enum, default_value_t = crate::memory::checkpoint::Checkpoint::Spec)]
    pub checkpoint: crate::memory::checkpoint::Checkpoint,
    /// Tensor parallelism over T devices as Megatron-LM splits attention and MLP (Shoeybi et al.
    /// 2019): the figures are one device's.
    #[arg(long, value_name = "T", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub tensor_parallel: u64,
}

impl TrainArgs {
    /// The memory-model options these arguments ask for (no model split: `devices` 1).
    ///
    /// Errors: `--zero` 1–3 without `--data-parallel` N ≥ 2.
    pub fn options(&self) -> Result<crate::memory::Options, Error> {
        let data_parallel = crate::memory::parallel::DataParallel::new(self.data_parallel, self.zero.unwrap_or(0))
            .map_err(Error::Usage)?;
        Ok(crate::memory::Options {
            optimizer: self.optimizer,
            amp: self.amp,
            adam_impl: self.adam_impl,
            eager_references: self.eager_references,
            devices: 1,
            data_parallel,
            checkpoint: self.checkpoint,
            tensor_parallel: self.tensor_parallel,
        })
    }
}

/// Most batch sizes `memory --sweep-batch` takes (each one re-analyses the spec).
pub const MAX_SWEEP: usize = 64;

/// Arguments of `netstat memory`.
#[derive(Debug, Args, Clone)]
pub struct MemoryArgs {
    /// The spec file (YAML), e.g. specs/mlp-seed.yaml.
    #[arg(value_name = "SPEC")]
    pub spec: String,
    #[command(flatten)]
    pub spec_args: SpecArgs,
    #[command(flatten)]
    pub train: TrainArgs,
    /// Show live bytes after each stage of one training step.
    #[arg(long)]
    pub timeline: bool,
    /// Report inference and training memory at each of these batch sizes, e.g. 1,8,32,128 (at most 64).
    #[arg(long, value_name = "N,N,...", allow_negative_numbers = true, value_delimiter = ',', value_parser = clap::value_parser!(u64).range(1..))]
    pub sweep_batch: Vec<u64>,
    /// Find the largest batch whose training peak fits in SIZE (3GiB, 3GB or 3000000000).
    #[arg(long, value_name = "SIZE")]
    pub fit: Option<String>,
    /// Also show a peer tool's memory figure, by its definition (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub memory_convention: Vec<crate::memory::Convention>,
    /// Decoder inference with a KV cache: the prefill of the prompt, then one decode step;
    /// the cache per attention layer, MACs and peak of each (docs/memory.md). Implied by
    /// --context and --prompt.
    #[arg(long)]
    pub kv_cache: bool,
    /// Tokens the decode step attends to, its own included (the cache holds this many after
    /// it) [default: the prompt + 1].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub context: Option<u64>,
    /// Tokens of the prompt the prefill runs on [default: the spec's sequence length, dim 0 of
    /// its input].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub prompt: Option<u64>,
    /// Output format [default: from the extension of -o FILE (.md, .csv, .json, .tex, .html), else table].
    #[arg(long, short = 'f', value_enum)]
    pub format: Option<Format>,
    /// Write to FILE (atomically) instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Arguments of `netstat report`.
#[derive(Debug, Args, Clone)]
pub struct ReportArgs {
    /// Folder of spec files (*.yaml) and ONNX models (*.onnx), each analysed at its own batch,
    /// input and dtype.
    #[arg(value_name = "SPECS_DIR", default_value = "specs")]
    pub specs: PathBuf,
    /// Folder the reports go into (created if missing).
    #[arg(long, value_name = "DIR", default_value = "reports")]
    pub out: PathBuf,
    /// Write nothing: regenerate in memory and compare with the files in --out (analytic numbers;
    /// netstat's version and measured timings are ignored). Exit 1 if a number moved or a file
    /// is missing or stale. HTML pages are checked too when --html is given or --out holds an
    /// index.html.
    #[arg(long)]
    pub check: bool,
    /// Also write one self-contained HTML page per spec (sortable table, charts inline) and
    /// index.html (implied when --out already holds an index.html).
    #[arg(long)]
    pub html: bool,
}

/// Arguments of `netstat diff`.
#[derive(Debug, Args, Clone)]
pub struct DiffArgs {
    /// Spec A (the baseline).
    #[arg(value_name = "A")]
    pub a: String,
    /// Spec B (Δ = B − A).
    #[arg(value_name = "B")]
    pub b: String,
    /// Overrides applied to both specs.
    #[command(flatten)]
    pub spec_args: SpecArgs,
    /// Show only the layers that differ (or are in one spec only); totals still count all.
    #[arg(long)]
    pub changed_only: bool,
    /// Output format [default: from the extension of -o FILE (.md, .csv, .json, .tex, .html), else table].
    #[arg(long, short = 'f', value_enum)]
    pub format: Option<Format>,
    /// Write to FILE (atomically) instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Arguments of `netstat peak`.
#[derive(Debug, Args, Clone)]
pub struct PeakArgs {
    /// Threads to run on (default: all available).
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = clap::value_parser!(u64).range(1..))]
    pub threads: Option<u64>,
    /// Seconds per FMA run (3 runs).
    #[arg(long, value_name = "S", default_value_t = 0.3)]
    pub seconds: f64,
    /// Also write the result as a hardware catalog entry (e.g. hardware/this-cpu.yaml).
    #[arg(long, value_name = "FILE")]
    pub write: Option<PathBuf>,
}

/// Arguments of `netstat gpu`.
#[derive(Debug, Args, Clone)]
pub struct GpuArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Overrides of a spec's batch, input and dtype.
#[derive(Debug, Args, Clone, Default)]
pub struct SpecArgs {
    /// Batch size (overrides the spec's `batch`).
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch: Option<u64>,
    /// Input shape without batch, e.g. 3x227x227 (overrides the spec's `input`).
    #[arg(long, value_name = "CxHxW")]
    pub input: Option<String>,
    /// Element type of activations and weights (overrides the spec's `dtype`).
    #[arg(long, value_enum)]
    pub dtype: Option<DType>,
    /// For an ONNX model: count ops netstat cannot map as 0-param, 0-MAC layers marked
    /// "unknown op" (with a warning) instead of failing.
    #[arg(long)]
    pub allow_unknown: bool,
}

impl SpecArgs {
    /// The overrides these arguments ask for.
    pub fn overrides(&self) -> Result<Overrides, Error> {
        let input = match &self.input {
            Some(s) => Some(parse_dims(s).map_err(|m| Error::Usage(format!("--input: {m}")))?),
            None => None,
        };
        Ok(Overrides {
            batch: self.batch,
            input,
            dtype: self.dtype,
            onnx: crate::onnx::ImportOptions { allow_unknown: self.allow_unknown, ..Default::default() },
        })
    }
}

/// Arguments of the analysis.
#[derive(Debug, Args, Clone)]
pub struct AnalyzeArgs {
    /// The spec file (YAML), e.g. specs/alexnet.yaml; `-` reads it from standard input.
    #[arg(value_name = "SPEC")]
    pub spec: Option<String>,
    #[command(flatten)]
    pub spec_args: SpecArgs,
    #[command(flatten)]
    pub train: TrainArgs,
    /// Output format [default: from the extension of -o FILE (.md, .csv, .json, .tex, .html), else table].
    #[arg(long, short = 'f', value_enum)]
    pub format: Option<Format>,
    /// Write to FILE (atomically: a temporary file, then rename) instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Show these columns, in this order (table, Markdown, LaTeX, CSV), by header: layer, kind,
    /// output, params, trainable, %par, MACs, %MAC, FLOPs, out, buffers, and with --hardware
    /// moved, FLOP/B, bound, t_pred. Default: all that apply, fitted to the terminal's width.
    #[arg(long, value_name = "NAME,...", value_delimiter = ',')]
    pub columns: Vec<String>,
    /// Roll rows up by name prefix: N dot-separated parts (`--depth 2`: `layer2.0.conv1` → `layer2.0`), like torchinfo's depth.
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = clap::value_parser!(u64).range(1..))]
    pub depth: Option<u64>,
    /// Count MACs as this tool does (torchinfo 1.8.0 Mult-Adds, fvcore 0.1.5, ptflops 0.7.5 aten
    /// backend) and print that tool's per-layer and total numbers.
    #[arg(long, value_enum, default_value_t = Convention::Netstat)]
    pub convention: Convention,
    /// Show per layer which terms the convention adds to or drops from netstat's count, and why
    /// (with the default convention: all four side by side).
    #[arg(long)]
    pub explain: bool,
    /// Roofline on a device: a catalog name (gtx580, v100, a100, h100, h200, this-cpu) or a hardware YAML file.
    #[arg(long, value_name = "NAME|FILE")]
    pub hardware: Option<String>,
    /// The largest batch whose training peak (per device, with --devices) fits in SIZE (3GiB,
    /// 3GB or 3000000000), or, without SIZE, in the memory of the --hardware device; the same
    /// search and optimizer (--optimizer) as `netstat memory --fit`.
    #[arg(long, value_name = "SIZE", num_args = 0..=1, default_missing_value = "")]
    pub fit: Option<String>,
    /// Split the model over N devices like AlexNet 2012 and show the per-device training memory.
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = clap::value_parser!(u64).range(1..))]
    pub devices: Option<u64>,
}

/// Run the parsed command line, writing to `stdout`.
pub fn run(cli: Cli, stdout: &mut dyn Write) -> Result<(), Error> {
    match cli.command {
        Some(Command::Analyze(a)) => analyze(a, stdout),
        Some(Command::Measure(m)) => measure(m, stdout),
        Some(Command::Memory(m)) => memory(m, stdout),
        Some(Command::Report(a)) => report_dir(a, stdout),
        Some(Command::Diff(a)) => diff(a, stdout),
        Some(Command::Peak(p)) => peak(p, stdout),
        Some(Command::Gpu(g)) => gpu(g, stdout),
        Some(Command::Completions(c)) => completions(c, stdout),
        Some(Command::Schema) => schema(stdout),
        Some(Command::Import(i)) => import(i, stdout),
        None => analyze(cli.analyze, stdout),
    }
}

fn completions(c: CompletionsArgs, stdout: &mut dyn Write) -> Result<(), Error> {
    use clap::CommandFactory;
    let mut buf = Vec::new();
    clap_complete::generate(c.shell, &mut Cli::command(), "netstat", &mut buf);
    stdout.write_all(&buf).map_err(|source| Error::Io { path: "<stdout>".into(), source })
}

fn schema(stdout: &mut dyn Write) -> Result<(), Error> {
    let mut text = serde_json::to_string_pretty(&crate::spec::schema::schema()).expect("a JSON value serializes");
    text.push('\n');
    stdout.write_all(text.as_bytes()).map_err(|source| Error::Io { path: "<stdout>".into(), source })
}

/// The error for a command line whose first argument names no file but is close to a
/// subcommand's name (`netstat mesure x.yaml`): clap would take the word as the default command's
/// SPEC and then refuse the next argument with a misleading message. `main` calls this before
/// parsing; `None` when the first argument is a subcommand, an option, `-`, a path or an existing
/// file, or close to no subcommand.
pub fn mistyped_command(args: &[std::ffi::OsString]) -> Option<Error> {
    let first = args.get(1)?.to_str()?;
    if first.starts_with('-') {
        return None;
    }
    mistyped_spec(first)
}

/// [`mistyped_command`] for the SPEC of the default command.
fn mistyped_spec(path: &str) -> Option<Error> {
    use clap::CommandFactory;
    if path == "-" || path.contains(['/', '.']) || std::path::Path::new(path).exists() {
        return None;
    }
    let cmd = Cli::command();
    let names: Vec<&str> = cmd.get_subcommands().map(|c| c.get_name()).collect();
    if names.contains(&path) {
        return None;
    }
    let hint = crate::error::did_you_mean(path, names.iter().copied());
    (!hint.is_empty()).then(|| Error::Usage(format!("`{path}` is neither a command nor a spec file{hint}")))
}

fn import(a: ImportArgs, stdout: &mut dyn Write) -> Result<(), Error> {
    if !crate::onnx::is_onnx(&a.model) {
        return Err(Error::Usage(format!("{}: `netstat import` reads ONNX models (MODEL.onnx)", a.model)));
    }
    let input = match &a.input {
        Some(s) => Some(parse_dims(s).map_err(|m| Error::Usage(format!("--input: {m}")))?),
        None => None,
    };
    let opts = crate::onnx::ImportOptions { allow_unknown: a.allow_unknown, input, batch: a.batch };
    let imported = crate::onnx::import(&a.model, &opts)?;
    for w in &imported.warnings {
        eprintln!("warning: {}", crate::error::one_line(&w.to_string()));
    }
    // Checked before it is written: the spec must read back (it does unless netstat has a bug).
    crate::spec::parse_bytes(&crate::onnx::spec_label(&a.model), imported.yaml.as_bytes())?;
    match a.output {
        Some(p) => report::write_atomic(&p, imported.yaml.as_bytes()),
        None => {
            stdout.write_all(imported.yaml.as_bytes()).map_err(|source| Error::Io { path: "<stdout>".into(), source })
        }
    }
}

fn analyze(a: AnalyzeArgs, stdout: &mut dyn Write) -> Result<(), Error> {
    let Some(path) = a.spec.as_deref() else {
        return Err(Error::Usage("no spec given: try `netstat specs/alexnet.yaml` or `netstat --help`".into()));
    };
    if let Some(e) = mistyped_spec(path) {
        return Err(e);
    }
    let format = Format::pick(a.format, a.output.as_deref());
    let analysis = crate::analyze_file(path, &a.spec_args.overrides()?)?;
    if a.explain || a.convention != Convention::Netstat {
        let convs: Vec<Convention> =
            if a.convention == Convention::Netstat { Convention::ALL.to_vec() } else { vec![a.convention] };
        let counted = convs
            .into_iter()
            .map(|c| crate::conventions::count(&analysis, c))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|m| Error::Usage(format!("{path}: {m}")))?;
        let mut buf = Vec::new();
        report::convention::write(&analysis.spec.name, &counted, a.explain, format, &mut buf)
            .expect("writing to memory cannot fail");
        return match a.output {
            Some(p) => report::write_atomic(&p, &buf),
            None => stdout.write_all(&buf).map_err(|source| Error::Io { path: "<stdout>".into(), source }),
        };
    }
    let mut r = Report::new(&analysis);
    let m = crate::memory::model(&analysis, &a.train.options()?)?;
    // The HTML page charts the memory timeline, which the summary drops.
    let timeline = (format == Format::Html).then(|| m.clone());
    r.memory = Some(report::memory::MemoryReport::summary(m));
    let hardware = a.hardware.as_deref().map(crate::hardware::resolve).transpose()?;
    let at_input =
        |m: String| Error::Spec(crate::error::SpecError::new(&analysis.spec.file, analysis.spec.input.loc, m));
    if let Some(hw) = &hardware {
        r = r.with_roofline(crate::roofline::roofline(&analysis, hw).map_err(at_input)?);
    }
    if a.fit.is_some() || a.devices.is_some() {
        let o = crate::memory::Options { devices: a.devices.unwrap_or(1), ..a.train.options()? };
        let mut m = crate::memory::devices::DeviceMemory::of(&crate::memory::model(&analysis, &o)?);
        if let Some(size) = &a.fit {
            let budget = match (size.as_str(), &hardware) {
                ("", Some(hw)) => hw.memory_bytes,
                ("", None) => {
                    return Err(Error::Usage("--fit: give a size (--fit 3GiB) or a device (--hardware gtx580)".into()))
                }
                (s, _) => parse_budget(s)?,
            };
            let hw = hardware.as_ref().filter(|_| size.is_empty());
            m = m.with_fit(&analysis.spec, &o, budget, hw)?;
        }
        r = r.with_training_memory(m);
    }
    let mut r = match a.depth {
        Some(d) => r.rolled_up(usize::try_from(d).unwrap_or(usize::MAX)),
        None => r,
    };
    if !a.columns.is_empty() {
        r.columns = Some(pick_columns(&r, &a.columns)?);
    }
    if let Some(m) = timeline {
        let page = report::html::report_page(&r, Some(&m), None);
        return match a.output.as_deref() {
            Some(p) => report::write_atomic(p, page.as_bytes()),
            None => stdout.write_all(page.as_bytes()).map_err(|source| Error::Io { path: "<stdout>".into(), source }),
        };
    }
    let done = emit(&r, format, a.output.as_deref(), stdout);
    free_in_background(analysis.layers.len(), (analysis, r));
    done
}

/// Frees `x` (a whole analysis and report) on a thread of its own, after the output is written.
/// A 100,000-layer analysis and its report are millions of small allocations, about a tenth of
/// the command's time to free (docs/performance.md); the command returns without waiting, and
/// when it is `main`'s last step the process exits and frees it all at once. Specs under 10,000
/// layers are freed in place (a thread costs more than that). If no thread can be started, `x`
/// is freed in place.
fn free_in_background<T: Send + 'static>(layers: usize, x: T) {
    if layers < 10_000 {
        return drop(x);
    }
    // On a failed spawn the closure, and `x` with it, is dropped here.
    let _ = std::thread::Builder::new().name("free".into()).spawn(move || drop(x));
}

/// The headers `--columns` names, checked against the columns `r` has (case-insensitive; a CSV
/// header such as `output_bytes` names its column too).
fn pick_columns(r: &Report, names: &[String]) -> Result<Vec<&'static str>, Error> {
    let have = report::applicable_columns(r);
    let picked: Vec<&'static str> = names
        .iter()
        .map(|n| {
            let n = n.trim();
            have.iter()
                .find(|c| {
                    c.header.eq_ignore_ascii_case(n)
                        || (!c.csv_header.is_empty() && c.csv_header.eq_ignore_ascii_case(n))
                })
                .map(|c| c.header)
                .ok_or_else(|| {
                    let headers: Vec<&str> = have.iter().map(|c| c.header).collect();
                    Error::Usage(format!(
                        "--columns: no column `{n}`{} (columns: {})",
                        crate::error::did_you_mean(n, headers.iter().copied()),
                        headers.join(", ")
                    ))
                })
        })
        .collect::<Result<_, _>>()?;
    // A column named twice (`params,params`, or `output bytes,output_bytes`) is a typo: one
    // table shows a column once.
    for (i, c) in picked.iter().enumerate() {
        if picked[..i].contains(c) {
            return Err(Error::Usage(format!("--columns: column `{c}` named twice")));
        }
    }
    Ok(picked)
}

/// Arguments of `netstat measure`.
#[derive(Debug, Args, Clone)]
pub struct MeasureArgs {
    /// The spec file (YAML), e.g. specs/alexnet.yaml; `-` reads it from standard input.
    #[arg(value_name = "SPEC")]
    pub spec: String,
    #[command(flatten)]
    pub spec_args: SpecArgs,
    /// Measure one training step (forward, loss, backward, optimizer step) instead of inference.
    #[arg(long)]
    pub train: bool,
    /// Optimizer of the training step (as in `netstat SPEC` and `netstat memory`): its state
    /// is 0 (sgd), 1 (momentum) or 2 (adam, adamw) copies of the trainable parameters.
    #[arg(long, value_enum, default_value_t = crate::memory::Optimizer::Adam, requires = "train")]
    pub optimizer: crate::memory::Optimizer,
    /// Untimed warm-up passes (thread pools, page faults, gemm buffers); at most 100,000.
    #[arg(long, default_value_t = crate::measure::run::DEFAULT_WARMUP, value_name = "N", allow_negative_numbers = true, value_parser = clap::value_parser!(u32).range(0..=crate::measure::run::MAX_PASSES as i64))]
    pub warmup: u32,
    /// Timed passes (1 to 100,000; layers × passes at most 10⁸); times are reported as median,
    /// min and spread.
    #[arg(long, default_value_t = crate::measure::run::DEFAULT_ITERS, value_name = "N", allow_negative_numbers = true, value_parser = clap::value_parser!(u32).range(1..=crate::measure::run::MAX_PASSES as i64))]
    pub iters: u32,
    /// Seed of the random weights, input, labels and dropout masks.
    #[arg(long, default_value_t = 0, value_name = "N", allow_negative_numbers = true)]
    pub seed: u64,
    /// Run even if the predicted peak memory exceeds MemAvailable (or the GPU's free memory).
    #[arg(long)]
    pub force: bool,
    /// Where to run: cpu, or cuda:N (CUDA ordinal N; needs a build with `--features cuda`).
    #[arg(long, value_name = "DEVICE", default_value = "cpu")]
    pub device: crate::measure::device::Target,
    /// Output format [default: from the extension of -o FILE (.md, .csv, .json, .tex, .html), else table].
    #[arg(long, short = 'f', value_enum)]
    pub format: Option<Format>,
    /// Write to FILE (atomically) instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Fixed fake timings and machine name, for deterministic snapshot tests.
    #[arg(long, hide = true)]
    pub fake_timings: bool,
}

fn measure(m: MeasureArgs, stdout: &mut dyn Write) -> Result<(), Error> {
    let format = Format::pick(m.format, m.output.as_deref());
    if matches!(format, Format::Latex | Format::Html) {
        return Err(Error::Usage(
            "`netstat measure` writes table, markdown, csv or json; LaTeX tables and HTML pages come from `netstat SPEC --format latex|html`"
                .into(),
        ));
    }
    let analysis = crate::analyze_file(&m.spec, &m.spec_args.overrides()?)?;
    let settings = crate::measure::Settings {
        train: m.train,
        optimizer: m.optimizer,
        warmup: m.warmup,
        iters: m.iters,
        seed: m.seed,
        fake_timings: m.fake_timings || std::env::var_os("NETSTAT_FAKE_TIMINGS").is_some(),
        force: m.force,
        progress: true,
        device: m.device,
        ..Default::default()
    };
    use crate::measure::run::MeasureError;
    let measured = crate::measure::measure(&analysis, &settings).map_err(|e| match e {
        MeasureError::DoesNotFit(_)
        | MeasureError::ExceedsMachine(_)
        | MeasureError::Unsupported(_)
        | MeasureError::BadDevice(_) => Error::Usage(e.to_string()),
        MeasureError::Spec(e) => Error::Spec(e),
        MeasureError::Run(_) => Error::Measure(format!("{}: {e}", m.spec)),
    })?;
    // The analysis report's memory summary is the model's for the optimizer measured.
    let memory = crate::memory::model(&analysis, &crate::measure::run::memory_options(&settings))?;
    let r = report::measured::MeasureReport::new(&analysis, memory, measured);
    let mut buf = Vec::new();
    report::measured::write(&r, format, &mut buf).expect("writing to memory cannot fail");
    match m.output.as_deref() {
        Some(p) => report::write_atomic(p, &buf),
        None => stdout.write_all(&buf).map_err(|source| Error::Io { path: "<stdout>".into(), source }),
    }
}

/// A `--fit` size in bytes (positive).
fn parse_budget(s: &str) -> Result<u64, Error> {
    match crate::memory::parse_size(s).map_err(|m| Error::Usage(format!("--fit: {m}")))? {
        // Nothing has a training peak of 0 bytes: a zero budget is a typo, not a question.
        0 => Err(Error::Usage(format!("--fit: expected a positive size, got \"{s}\""))),
        n => Ok(n),
    }
}

fn memory(a: MemoryArgs, stdout: &mut dyn Write) -> Result<(), Error> {
    use crate::memory as mm;
    let format = Format::pick(a.format, a.output.as_deref());
    if format == Format::Latex {
        return Err(Error::Usage(
            "`netstat memory` writes table, markdown, csv, json or html; LaTeX tables come from `netstat SPEC --format latex`"
                .into(),
        ));
    }
    if format == Format::Csv && a.timeline && !a.sweep_batch.is_empty() {
        return Err(Error::Usage(
            "CSV holds one table: ask for --timeline or --sweep-batch, not both (JSON holds both)".into(),
        ));
    }
    let kv = a.kv_cache || a.context.is_some() || a.prompt.is_some();
    if format == Format::Csv && kv && (a.timeline || !a.sweep_batch.is_empty()) {
        return Err(Error::Usage(
            "CSV holds one table: ask for --kv-cache or --timeline/--sweep-batch, not both (JSON holds both)".into(),
        ));
    }
    // Each batch re-analyses the spec: 100,000 batch sizes on a 100,000-layer spec would be 10^10
    // layer analyses. A sweep is for a chart or a table; 64 sizes are plenty.
    if a.sweep_batch.len() > MAX_SWEEP {
        return Err(Error::Usage(format!(
            "--sweep-batch: at most {MAX_SWEEP} batch sizes, got {}",
            a.sweep_batch.len()
        )));
    }
    let budget = a.fit.as_deref().map(parse_budget).transpose()?;
    let o = a.train.options()?;
    // The decode model holds one device's whole cache; split over devices it would be paired
    // with one device's share of the weights (a wrong per-device peak), so it is refused.
    if kv && (o.tensor_parallel > 1 || o.devices > 1) {
        return Err(Error::Usage(
            "--kv-cache models one device: the KV cache split over devices (--tensor-parallel) is not modelled".into(),
        ));
    }
    let analysis = crate::analyze_file(&a.spec, &a.spec_args.overrides()?)?;
    let mut m = report::memory::MemoryReport::summary(mm::model(&analysis, &o)?);
    if a.timeline {
        m.figures.timeline = mm::model(&analysis, &o)?.timeline;
    }
    if !a.sweep_batch.is_empty() {
        let rows = a
            .sweep_batch
            .iter()
            .map(|&b| mm::at_batch(&analysis.spec, b, &o).map(|x| report::memory::SweepRow::of(&x)))
            .collect::<Result<Vec<_>, _>>()?;
        m.sweep = Some(rows);
    }
    if let Some(budget) = budget {
        let f = match mm::fit_with_limit(&analysis.spec, budget, &o)? {
            Some((x, limit)) => report::memory::Fit {
                budget_bytes: budget,
                batch: Some(x.batch),
                training_peak_bytes: x.training_peak_bytes,
                // fit() counts a batch that fails to analyse as not fitting; say so when that,
                // not the budget, is what stopped it (a count overflowing u64 is no memory limit).
                limit: limit.map(|e| e.message),
            },
            None => report::memory::Fit {
                budget_bytes: budget,
                batch: None,
                training_peak_bytes: mm::at_batch(&analysis.spec, 1, &o)?.training_peak_bytes,
                limit: None,
            },
        };
        m.fit = Some(f);
    }
    if !a.memory_convention.is_empty() {
        m.conventions = Some(mm::conventions(&analysis)?);
        m.shown = a.memory_convention.clone();
    }
    if a.kv_cache || a.context.is_some() || a.prompt.is_some() {
        m.kv_cache = Some(mm::decode::decode(&analysis, &o, a.prompt, a.context)?);
    }
    let mut r = Report::new(&analysis);
    let mut buf = Vec::new();
    match format {
        Format::Table => report::memory::write_table(&r, &m, &mut buf),
        Format::Markdown => report::memory::write_markdown(&r, &m, &mut buf),
        Format::Csv => report::memory::write_csv(&m, &mut buf),
        Format::Json => {
            r.memory = Some(m);
            report::json::write(&r, &mut buf)
        }
        Format::Html => buf.write_all(report::html::memory_page(&r, &m).as_bytes()),
        Format::Latex => unreachable!("refused above"),
    }
    .expect("writing to memory cannot fail");
    free_in_background(analysis.layers.len(), (analysis, r));
    match a.output.as_deref() {
        Some(p) => report::write_atomic(p, &buf),
        None => stdout.write_all(&buf).map_err(|source| Error::Io { path: "<stdout>".into(), source }),
    }
}

fn report_dir(a: ReportArgs, stdout: &mut dyn Write) -> Result<(), Error> {
    let out = |e| Error::Io { path: "<stdout>".into(), source: e };
    // A folder written with --html keeps its pages: regenerated and checked with the rest (a
    // plain regenerate left them stale, and the next --check failed on them).
    let html = a.html || a.out.join("index.html").is_file();
    let g = report::dir::generate(&a.specs, html)?;
    if !a.check {
        let n = report::dir::write(&g, &a.out)?;
        let specs = g.reports.len();
        let s = if specs == 1 { "" } else { "s" };
        return writeln!(stdout, "wrote {n} files for {specs} spec{s} into {}", a.out.display()).map_err(out);
    }
    let d = report::dir::check(&g, &a.out);
    if d.is_clean() {
        let specs = g.reports.len();
        let s = if specs == 1 { "" } else { "s" };
        return writeln!(stdout, "{}: up to date ({specs} spec{s}, {} files)", a.out.display(), g.files.len())
            .map_err(out);
    }
    for m in &d.moved {
        writeln!(stdout, "moved  {m}").map_err(out)?;
    }
    for s in &d.stale {
        writeln!(stdout, "stale  {s}").map_err(out)?;
    }
    Err(Error::Stale(format!(
        "{} is out of date: {} number(s) moved, {} file(s) missing or stale; regenerate with `netstat report {} --out {}{}`",
        a.out.display(),
        d.moved.len(),
        d.stale.len(),
        a.specs.display(),
        a.out.display(),
        if html { " --html" } else { "" }
    )))
}

fn diff(a: DiffArgs, stdout: &mut dyn Write) -> Result<(), Error> {
    if a.a == "-" && a.b == "-" {
        return Err(Error::Usage("only one of A and B can be read from standard input (`-`)".into()));
    }
    let o = a.spec_args.overrides()?;
    let with_memory = |path: &str| -> Result<Report, Error> {
        let an = crate::analyze_file(path, &o)?;
        let mut r = Report::new(&an);
        let m = crate::memory::model(&an, &crate::memory::Options::default())?;
        r.memory = Some(report::memory::MemoryReport::summary(m));
        free_in_background(an.layers.len(), an);
        Ok(r)
    };
    // The two specs are independent: analyse B on a second thread (parsing dominates; 100,000
    // layers each took 1.3 s of CPU one after the other). A's error wins if both fail.
    let (ra, rb) = std::thread::scope(|s| {
        let b = std::thread::Builder::new()
            .stack_size(8 << 20)
            .spawn_scoped(s, || with_memory(&a.b))
            .map_err(|e| Error::Usage(format!("cannot start a thread: {e}")))?;
        let ra = with_memory(&a.a);
        let rb = b.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        Ok::<_, Error>((ra?, rb?))
    })?;
    let d = report::diff::DiffReport::new(&ra, &rb).with_files(&a.a, &a.b).with_changed_only(a.changed_only);
    let mut buf = Vec::new();
    d.write(Format::pick(a.format, a.output.as_deref()), &mut buf).expect("writing to memory cannot fail");
    free_in_background(ra.layers.len().max(rb.layers.len()), (d, ra, rb));
    match a.output {
        Some(p) => report::write_atomic(&p, &buf),
        None => stdout.write_all(&buf).map_err(|source| Error::Io { path: "<stdout>".into(), source }),
    }
}

fn peak(p: PeakArgs, stdout: &mut dyn Write) -> Result<(), Error> {
    if !(p.seconds.is_finite() && p.seconds > 0.0 && p.seconds <= 60.0) {
        return Err(Error::Usage(format!("--seconds: expected a number of seconds in (0, 60], got {}", p.seconds)));
    }
    let threads = match p.threads {
        Some(t) => t as usize,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let m = crate::peak::measure(threads, std::time::Duration::from_secs_f64(p.seconds)).map_err(Error::Usage)?;
    let io = |source: std::io::Error| Error::Io { path: "<stdout>".into(), source };
    writeln!(stdout, "{}", m.summary()).map_err(io)?;
    if let Some(path) = &p.write {
        let date = crate::peak::today_utc();
        let hw = m.to_hardware(&date);
        let header = format!(
            "This machine, measured by `netstat peak --write {}` on {date} (UTC): {}.\n\
             FP32: {} FMA loop on {} thread(s), best of 3; bandwidth: memcpy, bytes read + written, best of 5.\n\
             A measurement, not a datasheet: rerun `netstat peak` on your machine (numbers vary between runs).",
            path.display(),
            m.cpu_model,
            m.isa,
            m.threads
        );
        report::write_atomic(path, crate::hardware::to_yaml(&hw, &header).as_bytes())?;
        writeln!(stdout, "wrote {}", path.display()).map_err(io)?;
    }
    Ok(())
}

fn gpu(g: GpuArgs, stdout: &mut dyn Write) -> Result<(), Error> {
    let n = crate::gpu::query();
    let io = |source: std::io::Error| Error::Io { path: "<stdout>".into(), source };
    if g.json {
        serde_json::to_writer_pretty(&mut *stdout, &n).map_err(|e| io(e.into()))?;
        writeln!(stdout).map_err(io)
    } else {
        writeln!(stdout, "{n}").map_err(io)
    }
}

/// Write a report in `format` to `output` (atomically) or to `stdout`.
pub fn emit(r: &Report, format: Format, output: Option<&std::path::Path>, stdout: &mut dyn Write) -> Result<(), Error> {
    let mut buf = Vec::new();
    match (format, output) {
        // On standard output the table fits the terminal (or COLUMNS); in a file, 80 columns.
        (Format::Table, None) => report::table::write_width(r, report::table::width(), &mut buf),
        _ => report::write(r, format, &mut buf),
    }
    .expect("writing to memory cannot fail");
    match output {
        Some(p) => report::write_atomic(p, &buf),
        None => stdout.write_all(&buf).map_err(|source| Error::Io { path: "<stdout>".into(), source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}
