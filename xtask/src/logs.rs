//! Reading service logs: the last lines, line counts, and `logs -f`.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::Context;
use crate::error::{Error, Result};
use crate::poll::Backoff;

/// How much of a log's end is read to find its last lines.
const TAIL_WINDOW: u64 = 256 * 1024;

/// Prints the last `lines` lines of a service's log, then follows it with `follow`.
pub fn run(ctx: &Context, service: &str, lines: usize, follow: bool) -> Result<()> {
    ctx.select(&[service.to_string()])?;
    let path = ctx.registry.log_path(service);
    if !path.exists() {
        return Err(Error::failure(format!(
            "service `{service}` has no log yet ({} does not exist); start it with `cargo xtask start-bg {service}`",
            path.display()
        )));
    }
    for line in tail(&path, lines) {
        ctx.ui.result(line);
    }
    if follow {
        follow_file(ctx, &path)?;
    }
    Ok(())
}

/// The last `n` lines of a file (empty when it cannot be read).
pub fn tail(path: &Path, n: usize) -> Vec<String> {
    let Ok(mut file) = File::open(path) else {
        return Vec::new();
    };
    let len = file.metadata().map_or(0, |m| m.len());
    let start = len.saturating_sub(TAIL_WINDOW);
    if file.seek(SeekFrom::Start(start)).is_err() {
        return Vec::new();
    }
    let mut bytes = Vec::new();
    if file.read_to_end(&mut bytes).is_err() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<&str> = text.lines().collect();
    if start > 0 && !lines.is_empty() {
        lines.remove(0); // cut in the middle of a line
    }
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

/// How many lines a file has.
pub fn count_lines(path: &Path) -> u64 {
    let Ok(file) = File::open(path) else { return 0 };
    let mut reader = BufReader::with_capacity(64 * 1024, file);
    let mut count = 0;
    loop {
        let buf = match reader.fill_buf() {
            Ok([]) | Err(_) => return count,
            Ok(buf) => buf,
        };
        count += buf.iter().filter(|&&b| b == b'\n').count() as u64;
        let len = buf.len();
        reader.consume(len);
    }
}

/// Prints what is appended to the file until interrupted, as `tail -F` does: a file
/// that shrinks (truncated or recreated) is read again from its start.
fn follow_file(ctx: &Context, path: &Path) -> Result<()> {
    let mut offset = std::fs::metadata(path).map_or(0, |m| m.len());
    let mut pending = String::new();
    let mut backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(250));
    loop {
        let len = std::fs::metadata(path).map_or(0, |m| m.len());
        if len < offset {
            offset = 0;
        }
        if len > offset {
            let mut file =
                File::open(path).map_err(|err| Error::failure(format!("cannot read {}: {err}", path.display())))?;
            file.seek(SeekFrom::Start(offset))
                .map_err(|err| Error::failure(err.to_string()))?;
            let mut bytes = Vec::new();
            let read = file
                .read_to_end(&mut bytes)
                .map_err(|err| Error::failure(err.to_string()))?;
            offset += read as u64;
            pending.push_str(&String::from_utf8_lossy(&bytes));
            while let Some(end) = pending.find('\n') {
                ctx.ui.result(&pending[..end]);
                pending.drain(..=end);
            }
            backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(250));
        }
        // Following has no end: the pause only paces reads of a growing file.
        backoff.pause(Instant::now() + Duration::from_secs(1));
    }
}
