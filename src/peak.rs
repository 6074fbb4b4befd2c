//! `netstat peak`: this machine's peak FP32 FLOP/s and memory bandwidth, measured with two short
//! micro-benchmarks, so that the roofline (`--hardware this-cpu`) can describe the CPU that runs
//! `netstat measure`.
//!
//! - **FMA**: every thread updates 128 independent f32 accumulators `x = x·a + b` in a loop that
//!   the compiler vectorizes to fused multiply-adds (AVX-512F or AVX2+FMA where the CPU has them,
//!   chosen at run time; plain multiply + add otherwise). 128 accumulators cover the FMA units'
//!   latency (2 ports × 4 cycles × 16 lanes). One FMA = 2 FLOPs. Best of 3 runs.
//! - **Copy**: every thread copies its own 64 MiB buffer into another (`memcpy`); bytes counted =
//!   bytes read + bytes written (2 × 64 MiB per thread per copy), as STREAM's Copy does (the
//!   write-allocate read is not counted). Best of 5 copies.
//!
//! Both run on `threads` OS threads at once (default: all available). Numbers vary between runs
//! on a shared machine; they are what the machine reached, not its datasheet peak.

use crate::hardware::Hardware;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Independent accumulators per thread.
const LANES: usize = 128;
/// Bytes each thread copies per pass.
const COPY_BYTES: usize = 64 << 20;

/// What `netstat peak` measured.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Peak {
    /// CPU model from /proc/cpuinfo (`unknown CPU` elsewhere).
    pub cpu_model: String,
    /// Threads used.
    pub threads: u64,
    /// Instruction set of the FMA loop (`avx512f`, `avx2+fma`, `scalar`).
    pub isa: String,
    /// Best FP32 rate, FLOP/s.
    pub fp32_flops_per_s: f64,
    /// Best copy rate, bytes/s (read + written).
    pub memory_bandwidth_bytes_per_s: f64,
    /// Installed memory, bytes (/proc/meminfo MemTotal), 0 where unknown.
    pub memory_bytes: u64,
}

/// Most threads `netstat peak` runs: 4 per available core (more only oversubscribes; a million
/// failed to spawn and a hundred ran out of memory for the copy buffers before).
pub fn max_threads() -> usize {
    4 * std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Run both benchmarks on `threads` threads, each FMA run lasting about `fma_time`.
///
/// Errors: `threads` above [`max_threads`]; no memory for the copy buffers (64 MiB × 2 per thread).
pub fn measure(threads: usize, fma_time: Duration) -> Result<Peak, String> {
    let threads = threads.max(1);
    if threads > max_threads() {
        return Err(format!("--threads: expected at most {} (4 per available core), got {threads}", max_threads()));
    }
    // Allocate the copy buffers first, fallibly: an allocation failure is an error, not an abort.
    let bufs = copy_buffers(threads)?;
    let isa = isa();
    // Calibrate: how many outer iterations take about fma_time on one thread.
    let mut iters = 1_000u64;
    loop {
        let t = time_fma(1, iters, isa);
        if t >= fma_time / 8 || iters > 1 << 40 {
            let scale = fma_time.as_secs_f64() / t.as_secs_f64().max(1e-9);
            iters = ((iters as f64 * scale) as u64).max(1);
            break;
        }
        iters *= 8;
    }
    let flops_per_run = 2.0 * LANES as f64 * iters as f64 * threads as f64;
    let fp32 = (0..3).map(|_| flops_per_run / time_fma(threads, iters, isa).as_secs_f64()).fold(0.0, f64::max);
    let bw = copy_bandwidth(bufs, 5);
    Ok(Peak {
        cpu_model: cpu_model(),
        threads: threads as u64,
        isa: isa.name().to_owned(),
        fp32_flops_per_s: fp32,
        memory_bandwidth_bytes_per_s: bw,
        memory_bytes: mem_total(),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Isa {
    #[cfg(target_arch = "x86_64")]
    Avx512,
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
    Scalar,
}

impl Isa {
    fn name(self) -> &'static str {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => "avx512f",
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => "avx2+fma",
            Isa::Scalar => "scalar",
        }
    }
}

fn isa() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("fma") {
            return Isa::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            return Isa::Avx2Fma;
        }
    }
    Isa::Scalar
}

/// The FMA loop; inlined into each `target_feature` wrapper so it is compiled for that ISA.
#[inline(always)]
fn fma_loop(iters: u64, acc: &mut [f32; LANES], fused: bool) {
    let a = black_box(0.999_999_9f32);
    let b = black_box(1e-7f32);
    for _ in 0..iters {
        if fused {
            for x in acc.iter_mut() {
                *x = x.mul_add(a, b);
            }
        } else {
            for x in acc.iter_mut() {
                *x = *x * a + b;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
fn fma_avx512(iters: u64, acc: &mut [f32; LANES]) {
    fma_loop(iters, acc, true)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn fma_avx2(iters: u64, acc: &mut [f32; LANES]) {
    fma_loop(iters, acc, true)
}

fn run_fma(iters: u64, isa: Isa) -> f32 {
    let mut acc = [1.0f32; LANES];
    for (i, x) in acc.iter_mut().enumerate() {
        *x = black_box(1.0 + i as f32 * 1e-3);
    }
    match isa {
        // SAFETY: the CPU features were detected at run time by `isa()`.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { fma_avx512(iters, &mut acc) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma => unsafe { fma_avx2(iters, &mut acc) },
        Isa::Scalar => fma_loop(iters, &mut acc, false),
    }
    acc.iter().sum()
}

fn time_fma(threads: usize, iters: u64, isa: Isa) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads).map(|_| s.spawn(move || black_box(run_fma(iters, isa)))).collect();
        for h in handles {
            h.join().expect("FMA thread panicked");
        }
    });
    start.elapsed()
}

/// A thread's source and destination buffers.
type CopyPair = (Vec<f32>, Vec<f32>);

/// A source and a destination of [`COPY_BYTES`] per thread, allocated fallibly.
fn copy_buffers(threads: usize) -> Result<Vec<CopyPair>, String> {
    let n = COPY_BYTES / 4;
    let buf = |v: f32| -> Result<Vec<f32>, String> {
        let mut b = Vec::new();
        b.try_reserve_exact(n).map_err(|_| {
            format!("not enough memory for the copy buffers ({} MiB per thread)", (2 * COPY_BYTES) >> 20)
        })?;
        b.resize(n, v);
        Ok(b)
    };
    (0..threads).map(|t| Ok((buf(t as f32 + 1.0)?, buf(0.0)?))).collect()
}

/// Best of `reps` parallel copies (one per buffer pair), bytes (read + written) per second.
fn copy_bandwidth(mut bufs: Vec<CopyPair>, reps: usize) -> f64 {
    let threads = bufs.len();
    // Touch every page first (a fresh calloc'd page is not resident until written).
    for (_, dst) in bufs.iter_mut() {
        dst.fill(1.0);
    }
    let mut best = 0.0f64;
    for _ in 0..reps {
        let start = Instant::now();
        std::thread::scope(|s| {
            for (src, dst) in bufs.iter_mut() {
                s.spawn(move || {
                    dst.copy_from_slice(src);
                    black_box(&dst);
                });
            }
        });
        let secs = start.elapsed().as_secs_f64();
        best = best.max((2 * COPY_BYTES * threads) as f64 / secs);
    }
    best
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn mem_total() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|k| k.parse::<u64>().ok()))
        })
        .map_or(0, |kib| kib.saturating_mul(1024))
}

/// Today's date in UTC, `YYYY-MM-DD` (civil-from-days, Howard Hinnant's algorithm).
pub fn today_utc() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    civil_date(secs / 86_400)
}

fn civil_date(days: u64) -> String {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    format!("{:04}-{:02}-{:02}", if m <= 2 { y + 1 } else { y }, m, d)
}

impl Peak {
    /// The catalog entry for this machine (`name: this-cpu`).
    pub fn to_hardware(&self, date: &str) -> Hardware {
        Hardware {
            name: "this-cpu".into(),
            description: format!("{} ({} threads)", self.cpu_model, self.threads),
            kind: "cpu".into(),
            fp32_flops_per_s: self.fp32_flops_per_s,
            fp16_flops_per_s: None,
            bf16_flops_per_s: None,
            memory_bandwidth_bytes_per_s: self.memory_bandwidth_bytes_per_s,
            memory_bytes: self.memory_bytes,
            source: format!("measured by `netstat peak` ({} FMA loop, memcpy)", self.isa),
            date: Some(date.to_owned()),
            threads: Some(self.threads),
        }
    }

    /// The human report.
    pub fn summary(&self) -> String {
        format!(
            "{}, {} thread(s)\npeak FP32 ({} FMA, 1 FMA = 2 FLOPs): {:.1} GFLOP/s\n\
             memory copy (bytes read + written): {:.1} GB/s\nridge point: {:.1} FLOP/B",
            self.cpu_model,
            self.threads,
            self.isa,
            self.fp32_flops_per_s / 1e9,
            self.memory_bandwidth_bytes_per_s / 1e9,
            self.fp32_flops_per_s / self.memory_bandwidth_bytes_per_s
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        // 1970-01-01 is day 0; 2000-03-01 is day 11,017 (30 years · 365 + 7 leap days + 31 + 29);
        // 2026-11-29 is day 20,786 (56 · 365 + 14 leap days = 20,454, + 332 days of 2026 up to Nov 29).
        assert_eq!(civil_date(0), "1970-01-01");
        assert_eq!(civil_date(11_017), "2000-03-01");
        assert_eq!(civil_date(20_786), "2026-11-29");
    }

    #[test]
    fn the_fma_loop_computes_what_it_claims() {
        // x ← x·a + b from x = 1 + i·1e-3 with a, b near 1 and 0 stays finite, and the vectorized
        // (fused) and scalar loops agree to f32 rounding: the benchmark does real arithmetic.
        let fused = run_fma(1000, isa());
        let plain = run_fma(1000, Isa::Scalar);
        assert!(fused.is_finite() && (fused - plain).abs() < 1e-2 * plain.abs(), "{fused} vs {plain}");
    }
}
