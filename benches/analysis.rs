//! Speed of the analysis (criterion; `cargo bench --bench analysis`).
//!
//! - `spec/<file>`: read, expand, check, analyse and render JSON for every spec in specs/.
//! - `process/resnet50_json`: the whole `netstat specs/resnet50.yaml --format json` process.
//! - `generated/<n>`: parse + analyse a generated spec of n layers (1,000 … 10,000), to show
//!   that time grows linearly with layers.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use netstat::analysis::{analyze, Analysis, Overrides};
use netstat::report::{self, Format, Report};
use std::hint::black_box;
use std::path::PathBuf;

fn spec_files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in ["specs", "specs/examples"] {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "yaml") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn parse_to_report(c: &mut Criterion) {
    let mut g = c.benchmark_group("spec");
    for p in spec_files() {
        let path = p.to_str().unwrap().to_owned();
        g.bench_function(p.file_stem().unwrap().to_str().unwrap(), |b| {
            b.iter(|| {
                let a = netstat::analyze_file(black_box(&path), &Overrides::default()).unwrap();
                let mut out = Vec::new();
                report::write(&Report::new(&a), Format::Json, &mut out).unwrap();
                out
            })
        });
    }
    g.finish();
}

fn whole_process(c: &mut Criterion) {
    let exe = env!("CARGO_BIN_EXE_netstat");
    let mut g = c.benchmark_group("process");
    g.sample_size(50);
    g.bench_function("resnet50_json", |b| {
        b.iter(|| {
            let out =
                std::process::Command::new(exe).args(["specs/resnet50.yaml", "--format", "json"]).output().unwrap();
            assert!(out.status.success());
            out.stdout.len()
        })
    });
    g.finish();
}

/// A chain of `n` layers (conv2d / batch_norm2d / relu repeating on 16×16 maps).
pub fn generated(n: usize) -> String {
    let mut s = String::from("name: generated\ninput: [16, 16, 16]\nlayers:\n");
    for i in 0..n {
        match i % 3 {
            0 => s += &format!("  - {{name: conv{i}, kind: conv2d, c_out: 16, kernel: 3, padding: 1, bias: false}}\n"),
            1 => s += &format!("  - {{name: bn{i}, kind: batch_norm2d}}\n"),
            _ => s += &format!("  - {{name: relu{i}, kind: relu}}\n"),
        }
    }
    s
}

/// A chain of n relus on a 4-element input (issue 13's `measure` case).
fn relus(n: usize) -> String {
    let mut s = String::from("name: relus\ninput: [4]\nlayers:\n");
    for i in 0..n {
        s += &format!("  - {{name: r{i}, kind: relu}}\n");
    }
    s
}

fn generated_specs(c: &mut Criterion) {
    let mut g = c.benchmark_group("generated");
    g.sample_size(20);
    for n in [1_000usize, 5_000, 10_000] {
        let text = generated(n);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &text, |b, text| {
            b.iter(|| analyze(netstat::spec::parse_bytes("gen.yaml", black_box(text.as_bytes())).unwrap()).unwrap())
        });
    }
    g.finish();
}

/// Parse, analyse and run the memory model: the report `netstat SPEC` and `diff` build, and
/// the analysis it came from (returned, as the CLI frees both off the timed path).
fn report_of(text: &str) -> (Report, Analysis) {
    let a = analyze(netstat::spec::parse_bytes("gen.yaml", text.as_bytes()).unwrap()).unwrap();
    let mut r = Report::new(&a);
    let m = netstat::memory::model(&a, &netstat::memory::Options::default()).unwrap();
    r.memory = Some(report::memory::MemoryReport::summary(m));
    (r, a)
}

/// What `netstat SPEC --format json` does, in process: [`report_of`], then JSON. The report
/// and analysis are returned so that the benchmarks free them outside the measurement
/// (`iter_with_large_drop`), as the CLI frees a 10,000-layer or larger analysis on a thread
/// of its own after writing its output (`cli::free_in_background`).
fn analyze_json(text: &str) -> (Vec<u8>, Report, Analysis) {
    let (r, a) = report_of(text);
    let mut out = Vec::new();
    report::write(&r, Format::Json, &mut out).unwrap();
    (out, r, a)
}

/// Issue 13's scaling benchmark (analyze, `memory --fit`, `measure`'s build and plan, `diff`):
/// each command at 10,000, 50,000 and 100,000 layers must grow linearly (the per-layer time
/// stays flat) and stay under 1 s at 100,000 on the 2-core machine.
/// `cargo bench --bench analysis -- scaling`; results in docs/performance.md.
fn scaling(c: &mut Criterion) {
    let mut g = c.benchmark_group("scaling");
    g.sample_size(10);
    for n in [10_000usize, 50_000, 100_000] {
        let text = generated(n);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("analyze_json", n), &text, |b, t| {
            b.iter_with_large_drop(|| analyze_json(black_box(t)))
        });
        let spec = netstat::spec::parse_bytes("gen.yaml", text.as_bytes()).unwrap();
        let opts = netstat::memory::Options::default();
        g.bench_with_input(BenchmarkId::new("memory_fit_1TB", n), &spec, |b, s| {
            b.iter(|| netstat::memory::fit(black_box(s), 1 << 40, &opts).unwrap())
        });
        // As `netstat measure SPEC` before its first pass, on n relus (the case): the
        // memory model, the candle model's predictions, the preflight and the candle build.
        let relus = analyze(netstat::spec::parse_bytes("relus.yaml", relus(n).as_bytes()).unwrap()).unwrap();
        let settings = netstat::measure::Settings { fake_timings: true, ..Default::default() };
        g.bench_with_input(BenchmarkId::new("measure_plan", n), &relus, |b, a| {
            b.iter(|| netstat::measure::run::prepare(black_box(a), &settings).map(|_| ()).unwrap())
        });
        // B: every conv twice as wide (every row differs; the layer names are A's).
        let wider = text.replace("c_out: 16", "c_out: 32");
        g.bench_with_input(BenchmarkId::new("diff_json", n), &(text.as_str(), wider.as_str()), |b, &(ta, tb)| {
            // As `netstat diff A B`: both reports (the CLI builds them on two threads), the
            // alignment, JSON; what the CLI frees on a thread of its own is returned).
            b.iter_with_large_drop(|| {
                let ((ra, aa), (rb, ab)) = std::thread::scope(|s| {
                    let h = s.spawn(|| report_of(tb));
                    (report_of(ta), h.join().unwrap())
                });
                let d = report::diff::DiffReport::new(&ra, &rb);
                let mut out = Vec::new();
                d.write(Format::Json, &mut out).unwrap();
                (out, d, ra, rb, aa, ab)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, parse_to_report, whole_process, generated_specs, scaling);
criterion_main!(benches);
