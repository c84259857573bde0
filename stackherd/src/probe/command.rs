//! The `command` probe: a command that exits 0, run in the project root with the
//! service's environment and cookie (so that a hung probe left behind by a killed
//! manager is still found by `cleanup`), in a process group of its own that is killed
//! whole at the timeout.

use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use super::ProbeError;
use crate::config::{CommandLine, Service};
use crate::os::child::{Child, Waited};
use crate::os::{cookie, program};
use crate::poll;

pub(super) fn probe_command(
    service: &Service,
    line: &CommandLine,
    timeout: Duration,
    root: &Path,
) -> Result<(), ProbeError> {
    let mut command = program::command_for(line, root);
    command
        .current_dir(root)
        .envs(service.env.iter().map(|(k, v)| (k, v)))
        .envs(cookie::vars(root, &service.name))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let not_run = |io| ProbeError::CommandNotRun {
        command: line.clone(),
        io,
    };
    let mut child = Child::spawn(command).map_err(not_run)?;
    let status = match child.wait_until(poll::deadline_after(timeout), &|| false) {
        Ok(Waited::Exited(status)) => status,
        Ok(Waited::TimedOut | Waited::Interrupted) => {
            return Err(ProbeError::CommandTimedOut {
                command: line.clone(),
                timeout,
            });
        }
        Err(io) => return Err(not_run(io)),
    };
    if status.success() {
        return Ok(());
    }
    let mut stderr = String::new();
    if let Some(mut pipe) = child.take_stderr() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    let last_line = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        // Another program's words, shown in messages: no escape sequence of it passes.
        .map(|l| crate::ui::text::plain(l.trim()));
    Err(ProbeError::CommandFailed {
        command: line.clone(),
        status,
        last_line,
    })
}
