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
    if let Some(crate::registry::Entry::Record(record)) = ctx.registry.entry(service)
        && let Some(name) = record.container
    {
        return docker_logs(&name, lines, follow);
    }
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

/// A container service's log as Docker keeps it.
fn docker_logs(name: &str, lines: usize, follow: bool) -> Result<()> {
    let mut command = std::process::Command::new("docker");
    command.args(["logs", "--tail", &lines.to_string()]);
    if follow {
        command.arg("-f");
    }
    let status = command
        .arg(name)
        .status()
        .map_err(|err| Error::failure(format!("cannot run docker logs: {err}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::failure(format!("docker logs {name} failed ({status})")))
    }
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

/// Follows the logs of several services for the foreground stream: each new complete
/// line is printed once, prefixed with its service's name.
pub struct Follower {
    files: Vec<Followed>,
    width: usize,
}

struct Followed {
    service: String,
    path: std::path::PathBuf,
    offset: u64,
    partial: String,
}

impl Follower {
    /// Starts at the current end of each log, so that only what is written from now on
    /// is shown.
    pub fn new(ctx: &Context, services: &[String]) -> Follower {
        let files = services
            .iter()
            .map(|service| {
                let path = ctx.registry.log_path(service);
                let offset = std::fs::metadata(&path).map_or(0, |m| m.len());
                Followed {
                    service: service.clone(),
                    path,
                    offset,
                    partial: String::new(),
                }
            })
            .collect();
        let width = services.iter().map(String::len).max().unwrap_or(0);
        Follower { files, width }
    }

    pub fn print_new(&mut self) {
        for (index, f) in self.files.iter_mut().enumerate() {
            let len = std::fs::metadata(&f.path).map_or(0, |m| m.len());
            if len < f.offset {
                f.offset = 0;
            }
            if len == f.offset {
                continue;
            }
            let Ok(mut file) = File::open(&f.path) else { continue };
            if file.seek(SeekFrom::Start(f.offset)).is_err() {
                continue;
            }
            let mut bytes = Vec::new();
            let Ok(read) = file.read_to_end(&mut bytes) else {
                continue;
            };
            f.offset += read as u64;
            f.partial.push_str(&String::from_utf8_lossy(&bytes));
            while let Some(end) = f.partial.find('\n') {
                crate::ui::stream_line(index, &f.service, self.width, '|', &f.partial[..end]);
                f.partial.drain(..=end);
            }
        }
    }

    pub fn event(&self, service: &str, text: impl std::fmt::Display) {
        let index = self.files.iter().position(|f| f.service == service).unwrap_or(0);
        crate::ui::stream_line(index, service, self.width, '▸', &text.to_string());
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
