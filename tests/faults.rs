//! Faults around the output file, with the built binary: a missing or read-only directory, a
//! directory or a named pipe as destination, a bad spec over an existing report, Ctrl-C while
//! writing. In every case: a clear message, exit code 1 (I/O) or 2 (bad spec) or 130 (Ctrl-C),
//! no partial or temporary file, and a file already at the destination untouched.

use assert_cmd::Command;
use std::path::{Path, PathBuf};

fn netstat() -> Command {
    Command::cargo_bin("netstat").unwrap()
}

/// Run `netstat specs/lenet.yaml --format json -o OUT`; return (exit code, stderr).
fn write_lenet(out: &Path) -> (Option<i32>, String) {
    let o = netstat().args(["specs/lenet.yaml", "--format", "json", "-o"]).arg(out).output().unwrap();
    assert!(o.stdout.is_empty());
    (o.status.code(), String::from_utf8(o.stderr).unwrap())
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[test]
fn missing_directory_is_an_io_error_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("no/such/dir/out.json");
    let (code, err) = write_lenet(&out);
    assert_eq!(code, Some(1), "{err}");
    let parent = out.parent().unwrap().display().to_string();
    assert_eq!(
        err,
        format!(
            "error: {}: cannot create a file in directory {parent}: No such file or directory (os error 2)\n",
            out.display()
        )
    );
    assert!(names_in(dir.path()).is_empty(), "no directory was created");
}

#[test]
fn read_only_directory_is_an_io_error_and_keeps_the_old_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    std::fs::write(ro.join("out.json"), "OLD").unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    // root ignores permission bits; /sys refuses new files even to root (EACCES).
    let root = std::fs::write(ro.join("probe"), "").is_ok();
    let target = if root { PathBuf::from("/sys") } else { ro.clone() };
    let (code, err) = write_lenet(&target.join("out.json"));
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(
        err,
        format!(
            "error: {}/out.json: cannot create a file in directory {}: Permission denied (os error 13)\n",
            target.display(),
            target.display()
        )
    );
    if !root {
        assert_eq!(std::fs::read_to_string(ro.join("out.json")).unwrap(), "OLD");
        assert_eq!(names_in(&ro), ["out.json"]);
    }
}

#[test]
fn a_directory_as_destination_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = write_lenet(dir.path());
    assert_eq!(code, Some(1));
    assert_eq!(err, format!("error: {}: is a directory, not a file\n", dir.path().display()));
    assert!(names_in(dir.path()).is_empty(), "no temporary file left in it");
}

#[test]
fn a_bad_spec_leaves_the_existing_report_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.json");
    std::fs::write(&out, "OLD").unwrap();
    let o = netstat().args(["tests/bad_specs/graph_cycle.yaml", "-o"]).arg(&out).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "OLD");
    assert_eq!(names_in(dir.path()), ["out.json"]);
}

#[test]
fn a_new_report_gets_normal_permissions_and_replaces_the_old_one_whole() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.json");
    std::fs::write(&out, "OLD").unwrap();
    // With umask 022 a program's new file is 0666 & !022 = 0644 (not a temporary file's 0600).
    let bin = assert_cmd::cargo::cargo_bin("netstat");
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("umask 022; exec '{}' specs/lenet.yaml --format json -o '{}'", bin.display(), out.display()))
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(std::fs::metadata(&out).unwrap().permissions().mode() & 0o777, 0o644);
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    // d2l LeNet: 61,706 params (specs/lenet.yaml header).
    assert_eq!(v["totals"]["params"], 61_706);
    assert_eq!(names_in(dir.path()), ["out.json"]);
}

#[test]
fn a_named_pipe_destination_is_written_in_place_not_replaced() {
    use std::os::unix::fs::FileTypeExt;
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    let (code, err) = write_lenet(&fifo);
    assert_eq!(code, Some(0), "{err}");
    let got = reader.join().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&got).unwrap();
    assert_eq!(v["totals"]["params"], 61_706);
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo(), "still a pipe");
    assert_eq!(names_in(dir.path()), ["pipe"]);
}

/// Ctrl-C (SIGINT) sent the moment the temporary report file appears: whether the signal lands
/// during the write or just after the rename, the destination holds either the old file or the
/// complete new report, and no temporary file remains.
#[test]
fn ctrl_c_while_writing_keeps_the_old_report_and_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    // 30,000 layers → a JSON report of several MB, so writing and syncing it takes a while.
    let spec = dir.path().join("big.yaml");
    let mut s = String::from("name: big\ninput: [8]\nlayers:\n");
    for i in 0..30_000 {
        s.push_str(&format!("  - {{name: layer_with_a_long_name_{i}, kind: relu}}\n"));
    }
    std::fs::write(&spec, s).unwrap();
    let outdir = dir.path().join("out");
    std::fs::create_dir(&outdir).unwrap();
    let out = outdir.join("report.json");
    std::fs::write(&out, "OLD").unwrap();
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("netstat"))
        .arg(&spec)
        .args(["--format", "json", "-o"])
        .arg(&out)
        .spawn()
        .unwrap();
    let mut interrupted_mid_write = false;
    loop {
        if names_in(&outdir).iter().any(|n| n.starts_with(".netstat-")) {
            let kill = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status();
            assert!(kill.unwrap().success());
            interrupted_mid_write = true;
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
    let status = child.wait().unwrap();
    let text = std::fs::read_to_string(&out).unwrap();
    println!("interrupted mid-write: {interrupted_mid_write}; exit {status:?}; report {} bytes", text.len());
    match status.code() {
        Some(130) => {}
        Some(0) => assert!(!interrupted_mid_write || text != "OLD"),
        other => panic!("unexpected exit {other:?}"),
    }
    if text != "OLD" {
        let v: serde_json::Value = serde_json::from_str(&text).expect("a replaced report is complete");
        assert_eq!(v["layers"].as_array().unwrap().len(), 30_000);
    }
    assert_eq!(names_in(&outdir), ["report.json"], "no temporary file left");
}

/// `netstat measure specs/lenet.yaml ARGS -o OUT` over an existing OUT holding "OLD":
/// (exit code, stderr), after checking that OUT still holds "OLD" and nothing else was written.
fn measure_over_old_report(args: &[&str]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.json");
    std::fs::write(&out, "OLD").unwrap();
    let o = netstat()
        .args(["measure", "specs/lenet.yaml", "--iters", "1", "--warmup", "0", "--format", "json", "-o"])
        .arg(&out)
        .args(args)
        .env("NETSTAT_FAKE_TIMINGS", "1")
        .output()
        .unwrap();
    assert!(o.stdout.is_empty());
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "OLD", "the earlier report is untouched");
    assert_eq!(names_in(dir.path()), ["out.json"], "no temporary or partial file");
    (o.status.code(), String::from_utf8(o.stderr).unwrap())
}

#[test]
fn measure_on_an_unknown_device_is_a_usage_error() {
    for (dev, why) in [
        ("tpu", "expected cpu, cuda or cuda:N"),
        ("cuda:", "expected cpu, cuda or cuda:N"),
        ("cuda:-1", "expected cpu, cuda or cuda:N"),
        ("cuda:99999999999999999999999", "the CUDA ordinal is too large"),
    ] {
        let (code, err) = measure_over_old_report(&["--device", dev]);
        assert_eq!(code, Some(2), "{dev}: {err}");
        assert!(err.contains(&format!("unknown device `{dev}`: {why}")), "{dev}: {err}");
    }
}

#[cfg(not(feature = "cuda"))]
#[test]
fn measure_on_cuda_in_a_cpu_build_says_how_to_get_cuda() {
    let (code, err) = measure_over_old_report(&["--device", "cuda:0"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.starts_with("error: --device cuda:0: this netstat was built without CUDA and measures on the CPU only;"),
        "{err}"
    );
    assert!(err.contains("cargo build --release --features cuda"), "{err}");
}

#[test]
fn measure_on_the_cpu_with_nvml_missing_runs_and_gpu_says_unavailable() {
    // NETSTAT_NVML_LIB pointing nowhere stands for a machine with no NVIDIA driver, even where
    // one is installed. A CPU measurement does not ask NVML, so this half only pins that a
    // missing NVML does not stop it or add a `gpu` section; `netstat gpu` below is the real check.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.json");
    let o = netstat()
        .args(["measure", "specs/lenet.yaml", "--iters", "1", "--warmup", "0", "--format", "json", "-o"])
        .arg(&out)
        .env("NETSTAT_FAKE_TIMINGS", "1")
        .env("NETSTAT_NVML_LIB", dir.path().join("no-libnvidia-ml.so"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(v["measured"]["device"], "cpu");
    assert!(v["measured"].get("gpu").is_none(), "no GPU section on the CPU");
    let o = netstat().args(["gpu"]).env("NETSTAT_NVML_LIB", dir.path().join("no-libnvidia-ml.so")).output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.starts_with("NVML unavailable: "), "{text}");
    assert!(text.contains("no-libnvidia-ml.so"), "the reason names the library that failed to load: {text}");
}
