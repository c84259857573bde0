//! Opening a file of the state directory only when it is a regular file, without
//! following a symbolic link and without waiting: a FIFO or a device where a log or a
//! record belongs would block the open (a FIFO without a reader) or every read, with
//! the lock held; a link would send a write to its target. Small files (records, PID
//! files, caches) are read only up to a size, so that a huge one cannot eat memory.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::path::Path;

use super::private::{FILE_MODE, close_to_others, explain};

/// The most a record, a PID file, `monitor.json`, `ports.json` or a cache may hold: a
/// record lists a service's process tree, a few dozen bytes a process.
pub(super) const SMALL_FILE_MAX: u64 = 4 * 1024 * 1024;

/// Opens `path` only if it is a regular file, and never through a symbolic link
/// (created 0600, when the options create it). A
/// FIFO or a device in a log's place would block the open (a FIFO without a reader)
/// or every read, with the lock held: the open does not wait (`O_NONBLOCK`, cleared
/// again for the file's users), and anything but a regular file is refused.
pub(super) fn open_regular(path: &Path, options: &OpenOptions) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = options.clone();
    options
        .mode(FILE_MODE)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK);
    let file = match options.open(path) {
        // A FIFO without a reader refuses a non-blocking open for writing.
        Err(err) if err.raw_os_error() == Some(nix::libc::ENXIO) => return Err(not_regular()),
        other => other.map_err(explain)?,
    };
    if !file.metadata()?.is_file() {
        return Err(not_regular());
    }
    let flags = nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_GETFL).map_err(io::Error::from)?;
    let blocking = nix::fcntl::OFlag::from_bits_truncate(flags) & !nix::fcntl::OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_SETFL(blocking)).map_err(io::Error::from)?;
    Ok(file)
}

/// `open_regular` for a file xtask writes: created 0600, and an existing one of ours
/// (an older xtask's 0644) closed to group and others.
pub(super) fn open_private(path: &Path, options: &OpenOptions) -> io::Result<File> {
    let file = open_regular(path, options)?;
    close_to_others(&file);
    Ok(file)
}

/// The bytes of a small regular file, refused past `max` bytes.
pub(super) fn read_small(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let file = open_regular(path, OpenOptions::new().read(true))?;
    let mut bytes = Vec::new();
    // One byte more than allowed tells a file at the limit from one past it, also one
    // that grows while it is read.
    file.take(max.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(io::Error::other(format!(
            "it is larger than {} KiB, more than xtask ever writes there",
            max / 1024
        )));
    }
    Ok(bytes)
}

/// `read_small` as text, invalid UTF-8 replaced. Also for a file outside the state
/// directory that xtask reads but does not own (a service's `pid_file`, often in a
/// directory others can write): no link followed, no FIFO waited on, no size unbounded.
pub(crate) fn read_small_text(path: &Path, max: u64) -> io::Result<String> {
    read_small(path, max).map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
}

/// The first `max` bytes of a file of the project that xtask only reads (a compose file
/// and the files it includes): a link is followed, as the compose tool follows it (a
/// `compose.yml` is often one), but only a regular file is read and a FIFO is never
/// waited on.
pub(crate) fn read_project_file(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(not_regular());
    }
    let mut bytes = Vec::new();
    file.take(max).read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn not_regular() -> io::Error {
    io::Error::other("not a regular file (a FIFO or a device where xtask keeps a file of its own); remove it")
}
