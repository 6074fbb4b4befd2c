//! Snapshots of every format from one fixture report (torchvision AlexNet), as hyperfine's
//! src/export/tests.rs does: a change to any format shows up as a reviewed snapshot diff.

use super::{dir, svg, write, Format, Report};
use crate::conventions::{count, Convention};

fn fixture() -> crate::analysis::Analysis {
    crate::analyze_file("tests/fixtures/alexnet-torchvision.yaml", &Default::default()).unwrap()
}

fn render(f: Format) -> String {
    let mut buf = Vec::new();
    write(&Report::new(&fixture()), f, &mut buf).unwrap();
    String::from_utf8(buf).unwrap().replace(env!("CARGO_PKG_VERSION"), "[version]")
}

#[test]
fn snapshot_markdown() {
    insta::assert_snapshot!(render(Format::Markdown));
}

#[test]
fn snapshot_csv() {
    insta::assert_snapshot!(render(Format::Csv));
}

#[test]
fn snapshot_json() {
    insta::assert_snapshot!(render(Format::Json));
}

#[test]
fn snapshot_latex() {
    insta::assert_snapshot!(render(Format::Latex));
}

#[test]
fn snapshot_table() {
    insta::assert_snapshot!(render(Format::Table));
}

#[test]
fn snapshot_params_svg() {
    let a = fixture();
    let m = crate::memory::model(&a, &Default::default()).unwrap();
    let charts = svg::charts(&Report::new(&a), Some(&m));
    let names: Vec<&str> = charts.iter().map(|c| c.0).collect();
    assert_eq!(names, ["params", "macs", "memory"]);
    insta::assert_snapshot!(charts[0].1);
}

#[test]
fn snapshot_memory_timeline_svg() {
    let a = fixture();
    let m = crate::memory::model(&a, &Default::default()).unwrap();
    insta::assert_snapshot!(svg::timeline(&a.spec.name, &m));
}

#[test]
fn snapshot_html_page() {
    let a = fixture();
    let m = crate::memory::model(&a, &Default::default()).unwrap();
    let mut r = Report::new(&a);
    r.memory = Some(super::memory::MemoryReport::summary(m.clone()));
    let page = super::html::report_page(&r, Some(&m), Some("index.html"));
    insta::assert_snapshot!(page);
}

#[test]
fn snapshot_roofline_svg() {
    // torchvision AlexNet on the h100 (67e12 FLOP/s fp32, 3.35e12 B/s: ridge 20.0 FLOP/B).
    let a = fixture();
    let r = Report::new(&a)
        .with_roofline(crate::roofline::roofline(&a, &crate::hardware::resolve("h100").unwrap()).unwrap());
    let charts = svg::charts(&r, None);
    let names: Vec<&str> = charts.iter().map(|c| c.0).collect();
    assert_eq!(names, ["params", "macs", "roofline"]);
    assert!(charts[2].1.contains(">ridge 20.0 FLOP/B</text>"));
    insta::assert_snapshot!(charts[2].1);
}

#[test]
fn snapshot_sweep_svg() {
    let a = fixture();
    let rows: Vec<super::memory::SweepRow> = [1, 8, 32]
        .iter()
        .map(|&b| super::memory::SweepRow::of(&crate::memory::at_batch(&a.spec, b, &Default::default()).unwrap()))
        .collect();
    insta::assert_snapshot!(svg::sweep(&a.spec.name, &rows, Some(3 << 30)));
}

#[test]
fn snapshot_index() {
    let a = fixture();
    let mut r = Report::new(&a);
    r.memory = Some(super::memory::MemoryReport::summary(crate::memory::model(&a, &Default::default()).unwrap()));
    insta::assert_snapshot!(String::from_utf8(dir::index(&[("alexnet-torchvision".into(), r)])).unwrap());
}

#[test]
fn snapshot_explain_all_conventions_markdown() {
    let a = fixture();
    let counted: Vec<_> = Convention::ALL.iter().map(|&c| count(&a, c).unwrap()).collect();
    let mut buf = Vec::new();
    super::convention::write(&a.spec.name, &counted, true, Format::Markdown, &mut buf).unwrap();
    insta::assert_snapshot!(String::from_utf8(buf).unwrap());
}

#[test]
fn snapshot_diff_csv_and_markdown() {
    let a = Report::new(&fixture());
    let b =
        Report::new(&crate::analyze_file("tests/fixtures/alexnet-torchvision-bn.yaml", &Default::default()).unwrap());
    let d = super::diff::DiffReport::new(&a, &b);
    let mut md = Vec::new();
    d.write(Format::Markdown, &mut md).unwrap();
    insta::assert_snapshot!("diff_markdown", String::from_utf8(md).unwrap());
    let mut csv = Vec::new();
    d.write(Format::Csv, &mut csv).unwrap();
    insta::assert_snapshot!("diff_csv", String::from_utf8(csv).unwrap());
}
