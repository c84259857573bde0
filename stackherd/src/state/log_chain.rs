//! A log's files in the order they were written, told apart by inode: the relay's
//! rotation renames `NAME.log` to `NAME.log.1` (older ones move up, the one past
//! `log_keep` is removed), so a follower that holds one file finds the next one by
//! where its own inode sits now, however many rotations happened since it looked.
//!
//! Each file's time index begins with its base (`# base B`): how many bytes the log's
//! earlier files held, all rotations counted. A follower whose file was removed before
//! it got to the next one tells from two bases how much it could not read.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::regular::open_regular;

/// The most rotated files looked at (`log_keep` is at most 1000).
const MAX_ROTATED: u32 = 1000;
/// How a time index's first line names its file's base.
pub(super) const BASE_HEADER: &str = "# base ";
/// A scan that races a rotation is tried again, this many times in all.
const ATTEMPTS: usize = 3;

/// A file of the log, open for reading.
#[derive(Debug)]
pub struct LogFile {
    pub file: File,
    pub inode: u64,
    /// The bytes of the log before this file, when its time index says.
    pub base: Option<u64>,
}

impl LogFile {
    pub fn try_clone(&self) -> Option<LogFile> {
        Some(LogFile {
            file: self.file.try_clone().ok()?,
            inode: self.inode,
            base: self.base,
        })
    }
}

/// The log's current file.
pub fn open_current(log: &Path) -> Option<LogFile> {
    let file = open_regular(log, OpenOptions::new().read(true)).ok()?;
    let inode = file.metadata().ok()?.ino();
    let base = base_now(log, inode);
    Some(LogFile { file, inode, base })
}

/// The base of the file `inode` of the log, read from its time index where the file is
/// now; `None` when no index says, or a rotation moved it while it was read.
pub fn base_now(log: &Path, inode: u64) -> Option<u64> {
    for _ in 0..ATTEMPTS {
        let path = files(log).find(|(_, i)| *i == inode)?.0;
        let base = read_base(&times_path(&path));
        // Still there: the index read was its own, not one a rotation moved in.
        if inode_of(&path) == Some(inode) {
            return base;
        }
    }
    None
}

/// The file written after the one `held`, and whether it is that file's direct
/// successor (`false`: `held` was removed, and this is the oldest file kept). `None`
/// while `held` is still the current file, or when no file can be opened.
pub fn after(log: &Path, held: u64) -> Option<(LogFile, bool)> {
    for _ in 0..ATTEMPTS {
        let chain: Vec<(PathBuf, u64)> = files(log).collect();
        let (at, direct) = match chain.iter().position(|(_, i)| *i == held) {
            Some(0) => return None,
            Some(k) => (k.saturating_sub(1), true),
            None => (chain.len().checked_sub(1)?, false),
        };
        let (path, inode) = chain.get(at)?;
        if let Some(file) = open_if(path, *inode) {
            return Some((file, direct));
        }
    }
    None
}

/// `NAME.log`, `NAME.log.1`, … with their inodes, newest first, up to the first missing.
fn files(log: &Path) -> impl Iterator<Item = (PathBuf, u64)> + '_ {
    (0..=MAX_ROTATED)
        .map(|n| if n == 0 { log.to_path_buf() } else { rotated(log, n) })
        .map_while(|path| {
            let inode = inode_of(&path)?;
            Some((path, inode))
        })
}

/// Opens the file at `path` if it is still `inode`.
fn open_if(path: &Path, inode: u64) -> Option<LogFile> {
    let file = open_regular(path, OpenOptions::new().read(true)).ok()?;
    if file.metadata().ok()?.ino() != inode {
        return None;
    }
    let base = read_base(&times_path(path));
    let base = base.filter(|_| inode_of(path) == Some(inode));
    Some(LogFile { file, inode, base })
}

/// A path's own inode (a symbolic link's: none is followed).
fn inode_of(path: &Path) -> Option<u64> {
    std::fs::symlink_metadata(path).ok().map(|m| m.ino())
}

/// The base a time index begins with: only its first line is read.
pub fn read_base(index: &Path) -> Option<u64> {
    let file = open_regular(index, OpenOptions::new().read(true)).ok()?;
    let mut head = Vec::with_capacity(64);
    file.take(64).read_to_end(&mut head).ok()?;
    let text = String::from_utf8_lossy(&head);
    text.lines().next()?.strip_prefix(BASE_HEADER)?.trim().parse().ok()
}

/// What the stream says where lines were removed before they could be read: how many
/// bytes, when the time indexes tell.
pub fn lost_note(lost: Option<u64>) -> String {
    match lost {
        Some(bytes) => {
            format!("[… {bytes} bytes of this log were rotated away (past log_keep) before they could be read]")
        }
        None => {
            "[… lines of this log may have been rotated away (past log_keep) before they could be read]".to_string()
        }
    }
}

/// The time index of a log file.
pub fn times_path(log: &Path) -> PathBuf {
    let name = log
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    log.with_file_name(format!(".{name}.times"))
}

/// The `n`th rotated file of a log (`NAME.log.n`).
pub fn rotated(log: &Path, n: u32) -> PathBuf {
    let name = log
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    log.with_file_name(format!("{name}.{n}"))
}
