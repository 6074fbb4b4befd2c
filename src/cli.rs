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
    /// Measure this machine's peak FP32 FLOP/s (FMA loop) and memory bandwidth (copy).
    Peak(PeakArgs),
    /// What NVML says about the GPUs and the driver ("NVML unavailable" where there is none).
    Gpu(GpuArgs),
}

/// Arguments of `netstat peak`.
#[derive(Debug, Args, Clone)]
pub struct PeakArgs {
    /// Threads to run on (default: all available).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
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
    /// Roofline on a device: a catalog name (gtx580, v100, a100, h100, h200, this-cpu) or a hardware YAML file.
    #[arg(long, value_name = "NAME|FILE")]
    pub hardware: Option<String>,
    /// Check the per-device training memory against the memory of the --hardware device.
    #[arg(long, requires = "hardware")]
    pub fit: bool,
    /// Split the model over N devices like AlexNet 2012 and show the per-device training memory.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub devices: Option<u64>,
}

/// Run the parsed command line, writing to `stdout`.
pub fn run(cli: Cli, stdout: &mut dyn Write) -> Result<(), Error> {
    match cli.command {
        Some(Command::Analyze(a)) => analyze(a, stdout),
        Some(Command::Peak(p)) => peak(p, stdout),
        Some(Command::Gpu(g)) => gpu(g, stdout),
        None => analyze(cli.analyze, stdout),
    }
}

fn analyze(a: AnalyzeArgs, stdout: &mut dyn Write) -> Result<(), Error> {
    let Some(path) = a.spec.as_deref() else {
        return Err(Error::Usage("no spec given: try `netstat specs/alexnet.yaml` or `netstat --help`".into()));
    };
    let analysis = crate::analyze_file(path, &a.spec_args.overrides()?)?;
    let mut r = Report::new(&analysis);
    let hardware = a.hardware.as_deref().map(crate::hardware::resolve).transpose()?;
    let at_input =
        |m: String| Error::Spec(crate::error::SpecError::new(&analysis.spec.file, analysis.spec.input.loc, m));
    if let Some(hw) = &hardware {
        r = r.with_roofline(crate::roofline::roofline(&analysis, hw).map_err(at_input)?);
    }
    if a.fit || a.devices.is_some() {
        let mut m = crate::devices::training_memory(&analysis, a.devices.unwrap_or(1)).map_err(at_input)?;
        if let (true, Some(hw)) = (a.fit, &hardware) {
            m = m.fit(hw);
        }
        r = r.with_training_memory(m);
    }
    emit(&r, a.format, a.output.as_deref(), stdout)
}

fn peak(p: PeakArgs, stdout: &mut dyn Write) -> Result<(), Error> {
    if !(p.seconds.is_finite() && p.seconds > 0.0 && p.seconds <= 60.0) {
        return Err(Error::Usage(format!("--seconds: expected a number of seconds in (0, 60], got {}", p.seconds)));
    }
    let threads = match p.threads {
        Some(t) => t as usize,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let m = crate::peak::measure(threads, std::time::Duration::from_secs_f64(p.seconds));
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
