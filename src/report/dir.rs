//! `netstat report SPECS_DIR --out reports/`: every spec's report in every file format, charts,
//! and an index; `--check` regenerates them in memory and compares with what is committed.
//!
//! Files per spec `NAME.yaml` (NAME is the file stem): `NAME.md` (the Markdown report, with the
//! charts and links), `NAME.csv`, `NAME.json`, `NAME.tex`, and one `NAME.CHART.svg` per chart of
//! [`super::svg::charts`]; plus `README.md`, the index of all specs. With `html`, also `NAME.html`
//! (the page of [`super::html::report_page`], charts inline) and `index.html`. Output is deterministic:
//! specs in file-name order, no dates, no absolute paths; only JSON carries netstat's version,
//! which `--check` ignores.

use super::grid::Grid;
use super::units::{bytes, count, si};
use super::{svg, Format, Report};
use crate::analysis::Overrides;
use crate::Error;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Every generated file, by its name inside the output folder, and each spec's report.
#[derive(Debug, Clone, Default)]
pub struct Generated {
    /// File name (relative to the output folder) → contents.
    pub files: BTreeMap<String, Vec<u8>>,
    /// `(stem, report)` per spec, in file-name order.
    pub reports: Vec<(String, Report)>,
}

/// The spec files (`*.yaml`, `*.yml`) and ONNX models (`*.onnx`) directly in `dir`, sorted by
/// name. (A spec and a model of the same stem, `a.yaml` and `a.onnx`, would write the same
/// report files: [`generate`] refuses them.)
///
/// Errors: `dir` unreadable, or holding no spec.
pub fn spec_files(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let io = |source| Error::Io { path: dir.display().to_string(), source };
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io)? {
        let p = e.map_err(io)?.path();
        let spec = matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"));
        if p.is_file() && (spec || crate::onnx::is_onnx(&p.to_string_lossy())) {
            v.push(p);
        }
    }
    v.sort();
    if v.is_empty() {
        return Err(Error::Usage(format!("{}: no spec files (*.yaml) or ONNX models (*.onnx) found", dir.display())));
    }
    Ok(v)
}

fn render(r: &Report, f: Format) -> Vec<u8> {
    let mut buf = Vec::new();
    super::write(r, f, &mut buf).expect("writing to memory cannot fail");
    buf
}

/// Analyse every spec in `specs_dir` at its own batch, input and dtype, and render all files
/// (the HTML pages and `index.html` too when `html`).
///
/// Errors: the first spec that fails to load or analyse (exit 2, with FILE:LINE:COL).
pub fn generate(specs_dir: &Path, html: bool) -> Result<Generated, Error> {
    let mut g = Generated::default();
    // Who writes each file: two specs (dup.yaml and dup.yml) or a spec and the index
    // (README.yaml) must not write the same file, one silently replacing the other.
    let mut owner: BTreeMap<String, String> = BTreeMap::new();
    let mut claim = |name: &str, by: String| -> Result<(), Error> {
        if let Some(first) = owner.insert(name.to_owned(), by.clone()) {
            return Err(Error::Usage(format!(
                "{by} and {first} would both write the report file {name}: rename one of them"
            )));
        }
        Ok(())
    };
    for path in spec_files(specs_dir)? {
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("spec").to_owned();
        let a = crate::analyze_file(&path.display().to_string(), &Overrides::default())?;
        let mut r = Report::new(&a);
        // Memory at the spec's batch, default training step (Adam, no amp), as `netstat SPEC` prints it.
        let m = crate::memory::model(&a, &crate::memory::Options::default())?;
        let charts = svg::charts(&r, Some(&m));
        let timeline = html.then(|| m.clone());
        r.memory = Some(super::memory::MemoryReport::summary(m));
        let mut md = render(&r, Format::Markdown);
        // The stem is a file name: escaped as link text, percent-encoded as a target (as the
        // index does), so a control character or `)` in it neither reaches a terminal nor
        // breaks the link.
        let (text, link) = (super::grid::md_text(&stem), md_link(&stem));
        md.extend_from_slice(
            format!("\nFiles: [CSV]({link}.csv), [JSON]({link}.json), [LaTeX]({link}.tex).\n").as_bytes(),
        );
        for (suffix, _) in &charts {
            md.extend_from_slice(format!("\n![{text} {suffix}]({link}.{suffix}.svg)\n").as_bytes());
        }
        let by = format!("spec {}", path.display());
        let mut files = vec![
            (format!("{stem}.md"), md),
            (format!("{stem}.csv"), render(&r, Format::Csv)),
            (format!("{stem}.json"), render(&r, Format::Json)),
            (format!("{stem}.tex"), render(&r, Format::Latex)),
        ];
        files.extend(charts.into_iter().map(|(suffix, text)| (format!("{stem}.{suffix}.svg"), text.into_bytes())));
        if let Some(m) = &timeline {
            files
                .push((format!("{stem}.html"), super::html::report_page(&r, Some(m), Some("index.html")).into_bytes()));
        }
        for (name, bytes) in files {
            claim(&name, by.clone())?;
            g.files.insert(name, bytes);
        }
        g.reports.push((stem, r));
    }
    claim("README.md", "the index".into())?;
    let mut readme = index(&g.reports);
    if html {
        readme.extend_from_slice(
            b"\nEach spec also has a web page, `NAME.html` (sortable table, charts inline, nothing loaded from the \
network): open [index.html](index.html) in a browser.\n",
        );
    }
    g.files.insert("README.md".into(), readme);
    if html {
        claim("index.html", "the HTML index".into())?;
        g.files.insert("index.html".into(), super::html::index(&g.reports).into_bytes());
    }
    Ok(g)
}

/// A file stem as a Markdown link target: percent-encoded outside unreserved characters, so a
/// stem with spaces, parentheses, `|` or `<` stays one link.
fn md_link(stem: &str) -> String {
    let mut out = String::new();
    for b in stem.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The columns of a reports folder's index after the spec's name, shared by `README.md` and
/// `index.html`: (header, numeric).
pub(crate) const INDEX_COLUMNS: [(&str, bool); 8] = [
    ("input", false),
    ("layers", true),
    ("params", true),
    ("MACs", true),
    ("FLOPs", true),
    ("output bytes", true),
    ("inference peak", true),
    ("training peak", true),
];

/// What the index's columns mean, before the memory model's own definitions
/// ([`crate::memory::FOOTNOTE`]), which both indexes print after it. `code` in backticks.
pub(crate) const INDEX_NOTE: &str = "At each spec's own batch and dtype; the training peak is one Adam step in fp32. \
MACs: conv/linear multiply-accumulates (torchvision `_ops`); FLOPs = 2 MACs; output bytes: every layer output once, \
views and in-place outputs included (`netstat memory`'s activations count only what inference allocates).";

/// One spec's cells under [`INDEX_COLUMNS`]: the text and, for a numeric column, the exact value
/// to sort by (`None` where the spec has no memory figures).
pub(crate) fn index_cells(r: &Report) -> [(String, Option<u64>); 8] {
    let t = &r.totals;
    let mem = |f: fn(&crate::memory::Memory) -> u64| match &r.memory {
        Some(m) => (bytes(f(&m.figures)), Some(f(&m.figures))),
        None => ("-".into(), None),
    };
    let layers = r.layers.len() as u64;
    [
        (r.input_desc(), None),
        (count(layers), Some(layers)),
        (count(t.params), Some(t.params)),
        (count(t.macs), Some(t.macs)),
        (si(t.flops), Some(t.flops)),
        (bytes(t.output_bytes), Some(t.output_bytes)),
        mem(|m| m.inference_peak_bytes),
        mem(|m| m.training_peak_bytes),
    ]
}

/// `README.md`: one row per spec with its totals ([`INDEX_COLUMNS`]), linking to its report.
pub fn index(reports: &[(String, Report)]) -> Vec<u8> {
    let mut cols = vec![("spec", false)];
    cols.extend(INDEX_COLUMNS);
    cols.push(("files", false));
    let mut g = Grid::new(&cols);
    // The spec and files columns are links whose text and targets are escaped here.
    g.markdown_raw = vec![false; cols.len()];
    g.markdown_raw[0] = true;
    g.markdown_raw[cols.len() - 1] = true;
    for (stem, r) in reports {
        let l = md_link(stem);
        let mut row = vec![format!("[{}]({l}.md)", super::grid::md_text(&r.spec.name))];
        row.extend(index_cells(r).into_iter().map(|(text, _)| text));
        row.push(format!("[csv]({l}.csv) [json]({l}.json) [tex]({l}.tex)"));
        g.rows.push(row);
    }
    let mut out = Vec::new();
    out.extend_from_slice(b"# netstat reports\n\nGenerated by `netstat report`; checked in CI by `netstat report --check`. Do not edit by hand.\n\n");
    g.write_markdown(&mut out).expect("writing to memory cannot fail");
    out.extend_from_slice(format!("\n{INDEX_NOTE}\n\n").as_bytes());
    for line in crate::memory::FOOTNOTE.lines() {
        out.extend_from_slice(format!("- {line}\n").as_bytes());
    }
    out
}

/// Write every generated file into `out` (created if missing), each atomically.
/// Returns the number of files written.
pub fn write(g: &Generated, out: &Path) -> Result<usize, Error> {
    std::fs::create_dir_all(out).map_err(|source| Error::Io { path: out.display().to_string(), source })?;
    for (name, bytes) in &g.files {
        super::write_atomic(&out.join(name), bytes)?;
    }
    Ok(g.files.len())
}

/// What `--check` found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Drift {
    /// Analytic numbers that moved: `"alexnet: layers[conv1].params: 34,944 → 23,296 (-11,648)"`.
    pub moved: Vec<String>,
    /// Files missing, or whose bytes differ although no number in them moved (formatting).
    pub stale: Vec<String>,
}

impl Drift {
    /// Nothing moved and every file is current.
    pub fn is_clean(&self) -> bool {
        self.moved.is_empty() && self.stale.is_empty()
    }
}

/// Keys whose values are not analytic (measured timings) or not about the network (the
/// version that wrote the file): `--check` ignores them.
fn ignored(key: &str) -> bool {
    key == "netstat_version" || key.starts_with("measured") || key.contains("time_ms")
}

/// Flatten a JSON report into `path → value`: arrays of objects with a `name` are keyed by name
/// (`layers[conv1].params`), other arrays are kept whole (shapes).
pub fn flatten(v: &Value, prefix: &str, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if ignored(k) {
                    continue;
                }
                let p = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(x, &p, out);
            }
        }
        Value::Array(a) if !a.is_empty() && a.iter().all(|x| x.get("name").is_some_and(Value::is_string)) => {
            for x in a {
                let name = x["name"].as_str().unwrap_or_default();
                flatten(x, &format!("{prefix}[{name}]"), out);
            }
        }
        _ => {
            out.insert(prefix.to_owned(), v.clone());
        }
    }
}

fn show(v: Option<&Value>) -> String {
    match v {
        None => "(absent)".into(),
        Some(Value::Number(n)) => n.as_u64().map(count).unwrap_or_else(|| n.to_string()),
        Some(Value::Array(a)) => a.iter().map(|x| x.to_string()).collect::<Vec<_>>().join("x"),
        Some(Value::String(s)) => s.clone(),
        Some(x) => x.to_string(),
    }
}

/// The numbers that differ between two JSON reports of spec `stem`, one line each.
pub fn moved_numbers(stem: &str, old: &Value, new: &Value) -> Vec<String> {
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    flatten(old, "", &mut a);
    flatten(new, "", &mut b);
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let mut out = Vec::new();
    for k in keys {
        let (x, y) = (a.get(k), b.get(k));
        if x == y || k.ends_with(".name") {
            continue;
        }
        let delta = match (x.and_then(Value::as_u64), y.and_then(Value::as_u64)) {
            (Some(x), Some(y)) if y >= x => format!(" (+{})", count(y - x)),
            (Some(x), Some(y)) => format!(" (-{})", count(x - y)),
            _ => String::new(),
        };
        out.push(format!("{stem}: {k}: {} -> {}{delta}", show(x), show(y)));
    }
    out
}

/// Largest committed report `--check` reads, bytes.
pub const MAX_REPORT_BYTES: u64 = 256 << 20;

/// Compare freshly generated files with those in `dir`.
pub fn check(g: &Generated, dir: &Path) -> Drift {
    let mut d = Drift::default();
    for (name, new) in &g.files {
        let path = dir.join(name);
        // A committed report is a regular file of at most MAX_REPORT_BYTES: a symbolic link to
        // /dev/zero or a FIFO put there is reported, not followed into a hang.
        let old = match crate::files::read_regular(&path, MAX_REPORT_BYTES, false, "reports") {
            Ok(b) => b,
            Err(crate::files::ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                d.stale.push(format!("{}: missing", path.display()));
                continue;
            }
            Err(e) => {
                d.stale.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        if name.ends_with(".json") {
            let stem = name.trim_end_matches(".json");
            let parsed: Result<Value, _> = serde_json::from_slice(&old);
            let new_v: Value = serde_json::from_slice(new).expect("netstat writes valid JSON");
            match parsed {
                Ok(old_v) => {
                    let m = moved_numbers(stem, &old_v, &new_v);
                    if m.is_empty() {
                        // Same numbers: any other byte difference is the version or formatting.
                        let (mut x, mut y) = (old_v, new_v);
                        x.as_object_mut().map(|o| o.remove("netstat_version"));
                        y.as_object_mut().map(|o| o.remove("netstat_version"));
                        if x != y {
                            d.stale.push(format!("{}: differs", path.display()));
                        }
                    }
                    d.moved.extend(m);
                }
                Err(e) => d.stale.push(format!("{}: not a netstat JSON report ({e})", path.display())),
            }
        } else if &old != new {
            d.stale.push(format!("{}: differs", path.display()));
        }
    }
    // Files of a spec whose numbers moved (and the index) differ for that reason: list only the numbers.
    let moved_stems: Vec<String> =
        d.moved.iter().filter_map(|m| m.split(':').next()).map(|s| format!("{s}.")).collect();
    if !moved_stems.is_empty() {
        d.stale.retain(|s| {
            let file = s.rsplit_once(": ").map(|x| x.0).unwrap_or(s);
            let name = Path::new(file).file_name().and_then(|n| n.to_str()).unwrap_or_default();
            !(s.ends_with(": differs")
                && (name == "README.md"
                    || name == "index.html"
                    || moved_stems.iter().any(|p| name.starts_with(p.as_str()))))
        });
    }
    // A report whose spec is gone.
    if let Ok(rd) = std::fs::read_dir(dir) {
        let mut orphans: Vec<String> = rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".json") && !g.files.contains_key(n))
            .collect();
        orphans.sort();
        for n in orphans {
            d.stale.push(format!("{}: no spec generates it any more", dir.join(n).display()));
        }
    }
    d
}
