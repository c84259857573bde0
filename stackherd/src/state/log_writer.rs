//! Writing a service's log as its relay does: whole lines, each write's time in the
//! log's time index, and rotation at `log_max_size` that never splits a line.
//!
//! The time index (`.NAME.log.times`) holds one `END-OFFSET UNIX-MS` line per write:
//! the bytes of the log up to that offset were written by then; a line that ends in
//! ` end` says the service's output ended there. Its first line, `# base B`, says how
//! many bytes the log's earlier files held (`log_chain`). Rotation renames the
//! log and its index together (`NAME.log` to `NAME.log.1`, `.1` to `.2`, …) and removes
//! what is past `log_keep`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub use super::log_chain::{rotated, times_path};
use super::now_ms;

/// The size and number of a log's files, when it rotates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    pub max_size: u64,
    /// Rotated files kept besides the current one.
    pub keep: u32,
}

/// Appends lines to a log and its time index, rotating when due.
pub struct LogWriter {
    path: PathBuf,
    log: File,
    times: File,
    size: u64,
    rotation: Option<Rotation>,
    /// The bytes of the log before this file, when known: a follower that lost the
    /// files between two reads counts what it missed from it.
    base: Option<u64>,
}

impl LogWriter {
    pub fn open(path: &Path, rotation: Option<Rotation>) -> io::Result<LogWriter> {
        let log = append(path)?;
        let times = append(&times_path(path))?;
        let size = log.metadata()?.len();
        let mut writer = LogWriter {
            path: path.to_path_buf(),
            log,
            times,
            size,
            rotation,
            base: None,
        };
        // A new index of a log that never rotated starts the count; an existing one
        // says where it stands (an index an older xtask wrote has no base: unknown).
        let fresh = writer.times.metadata()?.len() == 0 && !rotated(path, 1).exists();
        writer.base = if fresh {
            Some(0)
        } else {
            super::log_chain::read_base(&times_path(path))
        };
        if fresh {
            writer.write_base()?;
        }
        Ok(writer)
    }

    fn write_base(&mut self) -> io::Result<()> {
        match self.base {
            Some(base) => writeln!(self.times, "{}{base}", super::log_chain::BASE_HEADER),
            None => Ok(()),
        }
    }

    /// Writes `bytes`, which end with a newline unless a line outgrew what is buffered
    /// for it: lines are never cut by a rotation, except a line longer than the whole
    /// `max_size`, which is cut into pieces of that size.
    pub fn write(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        // Others append too (xtask's start markers, build output): the file's size.
        self.size = self.log.metadata().map_or(self.size, |m| m.len());
        while !bytes.is_empty() {
            let room = match self.rotation {
                Some(r) => r.max_size.saturating_sub(self.size),
                None => u64::MAX,
            };
            let fits = usize::try_from(room).unwrap_or(usize::MAX);
            let (now, rest) = if bytes.len() <= fits {
                (bytes, &[][..])
            } else {
                // The lines that fit; none, when not even the first one does.
                let whole = bytes.get(..fits).and_then(|b| b.iter().rposition(|&c| c == b'\n'));
                match whole {
                    Some(end) => bytes.split_at(end.saturating_add(1)),
                    None if self.size > 0 => {
                        self.rotate()?;
                        continue;
                    }
                    None => bytes.split_at(fits.max(1)),
                }
            };
            self.append(now)?;
            bytes = rest;
            if !bytes.is_empty() {
                self.rotate()?;
            }
        }
        Ok(())
    }

    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.log.write_all(bytes)?;
        self.size = self.size.saturating_add(bytes.len() as u64);
        // The offset is the file's end: other writers' bytes before it share this time.
        let end = self.log.metadata().map_or(self.size, |m| m.len());
        writeln!(self.times, "{end} {}", now_ms())
    }

    /// Notes in the time index that the service's output has ended: everything it
    /// wrote is in the log (`END-OFFSET UNIX-MS end`).
    pub fn mark_end(&mut self) -> io::Result<()> {
        let end = self.log.metadata().map_or(self.size, |m| m.len());
        writeln!(self.times, "{end} {} end", now_ms())
    }

    /// `NAME.log` becomes `NAME.log.1`, each older one moves up, and the one past
    /// `keep` goes; the new log starts empty.
    fn rotate(&mut self) -> io::Result<()> {
        let keep = self.rotation.map_or(0, |r| r.keep);
        let len = self.log.metadata().map_or(self.size, |m| m.len());
        self.base = self.base.map(|base| base.saturating_add(len));
        for n in (1..=keep).rev() {
            let from = if n == 1 {
                self.path.clone()
            } else {
                rotated(&self.path, n.saturating_sub(1))
            };
            let to = rotated(&self.path, n);
            if from.exists() {
                fs::rename(&from, &to)?;
                let _ = fs::rename(times_path(&from), times_path(&to));
            }
        }
        if keep == 0 {
            fs::remove_file(&self.path)?;
            let _ = fs::remove_file(times_path(&self.path));
        }
        // The index (with its base) before the log: a follower that finds the new log
        // finds its base.
        self.times = append(&times_path(&self.path))?;
        self.write_base()?;
        self.log = append(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

/// Opens a log or its time index for appending: a regular file only, never waiting (a
/// FIFO there would hold the relay in its open for ever, unseen by any command).
fn append(path: &Path) -> io::Result<File> {
    super::regular::open_private(path, OpenOptions::new().create(true).append(true))
}

/// Whether the service's output has ended since `since_ms`: the time index's last
/// entry is an end mark written then or later.
pub fn ended_since(log: &Path, since_ms: u64) -> bool {
    let text = read_text(&times_path(log));
    text.lines().last().is_some_and(|line| {
        let mut fields = line.split(' ');
        let ms = fields.nth(1).and_then(|ms| ms.parse::<u64>().ok());
        fields.next() == Some("end") && ms.is_some_and(|ms| ms >= since_ms)
    })
}

/// The text of a time index, empty when it cannot be read: a regular file only, never
/// through a symbolic link.
pub(super) fn read_text(path: &Path) -> String {
    use std::io::Read;
    let mut text = String::new();
    if let Ok(mut file) = super::regular::open_regular(path, OpenOptions::new().read(true))
        && file.read_to_string(&mut text).is_err()
    {
        text.clear();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_keeps_lines_whole_and_files_within_the_limit() {
        let dir = std::env::temp_dir().join(format!("xtask-logwriter-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("w.log");
        let rotation = Rotation { max_size: 100, keep: 2 };
        let mut writer = LogWriter::open(&path, Some(rotation)).expect("open");
        for chunk in 0..40 {
            let text: String = (0..3).map(|i| format!("line {chunk:03}-{i}\n")).collect();
            writer.write(text.as_bytes()).expect("write");
        }
        let files = [path.clone(), rotated(&path, 1), rotated(&path, 2)];
        let mut lines = Vec::new();
        for file in files.iter().rev() {
            let text = std::fs::read_to_string(file).expect("read");
            assert!(text.len() <= 100, "{} has {} bytes", file.display(), text.len());
            assert!(text.ends_with('\n'), "{} ends inside a line", file.display());
            lines.extend(text.lines().map(str::to_string));
        }
        assert!(!rotated(&path, 3).exists(), "more files than keep + 1");
        assert!(lines.iter().all(|l| l.len() == 10), "a split line in {lines:?}");
        assert_eq!(lines.last().map(String::as_str), Some("line 039-2"));
        let times = std::fs::read_to_string(times_path(&path)).expect("the time index");
        let last_end: u64 = times
            .lines()
            .last()
            .and_then(|l| l.split(' ').next()?.parse().ok())
            .expect("an entry");
        assert_eq!(last_end, std::fs::metadata(&path).expect("log").len());

        writer.write(&[b'x'; 250]).expect("a line longer than the limit");
        for file in &files {
            let len = std::fs::metadata(file).expect("log").len();
            assert!(len <= 100, "{} has {len} bytes", file.display());
        }
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
