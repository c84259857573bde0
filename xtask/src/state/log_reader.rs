//! Following a log file as `tail -F` does, a complete line at a time, in bounded
//! memory: a service can print a line of gigabytes (a minified bundle, `yes`), and
//! whoever follows its log (`logs -f`, the foreground stream, the terminal UI, a
//! log-line probe) must not hold it whole, nor a whole burst at once.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::regular::open_regular;

/// The most of one line a reader keeps; the rest is counted, named at the line's end,
/// and stays in the file.
pub const LINE_MAX: usize = 1024 * 1024;
/// The most read in one call: a burst is handed out over several calls.
const CALL_BUDGET: usize = 4 * 1024 * 1024;
const CHUNK: usize = 64 * 1024;

/// Follows one log. The file it reads is held open, so that a rotation (the relay
/// renames the log to `NAME.log.1` and starts a new one) never loses the old file's
/// last lines: it is read to its end before the new one is read from its start. A file
/// that shrinks (truncated) is read again from its start. The bytes of an unfinished
/// line wait for its end, so a UTF-8 character split across two reads is decoded whole.
#[derive(Debug)]
pub struct LogReader {
    path: PathBuf,
    /// The file being read and its inode, once it was seen.
    file: Option<(File, u64)>,
    offset: u64,
    partial: Vec<u8>,
    /// Bytes of the unfinished line past `LINE_MAX`.
    cut: u64,
    /// The log's name now names another file: the one held is read to its end once
    /// more (the relay may have written to it just before it renamed it).
    draining: bool,
}

/// A copy reads on its own: the descriptor is shared, and read only at an offset.
impl Clone for LogReader {
    fn clone(&self) -> LogReader {
        LogReader {
            path: self.path.clone(),
            file: self
                .file
                .as_ref()
                .and_then(|(file, inode)| Some((file.try_clone().ok()?, *inode))),
            offset: self.offset,
            partial: self.partial.clone(),
            cut: self.cut,
            draining: self.draining,
        }
    }
}

impl LogReader {
    /// Reads what is written from `offset` on.
    pub fn from(path: &Path, offset: u64) -> LogReader {
        LogReader {
            path: path.to_path_buf(),
            file: open(path),
            offset,
            partial: Vec::new(),
            cut: 0,
            draining: false,
        }
    }

    /// Reads only what is written from now on.
    pub fn at_end(path: &Path) -> LogReader {
        // A symbolic link's own length: it is never read through.
        LogReader::from(path, std::fs::symlink_metadata(path).map_or(0, |m| m.len()))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The complete lines written since the last call, invalid UTF-8 replaced.
    pub fn new_lines(&mut self) -> io::Result<Vec<String>> {
        Ok(self
            .new_raw_lines()?
            .iter()
            .map(|line| String::from_utf8_lossy(line).into_owned())
            .collect())
    }

    /// The complete lines written since the last call (as much as one call reads), as
    /// their bytes; a line longer than `LINE_MAX` ends with how much of it was left out.
    pub fn new_raw_lines(&mut self) -> io::Result<Vec<Vec<u8>>> {
        let mut lines = Vec::new();
        let mut buf = vec![0u8; CHUNK];
        let mut budget = CALL_BUDGET;
        while budget > 0 {
            self.settle_file()?;
            let Some((file, _)) = &self.file else {
                break;
            };
            let want = buf.len().min(budget);
            let read = file.read_at(buf.get_mut(..want).unwrap_or_default(), self.offset)?;
            if read == 0 {
                if self.next_file() {
                    continue;
                }
                break;
            }
            self.offset = self.offset.saturating_add(read as u64);
            budget = budget.saturating_sub(read);
            self.take(buf.get(..read).unwrap_or_default(), &mut lines);
        }
        Ok(lines)
    }

    /// Opens the file when it has appeared; reads it from its start when it shrank.
    fn settle_file(&mut self) -> io::Result<()> {
        if self.file.is_none() {
            self.file = open(&self.path);
        }
        if let Some((file, _)) = &self.file
            && file.metadata()?.len() < self.offset
        {
            self.offset = 0;
            self.partial.clear();
            self.cut = 0;
        }
        Ok(())
    }

    /// At the end of the file held: whether there is another to go on with (the log's
    /// name names a new file, and the old one was read to its end after that was seen).
    fn next_file(&mut self) -> bool {
        let held = self.file.as_ref().map(|(_, inode)| *inode);
        let now = std::fs::symlink_metadata(&self.path).ok().map(|m| m.ino());
        if now.is_none() || now == held {
            return false;
        }
        if !self.draining {
            self.draining = true;
            return true;
        }
        self.draining = false;
        self.file = open(&self.path);
        self.offset = 0;
        self.file.is_some()
    }

    /// Splits what was read into lines, each kept up to `LINE_MAX`.
    fn take(&mut self, mut bytes: &[u8], lines: &mut Vec<Vec<u8>>) {
        while let Some(at) = bytes.iter().position(|b| *b == b'\n') {
            let (line, rest) = bytes.split_at(at);
            self.keep(line);
            lines.push(self.finish());
            bytes = rest.get(1..).unwrap_or_default();
        }
        self.keep(bytes);
    }

    fn keep(&mut self, bytes: &[u8]) {
        let room = LINE_MAX.saturating_sub(self.partial.len()).min(bytes.len());
        let (kept, over) = bytes.split_at(room);
        self.partial.extend_from_slice(kept);
        self.cut = self.cut.saturating_add(over.len() as u64);
    }

    fn finish(&mut self) -> Vec<u8> {
        let mut line = std::mem::take(&mut self.partial);
        if self.cut > 0 {
            line.extend_from_slice(cut_note(self.cut).as_bytes());
            self.cut = 0;
        }
        line
    }
}

/// What ends a line cut to `LINE_MAX`.
pub fn cut_note(left_out: u64) -> String {
    format!(" [… {left_out} more bytes of this line are in the log file]")
}

fn open(path: &Path) -> Option<(File, u64)> {
    let file = open_regular(path, OpenOptions::new().read(true)).ok()?;
    let inode = file.metadata().ok()?.ino();
    Some((file, inode))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn temp(name: &str) -> (PathBuf, PathBuf) {
        let dir = std::env::temp_dir().join(format!("xtask-logreader-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("svc.log");
        (dir, path)
    }

    #[test]
    fn a_character_split_across_reads_is_decoded_whole() {
        let (dir, path) = temp("split");
        let mut file = File::create(&path).expect("create");
        let mut reader = LogReader::from(&path, 0);
        let bytes = "héllo\nwörld\n".as_bytes();
        // Cut inside the two-byte `é`, then inside `ö`.
        file.write_all(&bytes[..2]).expect("write");
        assert_eq!(reader.new_lines().expect("read"), Vec::<String>::new());
        file.write_all(&bytes[2..9]).expect("write");
        assert_eq!(reader.new_lines().expect("read"), vec!["héllo".to_string()]);
        file.write_all(&bytes[9..]).expect("write");
        assert_eq!(reader.new_lines().expect("read"), vec!["wörld".to_string()]);
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    #[test]
    fn a_huge_line_is_kept_up_to_the_limit_and_a_burst_comes_in_parts() {
        let (dir, path) = temp("huge");
        let mut file = File::create(&path).expect("create");
        let mut reader = LogReader::from(&path, 0);
        let huge = 3 * LINE_MAX;
        file.write_all(&vec![b'A'; huge]).expect("write");
        file.write_all(b"\nafter\n").expect("write");
        let mut lines = Vec::new();
        for _ in 0..4 {
            lines.extend(reader.new_raw_lines().expect("read"));
        }
        assert_eq!(lines.len(), 2, "{:?}", lines.iter().map(Vec::len).collect::<Vec<_>>());
        let first = String::from_utf8_lossy(&lines[0]).into_owned();
        assert!(first.starts_with(&"A".repeat(LINE_MAX)));
        assert!(
            first.ends_with(&cut_note((huge - LINE_MAX) as u64)),
            "{}",
            &first[LINE_MAX..]
        );
        assert_eq!(lines[1], b"after");
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    #[test]
    fn a_rotation_loses_no_line_of_the_old_file() {
        let (dir, path) = temp("rotate");
        let mut old = File::create(&path).expect("create");
        let mut reader = LogReader::from(&path, 0);
        old.write_all(b"one\n").expect("write");
        assert_eq!(reader.new_lines().expect("read"), vec!["one".to_string()]);
        // Written, renamed, and written again through the old descriptor (a relay's
        // last write racing its rotation), then the new file.
        old.write_all(b"two\n").expect("write");
        std::fs::rename(&path, dir.join("svc.log.1")).expect("rotate");
        old.write_all(b"three\n").expect("write");
        File::create(&path)
            .and_then(|mut new| new.write_all(b"four\n"))
            .expect("new log");
        assert_eq!(reader.new_lines().expect("read"), vec!["two", "three", "four"]);
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
