//! Ctrl-C, SIGTERM or SIGHUP while a report is being written: remove the temporary file, then
//! exit.
//!
//! [`super::write_atomic`] writes to a hidden temporary file and renames it into place, so the
//! destination is always either the old file or the complete new one. A signal kills the process
//! without running destructors, which would leave the temporary file behind; [`install`] sets a
//! handler (the `ctrlc` crate with its `termination` feature: SIGINT, SIGTERM — what `timeout`,
//! `kill` and CI cancellation send — and SIGHUP) that deletes the registered temporary file and
//! exits with code 130 (128 + SIGINT, the shell convention).
//!
//! One lock orders the two threads: a temporary file is created and registered under the lock
//! ([`create`]), renamed and unregistered under it ([`finish`]), and the handler takes the lock,
//! marks the process as interrupted, removes what is registered and exits while still holding
//! it. So no temporary file can appear between the handler's cleanup and the exit (the race that
//! left `.netstat-XXXXXX` files behind when `report` moved on to its next file), and none is
//! created after an interrupt.

use std::path::PathBuf;
use std::sync::Mutex;

#[derive(Default)]
struct State {
    /// The temporary file being written, if any.
    pending: Option<PathBuf>,
    /// A signal arrived: create nothing more.
    interrupted: bool,
}

static STATE: Mutex<State> = Mutex::new(State { pending: None, interrupted: false });

/// Exit code after a signal: 128 + SIGINT (2).
pub const EXIT_INTERRUPTED: i32 = 130;

fn lock() -> std::sync::MutexGuard<'static, State> {
    // A poisoned lock still holds a usable state.
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Install the signal handler (once, from `main`). Errors if a handler is already set.
pub fn install() -> Result<(), String> {
    ctrlc::set_handler(|| {
        let mut st = lock();
        st.interrupted = true;
        if let Some(p) = st.pending.take() {
            let _ = std::fs::remove_file(p);
        }
        // Exit with the lock held: the main thread cannot create another file meanwhile.
        std::process::exit(EXIT_INTERRUPTED);
    })
    .map_err(|e| format!("cannot install the signal handler: {e}"))
}

/// Create a temporary file with `make` and register its path, under the lock. After a signal,
/// creates nothing (the handler is exiting the process).
pub fn create<T>(make: impl FnOnce() -> std::io::Result<T>, path_of: impl Fn(&T) -> PathBuf) -> std::io::Result<T> {
    let mut st = lock();
    if st.interrupted {
        return Err(std::io::Error::new(std::io::ErrorKind::Interrupted, "interrupted"));
    }
    let t = make()?;
    st.pending = Some(path_of(&t));
    Ok(t)
}

/// Run `done` (the rename, or the removal) and unregister the temporary file, under the lock.
pub fn finish<R>(done: impl FnOnce() -> R) -> R {
    let mut st = lock();
    let r = done();
    st.pending = None;
    r
}
