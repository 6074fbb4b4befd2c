//! Reading the files a user names (specs, hardware files, committed reports): regular files
//! only, and never more than a cap.
//!
//! A FIFO hangs `open(2)` until a writer appears, `/dev/zero` never ends and a directory is no
//! text: each is refused with a message that says what the path is. The type is checked before
//! opening (so a FIFO is never opened) and again on the open handle (so a path swapped in between
//! is caught), and at most `cap + 1` bytes are read, so the caller can say "too large" without
//! reading an endless file whole.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Mutex;

/// (device, inode) of every file this process has read as input, so that an output path that
/// names one of them (`-o spec.yaml` onto the spec itself) is refused instead of replacing it.
static READ: Mutex<Vec<(u64, u64)>> = Mutex::new(Vec::new());

/// Whether `path` is a file this process read as input (the same file, whatever the spelling).
pub fn was_read(path: &Path) -> bool {
    match std::fs::metadata(path) {
        Ok(m) => READ.lock().unwrap_or_else(|e| e.into_inner()).contains(&(m.dev(), m.ino())),
        Err(_) => false,
    }
}

/// Why a file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The path exists but is not a regular file: `what` says what it is ("a named pipe").
    #[error("not a regular file ({what}); netstat reads {reads} from regular files only")]
    NotRegular {
        /// What the path is.
        what: &'static str,
        /// What netstat was reading ("specs").
        reads: &'static str,
    },
    /// More than the cap.
    #[error("larger than the limit of {cap} bytes")]
    TooLarge {
        /// The cap, bytes.
        cap: u64,
    },
    /// Open or read failed (missing, permission denied, …).
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// What a path of this type is, for messages; `None` for a regular file.
fn not_regular(t: std::fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    if t.is_file() {
        None
    } else if t.is_dir() {
        Some("a directory")
    } else if t.is_fifo() {
        Some("a named pipe")
    } else if t.is_char_device() {
        Some("a character device")
    } else if t.is_block_device() {
        Some("a block device")
    } else if t.is_socket() {
        Some("a socket")
    } else {
        Some("not a file")
    }
}

/// The bytes of the regular file at `path` (symbolic links followed), at most `cap + 1` of them
/// when `allow_over` is true (the caller judges the size), else an error past `cap`; `reads` names
/// what the file holds in messages ("specs").
///
/// Errors: [`ReadError::NotRegular`], [`ReadError::TooLarge`], [`ReadError::Io`].
pub fn read_regular(path: &Path, cap: u64, allow_over: bool, reads: &'static str) -> Result<Vec<u8>, ReadError> {
    if let Some(what) = not_regular(std::fs::metadata(path)?.file_type()) {
        return Err(ReadError::NotRegular { what, reads });
    }
    let f = std::fs::File::open(path)?;
    let meta = f.metadata()?;
    if let Some(what) = not_regular(meta.file_type()) {
        return Err(ReadError::NotRegular { what, reads });
    }
    READ.lock().unwrap_or_else(|e| e.into_inner()).push((meta.dev(), meta.ino()));
    let mut bytes = Vec::new();
    f.take(cap.saturating_add(1)).read_to_end(&mut bytes)?;
    if !allow_over && bytes.len() as u64 > cap {
        return Err(ReadError::TooLarge { cap });
    }
    Ok(bytes)
}

/// [`read_regular`] as a netstat [`crate::Error`]: I/O failures exit 1 ([`crate::Error::Io`]);
/// a path that is not a regular file, or too large, is bad input (exit 2, [`crate::Error::Usage`]).
pub fn read_user_file(path: &str, cap: u64, allow_over: bool, reads: &'static str) -> Result<Vec<u8>, crate::Error> {
    read_regular(Path::new(path), cap, allow_over, reads).map_err(|e| match e {
        ReadError::Io(source) => crate::Error::Io { path: path.to_owned(), source },
        other => crate::Error::Usage(format!("{path}: {other}")),
    })
}

/// The name a spec read from standard input (`-`) has in messages and reports.
pub const STDIN_NAME: &str = "<stdin>";

/// Standard input's bytes, at most `cap + 1` of them (the caller judges the size, as with
/// [`read_regular`]'s `allow_over`), for a spec given as `-`.
///
/// Errors: [`crate::Error::Io`] naming `<stdin>` when the read fails.
pub fn read_stdin(cap: u64) -> Result<Vec<u8>, crate::Error> {
    let mut bytes = Vec::new();
    std::io::stdin()
        .lock()
        .take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|source| crate::Error::Io { path: STDIN_NAME.to_owned(), source })?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_files_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        // A FIFO with no writer: open(2) would block forever.
        let fifo = dir.path().join("fifo");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let e = read_regular(&fifo, 10, false, "specs").unwrap_err();
        assert_eq!(e.to_string(), "not a regular file (a named pipe); netstat reads specs from regular files only");
        let e = read_regular(Path::new("/dev/zero"), 10, false, "specs").unwrap_err();
        assert!(e.to_string().contains("a character device"), "{e}");
        let e = read_regular(dir.path(), 10, false, "specs").unwrap_err();
        assert!(e.to_string().contains("a directory"), "{e}");
        // A symbolic link to a device is followed, then refused.
        let link = dir.path().join("zero.json");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        assert!(read_regular(&link, 10, false, "reports").unwrap_err().to_string().contains("a character device"));
    }

    #[test]
    fn reads_are_capped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"0123456789AB").unwrap();
        // 12 bytes against a cap of 10: refused, or 11 bytes (cap + 1) for the caller to judge.
        assert!(matches!(read_regular(&p, 10, false, "specs"), Err(ReadError::TooLarge { cap: 10 })));
        assert_eq!(read_regular(&p, 10, true, "specs").unwrap().len(), 11);
        assert_eq!(read_regular(&p, 12, false, "specs").unwrap(), b"0123456789AB");
    }
}
