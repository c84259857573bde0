//! Opening a file of the state directory only when it is a regular file, and without
//! waiting: a FIFO or a device where a log or a record belongs would block the open (a
//! FIFO without a reader) or every read, with the lock held.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// Opens `path` only if it is a regular file. A FIFO or a device in a log's place
/// would block the open (a FIFO without a reader) or every read, with the lock held:
/// the open does not wait (`O_NONBLOCK`, cleared again for the file's users), and
/// anything but a regular file is refused.
pub(super) fn open_regular(path: &Path, options: &OpenOptions) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = options.clone();
    options.custom_flags(nix::libc::O_NONBLOCK);
    let file = match options.open(path) {
        // A FIFO without a reader refuses a non-blocking open for writing.
        Err(err) if err.raw_os_error() == Some(nix::libc::ENXIO) => return Err(not_regular()),
        other => other?,
    };
    if !file.metadata()?.is_file() {
        return Err(not_regular());
    }
    let flags = nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_GETFL).map_err(io::Error::from)?;
    let blocking = nix::fcntl::OFlag::from_bits_truncate(flags) & !nix::fcntl::OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_SETFL(blocking)).map_err(io::Error::from)?;
    Ok(file)
}

fn not_regular() -> io::Error {
    io::Error::other("not a regular file (a FIFO or a device where xtask keeps a log); remove it")
}
