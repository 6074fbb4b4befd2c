//! Overhead of `netstat measure`'s bookkeeping over a bare candle loop (scripted bench,
//! `cargo bench --bench measure_overhead`).
//!
//! Bare: the same built modules called in order, each value dropped after its last reader (the
//! same liveness frees, so both loops allocate alike), no probe, no shape check.
//! Measured: `Net::forward` with the per-layer probe measure uses (clock and allocator reads
//! around each layer, shape check, liveness frees). Alternating runs of each, medians compared.
//! Both run under the counting allocator (one relaxed atomic add and a max per allocation,
//! ~3k allocations per AlexNet forward). Spec and batch: NETSTAT_BENCH_SPEC (default
//! specs/alexnet.yaml), NETSTAT_BENCH_BATCH (default 8), NETSTAT_BENCH_REPS (default 15).

use netstat::candle::build::Pass;
use netstat::measure::net::{Net, Probe, Slot};
use std::time::Instant;

#[global_allocator]
static ALLOC: netstat::measure::alloc::Counting = netstat::measure::alloc::Counting;

/// The probe measure installs: clock and allocator readings around each layer.
struct Timer {
    t0: Option<Instant>,
    ms: Vec<f64>,
    peak: Vec<u64>,
}
impl Probe for Timer {
    fn before(&mut self, _pos: usize) {
        netstat::measure::alloc::reset_peak();
        self.t0 = Some(Instant::now());
    }
    fn after(&mut self, pos: usize) {
        self.ms[pos] = self.t0.take().unwrap().elapsed().as_secs_f64() * 1e3;
        self.peak[pos] = netstat::measure::alloc::peak();
    }
}

fn bare(net: &Net, x: &candle_core::Tensor, pass: Pass) -> candle_core::Tensor {
    let mut vals: Vec<Option<candle_core::Tensor>> = Vec::with_capacity(net.layers.len());
    for l in &net.layers {
        let xs: Vec<candle_core::Tensor> = l
            .inputs
            .iter()
            .map(|s| match *s {
                Slot::Input => x.clone(),
                Slot::At(p) => vals[p].clone().unwrap(),
            })
            .collect();
        vals.push(Some(l.module.forward(&xs, pass).unwrap()));
        for s in &l.frees {
            if let Slot::At(p) = *s {
                vals[p] = None;
            }
        }
    }
    vals.pop().flatten().unwrap()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let spec = std::env::var("NETSTAT_BENCH_SPEC").unwrap_or_else(|_| "specs/alexnet.yaml".into());
    let batch: u64 = std::env::var("NETSTAT_BENCH_BATCH").ok().and_then(|v| v.parse().ok()).unwrap_or(8);
    let reps: usize = std::env::var("NETSTAT_BENCH_REPS").ok().and_then(|v| v.parse().ok()).unwrap_or(15);
    let a = netstat::analyze_file(&spec, &netstat::analysis::Overrides { batch: Some(batch), ..Default::default() })
        .expect("spec analyses");
    let net = Net::build(&a, candle_core::DType::F32, &candle_core::Device::Cpu, 0, false).expect("builds");
    let x = net.random_input(0).unwrap();
    let pass = Pass { train: false, step: 0 };
    for _ in 0..3 {
        drop(bare(&net, &x, pass));
    }
    let n = net.layers.len();
    let (mut b, mut m) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        let t = Instant::now();
        drop(bare(&net, &x, pass));
        b.push(t.elapsed().as_secs_f64() * 1e3);
        let mut probe = Timer { t0: None, ms: vec![0.0; n], peak: vec![0; n] };
        let t = Instant::now();
        drop(net.forward(x.clone(), pass, &mut probe).unwrap());
        m.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let (mb, mm) = (median(&mut b), median(&mut m));
    println!(
        "{spec} batch {batch}, {reps} alternating reps: bare candle loop median {mb:.2} ms, measure's loop {mm:.2} ms, overhead {:+.2}%",
        100.0 * (mm - mb) / mb
    );
}
