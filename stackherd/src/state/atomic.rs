//! Atomic writes: a temporary file swapped into place.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use super::private::private_options;

/// Writes a temporary file (0600, see `private`) and swaps it into place. An existing
/// file is exchanged with the temporary one (`renameat2(RENAME_EXCHANGE)`) and the old
/// content then unlinked, rather than replaced by a plain rename: on ext4, a rename
/// over an existing file starts writeback of the new one (`auto_da_alloc`), and the
/// next replacement or removal of that file waits for the disk. Measured with 50
/// services, that made a `stop` spend 20 to 30 ms marking records and as much again
/// removing them. A crash between the exchange and the unlink leaves the old content
/// under the temporary name, which `remove_abandoned_writes` collects.
pub(super) fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    // A write that fails (a full disk) takes its temporary file away with it: the
    // command goes on, and nothing half-written stays behind for `cleanup`.
    let swapped = create_new(&tmp)
        .and_then(|mut file| file.write_all(bytes))
        .and_then(|()| swap(&tmp, path));
    if swapped.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    swapped
}

/// Creates the temporary file 0600, as a new file: its name is predictable, so one
/// found there (left by a crashed writer of the same PID, or a symbolic link planted
/// there) is removed, never written through.
fn create_new(tmp: &Path) -> io::Result<File> {
    let options = private_options(OpenOptions::new().write(true).create_new(true));
    match options.open(tmp) {
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
            fs::remove_file(tmp)?;
            options.open(tmp)
        }
        other => other,
    }
}

/// Swaps `tmp` into `path`'s place. A symbolic link planted at `path` is swapped out
/// and removed like any old content: a rename never writes through one.
fn swap(tmp: &Path, path: &Path) -> io::Result<()> {
    let exchanged = nix::fcntl::renameat2(
        nix::fcntl::AT_FDCWD,
        tmp,
        nix::fcntl::AT_FDCWD,
        path,
        nix::fcntl::RenameFlags::RENAME_EXCHANGE,
    );
    match exchanged {
        Ok(()) => fs::remove_file(tmp),
        // ENOENT: nothing to exchange with yet (a first write). EINVAL: a file system
        // without exchange (some network file systems); a plain rename is as atomic.
        Err(_) => fs::rename(tmp, path),
    }
}

/// The PID of the writer of `name` when it is one of `write_atomically`'s temporary
/// files (`.<file>.tmp<pid>`, of a record, a PID file or `monitor.json`); `None` for
/// any other name, such as a user's `page.tmpl`.
pub(super) fn temporary_writer(name: &str) -> Option<i32> {
    let (file, pid) = name.strip_prefix('.')?.rsplit_once(".tmp")?;
    let ours = file.ends_with(".json") || file.ends_with(".pid");
    let digits = !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit());
    (ours && digits).then(|| pid.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::temporary_writer;

    #[test]
    fn only_our_own_temporary_names_are_ours() {
        assert_eq!(temporary_writer(".api.json.tmp4242"), Some(4242));
        assert_eq!(temporary_writer(".api.pid.tmp7"), Some(7));
        assert_eq!(temporary_writer("page.tmpl"), None);
        assert_eq!(temporary_writer(".page.tmpl"), None);
        assert_eq!(temporary_writer(".api.json.tmp"), None);
        assert_eq!(temporary_writer(".notes.txt.tmp12"), None);
    }
}
