//! The built binary with the GPU-side flags: `--hardware` (roofline columns), `--fit` and
//! `--devices` (per-device training memory), `netstat gpu` (NVML) and `netstat peak`.

use assert_cmd::Command;

fn netstat() -> Command {
    Command::cargo_bin("netstat").unwrap()
}

fn stdout_of(args: &[&str]) -> String {
    let out = netstat().args(args).assert().success().get_output().stdout.clone();
    String::from_utf8(out).unwrap()
}

#[test]
fn roofline_columns_in_csv_and_json() {
    // conv1 of specs/alexnet.yaml: bytes moved 602,112 + 139,776 + 1,119,744 = 1,861,632 (src/roofline.rs).
    let csv = stdout_of(&["specs/alexnet.yaml", "--hardware", "h200", "--format", "csv"]);
    let header = csv.lines().next().unwrap();
    assert!(header.ends_with(",bytes_moved,arithmetic_intensity,bound,predicted_time_ms"), "{header}");
    let conv1 = csv.lines().nth(1).unwrap();
    assert!(conv1.starts_with("conv1,conv2d,"), "{conv1}");
    assert!(conv1.contains(",1861632,") && conv1.contains(",compute,"), "{conv1}");
    let fc1 = csv.lines().find(|l| l.starts_with("fc1,")).unwrap();
    assert!(fc1.contains(",104915968,") && fc1.contains(",memory,"), "{fc1}");

    let json = stdout_of(&["specs/alexnet.yaml", "--hardware", "gtx580", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["roofline"]["hardware"], "gtx580");
    assert_eq!(v["roofline"]["peak_flops_per_s"], 1.581056e12);
    assert_eq!(v["layers"][0]["roofline"]["bytes_moved"], 1_861_632);
    assert_eq!(v["layers"][0]["roofline"]["bound"], "compute");
    assert!(v["totals"]["roofline"]["predicted_time_ms"].as_f64().unwrap() > 0.0);
}

#[test]
fn without_hardware_reports_are_unchanged() {
    let json = stdout_of(&["specs/alexnet.yaml", "--format", "json"]);
    assert!(!json.contains("roofline") && !json.contains("training_memory"));
}

#[test]
fn table_says_which_roofline() {
    let out = stdout_of(&["specs/alexnet.yaml", "--hardware", "h200"]);
    assert!(
        out.contains("roofline on h200 (NVIDIA H200 SXM 141 GB (Hopper, 2024)): fp32 peak 67.0 TFLOP/s, 4800.0 GB/s"),
        "{out}"
    );
    assert!(out.contains("FLOP/B") && out.contains("t_pred"), "{out}");
}

#[test]
fn alexnet_2012_batch_128_on_one_and_two_gtx580() {
    // src/memory/devices.rs derives the per-device figures (momentum): saved activations
    // 1,515,528,192 B on one device, 773,296,128 B per device on two (received 15,532,032 B).
    let args =
        ["specs/alexnet-2012.yaml", "--batch", "128", "--optimizer", "momentum", "--hardware", "gtx580", "--fit"];
    let one = stdout_of(&args);
    assert!(one.contains("training memory per device (1 device, batch 128, momentum)"), "{one}");
    assert!(one.contains("fit on gtx580: peak "), "{one}");
    assert!(one.contains("of 3.00 GiB per device — fits; largest batch whose training peak fits: "), "{one}");
    let two = stdout_of(&[&args[..], &["--devices", "2"]].concat());
    assert!(two.contains("training memory per device (2 devices, batch 128, momentum)"), "{two}");
    assert!(two.contains("layers exchanging activations between devices: conv3, fc6, fc7, fc8"), "{two}");
    let v: serde_json::Value =
        serde_json::from_str(&stdout_of(&[&args[..], &["--devices", "2", "--format", "json"]].concat())).unwrap();
    assert_eq!(v["training_memory"]["saved_activation_bytes"], 773_296_128u64);
    assert_eq!(v["training_memory"]["received_bytes"], 15_532_032u64);
    assert_eq!(v["training_memory"]["fit"]["fits"], true);
    // Batch 512 on one: 512 · 11,840,064 B of saved activations alone = 6,062,112,768 B > 3 GiB.
    let big = stdout_of(&["specs/alexnet-2012.yaml", "--batch", "512", "--hardware", "gtx580", "--fit"]);
    assert!(big.contains("does NOT fit"), "{big}");
}

#[test]
fn bad_hardware_is_a_usage_error() {
    let a = netstat().args(["specs/alexnet.yaml", "--hardware", "h20"]).assert().code(2);
    let err = String::from_utf8(a.get_output().stderr.clone()).unwrap();
    assert!(err.starts_with("error: --hardware: unknown device `h20` (did you mean `h200`?)"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.yaml");
    std::fs::write(&f, "name: x\nkind: gpu\nfp32_flops_per_s: fast\n").unwrap();
    let a = netstat().args(["specs/alexnet.yaml", "--hardware", f.to_str().unwrap()]).assert().code(2);
    let err = String::from_utf8(a.get_output().stderr.clone()).unwrap();
    assert!(err.contains("bad.yaml:3:19: `fp32_flops_per_s`: expected a finite number, got"), "{err}");
    netstat().args(["specs/alexnet.yaml", "--fit"]).assert().code(2);
}

#[test]
fn gpu_subcommand_without_a_driver() {
    if std::path::Path::new("/dev/nvidiactl").exists() {
        return; // a GPU machine: the unavailable path is not reachable
    }
    let out = stdout_of(&["gpu"]);
    assert!(out.starts_with("NVML unavailable: "), "{out}");
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&["gpu", "--json"])).unwrap();
    assert_eq!(v["nvml"], "unavailable");
}

#[test]
fn peak_writes_a_catalog_entry_that_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("cpu.yaml");
    let out = stdout_of(&["peak", "--threads", "1", "--seconds", "0.02", "--write", f.to_str().unwrap()]);
    assert!(out.contains("peak FP32") && out.contains("GB/s"), "{out}");
    // The file is a valid --hardware argument.
    let csv = stdout_of(&["specs/alexnet.yaml", "--hardware", f.to_str().unwrap(), "--format", "csv"]);
    assert!(csv.lines().next().unwrap().contains("bytes_moved"));
    netstat().args(["peak", "--seconds", "0"]).assert().code(2);
}
