//! Graphs, blocks, token inputs and `--depth`, through the built binary.

use assert_cmd::Command;

fn netstat() -> Command {
    Command::cargo_bin("netstat").unwrap()
}

fn json(args: &[&str]) -> serde_json::Value {
    let out = netstat().args(args).args(["--format", "json"]).assert().success().get_output().stdout.clone();
    serde_json::from_slice(&out).unwrap()
}

#[test]
fn unet_example_needs_only_a_spec() {
    // By hand (64×64 input; conv params c_in·c_out·9 + c_out, MACs per output pixel c_in·c_out·9):
    // params enc1 160 + 2,320; enc2 4,640 + 9,248; mid 18,496 + 36,928; up2 64·32·4 + 32 = 8,224;
    // dec2 18,464 + 9,248; up1 32·16·4 + 16 = 2,064; dec1 4,624 + 2,320; head 34 → 116,770.
    // MACs enc1 2,448·4,096 = 10,027,008; enc2 13,824·1,024 = 14,155,776; mid 55,296·256 = 14,155,776;
    // up2 (input grid) 64·256·32·4 = 2,097,152; dec2 27,648·1,024 = 28,311,552;
    // up1 32·1,024·16·4 = 2,097,152; dec1 6,912·4,096 = 28,311,552; head 16·2·4,096 = 131,072
    // → 99,287,040.
    let j = json(&["specs/examples/unet_small.yaml"]);
    assert_eq!(j["totals"]["params"], 116_770);
    assert_eq!(j["totals"]["macs"], 99_287_040);
    let cat = j["layers"].as_array().unwrap().iter().find(|l| l["name"] == "dec1.cat").unwrap();
    // 16 upsampled channels ++ 16 skip channels at 64×64.
    assert_eq!(cat["output_shape"], serde_json::json!([1, 32, 64, 64]));
}

#[test]
fn depth_rolls_rows_up_by_block() {
    let j = json(&["specs/resnet50.yaml", "--depth", "1"]);
    let names: Vec<&str> = j["layers"].as_array().unwrap().iter().map(|l| l["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "flatten", "fc"]
    );
    let layer4 = &j["layers"][7];
    // layer4.0: 1024·512 + 1,024 + 512·512·9 + 1,024 + 512·2048 + 4,096 + 1024·2048 + 4,096 = 6,039,552;
    // layer4.1 and .2: 2048·512 + 1,024 + 2,359,296 + 1,024 + 1,048,576 + 4,096 = 4,462,592 each
    // → 14,964,736 params; output 1×2048×7×7.
    assert_eq!((layer4["kind"].as_str(), layer4["params"].as_u64()), (Some("group"), Some(14_964_736)));
    assert_eq!(layer4["output_shape"], serde_json::json!([1, 2048, 7, 7]));
    // Rolled-up rows still add up to the totals.
    let sum: u64 = j["layers"].as_array().unwrap().iter().map(|l| l["macs"].as_u64().unwrap()).sum();
    assert_eq!(sum, 4_089_184_256);
    // depth 2: one row per bottleneck (3 + 4 + 6 + 3 = 16), plus 7 stem/head rows.
    assert_eq!(json(&["specs/resnet50.yaml", "--depth", "2"])["layers"].as_array().unwrap().len(), 23);
    let csv = netstat().args(["specs/resnet18.yaml", "--depth", "2", "--format", "csv"]).assert().success();
    let out = String::from_utf8(csv.get_output().stdout.clone()).unwrap();
    assert!(out.contains("\nlayer2.0,group,1x128x28x28,230144,"), "{out}");
}

#[test]
fn block_errors_point_into_the_block_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.yaml");
    let text = std::fs::read_to_string("specs/resnet18.yaml")
        .unwrap()
        .replace("c_out: \"${width}\", kernel: 3, padding: 1", "c_out: \"${widht}\", kernel: 3, padding: 1");
    std::fs::write(&p, text).unwrap();
    let out = netstat().arg(&p).assert().code(2).get_output().stderr.clone();
    let err = String::from_utf8(out).unwrap();
    let file = p.display().to_string();
    // Line 15 of resnet18.yaml is the block's conv2; the error names the first expanded copy.
    assert!(err.starts_with(&format!("error: {file}:15:44:")), "{err}");
    assert!(
        err.contains(
            "layer #7 \"layer1.0.conv2\" (conv2d): `${widht}`: unknown parameter `widht` (did you mean `width`?)"
        ),
        "{err}"
    );
}

#[test]
fn token_input_needs_an_embedding_first() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("tok.yaml");
    std::fs::write(&p, "name: t\ninput: {shape: [16], dtype: i64}\nlayers:\n  - {name: ln, kind: layer_norm}\n")
        .unwrap();
    let err = String::from_utf8(netstat().arg(&p).assert().code(2).get_output().stderr.clone()).unwrap();
    assert!(err.contains("layer #0 \"ln\" (layer_norm): expected a floating-point input, got i64"), "{err}");
    let j = json(&["specs/gpt2.yaml"]);
    assert_eq!(j["spec"]["input_dtype"], "i64");
    let head = j["layers"].as_array().unwrap().last().unwrap();
    // lm_head tied to wte: 0 own params, 1024·768·50,257 = 39,523,713,024 MACs.
    assert_eq!(
        (head["name"].as_str(), head["params"].as_u64(), head["macs"].as_u64()),
        (Some("lm_head"), Some(0), Some(39_523_713_024))
    );
}

#[test]
fn every_complete_spec_in_the_format_doc_analyses() {
    let doc = std::fs::read_to_string("docs/spec-format.md").unwrap();
    let mut n = 0;
    for (k, block) in doc.split("```yaml\n").skip(1).enumerate() {
        let text = block.split("```").next().unwrap();
        if !text.starts_with("name:") {
            continue;
        }
        let file = format!("docs/spec-format.md#yaml{k}");
        let s = netstat::spec::parse_bytes(&file, text.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{text}"));
        netstat::analysis::analyze(s).unwrap_or_else(|e| panic!("{e}\n{text}"));
        n += 1;
    }
    assert!(n >= 10, "only {n} complete specs in docs/spec-format.md");
}

#[test]
fn the_format_doc_names_every_kind_and_field() {
    let doc = std::fs::read_to_string("docs/spec-format.md").unwrap();
    let mut missing = Vec::new();
    let mut want = |s: &str| {
        if !doc.contains(&format!("`{s}`")) {
            missing.push(s.to_owned());
        }
    };
    for f in netstat::spec::TOP_FIELDS.iter().chain(netstat::kinds::COMMON_FIELDS) {
        want(f);
    }
    for f in netstat::spec::blocks::BLOCK_FIELDS.iter().chain(netstat::spec::blocks::INSTANCE_FIELDS) {
        want(f);
    }
    for k in netstat::kinds::Kind::NAMES {
        want(k);
        for f in netstat::kinds::Kind::fields(k).unwrap() {
            want(f);
        }
    }
    assert!(missing.is_empty(), "docs/spec-format.md does not mention: {}", missing.join(", "));
}

#[test]
fn densenet_block_example_needs_only_a_spec() {
    // DenseNet-121 block 1: 6 layers, growth 32, bn_size 4, on 1×64×56×56; layer i reads
    // c_i = 64 + 32·(i − 1) channels (64, 96, …, 224; Σ c_i = 864).
    // params Σ (2·c_i + 128·c_i + 2·128 + 128·32·9) = 1,728 + 110,592 + 1,536 + 221,184 = 335,040;
    // MACs at 56·56 = 3,136: 864·128·3,136 + 6·36,864·3,136 = 346,816,512 + 693,633,024
    // = 1,040,449,536; buffers 2·(864 + 6·128) = 3,264; output 64 + 6·32 = 256 channels.
    let j = json(&["specs/examples/densenet_block.yaml"]);
    assert_eq!(j["totals"]["params"], 335_040);
    assert_eq!(j["totals"]["macs"], 1_040_449_536u64);
    assert_eq!(j["totals"]["buffers"], 3_264);
    let last = j["layers"].as_array().unwrap().last().unwrap();
    assert_eq!(last["name"], "denseblock1.denselayer6.cat");
    assert_eq!(last["output_shape"], serde_json::json!([1, 256, 56, 56]));
}
