//! The UI's keys that change the stack (restart, stop, start) run the very commands a
//! user would type, as child processes of this binary: the same locks, the same
//! ownership checks, the same events in the monitor's log. Their output arrives line by
//! line for the events strip while the UI goes on drawing.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::os::child::{Child, Waited};
use crate::poll;
use crate::service::Context;

/// The longest an action may take (a start waits for health checks; a stop for its
/// grace periods) before it is stopped.
const ACTION_LIMIT: Duration = Duration::from_secs(30 * 60);

/// A change the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Restart(String),
    Stop(String),
    Start(String),
    StartAll,
}

impl Action {
    /// The command line, after `xtask --config PATH`.
    fn args(&self) -> Vec<String> {
        match self {
            Action::Restart(name) => vec!["restart".into(), name.clone()],
            Action::Stop(name) => vec!["stop".into(), name.clone()],
            Action::Start(name) => vec!["start-bg".into(), name.clone()],
            Action::StartAll => vec!["start-bg".into()],
        }
    }
}

/// What an action's child said.
pub enum Report {
    Line(String),
    /// It ended; the stack has changed.
    Done(String),
}

/// The actions running, and where they report.
pub struct Actions {
    sender: mpsc::Sender<Report>,
    receiver: mpsc::Receiver<Report>,
    running: usize,
}

impl Actions {
    pub fn new() -> Actions {
        let (sender, receiver) = mpsc::channel();
        Actions {
            sender,
            receiver,
            running: 0,
        }
    }

    /// Runs `action` on a thread of its own; its output arrives through `reports`.
    pub fn run(&mut self, ctx: &Context, action: &Action) {
        let args = action.args();
        let label = args.join(" ");
        let sender = self.sender.clone();
        let command = match command(ctx, &args) {
            Ok(command) => command,
            Err(err) => {
                let _ = sender.send(Report::Done(format!("{label}: cannot run it ({err})")));
                return;
            }
        };
        self.running = self.running.saturating_add(1);
        std::thread::spawn(move || {
            let ending = run_child(command, &label, &sender);
            let _ = sender.send(Report::Done(format!("{label}: {ending}")));
        });
    }

    /// The reports that arrived since the last call.
    pub fn reports(&mut self) -> Vec<Report> {
        let reports: Vec<Report> = self.receiver.try_iter().collect();
        let done = reports.iter().filter(|r| matches!(r, Report::Done(_))).count();
        self.running = self.running.saturating_sub(done);
        reports
    }

    pub fn running(&self) -> usize {
        self.running
    }
}

/// `xtask --config PATH ARGS...`, with its output in one pipe and without colour.
fn command(ctx: &Context, args: &[String]) -> std::io::Result<(Command, std::io::PipeReader)> {
    let (reader, writer) = std::io::pipe()?;
    let mut command = ctx.xtask_command()?;
    command
        .args(args)
        .env("NO_COLOR", "1")
        // `A` (start all) starts what the profiles this UI was given activate.
        .env(
            "XTASK_PROFILES",
            ctx.profiles.iter().cloned().collect::<Vec<_>>().join(","),
        )
        .stdin(Stdio::null())
        .stdout(writer.try_clone()?)
        .stderr(writer);
    Ok((command, reader))
}

/// Runs the child to its end, passing on each line; says how it ended.
fn run_child((command, reader): (Command, std::io::PipeReader), label: &str, sender: &mpsc::Sender<Report>) -> String {
    let mut child = match Child::spawn(command) {
        Ok(child) => child,
        Err(err) => return format!("cannot run it ({err})"),
    };
    for line in BufReader::new(reader).lines().map_while(std::result::Result::ok) {
        if !line.trim().is_empty() {
            let _ = sender.send(Report::Line(format!("{label}: {}", line.trim())));
        }
    }
    match child.wait_until(Some(poll::after(ACTION_LIMIT)), &|| false) {
        Ok(Waited::Exited(status)) if status.success() => "done".to_string(),
        Ok(Waited::Exited(status)) => format!("failed ({status})"),
        Ok(Waited::TimedOut | Waited::Interrupted) => {
            format!("stopped after {} min", ACTION_LIMIT.as_secs() / 60)
        }
        Err(err) => format!("cannot wait for it ({err})"),
    }
}
