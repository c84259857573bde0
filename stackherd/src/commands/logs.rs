//! `logs [SERVICE...]`: the services' logs (all when none are named), their lines
//! interleaved in the order they were written and prefixed as in the foreground
//! stream; then, with `-f`, what is appended to them, services that start later
//! included.

use std::process::Command;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, UNIX_EPOCH};

use nix::sys::signal::Signal;

use crate::docker;
use crate::error::{Error, Result};
use crate::os::ServiceProcess;
use crate::os::signal::{KillTarget, signal};
use crate::poll;
use crate::poll::Backoff;
use crate::service::Context;
use crate::state::log_times::{TimedLine, timed_lines};
use crate::state::logs::LogReader;
use crate::state::{Entry, now_ms};
use crate::ui;

/// How often a stream from `docker logs` looks whether its reader has gone.
const READER_CHECK: Duration = Duration::from_millis(250);

pub struct Options {
    /// How many lines from the end, per service.
    pub lines: usize,
    pub follow: bool,
    /// Only lines written from then on (ms since the Unix epoch).
    pub since: Option<u64>,
    pub timestamps: bool,
    pub no_prefix: bool,
    /// The bytes as they are: escape sequences pass (otherwise only colour does).
    pub raw: bool,
}

/// How the lines of several services are printed.
struct Printer<'o> {
    names: Vec<String>,
    width: usize,
    prefixed: bool,
    options: &'o Options,
}

impl Printer<'_> {
    /// One line: made safe for a terminal, unless `--raw` asked for its bytes.
    fn line(&self, index: usize, at_ms: u64, bytes: &[u8]) {
        let name = self.names.get(index).filter(|_| self.prefixed);
        if self.options.raw {
            let mut out = Vec::with_capacity(bytes.len().saturating_add(40));
            if let Some(name) = name {
                out.extend_from_slice(format!("{name:<width$} | ", width = self.width).as_bytes());
            }
            if self.options.timestamps {
                out.extend_from_slice(format!("{} ", rfc3339(at_ms)).as_bytes());
            }
            out.extend_from_slice(bytes);
            out.push(b'\n');
            return ui::raw_bytes(&out);
        }
        let text = String::from_utf8_lossy(bytes);
        let text = if self.options.timestamps {
            // Made safe before the time goes in front: a line's `\r` redraws only its
            // own text, never our time (`x\r2020-01-01T00:00:00Z forged`).
            format!("{} {}", rfc3339(at_ms), ui::text::shown(&text))
        } else {
            text.into_owned()
        };
        match name {
            Some(name) => ui::stream_line(index, name, self.width, '|', &text),
            None => ui::log_line(&text),
        }
    }
}

fn rfc3339(at_ms: u64) -> String {
    let at = UNIX_EPOCH
        .checked_add(Duration::from_millis(at_ms))
        .unwrap_or(UNIX_EPOCH);
    humantime::format_rfc3339_millis(at).to_string()
}

pub fn run(ctx: &Context, services: &[String], options: &Options) -> Result<()> {
    // A compose service (named alone): the compose tool's own log of it.
    if let [only] = services
        && ctx.config.service(only).is_none()
        && ctx.config.project.compose_services.contains(only)
        && let Some(command) =
            docker::compose_logs(&ctx.config, only, options.lines, options.follow, options.timestamps)
    {
        return stream(command, &format!("compose logs {only}"), options);
    }
    let names = ctx.select(services)?;
    if let [only] = names.as_slice() {
        // One container service: Docker's own log of it.
        if let Some(Entry::Record(record)) = ctx.registry.entry(only)
            && let Some(container) = record.container
        {
            return docker_logs(&container, options);
        }
        let path = ctx.registry.log_path(only);
        if services.len() == 1 && !path.exists() && !options.follow {
            return Err(Error::NoLog {
                service: only.clone(),
                path,
            });
        }
    }
    let printer = Printer {
        width: names.iter().map(String::len).max().unwrap_or(0),
        prefixed: names.len() > 1 && !options.no_prefix,
        names,
        options,
    };
    // Set up first, so that what is written while the history is read is followed.
    let mut readers: Vec<LogReader> = printer
        .names
        .iter()
        .map(|name| LogReader::at_end(&ctx.registry.log_path(name)))
        .collect();
    for (index, line) in history(ctx, &printer.names, options.lines, options.since) {
        printer.line(index, line.at_ms, &line.bytes);
    }
    if options.follow {
        follow(&printer, &mut readers)?;
    }
    Ok(())
}

/// The last `lines` lines of each service's log (those written since `since`), merged
/// in time order, each with the index of its service in `names`; lines written in the
/// same millisecond keep their service's order. The terminal UI fills its pane so too.
pub fn history(ctx: &Context, names: &[String], lines: usize, since: Option<u64>) -> Vec<(usize, TimedLine)> {
    let mut merged: Vec<(usize, TimedLine)> = names
        .iter()
        .enumerate()
        .flat_map(|(index, name)| {
            let lines = timed_lines(&ctx.registry.log_path(name), Some(lines), since);
            lines.into_iter().map(move |line| (index, line))
        })
        .collect();
    merged.sort_by_key(|(_, line)| line.at_ms);
    merged
}

/// Prints what is appended to the logs until the reader of our output goes away.
fn follow(printer: &Printer<'_>, readers: &mut [LogReader]) -> Result<()> {
    // Following has no end: the pause only paces reads of growing files.
    let fresh = || Backoff::new(Duration::from_millis(10), Duration::from_millis(250));
    let mut backoff = fresh();
    loop {
        let mut any = false;
        for (index, reader) in readers.iter_mut().enumerate() {
            let lines = reader
                .new_raw_lines()
                .map_err(|err| Error::io(format!("cannot read {}", reader.path().display()), err))?;
            let now = now_ms();
            for line in &lines {
                printer.line(index, now, line);
            }
            any |= !lines.is_empty();
        }
        if any {
            backoff = fresh();
        }
        // Its reader has gone (`logs -f | grep -m1 ready`): nothing more to do.
        if ui::stdout_gone() {
            return Ok(());
        }
        backoff.pause(poll::after(Duration::from_secs(1)));
    }
}

/// A container service's log as Docker keeps it, its lines (stdout and stderr, in the
/// order Docker writes them) made safe for a terminal like any other service's.
fn docker_logs(name: &str, options: &Options) -> Result<()> {
    let mut command = Command::new("docker");
    command.args(["logs", "--tail", &options.lines.to_string()]);
    if options.follow {
        command.arg("-f");
    }
    if options.timestamps {
        command.arg("--timestamps");
    }
    command.arg(name);
    stream(command, &format!("docker logs {name}"), options)
}

/// Prints what `command` (a `docker logs` or the compose tool's `logs`) writes, line by
/// line, made safe for a terminal unless `--raw`. When our reader goes away (`logs -f
/// db | head -1`), the command is ended: a quiet container would otherwise keep it,
/// and us, waiting for a line that nobody reads.
fn stream(mut command: Command, what: &str, options: &Options) -> Result<()> {
    use std::io::BufRead;
    let cannot = |err| Error::io(format!("cannot run {what}"), err);
    let (reader, writer) = std::io::pipe().map_err(cannot)?;
    let mut child = command
        .stdout(writer.try_clone().map_err(cannot)?)
        .stderr(writer)
        .spawn()
        .map_err(cannot)?;
    // Both ends of the pipe's writing side went to the child: the reads end with it.
    drop(command);
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in std::io::BufReader::new(reader).split(b'\n') {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    loop {
        match rx.recv_timeout(READER_CHECK) {
            Ok(line) if options.raw => {
                let mut bytes = line;
                bytes.push(b'\n');
                ui::raw_bytes(&bytes);
            }
            Ok(line) => ui::log_line(&String::from_utf8_lossy(&line)),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if ui::stdout_gone() {
            if let Some(process) = ServiceProcess::of(child.id() as i32) {
                let _ = signal(KillTarget::Process(process), Signal::SIGTERM);
            }
            break;
        }
    }
    let status = child.wait().map_err(cannot)?;
    if status.success() || ui::stdout_closed() {
        Ok(())
    } else {
        Err(Error::Docker {
            what: what.to_string(),
            source: format!("failed ({status})").into(),
        })
    }
}
