//! A counting global allocator: exact live and peak heap bytes of the process.
//!
//! [`Counting`] wraps the system allocator and keeps four relaxed atomics: bytes live now, the
//! peak of live bytes since the last [`reset_peak`], and the number of allocations and bytes
//! ever allocated. Tensors on candle's CPU device are `Vec`s, so every tensor byte passes
//! through here (RSS would not do: glibc reuses freed memory and untouched calloc pages are not
//! resident). The binary installs it in `main.rs`; the library's own unit tests install it too.
//! Without it installed, [`installed`] is false and measure reports no memory columns.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

static LIVE: AtomicU64 = AtomicU64::new(0);
static PEAK: AtomicU64 = AtomicU64::new(0);
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
        if !p.is_null() {
            COUNT.fetch_add(1, Relaxed);
            TOTAL.fetch_add(l.size() as u64, Relaxed);
            grew(l.size() as u64);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() {
            COUNT.fetch_add(1, Relaxed);
            TOTAL.fetch_add(l.size() as u64, Relaxed);
            grew(l.size() as u64);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        LIVE.fetch_sub(l.size() as u64, Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
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

/// Heap bytes live now.
pub fn live() -> u64 {
    LIVE.load(Relaxed)
}

/// The most heap bytes live at once since the last [`reset_peak`].
pub fn peak() -> u64 {
    PEAK.load(Relaxed)
}

/// Start a new peak window: the peak becomes the bytes live now.
pub fn reset_peak() {
    PEAK.store(LIVE.load(Relaxed), Relaxed);
}

/// Allocations (including reallocations) since the process started.
pub fn allocations() -> u64 {
    COUNT.load(Relaxed)
}

/// Whether [`Counting`] is the global allocator of this process (it has seen an allocation).
pub fn installed() -> bool {
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
        assert!(live() >= 8 << 20);
        reset_peak();
        assert!(peak() >= 8 << 20);
        drop(v);
    }
}
