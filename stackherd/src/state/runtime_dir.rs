//! The private runtime directory: outside every project, shared by all of the user's
//! checkouts (the machine-wide port reservations live there). Its usual place, the
//! temporary directory, is one where any local user can create the name first: as a
//! symbolic link to a directory of ours, as a directory of their own holding a link or
//! a FIFO. So nothing found there is trusted. The directory is used only through a
//! descriptor proven to be a real directory of this user that no one else may write,
//! and every file in it is examined, opened and removed relative to that descriptor,
//! never through a path that a symbolic link could send elsewhere, never waiting on a
//! FIFO.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, open, openat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat, fstatat};
use nix::unistd::{UnlinkatFlags, geteuid, unlinkat};

/// Why the runtime directory, or a file in it, cannot be used: `{path} {why}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unusable {
    pub path: PathBuf,
    pub why: String,
}

impl fmt::Display for Unusable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.path.display(), self.why)
    }
}

/// An open runtime directory that passed its checks.
#[derive(Debug)]
pub struct RuntimeDir {
    fd: OwnedFd,
    path: PathBuf,
}

impl RuntimeDir {
    /// Where the directory `name` shared by this user's checkouts is:
    /// `$XDG_RUNTIME_DIR/NAME` (a private directory the login session made), else
    /// `NAME-UID` in the temporary directory.
    pub fn path_of(name: &str) -> PathBuf {
        match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
            Some(dir) => PathBuf::from(dir).join(name),
            None => std::env::temp_dir().join(format!("{name}-{}", geteuid())),
        }
    }

    /// The directory at `path`, made (0700) where it is missing. Refused unless what the
    /// opened descriptor names is a directory (the path itself not a symbolic link),
    /// owned by this user and writable by no one else: whoever may write in it could
    /// put a link or a FIFO where our files belong.
    pub fn open(path: &Path) -> Result<RuntimeDir, Unusable> {
        use std::os::unix::fs::DirBuilderExt;
        let unusable = |why: String| Unusable {
            path: path.to_path_buf(),
            why,
        };
        match std::fs::DirBuilder::new().mode(0o700).create(path) {
            Err(err) if err.kind() != std::io::ErrorKind::AlreadyExists => {
                return Err(unusable(format!("cannot be created: {}", describe_io(&err))));
            }
            _ => {}
        }
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = open(path, flags, Mode::empty()).map_err(|errno| {
            // Which of the two a refused open met is told by the entry itself (a link
            // to a directory fails O_DIRECTORY | O_NOFOLLOW with ENOTDIR).
            let link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
            unusable(match errno {
                _ if link => format!("is a symbolic link; {REMEDY}"),
                Errno::ELOOP | Errno::ENOTDIR => format!("is not a directory; {REMEDY}"),
                other => format!("cannot be opened: {}", other.desc().to_lowercase()),
            })
        })?;
        let stat = fstat(&fd).map_err(|errno| unusable(format!("cannot be examined: {}", errno.desc())))?;
        directory_problem(&stat, geteuid().as_raw()).map_or(Ok(()), |why| Err(unusable(why)))?;
        // One an older xtask made 0755 (ours, writable by no one else): closed, so that
        // no one lists which ports are being handed out. Best effort: it is safe as it is.
        if stat.st_mode & 0o077 != 0 {
            let _ = nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(0o700));
        }
        Ok(RuntimeDir {
            fd,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file `name` of the directory, created (0600) where it is missing, never
    /// truncated, opened for reading only. Refused unless it is a regular file of this
    /// user with no other name: a link is not followed (`O_NOFOLLOW`), a FIFO is not
    /// waited on (`O_NONBLOCK`), and a FIFO or a device found first is not opened at all.
    pub fn open_file(&self, name: &str) -> Result<File, Unusable> {
        let unusable = |why: String| Unusable {
            path: self.path.join(name),
            why,
        };
        let name = entry_name(name).ok_or_else(|| unusable("is not a name of an entry".into()))?;
        let me = geteuid().as_raw();
        if let Some(why) = self.stat(name).and_then(|stat| file_problem(&stat, me)) {
            return Err(unusable(why));
        }
        let flags = OFlag::O_RDONLY
            | OFlag::O_CREAT
            | OFlag::O_NOFOLLOW
            | OFlag::O_NONBLOCK
            | OFlag::O_NOCTTY
            | OFlag::O_CLOEXEC;
        let fd = openat(&self.fd, name, flags, Mode::from_bits_truncate(0o600)).map_err(|errno| {
            unusable(match errno {
                Errno::ELOOP => format!("is a symbolic link; {REMEDY}"),
                other => format!("cannot be opened: {}", other.desc().to_lowercase()),
            })
        })?;
        let stat = fstat(&fd).map_err(|errno| unusable(format!("cannot be examined: {}", errno.desc())))?;
        file_problem(&stat, me).map_or(Ok(()), |why| Err(unusable(why)))?;
        // O_NONBLOCK stays set: on a regular file it changes nothing.
        Ok(File::from(fd))
    }

    /// The status of the entry `name`, of a symbolic link itself rather than what it
    /// names; `None` when there is no such entry.
    pub fn stat(&self, name: &OsStr) -> Option<FileStat> {
        fstatat(&self.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW).ok()
    }

    /// The names of the directory's entries, read through its descriptor.
    pub fn names(&self) -> Vec<OsString> {
        // "." of the descriptor is the directory itself: no path is walked again.
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let Ok(mut dir) = nix::dir::Dir::openat(&self.fd, ".", flags, Mode::empty()) else {
            return Vec::new();
        };
        dir.iter()
            .flatten()
            .map(|entry| OsStr::from_bytes(entry.file_name().to_bytes()).to_os_string())
            .filter(|name| entry_name(name).is_some())
            .collect()
    }

    /// Removes the entry `name` of this directory, only when it is a regular file of
    /// ours: never a directory, never what a link names (unlinkat removes the entry it
    /// is given, relative to the descriptor).
    pub fn remove(&self, name: &OsStr) {
        let me = geteuid().as_raw();
        let Some(name) = entry_name(name) else { return };
        if self.stat(name).is_some_and(|stat| file_problem(&stat, me).is_none()) {
            let _ = unlinkat(&self.fd, name, UnlinkatFlags::NoRemoveDir);
        }
    }
}

/// What the warning about a refused directory tells the user to do.
const REMEDY: &str = "remove it, or set XDG_RUNTIME_DIR to a directory of your own";

/// When the file's last change was, as a `SystemTime`.
pub fn modified(stat: &FileStat) -> SystemTime {
    let since_epoch = Duration::new(
        u64::try_from(stat.st_mtime).unwrap_or(0),
        u32::try_from(stat.st_mtime_nsec).unwrap_or(0),
    );
    SystemTime::UNIX_EPOCH
        .checked_add(since_epoch)
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// Whether the entry is a regular file: the kind of file this directory holds.
pub fn is_regular(stat: &FileStat) -> bool {
    kind(stat) == SFlag::S_IFREG
}

fn kind(stat: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT
}

/// `name` when it names an entry of the directory itself: one component, not `.` or
/// `..`.
fn entry_name<S: AsRef<OsStr> + ?Sized>(name: &S) -> Option<&OsStr> {
    let name = name.as_ref();
    let bytes = name.as_bytes();
    let single = !bytes.is_empty() && !bytes.contains(&b'/') && bytes != b"." && bytes != b"..";
    single.then_some(name)
}

/// Why a directory with this status is not a private one of `me`; `None` when it is.
fn directory_problem(stat: &FileStat, me: u32) -> Option<String> {
    if kind(stat) != SFlag::S_IFDIR {
        return Some(format!("is not a directory; {REMEDY}"));
    }
    if stat.st_uid != me {
        return Some(format!("belongs to uid {}, not to uid {me}; {REMEDY}", stat.st_uid));
    }
    if stat.st_mode & 0o022 != 0 {
        return Some(format!(
            "may be written by other users (mode {:o}); `chmod 700` it, or remove it",
            stat.st_mode & 0o7777
        ));
    }
    None
}

/// Why a file with this status is not one xtask made there; `None` when it is. A second
/// name (a hard link) would make a change of it a change of a file elsewhere.
fn file_problem(stat: &FileStat, me: u32) -> Option<String> {
    if kind(stat) == SFlag::S_IFLNK {
        return Some(format!("is a symbolic link; {REMEDY}"));
    }
    if !is_regular(stat) {
        return Some(format!("is not a regular file (a FIFO or a device); {REMEDY}"));
    }
    if stat.st_uid != me {
        return Some(format!("belongs to uid {}, not to uid {me}; {REMEDY}", stat.st_uid));
    }
    if stat.st_nlink != 1 {
        return Some(format!("has another name (a hard link); {REMEDY}"));
    }
    None
}

fn describe_io(err: &std::io::Error) -> String {
    let text = err.to_string();
    text.split(" (os error").next().unwrap_or(&text).to_lowercase()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use super::*;

    /// A fresh directory under the temporary directory, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(case: &str) -> Scratch {
            let dir = std::env::temp_dir().join(format!("xtask-runtime-dir-{}-{case}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir(&dir).unwrap();
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_missing_directory_is_made_private() {
        let scratch = Scratch::new("made");
        let path = scratch.0.join("ports");
        RuntimeDir::open(&path).unwrap();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.is_dir());
        assert_eq!(meta.mode() & 0o777, 0o700);
    }

    #[test]
    fn a_directory_others_may_write_or_a_link_to_one_is_refused() {
        let scratch = Scratch::new("refused");
        let open = scratch.0.join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(
            RuntimeDir::open(&open)
                .unwrap_err()
                .why
                .starts_with("may be written by other users (mode 777)")
        );
        let private = scratch.0.join("private");
        std::fs::create_dir(&private).unwrap();
        let link = scratch.0.join("link");
        std::os::unix::fs::symlink(&private, &link).unwrap();
        assert!(
            RuntimeDir::open(&link)
                .unwrap_err()
                .why
                .starts_with("is a symbolic link")
        );
        let file = scratch.0.join("file");
        std::fs::write(&file, "").unwrap();
        assert!(
            RuntimeDir::open(&file)
                .unwrap_err()
                .why
                .starts_with("is not a directory")
        );
    }

    #[test]
    fn a_link_a_fifo_or_a_second_name_in_it_is_refused_and_left_alone() {
        let scratch = Scratch::new("files");
        let dir = RuntimeDir::open(&scratch.0.join("ports")).unwrap();
        let elsewhere = scratch.0.join("elsewhere");
        std::fs::write(&elsewhere, "keep me\n").unwrap();
        std::os::unix::fs::symlink(&elsewhere, dir.path().join("lock")).unwrap();
        assert!(dir.open_file("lock").unwrap_err().why.starts_with("is a symbolic link"));
        std::fs::hard_link(&elsewhere, dir.path().join("1000")).unwrap();
        assert!(dir.open_file("1000").unwrap_err().why.starts_with("has another name"));
        nix::unistd::mkfifo(&dir.path().join("1001"), Mode::from_bits_truncate(0o600)).unwrap();
        // Would it wait for a writer, this test would hang.
        assert!(
            dir.open_file("1001")
                .unwrap_err()
                .why
                .starts_with("is not a regular file")
        );
        for name in ["lock", "1000", "1001"] {
            dir.remove(OsStr::new(name));
        }
        assert_eq!(std::fs::read_to_string(&elsewhere).unwrap(), "keep me\n");
        let mut left = dir.names();
        left.sort();
        assert_eq!(left, ["1000", "1001", "lock"], "only regular files of ours are removed");
        assert!(dir.open_file("../elsewhere").is_err());
    }

    #[test]
    fn a_file_of_ours_is_made_once_and_removed_through_the_directory() {
        let scratch = Scratch::new("own");
        let dir = RuntimeDir::open(&scratch.0.join("ports")).unwrap();
        drop(dir.open_file("2000").unwrap());
        let meta = std::fs::symlink_metadata(dir.path().join("2000")).unwrap();
        assert!(meta.is_file());
        assert_eq!(meta.mode() & 0o777, 0o600);
        assert!(is_regular(&dir.stat(OsStr::new("2000")).unwrap()));
        dir.remove(OsStr::new("2000"));
        assert!(dir.names().is_empty());
    }
}
