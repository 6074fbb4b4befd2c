//! Ctrl-C while a report is being written: remove the temporary file, then exit.
//!
//! [`super::write_atomic`] writes to a hidden temporary file and renames it into place, so the
//! destination is always either the old file or the complete new one. A SIGINT kills the process
//! without running destructors, which would leave the temporary file behind; [`install`] sets a
//! handler (the `ctrlc` crate) that deletes the temporary file registered by [`guard`] and exits
//! with code 130 (128 + SIGINT, the shell convention).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The temporary file being written, if any.
static PENDING: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Exit code after Ctrl-C: 128 + SIGINT (2).
pub const EXIT_INTERRUPTED: i32 = 130;

/// Install the Ctrl-C handler (once, from `main`). Errors if a handler is already set.
pub fn install() -> Result<(), String> {
    ctrlc::set_handler(|| {
        // The lock is only ever held for a push or a take, never across I/O, so this waits at
        // most a moment; a poisoned lock still holds a usable path.
        let pending = PENDING.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(p) = pending {
            let _ = std::fs::remove_file(p);
        }
        std::process::exit(EXIT_INTERRUPTED);
    })
    .map_err(|e| format!("cannot install the Ctrl-C handler: {e}"))
}

/// While the returned guard lives, a Ctrl-C removes `tmp` before exiting.
pub fn guard(tmp: &Path) -> Guard {
    *PENDING.lock().unwrap_or_else(|e| e.into_inner()) = Some(tmp.to_owned());
    Guard(())
}

/// Unregisters the temporary file when dropped (after it was renamed or removed).
#[must_use]
pub struct Guard(());

impl Drop for Guard {
    fn drop(&mut self) {
        *PENDING.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}
