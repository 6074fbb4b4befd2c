//! A counting global allocator: exact live and peak heap bytes of the process.
//!
//! [`Counting`] wraps the system allocator and keeps four relaxed atomics: bytes live now, the
//! peak of live bytes since the last [`reset_peak`], and the number of allocations and bytes
//! ever allocated. Tensors on candle's CPU device are `Vec`s, so every tensor byte passes
//! through here (RSS would not do: glibc reuses freed memory and untouched calloc pages are not
//! resident). The binary installs it in `main.rs`; the library's own unit tests install it too.
//! Without it installed, [`installed`] is false and measure reports no memory columns.
//!
//! Counting is off until measure asks for it ([`installed`] or [`reset_peak`] turn it on): the
//! atomics cost every other command about 16% of its time (perf, a 100,000-layer analysis).
//! Live bytes start at an offset ([`BASE`]), so memory allocated before counting began and freed
//! after never takes the counter below zero; only differences of [`live`] and [`peak`] mean bytes.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// The counter's value before anything was counted: live bytes are read as differences.
pub const BASE: u64 = 1 << 62;

/// Off in the binary until measure asks; on from the start in the library's unit tests, whose
/// threads allocate and free concurrently (a window opened later could see frees of memory
/// allocated before it, and live bytes below what a test holds).
static ON: AtomicBool = AtomicBool::new(cfg!(test));
static LIVE: AtomicU64 = AtomicU64::new(BASE);
static PEAK: AtomicU64 = AtomicU64::new(BASE);
static COUNT: AtomicU64 = AtomicU64::new(0);
static TOTAL: AtomicU64 = AtomicU64::new(0);

/// The counting allocator: `#[global_allocator] static A: Counting = Counting;`.
pub struct Counting;

#[inline]
fn grew(n: u64) {
    let now = LIVE.fetch_add(n, Relaxed) + n;
    PEAK.fetch_max(now, Relaxed);
}

// SAFETY: every call is forwarded unchanged to `System`; only counters are updated.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() && ON.load(Relaxed) {
            COUNT.fetch_add(1, Relaxed);
            TOTAL.fetch_add(l.size() as u64, Relaxed);
            grew(l.size() as u64);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() && ON.load(Relaxed) {
            COUNT.fetch_add(1, Relaxed);
            TOTAL.fetch_add(l.size() as u64, Relaxed);
            grew(l.size() as u64);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        if ON.load(Relaxed) {
            LIVE.fetch_sub(l.size() as u64, Relaxed);
        }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() && ON.load(Relaxed) {
            COUNT.fetch_add(1, Relaxed);
            let old = l.size() as u64;
            let new = new as u64;
            if new >= old {
                TOTAL.fetch_add(new - old, Relaxed);
                grew(new - old);
            } else {
                LIVE.fetch_sub(old - new, Relaxed);
            }
        }
        q
    }
}

/// Heap bytes live now, plus [`BASE`]: subtract two readings for the bytes between them.
pub fn live() -> u64 {
    LIVE.load(Relaxed)
}

/// The most heap bytes live at once since the last [`reset_peak`], plus [`BASE`] (compare it
/// with [`live`]).
pub fn peak() -> u64 {
    PEAK.load(Relaxed)
}

/// Start a new peak window: the peak becomes the bytes live now (counting turns on).
pub fn reset_peak() {
    ON.store(true, Relaxed);
    PEAK.store(LIVE.load(Relaxed), Relaxed);
}

/// Allocations (including reallocations) since the process started.
pub fn allocations() -> u64 {
    COUNT.load(Relaxed)
}

/// Whether [`Counting`] is the global allocator of this process (it has seen an allocation);
/// counting turns on.
pub fn installed() -> bool {
    ON.store(true, Relaxed);
    let b = std::hint::black_box(Box::new(0u64));
    drop(b);
    COUNT.load(Relaxed) > 0
}

#[cfg(test)]
#[global_allocator]
static TEST_ALLOC: Counting = Counting;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_a_vec_exactly() {
        assert!(installed());
        // Other test threads allocate, free and reset the peak concurrently (measure tests), so
        // only what holds whatever they do: while our 8 MiB = 8,388,608 bytes are alive, live
        // and peak (a reset sets it to live) are at least that.
        let v = std::hint::black_box(vec![1u8; 8 << 20]);
        assert!(live() >= BASE + (8 << 20));
        reset_peak();
        assert!(peak() >= BASE + (8 << 20));
        drop(v);
    }
}
