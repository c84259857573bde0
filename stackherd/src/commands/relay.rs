//! The hidden `__relay` program: between services and their log files. It reads each
//! service's output (a pipe, or the master side of its terminal), writes whole lines
//! to its log with the time of each write in the log's time index, and rotates the
//! log (`log_max_size`, `log_keep`). One relay serves the services started together
//! (a level of a start), so that a start costs one more process per level, not per
//! service. It runs outside xtask, so the services keep logging when xtask dies; it
//! ignores the stop signals and lets go of a service's output when it ends, that is
//! when the service's last process that holds it has ended, so the last lines of a
//! stopped service are never lost; it exits when it has let go of all of them.

use std::ffi::OsString;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::os::signal::ignore_termination_signals;
use crate::state::log_writer::{LogWriter, Rotation};

pub use crate::os::spawn::RELAY_SUBCOMMAND as SUBCOMMAND;

/// How long an unfinished line waits for its end before it is written as it is (a
/// prompt, a progress bar).
const PARTIAL_WAIT: Duration = Duration::from_millis(100);
/// How much of one unfinished line is held back at most.
const MAX_PARTIAL: usize = 64 * 1024;

/// One service's output and its log.
struct Input {
    fd: OwnedFd,
    log: PathBuf,
    rotation: Option<Rotation>,
    writer: Option<LogWriter>,
    pending: Vec<u8>,
    partial_since: Option<Instant>,
}

/// Runs the relay: `LOG MAX_SIZE KEEP FD` for each service (a `MAX_SIZE` of 0: no
/// rotation; `FD`: its output, inherited). Its own output is /dev/null; what it cannot
/// write is dropped, never left to block a service.
pub fn run(args: &[OsString]) -> u8 {
    ignore_termination_signals();
    let Some(mut inputs) = parse(args) else {
        return 64;
    };
    let mut buffer = vec![0u8; 64 * 1024];
    while !inputs.is_empty() {
        let wait = inputs
            .iter()
            .filter_map(|i| i.partial_since)
            .map(|since| PARTIAL_WAIT.saturating_sub(since.elapsed()))
            .min();
        let ready = readable(&inputs, wait);
        let mut ended = Vec::new();
        for (index, input) in inputs.iter_mut().enumerate() {
            if ready.get(index).copied().unwrap_or(false) {
                if !input.read(&mut buffer) {
                    ended.push(index);
                }
            } else if input.partial_since.is_some_and(|since| since.elapsed() >= PARTIAL_WAIT) {
                input.flush();
            }
        }
        for index in ended.into_iter().rev() {
            inputs.remove(index).end();
        }
    }
    0
}

fn parse(args: &[OsString]) -> Option<Vec<Input>> {
    let mut inputs = Vec::new();
    for quad in args.chunks(4) {
        let [log, max_size, keep, fd] = quad else { return None };
        let max_size: u64 = max_size.to_str()?.parse().ok()?;
        let keep: u32 = keep.to_str()?.parse().ok()?;
        let fd: i32 = fd.to_str()?.parse().ok().filter(|fd| *fd > 2)?;
        let log = PathBuf::from(log);
        let rotation = (max_size > 0).then_some(Rotation { max_size, keep });
        inputs.push(Input {
            // SAFETY: xtask passed this descriptor for this relay to own; nothing else
            // in this process uses it.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            writer: LogWriter::open(&log, rotation).ok(),
            log,
            rotation,
            pending: Vec::new(),
            partial_since: None,
        });
    }
    (!inputs.is_empty()).then_some(inputs)
}

/// Which inputs have something to read (or have ended), within `wait` (for ever
/// without one).
fn readable(inputs: &[Input], wait: Option<Duration>) -> Vec<bool> {
    let timeout = match wait {
        None => PollTimeout::NONE,
        Some(wait) => PollTimeout::try_from(wait).unwrap_or(PollTimeout::MAX),
    };
    let mut fds: Vec<PollFd<'_>> = inputs
        .iter()
        .map(|i| PollFd::new(i.fd.as_fd(), PollFlags::POLLIN))
        .collect();
    if poll(&mut fds, timeout).is_err() {
        return vec![false; inputs.len()];
    }
    fds.iter()
        .map(|fd| fd.revents().is_some_and(|r| !r.is_empty()))
        .collect()
}

impl Input {
    /// Reads what is there; false once the input has ended (end of file, or a
    /// terminal whose every holder is gone: EIO).
    fn read(&mut self, buffer: &mut [u8]) -> bool {
        let read = match nix::unistd::read(&self.fd, buffer) {
            Ok(0) => return false,
            Ok(n) => buffer.get(..n).unwrap_or_default(),
            Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => return true,
            Err(_) => return false,
        };
        self.pending.extend_from_slice(read);
        if let Some(end) = self.pending.iter().rposition(|&b| b == b'\n') {
            let rest = self.pending.split_off(end.saturating_add(1));
            let lines = std::mem::replace(&mut self.pending, rest);
            self.write(&lines);
        }
        if self.pending.len() > MAX_PARTIAL {
            self.flush();
        }
        self.partial_since = match (self.pending.is_empty(), self.partial_since) {
            (true, _) => None,
            (false, Some(since)) => Some(since),
            (false, None) => Some(Instant::now()),
        };
        true
    }

    fn flush(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        if !pending.is_empty() {
            self.write(&pending);
        }
        self.partial_since = None;
    }

    /// Writes to the log, reopening it when an earlier write failed (a full disk that
    /// has room again, a state directory deleted and made again); lines that cannot be
    /// written are dropped.
    fn write(&mut self, bytes: &[u8]) {
        if self.writer.is_none() {
            self.writer = LogWriter::open(&self.log, self.rotation).ok();
        }
        if let Some(w) = &mut self.writer
            && w.write(bytes).is_err()
        {
            self.writer = None;
        }
    }

    /// The service's output ended: what is left is written, and the index says so.
    fn end(mut self) {
        self.flush();
        if self.writer.is_none() {
            self.writer = LogWriter::open(&self.log, self.rotation).ok();
        }
        if let Some(w) = &mut self.writer {
            let _ = w.mark_end();
        }
    }
}
