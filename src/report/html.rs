//! HTML: one self-contained page per report (`netstat SPEC -f html`, `-o x.html`, `netstat report
//! --html`) and the index of a reports folder.
//!
//! A page holds the per-layer table (sortable: click a header; a few lines of inline script), the
//! totals, the memory summary and the charts of [`super::svg::charts`] inline, memory timeline
//! included. It loads nothing: no stylesheet, script, font or image from anywhere, and its
//! Content-Security-Policy (`default-src 'none'`, the one script allowed by its SHA-256) forbids
//! the browser to fetch anything or to run any other script — an event handler smuggled into a
//! layer name would not run even if escaping failed. Every string from a spec is escaped
//! ([`super::svg::xml_text`]).
//!
//! Opened with `?selftest=1`, the page clicks every column header of each table twice (ascending,
//! then descending), checks the order and the header's `aria-sort`, and that clicking `#` restores
//! the execution order, and writes `selftest: ok …` or
//! `selftest: FAIL …` into `<output id="selftest">`; errors and `console.error` calls are written
//! into `<pre id="errors">`. tests/html.rs reads both from headless Chromium.

use super::grid::Grid;
use super::memory::MemoryReport;
use super::svg::{self, xml_text};
use super::units::bytes;
use super::{human_columns, Report, RowRef};
use crate::memory::Memory;
use sha2::{Digest, Sha256};
use std::fmt::Write as _;

/// The page script: error capture, sortable tables, the self-test.
const SCRIPT: &str = r#"(function () {
  "use strict";
  var errors = [];
  function note(m) {
    errors.push(m);
    var e = document.getElementById("errors");
    if (e) { e.textContent = errors.join("\n"); e.hidden = false; }
  }
  window.addEventListener("error", function (ev) { note("error: " + ev.message + " at line " + ev.lineno); });
  var consoleError = console.error;
  console.error = function () { note("console.error: " + Array.prototype.join.call(arguments, " ")); consoleError.apply(console, arguments); };
  function key(cell, numeric) {
    var v = cell.getAttribute("data-v");
    if (v === null) v = cell.textContent;
    if (!numeric) return v;
    var x = parseFloat(v);
    return isNaN(x) ? -Infinity : x;
  }
  function sortBy(table, col, dir) {
    var ths = table.tHead.rows[0].cells, numeric = ths[col].classList.contains("num");
    var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a.cells[col], numeric), y = key(b.cells[col], numeric);
      var c = x < y ? -1 : x > y ? 1 : 0;
      return c !== 0 ? dir * c : key(a.cells[0], true) - key(b.cells[0], true);
    });
    rows.forEach(function (r) { body.appendChild(r); });
    for (var i = 0; i < ths.length; i++) ths[i].removeAttribute("aria-sort");
    ths[col].setAttribute("aria-sort", dir > 0 ? "ascending" : "descending");
  }
  function setup(table) {
    var ths = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(ths, function (th, col) {
      th.tabIndex = 0;
      var go = function () { sortBy(table, col, th.getAttribute("aria-sort") === "ascending" ? -1 : 1); };
      th.addEventListener("click", go);
      th.addEventListener("keydown", function (ev) { if (ev.key === "Enter") go(); });
    });
  }
  function selftest(tables) {
    var sorts = 0;
    for (var t = 0; t < tables.length; t++) {
      var table = tables[t], body = table.tBodies[0], n = body.rows.length;
      var ths = table.tHead.rows[0].cells;
      var order = Array.prototype.map.call(body.rows, function (r) { return r.cells[0].textContent; }).join("|");
      for (var col = 0; col < ths.length; col++) {
        var numeric = ths[col].classList.contains("num");
        for (var dir = 1; dir >= -1; dir -= 2) {
          ths[col].click();
          sorts++;
          var want = dir > 0 ? "ascending" : "descending";
          if (ths[col].getAttribute("aria-sort") !== want) return "FAIL: table " + t + " column " + col + " not marked " + want;
          if (body.rows.length !== n) return "FAIL: table " + t + " lost rows";
          for (var i = 1; i < n; i++) {
            var a = key(body.rows[i - 1].cells[col], numeric), b = key(body.rows[i].cells[col], numeric);
            if (dir * (a < b ? -1 : a > b ? 1 : 0) > 0) return "FAIL: table " + t + " column " + col + " not sorted at row " + i;
          }
        }
      }
      ths[0].click();
      var back = Array.prototype.map.call(body.rows, function (r) { return r.cells[0].textContent; }).join("|");
      if (back !== order) return "FAIL: table " + t + ": sorting by its first column does not restore the order";
    }
    return "ok (" + tables.length + " tables, " + sorts + " sorts)";
  }
  var tables = Array.prototype.slice.call(document.querySelectorAll("table.sortable"));
  tables.forEach(setup);
  if (/[?&]selftest=1/.test(location.search)) {
    var out = document.getElementById("selftest");
    var result;
    try { result = selftest(tables); } catch (e) { result = "FAIL: " + e; }
    out.textContent = "selftest: " + (errors.length ? "FAIL: " + errors.length + " error(s)" : result);
  }
})();
"#;

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:1.5em auto;max-width:1100px;padding:0 1em;color:#222}\
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}\
table{border-collapse:collapse;font-size:0.88em}th,td{padding:2px 8px;border-bottom:1px solid #e4e4e4;white-space:nowrap}\
th{background:#f3f5f8;text-align:left;position:sticky;top:0}table.sortable th{cursor:pointer}\
th[aria-sort=ascending]::after{content:' \\25B2'}th[aria-sort=descending]::after{content:' \\25BC'}\
.num{text-align:right;font-variant-numeric:tabular-nums}tfoot td{font-weight:bold;border-top:2px solid #999}\
.wrap{overflow-x:auto}figure{margin:1em 0}svg{max-width:100%;height:auto}\
p{margin:0.35em 0}p.note{color:#555;font-size:0.9em}#errors{color:#b8322a}nav{font-size:0.9em}";

/// `sha256-…` of the script, for the Content-Security-Policy.
fn script_hash() -> String {
    let digest = Sha256::digest(SCRIPT.as_bytes());
    format!("sha256-{}", base64(&digest))
}

/// Standard base64 (RFC 4648 §4) with padding.
fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A whole HTML document: `title` (escaped here) and `body` (already HTML).
pub fn document(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src '{hash}'\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<meta name=\"generator\" content=\"netstat\">\n\
         <title>{t}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}\
         <pre id=\"errors\" hidden></pre>\n<output id=\"selftest\"></output>\n<script>{SCRIPT}</script>\n</body>\n</html>\n",
        hash = script_hash(),
        t = xml_text(title)
    )
}

/// One table cell: its text (escaped here) and the value it sorts by (`None`: its text).
pub struct Cell {
    /// What the cell shows.
    pub text: String,
    /// What it sorts by: a raw number for numeric columns.
    pub key: Option<String>,
}

impl Cell {
    fn new(text: impl Into<String>, key: Option<String>) -> Cell {
        Cell { text: text.into(), key }
    }
}

/// A sortable table: `(header, numeric)` columns, body rows and an optional footer (totals),
/// which stays in place when sorting. Write the first column so that sorting by it ascending
/// restores the intended order (the self-test checks this).
pub fn table(cols: &[(&str, bool)], rows: &[Vec<Cell>], foot: Option<&[String]>) -> String {
    let mut s = String::from("<div class=\"wrap\"><table class=\"sortable\">\n<thead><tr>");
    for (h, num) in cols {
        let _ = write!(s, "<th{}>{}</th>", if *num { " class=\"num\"" } else { "" }, xml_text(h));
    }
    s.push_str("</tr></thead>\n<tbody>\n");
    for r in rows {
        s.push_str("<tr>");
        for (c, (_, num)) in r.iter().zip(cols) {
            let class = if *num { " class=\"num\"" } else { "" };
            match &c.key {
                Some(k) => {
                    let _ = write!(s, "<td{class} data-v=\"{}\">{}</td>", xml_text(k), xml_text(&c.text));
                }
                None => {
                    let _ = write!(s, "<td{class}>{}</td>", xml_text(&c.text));
                }
            }
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</tbody>\n");
    if let Some(f) = foot {
        s.push_str("<tfoot><tr>");
        for (c, (_, num)) in f.iter().zip(cols) {
            let _ = write!(s, "<td{}>{}</td>", if *num { " class=\"num\"" } else { "" }, xml_text(c));
        }
        s.push_str("</tr></tfoot>\n");
    }
    s.push_str("</table></div>\n");
    s
}

/// Lines of prose as paragraphs, escaped.
fn paragraphs(lines: &str, class: &str) -> String {
    lines.lines().filter(|l| !l.trim().is_empty()).map(|l| format!("<p{class}>{}</p>\n", xml_text(l.trim()))).collect()
}

/// `text` escaped for HTML, each `span` in backticks set as `<code>span</code>`.
fn code_spans(text: &str) -> String {
    text.split('`')
        .enumerate()
        .map(|(i, part)| if i % 2 == 1 { format!("<code>{}</code>", xml_text(part)) } else { xml_text(part) })
        .collect()
}

fn figures(charts: &[(&'static str, String)]) -> String {
    let mut s = String::new();
    for (suffix, svg) in charts {
        let caption = match *suffix {
            "params" => "Parameters per layer",
            "macs" => "MACs per layer",
            "memory" => "Memory timeline of one training step",
            "roofline" => "Roofline",
            "sweep" => "Memory against batch size",
            _ => suffix,
        };
        let _ = write!(s, "<h2>{caption}</h2>\n<figure>\n{svg}</figure>\n");
    }
    s
}

/// The page of one report: heading, totals, memory summary, the per-layer table (first column
/// `#`, the execution order; the columns of the Markdown report, sorting by raw values) and the
/// charts ([`svg::charts`]; `memory`'s timeline when it has one). `index`: a link back to the
/// reports index, when the page is part of a folder.
pub fn report_page(r: &Report, memory: Option<&Memory>, index: Option<&str>) -> String {
    let cols = human_columns(r);
    let t = &r.totals;
    let mut head: Vec<(&str, bool)> = vec![("#", true)];
    head.extend(cols.iter().map(|c| (c.header, c.numeric)));
    let rows: Vec<Vec<Cell>> = r
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let mut row = vec![Cell::new((i + 1).to_string(), None)];
            row.extend(cols.iter().map(|c| {
                let text = (c.human)(RowRef::Layer(l), t);
                let key = if c.numeric { c.raw.map(|raw| raw(RowRef::Layer(l))) } else { None };
                Cell::new(text, key)
            }));
            row
        })
        .collect();
    let mut foot = vec![String::new()];
    foot.extend(cols.iter().map(|c| (c.human)(RowRef::Total(t), t)));
    let mut body = String::new();
    if let Some(i) = index {
        let _ = writeln!(body, "<nav><a href=\"{}\">all reports</a></nav>", xml_text(i));
    }
    let _ = writeln!(
        body,
        "<h1>{} — input {}, batch {}</h1>",
        xml_text(&r.spec.name),
        xml_text(&r.input_desc()),
        r.spec.batch
    );
    body.push_str(&paragraphs(&r.totals_line(), ""));
    body.push_str(&paragraphs(&r.headline(), ""));
    if let Some(m) = &r.memory {
        body.push_str(&paragraphs(&m.summary_lines().replace(",\n  ", ", ").replace("\n  ", "; "), ""));
    }
    for line in r.extra_lines() {
        body.push_str(&paragraphs(&line, ""));
    }
    body.push_str("<h2>Layers</h2>\n<p class=\"note\">Click a column header to sort; # is the execution order.</p>\n");
    body.push_str(&table(&head, &rows, Some(&foot)));
    body.push_str(
        "<p class=\"note\">MACs count conv and linear multiply-accumulates only (torchvision <code>_ops</code>); \
         FLOPs = 2·MACs; out = output bytes, views and in-place outputs included.</p>\n",
    );
    body.push_str(&figures(&svg::charts(r, memory)));
    document(&format!("{} - netstat", r.spec.name), &body)
}

/// The page of `netstat memory -f html`: the figures, the timeline (table and chart) with
/// `--timeline`, the sweep (table and chart) with `--sweep-batch`, and the `--fit` answer.
pub fn memory_page(r: &Report, m: &MemoryReport) -> String {
    let mut body = String::new();
    let _ = writeln!(body, "<h1>{}</h1>", xml_text(&super::memory::heading(r, m)));
    let rows: Vec<Vec<Cell>> = m
        .figure_rows()
        .into_iter()
        .enumerate()
        .map(|(i, (k, b, what))| {
            vec![
                Cell::new((i + 1).to_string(), None),
                Cell::new(k, None),
                Cell::new(what, None),
                Cell::new(bytes(b), Some(b.to_string())),
            ]
        })
        .collect();
    body.push_str(&table(&[("#", true), ("figure", false), ("what", false), ("bytes", true)], &rows, None));
    let mut charts = Vec::new();
    if !m.figures.timeline.is_empty() {
        body.push_str("<h2>Timeline of one training step</h2>\n<p class=\"note\">Live bytes after each stage; the most live during it.</p>\n");
        let rows: Vec<Vec<Cell>> = m
            .figures
            .timeline
            .iter()
            .enumerate()
            .map(|(i, st)| {
                vec![
                    Cell::new((i + 1).to_string(), None),
                    Cell::new(st.phase.name(), None),
                    Cell::new(st.name.clone(), None),
                    Cell::new(bytes(st.live_bytes), Some(st.live_bytes.to_string())),
                    Cell::new(bytes(st.peak_bytes), Some(st.peak_bytes.to_string())),
                ]
            })
            .collect();
        body.push_str(&table(
            &[("#", true), ("stage", false), ("layer", false), ("live", true), ("peak", true)],
            &rows,
            None,
        ));
        charts.push(("memory", svg::timeline(&r.spec.name, &m.figures)));
    }
    if let Some(sw) = &m.sweep {
        body.push_str("<h2>Batch sweep</h2>\n");
        let rows: Vec<Vec<Cell>> = sw
            .iter()
            .map(|x| {
                vec![
                    Cell::new(x.batch.to_string(), None),
                    Cell::new(bytes(x.inference_peak_bytes), Some(x.inference_peak_bytes.to_string())),
                    Cell::new(bytes(x.saved_activation_bytes), Some(x.saved_activation_bytes.to_string())),
                    Cell::new(bytes(x.training_peak_bytes), Some(x.training_peak_bytes.to_string())),
                ]
            })
            .collect();
        body.push_str(&table(
            &[("batch", true), ("inference peak", true), ("saved activations", true), ("training peak", true)],
            &rows,
            None,
        ));
        charts.push(("sweep", svg::sweep(&r.spec.name, sw, m.fit.as_ref().map(|f| f.budget_bytes))));
    }
    if let Some(f) = &m.fit {
        body.push_str(&paragraphs(&format!("{}.", super::memory::fit_line(f)), ""));
    }
    body.push_str(&figures(&charts));
    body.push_str(&paragraphs(crate::memory::FOOTNOTE, " class=\"note\""));
    document(&format!("{} memory - netstat", r.spec.name), &body)
}

/// A page of one [`Grid`] (the diff, the convention breakdown): `title`, the table (a `#`
/// column first: the grid's order), the totals row as footer, and `lines` below.
pub fn grid_page(title: &str, g: &Grid, lines: &[String]) -> String {
    let mut cols: Vec<(&str, bool)> = vec![("#", true)];
    cols.extend(g.headers.iter().map(String::as_str).zip(g.numeric.iter().copied()));
    let rows: Vec<Vec<Cell>> = g
        .rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut row = vec![Cell::new((i + 1).to_string(), None)];
            row.extend(r.iter().zip(&g.numeric).map(|(c, num)| Cell::new(c.clone(), num.then(|| sort_key(c)))));
            row
        })
        .collect();
    let foot = g.total.as_ref().map(|t| std::iter::once(String::new()).chain(t.iter().cloned()).collect::<Vec<_>>());
    let mut body = format!("<h1>{}</h1>\n", xml_text(title));
    body.push_str(&table(&cols, &rows, foot.as_deref()));
    for l in lines {
        body.push_str(&paragraphs(l, ""));
    }
    document(&format!("{title} - netstat"), &body)
}

/// The number a human-formatted cell stands for, for sorting: `26,218,496` → 26218496, `1.5M` →
/// 1500000, `-254 KiB` → -260096, `+12.5%` → 12.5; the text itself when it is no number.
fn sort_key(cell: &str) -> String {
    let t = cell.trim().replace(',', "").replace('−', "-");
    let t = t.trim_end_matches('%');
    let (num, unit) = match t.find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e'))) {
        Some(i) => (&t[..i], t[i..].trim()),
        None => (t, ""),
    };
    let Ok(v) = num.parse::<f64>() else { return cell.to_owned() };
    let scale = match unit {
        "" | "B" => 1.0,
        "K" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "KiB" => 1024.0,
        "MiB" => 1024f64.powi(2),
        "GiB" => 1024f64.powi(3),
        "TiB" => 1024f64.powi(4),
        _ => return cell.to_owned(),
    };
    plain_number(v * scale)
}

fn plain_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// `index.html` of a reports folder: one row per spec under [`super::dir::INDEX_COLUMNS`] (the
/// same cells as `README.md`), numbered, the spec's name linking to its page `STEM.html`.
pub fn index(reports: &[(String, Report)]) -> String {
    let mut s = String::from("<div class=\"wrap\"><table class=\"sortable\">\n<thead><tr>");
    for (h, num) in [("#", true), ("spec", false)].into_iter().chain(super::dir::INDEX_COLUMNS) {
        let _ = write!(s, "<th{}>{}</th>", if num { " class=\"num\"" } else { "" }, xml_text(h));
    }
    s.push_str("</tr></thead>\n<tbody>\n");
    for (i, (stem, r)) in reports.iter().enumerate() {
        let _ = write!(
            s,
            "<tr><td class=\"num\">{}</td><td data-v=\"{}\"><a href=\"{}.html\">{}</a></td>",
            i + 1,
            xml_text(&r.spec.name),
            xml_text(&url_path(stem)),
            xml_text(&r.spec.name),
        );
        for ((_, numeric), (text, key)) in super::dir::INDEX_COLUMNS.into_iter().zip(super::dir::index_cells(r)) {
            match (numeric, key) {
                (true, Some(k)) => write!(s, "<td class=\"num\" data-v=\"{k}\">{}</td>", xml_text(&text)),
                (true, None) => write!(s, "<td class=\"num\">{}</td>", xml_text(&text)),
                (false, _) => write!(s, "<td>{}</td>", xml_text(&text)),
            }
            .expect("writing to a String cannot fail");
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</tbody>\n</table></div>\n");
    let body = format!(
        "<h1>netstat reports</h1>\n<p>Generated by <code>netstat report --html</code>; checked in CI by \
         <code>netstat report --check</code>. Click a column header to sort; a spec's name opens its report.</p>\n{s}\
         <p class=\"note\">{}</p>\n{}",
        code_spans(super::dir::INDEX_NOTE),
        paragraphs(crate::memory::FOOTNOTE, " class=\"note\""),
    );
    document("netstat reports", &body)
}

/// A file stem as a relative URL path: percent-encoded outside unreserved characters, so a
/// stem with spaces, `#`, `?` or `:` stays a relative link to the file.
fn url_path(stem: &str) -> String {
    let mut out = String::new();
    for b in stem.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Write the page of `report` (without a memory timeline) to `out`.
pub fn write(report: &Report, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    out.write_all(report_page(report, None, None).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        // RFC 4648 §10.
        for (i, o) in
            [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("foobar", "Zm9vYmFy")]
        {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn the_policy_allows_exactly_the_page_script() {
        let d = document("t", "");
        assert!(d.contains(&format!("script-src '{}'", script_hash())));
        assert_eq!(d.matches("<script>").count(), 1);
        // SHA-256 is 32 bytes: 44 base64 characters with one `=`.
        assert_eq!(script_hash().len(), "sha256-".len() + 44);
    }

    #[test]
    fn sort_keys_are_the_numbers_cells_show() {
        assert_eq!(sort_key("26,218,496"), "26218496");
        assert_eq!(sort_key("1.5M"), "1500000");
        assert_eq!(sort_key("-254 KiB"), "-260096");
        assert_eq!(sort_key("+12.5%"), "12.5");
        assert_eq!(sort_key("conv1"), "conv1");
    }

    #[test]
    fn hostile_layer_names_are_text() {
        let yaml = "name: '<script>alert(1)</script>'\ninput: [4]\nlayers:\n  - {name: '<img src=x onerror=alert(1)>', kind: linear, out_features: 2}\n";
        let spec = crate::spec::parse_bytes("x.yaml", yaml.as_bytes()).unwrap();
        let a = crate::analysis::analyze(spec).unwrap();
        let page = report_page(&Report::new(&a), None, None);
        assert!(!page.contains("<img") && !page.contains("<script>alert"), "{page}");
        assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;"));
        assert_eq!(page.matches("<script>").count(), 1);
    }
}
