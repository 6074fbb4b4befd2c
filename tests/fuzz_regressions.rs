//! The fuzz target's pipeline (fuzz/pipeline.rs: bytes → spec → graph → analysis → every report
//! format) run in plain `cargo test`, with overflow checks on, over:
//!
//! - `fuzz/regressions/*`: every input that ever crashed the fuzz target or the bad-spec corpus
//!   (each file's name says what it found; docs/robustness.md lists them);
//! - `fuzz/corpus/spec/*`: the committed, minimized fuzz corpus.
//!
//! The property is the fuzzer's: an answer (reports or a located spec error), never a panic.

#[path = "../fuzz/pipeline.rs"]
mod pipeline;

use std::path::PathBuf;

fn files(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    v.sort();
    v
}

/// Run the pipeline on each file; the files that panicked, with the message. A spec error must
/// carry a location.
fn panics(paths: &[PathBuf]) -> Vec<String> {
    panics_of(paths, |data| {
        if let Err(e) = pipeline::run(data) {
            assert!(e.loc.line >= 1, "error without a line: {e}");
        }
    })
}

#[test]
fn past_crashes_stay_fixed() {
    let paths = files("fuzz/regressions");
    assert!(!paths.is_empty(), "fuzz/regressions holds the inputs of every crash found so far");
    let bad = panics(&paths);
    assert!(bad.is_empty(), "panics:\n{}", bad.join("\n"));
}

#[test]
fn the_fuzz_corpus_runs_without_a_panic() {
    let paths = files("fuzz/corpus/spec");
    assert!(paths.len() >= 7, "the seeds at least");
    let bad = panics(&paths);
    assert!(bad.is_empty(), "panics:\n{}", bad.join("\n"));
}

#[test]
fn the_seeds_analyse_and_render_in_every_format() {
    // The hand-written seeds are valid specs: the pipeline renders them in every format.
    for seed in ["alexnet.yaml", "lenet.yaml", "all_kinds.yaml", "dag.yaml", "anchors.yaml"] {
        let data = std::fs::read(format!("fuzz/corpus/spec/{seed}")).unwrap();
        let outs = pipeline::run(&data).unwrap_or_else(|e| panic!("{seed}: {e}"));
        assert!(outs.len() >= 4 && outs.iter().all(|o| !o.is_empty()), "{seed}");
    }
}

#[path = "../fuzz/expr.rs"]
mod expr;

#[path = "../fuzz/cli.rs"]
mod cli;

/// Run `target` on each file; the files that panicked, with the message.
fn panics_of(paths: &[PathBuf], target: fn(&[u8])) -> Vec<String> {
    let mut bad = Vec::new();
    for p in paths {
        let data = std::fs::read(p).unwrap();
        if let Err(payload) = std::panic::catch_unwind(|| target(&data)) {
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            bad.push(format!("{}: {msg}", p.display()));
        }
    }
    bad
}

/// The `expr` target's corpus (fuzz/corpus/expr: its seeds, i128::MIN / -1 among them, and what
/// the runs kept) evaluates without a panic, in overflow-checked debug code.
#[test]
fn the_expression_corpus_runs_without_a_panic() {
    let paths = files("fuzz/corpus/expr");
    assert!(paths.len() >= 20, "the seeds at least");
    let bad = panics_of(&paths, expr::run);
    assert!(bad.is_empty(), "panics:\n{}", bad.join("\n"));
}

/// The `cli` target's corpus (fuzz/corpus/cli) parses without a panic.
#[test]
fn the_command_line_corpus_runs_without_a_panic() {
    let paths = files("fuzz/corpus/cli");
    assert!(paths.len() >= 15, "the seeds at least");
    let bad = panics_of(&paths, cli::run);
    assert!(bad.is_empty(), "panics:\n{}", bad.join("\n"));
}

#[path = "../fuzz/onnx.rs"]
mod onnx;

/// The `onnx` target's corpus (fuzz/corpus/onnx: fixtures, a truncated and a byte-flipped model,
/// an empty file, a graph of 1000 empty nodes) and the fixtures themselves run without a panic.
#[test]
fn the_onnx_corpus_runs_without_a_panic() {
    let mut paths = files("fuzz/corpus/onnx");
    assert!(paths.len() >= 6, "the seeds at least");
    paths.extend(files("tests/fixtures/onnx"));
    let bad = panics_of(&paths, |d| {
        let _ = onnx::run(d);
    });
    assert!(bad.is_empty(), "panics:\n{}", bad.join("\n"));
}

/// Every prefix of a model (a truncated download) and every single-byte corruption of its first
/// 1,500 bytes is an error or a report, never a panic.
#[test]
fn truncated_and_corrupted_onnx_never_panics() {
    let data = std::fs::read("tests/fixtures/onnx/tiny_cnn.onnx").unwrap();
    for n in 0..data.len() {
        let r = std::panic::catch_unwind(|| onnx::run(&data[..n]));
        assert!(r.is_ok(), "prefix of {n} bytes panicked");
    }
    for i in 0..data.len().min(1500) {
        for x in [0x01u8, 0x80, 0xff] {
            let mut d = data.clone();
            d[i] ^= x;
            let r = std::panic::catch_unwind(|| onnx::run(&d));
            assert!(r.is_ok(), "byte {i} ^ {x:#x} panicked");
        }
    }
}
