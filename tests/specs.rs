//! Golden numbers of the shipped specs, from the seed article and published sources
//! (shared/reference/README.md lists each with its source).

use netstat::analysis::{analyze, Analysis, Overrides};
use netstat::spec;

fn analyse(path: &str, o: &Overrides) -> Analysis {
    let mut s = spec::load(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    o.apply(&mut s);
    analyze(s).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn totals(path: &str) -> (u64, u64) {
    let a = analyse(path, &Overrides::default());
    (a.totals.params, a.totals.macs)
}

fn row<'a>(a: &'a Analysis, name: &str) -> &'a netstat::analysis::LayerAnalysis {
    a.layers.iter().find(|l| a.layer_spec(l).id.name == name).unwrap_or_else(|| panic!("no layer {name}"))
}

#[test]
fn alexnet_seed_article_totals() {
    // Seed article AlexNet (d2l layout, 3×224×224, 1000 classes), torch agrees:
    // conv 3,747,200 params + FC 47,096,808 = 50,844,008;
    // MACs 101,616,768 + 415,334,400 + 127,401,984 + 191,102,976 + 127,401,984
    //      + 26,214,400 + 16,777,216 + 4,096,000 = 1,009,945,728.
    assert_eq!(totals("specs/alexnet.yaml"), (50_844_008, 1_009_945_728));
}

#[test]
fn alexnet_per_layer_table_of_the_article() {
    let a = analyse("specs/alexnet.yaml", &Overrides::default());
    // The article lists conv weights without biases, FC layers with biases:
    // conv1 11·11·3·96 = 34,848; conv2 5·5·96·256 = 614,400; conv3 3·3·256·384 = 884,736;
    // conv4 3·3·384·384 = 1,327,104; conv5 3·3·384·256 = 884,736;
    // FC1 6400·4096 + 4096 = 26,218,496; FC2 4096·4096 + 4096 = 16,781,312;
    // FC3 4096·1000 + 1000 = 4,097,000 (the article's 4,100,096 = 4096·1001 is a slip).
    let conv = [
        ("conv1", 34_848, 96),
        ("conv2", 614_400, 256),
        ("conv3", 884_736, 384),
        ("conv4", 1_327_104, 384),
        ("conv5", 884_736, 256),
    ];
    for (name, weights, c_out) in conv {
        assert_eq!(row(&a, name).params, weights + c_out, "{name}: weights + one bias per output channel");
    }
    for (name, params) in [("fc1", 26_218_496), ("fc2", 16_781_312), ("fc3", 4_097_000)] {
        assert_eq!(row(&a, name).params, params, "{name}");
    }
    // MACs per layer: conv1 54·54·96·3·121 = 101,616,768; conv2 26·26·256·96·25 = 415,334,400;
    // conv3 12·12·384·256·9 = 127,401,984; conv4 12·12·384·384·9 = 191,102,976;
    // conv5 12·12·256·384·9 = 127,401,984; FC1 6400·4096 = 26,214,400.
    for (name, macs) in [
        ("conv1", 101_616_768),
        ("conv2", 415_334_400),
        ("conv3", 127_401_984),
        ("conv4", 191_102_976),
        ("conv5", 127_401_984),
        ("fc1", 26_214_400),
    ] {
        assert_eq!(row(&a, name).macs, macs, "{name}");
    }
    // Shapes: 224 →(k11 s4 p1) ⌊(224 + 2 − 11)/4⌋ + 1 = 54 →pool(3,2) 26 →(k5 p2) 26 →pool 12
    // →(k3 p1)×3 12 →pool 5; flatten 256·5·5 = 6,400.
    let spatial: Vec<u64> = ["conv1", "pool1", "conv2", "pool2", "conv3", "conv4", "conv5", "pool5"]
        .iter()
        .map(|n| row(&a, n).output.0[2])
        .collect();
    assert_eq!(spatial, vec![54, 26, 26, 12, 12, 12, 12, 5]);
    assert_eq!(row(&a, "flatten").output.0, vec![1, 6400]);
    // FC1 holds 26,218,496 / 50,844,008 = 51.57% of the parameters; conv2 does
    // 415,334,400 / 1,009,945,728 = 41.12% of the MACs (the article's "which layer" answers).
    let r = netstat::report::Report::new(&a);
    assert_eq!(r.headline(), "most parameters: fc1 (linear), 26,218,496 = 51.6% of all\nmost MACs: conv2 (conv2d), 415,334,400 = 41.1% of all");
}

#[test]
fn alexnet_d2l() {
    // d2l.ai AlexNet, 1×224×224, 10 classes (d2l-en alexnet.md, executed): conv1 loses
    // 2·11·11·96 = 23,232 weights and fc3 shrinks to 4096·10 + 10 = 40,970:
    // 50,844,008 − 23,232 − (4,097,000 − 40,970) = 46,764,746 params;
    // MACs 1,009,945,728 − 54·54·96·2·121 − 4096·990 = 938,146,176.
    assert_eq!(totals("specs/alexnet-d2l.yaml"), (46_764_746, 938_146_176));
}

#[test]
fn alexnet_2012() {
    // Caffe bvlc_alexnet (groups 2 on conv2/4/5): params 34,944 + 307,456 + 885,120 + 663,936
    // + 442,624 + 37,752,832 + 16,781,312 + 4,097,000 = 60,965,224; MACs 105,415,200
    // + 223,948,800 + 149,520,384 + 112,140,288 + 74,760,192 + 58,621,952 = 724,406,816.
    assert_eq!(totals("specs/alexnet-2012.yaml"), (60_965_224, 724_406_816));
}

#[test]
fn lenet() {
    // d2l LeNet: params 156 + 2,416 + 48,120 + 10,164 + 850 = 61,706;
    // MACs 28·28·6·25 + 10·10·16·6·25 + 400·120 + 120·84 + 84·10 = 416,520.
    assert_eq!(totals("specs/lenet.yaml"), (61_706, 416_520));
}

#[test]
fn batch_multiplies_macs_and_activations_not_params() {
    let one = analyse("specs/alexnet.yaml", &Overrides::default());
    let ten = analyse("specs/alexnet.yaml", &Overrides { batch: Some(10), ..Default::default() });
    assert_eq!(ten.totals.params, one.totals.params);
    assert_eq!(ten.totals.macs, 10 * one.totals.macs);
    assert_eq!(ten.totals.output_bytes, 10 * one.totals.output_bytes);
    assert_eq!(ten.layers[0].output.0[0], 10);
}

#[test]
fn input_override_reproduces_the_227_layout() {
    // With a 227 input, conv1 (k11 s4 p1) gives ⌊(227 + 2 − 11)/4⌋ + 1 = 55; pool1 gives
    // ⌊(55 − 3)/2⌋ + 1 = 27 and conv2 (k5 p2) keeps 27: the article's 27×27×256 (printed there
    // as "27×27×276", a typo).
    let a = analyse("specs/alexnet.yaml", &Overrides { input: Some(vec![3, 227, 227]), ..Default::default() });
    assert_eq!(row(&a, "conv1").output.0, vec![1, 96, 55, 55]);
    assert_eq!(row(&a, "conv2").output.0, vec![1, 256, 27, 27]);
}

#[test]
fn dtype_override_halves_output_bytes() {
    let f32 = analyse("specs/alexnet.yaml", &Overrides::default());
    let f16 =
        analyse("specs/alexnet.yaml", &Overrides { dtype: Some(netstat::shape::DType::F16), ..Default::default() });
    // conv1 output 96·54·54 = 279,936 elements: 1,119,744 B in f32, 559,872 B in f16.
    assert_eq!(f32.layers[0].output_bytes, 1_119_744);
    assert_eq!(f16.layers[0].output_bytes, 559_872);
}
