//! Reading files named in the configuration: regular files only, up to a size.
//!
//! A FIFO would block the reading thread until a writer came, and a device such as
//! `/dev/zero` would be read until memory ran out; both are refused, by what the file is,
//! before anything is read.

use std::fs::{File, Metadata, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// What a non-regular file is, for error messages.
fn kind(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

fn check(meta: &Metadata, limit: u64) -> Result<u64, String> {
    if !meta.is_file() {
        return Err(format!(
            "not a regular file (it is {}); give a file",
            kind(meta)
        ));
    }
    if meta.len() > limit {
        return Err(format!(
            "is {} MiB, more than the {} MiB a file may have",
            meta.len().div_ceil(1 << 20),
            limit >> 20
        ));
    }
    Ok(meta.len())
}

/// Opens `path` without blocking (a FIFO opens at once), and checks that it is a regular
/// file of at most `limit` bytes.
fn open(path: &Path, limit: u64) -> Result<File, String> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("cannot read: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("cannot read: {e}"))?;
    check(&meta, limit)?;
    Ok(file)
}

/// The whole of a regular file of at most `limit` bytes.
pub fn read_regular(path: &Path, limit: u64) -> Result<Vec<u8>, String> {
    let file = open(path, limit)?;
    let mut bytes = Vec::new();
    // `take` holds even if the file grows between the check and the read.
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > limit {
        return Err(format!("grew past {} MiB while being read", limit >> 20));
    }
    Ok(bytes)
}

/// Checks, without reading it, that `path` is a regular file of at most `limit` bytes
/// (for files that a library opens itself).
pub fn check_regular(path: &Path, limit: u64) -> Result<u64, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
    check(&meta, limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifos_devices_and_large_files_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo reads the NUL-terminated path only.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = read_regular(&fifo, 1 << 20).unwrap_err();
        assert!(err.contains("it is a FIFO"), "{err}");
        let err = read_regular(Path::new("/dev/zero"), 1 << 20).unwrap_err();
        assert!(err.contains("a character device"), "{err}");
        let big = dir.path().join("big");
        File::create(&big).unwrap().set_len(3 << 20).unwrap();
        let err = read_regular(&big, 2 << 20).unwrap_err();
        assert_eq!(err, "is 3 MiB, more than the 2 MiB a file may have");
        std::fs::write(&big, b"ok").unwrap();
        assert_eq!(read_regular(&big, 2 << 20).unwrap(), b"ok");
    }
}
