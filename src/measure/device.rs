//! Where `netstat measure` runs — the CPU (default) or, in a build with the `cuda` feature, a
//! CUDA device — and how bytes are counted and clocks are read there.
//!
//! - CPU: bytes from the counting global allocator ([`super::alloc`]); clocks read directly.
//! - CUDA: bytes from the device's default memory pool (`USED_MEM_CURRENT` and `USED_MEM_HIGH`,
//!   reset per layer and per stage: exact tensor bytes; `crate::gpu::cuda::PoolProbe` in `cuda` builds); every
//!   reading synchronises the stream first, so a clock read after [`Meter::sync`] times the
//!   device's work, not the asynchronous launch. NVML's per-process figure is read beside it
//!   (context, modules, library workspaces and the pool's reservation).
//!
//! The default build never links CUDA, so `--device cuda:N` there is refused with exit code 2
//! and a message saying how to build with CUDA (shared/CANDLE_NOTES.md: a cuda-enabled
//! binary does not start on a machine without the NVIDIA driver).

use super::result::GpuRun;
use candle_core::Device;
use std::cell::RefCell;
use std::fmt;

/// A device named by `--device`: `cpu`, `cuda` (= `cuda:0`) or `cuda:N` (CUDA ordinal N).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Target {
    /// The host CPU (candle's CPU backend, all threads).
    #[default]
    Cpu,
    /// CUDA device with this ordinal.
    Cuda(usize),
}

impl std::str::FromStr for Target {
    type Err = String;
    /// Errors: anything but `cpu`, `cuda` and `cuda:N` with N a non-negative integer.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cpu" => Ok(Target::Cpu),
            "cuda" => Ok(Target::Cuda(0)),
            _ => match s.strip_prefix("cuda:") {
                Some(n) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => n
                    .parse::<usize>()
                    .map(Target::Cuda)
                    .map_err(|_| format!("unknown device `{s}`: the CUDA ordinal is too large")),
                _ => Err(format!("unknown device `{s}`: expected cpu, cuda or cuda:N (N = 0, 1, …)")),
            },
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Cpu => f.write_str("cpu"),
            Target::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// The device cannot be used: not compiled in, not present, or failing to initialise
/// (exit code 2, like a bad argument).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadDevice(pub String);

/// Counts bytes and synchronises on the device of a run.
///
/// Readings never fail: a failing CUDA call is remembered and reported by [`Meter::check`]
/// after the pass, and the reading is 0.
pub struct Meter {
    kind: Kind,
    failed: RefCell<Option<String>>,
}

enum Kind {
    Cpu,
    #[cfg(feature = "cuda")]
    Cuda(crate::gpu::cuda::PoolProbe),
}

impl Meter {
    /// The CPU meter: the counting allocator's figures.
    pub fn cpu() -> Meter {
        Meter { kind: Kind::Cpu, failed: RefCell::new(None) }
    }

    /// Whether the figures are real: on the CPU, only when the counting allocator is installed
    /// (the `netstat` binary installs it); the CUDA pool always counts.
    pub fn counted(&self) -> bool {
        match &self.kind {
            Kind::Cpu => super::alloc::installed(),
            #[cfg(feature = "cuda")]
            Kind::Cuda(_) => true,
        }
    }

    /// Bytes live now (host heap, or device pool allocations).
    pub fn live(&self) -> u64 {
        match &self.kind {
            Kind::Cpu => super::alloc::live(),
            #[cfg(feature = "cuda")]
            Kind::Cuda(p) => self.ok(p.read()).map_or(0, |r| r.used_bytes),
        }
    }

    /// Highest [`live`](Meter::live) since the last [`reset_peak`](Meter::reset_peak).
    pub fn peak(&self) -> u64 {
        match &self.kind {
            Kind::Cpu => super::alloc::peak(),
            #[cfg(feature = "cuda")]
            Kind::Cuda(p) => self.ok(p.read()).map_or(0, |r| r.used_high_bytes),
        }
    }

    /// Restart the peak at the bytes live now.
    pub fn reset_peak(&self) {
        match &self.kind {
            Kind::Cpu => super::alloc::reset_peak(),
            #[cfg(feature = "cuda")]
            Kind::Cuda(p) => {
                self.ok(p.reset());
            }
        }
    }

    /// Wait for the device to finish the work queued so far (no-op on the CPU).
    pub fn sync(&self) {
        match &self.kind {
            Kind::Cpu => {}
            #[cfg(feature = "cuda")]
            Kind::Cuda(p) => {
                self.ok(p.read());
            }
        }
    }

    /// Bytes the device pool holds from the driver now (`RESERVED_MEM_CURRENT`); `None` on the CPU.
    pub fn reserved(&self) -> Option<u64> {
        match &self.kind {
            Kind::Cpu => None,
            #[cfg(feature = "cuda")]
            Kind::Cuda(p) => self.ok(p.read()).map(|r| r.reserved_bytes),
        }
    }

    /// The first device error met by a reading, if any.
    pub fn check(&self) -> anyhow::Result<()> {
        match self.failed.borrow_mut().take() {
            Some(e) => Err(anyhow::anyhow!("reading the CUDA memory pool: {e}")),
            None => Ok(()),
        }
    }

    #[cfg(feature = "cuda")]
    fn ok<T, E: fmt::Display>(&self, r: Result<T, E>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.failed.borrow_mut().get_or_insert_with(|| e.to_string());
                None
            }
        }
    }
}

impl GpuRun {
    /// NVML's per-process bytes on this device now, if NVML lists this process.
    pub fn nvml_process_bytes(&self) -> Option<u64> {
        crate::gpu::process_used_bytes(self.nvml_index?, std::process::id())
    }

    /// NVML's figures now: this process, and the whole device.
    pub fn nvml_bytes(&self) -> super::result::NvmlBytes {
        let (process_bytes, device_used_bytes) =
            self.nvml_index.map_or((None, None), |i| crate::gpu::memory_used(i, std::process::id()));
        super::result::NvmlBytes { process_bytes, device_used_bytes }
    }
}

/// An opened device: candle's handle, its meter and (on CUDA) what the driver and NVML say.
pub struct Opened {
    /// candle's device.
    pub device: Device,
    /// Byte counter and synchroniser.
    pub meter: Meter,
    /// The GPU, on CUDA.
    pub gpu: Option<GpuRun>,
}

/// Open `target`.
///
/// Errors ([`BadDevice`]): `cuda:N` in a build without the `cuda` feature; no CUDA device N; a
/// driver or memory-pool call failing.
pub fn open(target: Target) -> Result<Opened, BadDevice> {
    match target {
        Target::Cpu => Ok(Opened { device: Device::Cpu, meter: Meter::cpu(), gpu: None }),
        Target::Cuda(n) => open_cuda(n),
    }
}

#[cfg(not(feature = "cuda"))]
fn open_cuda(n: usize) -> Result<Opened, BadDevice> {
    Err(BadDevice(format!(
        "--device cuda:{n}: this netstat was built without CUDA and measures on the CPU only; \
         build it with `cargo build --release --features cuda` (needs nvcc; README.md, \"Building with CUDA\") \
         on a machine with an NVIDIA driver"
    )))
}

#[cfg(feature = "cuda")]
fn open_cuda(n: usize) -> Result<Opened, BadDevice> {
    let bad = |what: &str, e: &dyn fmt::Display| BadDevice(format!("cuda:{n}: {what}: {e}"));
    let device = Device::new_cuda(n).map_err(|e| bad("cannot open the device", &e))?;
    let cuda = match &device {
        Device::Cuda(c) => c.clone(),
        _ => return Err(BadDevice(format!("cuda:{n}: candle did not return a CUDA device"))),
    };
    let stream = cuda.cuda_stream();
    let ctx = stream.context();
    let name = ctx.name().map_err(|e| bad("device name", &e))?;
    let (major, minor) = ctx.compute_capability().map_err(|e| bad("compute capability", &e))?;
    let (free, total) = ctx.mem_get_info().map_err(|e| bad("memory info", &e))?;
    let uuid = ctx.uuid().map_err(|e| bad("device UUID", &e))?;
    let probe = crate::gpu::cuda::PoolProbe::new(&cuda).map_err(|e| bad("default memory pool", &e))?;
    let nvml_uuid = crate::gpu::nvml_uuid(&uuid.bytes.map(|b| b as u8));
    let (nvml, nvml_index, clocks) = match crate::gpu::query() {
        crate::gpu::Nvml::Unavailable { reason } => (format!("NVML unavailable: {reason}"), None, None),
        crate::gpu::Nvml::Available { driver_version, cuda_driver_version, devices } => {
            let idx = crate::gpu::index_of_uuid(&nvml_uuid);
            let d = idx.and_then(|i| devices.into_iter().find(|d| d.index == i));
            (
                format!(
                    "driver {driver_version}{}",
                    cuda_driver_version.map(|c| format!(" (CUDA {c})")).unwrap_or_default()
                ),
                idx,
                d.map(|d| (d.sm_clock_mhz, d.sm_clock_max_mhz, d.memory_clock_mhz)),
            )
        }
    };
    let mut gpu = GpuRun {
        device: format!("cuda:{n}"),
        name,
        compute_capability: format!("{major}.{minor}"),
        memory_total_bytes: total as u64,
        memory_free_bytes: free as u64,
        nvml,
        nvml_index,
        sm_clock_mhz: clocks.and_then(|c| c.0),
        sm_clock_max_mhz: clocks.and_then(|c| c.1),
        memory_clock_mhz: clocks.and_then(|c| c.2),
        context_bytes: None,
    };
    gpu.context_bytes = gpu.nvml_process_bytes();
    Ok(Opened { device, meter: Meter { kind: Kind::Cuda(probe), failed: RefCell::new(None) }, gpu: Some(gpu) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_parse_and_print() {
        assert_eq!("cpu".parse::<Target>(), Ok(Target::Cpu));
        assert_eq!("cuda".parse::<Target>(), Ok(Target::Cuda(0)));
        assert_eq!("cuda:3".parse::<Target>(), Ok(Target::Cuda(3)));
        assert_eq!(Target::Cuda(3).to_string(), "cuda:3");
        assert_eq!(Target::Cpu.to_string(), "cpu");
        for bad in ["gpu", "cuda:", "cuda:-1", "cuda:x", "cuda:+1", "CPU", "", "metal"] {
            let e = bad.parse::<Target>().unwrap_err();
            assert!(e.starts_with(&format!("unknown device `{bad}`")), "{bad}: {e}");
        }
        let e = "cuda:99999999999999999999999".parse::<Target>().unwrap_err();
        assert!(e.contains("too large"), "{e}");
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_in_a_cpu_build_says_how_to_build_with_cuda() {
        let e = open(Target::Cuda(0)).err().expect("a CPU-only build cannot open cuda:0");
        assert!(e.0.starts_with("--device cuda:0: this netstat was built without CUDA"), "{e}");
        assert!(e.0.contains("--features cuda"), "{e}");
    }

    #[test]
    fn the_cpu_meter_follows_the_allocator() {
        let m = Meter::cpu();
        assert_eq!(m.counted(), super::super::alloc::installed());
        m.sync();
        assert_eq!(m.reserved(), None);
        assert!(m.check().is_ok());
    }
}
