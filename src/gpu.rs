//! GPU facts: what NVML says about the devices (every build), and — with the `cuda` feature —
//! the CUDA memory-pool probe that `netstat measure --device cuda:N` uses (it times layers by
//! synchronising the stream, through the same probe).
//!
//! NVML (`libnvidia-ml.so`, shipped with the NVIDIA driver) is loaded at run time by nvml-wrapper:
//! where it cannot be loaded (no driver, no GPU) [`query`] returns [`Nvml::Unavailable`] with
//! the reason, and reports say "NVML unavailable"; nothing panics. The default build never links
//! CUDA, so it starts on any machine.
//!
//! What each memory figure means (shared/CANDLE_NOTES.md, "CUDA build and GPU memory"):
//! - NVML device figures (`memory_used_bytes`): everything on the device, every process.
//! - NVML per-process figure ([`process_used_bytes`]): this process's CUDA context, loaded
//!   modules, cuBLAS workspace and the memory pool's reservation; lags frees.
//! - The default memory pool's `USED_MEM_HIGH` (`cuda::PoolProbe`, in builds with the `cuda` feature): bytes of live tensor
//!   allocations at their peak since the last reset, exactly — candle (cudarc) allocates with
//!   `cuMemAllocAsync` from that pool.

use nvml_wrapper::enum_wrappers::device::Clock;
use nvml_wrapper::enums::device::UsedGpuMemory;
use serde::Serialize;
use std::fmt;

/// One GPU as NVML describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GpuInfo {
    /// NVML index.
    pub index: u32,
    /// Marketing name (`NVIDIA H200`).
    pub name: String,
    /// Compute capability `major.minor` (`9.0`), if NVML knows it.
    pub compute_capability: Option<String>,
    /// Total memory, bytes.
    pub memory_total_bytes: u64,
    /// Memory in use on the device by all processes, bytes.
    pub memory_used_bytes: u64,
    /// SM clock now, MHz.
    pub sm_clock_mhz: Option<u32>,
    /// Maximum SM clock, MHz.
    pub sm_clock_max_mhz: Option<u32>,
    /// Memory clock now, MHz.
    pub memory_clock_mhz: Option<u32>,
}

/// What NVML reported: the driver and its devices, or why NVML could not be used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "nvml", rename_all = "snake_case")]
pub enum Nvml {
    /// NVML loaded.
    Available {
        /// Driver version (`550.54.15`).
        driver_version: String,
        /// CUDA version the driver supports, `major.minor`.
        cuda_driver_version: Option<String>,
        /// The devices.
        devices: Vec<GpuInfo>,
    },
    /// NVML could not be loaded or initialised: the reason.
    Unavailable {
        /// nvml-wrapper's error, e.g. "a libloading error occurred: …libnvidia-ml.so…".
        reason: String,
    },
}

impl fmt::Display for Nvml {
    /// `NVML unavailable: REASON`, or one line for the driver and one per device.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Nvml::Unavailable { reason } => write!(f, "NVML unavailable: {reason}"),
            Nvml::Available { driver_version, cuda_driver_version, devices } => {
                write!(f, "driver {driver_version}")?;
                if let Some(c) = cuda_driver_version {
                    write!(f, " (CUDA {c})")?;
                }
                write!(f, ", {} device(s)", devices.len())?;
                for d in devices {
                    write!(
                        f,
                        "\ncuda:{} {}{}: memory {} MiB total, {} MiB used; SM clock {} MHz (max {}), memory clock {} MHz",
                        d.index,
                        d.name,
                        d.compute_capability.as_ref().map(|c| format!(" (sm {c})")).unwrap_or_default(),
                        d.memory_total_bytes >> 20,
                        d.memory_used_bytes >> 20,
                        opt(d.sm_clock_mhz),
                        opt(d.sm_clock_max_mhz),
                        opt(d.memory_clock_mhz)
                    )?;
                }
                Ok(())
            }
        }
    }
}

fn opt(v: Option<u32>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "?".into())
}

/// Environment variable naming the NVML library to load instead of the driver's
/// `libnvidia-ml.so` (for tests: a path that does not exist simulates a missing NVML, even on
/// a machine with a GPU). Empty counts as unset.
pub const NVML_LIB_ENV: &str = "NETSTAT_NVML_LIB";

/// Load NVML: the library named by [`NVML_LIB_ENV`] if set, else the driver's.
fn init_nvml() -> Result<nvml_wrapper::Nvml, nvml_wrapper::error::NvmlError> {
    match std::env::var_os(NVML_LIB_ENV).filter(|p| !p.is_empty()) {
        Some(path) => nvml_wrapper::Nvml::builder().lib_path(&path).init(),
        None => nvml_wrapper::Nvml::init(),
    }
}

/// Ask NVML about the driver and every device. Never panics: where the NVML library is missing
/// (no driver) or fails, returns [`Nvml::Unavailable`] with the reason.
pub fn query() -> Nvml {
    let nvml = match init_nvml() {
        Ok(n) => n,
        Err(e) => return Nvml::Unavailable { reason: e.to_string() },
    };
    let driver_version = match nvml.sys_driver_version() {
        Ok(v) => v,
        Err(e) => return Nvml::Unavailable { reason: format!("driver version: {e}") },
    };
    let cuda_driver_version = nvml.sys_cuda_driver_version().ok().map(|v| format!("{}.{}", v / 1000, (v % 1000) / 10));
    let count = match nvml.device_count() {
        Ok(c) => c,
        Err(e) => return Nvml::Unavailable { reason: format!("device count: {e}") },
    };
    let mut devices = Vec::new();
    for index in 0..count {
        let Ok(d) = nvml.device_by_index(index) else { continue };
        let mem = d.memory_info().ok();
        devices.push(GpuInfo {
            index,
            name: d.name().unwrap_or_else(|e| format!("? ({e})")),
            compute_capability: d.cuda_compute_capability().ok().map(|c| format!("{}.{}", c.major, c.minor)),
            memory_total_bytes: mem.as_ref().map_or(0, |m| m.total),
            memory_used_bytes: mem.as_ref().map_or(0, |m| m.used),
            sm_clock_mhz: d.clock_info(Clock::SM).ok(),
            sm_clock_max_mhz: d.max_clock_info(Clock::SM).ok(),
            memory_clock_mhz: d.clock_info(Clock::Memory).ok(),
        });
    }
    Nvml::Available { driver_version, cuda_driver_version, devices }
}

/// GPU memory NVML attributes to process `pid` on device `index`, bytes: its CUDA context,
/// modules, library workspaces and pool reservation. `None` where NVML is unavailable or does
/// not list the process.
pub fn process_used_bytes(index: u32, pid: u32) -> Option<u64> {
    memory_used(index, pid).0
}

/// NVML's memory figures for device `index`, with one load of NVML: the bytes of process `pid`
/// (as [`process_used_bytes`]) and the bytes in use on the device by all processes
/// (`memory_info().used`). Each `None` where NVML cannot tell.
pub fn memory_used(index: u32, pid: u32) -> (Option<u64>, Option<u64>) {
    let Ok(nvml) = init_nvml() else { return (None, None) };
    let Ok(d) = nvml.device_by_index(index) else { return (None, None) };
    let process = d.running_compute_processes().ok().and_then(|ps| {
        ps.into_iter().find(|p| p.pid == pid).and_then(|p| match p.used_gpu_memory {
            UsedGpuMemory::Used(b) => Some(b),
            UsedGpuMemory::Unavailable => None,
        })
    });
    (process, d.memory_info().ok().map(|m| m.used))
}

/// NVML's spelling of a device UUID from the CUDA driver's 16 bytes (`cuDeviceGetUuid`):
/// `GPU-` and the bytes in hex, grouped 8-4-4-4-12.
pub fn nvml_uuid(bytes: &[u8; 16]) -> String {
    let h: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("GPU-{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// NVML index of the device with this UUID (NVML spelling, [`nvml_uuid`]): CUDA ordinals and
/// NVML indices differ under `CUDA_VISIBLE_DEVICES` or the default fastest-first order, so
/// devices are matched by UUID. `None` where NVML is unavailable or knows no such device.
pub fn index_of_uuid(uuid: &str) -> Option<u32> {
    let nvml = init_nvml().ok()?;
    nvml.device_by_uuid(uuid).ok()?.index().ok()
}

/// CUDA-only probes, written against candle's re-export of cudarc (candle 0.11, cudarc 0.19).
#[cfg(feature = "cuda")]
pub mod cuda {
    use candle_core::cuda_backend::cudarc::driver::{sys, CudaStream, DriverError};
    use std::sync::Arc;

    /// The device's default memory pool, from which cudarc's `cuMemAllocAsync` allocates.
    ///
    /// `USED_MEM_HIGH` is the peak of bytes in live allocations since the last [`reset`]
    /// (exact tensor bytes, rounded up by the pool's granularity); `RESERVED_MEM_HIGH` the peak
    /// the pool held from the driver. Read after synchronising the stream.
    ///
    /// [`reset`]: PoolProbe::reset
    pub struct PoolProbe {
        pool: sys::CUmemoryPool,
        stream: Arc<CudaStream>,
    }

    impl PoolProbe {
        /// The default pool of `device` (`cuDeviceGetDefaultMemPool`).
        pub fn new(device: &candle_core::CudaDevice) -> Result<Self, DriverError> {
            let stream = device.cuda_stream();
            let ctx = stream.context();
            ctx.bind_to_thread()?;
            let mut pool: sys::CUmemoryPool = std::ptr::null_mut();
            // SAFETY: `pool` is a valid out-pointer; the device handle comes from a live context.
            unsafe { sys::cuDeviceGetDefaultMemPool(&mut pool, ctx.cu_device()) }.result()?;
            Ok(PoolProbe { pool, stream })
        }

        fn get(&self, attr: sys::CUmemPool_attribute) -> Result<u64, DriverError> {
            self.stream.context().bind_to_thread()?;
            let mut v: u64 = 0;
            // SAFETY: the four *_MEM_* attributes are cuuint64_t; `v` outlives the call.
            unsafe { sys::cuMemPoolGetAttribute(self.pool, attr, &mut v as *mut u64 as *mut std::ffi::c_void) }
                .result()?;
            Ok(v)
        }

        fn zero(&self, attr: sys::CUmemPool_attribute) -> Result<(), DriverError> {
            self.stream.context().bind_to_thread()?;
            let mut v: u64 = 0;
            // SAFETY: as in `get`; the driver accepts only 0 for the *_HIGH attributes (a reset).
            unsafe { sys::cuMemPoolSetAttribute(self.pool, attr, &mut v as *mut u64 as *mut std::ffi::c_void) }.result()
        }

        /// Synchronise the stream, then reset both high-water marks to the current values.
        pub fn reset(&self) -> Result<(), DriverError> {
            self.stream.synchronize()?;
            self.zero(sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH)?;
            self.zero(sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH)
        }

        /// Synchronise, then read the pool's figures.
        pub fn read(&self) -> Result<PoolReading, DriverError> {
            use sys::CUmemPool_attribute as A;
            self.stream.synchronize()?;
            Ok(PoolReading {
                used_bytes: self.get(A::CU_MEMPOOL_ATTR_USED_MEM_CURRENT)?,
                used_high_bytes: self.get(A::CU_MEMPOOL_ATTR_USED_MEM_HIGH)?,
                reserved_bytes: self.get(A::CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT)?,
                reserved_high_bytes: self.get(A::CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH)?,
            })
        }
    }

    /// One reading of the default pool, bytes.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
    pub struct PoolReading {
        /// Bytes in live allocations now.
        pub used_bytes: u64,
        /// Peak of `used_bytes` since the last reset: the tensor peak.
        pub used_high_bytes: u64,
        /// Bytes the pool holds from the driver now.
        pub reserved_bytes: u64,
        /// Peak of `reserved_bytes` since the last reset.
        pub reserved_high_bytes: u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_driver_nvml_is_reported_unavailable() {
        // Where no NVIDIA driver is installed (no /dev/nvidiactl, as on CI and dev machines here)
        // NVML cannot load: query must say so, not panic.
        if std::path::Path::new("/dev/nvidiactl").exists() {
            eprintln!("NVIDIA driver present: the unavailable path is not reachable here");
            return;
        }
        let n = query();
        assert!(matches!(n, Nvml::Unavailable { .. }), "{n:?}");
        assert!(n.to_string().starts_with("NVML unavailable: "), "{n}");
        assert_eq!(process_used_bytes(0, std::process::id()), None);
        assert_eq!(memory_used(0, std::process::id()), (None, None));
    }

    #[test]
    fn uuids_are_spelled_as_nvml_spells_them() {
        // 16 bytes 0x00, 0x11, …, 0xff → the 32 hex digits in 8-4-4-4-12 groups, as
        // `nvidia-smi -L` prints them (GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx).
        let b: [u8; 16] = std::array::from_fn(|i| (i as u8) * 0x11);
        assert_eq!(nvml_uuid(&b), "GPU-00112233-4455-6677-8899-aabbccddeeff");
        if !std::path::Path::new("/dev/nvidiactl").exists() {
            assert_eq!(index_of_uuid(&nvml_uuid(&b)), None);
        }
    }

    #[test]
    fn display_and_json_of_both_cases() {
        let u = Nvml::Unavailable { reason: "libnvidia-ml.so: cannot open".into() };
        assert_eq!(u.to_string(), "NVML unavailable: libnvidia-ml.so: cannot open");
        assert_eq!(
            serde_json::to_string(&u).unwrap(),
            r#"{"nvml":"unavailable","reason":"libnvidia-ml.so: cannot open"}"#
        );
        let a = Nvml::Available {
            driver_version: "550.54.15".into(),
            cuda_driver_version: Some("12.4".into()),
            devices: vec![GpuInfo {
                index: 0,
                name: "NVIDIA H200".into(),
                compute_capability: Some("9.0".into()),
                memory_total_bytes: 143_771 << 20,
                memory_used_bytes: 1 << 20,
                sm_clock_mhz: Some(1980),
                sm_clock_max_mhz: Some(1980),
                memory_clock_mhz: None,
            }],
        };
        assert_eq!(
            a.to_string(),
            "driver 550.54.15 (CUDA 12.4), 1 device(s)\ncuda:0 NVIDIA H200 (sm 9.0): memory 143771 MiB total, \
             1 MiB used; SM clock 1980 MHz (max 1980), memory clock ? MHz"
        );
    }
}
