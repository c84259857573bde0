//! The hidden `__relay` program: between a service and its log file. It reads the
//! service's output (a pipe, or the master side of its terminal), writes whole lines
//! to the log with the time of each write in the log's time index, and rotates the log
//! (`log_max_size`, `log_keep`). It runs outside xtask, so the service keeps logging
//! when xtask dies; it ignores the stop signals and ends when its input does, that is
//! when the service's last process that holds its output has ended, so the last lines
//! of a stopped service are never lost.

use std::ffi::OsString;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};
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

/// Runs the relay: `LOG MAX_SIZE KEEP` (a `MAX_SIZE` of 0: no rotation). Its output is
/// /dev/null; what it cannot write is dropped, never left to block the service.
pub fn run(args: &[OsString]) -> u8 {
    ignore_termination_signals();
    let (Some(log), Some(max_size), Some(keep)) = (
        args.first().map(PathBuf::from),
        args.get(1).and_then(|a| a.to_str()?.parse::<u64>().ok()),
        args.get(2).and_then(|a| a.to_str()?.parse::<u32>().ok()),
    ) else {
        return 64;
    };
    let rotation = (max_size > 0).then_some(Rotation { max_size, keep });
    let mut writer = LogWriter::open(&log, rotation).ok();
    let mut pending: Vec<u8> = Vec::new();
    let mut partial_since: Option<Instant> = None;
    let mut buffer = vec![0u8; 64 * 1024];
    let stdin = io::stdin();
    loop {
        let wait = partial_since.map(|since| PARTIAL_WAIT.saturating_sub(since.elapsed()));
        if !readable(stdin.as_fd(), wait) {
            flush(&mut writer, &log, rotation, &mut pending);
            partial_since = None;
            continue;
        }
        let read = match stdin.lock().read(&mut buffer) {
            // End of input, or a terminal whose every holder is gone (EIO).
            Ok(0) | Err(_) => {
                flush(&mut writer, &log, rotation, &mut pending);
                return 0;
            }
            Ok(n) => buffer.get(..n).unwrap_or_default(),
        };
        pending.extend_from_slice(read);
        let whole = pending.iter().rposition(|&b| b == b'\n');
        if let Some(end) = whole {
            let rest = pending.split_off(end.saturating_add(1));
            let lines = std::mem::replace(&mut pending, rest);
            write(&mut writer, &log, rotation, &lines);
        }
        if pending.len() > MAX_PARTIAL {
            flush(&mut writer, &log, rotation, &mut pending);
        }
        partial_since = match (pending.is_empty(), partial_since) {
            (true, _) => None,
            (false, Some(since)) => Some(since),
            (false, None) => Some(Instant::now()),
        };
    }
}

/// Whether input waits, within `wait` (for ever without one).
fn readable(fd: BorrowedFd<'_>, wait: Option<Duration>) -> bool {
    let timeout = match wait {
        None => PollTimeout::NONE,
        Some(wait) => PollTimeout::try_from(wait).unwrap_or(PollTimeout::MAX),
    };
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    match poll(&mut fds, timeout) {
        Ok(0) => false,
        // Ready, hung up, or interrupted: the read tells which.
        _ => true,
    }
}

fn flush(writer: &mut Option<LogWriter>, log: &std::path::Path, rotation: Option<Rotation>, pending: &mut Vec<u8>) {
    if !pending.is_empty() {
        write(writer, log, rotation, pending);
        pending.clear();
    }
}

/// Writes to the log, reopening it when an earlier write failed (a full disk that has
/// room again, a state directory that was deleted and made again); lines that cannot be
/// written are dropped.
fn write(writer: &mut Option<LogWriter>, log: &std::path::Path, rotation: Option<Rotation>, bytes: &[u8]) {
    if writer.is_none() {
        *writer = LogWriter::open(log, rotation).ok();
    }
    if let Some(w) = writer
        && w.write(bytes).is_err()
    {
        *writer = None;
    }
}
