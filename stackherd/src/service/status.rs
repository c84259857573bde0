//! The one place that says what state a service is in, derived from its record and
//! the live processes. `status`, `start`, `stop`, `cleanup` and the supervisor all ask
//! here.

use crate::os::ServiceProcess;
use crate::state::{Entry, ServiceState};

/// A service's state, as its record and /proc show it together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// No record: never started, or stopped.
    Stopped,
    /// Not running, and its profile is off or it is `disabled`: a start leaves it out.
    Inactive,
    /// Its process runs; the record says how its health checks go.
    Running(Health),
    /// Waiting for its next start under a live supervisor.
    Restarting,
    /// A one-shot job that exited 0.
    Completed,
    /// Ended for good (policy, or too many restarts).
    Failed,
    /// A `stop` is taking it down (or a stop that was cut short left it so); `alive`:
    /// its main process still runs.
    Stopping { alive: bool },
    /// Its record says it runs, but its process is gone and nobody restarts it.
    Exited,
    /// The record cannot be trusted: unreadable, or its PID belongs to another program.
    Stale(String),
}

/// How a running service's health checks go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Starting,
    Healthy,
    Unhealthy,
}

/// The state of the service whose entry (record or untrustworthy file) is `entry`;
/// `supervised` says whether a supervisor lives to restart it.
pub fn status(entry: Option<&Entry>, supervised: bool) -> Status {
    let record = match entry {
        None => return Status::Stopped,
        Some(Entry::Corrupt { reason, .. }) => return Status::Stale(reason.clone()),
        Some(Entry::Record(record)) => record,
    };
    // Completed and failed services are history: their PID has long been free.
    match record.state {
        ServiceState::Completed => return Status::Completed,
        ServiceState::Failed => return Status::Failed,
        ServiceState::Restarting if supervised => return Status::Restarting,
        _ => {}
    }
    let process = ServiceProcess::recorded(record);
    if record.state == ServiceState::Stopping {
        return Status::Stopping {
            alive: process.is_alive(),
        };
    }
    if process.is_reused() {
        return Status::Stale(format!("pid {} now belongs to another program", record.pid));
    }
    if !process.is_alive() {
        return Status::Exited;
    }
    match record.state {
        ServiceState::Healthy => Status::Running(Health::Healthy),
        ServiceState::Unhealthy => Status::Running(Health::Unhealthy),
        _ => Status::Running(Health::Starting),
    }
}

impl Status {
    /// Its process runs.
    pub fn is_alive(&self) -> bool {
        matches!(self, Status::Running(_) | Status::Stopping { alive: true })
    }

    /// Nothing to start: it runs, or it completed.
    pub fn is_up(&self) -> bool {
        self.is_alive() || *self == Status::Completed
    }

    /// The record describes nothing any more and may be removed.
    pub fn is_stale(&self) -> bool {
        matches!(
            self,
            Status::Stale(_) | Status::Exited | Status::Stopping { alive: false }
        )
    }

    /// The name `status` shows and `status --json` writes.
    pub fn name(&self) -> &'static str {
        match self {
            Status::Stopped => "stopped",
            Status::Inactive => "inactive",
            Status::Running(_) => "running",
            Status::Restarting => "restarting",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Stopping { .. } => "stopping",
            Status::Exited => "exited",
            Status::Stale(_) => "stale",
        }
    }
}
