//! Log files: opening one for a service to write, its last lines, its line count, and
//! following what is appended to it (`log_reader`). Every reader of logs goes through
//! here.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::atomic::write_atomically;
use super::regular::{open_private, open_regular, read_small_text};
use super::{Lock, Registry, Unrecorded};
use crate::error::{Error, Result};

pub use super::log_reader::LogReader;
use super::log_times::earlier_note;

/// How the line that marks a start in a service's log begins.
pub const START_MARKER: &str = "── start ";

/// How much of a log's end is read to find its last lines.
const TAIL_WINDOW: u64 = 256 * 1024;
/// The most of a line-count cache read: it holds three numbers.
const COUNT_CACHE_MAX: u64 = 256;

impl Registry {
    /// Opens a service's log file for appending; the service writes to it directly.
    pub fn open_log(&self, service: &str) -> Result<File> {
        open_append(&self.log_path(service))
    }

    /// Opens a service's log for the output of its stop command. A stop goes on where
    /// the log cannot be opened (a read-only state directory): the command's output then
    /// goes nowhere, and the failure is noted on the lock.
    pub fn open_stop_output(&self, service: &str, lock: &Lock) -> Option<File> {
        self.open_log(service)
            .inspect_err(|err| lock.note(Unrecorded::StopOutput(service.to_string()), err))
            .ok()
    }

    /// Opens a service's log for a new start of it, and marks the start with a line
    /// (`── start 2026-11-23 10:42:01 UTC ──`), so that a reader (and a failure report)
    /// tells this run's lines from earlier ones.
    pub fn open_log_for_start(&self, service: &str) -> Result<File> {
        use std::io::Write;
        let path = self.log_path(service);
        let mut log = open_append(&path)?;
        let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        let stamp = now.replace('T', " ").replace('Z', " UTC");
        // An earlier run stopped inside a line (a progress bar): the marker still
        // begins a line of its own.
        let newline = if ends_with_newline(&path) { "" } else { "\n" };
        writeln!(log, "{newline}{START_MARKER}{stamp} ──").map_err(|err| Error::state(&path, err))?;
        Ok(log)
    }

    /// Opens the monitor's event log for appending.
    pub fn open_monitor_log(&self) -> Result<File> {
        open_append(&self.monitor_log_path())
    }

    /// Appends a supervisor's event to the monitor's event log, where the terminal UI
    /// reads it: a foreground `start` writes its events there too. A failed write
    /// loses the line, not the event (the supervisor has shown it).
    pub fn append_event(&self, line: &str) {
        use std::io::Write;
        if let Ok(mut log) = self.open_monitor_log() {
            let _ = writeln!(log, "{line}");
        }
    }
}

fn open_append(path: &Path) -> Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    open_private(path, &options).map_err(|err| Error::state(path, err))
}

/// Opens a log for reading, only if it is a regular file.
fn open_read(path: &Path) -> io::Result<File> {
    open_regular(path, OpenOptions::new().read(true))
}

/// Whether a log is empty (or unreadable) or ends with a newline.
fn ends_with_newline(path: &Path) -> bool {
    use std::os::unix::fs::FileExt;
    let Ok(log) = open_read(path) else { return true };
    let len = log.metadata().map_or(0, |m| m.len());
    let mut last = [b'\n'];
    len == 0 || log.read_at(&mut last, len.saturating_sub(1)).is_err() || last == [b'\n']
}

/// The current length of a file, 0 when it cannot be read (a symbolic link's own).
pub fn len(path: &Path) -> u64 {
    std::fs::symlink_metadata(path).map_or(0, |m| m.len())
}

/// The last `n` lines of a file (empty when it cannot be read).
/// The last `n` lines the latest run of a service wrote: those after the last start
/// marker (all of them, when the marker is further back than the window read).
pub fn tail_of_run(path: &Path, n: usize) -> Vec<String> {
    let mut lines = tail(path, usize::MAX);
    if let Some(marker) = lines.iter().rposition(|l| l.starts_with(START_MARKER)) {
        lines.drain(..=marker);
    }
    let skip = lines.len().saturating_sub(n);
    lines.split_off(skip)
}

pub fn tail(path: &Path, n: usize) -> Vec<String> {
    let Ok(mut file) = open_read(path) else {
        return Vec::new();
    };
    let len = file.metadata().map_or(0, |m| m.len());
    let start = len.saturating_sub(TAIL_WINDOW);
    if file.seek(SeekFrom::Start(start)).is_err() {
        return Vec::new();
    }
    let mut bytes = Vec::new();
    if (&mut file)
        .take(len.saturating_sub(start))
        .read_to_end(&mut bytes)
        .is_err()
    {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    // The window begins in the middle of a line: left out, unless it is the only one
    // (a last line longer than the window is still a last line).
    if start > 0 && lines.len() > 1 {
        lines.remove(0);
    } else if start > 0
        && let Some(only) = lines.first_mut()
    {
        only.insert_str(0, &earlier_note(start));
    }
    let skip = lines.len().saturating_sub(n);
    lines.split_off(skip)
}

/// How many lines a log has, counted from where the last count stopped.
pub fn count_lines(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(file) = open_read(path) else { return 0 };
    let Ok(meta) = file.metadata() else { return 0 };
    let cache = count_cache(path);
    // What an earlier count saw: the same file (inode), not truncated since.
    let (start, base) = match read_count(&cache) {
        Some((inode, offset, count)) if inode == meta.ino() && offset <= meta.len() => (offset, count),
        _ => (0, 0),
    };
    let Some(counted) = newlines_between(file, start, meta.len()) else {
        return base;
    };
    let total = base.saturating_add(counted);
    // Only where the log is in a state directory's `logs/` that is trusted: a `logs/`
    // planted as a link would have the count written into its target.
    let trusted = path
        .parent()
        .and_then(Path::parent)
        .is_some_and(super::private::trusted_tree);
    if meta.len() > start && trusted {
        let _ = write_atomically(&cache, format!("{} {} {total}\n", meta.ino(), meta.len()).as_bytes());
    }
    total
}

/// Where the line count of a log is kept between calls: `status` reads only what was
/// appended since (a log of 100 MB was read whole on every call).
fn count_cache(log: &Path) -> PathBuf {
    let name = log
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    log.with_file_name(format!(".{name}.lines"))
}

/// (inode, offset, count) from a count cache.
fn read_count(cache: &Path) -> Option<(u64, u64, u64)> {
    let text = read_small_text(cache, COUNT_CACHE_MAX).ok()?;
    let mut fields = text.split_whitespace().map(str::parse::<u64>);
    Some((fields.next()?.ok()?, fields.next()?.ok()?, fields.next()?.ok()?))
}

/// The newlines in `file` from `start` up to `end`.
fn newlines_between(mut file: File, start: u64, end: u64) -> Option<u64> {
    file.seek(SeekFrom::Start(start)).ok()?;
    let mut reader = BufReader::with_capacity(64 * 1024, file.take(end.saturating_sub(start)));
    let mut count = 0u64;
    loop {
        let buf = match reader.fill_buf() {
            Ok([]) => return Some(count),
            Err(_) => return None,
            Ok(buf) => buf,
        };
        count = count.saturating_add(buf.iter().filter(|&&b| b == b'\n').count() as u64);
        let len = buf.len();
        reader.consume(len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_marker_begins_its_own_line_after_an_unfinished_one() {
        let dir = std::env::temp_dir().join(format!("xtask-marker-{}", std::process::id()));
        let registry = Registry::new(&dir);
        registry.create_dirs().expect("state directory");
        drop(registry.open_log_for_start("svc").expect("first start"));
        let path = registry.log_path("svc");
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut log| io::Write::write_all(&mut log, b"downloading 30%"))
            .expect("an unfinished line");
        drop(registry.open_log_for_start("svc").expect("second start"));
        let text = std::fs::read_to_string(&path).expect("read the log");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text:?}");
        assert_eq!(lines[1], "downloading 30%");
        assert!(lines[2].starts_with(START_MARKER), "{text:?}");
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
