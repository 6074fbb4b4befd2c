//! The HTML report in a real browser: headless Chromium opens pages that `netstat report --html`,
//! `netstat SPEC -o x.html`, `--explain`, `netstat memory` and `netstat diff` wrote, with `?selftest=1` (the page sorts
//! every table by every column both ways and writes `selftest: ok …` into `<output id="selftest">`;
//! script errors and `console.error` go into `<pre id="errors">`), and `--dump-dom` returns the DOM
//! after the page ran. Chromium's console log (`--enable-logging=stderr`) must hold no error
//! either (a Content-Security-Policy refusal is logged there, not in the page).
//!
//! Skipped, with a notice, when no `chromium` is on PATH, unless NETSTAT_REQUIRE_CHROMIUM=1 (CI
//! installs it and sets that: .ci/run).

use assert_cmd::Command;
use predicates::prelude::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn netstat() -> Command {
    Command::cargo_bin("netstat").unwrap()
}

/// The Chromium binary, or `None` (the test is skipped) unless NETSTAT_REQUIRE_CHROMIUM=1.
fn chromium() -> Option<PathBuf> {
    let found = ["chromium", "chromium-browser", "google-chrome"].iter().find_map(|name| {
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).map(|d| d.join(name)).find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var("NETSTAT_REQUIRE_CHROMIUM").as_deref() != Ok("1"),
            "NETSTAT_REQUIRE_CHROMIUM=1 but no chromium on PATH (apt-get install chromium)"
        );
        eprintln!(
            "notice: tests/html.rs skipped: no chromium on PATH (set NETSTAT_REQUIRE_CHROMIUM=1 to make this fail)"
        );
    }
    found
}

/// What Chromium saw of `page` opened with `?selftest=1`: (DOM after the scripts ran, its log).
fn open(chrome: &Path, page: &Path) -> (String, String) {
    let profile = tempfile::tempdir().unwrap();
    let out = tempfile::NamedTempFile::new().unwrap();
    let err = tempfile::NamedTempFile::new().unwrap();
    let url = format!("file://{}?selftest=1", page.canonicalize().unwrap().display());
    let mut child = std::process::Command::new(chrome)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(&url)
        .stdout(out.reopen().unwrap())
        .stderr(err.reopen().unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish {url} in 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (std::fs::read_to_string(out.path()).unwrap(), std::fs::read_to_string(err.path()).unwrap())
}

/// The page rendered: the self-test passed, no script error, nothing refused or failed in the log.
fn assert_clean(chrome: &Path, page: &Path) -> String {
    let (dom, log) = open(chrome, page);
    let selftest = dom.split("<output id=\"selftest\">").nth(1).and_then(|s| s.split("</output>").next());
    assert!(selftest.is_some_and(|s| s.starts_with("selftest: ok (")), "{}: {selftest:?}\n{log}", page.display());
    assert!(dom.contains("<pre id=\"errors\" hidden=\"\"></pre>"), "{}: script errors:\n{dom}", page.display());
    // Chromium logs console messages as `…:INFO:CONSOLE:196] "message"`: an uncaught exception,
    // a Content-Security-Policy violation ("Executing inline script violates …", "Loading the
    // image 'http://…' violates …": checked by hand with a page given an extra script and image)
    // or a failed load. The page itself logs nothing, so any such line is a fault.
    let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(console.is_empty(), "{}: {console:#?}", page.display());
    dom
}

/// A spec whose names try to inject markup (issue 13 item 7).
const HOSTILE: &str = "name: \"<script>alert('spec')</script>\"\ninput: [3, 8, 8]\nlayers:\n  \
- {name: \"<img src=x onerror=alert(1)>\", kind: conv2d, c_out: 4, kernel: 3}\n  \
- {name: \"a|b&c'd\", kind: relu}\n  - {name: flat, kind: flatten}\n  - {name: fc, kind: linear, out_features: 2}\n";

#[test]
fn report_html_pages_render_and_sort_in_chromium() {
    let Some(chrome) = chromium() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let specs = tmp.path().join("specs");
    std::fs::create_dir(&specs).unwrap();
    std::fs::copy("tests/fixtures/alexnet-torchvision.yaml", specs.join("alexnet-torchvision.yaml")).unwrap();
    std::fs::write(specs.join("hostile.yaml"), HOSTILE).unwrap();
    let out = tmp.path().join("reports");
    netstat().arg("report").arg(&specs).arg("--out").arg(&out).arg("--html").assert().success();
    let dom = assert_clean(&chrome, &out.join("alexnet-torchvision.html"));
    // The three charts inline.
    assert_eq!(dom.matches("<svg").count(), 3, "params, MACs, memory timeline");
    // torchvision alexnet `_meta`: 61,100,840 params.
    assert!(dom.contains("<td class=\"num\">61,100,840</td>"), "totals row");
    let dom = assert_clean(&chrome, &out.join("hostile.html"));
    assert!(!dom.contains("<img") && !dom.contains("alert('spec')</script>"), "{dom}");
    assert!(dom.contains("&lt;img src=x onerror=alert(1)&gt;"), "{dom}");
    let dom = assert_clean(&chrome, &out.join("index.html"));
    assert!(dom.contains("href=\"alexnet-torchvision.html\""), "{dom}");
}

/// Without a browser: `report --html` writes a page per spec and index.html, and `--check` covers
/// them in a folder that holds index.html.
#[test]
fn report_check_covers_the_pages() {
    let tmp = tempfile::tempdir().unwrap();
    let specs = tmp.path().join("specs");
    std::fs::create_dir(&specs).unwrap();
    std::fs::copy("specs/lenet.yaml", specs.join("lenet.yaml")).unwrap();
    let out = tmp.path().join("reports");
    let report = |extra: &[&str]| {
        let mut c = netstat();
        c.arg("report").arg(&specs).arg("--out").arg(&out).args(extra);
        c
    };
    // 4 formats + params, MACs and memory charts + README.md = 8 files; with --html 2 more.
    report(&["--html"]).assert().success().stdout(predicates::str::contains("wrote 10 files for 1 spec"));
    assert!(out.join("lenet.html").is_file() && out.join("index.html").is_file());
    report(&["--check"]).assert().success().stdout(predicates::str::contains("up to date (1 spec, 10 files)"));
    // A plain regenerate of a folder that holds index.html keeps its pages, so the next --check
    // passes (it wrote 8 files and left a README.md the check then found stale).
    report(&[]).assert().success().stdout(predicates::str::contains("wrote 10 files for 1 spec"));
    report(&["--check"]).assert().success().stdout(predicates::str::contains("up to date (1 spec, 10 files)"));
    std::fs::write(out.join("lenet.html"), "changed").unwrap();
    report(&["--check"])
        .assert()
        .code(1)
        .stdout(predicates::str::contains("lenet.html: differs"))
        .stderr(predicates::str::contains("--out").and(predicates::str::contains(" --html`")));
    std::fs::remove_file(out.join("lenet.html")).unwrap();
    report(&["--check"]).assert().code(1).stdout(predicates::str::contains("lenet.html: missing"));
    // Without index.html, a folder is checked without pages (and its README.md, which names
    // index.html when there are pages, is stale until regenerated without --html).
    std::fs::remove_file(out.join("index.html")).unwrap();
    report(&["--check"]).assert().code(1).stdout(predicates::str::contains("README.md: differs"));
    report(&[]).assert().success();
    report(&["--check"]).assert().success().stdout(predicates::str::contains("up to date (1 spec, 8 files)"));
}

#[test]
fn spec_and_memory_pages_render_with_roofline_and_sweep() {
    let Some(chrome) = chromium() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let page = tmp.path().join("alexnet.html");
    netstat().args(["specs/alexnet.yaml", "--hardware", "h100", "-o"]).arg(&page).assert().success();
    let dom = assert_clean(&chrome, &page);
    assert!(dom.contains("<h2>Roofline</h2>") && dom.contains("ridge 20.0 FLOP/B"), "h100: 67e12 / 3.35e12 = 20.0");
    let page = tmp.path().join("memory.html");
    netstat()
        .args(["memory", "specs/alexnet.yaml", "--timeline", "--sweep-batch", "1,8,32", "-o"])
        .arg(&page)
        .assert()
        .success();
    let dom = assert_clean(&chrome, &page);
    assert!(dom.contains("<h2>Memory against batch size</h2>") && dom.contains("<h2>Memory timeline"), "{dom}");
    let page = tmp.path().join("explain.html");
    netstat().args(["specs/alexnet.yaml", "--explain", "-o"]).arg(&page).assert().success();
    assert_clean(&chrome, &page);
    let page = tmp.path().join("diff.html");
    netstat()
        .args(["diff", "specs/alexnet.yaml", "tests/fixtures/alexnet-torchvision.yaml", "-f", "html", "-o"])
        .arg(&page)
        .assert()
        .success();
    assert_clean(&chrome, &page);
}

/// Without a browser: `-o x.html` picks HTML, the page holds the charts and loads nothing.
#[test]
fn html_output_is_one_self_contained_page() {
    let tmp = tempfile::tempdir().unwrap();
    let page = tmp.path().join("a.html");
    netstat().args(["specs/alexnet.yaml", "-o"]).arg(&page).assert().success();
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>\n"), "{}", &html[..80]);
    assert!(html.contains("content=\"default-src 'none';"), "the policy forbids every fetch");
    // Nothing refers to another file or the network: no src= attributes, no stylesheet links.
    assert!(!html.contains(" src=") && !html.contains("<link"), "{html}");
    // The only URLs are the SVG namespace names (never fetched).
    assert_eq!(html.matches("http:").count(), html.matches("xmlns=\"http://www.w3.org/2000/svg\"").count());
    assert!(!html.contains("https:"));
    // params, MACs and the memory timeline inline; AlexNet (d2l): 50,844,008 params (the seed article).
    assert_eq!(html.matches("<svg").count(), 3);
    assert!(html.contains("<td class=\"num\">50,844,008</td>"));
    // -f html wins over the extension, and goes to standard output without -o.
    let out = netstat().args(["specs/alexnet.yaml", "-f", "html"]).assert().success();
    assert!(String::from_utf8_lossy(&out.get_output().stdout).starts_with("<!DOCTYPE html>"));
    // measure has no HTML form: a usage error, exit 2.
    netstat().args(["measure", "specs/alexnet.yaml", "-f", "html"]).assert().code(2);
}
