//! The binary runs itself again, as the detached monitor (`__monitor`) and as the log
//! relays (`__relay`), so that a team's xtask needs no second program. That works only
//! when the team's `main` passes those hidden commands on to this library; one that
//! parses its own command line and leaves them out would make every relay die at once,
//! and its services with it (SIGPIPE). So a start first asks the binary, once per
//! process, to answer a hidden command, and stops with an error that names the fix
//! when it does not.

use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::os::child::Child;
use crate::service::Context;

/// What the binary prints for `__reexec-check` when the hidden commands reach us.
pub const ANSWER: &str = "stackherd: the hidden commands reach the library";
/// The hidden command that asks.
const ASK: &str = "__reexec-check";
/// How long the answer may take: the binary loads and parses its command line.
const WAIT: Duration = Duration::from_secs(10);

/// Whether the hidden commands reach us: set once a check passed, or in a process
/// that was itself run again by its binary (the monitor).
static REACHED: OnceLock<()> = OnceLock::new();

/// This process was run by its own binary through a hidden command: no check needed.
pub fn reached() {
    let _ = REACHED.set(());
}

/// Checks, before anything is started, that this binary passes the hidden commands on
/// to the library, asked as the monitor is run: with the options (`--config`,
/// `--quiet`) before the command, which a `main` that does not flatten [`Options`]
/// refuses.
///
/// [`Options`]: crate::cli::Options
pub fn check(ctx: &Context) -> Result<()> {
    if REACHED.get().is_some() {
        return Ok(());
    }
    let binary = std::env::current_exe().map_err(|err| Error::io("cannot find this program's binary", err))?;
    let mut command = ctx
        .xtask_command()
        .map_err(|err| Error::io("cannot find this program's binary", err))?;
    command
        .arg("--quiet")
        .arg(ASK)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = Child::spawn(command).map_err(|err| Error::io(format!("cannot run {}", binary.display()), err))?;
    // The answer is one short line; stderr (clap's usage error) fits a pipe too, so
    // reading after the wait cannot block the child.
    let status = child
        .wait_for(WAIT)
        .map_err(|err| Error::io(format!("cannot run {}", binary.display()), err))?;
    let status = match status {
        Some(status) => status,
        None => {
            child.end();
            return Err(Error::Unwired {
                binary,
                answer: format!("no answer within {}s", WAIT.as_secs()),
            });
        }
    };
    let (stdout, stderr) = (read(child.take_stdout()), read(child.take_stderr()));
    if status.success() && stdout.lines().any(|l| l == ANSWER) {
        reached();
        return Ok(());
    }
    let said = stderr
        .lines()
        .chain(stdout.lines())
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    Err(Error::Unwired {
        binary,
        answer: format!("{status}: {}", crate::os::process::printable(said.trim())),
    })
}

fn read(pipe: Option<impl std::io::Read>) -> String {
    let mut text = String::new();
    if let Some(mut pipe) = pipe {
        let _ = pipe.read_to_string(&mut text);
    }
    text
}
