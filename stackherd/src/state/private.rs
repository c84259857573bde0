//! The state directory is private to its user: records hold command lines (a password
//! read from a 0600 `.env` lands in one), logs hold whatever the services print. Its
//! directories are made 0700 and its files 0600 by the modes they are created with,
//! never through the umask: the services inherit xtask's umask, and keep the user's.
//! What an older xtask left more open (0755, 0644) is closed on the open descriptor,
//! when the file is ours.

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use super::Registry;
use crate::error::{Error, Result};

/// The mode of every directory xtask creates in the state directory.
pub(super) const DIR_MODE: u32 = 0o700;
/// The mode of every file xtask creates in the state directory.
pub(super) const FILE_MODE: u32 = 0o600;

impl Registry {
    /// See `trusted_tree`.
    pub(super) fn trusted(&self) -> bool {
        trusted_tree(&self.dir)
    }

    /// Creates the state directory, `run/` and `logs/` (0700), and closes what an older
    /// xtask left open to others: a directory found open has its files closed as well,
    /// once, so that the records and logs of the older version are private too. `run/`
    /// and `logs/` must be real directories: a symbolic link planted there would send
    /// every record or log to its target.
    pub(super) fn create_dirs(&self) -> Result<()> {
        let mut opened = private_dir(&self.dir, Follow::Yes).map_err(|err| Error::state(&self.dir, err))?;
        for dir in [self.run_dir(), self.logs_dir()] {
            opened |= private_dir(&dir, Follow::No).map_err(|err| Error::state(&dir, err))?;
        }
        if opened {
            for dir in [self.dir.clone(), self.run_dir(), self.logs_dir()] {
                close_files_in(&dir);
            }
        }
        Ok(())
    }
}

/// Whether a symbolic link in the last component of a directory's path is followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Follow {
    /// The state directory itself: its path is the user's choice (`state_dir`).
    Yes,
    /// Directories inside it, which only xtask makes.
    No,
}

/// Creates `dir` (and its missing parents) 0700, or closes an existing one of ours to
/// group and others. Returns whether it had to be closed. A directory that cannot be
/// opened or changed (a read-only file system, one of another user) stays as it is:
/// a stop must work there all the same, and what cannot be written leaks nothing new.
fn private_dir(dir: &Path, follow: Follow) -> io::Result<bool> {
    if follow == Follow::Yes
        && let Ok(link) = dir.symlink_metadata()
        && link.file_type().is_symlink()
    {
        trusted_owner(dir, link.uid(), "the symbolic link")?;
    }
    DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)?;
    let mut flags = nix::libc::O_DIRECTORY;
    if follow == Follow::No {
        flags |= nix::libc::O_NOFOLLOW;
    }
    match OpenOptions::new().read(true).custom_flags(flags).open(dir) {
        Ok(opened) => {
            trusted_owner(dir, opened.metadata()?.uid(), "it")?;
            Ok(close_to_others(&opened))
        }
        // O_NOFOLLOW with O_DIRECTORY answers a symbolic link with ENOTDIR.
        Err(_) if dir.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) => Err(symlink()),
        Err(_) => Ok(false),
    }
}

/// Whether what the state directory `state` holds may be read as ours, written and
/// removed: the directory trusted as `private_dir` trusts it (yours, or its owner's
/// where no one else may write), and `run/` and `logs/`, where they exist, real
/// directories (no link) of a trusted owner. One that another user prepared (a
/// `state_dir` in `/tmp` made first, its `run/` a link to your files) fails: its
/// records are not taken for yours (a forged one would name any process of yours by
/// PID and start time, which anyone can read), nothing in it is removed or written
/// through. Missing, it holds nothing: creating it checks it again.
pub(super) fn trusted_tree(state: &Path) -> bool {
    if let Ok(link) = state.symlink_metadata()
        && link.file_type().is_symlink()
        && trusted_owner(state, link.uid(), "").is_err()
    {
        return false;
    }
    let Ok(meta) = state.metadata() else {
        return true;
    };
    if !meta.is_dir() || trusted_owner(state, meta.uid(), "").is_err() {
        return false;
    }
    ["run", "logs"].iter().all(|sub| {
        let path = state.join(sub);
        match path.symlink_metadata() {
            Err(_) => true,
            Ok(m) => m.is_dir() && trusted_owner(&path, m.uid(), "").is_ok(),
        }
    })
}

/// The error of an operation refused in a state directory that `trusted_tree` fails.
pub(super) fn untrusted(state: &Path) -> io::Error {
    io::Error::other(format!(
        "{} is not a private state directory of yours (another user's, or a link in it): nothing in it is read, written or removed; remove it, or choose a `state_dir` of your own",
        state.display()
    ))
}

/// A state directory (or a link to one) is used only when it belongs to the user, or
/// to the owner of the directory that holds it where no one else may write there (a
/// checkout owned by the developer, stopped by root; a container running as root over
/// a mounted checkout). One that another user made first in a shared place (`state_dir
/// = "/tmp/stack"`) would let that user read what the services print, and plant links
/// that the relay's rotation follows.
fn trusted_owner(dir: &Path, owner: u32, what: &str) -> io::Result<()> {
    let me = nix::unistd::geteuid().as_raw();
    if owner == me {
        return Ok(());
    }
    // The place the name is in: for a link, the link's own directory.
    let place = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let shared = place
        .metadata()
        .map_or(true, |m| m.uid() != owner || m.mode() & 0o022 != 0);
    if shared {
        return Err(io::Error::other(format!(
            "{what} belongs to uid {owner}, not to you (uid {me}), in a directory others can write: \
             that user could read what the services print and plant links there; remove it, or \
             choose a `state_dir` of your own"
        )));
    }
    Ok(())
}

/// Adds the flags and mode that every file of the state directory is opened with: no
/// symbolic link followed (one planted as a log or record is refused, its target never
/// written), and 0600 when the open creates it.
pub(super) fn private_options(options: &OpenOptions) -> OpenOptions {
    let mut options = options.clone();
    options.mode(FILE_MODE).custom_flags(nix::libc::O_NOFOLLOW);
    options
}

/// Takes group and others' permissions away from an open file or directory of ours
/// (never adds any: a directory made read-only stays so). True when it changed.
/// Another user's file is left alone, as is one that cannot be changed.
pub(super) fn close_to_others(file: &File) -> bool {
    let Ok(meta) = file.metadata() else { return false };
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 == 0 || meta.uid() != nix::unistd::geteuid().as_raw() {
        return false;
    }
    file.set_permissions(Permissions::from_mode(mode & 0o700)).is_ok()
}

/// Closes every regular file directly in `dir` to group and others, each opened
/// without following a link or waiting on a FIFO.
fn close_files_in(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        if !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let opened = OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
            .open(entry.path());
        if let Ok(file) = opened
            && file.metadata().is_ok_and(|m| m.is_file())
        {
            close_to_others(&file);
        }
    }
}

/// What an open that met a symbolic link says.
pub(super) fn symlink() -> io::Error {
    io::Error::other(
        "it is a symbolic link, which xtask never follows in its state directory (its target was not touched); remove it",
    )
}

/// `err`, said clearly when it is the refusal of a symbolic link (ELOOP from O_NOFOLLOW).
pub(super) fn explain(err: io::Error) -> io::Error {
    if err.raw_os_error() == Some(nix::libc::ELOOP) {
        symlink()
    } else {
        err
    }
}
