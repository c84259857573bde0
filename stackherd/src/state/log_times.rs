//! A service's log lines with the times they were written, across its rotated files:
//! what `logs` merges into one stream, filters with `--since` and shows with `-t`.
//!
//! A line's time comes from the log's time index (written by the relay): the first
//! entry whose offset is at or past the line's end. Lines the index does not cover
//! (written before relays existed, or after the last entry by another writer) take
//! the file's modification time.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::UNIX_EPOCH;

use super::log_reader::{LINE_MAX, cut_note};
use super::log_writer::{read_text, rotated, times_path};
use super::regular::open_regular;

/// The most rotated files looked at.
const MAX_ROTATED: u32 = 1000;
/// The first window read from a file's end when only its last lines are wanted.
const FIRST_WINDOW: u64 = 64 * 1024;
/// The largest window: a log whose last lines are one huge line is not read whole.
const WINDOW_MAX: u64 = 16 * 1024 * 1024;

/// One line of a log and when it was written (milliseconds since the Unix epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedLine {
    pub at_ms: u64,
    /// The line's bytes as the service wrote them (`logs --raw` passes them on).
    pub bytes: Vec<u8>,
}

impl TimedLine {
    /// The line as text, invalid UTF-8 replaced.
    // Only the terminal UI uses it (the `tui` feature).
    #[cfg_attr(not(feature = "tui"), allow(dead_code))]
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// The lines of `log` and its rotated files, oldest first: the last `last` of those
/// written at or after `since` (all of them without either).
pub fn timed_lines(log: &Path, last: Option<usize>, since: Option<u64>) -> Vec<TimedLine> {
    let mut files = vec![log.to_path_buf()];
    files.extend((1..=MAX_ROTATED).map(|n| rotated(log, n)).take_while(|p| p.exists()));
    let mut found: Vec<TimedLine> = Vec::new();
    for file in files {
        let need = if since.is_some() {
            None
        } else {
            last.map(|n| n.saturating_sub(found.len()))
        };
        let mut lines = lines_of(&file, need);
        let older = since.is_some_and(|since| lines.first().is_some_and(|l| l.at_ms < since));
        lines.append(&mut found);
        found = lines;
        let enough = last.is_some_and(|n| found.len() >= n) && since.is_none();
        if enough || older {
            break;
        }
    }
    if let Some(since) = since {
        found.retain(|l| l.at_ms >= since);
    }
    if let Some(n) = last {
        let skip = found.len().saturating_sub(n);
        found.drain(..skip);
    }
    found
}

/// The lines of one file with their times; only about the last `need` when given.
fn lines_of(path: &Path, need: Option<usize>) -> Vec<TimedLine> {
    let Ok(mut file) = open_regular(path, OpenOptions::new().read(true)) else {
        return Vec::new();
    };
    let Ok(meta) = file.metadata() else { return Vec::new() };
    let (len, mtime) = (meta.len(), modified_ms(&meta));
    let mut window = FIRST_WINDOW;
    let (start, bytes) = loop {
        let start = match need {
            Some(_) => len.saturating_sub(window),
            None => 0,
        };
        let mut bytes = Vec::new();
        // Up to the length seen: a service writing on does not make the window grow.
        let window_len = len.saturating_sub(start);
        if file.seek(SeekFrom::Start(start)).is_err() || (&mut file).take(window_len).read_to_end(&mut bytes).is_err() {
            return Vec::new();
        }
        let lines = bytes.iter().filter(|&&b| b == b'\n').count();
        // One more line than needed: the first one may be cut.
        if start == 0 || need.is_some_and(|n| lines > n) || window >= WINDOW_MAX {
            break (start, bytes);
        }
        window = window.saturating_mul(4).min(WINDOW_MAX);
    };
    let index = read_index(&times_path(path));
    let mut lines = Vec::new();
    let mut line_start = 0usize;
    for (at, byte) in bytes.iter().enumerate() {
        if *byte != b'\n' {
            continue;
        }
        let end = start.saturating_add(at as u64).saturating_add(1);
        let text = bytes.get(line_start..at).unwrap_or_default();
        let whole = line_start > 0 || start == 0;
        // A window that starts inside a line cuts it: that one is left out, unless the
        // window stopped growing before it held the lines wanted (the line is huge).
        if whole || window >= WINDOW_MAX {
            let mut line = if whole {
                Vec::new()
            } else {
                earlier_note(start).into_bytes()
            };
            line.extend_from_slice(text.get(..LINE_MAX).unwrap_or(text));
            if text.len() > LINE_MAX {
                line.extend_from_slice(cut_note(text.len().saturating_sub(LINE_MAX) as u64).as_bytes());
            }
            lines.push(TimedLine {
                at_ms: time_of(&index, end, mtime),
                bytes: line,
            });
        }
        line_start = at.saturating_add(1);
    }
    // A last line without its end (a prompt) is shown as it is so far; only a whole
    // one (that began in the window).
    let unfinished = bytes.get(line_start..).unwrap_or_default();
    if !unfinished.is_empty() && (line_start > 0 || start == 0) {
        let mut line = unfinished.get(..LINE_MAX).unwrap_or(unfinished).to_vec();
        if unfinished.len() > LINE_MAX {
            line.extend_from_slice(cut_note(unfinished.len().saturating_sub(LINE_MAX) as u64).as_bytes());
        }
        lines.push(TimedLine {
            at_ms: time_of(&index, len, mtime),
            bytes: line,
        });
    }
    if let Some(n) = need {
        let skip = lines.len().saturating_sub(n);
        lines.drain(..skip);
    }
    lines
}

/// What begins a line read from its middle: it began up to `before` bytes earlier.
pub fn earlier_note(before: u64) -> String {
    format!("[… up to {before} earlier bytes of this line are in the log file] ")
}

/// (end offset, time) entries of a time index, in file order.
fn read_index(path: &Path) -> Vec<(u64, u64)> {
    let text = read_text(path);
    text.lines()
        .filter_map(|line| {
            let (end, ms) = line.split_once(' ')?;
            Some((end.parse().ok()?, ms.trim().parse().ok()?))
        })
        .collect()
}

fn time_of(index: &[(u64, u64)], line_end: u64, fallback: u64) -> u64 {
    let at = index.partition_point(|(end, _)| *end < line_end);
    index.get(at).map_or(fallback, |(_, ms)| *ms)
}

fn modified_ms(meta: &std::fs::Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
