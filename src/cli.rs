//! The command line (clap). `main.rs` parses it and calls [`run`].

use crate::analysis::{parse_dims, Overrides};
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
    /// Build the spec in candle on the CPU, run it, and report measured time and memory beside
    /// the analysis (and the two memory predictions, with their error).
    Measure(MeasureArgs),
}

/// Overrides of a spec's batch, input and dtype.
#[derive(Debug, Args, Clone, Default)]
pub struct SpecArgs {
    /// Batch size (overrides the spec's `batch`).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub batch: Option<u64>,
    /// Input shape without batch, e.g. 3x227x227 (overrides the spec's `input`).
    #[arg(long, value_name = "CxHxW")]
    pub input: Option<String>,
    /// Element type of activations and weights (overrides the spec's `dtype`).
    #[arg(long, value_enum)]
    pub dtype: Option<DType>,
}

impl SpecArgs {
    /// The overrides these arguments ask for.
    pub fn overrides(&self) -> Result<Overrides, Error> {
        let input = match &self.input {
            Some(s) => Some(parse_dims(s).map_err(|m| Error::Usage(format!("--input: {m}")))?),
            None => None,
        };
        Ok(Overrides { batch: self.batch, input, dtype: self.dtype })
    }
}

/// Arguments of the analysis.
#[derive(Debug, Args, Clone)]
pub struct AnalyzeArgs {
    /// The spec file (YAML), e.g. specs/alexnet.yaml.
    #[arg(value_name = "SPEC")]
    pub spec: Option<String>,
    #[command(flatten)]
    pub spec_args: SpecArgs,
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Write to FILE (atomically: a temporary file, then rename) instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Run the parsed command line, writing to `stdout`.
pub fn run(cli: Cli, stdout: &mut dyn Write) -> Result<(), Error> {
    match cli.command {
        Some(Command::Analyze(a)) => analyze(a, stdout),
        Some(Command::Measure(m)) => measure(m, stdout),
        None => analyze(cli.analyze, stdout),
    }
}

fn analyze(a: AnalyzeArgs, stdout: &mut dyn Write) -> Result<(), Error> {
    let Some(path) = a.spec.as_deref() else {
        return Err(Error::Usage("no spec given: try `netstat specs/alexnet.yaml` or `netstat --help`".into()));
    };
    let analysis = crate::analyze_file(path, &a.spec_args.overrides()?)?;
    let r = Report::new(&analysis);
    emit(&r, a.format, a.output.as_deref(), stdout)
}

/// Arguments of `netstat measure`.
#[derive(Debug, Args, Clone)]
pub struct MeasureArgs {
    /// The spec file (YAML), e.g. specs/alexnet.yaml.
    #[arg(value_name = "SPEC")]
    pub spec: String,
    #[command(flatten)]
    pub spec_args: SpecArgs,
    /// Measure one training step (forward, loss, backward, optimizer step) instead of inference.
    #[arg(long)]
    pub train: bool,
    /// Optimizer of the training step.
    #[arg(long, value_enum, default_value_t = crate::measure::optim::OptimizerKind::Sgd, requires = "train")]
    pub optimizer: crate::measure::optim::OptimizerKind,
    /// Untimed warm-up passes (thread pools, page faults, gemm buffers).
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub warmup: u32,
    /// Timed passes; times are reported as median, min and spread.
    #[arg(long, default_value_t = 10, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub iters: u32,
    /// Seed of the random weights, input, labels and dropout masks.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Run even if the predicted peak memory exceeds MemAvailable.
    #[arg(long)]
    pub force: bool,
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Write to FILE (atomically) instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Fixed fake timings and machine name, for deterministic snapshot tests.
    #[arg(long, hide = true)]
    pub fake_timings: bool,
}

fn measure(m: MeasureArgs, stdout: &mut dyn Write) -> Result<(), Error> {
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
        lr: 1e-3,
        layer_backward: true,
    };
    let r = crate::measure::measure(&analysis, &settings).map_err(|e| {
        match e.downcast::<crate::measure::run::DoesNotFit>() {
            Ok(d) => Error::Usage(d.0),
            Err(e) => Error::Measure(format!("{}: {e:#}", m.spec)),
        }
    })?;
    let mut buf = Vec::new();
    report::measured::write(&r, m.format, &mut buf).expect("writing to memory cannot fail");
    match m.output.as_deref() {
        Some(p) => report::write_atomic(p, &buf),
        None => stdout.write_all(&buf).map_err(|source| Error::Io { path: "<stdout>".into(), source }),
    }
}

/// Write a report in `format` to `output` (atomically) or to `stdout`.
pub fn emit(r: &Report, format: Format, output: Option<&std::path::Path>, stdout: &mut dyn Write) -> Result<(), Error> {
    let mut buf = Vec::new();
    report::write(r, format, &mut buf).expect("writing to memory cannot fail");
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
