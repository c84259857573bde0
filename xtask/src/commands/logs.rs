//! `logs SERVICE [-n N] [-f]`: the last lines of a service's log, then what is
//! appended to it.

use std::process::Command;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::lifecycle::Context;
use crate::poll;
use crate::poll::Backoff;
use crate::state::Entry;
use crate::state::logs::{LogReader, tail};
use crate::ui;

/// Prints the last `lines` lines of a service's log, then follows it with `follow`.
pub fn run(ctx: &Context, service: &str, lines: usize, follow: bool) -> Result<()> {
    ctx.select(&[service.to_string()])?;
    if let Some(Entry::Record(record)) = ctx.registry.entry(service)
        && let Some(name) = record.container
    {
        return docker_logs(&name, lines, follow);
    }
    let path = ctx.registry.log_path(service);
    if !path.exists() {
        return Err(Error::NoLog {
            service: service.to_string(),
            path,
        });
    }
    let mut reader = LogReader::at_end(&path);
    for line in tail(&path, lines) {
        ctx.ui.result(line);
    }
    if !follow {
        return Ok(());
    }
    // Following has no end: the pause only paces reads of a growing file.
    let fresh = || Backoff::new(Duration::from_millis(10), Duration::from_millis(250));
    let mut backoff = fresh();
    loop {
        let lines = reader
            .new_lines()
            .map_err(|err| Error::io(format!("cannot read {}", path.display()), err))?;
        if !lines.is_empty() {
            backoff = fresh();
        }
        for line in lines {
            ctx.ui.result(line);
        }
        // Its reader has gone (`logs -f | grep -m1 ready`): nothing more to do.
        if ui::stdout_closed() {
            return Ok(());
        }
        backoff.pause(poll::after(Duration::from_secs(1)));
    }
}

/// A container service's log as Docker keeps it.
fn docker_logs(name: &str, lines: usize, follow: bool) -> Result<()> {
    let mut command = Command::new("docker");
    command.args(["logs", "--tail", &lines.to_string()]);
    if follow {
        command.arg("-f");
    }
    let status = command
        .arg(name)
        .status()
        .map_err(|err| Error::io("cannot run docker logs", err))?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::Docker {
            what: format!("docker logs {name}"),
            why: format!("failed ({status})"),
        })
    }
}
