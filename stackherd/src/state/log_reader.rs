//! Following a log file as `tail -F` does, a complete line at a time, in bounded
//! memory: a service can print a line of gigabytes (a minified bundle, `yes`), and
//! whoever follows its log (`logs -f`, the foreground stream, the terminal UI, a
//! log-line probe) must not hold it whole, nor a whole burst at once.

use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::log_chain::{self, LogFile};

/// The most of one line a reader keeps; the rest is counted, named at the line's end,
/// and stays in the file.
pub const LINE_MAX: usize = 1024 * 1024;
/// The most read in one call: a burst is handed out over several calls.
const CALL_BUDGET: usize = 4 * 1024 * 1024;
const CHUNK: usize = 64 * 1024;
/// How long a line without its end stays unchanged before what there is of it is shown
/// (a prompt). The relay already held it 100 ms for its end; a service that writes its
/// log itself may write a line in pieces.
const QUIET: Duration = Duration::from_millis(100);

/// Follows one log. The file it reads is held open, so that a rotation (the relay
/// renames the log to `NAME.log.1` and starts a new one) never loses the old file's
/// last lines: it is read to its end, then the file written after it (found by inode
/// among the rotated ones, however many rotations happened since the last read), and
/// so on up to the current one. Files removed (past `log_keep`) before they could be
/// read are named by a line in the stream. A file that shrinks (truncated) is read
/// again from its start. The bytes of an unfinished line wait for its end, so a UTF-8
/// character split across two reads is decoded whole; once they stayed unchanged for
/// `QUIET`, they are handed out (a prompt), and the line's end comes later as a line
/// of its own.
#[derive(Debug)]
pub struct LogReader {
    path: PathBuf,
    /// The file being read, once it was seen.
    file: Option<LogFile>,
    offset: u64,
    partial: Vec<u8>,
    /// Bytes of the unfinished line past `LINE_MAX`.
    cut: u64,
    /// How much of `partial` was handed out already (a prompt shown before its end).
    shown: usize,
    /// When `partial` last grew.
    grew_at: Instant,
    /// Whether an unfinished line is handed out after `QUIET` (not for a probe, whose
    /// pattern is for whole lines).
    unfinished: bool,
    /// The log's name now names another file: the one held is read to its end once
    /// more (the relay may have written to it just before it renamed it).
    draining: bool,
}

/// A copy reads on its own: the descriptor is shared, and read only at an offset.
impl Clone for LogReader {
    fn clone(&self) -> LogReader {
        LogReader {
            path: self.path.clone(),
            file: self.file.as_ref().and_then(LogFile::try_clone),
            offset: self.offset,
            partial: self.partial.clone(),
            cut: self.cut,
            shown: self.shown,
            grew_at: self.grew_at,
            unfinished: self.unfinished,
            draining: self.draining,
        }
    }
}

impl LogReader {
    /// Reads what is written from `offset` on.
    pub fn from(path: &Path, offset: u64) -> LogReader {
        LogReader {
            path: path.to_path_buf(),
            file: log_chain::open_current(path),
            offset,
            partial: Vec::new(),
            cut: 0,
            shown: 0,
            grew_at: Instant::now(),
            unfinished: true,
            draining: false,
        }
    }

    /// Reads only what is written from now on.
    pub fn at_end(path: &Path) -> LogReader {
        // A symbolic link's own length: it is never read through.
        LogReader::from(path, std::fs::symlink_metadata(path).map_or(0, |m| m.len()))
    }

    /// When the unfinished line read so far is due to be handed out, if there is one: a
    /// caller that sleeps until something changes wakes then.
    pub fn unfinished_due(&self) -> Option<Instant> {
        let waiting = self.unfinished && self.partial.len() > self.shown;
        waiting.then(|| self.grew_at.checked_add(QUIET).unwrap_or(self.grew_at))
    }

    /// Hands out whole lines only: an unfinished one waits for its end however long.
    pub fn whole_lines_only(mut self) -> LogReader {
        self.unfinished = false;
        self
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
    /// their bytes, and an unfinished one that stayed so for `QUIET`; a line longer than
    /// `LINE_MAX` ends with how much of it was left out.
    pub fn new_raw_lines(&mut self) -> io::Result<Vec<Vec<u8>>> {
        let mut lines = Vec::new();
        let mut buf = vec![0u8; CHUNK];
        let mut budget = CALL_BUDGET;
        while budget > 0 {
            self.settle_file()?;
            let Some(held) = &self.file else {
                break;
            };
            let want = buf.len().min(budget);
            let read = held
                .file
                .read_at(buf.get_mut(..want).unwrap_or_default(), self.offset)?;
            if read == 0 {
                if self.next_file(&mut lines) {
                    continue;
                }
                break;
            }
            self.offset = self.offset.saturating_add(read as u64);
            budget = budget.saturating_sub(read);
            self.take(buf.get(..read).unwrap_or_default(), &mut lines);
        }
        self.show_unfinished(&mut lines);
        Ok(lines)
    }

    /// Hands out what came of an unfinished line, once it stayed so for `QUIET`: up to
    /// its last whole UTF-8 character, the rest waits.
    fn show_unfinished(&mut self, lines: &mut Vec<Vec<u8>>) {
        let new = self.partial.get(self.shown..).unwrap_or_default();
        if !self.unfinished || new.is_empty() || self.grew_at.elapsed() < QUIET {
            return;
        }
        let whole = match std::str::from_utf8(new) {
            Err(err) if err.error_len().is_none() => err.valid_up_to(),
            _ => new.len(),
        };
        if whole > 0 {
            lines.push(new.get(..whole).unwrap_or_default().to_vec());
            self.shown = self.shown.saturating_add(whole);
        }
    }

    /// Opens the file when it has appeared; reads it from its start when it shrank.
    fn settle_file(&mut self) -> io::Result<()> {
        if self.file.is_none() {
            self.file = log_chain::open_current(&self.path);
        }
        if let Some(held) = &self.file
            && held.file.metadata()?.len() < self.offset
        {
            self.offset = 0;
            self.partial.clear();
            self.cut = 0;
            self.shown = 0;
        }
        Ok(())
    }

    /// At the end of the file held: whether there is another to go on with (the log's
    /// name names a new file, and the old one was read to its end after that was seen):
    /// the one written after it, or, when that was removed before it could be read, the
    /// oldest one kept, after a line that says what was lost.
    fn next_file(&mut self, lines: &mut Vec<Vec<u8>>) -> bool {
        let Some(held) = self.file.as_mut() else {
            return false;
        };
        // Its base, unless a rotation raced the read of it (or it is in no index): the
        // file is found again by its inode.
        if held.base.is_none() {
            held.base = log_chain::base_now(&self.path, held.inode);
        }
        let now = std::fs::symlink_metadata(&self.path).ok().map(|m| m.ino());
        if now.is_none() || now == Some(held.inode) {
            return false;
        }
        if !self.draining {
            self.draining = true;
            return true;
        }
        self.draining = false;
        let Some((mut next, direct)) = log_chain::after(&self.path, held.inode) else {
            return false;
        };
        if next.base.is_none() {
            next.base = log_chain::base_now(&self.path, next.inode);
        }
        if !direct {
            let end = held.base.map(|base| base.saturating_add(self.offset));
            let lost = end.zip(next.base).map(|(end, base)| base.saturating_sub(end));
            if lost != Some(0) {
                lines.push(log_chain::lost_note(lost).into_bytes());
            }
        }
        self.file = Some(next);
        self.offset = 0;
        true
    }

    /// Splits what was read into lines, each kept up to `LINE_MAX`.
    fn take(&mut self, mut bytes: &[u8], lines: &mut Vec<Vec<u8>>) {
        while let Some(at) = bytes.iter().position(|b| *b == b'\n') {
            let (line, rest) = bytes.split_at(at);
            self.keep(line);
            lines.extend(self.finish());
            bytes = rest.get(1..).unwrap_or_default();
        }
        self.keep(bytes);
    }

    fn keep(&mut self, bytes: &[u8]) {
        if !bytes.is_empty() {
            self.grew_at = Instant::now();
        }
        let room = LINE_MAX.saturating_sub(self.partial.len()).min(bytes.len());
        let (kept, over) = bytes.split_at(room);
        self.partial.extend_from_slice(kept);
        self.cut = self.cut.saturating_add(over.len() as u64);
    }

    /// The line just ended: what of it was not handed out yet.
    fn finish(&mut self) -> Option<Vec<u8>> {
        let mut line = std::mem::take(&mut self.partial);
        let shown = std::mem::take(&mut self.shown);
        line.drain(..shown.min(line.len()));
        // Its start was shown and nothing came after it but its end.
        if shown > 0 && line.is_empty() && self.cut == 0 {
            return None;
        }
        if self.cut > 0 {
            line.extend_from_slice(cut_note(self.cut).as_bytes());
            self.cut = 0;
        }
        Some(line)
    }
}

/// What ends a line cut to `LINE_MAX`.
pub fn cut_note(left_out: u64) -> String {
    format!(" [… {left_out} more bytes of this line are in the log file]")
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, reason = "test counters stay small")]
mod tests {
    use super::*;
    use std::fs::File;
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

    /// Rotates `path` as the relay does, keeping `keep` files, then starts the new one
    /// with `line`.
    fn rotate(path: &Path, keep: u32, line: &str) {
        use super::super::log_writer::rotated;
        for n in (1..=keep).rev() {
            let from = if n == 1 {
                path.to_path_buf()
            } else {
                rotated(path, n - 1)
            };
            if from.exists() {
                std::fs::rename(&from, rotated(path, n)).expect("rotate");
            }
        }
        std::fs::write(path, format!("{line}\n")).expect("new log");
    }

    #[test]
    fn several_rotations_between_two_reads_lose_no_line() {
        let (dir, path) = temp("chain");
        std::fs::write(&path, "zero\n").expect("log");
        let mut reader = LogReader::from(&path, 0);
        assert_eq!(reader.new_lines().expect("read"), vec!["zero"]);
        for line in ["one", "two", "three", "four"] {
            rotate(&path, 5, line);
        }
        assert_eq!(reader.new_lines().expect("read"), vec!["one", "two", "three", "four"]);
        // Past `keep` (a log that keeps 2): what was removed unread is named, once.
        for n in 3..=4 {
            std::fs::remove_file(super::super::log_writer::rotated(&path, n)).expect("remove");
        }
        for line in ["five", "six", "seven", "eight"] {
            rotate(&path, 2, line);
        }
        let lines = reader.new_lines().expect("read");
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert!(lines[0].contains("rotated away"), "{lines:?}");
        assert_eq!(&lines[1..], ["six", "seven", "eight"]);
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    #[test]
    fn an_unfinished_line_is_shown_after_a_quiet_time_and_its_end_after_it() {
        let (dir, path) = temp("prompt");
        let mut file = File::create(&path).expect("create");
        let mut reader = LogReader::from(&path, 0);
        file.write_all(b"Password> ").expect("write");
        assert_eq!(reader.new_lines().expect("read"), Vec::<String>::new());
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut shown = Vec::new();
        while shown.is_empty() && Instant::now() < deadline {
            shown = reader.new_lines().expect("read");
            std::thread::yield_now();
        }
        assert_eq!(shown, vec!["Password> "]);
        file.write_all(b"ok\n\nnext\n").expect("write");
        assert_eq!(reader.new_lines().expect("read"), vec!["ok", "", "next"]);
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
