//! CLI tests of `netstat report`, `report --check`, `diff` and `--convention`, running the built binary.

use assert_cmd::Command;
use std::path::Path;

fn netstat() -> Command {
    Command::cargo_bin("netstat").unwrap()
}

/// A specs folder holding the torchvision AlexNet fixture, and an empty reports folder.
fn setup() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let specs = tmp.path().join("specs");
    std::fs::create_dir(&specs).unwrap();
    std::fs::copy("tests/fixtures/alexnet-torchvision.yaml", specs.join("alexnet-torchvision.yaml")).unwrap();
    let reports = tmp.path().join("reports");
    (tmp, specs, reports)
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[test]
fn report_writes_every_format_and_check_passes_on_it() {
    let (_tmp, specs, reports) = setup();
    netstat().arg("report").arg(&specs).arg("--out").arg(&reports).assert().success();
    assert_eq!(
        files(&reports),
        [
            "README.md",
            "alexnet-torchvision.csv",
            "alexnet-torchvision.json",
            "alexnet-torchvision.macs.svg",
            "alexnet-torchvision.md",
            "alexnet-torchvision.memory.svg",
            "alexnet-torchvision.params.svg",
            "alexnet-torchvision.tex"
        ]
    );
    let index = std::fs::read_to_string(reports.join("README.md")).unwrap();
    // torchvision alexnet `_meta`: 61,100,840 params, 714,188,480 MACs (0.71 GFLOPS as published);
    // 22 layers: 5 convs, 7 relus and 3 max pools in `features` (13), avgpool, flatten, and the
    // classifier's 2 dropouts, 3 linears and 2 relus (13 + 2 + 7 = 22).
    assert!(
        index.contains(
            "| [alexnet-torchvision](alexnet-torchvision.md) | 1x3x224x224 f32 | 22 | 61,100,840 | 714,188,480 |"
        ),
        "{index}"
    );
    let out = netstat().arg("report").arg(&specs).arg("--out").arg(&reports).arg("--check").assert().success();
    assert!(String::from_utf8_lossy(&out.get_output().stdout).contains("up to date (1 spec, 8 files)"));
    // Regenerating gives the same bytes (deterministic output).
    let before: Vec<Vec<u8>> = files(&reports).iter().map(|f| std::fs::read(reports.join(f)).unwrap()).collect();
    netstat().arg("report").arg(&specs).arg("--out").arg(&reports).assert().success();
    let after: Vec<Vec<u8>> = files(&reports).iter().map(|f| std::fs::read(reports.join(f)).unwrap()).collect();
    assert_eq!(before, after);
}

#[test]
fn check_fails_with_the_moved_numbers_after_a_spec_edit() {
    let (_tmp, specs, reports) = setup();
    netstat().arg("report").arg(&specs).arg("--out").arg(&reports).assert().success();
    let p = specs.join("alexnet-torchvision.yaml");
    let s = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, s.replace("c_out: 64, kernel: 11", "c_out: 65, kernel: 11")).unwrap();
    let a = netstat().arg("report").arg(&specs).arg("--out").arg(&reports).arg("--check").assert().code(1);
    let stdout = String::from_utf8_lossy(&a.get_output().stdout).into_owned();
    let stderr = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
    // features.0: 65·3·11·11 + 65 = 23,660 params (was 64·363 + 64 = 23,296): +364
    assert!(
        stdout.contains("moved  alexnet-torchvision: layers[features.0].params: 23,296 -> 23,660 (+364)"),
        "{stdout}"
    );
    // MACs: 65·55·55·363 = 71,374,875 (was 64·55·55·363 = 70,276,800): +1,098,075
    assert!(stdout.contains("layers[features.0].macs: 70,276,800 -> 71,374,875 (+1,098,075)"), "{stdout}");
    // features.3 sees 65 input channels: 192·65·25 + 192 = 312,192 (was 307,392): +4,800;
    // total 61,100,840 + 364 + 4,800 = 61,106,004
    assert!(stdout.contains("layers[features.3].params: 307,392 -> 312,192 (+4,800)"), "{stdout}");
    assert!(stdout.contains("totals.params: 61,100,840 -> 61,106,004 (+5,164)"), "{stdout}");
    // Files of a spec whose numbers moved are not listed again as stale.
    assert!(!stdout.contains("stale"), "{stdout}");
    assert!(stderr.starts_with("error: ") && stderr.contains("is out of date"), "{stderr}");
    // --check wrote nothing: the committed report still has the old number.
    assert!(std::fs::read_to_string(reports.join("alexnet-torchvision.csv")).unwrap().contains("23296"));
}

#[test]
fn check_fails_on_a_missing_or_hand_edited_file() {
    let (_tmp, specs, reports) = setup();
    netstat().arg("report").arg(&specs).arg("--out").arg(&reports).assert().success();
    std::fs::remove_file(reports.join("alexnet-torchvision.tex")).unwrap();
    std::fs::write(reports.join("alexnet-torchvision.md"), "edited by hand\n").unwrap();
    let a = netstat().arg("report").arg(&specs).arg("--out").arg(&reports).arg("--check").assert().code(1);
    let stdout = String::from_utf8_lossy(&a.get_output().stdout).into_owned();
    assert!(stdout.contains("alexnet-torchvision.tex: missing"), "{stdout}");
    assert!(stdout.contains("alexnet-torchvision.md: differs"), "{stdout}");
}

#[test]
fn report_on_a_bad_spec_exits_2_and_writes_nothing() {
    let (_tmp, specs, reports) = setup();
    std::fs::write(
        specs.join("bad.yaml"),
        "name: bad\ninput: [3, 8, 8]\nlayers:\n  - {name: c, kind: conv2d, c_out: 4, kernel: 9}\n",
    )
    .unwrap();
    let a = netstat().arg("report").arg(&specs).arg("--out").arg(&reports).assert().code(2);
    let stderr = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
    assert!(
        stderr.starts_with("error: ") && stderr.contains("bad.yaml:4:") && stderr.contains("layer #0 \"c\" (conv2d)"),
        "{stderr}"
    );
    assert!(!reports.exists());
}

#[test]
fn diff_in_every_format() {
    for f in ["table", "markdown", "csv", "json", "latex"] {
        netstat()
            .args([
                "diff",
                "tests/fixtures/alexnet-torchvision.yaml",
                "tests/fixtures/alexnet-torchvision-bn.yaml",
                "-f",
                f,
            ])
            .assert()
            .success();
    }
    let out = netstat()
        .args([
            "diff",
            "tests/fixtures/alexnet-torchvision.yaml",
            "tests/fixtures/alexnet-torchvision-bn.yaml",
            "-f",
            "json",
        ])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // features.0 96 channels: 96·363 + 96 = 34,944 (+11,648); features.3 192·96·25 + 192 = 460,992
    // (+153,600); BN on 96 channels: 192 → +165,440 params
    assert_eq!(v["totals"]["params"]["delta"], 165_440);
    // Memory of the default training step moves too. Its peak is the optimizer step (input
    // 602,112 B + logits 4,000 B + weights, gradients and Adam's 2 moments = 4 copies of the
    // params, + fused Adam's step counter, 4 B for each of the 16 parameter tensors):
    // A = 602,112 + 4,000 + 4·4·61,100,840 + 64 = 978,219,616. B adds 4·4 B·165,440 params
    // = 2,647,040, the BatchNorm's 2·96 running statistics · 4 B = 768, its int64
    // num_batches_tracked 8 and the step counters of its weight and bias 2·4 = 8: +2,647,824.
    assert_eq!(v["totals"]["training_peak_bytes"]["a"], 978_219_616u64);
    assert_eq!(v["totals"]["training_peak_bytes"]["delta"], 2_647_824);
    let bn = v["layers"].as_array().unwrap().iter().find(|l| l["name"] == "features.0b").unwrap();
    assert_eq!(bn["params"]["a"], serde_json::Value::Null);
    assert_eq!(bn["params"]["b"], 192);
}

#[test]
fn convention_totals_from_the_cli() {
    // issue 7 targets for torchvision alexnet (torchinfo 1.8.0, fvcore 0.1.5, ptflops 0.7.5 aten)
    for (conv, want) in [("torchinfo", 714_682_664u64), ("fvcore", 714_197_696), ("ptflops", 714_682_664)] {
        let out = netstat()
            .args(["tests/fixtures/alexnet-torchvision.yaml", "--convention", conv, "-f", "json"])
            .output()
            .unwrap();
        assert!(out.status.success());
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["conventions"][0]["macs"], want, "{conv}");
    }
    let out = netstat().args(["tests/fixtures/alexnet-torchvision.yaml", "--explain"]).output().unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("fvcore: adaptive pool +9,216"), "{s}");
}

/// The LaTeX table compiles with pdflatex inside a minimal document with booktabs.
#[test]
fn latex_compiles_with_pdflatex_if_installed() {
    if std::process::Command::new("pdflatex").arg("--version").output().is_err() {
        eprintln!("skipped: pdflatex is not installed (apt-get install texlive-latex-base texlive-latex-recommended)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let tex = netstat().args(["tests/fixtures/alexnet-torchvision.yaml", "-f", "latex"]).output().unwrap().stdout;
    std::fs::write(tmp.path().join("alexnet.tex"), tex).unwrap();
    let diff = netstat()
        .args([
            "diff",
            "tests/fixtures/alexnet-torchvision.yaml",
            "tests/fixtures/alexnet-torchvision-bn.yaml",
            "-f",
            "latex",
        ])
        .output()
        .unwrap()
        .stdout;
    std::fs::write(tmp.path().join("diff.tex"), diff).unwrap();
    std::fs::write(
        tmp.path().join("doc.tex"),
        "\\documentclass{article}\n\\usepackage{booktabs}\n\\usepackage{graphicx}\n\\usepackage[landscape,margin=1cm]{geometry}\n\\begin{document}\n\\tiny\n\\begin{table}\\input{alexnet.tex}\\end{table}\n\\begin{table}\\resizebox{\\linewidth}{!}{\\input{diff.tex}}\\end{table}\n\\end{document}\n",
    )
    .unwrap();
    let out = std::process::Command::new("pdflatex")
        .args(["-interaction=nonstopmode", "-halt-on-error", "doc.tex"])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(tmp.path().join("doc.pdf").exists());
}

/// The SVG charts convert to PNG with rsvg-convert where it is installed.
#[test]
fn svg_converts_to_png_if_rsvg_convert_is_installed() {
    if std::process::Command::new("rsvg-convert").arg("--version").output().is_err() {
        eprintln!("skipped: rsvg-convert is not installed (apt-get install librsvg2-bin)");
        return;
    }
    let (tmp, specs, reports) = setup();
    netstat().arg("report").arg(&specs).arg("--out").arg(&reports).assert().success();
    for chart in ["params", "macs", "memory"] {
        let png = tmp.path().join(format!("{chart}.png"));
        let st = std::process::Command::new("rsvg-convert")
            .arg(reports.join(format!("alexnet-torchvision.{chart}.svg")))
            .arg("-o")
            .arg(&png)
            .status()
            .unwrap();
        assert!(st.success());
        let b = std::fs::read(&png).unwrap();
        assert_eq!(&b[..8], b"\x89PNG\r\n\x1a\n");
    }
}

/// A spec whose network name and layer names try to forge output: an ESC sequence and a newline
/// in the network name, and a layer name with `|`, raw HTML and a link.
const FORGING: &str = "name: \"net error: forged | <b>x</b>\"\ninput: [4]\nlayers:\n  - {name: \"a|b<img src=x onerror=alert(1)>[l](http://e)\", kind: relu}\n";

/// Names and paths from a spec cannot drive the terminal, add lines, break a Markdown table or
/// carry raw HTML: escaped in the terminal table, Markdown and the reports index (issue 13 item 7).
#[test]
fn names_cannot_forge_output() {
    let tmp = tempfile::tempdir().unwrap();
    let specs = tmp.path().join("specs");
    std::fs::create_dir(&specs).unwrap();
    let spec = specs.join("forge.yaml");
    std::fs::write(&spec, FORGING).unwrap();
    // A control character in the network's name is refused like one in a layer name (it heads
    // every report: an ESC sequence cleared the screen, a newline forged an `error:` line).
    let bad = tmp.path().join("bad.yaml");
    std::fs::write(&bad, FORGING.replace("net error", "net\\e[2J\\nerror")).unwrap();
    let o = netstat().arg(&bad).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(err.contains("bad.yaml:1:7: `name`: control character `\\u{1b}`"), "{err}");
    assert!(o.stdout.is_empty() && err.lines().count() == 1, "{err}");
    // Markdown: the pipe, the HTML and the link are escaped; each table row stays one line.
    let o = netstat().arg(&spec).args(["-f", "markdown"]).output().unwrap();
    let md = String::from_utf8(o.stdout).unwrap();
    assert!(!md.contains("<img") && !md.contains("<b>"), "{md}");
    assert!(md.contains("a\\|b&lt;img src=x onerror=alert(1)>\\[l\\](http://e)"), "{md}");
    assert!(md.lines().filter(|l| l.starts_with('|')).all(|l| l.ends_with('|')), "{md}");
    // The reports index.
    let out = tmp.path().join("reports");
    let o = netstat().arg("report").arg(&specs).arg("--out").arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let index = std::fs::read_to_string(out.join("README.md")).unwrap();
    assert!(!index.contains("<b>") && !index.contains('\u{1b}'), "{index}");
    assert!(index.contains("[net error: forged \\| &lt;b>x&lt;/b>](forge.md)"), "{index}");
    // A spec file whose name holds an ESC sequence: its own report's links and chart captions
    // are escaped too (they were written raw while the index percent-encoded them).
    std::fs::write(specs.join("\u{1b}[31mok.yaml"), "name: ok\ninput: [4]\nlayers:\n  - {name: a, kind: relu}\n")
        .unwrap();
    let o = netstat().arg("report").arg(&specs).arg("--out").arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let md = std::fs::read_to_string(out.join("\u{1b}[31mok.md")).unwrap();
    assert!(!md.contains('\u{1b}'), "{md}");
    assert!(
        md.contains("[CSV](%1B%5B31mok.csv)") && md.contains("![\\\\u{1b}\\[31mok memory](%1B%5B31mok.memory.svg)"),
        "{md}"
    );
}

/// A path with a newline and an ESC sequence in an error message stays one escaped line.
#[test]
fn paths_in_errors_stay_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = tmp.path().join("x\n\u{1b}[2Jerror: forged.yaml");
    std::fs::write(&spec, "name: t\ninput: [4]\nlayers:\n  - {name: a, kind: nope}\n").unwrap();
    let o = netstat().arg(&spec).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8(o.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!err.contains('\u{1b}'), "{err}");
    assert!(err.contains("x\\n\\u{1b}[2Jerror: forged.yaml:4:"), "{err}");
}
